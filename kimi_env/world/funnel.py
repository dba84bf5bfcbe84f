"""The filtering funnel: every stage reports what it drops.

Stages, in the order they run (cheap to expensive, so that the oracle only sees tasks that survive the rest):

``unique``   (a) the plan, re-executed against the fact graph by :func:`kimi_env.world.plan.execute_plan`, must
             resolve every starting name to exactly one entity, meet no unnamed source conflict, give a non-empty
             set and no tie, and reproduce the task's canonical answer.
``dedup``    (d) near-duplicate questions: same normalized text, or same template + same starting entities.
``trivial``  (c) a no-tool baseline ``baseline(tasks) -> list[bool]`` (True = answered correctly without tools)
             drops what it gets right. Default: :func:`no_tool_baseline`: the guess of
             :class:`~kimi_env.policies.NoToolPolicy` and a stronger question-reading guess
             (:func:`heuristic_guess`), both graded by the environments' own scorer
             (:func:`kimi_env.rewards.score_answer`), so no surviving task is solved by the no-tool policy.
             Choice tasks (a comparison between the options the question names) are exempt: any blind guess has
             their floor (1/number of options), and dropping the ones a guesser hits would skew the answer
             position; instead their positions are balanced (below) and ``metadata["guess_floor"]`` says the floor.
             ``baseline=None`` skips the stage (reported as skipped).
``split``    every entity of the world gets a split (train/validation/test) from a hash of (world seed, entity
             id); a task keeps the split of its starting entities and is dropped when they disagree.
``solvable`` (b) ``solvable(tasks) -> list[bool]`` (the oracle agent through the real tools); default None =
             skipped and reported as ``skipped``, never as passed.
``balance``  choice tasks alternate, within each split, between the answer named first and named second (the
             question and plan are rewritten with the options swapped), so "always pick the first/second option"
             scores the floor and nothing more.

The report (:class:`FunnelReport`) also gives, per task kind, the count, the mean guessing floor and the pass@1 of
the no-tool policy on the survivors (``report.kinds``), so a learning figure can be read against its floor.

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

from ..rewards import score_answer
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

    Comparisons: the first name (choice tasks are exempt from the stage anyway). "Which city/where" questions: the
    distinctive part of the named entity ("University of Moncara" -> "Moncara"). Year questions: a year in the
    question, else 1970. Other numbers: 1. Otherwise the first name in the question.
    """
    q = task.question
    plan = task.metadata.get("plan") or []
    names = [s.get("entity") for s in plan if isinstance(s.get("entity"), str) and not s["entity"].startswith("$")]
    last = plan[-1] if plan else {}
    if last.get("op") == "compare":
        return last["names"][0]
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
    """The former default: :func:`heuristic_guess` graded by :func:`is_correct` (kept for comparison)."""
    return [is_correct(heuristic_guess(t), t) for t in tasks]


def _score(guess: str, task: Task) -> float:
    return score_answer(guess, task.answers, task.answer_type, rel_tol=float(task.metadata.get("rel_tol", 1e-4)))


def no_tool_guess(task: Task) -> str:
    """What :class:`~kimi_env.policies.NoToolPolicy` answers for ``task`` (it reads the question only)."""
    from ..policies.baselines import guess_from_question

    return guess_from_question(task.question, task.answer_type)


def choice_options(task: Task) -> list[str] | None:
    """The options a choice task's question names (a comparison's names), else None."""
    plan = task.metadata.get("plan") or []
    last = plan[-1] if plan else {}
    if last.get("op") == "compare" and isinstance(last.get("names"), list) and len(last["names"]) >= 2:
        return list(last["names"])
    return None


def guess_floor(task: Task) -> float:
    """The pass rate of a blind guess: 1/number of options for a choice task, else 0."""
    options = choice_options(task)
    return 1.0 / len(options) if options else 0.0


def no_tool_baseline(tasks: list[Task]) -> list[bool]:
    """The default stage-(c) baseline: True when the no-tool policy's guess or :func:`heuristic_guess` is right
    under :func:`~kimi_env.rewards.score_answer`. Choice tasks are never dropped (see the module docstring)."""
    out = []
    for t in tasks:
        if choice_options(t) is not None:
            out.append(False)
            continue
        out.append(any(_score(g, t) >= 1.0 for g in (no_tool_guess(t), heuristic_guess(t))))
    return out


