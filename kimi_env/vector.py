"""Drive a Gymnasium vector environment (``gymnasium.vector.SyncVectorEnv`` or ``AsyncVectorEnv`` of kimi-env
environments) with a policy, and record one :class:`~kimi_env.trajectory.Trajectory` per finished episode.

For users who prefer the vector API to :class:`~kimi_env.rollout.RolloutEngine`; the engine remains the faster path
(it overlaps one episode's tool calls with another's generation; a vector env steps its environments in lock step).

Each step, every active slot's observation and ``info`` (un-batched from the vector env's dict of arrays) go to the
policy: to :meth:`Policy.act_batch` in one call when the policy overrides it (a batched model), otherwise to one
per-episode copy per slot (:meth:`Policy.episode`), awaited together, so scripted policies with per-episode state
stay correct. All three Gymnasium autoreset modes are handled (next-step, same-step, disabled). A policy that raises
ends its episode's record with ``end_reason="policy_error"``; the slot then plays empty turns until its environment
ends that episode (they are not recorded) and starts the next one.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from typing import Any

import numpy as np

from .errors import InvalidArgumentError
from .policies.base import Action, EpisodePolicy, Policy
from .trajectory import Trajectory, TurnRecord

__all__ = ["run_vector", "unbatch_info"]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None  # a None batched into a float array
    return value


def unbatch_info(info: dict[str, Any], i: int) -> dict[str, Any]:
    """Environment ``i``'s own ``info`` from a vector env's batched info (``key`` arrays with ``_key`` masks).

    >>> batched = {"a": np.array([1, 2]), "_a": np.array([True, False]), "d": {"x": np.array([0.5, np.nan]),
    ...            "_x": np.array([True, True])}, "_d": np.array([True, True])}
    >>> unbatch_info(batched, 0), unbatch_info(batched, 1)
    ({'a': 1, 'd': {'x': 0.5}}, {'d': {'x': None}})
    """
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = info.get("_" + key)
        if mask is not None and not bool(mask[i]):
            continue
        if isinstance(value, dict):
            out[key] = unbatch_info(value, i)
        else:
            out[key] = _plain(value[i])
    return out


def _mode(vec_env: Any) -> str:
    mode = (getattr(vec_env, "metadata", None) or {}).get("autoreset_mode", "NextStep")
    return str(getattr(mode, "value", mode))


class _Slot:
    def __init__(self) -> None:
        self.traj: Trajectory | None = None  # the episode being recorded (None: draining or idle)
        self.ep: EpisodePolicy | None = None
        self.draining = False
        self.start = 0.0
        self.calls_before: dict[str, int] = {}


def run_vector(vec_env: Any, policy: Policy, episodes: int, *, seed: int | None = None,
               max_steps: int = 100_000) -> list[Trajectory]:
    """Play until ``episodes`` episodes have finished; return their trajectories in the order they finished.

    Args:
        vec_env: A Gymnasium vector environment whose sub-environments are kimi-env environments.
        policy: Any :class:`~kimi_env.policies.Policy`.
        episodes: How many finished episodes to return.
        seed: Seed for the vector env's first ``reset`` (later episodes follow its generators).
        max_steps: Safety net on the number of vector steps.
    """
    from .rollout import _run_sync

    if not isinstance(episodes, int) or episodes < 1:
        raise InvalidArgumentError(f"episodes must be an int >= 1, got {episodes!r}.")
    mode = _mode(vec_env)
    if mode not in ("NextStep", "SameStep", "Disabled"):
        raise InvalidArgumentError(f"run_vector: unknown autoreset mode {mode!r}; expected NextStep, SameStep or "
                                   "Disabled (gymnasium.vector.AutoresetMode).")
    n = int(vec_env.num_envs)
    batched = type(policy).act_batch is not Policy.act_batch
    env_id = ""
    for spec in (getattr(vec_env, "spec", None), getattr(getattr(vec_env, "envs", [None])[0], "spec", None)):
        if spec is not None and getattr(spec, "id", None):
            env_id = spec.id
            break
    slots = [_Slot() for _ in range(n)]
    finished: list[Trajectory] = []
    started = 0

    def answers_of(i: int) -> list[str]:
        envs = getattr(vec_env, "envs", None)
        task = getattr(envs[i].unwrapped, "task", None) if envs is not None else None
        return list(getattr(task, "answers", ()) or ())

    def begin(i: int, obs: str, info: dict[str, Any]) -> None:
        nonlocal started
        slot = slots[i]
        slot.draining = False
        if started >= episodes:  # enough episodes in flight: this slot idles (its turns are not recorded)
            slot.traj, slot.ep = None, None
            return
        started += 1
        task = info.get("task") or {}
        meta = task.get("metadata") or {}
        slot.traj = Trajectory(
            task_id=task.get("id"), question=str(task.get("question", "")), env_id=env_id,
            model=getattr(policy, "model_name", "") or "", policy=getattr(policy, "name", type(policy).__name__),
            sampling=policy.sampling_settings(), kind=meta.get("kind"), hops=meta.get("hops"),
            tools=info.get("tools", []) or [], answers=answers_of(i), episode_id=uuid.uuid4().hex[:12],
            task=task, prompt=obs)
        envs = getattr(vec_env, "envs", None)
        if getattr(policy, "privileged", False) and envs is not None:  # the oracle reads the hop plan
            from .wrappers import privileged_task

            info = {**info, "privileged_task": privileged_task(envs[i])}
        slot.ep = None if batched else policy.episode(info)
        slot.start = time.perf_counter()
        slot.calls_before = {}

    def finish(i: int, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]) -> None:
        slot = slots[i]
        traj = slot.traj
        if traj is not None:
            traj.reward, traj.terminated, traj.truncated = float(reward), bool(terminated), bool(truncated)
            traj.end_reason = info.get("end_reason")
            _fill(traj, info)
            traj.wall_s = round(time.perf_counter() - slot.start, 6)
            finished.append(traj)
        if slot.ep is not None:
            slot.ep.close()
        slot.traj, slot.ep = None, None

    def crash(i: int, exc: BaseException, info: dict[str, Any]) -> None:
        slot = slots[i]
        traj = slot.traj
        assert traj is not None
        traj.error = f"the policy raised {type(exc).__name__}: {str(exc)[:300]}"
        traj.end_reason, traj.truncated = "policy_error", True
        envs = getattr(vec_env, "envs", None)
        traj.reward = float(getattr(envs[i].unwrapped, "format_penalty", -0.1)) if envs is not None else -0.1
        _fill(traj, info)
        traj.wall_s = round(time.perf_counter() - slot.start, 6)
        finished.append(traj)
        if slot.ep is not None:
            slot.ep.close()
        slot.traj, slot.ep, slot.draining = None, None, True

    obs, binfo = vec_env.reset(seed=seed)
    infos = [unbatch_info(binfo, i) for i in range(n)]
    for i in range(n):
        begin(i, obs[i], infos[i])
    pending_start = [False] * n  # NextStep: the slot's next step() is the reset
    steps = 0
    while len(finished) < episodes:
        steps += 1
        if steps > max_steps:
            raise InvalidArgumentError(f"run_vector: {max_steps} vector steps without finishing {episodes} episodes; "
                                       "check that the environments end their episodes (max_turns).")
        active = [i for i in range(n) if slots[i].traj is not None and not pending_start[i]]
        actions = [""] * n
        t0 = time.perf_counter()
        texts = _act(policy, batched, [slots[i].ep for i in active], [obs[i] for i in active],
                     [infos[i] for i in active], _run_sync)
        gen_s = (time.perf_counter() - t0) / max(1, len(active))
        acted: dict[int, Action] = {}
        for i, out in zip(active, texts):
            if isinstance(out, BaseException):
                crash(i, out, infos[i])
                continue
            acted[i] = out if isinstance(out, Action) else Action(text=str(out))
            actions[i] = acted[i].text
            slots[i].calls_before = dict(infos[i].get("tool_calls", {}) or {})
        t1 = time.perf_counter()
        obs, rewards, terms, truncs, binfo = vec_env.step(tuple(actions))
        env_s = time.perf_counter() - t1
        for i in range(n):
            info = unbatch_info(binfo, i)
            if pending_start[i]:  # NextStep: this step was the reset
                pending_start[i] = False
                infos[i] = info
                begin(i, obs[i], info)
                continue
            done = bool(terms[i]) or bool(truncs[i])
            final_info = info
            final_obs = obs[i]
            if done and mode == "SameStep":
                final_info = unbatch_info(binfo.get("final_info", {}), i)
                final_obs = binfo["final_obs"][i]
            slot = slots[i]
            if i in acted and slot.traj is not None:
                a = acted[i]
                calls = final_info.get("tool_calls", {}) or {}
                slot.traj.turns.append(TurnRecord(
                    action=a.text, observation=str(final_obs), prompt_ids=list(a.prompt_ids),
                    completion_ids=list(a.completion_ids), logprobs=list(a.logprobs), stop_reason=a.stop_reason,
                    tool_calls={k: v - slot.calls_before.get(k, 0) for k, v in calls.items()
                                if v - slot.calls_before.get(k, 0)},
                    generate_s=round(gen_s, 6), env_s=round(env_s / n, 6)))
                if slot.ep is not None and not done and hasattr(slot.ep, "observe"):
                    slot.ep.observe(final_obs, final_info)
            if done:
                finish(i, float(rewards[i]), bool(terms[i]), bool(truncs[i]), final_info)
                if mode == "NextStep":
                    pending_start[i] = True
                elif mode == "SameStep":
                    infos[i] = info
                    begin(i, obs[i], info)
            else:
                infos[i] = info
        if mode == "Disabled":
            mask = np.array([bool(terms[i]) or bool(truncs[i]) for i in range(n)], dtype=np.bool_)
            if mask.any():
                new_obs, rinfo = vec_env.reset(options={"reset_mask": mask})
                obs = tuple(new_obs[i] if mask[i] else obs[i] for i in range(n))
                for i in np.flatnonzero(mask):
                    infos[i] = unbatch_info(rinfo, int(i))
                    begin(int(i), obs[i], infos[i])
    return finished[:episodes]


def _act(policy: Policy, batched: bool, eps: list[EpisodePolicy | None], observations: list[str],
         infos: list[dict[str, Any]], run_sync: Any) -> list[Any]:
    """One action (or the exception it raised) per active slot."""
    if not observations:
        return []
    if batched:
        try:
            out = list(policy.act_batch(observations, infos))
        except Exception as exc:  # noqa: BLE001 - a crashing batch ends those episodes, not the run
            return [exc] * len(observations)
        if len(out) != len(observations):
            err = InvalidArgumentError(f"{type(policy).__name__}.act_batch returned {len(out)} actions for "
                                       f"{len(observations)} observations; expected one each.")
            return [err] * len(observations)
        return out

    async def gather() -> list[Any]:
        return await asyncio.gather(*(ep.aact(o, inf) for ep, o, inf in zip(eps, observations, infos)),
                                    return_exceptions=True)

    return run_sync(gather())


def _fill(traj: Trajectory, info: dict[str, Any]) -> None:
    traj.messages = list(info.get("messages", []) or [])
    traj.tool_calls = dict(info.get("tool_calls", {}) or {})
    traj.urls_visited = list(info.get("urls_visited", []) or [])
    traj.format_errors = int(info.get("format_errors", 0) or 0)
    traj.answer = info.get("answer")
    traj.reward_breakdown = dict(info.get("reward_breakdown", {}) or {})
    traj.info = info
