"""What the first ``gym.make`` of a world environment costs with an empty cache, and a warm one.

    .venv/bin/python benchmarks/bench_first_run.py [--env kimi_env/DeepResearch-v0] [--repeats 1]

Each run is a fresh interpreter; the cold run gets a new empty ``$KIMI_ENV_CACHE``, the warm run reuses it. Prints
the build-stage lines the cold run wrote to stderr, and wall and CPU seconds (user + system of the child) of each.
CPU seconds are the figure to compare on a shared machine; wall time depends on the load.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time


def run(env_id: str, cache: str) -> tuple[float, float, str]:
    code = f"import gymnasium as gym; gym.make({'kimi_env:' + env_id!r}).close()"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "KIMI_ENV_CACHE": cache, "KIMI_ENV_PROGRESS": "1"}, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default="kimi_env/DeepResearch-v0")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="kimi-env-bench-cache-") as cache:
            wall, cpu, err = run(args.env, cache)
            print(err.strip())
            print(f"cold: wall {wall:.1f} s, cpu {cpu:.1f} s")
            wall, cpu, err = run(args.env, cache)
            print(f"warm: wall {wall:.1f} s, cpu {cpu:.1f} s, stage lines: {err.count('kimi-env: ')}")


if __name__ == "__main__":
    main()
