"""The environment substrate (issue 13): what the behaviour tests no longer time.

    .venv/bin/python benchmarks/bench_substrate.py

Measures, side by side in one process and a fresh cache directory:

* finding a cached world corpus from a freshly generated world object: the old key (``World.fingerprint()``, which
  renders every page) against the new one (``World.cache_key()``, no rendering), at 2,000 and 20,000 pages;
* the pickled size of an environment's observation space: Gymnasium's ``Text`` over our charset against
  ``UnicodeText``, and of a whole Calculator environment;
* the funnel on 2,000 tasks and the default world's generation (the figures ``tests/test_synth.py`` and
  ``tests/test_world.py`` used to assert).

Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import time


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    os.environ["KIMI_ENV_CACHE"] = tempfile.mkdtemp(prefix="kimi-bench-substrate-")
    import gymnasium as gym

    import kimi_env
    from kimi_env.spaces import text_space, unicode_charset
    from kimi_env.world import generate_world
    from kimi_env.world.funnel import build_tasks
    from kimi_env.world.solvable import world_corpus

    out: dict = {}
    for pages in (2000, 20000):
        world_corpus(generate_world(seed=0, n_pages=pages))  # build the cache once
        gen_s, fresh = timed(lambda: generate_world(seed=0, n_pages=pages))
        old_s, _ = timed(fresh.fingerprint)
        new_s, _ = timed(fresh.cache_key)
        hit_s, _ = timed(lambda: world_corpus(generate_world(seed=0, n_pages=pages)))
        out[f"world_{pages}"] = {"generate_s": round(gen_s, 3), "old_key_fingerprint_s": round(old_s, 3),
                                 "new_key_cache_key_s": round(new_s, 5), "corpus_cache_hit_incl_generate_s":
                                 round(hit_s, 3), "old_over_new": round(old_s / max(new_s, 1e-9))}
    old_space = gym.spaces.Text(max_length=16_000, min_length=0, charset=unicode_charset())
    new_space = text_space(16_000)
    env = gym.make("kimi_env/Calculator-v0")
    env.reset(seed=0)
    try:
        env_bytes = len(pickle.dumps(env.unwrapped))
    except Exception as exc:  # noqa: BLE001 - report, do not fail
        env_bytes = f"not picklable: {type(exc).__name__}"
    env.close()
    old_pickle_s, old_blob = timed(lambda: pickle.dumps(old_space), 3)
    new_pickle_s, new_blob = timed(lambda: pickle.dumps(new_space), 3)
    out["observation_space_pickle"] = {
        "gymnasium_Text_bytes": len(old_blob), "UnicodeText_bytes": len(new_blob),
        "gymnasium_Text_dumps_ms": round(1000 * old_pickle_s, 2), "UnicodeText_dumps_ms": round(1000 * new_pickle_s, 3),
        "calculator_env_bytes": env_bytes,
    }
    world = generate_world(seed=0, n_pages=2000)
    funnel_s, (tasks, report) = timed(lambda: build_tasks(world, 2000, seed=11, log=None))
    out["funnel_2000_tasks_s"] = round(funnel_s, 2)
    out["funnel_2000_kinds"] = report.kinds
    gen_s, _ = timed(lambda: sum(1 for _ in generate_world().documents()))
    out["default_world_generate_and_render_s"] = round(gen_s, 2)
    out["kimi_env_version"] = kimi_env.__version__
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
