"""The registered environments over the generated world (or your own corpus and tasks).

| id | tools | tasks |
|---|---|---|
| ``kimi_env/SearchQA-v0`` | search | facts visible in search results: lookups, multi-hop chains, comparisons, dates |
| ``kimi_env/BrowseQA-v0`` | search, browse | facts deep in page bodies, lists, conflicting sources, long chains |
| ``kimi_env/CodeQA-v0`` | search, python | aggregations over several entities that need computing |
| ``kimi_env/DeepResearch-v0`` | search, browse, python | every kind, mixed, longer horizon |

Every environment takes the same keywords (see :class:`WorldQAEnv`). The world, its corpus on disk, its search index
and the synthesized task pool are built once per process (and cached on disk under ``$KIMI_ENV_CACHE`` or
``~/.cache/kimi-env``), so making many environments is cheap; the offline web is served by one loopback server per
process, started by the first environment and stopped when the last one closes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from kimi_env import Task, Tool, ToolEnv, load_tasks
from kimi_env.errors import InvalidArgumentError, unknown_name
from kimi_env.progress import stage
from kimi_env.tasks import SPLITS, save_tasks

_LOCK = threading.Lock()


def _synthesis_version() -> str:
    """A hash of the task-synthesis code, part of the task-pool cache key: changing the synthesizer, the funnel or
    the plans invalidates cached pools without anyone remembering to bump a version."""
    import kimi_env.world as world_pkg

    h = hashlib.sha256()
    root = Path(world_pkg.__file__).parent
    # the funnel's triviality stage also depends on the no-tool policy's guess and the scorer
    for path in (root / "synth.py", root / "funnel.py", root / "plan.py", root / "solvable.py",
                 root.parent / "policies" / "baselines.py", root.parent / "rewards.py"):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def get_world(seed: int, pages: int) -> Any:
    from kimi_env.world import generate_world

    return generate_world(seed=seed, n_pages=pages)


def get_corpus(seed: int, pages: int, corpus_dir: str | None) -> Any:
    """The corpus of the generated world (built on first use, then read from the cache), or an imported one."""
    from kimi_env.web.corpus import cache_root

    return _get_corpus(seed, pages, corpus_dir, str(cache_root()))


@functools.lru_cache(maxsize=8)
def _get_corpus(seed: int, pages: int, corpus_dir: str | None, root: str) -> Any:
    from kimi_env.web.corpus import Corpus
    from kimi_env.world.solvable import world_corpus

    if corpus_dir is not None:
        return Corpus.open(corpus_dir)
    return world_corpus(get_world(seed, pages), Path(root) / "worlds")


def get_task_pool(seed: int, pages: int, n: int, task_seed: int, verify: bool = False) -> tuple[Task, ...]:
    """Synthesized, funnel-filtered tasks of the world (every split), cached on disk as JSONL.

    With ``verify`` the funnel also runs stage (b), the oracle through the real tools (about a minute for the
    default pool); without it stage (b) is skipped.
    """
    from kimi_env.web.corpus import cache_root

    return _get_task_pool(seed, pages, n, task_seed, verify, str(cache_root()))


@functools.lru_cache(maxsize=16)
def _get_task_pool(seed: int, pages: int, n: int, task_seed: int, verify: bool, root: str) -> tuple[Task, ...]:
    from kimi_env.world.funnel import build_tasks
    from kimi_env.world.solvable import OracleSolvable

    world = get_world(seed, pages)
    key = hashlib.sha256(
        f"{_synthesis_version()}|{world.cache_key()}|{n}|{task_seed}|{verify}".encode()
    ).hexdigest()[:16]
    path = Path(root) / "tasks" / f"seed{seed}-pages{pages}-n{n}-t{task_seed}{'-verified' if verify else ''}-{key}.jsonl"
    with _LOCK:
        if path.is_file():
            return tuple(load_tasks(path))
        what = f"synthesizing {n} tasks{' and checking each with the oracle' if verify else ''}"
        with stage(f"{what} (first use only, cached)"):
            tasks, _report = build_tasks(world, n, seed=task_seed, solvable=OracleSolvable(world) if verify else None,
                                         log=lambda *a, **k: None)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        save_tasks(tasks, tmp)
        tmp.replace(path)
        # read back what a warm cache returns, so a cold and a warm start give identical tasks (metadata key order)
        return tuple(load_tasks(path))


class WorldQAEnv(ToolEnv):
    """Question answering over an offline web with outcome rewards. Subclasses choose tools and task kinds.

    Args:
        world_seed: Seed of the generated world (same seed, same pages and tasks, byte for byte).
        pages: Size of the generated world in pages.
        corpus: Directory of an imported corpus (``kimi-env corpus import``) to search and browse instead of the
            generated world; pair it with ``tasks``.
        tasks: Your own tasks: a JSONL path, a ``datasets.Dataset`` or a list of dicts/``Task`` (question and
            answers); they replace the synthesized ones and are used as given (no kind or split filter).
        split: ``train``, ``validation`` or ``test`` (synthesized tasks: disjoint by entity), or None for all.
        difficulty: (min, max) task difficulty, 1 to 5.
        kinds: Task kinds to keep (default: the environment's own; see ``kimi_env.world.synth.KINDS``).
        n_tasks: How many tasks to synthesize for the pool (all splits together).
        task_seed: Seed of task synthesis.
        verify: Also run funnel stage (b) on the pool: keep only tasks the oracle solves through the real tools
            (slower on first use; the pool is cached).
        python_timeout: Wall-clock seconds a python call may run (environments with the python tool).
        retrieval: How the search tool ranks pages: ``"bm25"`` (default) or ``"hybrid"`` (BM25 fused with dense
            embeddings of all-MiniLM-L6-v2; needs the ``dense`` extra; embeddings are built on first use and cached
            on disk like the BM25 index).
        search_top_k: Search results per query when a call does not give ``top_k`` (default 5; fewer results make
            shorter contexts, which is what a small policy trained on CPU needs).
        search_urls: False leaves URLs out of search results (they cost tokens and only serve a browse tool).
        search_snippet_chars: Clip each search snippet to about this many characters (None: whole snippets).
        **kwargs: Everything :class:`~kimi_env.ToolEnv` takes (``max_turns``, ``protocol``, ``tools``, ...).
    """

    TOOLS: ClassVar[tuple[str, ...]] = ("search", "browse", "python")
    #: required_tools sets a synthesized task may have to be posed by this environment
    ACCEPTS: ClassVar[tuple[frozenset[str], ...]] = ()
    DEFAULT_MAX_TURNS: ClassVar[int] = 12
    registered: ClassVar[bool] = False

    def __init__(
        self,
        *,
        world_seed: int = 0,
        pages: int = 2000,
        corpus: str | os.PathLike | None = None,
        tasks: Any = None,
        split: str | None = "train",
        difficulty: Sequence[int] = (1, 5),
        kinds: Sequence[str] | None = None,
        n_tasks: int = 10000,
        task_seed: int = 0,
        verify: bool = False,
        python_timeout: float = 10.0,
        retrieval: str = "bm25",
        search_top_k: int = 5,
        search_urls: bool = True,
        search_snippet_chars: int | None = None,
        **kwargs: Any,
    ) -> None:
        from kimi_env.tools.search import RETRIEVALS

        if retrieval not in RETRIEVALS:
            raise unknown_name("retrieval", str(retrieval), RETRIEVALS)
        if retrieval == "hybrid":
            from kimi_env.web.dense import require_dense

            require_dense()
        self.retrieval = retrieval
        if isinstance(search_top_k, bool) or not isinstance(search_top_k, int) or not 1 <= search_top_k <= 10:
            raise InvalidArgumentError(f"search_top_k must be an int in [1, 10], got {search_top_k!r}.")
        if search_snippet_chars is not None and (isinstance(search_snippet_chars, bool)
                                                 or not isinstance(search_snippet_chars, int) or search_snippet_chars < 20):
            raise InvalidArgumentError(f"search_snippet_chars must be an int >= 20 or None, got {search_snippet_chars!r}.")
        self.search_top_k, self.search_urls = search_top_k, bool(search_urls)
        self.search_snippet_chars = search_snippet_chars
        if split is not None and split not in SPLITS:
            raise unknown_name("split", str(split), SPLITS)
        lo, hi = difficulty
        if not 1 <= lo <= hi <= 5:
            raise InvalidArgumentError(f"difficulty must be (min, max) with 1 <= min <= max <= 5, got {difficulty!r}.")
        if corpus is not None and tasks is None:
            raise InvalidArgumentError(
                "corpus= was given without tasks=: synthesized tasks are about the generated world, not your pages. "
                "Fix: pass tasks= (a JSONL file or list of question/answers) with your corpus."
            )
        self.world_seed, self.pages, self.split = int(world_seed), int(pages), split
        self.python_timeout = float(python_timeout)
        self._corpus_dir = str(Path(corpus).resolve()) if corpus is not None else None
        self.corpus = get_corpus(self.world_seed, self.pages, self._corpus_dir)
        self._user_tasks = tasks is not None
        if tasks is not None:
            self.task_pool = tuple(load_tasks(tasks))
        else:
            from kimi_env.world.synth import KINDS

            if isinstance(kinds, str):  # "lookup" or "lookup,set" (the command line's comma form)
                kinds = [k.strip() for k in kinds.split(",") if k.strip()]
            if kinds is not None:
                for k in kinds:
                    if k not in KINDS:
                        raise unknown_name("task kind", k, KINDS)
            pool = get_task_pool(self.world_seed, self.pages, int(n_tasks), int(task_seed), bool(verify))
            self.task_pool = tuple(
                t for t in pool
                if (split is None or t.metadata.get("split") == split)
                and lo <= int(t.metadata.get("difficulty", 1)) <= hi
                and (kinds is None or t.metadata.get("kind") in kinds)
                and frozenset(t.metadata.get("required_tools", ())) in self.ACCEPTS
            )
        if not self.task_pool:
            raise InvalidArgumentError(
                f"{type(self).__name__}: no task matches split={split!r}, difficulty={tuple(difficulty)!r}, "
                f"kinds={kinds!r}. Fix: widen the filters or raise n_tasks (now {n_tasks})."
            )
        kwargs.setdefault("max_turns", self.DEFAULT_MAX_TURNS)
        super().__init__(**kwargs)
        if any(t.name == "search" for t in self.tools):
            from kimi_env.web.index import get_index

            get_index(self.corpus)  # load or build it now, not inside the first search call's timeout
            if self.retrieval == "hybrid":
                from kimi_env.web.dense import get_hybrid_index

                get_hybrid_index(self.corpus)

    def _make_tools(self) -> list[Tool]:
        from kimi_env.world.solvable import make_tools

        tools = make_tools(self.TOOLS, self.corpus, self.python_timeout)
        if self.retrieval != "bm25" or self.search_top_k != 5 or not self.search_urls or self.search_snippet_chars:
            from kimi_env.tools.search import SearchTool

            def search() -> SearchTool:
                return SearchTool(self.corpus, retrieval=self.retrieval, default_top_k=self.search_top_k,
                                  show_urls=self.search_urls, snippet_chars=self.search_snippet_chars)

            tools = [search() if t.name == "search" else t for t in tools]
        return tools

    def _sample_task(self) -> Task:
        return self.task_pool[int(self.np_random.integers(len(self.task_pool)))]

    def _task_prompt(self, task: Task) -> str:
        hint = {"list": " Answer with a comma-separated list.", "date": "", "number": "", "text": ""}
        return task.question + hint.get(task.answer_type, "")


_S, _B, _P = "search", "browse", "python"


class SearchQAEnv(WorldQAEnv):
    """Search only: every fact is visible in search results."""

    TOOLS = (_S,)
    ACCEPTS = (frozenset({_S}),)
    DEFAULT_MAX_TURNS = 10
    registered = True


class BrowseQAEnv(WorldQAEnv):
    """Search and browse: facts deep in pages, lists, conflicting sources, long chains."""

    TOOLS = (_S, _B)
    ACCEPTS = (frozenset({_S, _B}),)
    DEFAULT_MAX_TURNS = 16
    registered = True


class CodeQAEnv(WorldQAEnv):
    """Search and python: aggregations over several entities that need computing."""

    TOOLS = (_S, _P)
    ACCEPTS = (frozenset({_S, _P}),)
    DEFAULT_MAX_TURNS = 16
    registered = True


class DeepResearchEnv(WorldQAEnv):
    """Every tool, every task kind: the mixed, long-horizon environment."""

    TOOLS = (_S, _B, _P)
    ACCEPTS = (frozenset({_S}), frozenset({_S, _B}), frozenset({_S, _P}), frozenset({_S, _B, _P}))
    DEFAULT_MAX_TURNS = 24
    registered = True


def describe_pool(env: WorldQAEnv) -> dict[str, Any]:
    """Counts of the env's task pool by kind (for docs and debugging)."""
    from collections import Counter

    return {"tasks": len(env.task_pool),
            "kinds": dict(sorted(Counter(t.metadata.get("kind", "custom") for t in env.task_pool).items()))}
