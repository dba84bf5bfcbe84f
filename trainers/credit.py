"""Credit assignment for REINFORCE with per-turn gamma-decay (pure functions, no torch).

Kimi-Researcher gives step ``i`` of a correct ``T``-step trajectory the credit ``r * gamma**(T - i)``: the last turn
gets the full reward and earlier turns less, so of two correct solutions the shorter one earns more. Here:

* ``turn_credits``: the credit of every turn of one trajectory. A correct trajectory (reward at or above the success
  threshold) gets ``r * turn_discount**(T - i)`` for turn ``i = 1..T``; any other trajectory (wrong answer, format
  error, truncation) gets its final reward on every turn, undiscounted (a format penalty is not made milder by being
  early).
* ``group_baselines``: the baseline of each trajectory of a group of episodes on one task: ``group_mean`` (mean of
  the group's final rewards), ``leave_one_out`` (mean of the others'), or ``none`` (0).
* ``advantages``: credit minus baseline, per turn. A group whose *credits* are all equal carries no signal about
  which behaviour is better; with ``skip_uniform_groups`` its advantages are all 0 (the trainer then spends no
  update on it). Credits are equal when the final rewards are, except in a group of successes of different lengths
  under a discount below 1: there the shorter ones earn more, which is the signal gamma-decay exists for, so such
  a group is kept (``uniform_credits``).
* ``keep_negatives``: negative-sample control: which failed trajectories of a step enter the loss (a seeded random
  subset of the configured fraction; successes always do). Baselines are computed before dropping.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

BASELINES = ("group_mean", "leave_one_out", "none")


def turn_credits(reward: float, num_turns: int, *, turn_discount: float, success_threshold: float = 1.0) -> list[float]:
    """Per-turn credit of one trajectory.

    ``c_i = r * turn_discount**(T - i)`` for a correct trajectory (``r >= success_threshold``), else ``c_i = r``.

    >>> turn_credits(1.0, 3, turn_discount=0.5)
    [0.25, 0.5, 1.0]
    >>> turn_credits(-0.1, 2, turn_discount=0.5)
    [-0.1, -0.1]
    """
    if num_turns < 0:
        raise ValueError(f"num_turns must be >= 0, got {num_turns}")
    if not 0.0 <= turn_discount <= 1.0:  # (the trainer's config further requires > 0)
        raise ValueError(f"turn_discount must be in [0, 1], got {turn_discount}")
    if reward >= success_threshold:
        return [reward * turn_discount ** (num_turns - i) for i in range(1, num_turns + 1)]
    return [float(reward)] * num_turns


def group_baselines(rewards: Sequence[float], kind: str = "group_mean") -> list[float]:
    """Baseline of each member of one group of trajectories on the same task.

    >>> group_baselines([1.0, 0.0, 0.0, 1.0])
    [0.5, 0.5, 0.5, 0.5]
    >>> [round(b, 3) for b in group_baselines([1.0, 0.0, 0.0], "leave_one_out")]
    [0.0, 0.5, 0.5]
    """
    n = len(rewards)
    if kind == "none":
        return [0.0] * n
    if kind == "group_mean":
        m = sum(rewards) / n if n else 0.0
        return [m] * n
    if kind == "leave_one_out":
        if n < 2:
            raise ValueError("leave_one_out needs groups of at least 2 trajectories")
        total = sum(rewards)
        return [(total - r) / (n - 1) for r in rewards]
    raise ValueError(f"baseline must be one of {BASELINES}, got {kind!r}")


def uniform_credits(rewards: Sequence[float], num_turns: Sequence[int], *, turn_discount: float,
                    success_threshold: float = 1.0) -> bool:
    """True when every member of the group gets the same credits, so the group says nothing about which behaviour
    is better: the final rewards are all equal and, if they are successes under ``turn_discount < 1``, so are the
    lengths.

    >>> uniform_credits([0.0, 0.0], [2, 5], turn_discount=0.9)
    True
    >>> uniform_credits([1.0, 1.0], [2, 3], turn_discount=0.9)
    False
    >>> uniform_credits([1.0, 1.0], [2, 3], turn_discount=1.0)
    True
    """
    if len(set(rewards)) > 1:
        return False
    if not rewards or rewards[0] < success_threshold or turn_discount == 1.0:
        return True
    return len(set(num_turns)) <= 1


def advantages(
    rewards: Sequence[float], num_turns: Sequence[int], *, turn_discount: float, baseline: str = "group_mean",
    success_threshold: float = 1.0, skip_uniform_groups: bool = True,
) -> list[list[float]]:
    """Per-turn advantages of one group: ``A[j][i] = c_j[i] - b_j``.

    >>> advantages([1.0, 0.0], [2, 1], turn_discount=0.5)
    [[0.0, 0.5], [-0.5]]
    >>> advantages([0.0, 0.0], [2, 3], turn_discount=0.5)
    [[0.0, 0.0], [0.0, 0.0, 0.0]]
    >>> advantages([1.0, 1.0], [1, 2], turn_discount=0.5)  # both correct: the longer one earns less
    [[0.0], [-0.5, 0.0]]
    """
    if len(rewards) != len(num_turns):
        raise ValueError(f"{len(rewards)} rewards but {len(num_turns)} turn counts")
    if skip_uniform_groups and uniform_credits(rewards, num_turns, turn_discount=turn_discount,
                                               success_threshold=success_threshold):
        return [[0.0] * t for t in num_turns]
    base = group_baselines(rewards, baseline)
    return [[c - b for c in turn_credits(r, t, turn_discount=turn_discount, success_threshold=success_threshold)]
            for r, t, b in zip(rewards, num_turns, base)]


def keep_negatives(rewards: Sequence[float], fraction: float, *, seed: int, success_threshold: float = 1.0) -> list[bool]:
    """Which trajectories enter the loss: every success, and ``round(fraction * n_failed)`` failures drawn at random.

    >>> keep_negatives([1.0, 0.0, 0.0, 0.0, 0.0], 0.5, seed=0).count(True)
    3
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"negative_sample_keep must be in [0, 1], got {fraction}")
    failed = [i for i, r in enumerate(rewards) if r < success_threshold]
    n_keep = round(fraction * len(failed))
    kept = set(random.Random(seed).sample(failed, n_keep)) if n_keep < len(failed) else set(failed)
    return [r >= success_threshold or i in kept for i, r in enumerate(rewards)]
