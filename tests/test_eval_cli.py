"""`kimi-env eval`'s honest defaults: it says what it evaluates, covers a finite task set without replacement,
filters your own tasks by their split or says it cannot, and fails loudly where there is nothing to measure."""

from __future__ import annotations

import json

import pytest

from kimi_env.cli import main

OWN = [{"question": "Who founded Traan Bank?", "answers": ["Zoryve Dashell"], "split": "test"},
       {"question": "Who founded Vurmark Bank?", "answers": ["x"], "split": "train"}]


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_finite_task_set_is_covered_without_replacement(capsys, tmp_path):
    path = tmp_path / "t.jsonl"
    code, out, err = run(capsys, "eval", "kimi_env/SearchQA-v0", "--policy", "no-tool", "--episodes", "4",
                         "--split", "test", "--out", str(path), "--json")
    assert code == 0
    assert "4 distinct tasks" in err and "test task set" in err and "without replacement" in err
    ids = [json.loads(line)["task_id"] for line in path.read_text().splitlines()]
    assert len(set(ids)) == 4


def test_episodes_zero_is_an_error(capsys):
    code, _, err = run(capsys, "eval", "kimi_env/Calculator-v0", "--episodes", "0")
    assert code == 2 and "kimi-env: error: --episodes must be at least 1" in err


def test_split_filters_your_own_tasks_or_says_it_cannot(capsys, tmp_path):
    own = tmp_path / "own.jsonl"
    own.write_text("\n".join(json.dumps(t) for t in OWN) + "\n")
    code, out, err = run(capsys, "eval", "kimi_env/SearchQA-v0", "--policy", "no-tool", "--episodes", "1",
                         "--env-arg", f"tasks={own}", "--split", "test", "--json")
    assert code == 0 and "your own task set" in err and "1 distinct tasks of 1" in err
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps({"question": "Q?", "answers": ["a"]}) + "\n")
    code, _, err = run(capsys, "eval", "kimi_env/SearchQA-v0", "--policy", "no-tool", "--env-arg", f"tasks={bare}",
                       "--split", "test")
    assert code == 2 and "none has a 'split' field" in err


def test_the_oracle_on_tasks_without_a_plan_fails_loudly(capsys, tmp_path):
    own = tmp_path / "own.jsonl"
    own.write_text("\n".join(json.dumps(t) for t in OWN) + "\n")
    code, _, err = run(capsys, "eval", "kimi_env/SearchQA-v0", "--policy", "oracle", "--episodes", "2",
                       "--env-arg", f"tasks={own}")
    assert code == 2 and "NoPlanError" in err and "no plan" in err
