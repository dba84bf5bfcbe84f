"""Rollouts: run a policy in an environment for one episode or many, and summarize.

``evaluate`` gives the figures ``kimi-env eval`` prints: pass@1 (the share of episodes whose final reward is at least
``success_threshold``), average turns, tool calls, URLs visited and the format-error rate.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from .policies.base import Policy
from .wrappers import privileged_task


@dataclass
class Turn:
    action: str
    observation: str
    reward: float


@dataclass
class Trajectory:
    """One episode: the task, every turn, and the end state."""

    task: dict[str, Any] | None
    prompt: str
    turns: list[Turn] = field(default_factory=list)
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_turns(self) -> int:
        return len(self.turns)


def run_episode(
    env: gym.Env, policy: Policy, *, seed: int | None = None, options: dict[str, Any] | None = None,
    max_steps: int = 1000,
) -> Trajectory:
    """Play one episode. ``max_steps`` is a safety net on top of the env's own turn budget."""
    obs, info = env.reset(seed=seed, options=options)
    if getattr(policy, "privileged", False):  # h-env hook: scripted policies (the oracle) get the hop plan
        info = {**info, "privileged_task": privileged_task(env)}
    policy.reset(info)
    traj = Trajectory(task=info.get("task"), prompt=obs, tools=info.get("tools", []))
    for _ in range(max_steps):
        action = policy.act(obs, info)
        obs, reward, terminated, truncated, info = env.step(action)
        traj.turns.append(Turn(action, obs, float(reward)))
        if terminated or truncated:
            traj.reward, traj.terminated, traj.truncated = float(reward), terminated, truncated
            break
    traj.info = info
    return traj


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


def evaluate(
    env: gym.Env, policy: Policy, *, episodes: int, seed: int = 0, success_threshold: float = 1.0,
    tasks: list[Any] | None = None,
) -> dict[str, Any]:
    """Run ``episodes`` episodes (seeds ``seed, seed+1, ...``, or the given tasks in order) and summarize them."""
    start = time.perf_counter()
    trajs = []
    for i in range(episodes):
        options = {"task": tasks[i % len(tasks)]} if tasks else None
        trajs.append(run_episode(env, policy, seed=seed + i, options=options))
    n = len(trajs)
    wins = sum(t.reward >= success_threshold for t in trajs)
    tool_calls: Counter[str] = Counter()
    for t in trajs:
        tool_calls.update(t.info.get("tool_calls", {}))
    lo, hi = wilson_interval(wins, n)
    return {
        "pass@1": wins / n if n else 0.0,
        "pass@1_ci95": [round(lo, 4), round(hi, 4)],
        "episodes": n,
        "mean_reward": sum(t.reward for t in trajs) / n if n else 0.0,
        "avg_turns": sum(t.num_turns for t in trajs) / n if n else 0.0,
        "tool_calls": sum(tool_calls.values()) / n if n else 0.0,
        "tool_calls_by_tool": dict(sorted(tool_calls.items())),
        "urls_visited": sum(len(t.info.get("urls_visited", [])) for t in trajs) / n if n else 0.0,
        "format_error_rate": sum(t.info.get("format_errors", 0) > 0 for t in trajs) / n if n else 0.0,
        "truncated_rate": sum(t.truncated for t in trajs) / n if n else 0.0,
        "seconds": round(time.perf_counter() - start, 3),
    }


def demonstration(traj: Trajectory) -> dict[str, Any]:
    """One episode as a chat demonstration: ``messages`` (system, user, then assistant turns and tool responses
    exactly as the policy saw them) and ``tools`` (the schemas), the format TRL's SFT trainer and
    ``apply_chat_template(tools=...)`` take."""
    return {
        "task_id": (traj.task or {}).get("id"),
        "messages": traj.info.get("messages", []),
        "tools": traj.tools,
        "reward": traj.reward,
        "num_turns": traj.num_turns,
    }


def write_demonstrations(
    env: gym.Env, policy: Policy, path: str | Path, *, episodes: int, seed: int = 0, min_reward: float = 1.0,
) -> dict[str, Any]:
    """Play ``episodes`` episodes and write those with reward >= ``min_reward`` as JSONL demonstrations."""
    kept = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for i in range(episodes):
            traj = run_episode(env, policy, seed=seed + i)
            if traj.reward >= min_reward:
                fh.write(json.dumps(demonstration(traj), ensure_ascii=False, sort_keys=True) + "\n")
                kept += 1
    return {"episodes": episodes, "written": kept}
