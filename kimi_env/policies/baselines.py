"""Baseline policies that use no tools: the floor every learned agent must beat."""

from __future__ import annotations

import re
from typing import Any

from .base import Policy


class NoToolPolicy(Policy):
    """Answers at once from the question text alone, with a simple guess (a name or number in the question).

    This is the "not trivial" check of the task funnel: tasks it solves need no tools and are dropped.
    """

    name = "no-tool"

    def act(self, observation: str, info: dict[str, Any]) -> str:
        task = info.get("task") or {}
        question = str(task.get("question", ""))
        return f"<answer>{guess_from_question(question, task.get('answer_type', 'text'))}</answer>"


def guess_from_question(question: str, answer_type: str) -> str:
    """A deterministic guess from the question text alone.

    >>> guess_from_question("Which was founded earlier, Alba Corp or Brin Ltd?", "text")
    'Alba Corp'
    >>> guess_from_question("How many years after 1990 ...?", "number")
    '1990'
    """
    if answer_type in ("number", "date"):
        nums = re.findall(r"\d[\d,]*(?:\.\d+)?", question)
        return nums[0] if nums else "0"
    names = re.findall(r"(?:[A-Z][\w'-]+(?: (?:of |de |the )?[A-Z][\w'-]+)+)", question)
    names = [n for n in names if not n.startswith(("Which", "What", "Who", "How", "In ", "When", "Where"))]
    return names[0] if names else "unknown"
