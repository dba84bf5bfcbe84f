"""The filtering funnel: every stage reports what it drops.

Stages, in the order they run (cheap to expensive, so that the oracle only sees tasks that survive the rest):

``unique``   (a) the plan, re-executed against the fact graph by :func:`kimi_env.world.plan.execute_plan`, must
             resolve every starting name to exactly one entity, meet no unnamed source conflict, give a non-empty
             set and no tie, and reproduce the task's canonical answer.
``dedup``    (d) near-duplicate questions: same normalized text, or same template + same starting entities.
``trivial``  (c) a no-tool baseline ``baseline(tasks) -> list[bool]`` (True = answered correctly without tools)
             drops what it gets right. Default: :func:`heuristic_baseline`, a guesser that reads the question
             only. ``baseline=None`` skips the stage (reported as skipped).
``split``    every entity of the world gets a split (train/validation/test) from a hash of (world seed, entity
             id); a task keeps the split of its starting entities and is dropped when they disagree.
``solvable`` (b) ``solvable(tasks) -> list[bool]`` (the oracle agent through the real tools); default None =
             skipped and reported as ``skipped``, never as passed.

>>> from kimi_env.world import generate_world
>>> w = generate_world(seed=0, n_pages=400)
>>> tasks, report = build_tasks(w, 30, seed=0, log=None)
>>> len(tasks) == 30 and [s["status"] for s in report.stages if s["name"] == "solvable"] == ["skipped"]
True
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..tasks import Task
from . import names as N
from .model import World
from .plan import PlanError, execute_plan, format_result
from .synth import synthesize

SPLITS = ("train", "validation", "test")
Callback = Callable[[list[Task]], Sequence[bool]]


def entity_split(world_seed: int, entity_id: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> str:
    """The split of one entity: a hash of (world seed, entity id), independent of ``PYTHONHASHSEED``.

    >>> entity_split(0, "E0000001") in SPLITS
    True
    """
    h = int.from_bytes(hashlib.sha256(f"split:{world_seed}:{entity_id}".encode()).digest()[:8], "big") / 2**64
    if h < fractions[0]:
        return "train"
    if h < fractions[0] + fractions[1]:
        return "validation"
    return "test"


def normalize(text: str) -> str:
    """Lowercase, drop punctuation and a leading article, collapse spaces.

    >>> normalize("  The Glass, Orchard! ")
    'glass orchard'
    """
    t = re.sub(r"[^\w\s%.-]", " ", text.lower())
    t = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", t)
    t = re.sub(r"\s+", " ", t).strip()
    return re.sub(r"^(the|a|an) ", "", t)


def is_correct(guess: str, task: Task) -> bool:
    """Loose grading used by the built-in baseline: normalized text match, or numeric equality."""
    g = normalize(guess)
    for a in task.answers:
        if g == normalize(a):
            return True
        try:
            if math.isclose(float(guess.replace(",", "")), float(a.replace(",", "")), rel_tol=1e-9, abs_tol=1e-9):
                return True
        except ValueError:
            pass
    if task.answer_type == "list":
        gs = sorted(normalize(x) for x in guess.split(","))
        return gs == sorted(normalize(x) for x in task.answers[0].split(","))
    return False


_GENERIC = {
    w.lower()
    for w in (
        *N.SOCIETY_WORDS,
        *N.SOCIETY_TOPICS,
        *N.ADJECTIVES,
        *N.NOUNS,
        *N.EVENT_WORDS,
        *(w for ws in N.COMPANY_WORDS.values() for w in ws),
        "University",
        "of",
        "Institute",
        "Technology",
        "Polytechnic",
        "College",
        "the",
    )
}


def heuristic_guess(task: Task) -> str:
    """A no-tool guess from the question text alone (the plan names only what the question names).

    Comparisons: one of the two names, by a coin seeded with the question. "Which city/where" questions: the
    distinctive part of the named entity ("University of Moncara" -> "Moncara"). Year questions: a year in the
    question, else 1970. Other numbers: 1. Otherwise the first name in the question.
    """
    q = task.question
    plan = task.metadata.get("plan") or []
    names = [s.get("entity") for s in plan if isinstance(s.get("entity"), str) and not s["entity"].startswith("$")]
    last = plan[-1] if plan else {}
    if last.get("op") == "compare":
        coin = hashlib.sha256(q.encode()).digest()[0] & 1
        return last["names"][coin]
    if re.search(r"\b(which city|in which city|where)\b", q, re.IGNORECASE) and names:
        rest = [w for w in names[0].split() if w.lower() not in _GENERIC]
        return " ".join(rest) or names[0]
    if re.search(r"\bwhat year\b", q, re.IGNORECASE):
        years = re.findall(r"\b(1[5-9]\d\d|20\d\d)\b", q)
        return years[0] if years else "1970"
    if task.answer_type == "number":
        return "1"
    return names[0] if names else ""


def heuristic_baseline(tasks: list[Task]) -> list[bool]:
    """The default no-tool baseline: :func:`heuristic_guess` graded by :func:`is_correct`."""
    return [is_correct(heuristic_guess(t), t) for t in tasks]


@dataclass
class FunnelReport:
    """Counts per stage (``name``, ``status`` ran|skipped, ``in``, ``dropped``, ``out``, ``reasons``) and the
    final counts per split."""

    stages: list[dict[str, Any]] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)
    candidates: int = 0

    def add(
        self, name: str, n_in: int, dropped: int, reasons: dict[str, int] | None = None, status: str = "ran"
    ) -> None:
        self.stages.append(
            {
                "name": name,
                "status": status,
                "in": n_in,
                "dropped": dropped,
                "out": n_in - dropped,
                "reasons": dict(sorted((reasons or {}).items())),
            }
        )

    def lines(self) -> list[str]:
        out = [f"candidates: {self.candidates}"]
        for s in self.stages:
            if s["status"] == "skipped":
                out.append(f"{s['name']:<9} skipped (no callback)  kept {s['out']}")
                continue
            why = ", ".join(f"{k}={v}" for k, v in s["reasons"].items())
            out.append(
                f"{s['name']:<9} in {s['in']:>6}  dropped {s['dropped']:>6}  kept {s['out']:>6}"
                + (f"  ({why})" if why else "")
            )
        out.append("splits: " + ", ".join(f"{k}={v}" for k, v in self.splits.items()))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"candidates": self.candidates, "stages": self.stages, "splits": self.splits}


def check_unique(world: World, task: Task) -> str | None:
    """None when the plan re-derives the canonical answer uniquely, else the reason tag."""
    try:
        got = format_result(execute_plan(world, list(task.metadata["plan"])))
    except PlanError as exc:
        return exc.reason
    return None if got == task.answers[0] else "answer_mismatch"


def run_funnel(
    world: World,
    tasks: list[Task],
    *,
    solvable: Callback | None = None,
    baseline: Callback | None | str = "heuristic",
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    report: FunnelReport | None = None,
) -> tuple[list[Task], FunnelReport]:
    """Run the stages over ``tasks``; return the survivors (with ``split`` set in metadata) and the report."""
    rep = report or FunnelReport()
    rep.candidates = len(tasks)
    # (a) unique answer in the world graph
    kept, reasons = [], {}
    for t in tasks:
        why = check_unique(world, t)
        if why is None:
            kept.append(t)
        else:
            reasons[why] = reasons.get(why, 0) + 1
    rep.add("unique", len(tasks), len(tasks) - len(kept), reasons)
    # (d) near duplicates
    seen_text: set[str] = set()
    seen_sig: set[str] = set()
    out, reasons = [], {}
    for t in kept:
        text = normalize(t.question)
        sig = t.metadata.get("_signature", "")
        if text in seen_text:
            reasons["same_text"] = reasons.get("same_text", 0) + 1
        elif sig and sig in seen_sig:
            reasons["same_template_entities"] = reasons.get("same_template_entities", 0) + 1
        else:
            seen_text.add(text)
            seen_sig.add(sig)
            out.append(t)
    rep.add("dedup", len(kept), len(kept) - len(out), reasons)
    kept = out
    # (c) not trivial
    fn = heuristic_baseline if baseline == "heuristic" else baseline
    if fn is None:
        rep.add("trivial", len(kept), 0, status="skipped")
    else:
        solved = list(fn(kept))
        if len(solved) != len(kept):
            raise ValueError(f"baseline returned {len(solved)} results for {len(kept)} tasks")
        reasons = {}
        out = []
        for t, ok in zip(kept, solved):
            if ok:
                k = t.metadata["kind"]
                reasons[k] = reasons.get(k, 0) + 1
            else:
                out.append(t)
        rep.add("trivial", len(kept), len(kept) - len(out), reasons)
        kept = out
    # splits by entity
    out, reasons = [], {}
    for t in kept:
        splits = {entity_split(world.seed, eid, fractions) for eid in t.metadata["_start_ids"]}
        if len(splits) != 1:
            reasons["entities_span_splits"] = reasons.get("entities_span_splits", 0) + 1
            continue
        out.append(Task(t.id, t.question, t.answers, t.answer_type, {**t.metadata, "split": splits.pop()}))
    rep.add("split", len(kept), len(kept) - len(out), reasons)
    kept = out
    # (b) solvable by the oracle
    if solvable is None:
        rep.add("solvable", len(kept), 0, status="skipped")
    else:
        ok = list(solvable(kept))
        if len(ok) != len(kept):
            raise ValueError(f"solvable returned {len(ok)} results for {len(kept)} tasks")
        out = [t for t, good in zip(kept, ok) if good]
        rep.add("solvable", len(kept), len(kept) - len(out), {"unsolved": len(kept) - len(out)})
        kept = out
    rep.splits = {s: sum(t.metadata["split"] == s for t in kept) for s in SPLITS}
    return kept, rep


def build_tasks(
    world: World,
    n: int,
    seed: int = 0,
    *,
    kinds: Sequence[str] | None = None,
    split: str | None = None,
    solvable: Callback | None = None,
    baseline: Callback | None | str = "heuristic",
    log: Callable[[str], Any] | None = print,
    max_rounds: int = 4,
) -> tuple[list[Task], FunnelReport]:
    """Synthesize candidates and filter them until ``n`` tasks survive (or ``max_rounds`` rounds pass).

    Candidates are drawn in index order, so the output is the first ``n`` survivors of one deterministic stream.
    ``split`` keeps only that split. ``solvable`` results are cached by task id across rounds.
    """
    if split is not None and split not in SPLITS:
        from ..errors import unknown_name

        raise unknown_name("split", split, SPLITS)
    cache: dict[str, bool] = {}

    def cached(tasks: list[Task]) -> list[bool]:
        todo = [t for t in tasks if t.id not in cache]
        if todo:
            for t, ok in zip(todo, solvable(todo)):  # type: ignore[misc]
                cache[t.id] = bool(ok)
        return [cache[t.id] for t in tasks]

    candidates: list[Task] = []
    drawn = 0
    want = max(1, math.ceil(n * 1.6))
    kept: list[Task] = []
    rep = FunnelReport()
    for _ in range(max_rounds):
        candidates += synthesize(world, want, seed, start=drawn, kinds=kinds)
        drawn += want
        kept, rep = run_funnel(world, candidates, solvable=cached if solvable else None, baseline=baseline)
        if split:
            kept = [t for t in kept if t.metadata["split"] == split]
        if len(kept) >= n:
            break
        rate = max(len(kept), 1) / drawn
        want = max(16, math.ceil((n - len(kept)) / rate * 1.3))
    kept = kept[:n]
    rep.splits = {s: sum(t.metadata["split"] == s for t in kept) for s in SPLITS}
    rep.stages.append(
        {"name": "output", "status": "ran", "in": len(kept), "dropped": 0, "out": len(kept), "reasons": {}}
    )
    if log:
        for line in rep.lines():
            log(line)
    return kept, rep


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)
