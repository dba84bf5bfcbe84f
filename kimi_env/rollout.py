"""Rollouts: run a policy for one episode or many, concurrently, and record token-exact trajectories.

* :func:`run_episode` / :func:`evaluate`: one environment, episodes one after another (the simple API).
* :class:`RolloutEngine`: many episodes in flight on one event loop through ``ToolEnv.astep``, with bounded
  concurrency, a per-episode wall-clock budget, trajectories streamed to JSONL as each episode ends, and
  cancellation that closes what an episode opened. A language-model policy (``hf:``) serves every pending turn of
  every episode as one batched forward pass with a KV cache (see :mod:`kimi_env.policies.hf`); a tool call of one
  episode never blocks another's generation, because tools run on the process's tool loop and generation runs in a
  worker thread.
* :func:`summarize`: the figures ``kimi-env eval`` prints (pass@1 and pass@k with Wilson intervals, turns, tool
  calls by tool, URLs, format-error and truncation rates, tokens, episodes per second).

Scaling out: the engine's unit of work is an :class:`EpisodeJob` and its product a
:class:`~kimi_env.trajectory.Trajectory` (plain data, JSON-serializable). Running groups of environments in other
processes or on Ray actors means running one engine per worker over a slice of the jobs and shipping the
trajectories back; the trainer only ever consumes trajectories.

Bad input: a policy that raises or times out ends its episode with ``end_reason`` ``policy_error`` /
``timeout`` and ``error`` set (the trainer excludes such episodes; they are never silently a zero); a policy that
runs out of tokens ends the episode under the environment's budget rule (``token_budget``, the format penalty).
The other episodes and the engine keep running.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

from .policies.base import Action, Policy
from .trajectory import Trajectory, TrajectoryWriter, TurnRecord

__all__ = ["EpisodeJob", "RolloutEngine", "run_episode", "evaluate", "summarize", "wilson_interval",
           "demonstration", "write_demonstrations", "pass_at_k", "run_vector"]


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to play: a reset seed and optionally a given task (a ``Task`` or dict) and a group key."""

    seed: int | None = None
    task: Any = None
    group: Any = None


def _run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="kimi-env-rollout")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _tool_env(env: gym.Env) -> Any:
    return env.unwrapped


