"""``kimi_env/MathCode-v0``: generated reasoning-heavy math and logic tasks, checked by value, with the python tool.

Tasks come from :mod:`kimi_env.mathtasks` (sums of primes, modular arithmetic, recurrences, counting, calendar
questions, ...): each is cheap to compute and impractical to answer without running code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kimi_env import Task, Tool, ToolEnv
from kimi_env.tasks import SPLITS, split_of
from kimi_env.errors import unknown_name
from kimi_env.mathtasks import FAMILIES, make_math_task
from kimi_env.tools import PythonTool


class MathCodeEnv(ToolEnv):
    """Math and logic with a Python sandbox.

    Args:
        families: Names of the task families to draw from (default: all of them, see ``kimi_env.mathtasks``).
        split: ``train``, ``validation`` or ``test`` (disjoint by question), or None for any task.
        python_timeout: Wall-clock seconds one python call may run.
        **kwargs: Everything :class:`~kimi_env.ToolEnv` takes.
    """

    def __init__(self, *, families: Sequence[str] | None = None, split: str | None = "train",
                 python_timeout: float = 10.0, **kwargs: Any) -> None:
        if split is not None and split not in SPLITS:
            raise unknown_name("split", str(split), SPLITS)
        self.split = split
        by_name = {f.name: f for f in FAMILIES}
        if isinstance(families, str):  # "primes" or "primes,calendar" (the command line's comma form)
            families = [f.strip() for f in families.split(",") if f.strip()]
        if families is not None:
            for name in families:
                if name not in by_name:
                    raise unknown_name("task family", name, by_name)
            self.families = tuple(by_name[n] for n in families)
        else:
            self.families = FAMILIES
        self.python_timeout = float(python_timeout)
        kwargs.setdefault("max_turns", 6)
        super().__init__(**kwargs)

    def _make_tools(self) -> list[Tool]:
        return [PythonTool(timeout=self.python_timeout)]

    def _sample_task(self) -> Task:
        while True:  # rejection sampling keeps the draw a function of np_random alone
            task = make_math_task(self.np_random, self.families)
            if self.split is None or split_of(task.question) == self.split:
                return task
