"""Reward functions beyond their doctests: exactness where the task asks for it, and tolerance where it does not."""

from __future__ import annotations

import pytest

import kimi_env
from kimi_env.rewards import exact_match, list_match, numeric_match, score_answer, token_f1


def test_exact_integers_are_exact_beyond_float_precision():
    big = "92653233980757060"
    assert numeric_match(big, [big], rel_tol=0) == 1.0
    assert numeric_match(str(int(big) + 1), [big], rel_tol=0) == 0.0
    assert numeric_match("9.2653233980757060e16", [big], rel_tol=0) == 1.0  # same value, other spelling


def test_calculator_rewards_only_the_exact_integer():
    env = kimi_env.make("Calculator-v0")
    try:
        for seed in range(20):
            env.reset(seed=seed)
            answer = int(env.unwrapped.task.answer)
            for wrong in (answer + 1, f"{answer * (1 + 1e-6):.6e}"):
                env.reset(seed=seed)
                assert env.step(f"<answer>{wrong}</answer>")[1] == 0.0, (seed, wrong, answer)
            env.reset(seed=seed)
            assert env.step(f"<answer>{answer:,}</answer>")[1] == 1.0
    finally:
        env.close()


@pytest.mark.parametrize("pred, gold, rel, expected", [
    ("33.8%", ["33.8"], 1e-4, 0.0),          # a percent sign divides by 100
    ("about 33.8", ["33.8"], 1e-4, 1.0),
    ("33.80", ["33.8"], 0, 1.0),
    ("1e999999", ["1"], 1e-4, 0.0),           # absurd exponents are ignored, not computed
    ("", ["0"], 1e-4, 0.0),
])
def test_numeric_match_cases(pred, gold, rel, expected):
    assert numeric_match(pred, gold, rel_tol=rel) == expected


def test_text_and_list_scores():
    assert exact_match("  the Blue  ", ["blue"]) == 1.0
    assert exact_match("blue-green", ["blue green"]) == 0.0
    assert token_f1("", [""]) == 1.0 and token_f1("x", [""]) == 0.0
    assert list_match("A; B and C", ["c, b, a"]) == 1.0 and list_match("A, B", ["a, b, c"]) == 0.0
    assert score_answer("1,000", ["1000"], "number") == 1.0 and score_answer("x", ["y"], "date") == 0.0
