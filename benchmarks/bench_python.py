"""Latency and throughput of the python tool's warm workers versus a fresh interpreter per call; the cost of a
worker start with and without the PID/mount namespaces; the timings the sandbox tests used to assert (cold import,
the next call after an attack, the kill of a runaway call, the next episode after a hanging finalizer).

Run: .venv/bin/python benchmarks/bench_python.py [--n 300] [--startup-n 20] [--only startup,recovery]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

from kimi_env import aio
from kimi_env.sandbox import SandboxConfig
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


def cold_import(n: int) -> list[float]:
    """Fresh interpreter: import the tool and build 100 tools (nothing starts), as test_python_tool once timed."""
    code = (
        "import time\nt = time.perf_counter()\nfrom kimi_env.tools import PythonTool\n"
        "tools = [PythonTool() for _ in range(100)]\nprint(time.perf_counter() - t)"
    )
    return [float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
            for _ in range(n)]  # fmt: skip


def worker_start(config: SandboxConfig, n: int) -> list[float]:
    """First call of an episode when no worker is warm (max_idle=0: every released worker is stopped)."""
    tool = PythonTool(sandbox=config.replace(min_idle=0, max_idle=0))
    out = []
    for _ in range(n):
        tool.reset()
        t = time.perf_counter()
        r = tool.call(code="1")
        out.append(time.perf_counter() - t)
        assert r.ok, r.content
    tool.close()
    return out


def recovery(n: int) -> dict[str, list[float]]:
    """What the sandbox tests asserted as timings: now measured here."""
    rows: dict[str, list[float]] = {"kill overshoot, 1 s limit": [], "next call after a kill": [],
                                    "next episode after a hung finalizer": []}  # fmt: skip
    tool = PythonTool(timeout=1.0, sandbox=SandboxConfig(memory_mb=384))
    tool.call(code="1")
    hang = "def g():\n    try:\n        yield 1\n    finally:\n        while True:\n            pass\nx = g()\nnext(x)"
    for _ in range(n):
        t = time.perf_counter()
        r = tool.call(code="while True:\n    pass")
        rows["kill overshoot, 1 s limit"].append(time.perf_counter() - t - 1.0)
        assert r.status == "timeout", r.content
        tool.reset()
        t = time.perf_counter()
        assert tool.call(code="print(1+1)").ok
        rows["next call after a kill"].append(time.perf_counter() - t)
        tool.reset()
        assert tool.call(code=hang).ok
        tool.reset()
        t = time.perf_counter()
        assert tool.call(code="print('B')").ok
        rows["next episode after a hung finalizer"].append(time.perf_counter() - t)
        time.sleep(2.2)  # let the hung worker's recycle_timeout_s (2 s) expire before the next round
    tool.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--fresh-n", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--startup-n", type=int, default=20)
    ap.add_argument("--only", default="", help="comma list of sections: latency, startup, recovery")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    print(f"machine: {os.cpu_count()} CPUs, shared with other jobs; python {sys.version.split()[0]}")
    if not only or "startup" in only:
        lat = cold_import(max(3, args.startup_n // 4))
        print(f"cold import + 100 PythonTool(): p50 {1000 * pct(lat, 0.5):.0f} ms (fresh interpreter)")
        on = worker_start(SandboxConfig(), args.startup_n)
        off = worker_start(SandboxConfig(isolate_processes=False, private_tmp=False), args.startup_n)
        on2 = worker_start(SandboxConfig(), args.startup_n)  # again, interleaved, to see the noise
        print(f"{'worker start (first call)':<44}{'p50 ms':>10}{'p90 ms':>10}")
        for label, rows in (("PID + mount namespaces, private /tmp", on + on2), ("without them", off)):
            print(f"{label:<44}{1000 * pct(rows, 0.5):>10.1f}{1000 * pct(rows, 0.9):>10.1f}")
        print(f"ratio with/without namespaces, p50: {pct(on + on2, 0.5) / pct(off, 0.5):.2f}x")
    if not only or "recovery" in only:
        rows = recovery(max(3, args.startup_n // 4))
        print(f"{'after an attack':<44}{'p50 ms':>10}{'max ms':>10}")
        for label, values in rows.items():
            print(f"{label:<44}{1000 * pct(values, 0.5):>10.1f}{1000 * max(values):>10.1f}")
    if only and "latency" not in only:
        return
    tool = PythonTool()
    t = time.perf_counter()
    tool.call(code="1")
    print(f"first call (cold worker start): {1000 * (time.perf_counter() - t):.1f} ms")
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
