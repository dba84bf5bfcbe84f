"""Tasks: a question with verifiable answers, and loaders for task files.

A task's answers never reach the agent: :meth:`Task.public` is what an environment puts in ``info["task"]``.
Metadata keys that start with ``_`` are private too (for example a synthesizer's ground-truth derivation), and the
keys in :data:`PRIVILEGED_KEYS` (a synthesized task's hop ``plan``, which is a solution path, and its
``evidence_urls``) are left out of ``info["task"]`` as well: scripted policies such as the oracle read them through
the explicit accessor ``env.unwrapped.privileged_task`` (or :func:`kimi_env.privileged_task`), see
:meth:`Task.privileged`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidArgumentError

ANSWER_TYPES = ("text", "number", "date", "list")
SPLITS = ("train", "validation", "test")
#: metadata a policy does not get by default: the solution path and the pages that hold the answer
PRIVILEGED_KEYS = frozenset({"plan", "evidence_urls"})


def split_of(key: str) -> str:
    """A stable train/validation/test assignment (80/10/10) from a key's SHA-256 (not Python's salted hash).

    >>> [split_of(k) for k in ("a", "b", "e")]
    ['train', 'train', 'test']
    """
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % 10
    return "train" if bucket < 8 else ("validation" if bucket == 8 else "test")


@dataclass(frozen=True)
class Task:
    """One verifiable question.

    Attributes:
        id: Unique, stable identifier.
        question: The text the agent sees.
        answers: Accepted answers; the first is canonical, the rest are aliases.
        answer_type: ``text`` (normalized exact match), ``number`` (numeric match with tolerance), ``date``
            (normalized exact match over date spellings) or ``list`` (set match of comma-separated items).
        metadata: Anything else: ``hops``, ``difficulty``, ``required_tools``, ``evidence_urls``, ``split``,
            ``kind``, ``plan`` (a synthesizer's hop plan, which an oracle may follow). Keys starting with ``_``
            are private and never shown to policies.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    answer_type: str = "text"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.question, str) or not self.question.strip():
            raise InvalidArgumentError(f"Task {self.id!r}: question must be a non-empty string, got {self.question!r}.")
        answers = (self.answers,) if isinstance(self.answers, str) else tuple(self.answers)
        if not answers or not all(isinstance(a, str) for a in answers):
            raise InvalidArgumentError(
                f"Task {self.id!r}: answers must be a non-empty list of strings, got {self.answers!r}. "
                "Fix: pass answers=['canonical', 'alias', ...]."
            )
        object.__setattr__(self, "answers", answers)
        if self.answer_type not in ANSWER_TYPES:
            raise InvalidArgumentError(
                f"Task {self.id!r}: answer_type must be one of {ANSWER_TYPES}, got {self.answer_type!r}."
            )

    @property
    def answer(self) -> str:
        """The canonical answer."""
        return self.answers[0]

    def public(self) -> dict[str, Any]:
        """What a policy may see: everything but the answers, private (``_``) and privileged metadata.

        >>> t = Task("t", "Q?", ("a",), metadata={"kind": "lookup", "plan": [{"op": "lookup"}], "_x": 1})
        >>> t.public()["metadata"], sorted(t.privileged()["metadata"])
        ({'kind': 'lookup'}, ['kind', 'plan'])
        """
        meta = {k: v for k, v in self.metadata.items()
                if not str(k).startswith("_") and k not in PRIVILEGED_KEYS}
        return {"id": self.id, "question": self.question, "answer_type": self.answer_type, "metadata": meta}

    def privileged(self) -> dict[str, Any]:
        """:meth:`public` plus the privileged metadata (:data:`PRIVILEGED_KEYS`), for scripted policies such as the
        oracle; never the answers nor ``_`` keys."""
        meta = {k: v for k, v in self.metadata.items() if not str(k).startswith("_")}
        return {"id": self.id, "question": self.question, "answer_type": self.answer_type, "metadata": meta}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["answers"] = list(self.answers)
        d["metadata"] = dict(self.metadata)
        return d

    @classmethod
    def from_dict(cls, row: Mapping[str, Any], *, default_id: str | None = None) -> Task:
        """Build a task from a dict with ``question`` and ``answers`` (or ``answer``), as in a JSONL task file.

        >>> Task.from_dict({"question": "2+2?", "answer": "4", "answer_type": "number"}, default_id="t0").answers
        ('4',)
        """
        if "question" not in row:
            raise InvalidArgumentError(f"task row has no 'question' (keys: {sorted(row)}). Fix: add a question.")
        answers = row.get("answers", row.get("answer"))
        if answers is None:
            raise InvalidArgumentError(
                f"task row has no 'answers' or 'answer' (keys: {sorted(row)}). Fix: add the ground truth."
            )
        if isinstance(answers, (str, int, float)):
            answers = [str(answers)]
        known = {"id", "question", "answers", "answer", "answer_type", "metadata"}
        raw_meta = row.get("metadata") or {}
        if isinstance(raw_meta, str):  # as stored by tasks_to_dataset
            raw_meta = json.loads(raw_meta)
        metadata = dict(raw_meta)
        metadata.update({k: v for k, v in row.items() if k not in known})
        return cls(
            id=str(row.get("id", default_id if default_id is not None else "")),
            question=str(row["question"]),
            answers=tuple(str(a) for a in answers),
            answer_type=str(row.get("answer_type", "text")),
            metadata=metadata,
        )


