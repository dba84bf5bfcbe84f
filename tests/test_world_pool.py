"""The task pool measures what it claims (issue 13 item 4): the funnel's triviality stage uses the no-tool policy's
own guess and the environments' own scorer, choice tasks keep a balanced answer position, and the report gives
each kind's guessing floor."""

from __future__ import annotations

import pytest

from kimi_env.policies import FunctionPolicy, NoToolPolicy
from kimi_env.rollout import run_episode
from kimi_env.world import generate_world
from kimi_env.world.funnel import build_tasks, choice_options
from kimi_env.world.solvable import _TaskEnv


@pytest.fixture(scope="module")
def pool():
    world = generate_world(seed=0, n_pages=2000)
    return world, *build_tasks(world, 2000, seed=0, log=None)


def test_no_surviving_open_task_is_solved_by_the_no_tool_policy(pool):
    _, tasks, report = pool
    env = _TaskEnv(tool_list=[], max_turns=2)  # the real reset/step/score path, no tools needed to guess
    first = FunctionPolicy(lambda obs, info: f"<answer>{_options(info)[0]}</answer>")
    second = FunctionPolicy(lambda obs, info: f"<answer>{_options(info)[-1]}</answer>")
    solved = {"open": 0, "choice": 0, "first": 0, "second": 0}
    counts = {"open": 0, "choice": 0}
    for task in tasks:
        group = "choice" if choice_options(task) else "open"
        counts[group] += 1
        solved[group] += run_episode(env, NoToolPolicy(), options={"task": task}).reward >= 1.0
        if group == "choice":
            solved["first"] += run_episode(env, first, options={"task": task}).reward >= 1.0
            solved["second"] += run_episode(env, second, options={"task": task}).reward >= 1.0
    env.close()
    assert counts["choice"] > 50 and solved["open"] == 0
    # choice tasks sit at their floor: "always the first option" and "always the second" both get half of them
    for strategy in ("first", "second"):
        assert abs(solved[strategy] - counts["choice"] / 2) <= 3, (strategy, solved, counts)  # one task per split
    floor = report.kinds["comparison"]
    assert floor["guess_floor"] == 0.5 and floor["no_tool_pass@1"] == round(solved["choice"] / counts["choice"], 4)
    assert floor["no_tool_pass@1"] <= 0.5 + 3 / counts["choice"]
    assert all(row["guess_floor"] == 0.0 and row["no_tool_pass@1"] == 0.0
               for kind, row in report.kinds.items() if kind != "comparison")
    assert any(line.startswith("kind comparison") and "guess floor 0.50" in line for line in report.lines())


def _options(info):
    import re

    question = info["task"]["question"]
    m = re.search(r", (.+?)(?:'s)? or (.+?)(?:'s)?\?$", question)
    return [x.strip('"') for x in m.groups()]


def test_answer_positions_are_balanced_within_each_split(pool):
    world, tasks, report = pool
    by_split: dict[str, list[bool]] = {}
    for task in tasks:
        options = choice_options(task)
        if options:
            by_split.setdefault(task.metadata["split"], []).append(options[0] == task.answer)
            assert task.metadata["guess_floor"] == 0.5
            assert task.question.endswith(("?",)) and all(o in task.question for o in options)
        else:
            assert task.metadata["guess_floor"] == 0.0
    for split, firsts in by_split.items():
        assert abs(sum(firsts) - (len(firsts) - sum(firsts))) <= 1, split
    assert {s["name"]: s for s in report.stages}["balance"]["reasons"]["unswappable"] == 0


def test_swapped_tasks_still_check_out_against_the_world(pool):
    from kimi_env.world.funnel import check_unique

    world, tasks, _ = pool
    swapped = [t for t in tasks if choice_options(t) and choice_options(t)[1] == t.answer]
    assert swapped and all(check_unique(world, t) is None for t in swapped)
    assert len({t.id for t in tasks}) == len(tasks)
