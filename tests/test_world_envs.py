"""The registered world environments: the oracle solves them through the real tools, the no-tool baseline does not,
bring-your-own corpus and tasks works, and funnel stage (b) drops what the oracle cannot solve."""

from __future__ import annotations

import json

import pytest

import kimi_env
from kimi_env import InvalidArgumentError, Task
from kimi_env.policies import NoToolPolicy, OraclePolicy
from kimi_env.rollout import evaluate, run_episode
from kimi_env.web.document import Document

WORLD_ENVS = ["SearchQA-v0", "BrowseQA-v0", "CodeQA-v0", "DeepResearch-v0", "MathCode-v0"]
TOOLS = {"SearchQA-v0": ["search"], "BrowseQA-v0": ["search", "browse"], "CodeQA-v0": ["search", "python"],
         "DeepResearch-v0": ["search", "browse", "python"], "MathCode-v0": ["python"]}


@pytest.mark.parametrize("env_id", WORLD_ENVS)
def test_oracle_solves_the_test_split_and_no_tool_baseline_does_not(env_id):
    env = kimi_env.make(env_id, split="test")
    try:
        assert [t.name for t in env.unwrapped.tools] == TOOLS[env_id]
        oracle = evaluate(env, OraclePolicy(), episodes=200, seed=0)
        assert oracle["pass@1"] >= 0.95, oracle
        assert oracle["format_error_rate"] == 0.0
        baseline = evaluate(env, NoToolPolicy(), episodes=200, seed=0)
        # choice tasks ("A or B?") keep their blind-guess floor (the funnel balances their answer positions instead
        # of dropping the ones a guesser hits); the no-tool policy must not beat the floor of the tasks it got
        floors = []
        for i in range(200):
            env.reset(seed=i)
            floors.append(float(env.unwrapped.task.metadata.get("guess_floor", 0.0)))
        assert baseline["pass@1"] <= sum(floors) / len(floors) + 0.05, (baseline, sum(floors) / len(floors))
    finally:
        env.close()


def test_tasks_come_from_the_requested_split_and_kinds():
    env = kimi_env.make("DeepResearch-v0", split="validation", kinds=["lookup", "multihop"], difficulty=(2, 5))
    try:
        pool = env.unwrapped.task_pool
        assert pool and all(t.metadata["split"] == "validation" for t in pool)
        assert {t.metadata["kind"] for t in pool} <= {"lookup", "multihop"}
        assert all(t.metadata["difficulty"] >= 2 for t in pool)
    finally:
        env.close()
    with pytest.raises(KeyError, match="Did you mean 'multihop'"):
        kimi_env.make("DeepResearch-v0", kinds=["multihops"])


def test_browsing_counts_urls_and_answers_never_leak():
    env = kimi_env.make("BrowseQA-v0", split="test")
    try:
        traj = run_episode(env, OraclePolicy(), seed=3)
        assert traj.reward == 1.0
        assert traj.info["urls_visited"] and all(u.startswith("https://") for u in traj.info["urls_visited"])
        task = env.unwrapped.task
        assert "answers" not in json.dumps(traj.task) and not any(k.startswith("_") for k in traj.task["metadata"])
        assert task.answer not in traj.prompt
    finally:
        env.close()


