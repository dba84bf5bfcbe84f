"""MathCode tasks: every family's program, run in the real sandbox, prints the solver's answer; splits hold."""

from __future__ import annotations

import numpy as np
import pytest

import kimi_env
from kimi_env.mathtasks import FAMILIES, make_math_task
from kimi_env.tasks import split_of
from kimi_env.tools import PythonTool


@pytest.fixture(scope="module")
def python():
    tool = PythonTool(timeout=20)
    yield tool
    tool.close()


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_program_in_the_sandbox_prints_the_answer(family, python):
    rng = np.random.default_rng(0)
    for _ in range(2):
        task = make_math_task(rng, (family,))
        python.reset()
        res = python.call(code=task.metadata["plan"][0]["code"])
        assert res.ok, res.content
        assert res.content.strip().splitlines()[-1] == task.answer, task.question
        assert task.answer not in task.question


def test_same_seed_same_tasks_and_splits_are_disjoint():
    a = [make_math_task(np.random.default_rng(5)) for _ in range(3)]
    b = [make_math_task(np.random.default_rng(5)) for _ in range(3)]
    assert a == b
    env = kimi_env.make("MathCode-v0", split="test").unwrapped
    try:
        questions = set()
        for seed in range(30):
            env.reset(seed=seed)
            assert split_of(env.task.question) == "test"
            questions.add(env.task.question)
        assert len(questions) > 20
    finally:
        env.close()


def test_unknown_family_and_split_are_named():
    with pytest.raises(KeyError, match="Did you mean 'modpow'"):
        kimi_env.make("MathCode-v0", families=["modpw"])
    with pytest.raises(KeyError, match="Did you mean 'test'"):
        kimi_env.make("MathCode-v0", split="tset")
