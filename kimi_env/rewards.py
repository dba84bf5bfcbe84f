"""Outcome rewards: pure functions from a predicted answer and the accepted answers to a score in [0, 1].

>>> exact_match("The Eiffel Tower!", ["eiffel tower"])
1.0
>>> round(token_f1("Paris France", ["Paris"]), 3)
0.667
>>> numeric_match("about 1,234.5 km", ["1234.5"])
1.0
>>> numeric_match("12%", ["0.12"])
1.0
>>> list_match("Bob, alice", ["Alice, Bob"])
1.0
"""

from __future__ import annotations

import asyncio
import inspect
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation) | {"\u2018", "\u2019", "\u201c", "\u201d", "\u2013", "\u2014"}


def normalize_answer(text: str) -> str:
    """Lowercase, strip accents, punctuation, articles and extra whitespace (SQuAD-style).

    >>> normalize_answer("  The  Café-Bar, Inc. ")
    'cafebar inc'
    """
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 if the normalized prediction equals any normalized answer, else 0.0."""
    pred = normalize_answer(prediction)
    return 1.0 if any(pred == normalize_answer(a) for a in answers) else 0.0


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """Best token-level F1 between the prediction and any answer."""
    pred_tokens = normalize_answer(prediction).split()
    best = 0.0
    for ans in answers:
        gold = normalize_answer(ans).split()
        if not pred_tokens or not gold:
            best = max(best, float(pred_tokens == gold))
            continue
        common = sum((Counter(pred_tokens) & Counter(gold)).values())
        if common:
            precision, recall = common / len(pred_tokens), common / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


_NUMBER = re.compile(r"[-+\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?%?")
_MAX_EXPONENT = 400


def _exact_numbers(text: str) -> list[Fraction]:
    """All numbers in ``text`` as exact fractions (so integers beyond 2**53 keep every digit)."""
    out = []
    for m in _NUMBER.finditer(str(text)[:10_000]):
        tok = m.group(0).replace(",", "").replace("\u2212", "-")
        pct = tok.endswith("%")
        tok = tok.rstrip("%")
        exp = re.search(r"[eE]([-+]?\d+)$", tok)
        if exp and abs(int(exp.group(1))) > _MAX_EXPONENT:
            continue
        try:
            val = Fraction(tok)
        except (ValueError, ZeroDivisionError):
            continue
        out.append(val / 100 if pct else val)
    return out


def parse_numbers(text: str) -> list[float]:
    """All numbers in ``text`` (thousands separators, signs, exponents; ``12%`` gives 0.12).

    >>> parse_numbers("-1,200 and 3.5e2 or 40%")
    [-1200.0, 350.0, 0.4]
    """
    return [float(x) for x in _exact_numbers(text)]


def numeric_match(prediction: str, answers: Sequence[str], rel_tol: float = 1e-4, abs_tol: float = 1e-6) -> float:
    """1.0 if the prediction contains exactly one number and it is within tolerance of an answer's number.

    Numbers are compared exactly (as fractions): ``rel_tol=0`` means the same value, digit for digit, however large.
    A prediction listing several numbers scores 0 (hedging is not an answer).

    >>> numeric_match("1999 or 2001", ["2001"])
    0.0
    >>> numeric_match("92653233980757061", ["92653233980757060"], rel_tol=0)
    0.0
    >>> numeric_match("92,653,233,980,757,060", ["92653233980757060"], rel_tol=0)
    1.0
    """
    pred = _exact_numbers(prediction)
    if len(pred) != 1:
        return 0.0
    p = pred[0]
    for ans in answers:
        gold = _exact_numbers(ans)
        if len(gold) != 1:
            continue
        g = gold[0]
        if rel_tol == 0:
            if p == g:
                return 1.0
        elif abs(p - g) <= max(Fraction(rel_tol) * max(abs(p), abs(g)), Fraction(abs_tol)):
            return 1.0
    return 0.0


def list_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 if the comma/semicolon/"and"-separated items equal an answer's items as a set (normalized)."""

    def items(text: str) -> frozenset[str]:
        parts = re.split(r",|;|\band\b|\n", str(text))
        return frozenset(p for p in (normalize_answer(x) for x in parts) if p)

    pred = items(prediction)
    return 1.0 if pred and any(pred == items(a) for a in answers) else 0.0


Judge = Callable[[str, str, Sequence[str]], Any]
"""A judge maps (question, prediction, answers) to a score in [0, 1]: any callable, e.g. an LLM grader; it may be
``async def`` (then ``astep`` awaits it and ``step`` runs it on the background loop)."""


def score_answer(prediction: str, answers: Sequence[str], answer_type: str = "text", rel_tol: float = 1e-4) -> float:
    """The default correctness score for a task's answer type (``rel_tol`` applies to numbers).

    >>> score_answer("March 3, 2001", ["2001-03-03", "March 3, 2001"], "date")
    1.0
    """
    if answer_type == "number":
        return numeric_match(prediction, answers, rel_tol=rel_tol)
    if answer_type == "list":
        return list_match(prediction, answers)
    return exact_match(prediction, answers)


@dataclass(frozen=True)
class JudgeScorer:
    """Wrap a :data:`Judge` so that it never breaks an episode: errors and out-of-range scores become 0.

    ``scorer(q, p, a)`` calls it synchronously (an ``async`` judge runs on the background loop);
    ``await scorer.acall(q, p, a)`` awaits an ``async`` judge and runs a plain one in a worker thread, so an LLM
    judge never blocks the caller's event loop.

    >>> JudgeScorer(lambda q, p, a: 1.0 if p.lower() in [x.lower() for x in a] else 0.0)("q", "Yes", ["yes"])
    1.0
    >>> async def judge(q, p, a): return 0.5
    >>> JudgeScorer(judge)("q", "p", ["a"]), asyncio.run(JudgeScorer(judge).acall("q", "p", ["a"]))
    (0.5, 0.5)
    """

    judge: Judge

    def __call__(self, question: str, prediction: str, answers: Sequence[str]) -> float:
        try:
            score = self.judge(question, prediction, answers)
            if inspect.isawaitable(score):
                from . import aio

                score = aio.run(_awaited(score))
            return self._checked(score)
        except Exception:  # noqa: BLE001 - a failing judge scores 0 rather than crashing a rollout
            return 0.0

    async def acall(self, question: str, prediction: str, answers: Sequence[str]) -> float:
        try:
            if inspect.iscoroutinefunction(self.judge) or inspect.iscoroutinefunction(
                    getattr(self.judge, "__call__", None)):
                score = await self.judge(question, prediction, answers)
            else:
                score = await asyncio.to_thread(self.judge, question, prediction, answers)
                if inspect.isawaitable(score):
                    score = await score
            return self._checked(score)
        except Exception:  # noqa: BLE001 - a failing judge scores 0 rather than crashing a rollout
            return 0.0

    @staticmethod
    def _checked(score: Any) -> float:
        score = float(score)
        return score if 0.0 <= score <= 1.0 else 0.0


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
