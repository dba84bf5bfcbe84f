"""Funnel stage (b): a task is kept only if the oracle agent solves it through the real tools.

:class:`OracleSolvable` is the ``solvable`` callback of :func:`kimi_env.world.funnel.build_tasks`. For each task it
opens an environment with exactly the task's ``required_tools`` (search over the world's BM25 index, browse over
the loopback HTTP server, python in the sandbox), runs :class:`~kimi_env.world.oracle.OraclePolicy` and keeps the task
when the episode's reward is 1. It costs about 5 to 15 ms a task on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..env import ToolEnv
from ..tasks import Task
from ..tools.base import Tool

_LOCK = threading.Lock()


def world_corpus(world: Any, cache_dir: str | os.PathLike | None = None) -> Any:
    """The world's pages as an on-disk :class:`~kimi_env.web.corpus.Corpus`, built once per world cache key (found
    again without rendering a page: see :meth:`~kimi_env.world.model.World.cache_key`)."""
    from ..progress import stage
    from ..web.corpus import Corpus, cache_root

    root = Path(cache_dir) if cache_dir is not None else cache_root() / "worlds"
    out = root / f"seed{world.seed}-pages{world.n_pages}-{world.cache_key()[:16]}"
    with _LOCK:
        if (out / "manifest.json").is_file():
            return Corpus.open(out)
        # Build privately, then move into place; when several processes race, the first rename wins and the
        # others open its result (a built corpus is never replaced under a reader).
        private = root / f".building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        with stage(f"building the corpus of world seed {world.seed} ({world.n_pages} pages; first use only, cached)"):
            Corpus.build(world.documents(), private, name=f"kimiwiki seed {world.seed}, {world.n_pages} pages")
        try:
            os.rename(private, out)
        except OSError:
            shutil.rmtree(private, ignore_errors=True)
        return Corpus.open(out)


def make_tools(names: Sequence[str], corpus: Any, python_timeout: float = 10.0) -> list[Tool]:
    """Fresh instances of the named built-in tools over ``corpus``."""
    from ..tools import BrowseTool, PythonTool, SearchTool

    makers = {
        "search": lambda: SearchTool(corpus),
        "browse": lambda: BrowseTool(corpus),
        "python": lambda: PythonTool(timeout=python_timeout),
    }
    return [makers[name]() for name in names]


class _TaskEnv(ToolEnv):
    """An environment over given tools that poses the task passed in ``reset(options={"task": ...})``."""

    def __init__(self, *, tool_list: Sequence[Tool], **kwargs: Any) -> None:
        self._tool_list = list(tool_list)
        super().__init__(**kwargs)

    def _make_tools(self) -> list[Tool]:
        return self._tool_list

    def _sample_task(self) -> Task:  # pragma: no cover - tasks always come through options
        raise RuntimeError("_TaskEnv poses only the tasks given to reset(options={'task': ...}).")


class OracleSolvable:
    """``solvable(tasks) -> list[bool]``: does the oracle solve each task through the real tools?"""

    def __init__(self, world: Any, *, max_turns: int = 40) -> None:
        self.world = world
        self.max_turns = max_turns
        self.failures: dict[str, str] = {}

    def __call__(self, tasks: Sequence[Task]) -> list[bool]:
        from .oracle import OraclePolicy
        from ..rollout import run_episode

        corpus = world_corpus(self.world)
        envs: dict[tuple[str, ...], _TaskEnv] = {}
        policy = OraclePolicy()
        out = []
        try:
            for task in tasks:
                names = tuple(sorted(task.metadata.get("required_tools", ("search",))))
                if names not in envs:
                    envs[names] = _TaskEnv(tool_list=make_tools(names, corpus), max_turns=self.max_turns,
                                           max_observation_chars=32_000, max_context_chars=1_000_000)
                traj = run_episode(envs[names], policy, options={"task": task})
                ok = traj.reward >= 1.0
                if not ok:
                    self.failures[task.id] = policy.failure or f"wrong answer {traj.info.get('answer')!r}"
                out.append(ok)
        finally:
            for env in envs.values():
                env.close()
        return out
