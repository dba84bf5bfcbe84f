"""Task synthesis, plans and the funnel."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from kimi_env.errors import UnknownNameError
from kimi_env.tasks import Task, load_tasks
from kimi_env.world import generate_world
from kimi_env.world.cli import register
from kimi_env.world.funnel import (
    SPLITS,
    build_tasks,
    check_unique,
    entity_split,
    heuristic_baseline,
    heuristic_guess,
    no_tool_baseline,
    run_funnel,
)
from kimi_env.world.plan import Num, Ref, execute_plan, plan_entity_names, run_plan
from kimi_env.world.synth import KINDS, Synthesizer, synthesize

TOOLS = {"search", "browse", "python"}


@pytest.fixture(scope="module")
def world():
    return generate_world(seed=0, n_pages=2000)


@pytest.fixture(scope="module")
def built(world):
    return build_tasks(world, 1500, seed=0, log=None)


@pytest.fixture(scope="module")
def tasks(built):
    return built[0]


def test_all_kinds_and_metadata(tasks):
    assert len(tasks) == 1500
    assert {t.metadata["kind"] for t in tasks} == set(KINDS)
    assert len({t.id for t in tasks}) == len(tasks)
    for t in tasks:
        m = t.metadata
        assert set(m["required_tools"]) <= TOOLS and "search" in m["required_tools"]
        assert 1 <= m["difficulty"] <= 5 and m["hops"] >= 1
        assert m["split"] in SPLITS and m["evidence_urls"] and m["plan"]
        assert set(m["evidence_urls"]) <= set(m["_evidence_urls"])
        if m["kind"] == "multihop":
            assert 2 <= m["hops"] <= 5
        if m["kind"] == "browse_only":
            assert "browse" in m["required_tools"] and any(s.get("deep") for s in m["plan"])
        if m["kind"] in ("arithmetic", "aggregation") and m["plan"][-1]["op"] in ("sum", "mean", "growth"):
            assert "python" in m["required_tools"]
        if m["kind"] == "set":
            assert t.answer_type == "list"
    assert max(t.metadata["hops"] for t in tasks) == 5


def test_every_plan_rederives_its_answer(world, tasks):
    for t in tasks:
        assert run_plan(world, t.metadata["plan"]) == t.answer, t.question


def test_plans_hide_answers_and_intermediates(world, tasks):
    for t in tasks:
        plan = t.metadata["plan"]
        trace: list = []
        execute_plan(world, plan, trace)
        plan_text = json.dumps(plan, ensure_ascii=False)
        for name in plan_entity_names(plan):
            assert name in t.question, (name, t.question)
        for step in plan:
            if "value" in step:
                v = step["value"]
                assert str(v) in t.question or (isinstance(v, int) and f"{v:,}" in t.question)
        for r in trace:
            vals = r if isinstance(r, list) else [r]
            for v in vals:
                shown = v.name if isinstance(v, Ref) else (None if isinstance(v, (Num, int, float)) else str(v))
                if shown and shown not in t.question:
                    assert f'"{shown}"' not in plan_text, (shown, t.question)


def _leaks(text: str, answer: str) -> bool:
    return re.search(r"(?<![\w,.])" + re.escape(answer) + r"(?![\w,]|\.\d)", text) is not None


def test_no_answer_leak_in_question_or_public(tasks):
    for t in tasks:
        pub = t.public()
        public = json.dumps(pub, ensure_ascii=False)
        # small integers legitimately occur as hop counts, difficulty and step references; mask those
        masked = {**pub, "metadata": {k: v for k, v in pub["metadata"].items() if k not in ("hops", "difficulty")}}
        masked_text = re.sub(r"\$\d+", "$k", json.dumps(masked, ensure_ascii=False))
        assert "answers" not in t.public() and not any(k.startswith("_") for k in t.public()["metadata"])
        if t.metadata["kind"] == "comparison":
            names = t.metadata["plan"][-1]["names"]
            rest = public.replace(json.dumps(t.question, ensure_ascii=False), "").replace("_", " ")
            assert rest.count(names[0]) == rest.count(names[1])  # nothing singles out the winner
            continue
        items = t.answer.split(", ") if t.answer_type == "list" else list(t.answers)
        for a in items:
            assert not _leaks(t.question, a), (a, t.question)
            assert not _leaks(masked_text, a), (a, t.question)


def test_answers_have_aliases(tasks):
    dates = [t for t in tasks if t.answer_type == "date" and "-" in t.answers[-1]]
    assert dates
    for t in dates:
        assert len(t.answers) == 3 and re.fullmatch(r"\d{4}-\d\d-\d\d", t.answers[2])
    big = [t for t in tasks if t.answer_type == "number" and re.fullmatch(r"-?\d{4,}", t.answer)]
    assert big
    for t in big:
        assert any("," in a for a in t.answers)
    lists = [t for t in tasks if t.answer_type == "list" and ", " in t.answer]
    assert lists and all(len(t.answers) == 2 and " and " in t.answers[1] for t in lists)


def test_surname_alias_only_when_unambiguous(world, tasks):
    syn = Synthesizer(world)
    for t in tasks:
        if t.answer_type != "text" or len(t.answers) < 2 or t.answers[1].startswith("the "):
            continue
        surname = t.answers[1]
        people = [e for e in world.entities if e.etype == "person" and e.name.split()[-1] == surname]
        assert len(people) == 1 and people[0].name == t.answer
    shared = next(e for e in world.entities if e.etype == "person" and syn.surname_count[e.name.split()[-1]] > 1)
    assert syn.entity_answers(shared) == [shared.name]


def test_splits_are_disjoint_by_entity(world, tasks):
    owners: dict[str, str] = {}
    for t in tasks:
        for eid in t.metadata["_start_ids"]:
            assert entity_split(world.seed, eid) == t.metadata["split"]
            assert owners.setdefault(eid, t.metadata["split"]) == t.metadata["split"]
    counts = {s: sum(t.metadata["split"] == s for t in tasks) for s in SPLITS}
    assert counts["train"] > counts["validation"] > 0 and counts["test"] > 0


def test_funnel_reports_every_stage(built):
    _, report = built
    names = [s["name"] for s in report.stages]
    assert names == ["unique", "dedup", "trivial", "split", "solvable", "balance", "output"]
    stage = {s["name"]: s for s in report.stages}
    assert stage["solvable"]["status"] == "skipped" and stage["solvable"]["dropped"] == 0
    assert stage["unique"]["reasons"].get("source_conflict", 0) > 0
    assert stage["trivial"]["dropped"] > 0 and stage["split"]["dropped"] > 0
    for s in report.stages:
        assert s["in"] - s["dropped"] == s["out"]
    assert sum(report.splits.values()) == 1500
    assert any("skipped" in line for line in report.lines())


def test_unique_stage_catches_bad_plans(world, tasks):
    t = next(x for x in tasks if x.metadata["kind"] == "lookup")
    twin = next(e for e in world.entities if len(world.by_name(e.name)) > 1)
    plan = [dict(t.metadata["plan"][0], entity=twin.name), t.metadata["plan"][1]]
    assert (
        check_unique(world, Task("x", t.question, t.answers, t.answer_type, {**t.metadata, "plan": plan}))
        == "ambiguous_name"
    )
    wrong = Task("y", t.question, ("not the answer",), t.answer_type, t.metadata)
    assert check_unique(world, wrong) == "answer_mismatch"
    s = next(x for x in tasks if x.metadata["kind"] == "set")
    plan = [dict(step) for step in s.metadata["plan"]]
    plan[-1]["value"] = "No Such City"
    assert check_unique(world, Task("z", s.question, s.answers, "list", {**s.metadata, "plan": plan})) == "empty_set"
    c = world.conflicts[0]
    e = world.entity(c.subject)
    plan = [
        {"op": "lookup", "entity": e.name, "attribute": c.label, "deep": False, "source": None},
        {"op": "answer", "args": ["$0"]},
    ]
    assert check_unique(world, Task("c", "q?", ("1",), "text", {"plan": plan})) == "source_conflict"


def test_callbacks_and_dedup(world, tasks):
    sample = tasks[:40]
    kept, rep = run_funnel(
        world, sample + sample[:10], solvable=lambda ts: [i % 2 == 0 for i in range(len(ts))], baseline=None
    )
    stage = {s["name"]: s for s in rep.stages}
    assert stage["dedup"]["dropped"] == 10
    assert stage["trivial"]["status"] == "skipped"
    assert stage["solvable"]["status"] == "ran" and stage["solvable"]["dropped"] == 20 and len(kept) == 20
    kept, rep = run_funnel(world, sample, baseline=lambda ts: [True] * len(ts))
    assert kept == [] and rep.stages[2]["dropped"] == 40


def test_heuristic_baseline_drops_guessable(world):
    syn = Synthesizer(world)
    uni = next(
        e
        for e in world.entities
        if e.etype == "university"
        and e.name.startswith("University of ")
        and world.entity(e.attrs["location"]).name == e.name[len("University of ") :]
    )
    city = world.entity(uni.attrs["location"])
    t = Task(
        "u",
        f"Which city is the city where {uni.name} is located?",
        (city.name,),
        "text",
        {
            "kind": "lookup",
            "plan": [
                {"op": "lookup", "entity": uni.name, "attribute": "Location", "deep": False, "source": None},
                {"op": "answer", "args": ["$0"]},
            ],
        },
    )
    assert heuristic_guess(t) == city.name and heuristic_baseline([t]) == [True] and no_tool_baseline([t]) == [True]
    comps = [x for x in synthesize(world, 400, seed=9, kinds=["comparison"])]
    assert not any(no_tool_baseline(comps))  # choice tasks are exempt (dropping guessed ones would skew positions)
    assert syn.literal_answers("int", 1234) == (["1234", "1,234"], "number")


def test_same_seed_same_tasks_and_kinds_filter(world):
    a = [t.to_dict() for t in synthesize(world, 200, seed=3)]
    b = [t.to_dict() for t in synthesize(world, 200, seed=3)]
    assert a == b and a != [t.to_dict() for t in synthesize(world, 200, seed=4)]
    tail = [t.id for t in synthesize(world, 50, seed=3, start=150)]  # candidates are independent of each other
    full = [t.id for t in synthesize(world, 200, seed=3)]
    assert tail and tail == full[len(full) - len(tail) :]
    only = synthesize(world, 60, seed=1, kinds=["conflict", "set"])
    assert {t.metadata["kind"] for t in only} == {"conflict", "set"}
    with pytest.raises(UnknownNameError):
        synthesize(world, 5, kinds=["lookups"])


def test_2000_tasks_through_the_whole_funnel(world):
    # speed is measured in benchmarks/bench_world.py (docs/benchmarks.md), not asserted here
    tasks, rep = build_tasks(world, 2000, seed=11, log=None)
    assert len(tasks) == 2000 and len({t.id for t in tasks}) == 2000
    stages = {s["name"]: s for s in rep.stages}
    assert [s["name"] for s in rep.stages] == ["unique", "dedup", "trivial", "split", "solvable", "balance", "output"]
    assert all(s["in"] - s["dropped"] == s["out"] for s in rep.stages)
    assert stages["trivial"]["status"] == "ran" and stages["solvable"]["status"] == "skipped"
    assert sum(rep.splits.values()) == 2000 and sum(int(r["tasks"]) for r in rep.kinds.values()) == 2000


def test_cli_synth_and_world(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(required=True))
    out = tmp_path / "t.jsonl"
    args = parser.parse_args(
        [
            "synth",
            "--n",
            "40",
            "--seed",
            "1",
            "--pages",
            "400",
            "--out",
            str(out),
            "--split",
            "train",
            "--kinds",
            "lookup,multihop",
        ]
    )
    assert args.func(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["tasks"] == 40 and "dedup" in captured.err
    loaded = load_tasks(out)
    assert len(loaded) == 40 and {t.metadata["split"] for t in loaded} == {"train"}
    assert {t.metadata["kind"] for t in loaded} <= {"lookup", "multihop"}
    args = parser.parse_args(["world", "build", "--seed", "1", "--pages", "300", "--out", str(tmp_path / "w")])
    assert args.func(args) == 0
    rows = [json.loads(x) for x in (tmp_path / "w" / "documents.jsonl").read_text().splitlines()]
    assert rows and set(rows[0]) == {"url", "title", "html", "links"}
    facts = (tmp_path / "w" / "facts.jsonl").read_text().splitlines()
    assert json.loads(facts[0]).keys() >= {"subject", "relation", "value", "url", "deep"}
