"""``kimi_env.rollout.run_vector``: a Gymnasium SyncVectorEnv of kimi-env environments driven by a policy, in every
autoreset mode, with per-episode policy state kept apart, batch policies called through ``act_batch``, and a
crashing policy ending only its episode."""

from __future__ import annotations

import gymnasium as gym
import pytest

import kimi_env
from kimi_env.envs.calculator import evaluate
from kimi_env.policies import Policy, get_policy
from kimi_env.rollout import run_vector

MODES = [gym.vector.AutoresetMode.NEXT_STEP, gym.vector.AutoresetMode.SAME_STEP, gym.vector.AutoresetMode.DISABLED]


def _vec(n: int, mode, **kwargs) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv([lambda: kimi_env.make("kimi_env/Calculator-v0", **kwargs) for _ in range(n)],
                                    autoreset_mode=mode)


class BatchSolver(Policy):
    """Answers every pending question in one act_batch call (like a batched model would)."""

    name = "batch-solver"

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def act_batch(self, observations, infos):
        self.batch_sizes.append(len(observations))
        out = []
        for info in infos:
            expr = info["task"]["question"].split("What is ", 1)[1].split("?")[0]
            out.append(f"<answer>{evaluate(expr)}</answer>")
        return out


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
def test_a_stateful_scripted_policy_solves_every_episode(mode):
    vec = _vec(2, mode)
    try:
        trajs = run_vector(vec, get_policy("oracle"), episodes=5, seed=0)
    finally:
        vec.close()
    assert len(trajs) == 5
    assert [t.reward for t in trajs] == [1.0] * 5, [(t.end_reason, t.error, [u.action for u in t.turns]) for t in trajs]
    for t in trajs:
        assert t.env_id == "kimi_env/Calculator-v0" and t.end_reason == "answer" and t.num_turns == 2
        assert t.answer in t.answers and t.question.startswith("What is ")
        assert t.turns[0].tool_calls == {"calculator": 1} and t.turns[0].observation.startswith("<tool_response>")
        assert t.turns[1].action == f"<answer>{t.answer}</answer>"
    assert len({t.task_id for t in trajs}) > 2  # new tasks after autoreset, not the same ones again


def test_a_batch_policy_gets_every_active_env_in_one_call():
    vec = _vec(3, gym.vector.AutoresetMode.NEXT_STEP)
    policy = BatchSolver()
    try:
        trajs = run_vector(vec, policy, episodes=6, seed=1)
    finally:
        vec.close()
    assert len(trajs) == 6 and all(t.reward == 1.0 and t.num_turns == 1 for t in trajs)
    assert policy.batch_sizes[0] == 3 and sum(policy.batch_sizes) >= 6


class CrashOnSecond(Policy):
    name = "crash"

    def reset(self, info):
        self.turn = 0
        self.bad = "7" in info["task"]["question"]

    def act(self, observation, info):
        self.turn += 1
        if self.bad and self.turn == 1:
            raise RuntimeError("boom")
        expr = info["task"]["question"].split("What is ", 1)[1].split("?")[0]
        return f"<answer>{evaluate(expr)}</answer>"


def test_a_crashing_policy_ends_only_its_episode():
    vec = _vec(2, gym.vector.AutoresetMode.NEXT_STEP, max_turns=3)
    try:
        trajs = run_vector(vec, CrashOnSecond(), episodes=8, seed=2)
    finally:
        vec.close()
    crashed = [t for t in trajs if t.error]
    ok = [t for t in trajs if not t.error]
    assert crashed and ok and len(trajs) == 8
    assert all(t.end_reason == "policy_error" and "RuntimeError: boom" in t.error and "7" in t.question
               for t in crashed)
    assert all(t.reward == 1.0 and "7" not in t.question for t in ok)


def test_bad_arguments_are_refused():
    vec = _vec(1, gym.vector.AutoresetMode.NEXT_STEP)
    try:
        with pytest.raises(kimi_env.InvalidArgumentError, match="episodes must be an int >= 1"):
            run_vector(vec, get_policy("oracle"), episodes=0)
    finally:
        vec.close()
