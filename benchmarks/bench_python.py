"""Latency and throughput of the python tool's warm workers versus a fresh interpreter per call.

Run: .venv/bin/python benchmarks/bench_python.py [--n 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

from kimi_env import aio
from kimi_env.tools import PythonTool

TRIVIAL = "print(1+1)"
# about 10 ms of CPU on a ~3 GHz core
COMPUTE = "s = 0\nfor i in range(120000):\n    s += i * i\nprint(s)"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def warm_latency(tool: PythonTool, code: str, n: int) -> list[float]:
    tool.call(code=code)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = tool.call(code=code)
        out.append(time.perf_counter() - t)
        assert r.ok, r.content
    return out


def fresh_latency(code: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        out.append(time.perf_counter() - t)
    return out


def throughput(n_tools: int, code: str, seconds: float) -> float:
    tools = [PythonTool() for _ in range(n_tools)]
    for t in tools:
        t.call(code="1")

    async def loop(tool: PythonTool, stop: float) -> int:
        done = 0
        while time.perf_counter() < stop:
            r = await tool.acall(code=code)
            assert r.ok
            done += 1
        return done

    async def main() -> int:
        stop = time.perf_counter() + seconds
        return sum(await asyncio.gather(*(loop(t, stop) for t in tools)))

    total = aio.run(main())
    for t in tools:
        t.close()
    return total / seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--fresh-n", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    tool = PythonTool()
    t = time.perf_counter()
    tool.call(code="1")
    print(f"first call (cold worker start): {1000 * (time.perf_counter() - t):.1f} ms")
    print(f"machine: {os.cpu_count()} CPUs, shared with other jobs; python {sys.version.split()[0]}")
    print(f"{'call':<28}{'p50 ms':>10}{'p99 ms':>10}")
    rows = {}
    for label, code in (("warm print(1+1)", TRIVIAL), ("warm ~10 ms loop", COMPUTE)):
        lat = warm_latency(tool, code, args.n)
        rows[label] = lat
        print(f"{label:<28}{1000 * pct(lat, 0.5):>10.2f}{1000 * pct(lat, 0.99):>10.2f}")
    for label, code in (("fresh python -c print", TRIVIAL), ("fresh python -c ~10 ms", COMPUTE)):
        lat = fresh_latency(code, args.fresh_n)
        rows[label] = lat
        print(f"{label:<28}{1000 * pct(lat, 0.5):>10.2f}{1000 * pct(lat, 0.99):>10.2f}")
    print(
        f"ratio fresh/warm p50, trivial: {pct(rows['fresh python -c print'], 0.5) / pct(rows['warm print(1+1)'], 0.5):.1f}x"
    )
    print(
        f"ratio fresh/warm p50, ~10 ms: {pct(rows['fresh python -c ~10 ms'], 0.5) / pct(rows['warm ~10 ms loop'], 0.5):.1f}x"
    )
    tool.close()
    for n in (1, 2):
        print(f"throughput, {n} worker(s), ~10 ms calls: {throughput(n, COMPUTE, args.seconds):.1f} calls/s")
        print(f"throughput, {n} worker(s), print(1+1): {throughput(n, TRIVIAL, args.seconds):.1f} calls/s")


if __name__ == "__main__":
    main()