async def _astep(env: gym.Env, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
    """Await one step through the user's Gymnasium wrappers (``kimi_env.astep`` walks them)."""
    try:
        from .wrappers import astep
    except ImportError:  # pragma: no cover - older layout
        fn = getattr(env, "astep", None) or _tool_env(env).astep
        return await fn(action)
    return await astep(env, action)


def _privileged(env: gym.Env) -> Any:
    try:
        from .wrappers import privileged_task
    except ImportError:  # pragma: no cover - older layout
        return getattr(_tool_env(env), "task", None)
    return privileged_task(env)


def _end_without_step(env: gym.Env, reason: str) -> tuple[float, dict[str, Any]]:
    """End the episode under the environment's own budget rule (``truncate``), when it has one."""
    base = _tool_env(env)
    truncate = getattr(base, "truncate", None)
    if truncate is not None:
        out = truncate(reason)
        if isinstance(out, tuple) and len(out) == 5:
            return float(out[1]), out[4]
    return float(getattr(base, "format_penalty", 0.0)), {}


def _abort(env: gym.Env, traj: Trajectory, info: dict[str, Any], reason: str, error: str | None = None
           ) -> dict[str, Any]:
    """End the episode without a step (timeout, crashed policy, token or step budget) under the environment's
    budget rule; ``error`` marks a crashed episode (excluded by the trainer). Returns the info to keep."""
    traj.reward, new_info = _end_without_step(env, reason)
    traj.end_reason, traj.truncated, traj.error = reason, True, error
    return new_info or info


async def arun_episode(
    env: gym.Env, policy: Policy, job: EpisodeJob = EpisodeJob(), *, max_steps: int = 1000,
    episode_timeout: float | None = None, env_id: str = "", exclusive: bool = False,
) -> Trajectory:
    """Play one episode asynchronously and return its trajectory (never raises for a misbehaving policy)."""
    start = time.perf_counter()
    options = {"task": job.task} if job.task is not None else None
    obs, info = env.reset(seed=job.seed, options=options)
    if getattr(policy, "privileged", False):  # scripted policies (the oracle) read the hop plan
        info = {**info, "privileged_task": _privileged(env)}
    task = info.get("task") or {}
    meta = task.get("metadata") or {}
    base = _tool_env(env)
    private = getattr(base, "task", None)
    traj = Trajectory(
        task_id=task.get("id"), question=str(task.get("question", "")), env_id=env_id or str(getattr(env.spec, "id", "")),
        model=getattr(policy, "model_name", "") or "", policy=getattr(policy, "name", type(policy).__name__),
        sampling=policy.sampling_settings(), kind=meta.get("kind"), hops=meta.get("hops"), tools=info.get("tools", []),
        answers=list(getattr(private, "answers", ()) or ()), seed=job.seed, episode_id=uuid.uuid4().hex[:12],
        task=task, prompt=obs,
    )
    ep = policy.episode(info, exclusive=exclusive)
    try:
        for _ in range(max_steps):
            remaining = None if episode_timeout is None else episode_timeout - (time.perf_counter() - start)
            t0 = time.perf_counter()
            try:
                if remaining is not None and remaining <= 0:
                    raise asyncio.TimeoutError
                act = await asyncio.wait_for(ep.aact(obs, info), remaining)
            except asyncio.TimeoutError:
                info = _abort(env, traj, info, "timeout",
                              f"the episode passed its wall-clock budget of {episode_timeout} s")
                break
            except Exception as exc:  # noqa: BLE001 - a crashing policy ends its episode, not the engine
                info = _abort(env, traj, info, "policy_error",
                              f"the policy raised {type(exc).__name__}: {str(exc)[:300]}")
                break
            if not isinstance(act, Action):
                act = Action(text=str(act))
            t1 = time.perf_counter()
            turn = TurnRecord(action=act.text, prompt_ids=list(act.prompt_ids), completion_ids=list(act.completion_ids),
                              logprobs=list(act.logprobs), stop_reason=act.stop_reason, generate_s=round(t1 - t0, 6))
            traj.turns.append(turn)
            if act.stop_reason == "length":
                info = _abort(env, traj, info, "token_budget")
                break
            calls_before = dict(info.get("tool_calls", {}))
            obs, reward, terminated, truncated, info = await _astep(env, act.text)
            turn.env_s = round(time.perf_counter() - t1, 6)
            turn.observation = obs
            turn.tool_calls = {k: v - calls_before.get(k, 0) for k, v in info.get("tool_calls", {}).items()
                               if v - calls_before.get(k, 0)}
            if terminated or truncated:
                traj.reward, traj.terminated, traj.truncated = float(reward), bool(terminated), bool(truncated)
                traj.end_reason = info.get("end_reason")
                break
            if hasattr(ep, "observe"):
                ep.observe(obs, info)
        else:
            info = _abort(env, traj, info, "max_steps")
    finally:
        ep.close()
    traj.info = info
    traj.messages = info.get("messages", [])
    traj.tool_calls = dict(info.get("tool_calls", {}))
    traj.urls_visited = list(info.get("urls_visited", []))
    traj.format_errors = int(info.get("format_errors", 0) or 0)
    traj.answer = info.get("answer")
    traj.reward_breakdown = dict(info.get("reward_breakdown", {}) or {})
    traj.append_only = _is_append_only(traj)
    traj.wall_s = round(time.perf_counter() - start, 6)
    return traj


def _is_append_only(traj: Trajectory) -> bool:
    for a, b in zip(traj.turns, traj.turns[1:]):
        if not a.prompt_ids and not b.prompt_ids:
            continue
        seen = a.prompt_ids + a.completion_ids
        if b.prompt_ids[: len(seen)] != seen:
            return False
    return True


def run_vector(vec_env: Any, policy: Policy, episodes: int, **kwargs: Any) -> list[Trajectory]:
    """Drive a Gymnasium vector environment (``SyncVectorEnv``/``AsyncVectorEnv``) until ``episodes`` episodes
    finish; see :func:`kimi_env.vector.run_vector`."""
    from .vector import run_vector as _run_vector

    return _run_vector(vec_env, policy, episodes, **kwargs)


def run_episode(
    env: gym.Env, policy: Policy, *, seed: int | None = None, options: dict[str, Any] | None = None,
    max_steps: int = 1000,
) -> Trajectory:
    """Play one episode (synchronously). ``max_steps`` is a safety net on top of the env's own turn budget."""
    task = (options or {}).get("task")
    return _run_sync(arun_episode(env, policy, EpisodeJob(seed=seed, task=task), max_steps=max_steps, exclusive=True))


class RolloutEngine:
    """Many episodes in flight at once.

    Args:
        env_fn: A registered id (``"kimi_env/SearchQA-v0"``) or a zero-argument callable returning an environment;
            the engine makes ``concurrency`` environments and closes them when done.
        policy: Any :class:`~kimi_env.policies.Policy` (its :meth:`~kimi_env.policies.Policy.episode` gives each
            episode its own state).
        concurrency: Episodes in flight at once.
        episode_timeout: Wall-clock seconds an episode may take (policy time included); past it the episode ends
            with ``end_reason="timeout"``.
        out: Optional JSONL path; every trajectory is appended as its episode ends.
        env_kwargs: Keyword arguments for ``gym.make`` when ``env_fn`` is an id.
    """

    def __init__(
        self, env_fn: str | Callable[[], gym.Env], policy: Policy, *, concurrency: int = 8,
        episode_timeout: float | None = None, max_steps: int = 1000, out: str | Path | None = None,
        env_kwargs: dict[str, Any] | None = None, progress: Callable[[Trajectory, int, int], None] | None = None,
    ) -> None:
        from .errors import InvalidArgumentError

        if not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgumentError(f"concurrency must be an int >= 1, got {concurrency!r}.")
        if episode_timeout is not None and not episode_timeout > 0:
            raise InvalidArgumentError(f"episode_timeout must be positive seconds or None, got {episode_timeout!r}.")
        if isinstance(env_fn, str):
            env_id, kwargs = env_fn, dict(env_kwargs or {})

            def make() -> gym.Env:
                from .registration import make as make_env

                return make_env(env_id, **kwargs)

            self.env_id = env_id
            self._make = make
        else:
            self.env_id = ""
            self._make = env_fn
        self.policy = policy
        self.concurrency = concurrency
        self.episode_timeout = episode_timeout
        self.max_steps = max_steps
        self.out = out
        self.progress = progress

    async def arun(self, jobs: Sequence[EpisodeJob]) -> list[Trajectory]:
        """Play every job; return the trajectories in job order."""
        jobs = list(jobs)
        results: list[Trajectory | None] = [None] * len(jobs)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(jobs)):
            queue.put_nowait(i)
        writer = TrajectoryWriter(self.out) if self.out else None
        envs: list[gym.Env] = []
        done = 0

        async def worker(env: gym.Env) -> None:
            nonlocal done
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                traj = await arun_episode(env, self.policy, jobs[i], max_steps=self.max_steps,
                                          episode_timeout=self.episode_timeout, env_id=self.env_id)
                if jobs[i].group is not None:
                    traj.extra["group"] = jobs[i].group
                results[i] = traj
                done += 1
                if writer is not None:
                    writer.write(traj)
                if self.progress is not None:
                    self.progress(traj, done, len(jobs))

        try:
            n = min(self.concurrency, len(jobs))
            for _ in range(n):
                envs.append(await asyncio.to_thread(self._make))
            await asyncio.gather(*(worker(env) for env in envs))
        finally:
            for env in envs:
                try:
                    env.close()
                except Exception:  # noqa: BLE001 - closing must not mask the real error
                    pass
            if writer is not None:
                writer.close()
        return [r for r in results if r is not None]

    def run(self, jobs: Sequence[EpisodeJob]) -> list[Trajectory]:
        return _run_sync(self.arun(jobs))


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion.

    >>> [round(x, 3) for x in wilson_interval(5, 10)]
    [0.237, 0.763]
    """
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples with ``c`` correct (Chen et al., 2021).

    >>> pass_at_k(4, 1, 1), pass_at_k(4, 1, 4), pass_at_k(4, 0, 2)
    (0.25, 1.0, 0.0)
    """
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def summarize(trajs: Sequence[Trajectory], *, success_threshold: float = 1.0, k: int = 1,
              seconds: float | None = None) -> dict[str, Any]:
    """The evaluation figures over finished trajectories (crashed episodes are counted apart, not as zeros)."""
    ok = [t for t in trajs if t.error is None]
    n = len(ok)
    wins = sum(t.reward >= success_threshold for t in ok)
    tool_calls: Counter[str] = Counter()
    for t in ok:
        tool_calls.update(t.tool_calls)
    lo, hi = wilson_interval(wins, n)
    out: dict[str, Any] = {
        "pass@1": wins / n if n else 0.0,
        "pass@1_ci95": [round(lo, 4), round(hi, 4)],
        "episodes": n,
        "crashed_episodes": len(trajs) - n,
        "mean_reward": sum(t.reward for t in ok) / n if n else 0.0,
        "avg_turns": sum(t.num_turns for t in ok) / n if n else 0.0,
        "tool_calls": sum(tool_calls.values()) / n if n else 0.0,
        "tool_calls_by_tool": dict(sorted(tool_calls.items())),
        "urls_visited": sum(len(t.urls_visited) for t in ok) / n if n else 0.0,
        "format_error_rate": sum(t.format_errors > 0 for t in ok) / n if n else 0.0,
        "truncated_rate": sum(t.truncated for t in ok) / n if n else 0.0,
        "tokens_generated": sum(len(turn.completion_ids) for t in ok for turn in t.turns),
    }
    if k > 1:
        by_task: dict[Any, list[bool]] = {}
        for t in ok:
            by_task.setdefault(t.task_id, []).append(t.reward >= success_threshold)
        vals = [pass_at_k(len(v), sum(v), k) for v in by_task.values() if len(v) >= k]
        out[f"pass@{k}"] = sum(vals) / len(vals) if vals else None
        out[f"pass@{k}_tasks"] = len(vals)
    if seconds is not None:
        out["seconds"] = round(seconds, 3)
        out["episodes_per_s"] = round(len(trajs) / seconds, 3) if seconds > 0 else None
    return out


