"""Loaders for local files of common agent benchmarks, into :class:`~kimi_env.tasks.Task` lists.

Nothing here downloads: point a loader at a file you have (CSV, TSV, JSON, JSONL or Parquet).

| format | columns read | notes |
|---|---|---|
| ``hle`` | ``id``, ``question``, ``answer``, ``answer_type``, ``category`` | rows with an ``image`` are skipped (text-only env) |
| ``frames`` | ``Prompt``, ``Answer``, ``wikipedia_link_*``, ``reasoning_types`` | links go to ``metadata["evidence_urls"]`` |
| ``simpleqa`` | ``problem``, ``answer``, ``metadata`` | |
| ``xbench`` | ``id``, ``prompt``, ``answer``, ``canary`` | encrypted fields are decrypted with the row's canary |
| ``qa`` | ``question``, ``answer``/``answers`` | any plain question/answer file |
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import InvalidArgumentError, unknown_name
from .tasks import Task, load_tasks


def read_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a CSV, TSV, JSON (a list of objects), JSONL or Parquet file."""
    path = Path(path)
    if not path.is_file():
        raise InvalidArgumentError(f"benchmark file {str(path)!r} does not exist. Fix: pass the path of a local file.")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        csv.field_size_limit(1 << 27)
        with path.open(encoding="utf-8-sig", newline="") as fh:
            yield from csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
    elif suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as exc:
                        raise InvalidArgumentError(f"{path}:{lineno}: invalid JSON ({exc}).") from exc
    elif suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        yield from data
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise InvalidArgumentError("reading Parquet needs pyarrow: pip install 'kimi-env[data]'.") from exc
        yield from pq.read_table(path).to_pylist()
    else:
        raise InvalidArgumentError(
            f"cannot read {path.name!r}: expected a .csv, .tsv, .json, .jsonl or .parquet file, got {suffix or 'no suffix'!r}."
        )


def xor_decrypt(ciphertext_b64: str, key: str) -> str:
    """Decrypt xbench's base64 XOR encoding (cyclic key = the row's canary string).

    >>> enc = base64.b64encode(bytes(a ^ b for a, b in zip(b"secret", b"keykey"))).decode()
    >>> xor_decrypt(enc, "key")
    'secret'
    """
    data = base64.b64decode(ciphertext_b64)
    kb = key.encode("utf-8")
    return bytes(b ^ kb[i % len(kb)] for i, b in enumerate(data)).decode("utf-8")


def _maybe_decrypt(value: str, canary: str | None) -> str:
    if not canary or not value:
        return value
    try:
        base64.b64decode(value, validate=True)  # only strict base64 can be ciphertext
        return xor_decrypt(value, canary)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return value  # already plain text


def _row_hle(row: dict[str, Any], i: int) -> Task | None:
    if row.get("image"):
        return None
    kind = str(row.get("answer_type", ""))
    return Task(id=str(row.get("id", f"hle-{i}")), question=str(row["question"]), answers=(str(row["answer"]),),
                metadata={"source": "hle", "hle_answer_type": kind, "category": row.get("category")})


def _row_frames(row: dict[str, Any], i: int) -> Task:
    links = [v for k, v in sorted(row.items()) if str(k).startswith("wikipedia_link") and v]
    return Task(id=f"frames-{row.get('Unnamed: 0', row.get('', i))}", question=str(row["Prompt"]),
                answers=(str(row["Answer"]),),
                metadata={"source": "frames", "evidence_urls": links, "reasoning_types": row.get("reasoning_types")})


def _row_simpleqa(row: dict[str, Any], i: int) -> Task:
    return Task(id=f"simpleqa-{i}", question=str(row["problem"]), answers=(str(row["answer"]),),
                metadata={"source": "simpleqa", "info": row.get("metadata")})


def _row_xbench(row: dict[str, Any], i: int) -> Task:
    canary = row.get("canary")
    return Task(id=f"xbench-{row.get('id', i)}", question=_maybe_decrypt(str(row["prompt"]), canary),
                answers=(_maybe_decrypt(str(row["answer"]), canary),), metadata={"source": "xbench-deepsearch"})


_FORMATS: dict[str, Callable[[dict[str, Any], int], Task | None]] = {
    "hle": _row_hle,
    "frames": _row_frames,
    "simpleqa": _row_simpleqa,
    "xbench": _row_xbench,
}


def load_benchmark(path: str | Path, format: str = "qa") -> list[Task]:
    """Load a local benchmark file as tasks. ``format`` is one of ``hle``, ``frames``, ``simpleqa``, ``xbench``,
    ``qa`` (generic question/answer rows)."""
    if format == "qa":
        return load_tasks(list(read_rows(path)))
    if format not in _FORMATS:
        raise unknown_name("benchmark format", format, [*_FORMATS, "qa"])
    convert = _FORMATS[format]
    tasks = []
    for i, row in enumerate(read_rows(path)):
        try:
            task = convert(row, i)
        except KeyError as exc:
            raise InvalidArgumentError(
                f"{path}: row {i} has no column {exc} expected by format {format!r} (columns: {sorted(row)})."
            ) from exc
        if task is not None:
            tasks.append(task)
    return tasks
