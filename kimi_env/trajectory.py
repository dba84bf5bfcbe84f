"""The trajectory record: one typed episode, from rollout to loss.

A :class:`Trajectory` holds every turn of one episode exactly as the policy produced it. For language-model policies
each :class:`TurnRecord` carries the token ids of the exact context the model conditioned on (``prompt_ids``), the
token ids it sampled (``completion_ids``) and their log-probabilities under the sampling distribution
(``logprobs``). Nothing downstream re-derives tokens from text: the trainer computes its loss on these ids.

When the context is append-only (no context management), turn ``i+1``'s ``prompt_ids`` start with turn ``i``'s
``prompt_ids + completion_ids`` and the whole episode is one training sequence (``append_only=True``). When context
management rewrote the history (older tool outputs replaced by stubs), each turn is its own training sample, its
prompt as seen and its action as sampled (``append_only=False``).

Trajectories stream to JSONL, one episode a line (:class:`TrajectoryWriter`, flushed as each episode ends), with
stable field names so other tools can read them: ``turns[i].prompt_ids``, ``turns[i].completion_ids``,
``turns[i].logprobs``, ``turns[i].action``, ``turns[i].observation``, ``reward``, ``task_id``, ``model``.
:func:`read_trajectories` reads them back and names the line of a truncated or hand-edited file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any

from .errors import KimiEnvError

FORMAT = "kimi-env/trajectory-v1"


class TrajectoryFormatError(KimiEnvError, ValueError):
    """A trajectory file line that is not a valid record (names the file, the line and what is wrong)."""


@dataclass
class TurnRecord:
    """One policy turn. Token fields are empty for policies that produce text only (oracle, scripted, remote)."""

    action: str
    observation: str = ""
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    #: why generation stopped: "stop" (a stop string or end-of-turn token), "length" (token budget), "" (text policy)
    stop_reason: str = ""
    tool_calls: dict[str, int] = field(default_factory=dict)
    generate_s: float = 0.0
    env_s: float = 0.0

    def __post_init__(self) -> None:
        if self.logprobs and len(self.logprobs) != len(self.completion_ids):
            raise TrajectoryFormatError(
                f"a turn has {len(self.completion_ids)} completion_ids but {len(self.logprobs)} logprobs; "
                "they must pair one to one."
            )


@dataclass
class Trajectory:
    """One episode. ``reward`` is the environment's final reward (its own rule: correctness, or the format penalty).

    ``error`` is set when the episode crashed (a policy that raised, a timeout): such episodes are logged and the
    trainer excludes them; they are never silently counted as a zero.
    """

    task_id: str | None
    question: str = ""
    env_id: str = ""
    model: str = ""
    policy: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)
    turns: list[TurnRecord] = field(default_factory=list)
    reward: float = 0.0
    reward_breakdown: dict[str, Any] = field(default_factory=dict)
    end_reason: str | None = None
    terminated: bool = False
    truncated: bool = False
    format_errors: int = 0
    answer: str | None = None
    answers: list[str] = field(default_factory=list)
    kind: str | None = None
    hops: int | None = None
    tool_calls: dict[str, int] = field(default_factory=dict)
    urls_visited: list[str] = field(default_factory=list)
    append_only: bool = True
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    seed: int | None = None
    episode_id: str = ""
    error: str | None = None
    #: the public task as the policy saw it (``info["task"]`` at reset: no answers, no privileged data)
    task: dict[str, Any] | None = None
    #: the reset observation (system prompt and question as rendered)
    prompt: str = ""
    #: free-form extras (e.g. the trainer's step, a partial rollout's pause count)
    extra: dict[str, Any] = field(default_factory=dict)
    #: the environment's final ``info`` (in memory only; not written to JSONL)
    info: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    @property
    def success(self) -> bool:
        return self.error is None and self.reward >= 1.0

    # ------------------------------------------------------------------ (de)serialization
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("info", None)
        d["format"] = FORMAT
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "record") -> Trajectory:
        if not isinstance(d, dict):
            raise TrajectoryFormatError(f"{where}: expected a JSON object, got {type(d).__name__}.")
        fmt = d.get("format", FORMAT)
        if fmt != FORMAT:
            raise TrajectoryFormatError(f"{where}: unknown format {fmt!r}; expected {FORMAT!r}.")
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("task_id", "turns", "reward") if k not in d]
        if missing:
            raise TrajectoryFormatError(f"{where}: missing field(s) {', '.join(missing)}.")
        if not isinstance(d["turns"], list):
            raise TrajectoryFormatError(f"{where}: 'turns' must be a list, got {type(d['turns']).__name__}.")
        turn_fields = {f.name for f in fields(TurnRecord)}
        turns = []
        for i, t in enumerate(d["turns"]):
            if not isinstance(t, dict) or "action" not in t:
                raise TrajectoryFormatError(f"{where}: turns[{i}] must be an object with an 'action'.")
            for key in ("prompt_ids", "completion_ids"):
                ids = t.get(key, [])
                if not isinstance(ids, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in ids):
                    raise TrajectoryFormatError(f"{where}: turns[{i}].{key} must be a list of integers.")
            try:
                turns.append(TurnRecord(**{k: v for k, v in t.items() if k in turn_fields}))
            except (TypeError, TrajectoryFormatError) as exc:
                raise TrajectoryFormatError(f"{where}: turns[{i}]: {exc}") from None
        if not isinstance(d["reward"], (int, float)) or isinstance(d["reward"], bool):
            raise TrajectoryFormatError(f"{where}: 'reward' must be a number, got {d['reward']!r}.")
        kwargs = {k: v for k, v in d.items() if k in known and k not in ("turns", "info")}
        return cls(turns=turns, **kwargs)


class TrajectoryWriter:
    """Append trajectories to a JSONL file, one episode a line, flushed and fsynced as each is written, so a crash
    loses only the episodes still in flight."""

    def __init__(self, path: str | os.PathLike, *, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = self.path.open("a" if append else "w", encoding="utf-8")
        self.written = 0

    def write(self, traj: Trajectory) -> None:
        if self._fh is None:
            raise KimiEnvError(f"TrajectoryWriter for {self.path} is closed.")
        self._fh.write(traj.to_json() + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.written += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def iter_trajectories(path: str | os.PathLike) -> Iterator[Trajectory]:
    """Yield the trajectories of a JSONL file; a bad line raises :class:`TrajectoryFormatError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise TrajectoryFormatError(f"{path}: no such trajectory file.")
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                d = json.loads(line)
            except ValueError as exc:
                hint = " (the file looks truncated: the last episode was cut off)" if not line.endswith("\n") else ""
                raise TrajectoryFormatError(f"{where}: not valid JSON ({exc.msg}){hint}. "
                                            "Fix: remove or repair that line.") from None
            yield Trajectory.from_dict(d, where=where)


def read_trajectories(path: str | os.PathLike) -> list[Trajectory]:
    return list(iter_trajectories(path))
