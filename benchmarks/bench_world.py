"""World, task synthesis and environment throughput.

    .venv/bin/python benchmarks/bench_world.py

Measures, in a fresh cache directory: generating the default world (2,000 pages) and a 20k-page one; building the
default world's corpus and search index; synthesizing 10,000 tasks through the funnel (stages a, c, d); the oracle
stage (b) on 500 tasks; and oracle episodes per second and per-step latency in each registered world environment.
Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time


def main() -> None:
    os.environ["KIMI_ENV_CACHE"] = tempfile.mkdtemp(prefix="kimi-bench-")
    from kimi_env.world import generate_world
    from kimi_env.world.funnel import build_tasks
    from kimi_env.world.solvable import OracleSolvable, world_corpus

    out: dict = {}
    for pages in (2000, 20000):
        t = time.perf_counter()
        w = generate_world(seed=0, n_pages=pages)
        n_docs = sum(1 for _ in w.documents())
        out[f"world_{pages}_generate_and_render_s"] = round(time.perf_counter() - t, 2)
        out[f"world_{pages}_documents"] = n_docs
    world = generate_world(seed=0, n_pages=2000)
    t = time.perf_counter()
    corpus = world_corpus(world)
    out["default_corpus_build_s"] = round(time.perf_counter() - t, 2)
    from kimi_env.web.index import get_index

    t = time.perf_counter()
    get_index(corpus)
    out["default_index_build_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    tasks, report = build_tasks(world, 10_000, seed=0, log=lambda *a, **k: None)
    out["synth_10k_tasks_s"] = round(time.perf_counter() - t, 2)
    out["synth_10k_funnel"] = {s["name"]: {"in": s["in"], "dropped": s["dropped"], "status": s["status"]}
                               for s in report.as_dict()["stages"]}
    t = time.perf_counter()
    verdicts = OracleSolvable(world)(tasks[:500])
    out["oracle_stage_b_500_tasks_s"] = round(time.perf_counter() - t, 2)
    out["oracle_stage_b_500_kept"] = sum(verdicts)

    import kimi_env
    from kimi_env.policies import OraclePolicy
    from kimi_env.rollout import run_episode

    for env_id in ("SearchQA-v0", "BrowseQA-v0", "CodeQA-v0", "DeepResearch-v0", "MathCode-v0"):
        env = kimi_env.make(env_id, split="test")
        policy = OraclePolicy()
        run_episode(env, policy, seed=0)  # warm up workers and server
        steps, t0 = [], time.perf_counter()
        episodes = 100
        for seed in range(episodes):
            obs, info = env.reset(seed=seed)
            policy.reset(info)
            while True:
                action = policy.act(obs, info)
                t = time.perf_counter()
                obs, reward, term, trunc, info = env.step(action)
                steps.append(time.perf_counter() - t)
                if term or trunc:
                    break
        total = time.perf_counter() - t0
        env.close()
        out[env_id] = {"episodes_per_s": round(episodes / total, 1),
                       "step_p50_ms": round(1000 * statistics.median(steps), 2),
                       "step_p99_ms": round(1000 * sorted(steps)[int(0.99 * len(steps))], 2),
                       "steps_per_episode": round(len(steps) / episodes, 2)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
