"""Text spaces over real Unicode, and the sanitizer that keeps observations inside them.

Gymnasium's ``spaces.Text`` defaults to an alphanumeric charset without even a space. Our charset is every
assigned code point that is not a surrogate, private-use, control (Cc) or format (Cf) character, plus ``\\t`` and
``\\n`` (about 150k characters).

* :func:`neutralize` is the one function every tool result and every observation passes through: ``\\r\\n`` and
  ``\\r`` become ``\\n``; format characters (Cf: bidi overrides and isolates U+202A-U+202E and U+2066-U+2069,
  zero-width U+200B-U+200F, U+FEFF, soft hyphen, ...) are removed, so text cannot reorder or hide itself in an
  observation or a stored trajectory; other control characters and unassigned code points become U+FFFD.
* :class:`UnicodeText` is a ``spaces.Text`` over that charset that stores no charset: it pickles to a few hundred
  bytes (worker processes, ``AsyncVectorEnv``), indexes characters by code point, and flattens, batches and goes
  through ``AsyncVectorEnv``'s shared memory with Gymnasium's own ``Text`` functions. Reading text back from shared
  memory gives a live view (Gymnasium's ``Text`` reader decodes once, when the vector environment is created, so
  every later observation would read as that first snapshot: padding characters).
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import shared_memory as _shared_memory

REPLACEMENT = "\ufffd"
_DROP_CATEGORIES = {"Cs", "Co", "Cn", "Cc", "Cf"}
_KEEP_CONTROLS = "\t\n"
_CODE_POINTS = sys.maxunicode + 1
_NEWLINES = re.compile(r"\r\n?")


@functools.lru_cache(maxsize=1)
def unicode_charset() -> str:
    """Every character an observation or action may contain, as one string (built once, ~0.2 s)."""
    chars = [
        ch
        for ch in map(chr, range(_CODE_POINTS))
        if unicodedata.category(ch) not in _DROP_CATEGORIES or ch in _KEEP_CONTROLS
    ]
    return "".join(chars)


@functools.lru_cache(maxsize=1)
def _charset_set() -> frozenset[str]:
    return frozenset(unicode_charset())


@functools.lru_cache(maxsize=1)
def _charset_codes() -> np.ndarray:
    return np.frombuffer(unicode_charset().encode("utf-32-le"), dtype=np.uint32).astype(np.int64)


def _is_allowed(ch: str) -> bool:
    return ch in _charset_set()


def neutralize(text: str) -> str:
    """Make ``text`` a member of the charset: newlines normalized, format characters removed, other characters
    outside the charset replaced by U+FFFD.

    >>> neutralize("a\\x00b\\tc\\r\\nd")
    'a\\ufffdb\\tc\\nd'
    >>> neutralize("user\\u202egnp.exe \\u200bzero\\ufeff")
    'usergnp.exe zero'
    """
    allowed = _charset_set()
    if all(ch in allowed for ch in text):
        return text
    if "\r" in text:
        text = _NEWLINES.sub("\n", text)
    out = []
    for ch in text:
        if ch in allowed:
            out.append(ch)
        elif unicodedata.category(ch) != "Cf":
            out.append(REPLACEMENT)
    return "".join(out)


#: the former name of :func:`neutralize`
sanitize = neutralize


class _CodePointSet:
    """A charset view that is all of Unicode by size (so Gymnasium pads flattened text with ``0x110000``) and
    tests membership against the real charset."""

    def __len__(self) -> int:
        return _CODE_POINTS

    def __contains__(self, ch: object) -> bool:
        return isinstance(ch, str) and ch in _charset_set()

    def __iter__(self):
        return iter(unicode_charset())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _CodePointSet)

    __hash__ = object.__hash__


class _CodePointList:
    """``character_list[i]`` is ``chr(i)``: the index of a character is its code point."""

    def __len__(self) -> int:
        return _CODE_POINTS

    def __getitem__(self, index: Any) -> str:
        return chr(int(index))


class UnicodeText(spaces.Text):
    """``spaces.Text`` over :func:`unicode_charset`, light to pickle and indexed by code point.

    >>> space = UnicodeText(10)
    >>> space.contains("héllo\\n"), space.contains("a\\u202eb"), space.contains("x" * 11)
    (True, False, False)
    >>> import pickle; len(pickle.dumps(space)) < 2000
    True
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: Any = None) -> None:
        super().__init__(max_length, min_length=min_length, charset="a", seed=seed)
        # Drop the one-character charset the base class built; every charset view below is computed on access.
        self._char_set = self._char_list = self._char_index = self._char_str = None  # type: ignore[assignment]

    @property
    def character_set(self) -> _CodePointSet:  # type: ignore[override]
        return _CodePointSet()

    @property
    def character_list(self) -> _CodePointList:  # type: ignore[override]
        return _CodePointList()

    def character_index(self, char: str) -> np.int32:
        return np.int32(ord(char))

    @property
    def characters(self) -> str:
        return unicode_charset()

    def contains(self, x: Any) -> bool:
        if not isinstance(x, str) or not self.min_length <= len(x) <= self.max_length:
            return False
        allowed = _charset_set()
        return all(ch in allowed for ch in x)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random member: a random length, then characters drawn uniformly from the charset. ``mask`` and
        ``probability`` may give the length (``(length, None)``); per-character masks are not supported."""
        length = None
        for given in (mask, probability):
            if given is not None:
                length, per_char = given
                if per_char is not None:
                    raise ValueError(
                        "UnicodeText.sample takes (length, None): a per-character mask over ~150k characters is not "
                        "supported. Fix: sample a length only, or build your own string."
                    )
        if length is None:
            length = int(self.np_random.integers(self.min_length, self.max_length + 1))
        codes = self.np_random.choice(_charset_codes(), size=int(length))
        return "".join(map(chr, codes.tolist()))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, UnicodeText) and self.min_length == other.min_length
                and self.max_length == other.max_length)

    __hash__ = spaces.Text.__hash__

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"


class _SharedTexts(Sequence):
    """The texts in an ``AsyncVectorEnv``'s shared memory, decoded on every access (a deep copy is a tuple)."""

    def __init__(self, space: UnicodeText, memory: Any, n: int) -> None:
        self._rows = np.frombuffer(memory.get_obj(), dtype=np.int32).reshape((n, space.max_length))

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(len(self))[index])
        row = self._rows[index]
        return "".join(map(chr, row[(row >= 0) & (row < _CODE_POINTS)].tolist()))

    def __deepcopy__(self, memo: dict) -> tuple[str, ...]:
        return tuple(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(tuple(self))


@_shared_memory.read_from_shared_memory.register(UnicodeText)
def _read_unicode_text(space: UnicodeText, memory: Any, n: int = 1) -> _SharedTexts:
    return _SharedTexts(space, memory, n)


def text_space(max_length: int, min_length: int = 0) -> UnicodeText:
    """A text space over :func:`unicode_charset` (see :class:`UnicodeText`)."""
    return UnicodeText(max_length=max_length, min_length=min_length)
