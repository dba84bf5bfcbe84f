"""Rollout engine throughput: episodes per second with a policy of fixed latency at several concurrency levels, and
the environment's own overhead per step beyond tool time.

    nice -n 10 .venv/bin/python benchmarks/bench_rollout.py [--env kimi_env/DeepResearch-v0] [--latency 0.05]
        [--concurrency 1 8 64] [--inner oracle no-tool] [--waves 3]

The policy sleeps ``--latency`` seconds (``asyncio.sleep``: a remote model's reply time) before each turn, then
plays the turn of an inner policy: ``oracle`` (real search/browse/python calls along the task's hop plan, 4-8 turns)
or ``no-tool`` (answers at once: one turn, so the figure is the engine's own ceiling). Each concurrency level ``c``
plays ``waves * c`` episodes (at least 8) through :class:`~kimi_env.rollout.RolloutEngine`; the environments are
built once before timing and reused (their creation is not part of the figure). Prints one JSON object.

Overhead per step: at concurrency 1, every ``astep`` is timed and the time spent inside the tools' ``acall``
(the union span of the step's calls, which run concurrently) is subtracted; what is left is parsing, validation,
rendering, budgets and the hop to the tool loop and back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

import gymnasium as gym

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import kimi_env  # noqa: E402
from kimi_env.policies import Policy, get_policy  # noqa: E402
from kimi_env.policies.base import Action, EpisodePolicy  # noqa: E402
from kimi_env.rollout import EpisodeJob, RolloutEngine  # noqa: E402


class LatencyPolicy(Policy):
    """Waits ``latency`` seconds, then plays the inner policy's turn."""

    def __init__(self, inner: Policy, latency: float) -> None:
        self.inner, self.latency = inner, latency
        self.name = f"latency({inner.name}, {latency:g} s)"
        # the engine hands scripted policies (the oracle) the task's hop plan only when the policy asks for it
        self.privileged = getattr(inner, "privileged", False)

    def episode(self, info: dict[str, Any], *, exclusive: bool = False) -> EpisodePolicy:
        inner_ep = self.inner.episode(info, exclusive=exclusive)
        latency = self.latency

        class _Ep(EpisodePolicy):
            async def aact(self, observation: str, info: dict[str, Any]) -> Action:
                await asyncio.sleep(latency)
                return await inner_ep.aact(observation, info)

            def close(self) -> None:
                inner_ep.close()

        return _Ep(self)


class Reusable(gym.Wrapper):
    """Keeps a pre-built environment open when the engine closes it, and times each ``astep`` against the time its
    tools spend in ``acall``."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.spans: list[tuple[float, float]] = []
        self.records: list[tuple[float, float]] = []  # (step wall, tool span) per step
        for tool in env.unwrapped.tools:
            self._instrument(tool)

    def _instrument(self, tool: Any) -> None:
        original = tool.acall
        spans = self.spans

        async def timed(**arguments: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await original(**arguments)
            finally:
                spans.append((t0, time.perf_counter()))

        tool.acall = timed

    async def astep(self, action: str) -> Any:
        self.spans.clear()
        t0 = time.perf_counter()
        out = await self.env.unwrapped.astep(action)
        wall = time.perf_counter() - t0
        span = (max(e for _, e in self.spans) - min(s for s, _ in self.spans)) if self.spans else 0.0
        self.records.append((wall, span))
        return out

    def close(self) -> None:  # the benchmark closes the real environments at the end
        pass


def run_level(envs: list[Reusable], policy: Policy, concurrency: int, episodes: int, seed0: int) -> dict[str, Any]:
    pool = list(envs[:concurrency])
    engine = RolloutEngine(lambda: pool.pop(), policy, concurrency=concurrency, episode_timeout=600)
    jobs = [EpisodeJob(seed=seed0 + i) for i in range(episodes)]
    t0 = time.perf_counter()
    trajs = engine.run(jobs)
    wall = time.perf_counter() - t0
    turns = sum(t.num_turns for t in trajs)
    return {"concurrency": concurrency, "episodes": len(trajs), "seconds": round(wall, 3),
            "episodes_per_s": round(len(trajs) / wall, 3), "turns": turns,
            "pass@1": round(sum(t.reward >= 1.0 for t in trajs) / len(trajs), 3),
            "crashed": sum(t.error is not None for t in trajs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="kimi_env/DeepResearch-v0")
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--inner", nargs="+", default=["oracle", "no-tool"])
    ap.add_argument("--waves", type=int, default=3, help="episodes per level = waves * concurrency (at least 8)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    envs = [Reusable(kimi_env.make(args.env, split="test")) for _ in range(max(args.concurrency))]
    build_s = time.perf_counter() - t0
    report: dict[str, Any] = {"env": args.env, "latency_s": args.latency, "cpu_count": os.cpu_count(),
                              "env_build_s": round(build_s, 1), "levels": {}}
    try:
        # warm up: the python tool's worker pool, the index, the corpus server
        run_level(envs, LatencyPolicy(get_policy("oracle"), 0.0), min(8, len(envs)), 8, 10_000)
        for inner in args.inner:
            rows = []
            for c in args.concurrency:
                if c == 1:
                    for e in envs[:1]:
                        e.records.clear()
                rows.append(run_level(envs, LatencyPolicy(get_policy(inner), args.latency), c,
                                      max(8, args.waves * c), 0))
                if c == 1 and inner == "oracle":
                    over = [1000 * (w - s) for w, s in envs[0].records]
                    tool = [1000 * s for _, s in envs[0].records]
                    report["overhead_per_step_ms"] = {
                        "steps": len(over), "p50": round(statistics.median(over), 3),
                        "p90": round(sorted(over)[int(0.9 * (len(over) - 1))], 3), "max": round(max(over), 3),
                        "tool_span_p50_ms": round(statistics.median(tool), 3)}
            base = rows[0]["episodes_per_s"]
            for r in rows:
                r["speedup_vs_c1"] = round(r["episodes_per_s"] / base, 2) if base else None
            report["levels"][inner] = rows
    finally:
        for e in envs:
            e.env.close()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
