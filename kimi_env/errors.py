"""The typed error hierarchy of kimi-env.

Every exception a programmer can get from this library derives from :class:`KimiEnvError`, and every message says
what was expected, what came, and how to fix it. Agents never see these exceptions: bad agent output becomes an
observation (see :mod:`kimi_env.protocol`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from gymnasium.error import ResetNeeded


class KimiEnvError(Exception):
    """Base class of every error raised by kimi-env."""


class InvalidArgumentError(KimiEnvError, TypeError, ValueError):
    """A constructor or function got an argument it does not accept (unknown name, wrong type or value).

    It is both a ``TypeError`` and a ``ValueError``: it is raised for wrong types and for bad values alike."""


class UnknownNameError(KimiEnvError, KeyError):
    """A name (environment id, tool, protocol, policy) is not known; the message lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ResetNeededError(KimiEnvError, ResetNeeded, RuntimeError):
    """``step`` was called before ``reset`` or after the episode ended (also a ``gymnasium.error.ResetNeeded``,
    which Gymnasium's own order check raises, so one ``except`` catches both)."""


class StepInProgressError(KimiEnvError, RuntimeError):
    """``step``/``astep``/``reset`` was called on an environment whose previous ``astep`` has not finished.

    One environment runs one step at a time; step many environments concurrently instead."""


class ToolDefinitionError(KimiEnvError, TypeError):
    """A tool's signature or docstring cannot be turned into a JSON schema."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""`` when nothing is close.

    >>> suggest("max_turn", ["max_turns", "seed"])
    " Did you mean 'max_turns'?"
    >>> suggest("zzz", ["max_turns"])
    ''
    """
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def plural(word: str) -> str:
    """The English plural of a noun (of a phrase's last word): enough for the nouns of our messages.

    >>> [plural(w) for w in ("policy", "task family", "match", "document", "day", "index")]
    ['policies', 'task families', 'matches', 'documents', 'days', 'indexes']
    """
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def count(n: int, word: str) -> str:
    """``"1 document"``, ``"2 documents"``, ``"0 policies"``.

    >>> count(1, "match"), count(3, "match")
    ('1 match', '3 matches')
    """
    return f"{n} {word if n == 1 else plural(word)}"


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> UnknownNameError:
    """Build an :class:`UnknownNameError` that lists the valid names and suggests the closest."""
    choices = sorted(choices)
    return UnknownNameError(
        f"Unknown {kind} {name!r}.{suggest(name, choices)} Valid {plural(kind)}: {', '.join(choices) or '(none)'}."
    )