def evaluate(
    env: gym.Env, policy: Policy, *, episodes: int, seed: int = 0, success_threshold: float = 1.0,
    tasks: list[Any] | None = None,
) -> dict[str, Any]:
    """Run ``episodes`` episodes on one environment (seeds ``seed, seed+1, ...``, or the given tasks in order)."""
    start = time.perf_counter()
    trajs = []
    for i in range(episodes):
        task = tasks[i % len(tasks)] if tasks else None
        trajs.append(_run_sync(arun_episode(env, policy, EpisodeJob(seed=seed + i, task=task), exclusive=True)))
    return summarize(trajs, success_threshold=success_threshold, seconds=time.perf_counter() - start)


def demonstration(traj: Trajectory) -> dict[str, Any]:
    """One episode as a chat demonstration: ``messages`` (system, user, then assistant turns and tool responses
    exactly as the policy saw them) and ``tools`` (the schemas), the format TRL's SFT trainer and
    ``apply_chat_template(tools=...)`` take."""
    return {
        "task_id": traj.task_id,
        "messages": traj.messages,
        "tools": traj.tools,
        "reward": traj.reward,
        "num_turns": traj.num_turns,
        "kind": traj.kind,
        "hops": traj.hops,
    }


def write_demonstrations(
    env: gym.Env, policy: Policy, path: str | Path, *, episodes: int, seed: int = 0, min_reward: float = 1.0,
) -> dict[str, Any]:
    """Play ``episodes`` episodes and write those with reward >= ``min_reward`` as JSONL demonstrations."""
    import json

    kept = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for i in range(episodes):
            traj = run_episode(env, policy, seed=seed + i)
            if traj.reward >= min_reward:
                fh.write(json.dumps(demonstration(traj), ensure_ascii=False, sort_keys=True) + "\n")
                kept += 1
    return {"episodes": episodes, "written": kept}