def load_tasks(source: str | Path | Iterable[Mapping[str, Any]] | Any) -> list[Task]:
    """Load tasks from a JSONL file, a ``datasets.Dataset`` or any iterable of dicts or Tasks.

    Raises :class:`InvalidArgumentError` naming the file and line of a bad row.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InvalidArgumentError(f"tasks file {str(path)!r} does not exist. Fix: pass a JSONL file path.")
        tasks = []
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise InvalidArgumentError(f"expected a JSON object, got {type(row).__name__}")
                    tasks.append(Task.from_dict(row, default_id=f"{path.stem}-{lineno}"))
                except (ValueError, InvalidArgumentError) as exc:
                    fix = "" if "Fix:" in str(exc) else (
                        " Fix: write each line as one JSON object, e.g. "
                        '{"question": "Who founded Traan Bank?", "answers": ["Zoryve Dashell"]}.'
                    )
                    text = str(exc).rstrip(".")
                    raise InvalidArgumentError(f"{path}:{lineno}: bad task row: {text}.{fix}") from exc
        return tasks
    out = []
    for i, row in enumerate(_iter_rows(source)):
        if not isinstance(row, (Task, Mapping)):
            raise InvalidArgumentError(f"task {i}: expected a dict or a Task, got {type(row).__name__} {row!r:.60}.")
        out.append(row if isinstance(row, Task) else Task.from_dict(row, default_id=f"task-{i}"))
    return out


def _iter_rows(source: Any) -> Iterator[Any]:
    if isinstance(source, Mapping):
        raise InvalidArgumentError("tasks must be a file path, a datasets.Dataset or a list of dicts, got one dict.")
    try:
        yield from source
    except TypeError as exc:
        raise InvalidArgumentError(
            f"tasks must be a JSONL path, a datasets.Dataset or an iterable of dicts, got {type(source).__name__}."
        ) from exc


def save_tasks(tasks: Iterable[Task], path: str | Path) -> None:
    """Write tasks as JSONL (keys sorted, so the same tasks give the same bytes)."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for task in tasks:
            fh.write(json.dumps(task.to_dict(), sort_keys=True, ensure_ascii=False) + "\n")


def tasks_to_dataset(tasks: Iterable[Task]) -> Any:
    """Convert tasks to a ``datasets.Dataset`` (metadata JSON-encoded). Needs the ``datasets`` package."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - depends on install
        raise ImportError("tasks_to_dataset needs `datasets`: pip install 'kimi-env[data]'.") from exc
    rows = [
        {**t.to_dict(), "metadata": json.dumps(dict(t.metadata), sort_keys=True, ensure_ascii=False)} for t in tasks
    ]
    return datasets.Dataset.from_list(rows)
