"""Credit assignment against a plain loop (after SB3's tests/test_gae.py), and negative-sample control."""

from __future__ import annotations

import random

import pytest

from kimi_env.trainers import credit


def plain_loop(rewards, turns, gamma, baseline, threshold=1.0, skip_uniform=True):
    """The same quantity written the obvious way, one trajectory and one turn at a time."""
    n = len(rewards)
    credits = []
    for j in range(n):
        row = []
        for i in range(1, turns[j] + 1):
            row.append(rewards[j] * gamma ** (turns[j] - i) if rewards[j] >= threshold else rewards[j])
        credits.append(row)
    # no signal: every member has the same credit sequence, or every turn of every member the same credit
    same_rows = all(row == credits[0] for row in credits)
    one_value = len({c for row in credits for c in row}) <= 1
    if skip_uniform and (same_rows or one_value):
        return [[0.0] * t for t in turns]
    out = []
    for j in range(n):
        if baseline == "none":
            b = 0.0
        elif baseline == "group_mean":
            b = sum(rewards) / n
        else:
            b = sum(rewards[k] for k in range(n) if k != j) / (n - 1)
        row = []
        for i in range(1, turns[j] + 1):
            c = rewards[j] * gamma ** (turns[j] - i) if rewards[j] >= threshold else rewards[j]
            row.append(c - b)
        out.append(row)
    return out


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("baseline", ["group_mean", "leave_one_out", "none"])
def test_advantages_match_a_plain_loop(gamma, baseline):
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(2, 6)
        # correct (1.0), wrong (0.0), format error / truncated (-0.1), partial credit (0.5)
        rewards = [rng.choice([1.0, 0.0, -0.1, 0.5]) for _ in range(n)]
        turns = [rng.randint(1, 7) for _ in range(n)]
        got = credit.advantages(rewards, turns, turn_discount=gamma, baseline=baseline)
        want = plain_loop(rewards, turns, gamma, baseline)
        assert len(got) == n
        for g, w in zip(got, want):
            assert g == pytest.approx(w, abs=1e-12)


def test_discount_makes_shorter_correct_solutions_earn_more():
    a = credit.advantages([1.0, 1.0, 0.0], [2, 5, 3], turn_discount=0.9, baseline="group_mean")
    assert a[0][0] > a[1][0]  # the first turn of the 2-turn solution beats that of the 5-turn one
    assert a[0][-1] == a[1][-1]  # the final turns get the full reward
    assert all(x == a[2][0] for x in a[2])  # a failure's credit is not decayed


def test_all_correct_group_of_different_lengths_is_kept_only_under_a_discount():
    # every member correct: the final rewards are equal, but under gamma < 1 the shorter solution earns more, which
    # is the only signal gamma-decay adds; with gamma = 1 (or equal lengths) there is nothing to learn
    kept = credit.advantages([1.0, 1.0, 1.0], [2, 3, 2], turn_discount=0.9, baseline="group_mean")
    assert kept[1][0] < kept[0][0] < 0.0 and kept[0][-1] == 0.0
    assert credit.advantages([1.0, 1.0, 1.0], [2, 3, 2], turn_discount=1.0) == [[0.0] * 2, [0.0] * 3, [0.0] * 2]
    assert credit.advantages([1.0, 1.0], [3, 3], turn_discount=0.9) == [[0.0] * 3, [0.0] * 3]
    assert credit.advantages([0.0, 0.0], [2, 4], turn_discount=0.9, baseline="none") == [[0.0] * 2, [0.0] * 4]
    assert credit.advantages([1.0, 1.0], [2, 3], turn_discount=0.9, skip_uniform_groups=True) != \
        credit.advantages([1.0, 1.0], [2, 2], turn_discount=0.9, skip_uniform_groups=True)


def test_truncated_and_format_error_episodes_keep_their_penalty_on_every_turn():
    assert credit.turn_credits(-0.1, 4, turn_discount=0.5) == [-0.1] * 4
    assert credit.turn_credits(0.0, 2, turn_discount=0.5) == [0.0, 0.0]


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 1.0])
def test_negative_sample_control_keeps_the_configured_fraction(fraction):
    rewards = [1.0] * 5 + [0.0] * 12 + [-0.1] * 8
    keep = credit.keep_negatives(rewards, fraction, seed=3)
    assert all(keep[:5])  # successes always stay
    assert sum(keep[5:]) == round(fraction * 20)
    assert keep == credit.keep_negatives(rewards, fraction, seed=3)  # seeded


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="turn_discount"):
        credit.turn_credits(1.0, 2, turn_discount=1.5)
    with pytest.raises(ValueError, match="leave_one_out"):
        credit.group_baselines([1.0], "leave_one_out")
    with pytest.raises(ValueError, match="baseline"):
        credit.group_baselines([1.0, 0.0], "median")
