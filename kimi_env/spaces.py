"""Text spaces over real Unicode, and the sanitizer that keeps observations inside them.

Gymnasium's ``spaces.Text`` defaults to an alphanumeric charset without even a space. Our charset is every
assigned, non-surrogate, non-private-use code point plus ``\\t``, ``\\n`` and ``\\r`` (about 150k characters). Other
control characters and unassigned code points in tool output are replaced by U+FFFD, so every observation is a member
of the observation space whatever a web page or a program printed.
"""

from __future__ import annotations

import functools
import sys
import unicodedata

from gymnasium import spaces

REPLACEMENT = "\ufffd"
_DROP_CATEGORIES = {"Cs", "Co", "Cn", "Cc"}
_KEEP_CONTROLS = "\t\n\r"


@functools.lru_cache(maxsize=1)
def unicode_charset() -> str:
    """Every character an observation or action may contain, as one string (built once, ~0.2 s)."""
    chars = [
        ch
        for ch in map(chr, range(sys.maxunicode + 1))
        if unicodedata.category(ch) not in _DROP_CATEGORIES or ch in _KEEP_CONTROLS
    ]
    return "".join(chars)


@functools.lru_cache(maxsize=1)
def _charset_set() -> frozenset[str]:
    return frozenset(unicode_charset())


def _is_allowed(ch: str) -> bool:
    return ch in _charset_set()


def sanitize(text: str) -> str:
    """Replace characters outside :func:`unicode_charset` with U+FFFD.

    >>> sanitize("a\\x00b\\tc")
    'a\\ufffdb\\tc'
    """
    allowed = _charset_set()
    if all(ch in allowed for ch in text):
        return text
    return "".join(ch if ch in allowed else REPLACEMENT for ch in text)


def text_space(max_length: int, min_length: int = 0) -> spaces.Text:
    """A ``spaces.Text`` over :func:`unicode_charset`."""
    return spaces.Text(max_length=max_length, min_length=min_length, charset=unicode_charset())