def swap_choice(world: World, task: Task) -> Task | None:
    """The same two-way comparison with its options named in the other order (question, plan, id), or None when
    the task does not have the shape comparisons are synthesized with."""
    options = choice_options(task)
    plan = [dict(step) for step in task.metadata.get("plan") or []]
    if options is None or len(options) != 2 or len(plan) < 3:
        return None
    a, b = options
    if plan[0].get("entity") != a or plan[1].get("entity") != b:
        return None
    q = task.question
    for qa, qb in ((f'"{a}"', f'"{b}"'), (a, b), (f"{a}'s", f"{b}'s")):
        suffix = f"{qa} or {qb}?"
        if q.endswith(suffix):
            question = q[: -len(suffix)] + f"{qb} or {qa}?"
            break
    else:
        return None
    plan[0], plan[1] = plan[1], plan[0]
    plan[-1]["names"] = [b, a]
    digest = hashlib.sha256(f"{world.seed}|{len(world)}|{question}".encode()).hexdigest()[:12]
    meta = {**task.metadata, "plan": plan}
    if isinstance(meta.get("evidence_urls"), list) and len(meta["evidence_urls"]) >= 2:
        urls = list(meta["evidence_urls"])
        urls[0], urls[1] = urls[1], urls[0]
        meta["evidence_urls"] = urls
    return Task(f"kw{world.seed}-{digest}", question, task.answers, task.answer_type, meta)


def balance_choices(world: World, tasks: list[Task]) -> tuple[list[Task], dict[str, int]]:
    """Within each split, the k-th choice task gets its answer named first when k is even, second when odd."""
    counters: dict[str, int] = {}
    out, reasons = [], {"swapped": 0, "unswappable": 0}
    for t in tasks:
        options = choice_options(t)
        if options is None or len(options) != 2:
            out.append(t)
            continue
        split = str(t.metadata.get("split"))
        k = counters.get(split, 0)
        counters[split] = k + 1
        want_first = k % 2 == 0
        if (normalize(options[0]) == normalize(t.answers[0])) != want_first:
            swapped = swap_choice(world, t)
            if swapped is None:
                reasons["unswappable"] += 1
            else:
                t = swapped
                reasons["swapped"] += 1
        out.append(t)
    return out, reasons


def kind_floors(tasks: Sequence[Task]) -> dict[str, dict[str, float]]:
    """Per task kind: ``tasks``, mean ``guess_floor`` and the no-tool policy's ``no_tool_pass@1``."""
    out: dict[str, dict[str, float]] = {}
    for t in tasks:
        k = str(t.metadata.get("kind", "custom"))
        row = out.setdefault(k, {"tasks": 0, "guess_floor": 0.0, "no_tool_pass@1": 0.0})
        row["tasks"] += 1
        row["guess_floor"] += guess_floor(t)
        row["no_tool_pass@1"] += _score(no_tool_guess(t), t) >= 1.0
    for row in out.values():
        row["guess_floor"] = round(row["guess_floor"] / row["tasks"], 4)
        row["no_tool_pass@1"] = round(row["no_tool_pass@1"] / row["tasks"], 4)
    return dict(sorted(out.items()))


@dataclass
class FunnelReport:
    """Counts per stage (``name``, ``status`` ran|skipped, ``in``, ``dropped``, ``out``, ``reasons``) and the
    final counts per split."""

    stages: list[dict[str, Any]] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)
    candidates: int = 0
    kinds: dict[str, dict[str, float]] = field(default_factory=dict)

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
        for kind, row in self.kinds.items():
            out.append(f"kind {kind:<16} tasks {int(row['tasks']):>6}  guess floor {row['guess_floor']:.2f}  "
                       f"no-tool pass@1 {row['no_tool_pass@1']:.3f}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"candidates": self.candidates, "stages": self.stages, "splits": self.splits, "kinds": self.kinds}


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
    baseline: Callback | None | str = "no-tool",
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
    fn = {"no-tool": no_tool_baseline, "heuristic": heuristic_baseline}.get(baseline, baseline) \
        if isinstance(baseline, str) else baseline
    if isinstance(fn, str):
        from ..errors import unknown_name

        raise unknown_name("baseline", fn, ("no-tool", "heuristic"))
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
    kept, reasons = balance_choices(world, kept)
    rep.add("balance", len(kept), 0, reasons)
    kept = [Task(t.id, t.question, t.answers, t.answer_type, {**t.metadata, "guess_floor": guess_floor(t)})
            for t in kept]
    rep.kinds = kind_floors(kept)
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
    baseline: Callback | None | str = "no-tool",
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
    rep.kinds = kind_floors(kept)
    rep.stages.append(
        {"name": "output", "status": "ran", "in": len(kept), "dropped": 0, "out": len(kept), "reasons": {}}
    )
    if log:
        for line in rep.lines():
            log(line)
    return kept, rep


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)