def test_bring_your_own_corpus_and_tasks(tmp_path):
    from kimi_env.web.corpus import Corpus

    docs = [
        Document(url="https://example.test/lighthouse", title="Old Lighthouse",
                 html="<h1>Old Lighthouse</h1><p>The old lighthouse was built in 1871 by the harbour board.</p>"),
        Document(url="https://example.test/harbour", title="Harbour Board",
                 html="<h1>Harbour Board</h1><p>It runs the <a href='/lighthouse'>lighthouse</a>.</p>"),
    ]
    corpus_dir = tmp_path / "corpus"
    Corpus.build(docs, corpus_dir)
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": "q1", "question": "When was the old lighthouse built?", "answer": "1871",
                                 "answer_type": "number"}) + "\n")
    env = kimi_env.make("BrowseQA-v0", corpus=str(corpus_dir), tasks=str(tasks))
    try:
        obs, info = env.reset(seed=0)
        assert "When was the old lighthouse built?" in obs
        obs, *_ = env.step('<tool_call>{"name": "search", "arguments": {"queries": ["lighthouse built"]}}</tool_call>')
        assert "https://example.test/lighthouse" in obs and "1871" in obs
        obs, *_ = env.step('<tool_call>{"name": "browse", "arguments": {"url": "https://example.test/harbour"}}'
                           '</tool_call>')
        assert "[1] lighthouse" in obs
        obs, *_ , info = env.step('<tool_call>{"name": "browse", "arguments": {"link": 1}}</tool_call>')
        assert "built in 1871" in obs and info["urls_visited"] == ["https://example.test/harbour",
                                                                   "https://example.test/lighthouse"]
        _, reward, terminated, _, _ = env.step("<answer>1871</answer>")
        assert terminated and reward == 1.0
    finally:
        env.close()
    with pytest.raises(InvalidArgumentError, match="without tasks="):
        kimi_env.make("BrowseQA-v0", corpus=str(corpus_dir))


def test_funnel_stage_b_drops_what_the_oracle_cannot_solve():
    from kimi_env.envs.world_qa import get_task_pool, get_world
    from kimi_env.world.solvable import OracleSolvable

    pool = [t for t in get_task_pool(0, 2000, 10000, 0) if t.metadata["split"] == "test"][:12]
    broken = Task(id="broken", question=pool[0].question, answers=("not the answer",),
                  answer_type=pool[0].answer_type, metadata=dict(pool[0].metadata))
    unplannable = Task(id="noplan", question="What?", answers=("x",),
                       metadata={"required_tools": ["search"], "plan": [{"op": "teleport"}]})
    check = OracleSolvable(get_world(0, 2000))
    verdicts = check([*pool, broken, unplannable])
    assert verdicts[:-2] == [True] * len(pool)
    assert verdicts[-2:] == [False, False]
    assert "wrong answer" in check.failures["broken"] and "teleport" in check.failures["noplan"]


def test_an_environment_never_closed_still_releases_its_sessions():
    import subprocess
    import sys

    code = (
        "import kimi_env\n"
        "env = kimi_env.make('BrowseQA-v0', split='test')\n"
        "env.reset(seed=0)\n"
        "obs, *_ = env.step('<tool_call>{\"name\": \"browse\", \"arguments\": "
        "{\"url\": \"https://kimiwiki.test/wiki/Vurmark\"}}</tool_call>')\n"
        "assert 'Vurmark' in obs\n"
        "print('done')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr
    assert "Unclosed" not in out.stderr, out.stderr


def test_verify_pools_run_funnel_stage_b_and_synth_solvable_prints_it(tmp_path, capsys):
    from kimi_env.envs.world_qa import get_task_pool
    from kimi_env.cli import main

    verified = get_task_pool(0, 2000, 300, 5, True)
    plain = get_task_pool(0, 2000, 300, 5, False)
    assert verified and {t.id for t in verified} <= {t.id for t in get_task_pool(0, 2000, 2000, 5, False)}
    env = kimi_env.make("DeepResearch-v0", split=None, n_tasks=300, task_seed=5, verify=True)
    try:
        assert env.unwrapped.task_pool and evaluate(env, OraclePolicy(), episodes=30)["pass@1"] == 1.0
    finally:
        env.close()
    assert len(plain) == 300
    out = tmp_path / "t.jsonl"
    assert main(["synth", "--n", "50", "--seed", "2", "--out", str(out), "--solvable"]) == 0
    captured = capsys.readouterr()
    stages = {s["name"]: s for s in json.loads(captured.out.strip().splitlines()[-1])["funnel"]["stages"]}
    assert stages["solvable"]["status"] == "ran" and stages["solvable"]["in"] >= 50
    assert "solvable  in" in captured.err
