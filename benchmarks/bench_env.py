"""Environment overhead: `import kimi_env` time, reset and step latency of the base class, parse throughput.

    .venv/bin/python benchmarks/bench_env.py

Prints a JSON object. Measures the base class with the Calculator env (a trivial tool), so it is the per-turn cost
kimi-env adds on top of a tool's own work.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    imports = []
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", "import time; t=time.perf_counter(); import kimi_env; "
                              "print(time.perf_counter()-t)"], capture_output=True, text=True, check=True)
        imports.append(float(out.stdout))
    import gymnasium as gym

    import kimi_env  # noqa: F401

    env = gym.make("kimi_env/Calculator-v0")
    resets, calls, answers, errors = [], [], [], []
    for i in range(300):
        t = time.perf_counter()
        obs, info = env.reset(seed=i)
        resets.append(time.perf_counter() - t)
        expr = env.unwrapped.privileged_task["metadata"]["plan"][0]["expression"]
        t = time.perf_counter()
        env.step('<tool_call>{"name": "calculator", "arguments": {"expression": "%s"}}</tool_call>' % expr)
        calls.append(time.perf_counter() - t)
        t = time.perf_counter()
        env.step('<tool_call>{"name": "calculator", "arguments": {"expresion": 1}}</tool_call>')
        errors.append(time.perf_counter() - t)
        t = time.perf_counter()
        env.step("<answer>1</answer>")
        answers.append(time.perf_counter() - t)
    env.close()
    ms = lambda xs: {"p50_ms": round(1000 * statistics.median(xs), 3), "p99_ms": round(1000 * pct(xs, 0.99), 3)}  # noqa: E731
    print(json.dumps({
        "import_kimi_env_s": {"median": round(statistics.median(imports), 3), "max": round(max(imports), 3)},
        "reset": ms(resets),
        "step_one_tool_call": ms(calls),
        "step_invalid_arguments": ms(errors),
        "step_answer": ms(answers),
    }, indent=1))


if __name__ == "__main__":
    main()
