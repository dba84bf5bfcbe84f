"""The first run says what it builds (issue 14 item 6) and a cold cache gives the same tasks as a warm one (item 8).

Each run is a fresh interpreter over a fresh private cache, so "first run" is real: nothing is built in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CODE = """
import json, gymnasium as gym
env = gym.make("kimi_env:kimi_env/SearchQA-v0", pages=300, n_tasks=300, split=None)
pool = env.unwrapped.task_pool
print(json.dumps([[t.id, list(t.metadata)] for t in pool]))
obs, info = env.reset(seed=0)
print(json.dumps(list(info["task"]["metadata"])))
env.close()
"""


def _run(cache: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KIMI_ENV_CACHE": str(cache), **extra}
    env.pop("KIMI_ENV_PROGRESS", None) if "KIMI_ENV_PROGRESS" not in extra else None
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


def _stage_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("kimi-env: ")]


def test_first_run_prints_one_line_per_stage_and_a_warm_run_prints_none(tmp_path: Path) -> None:
    cold = _run(tmp_path / "cache")
    lines = _stage_lines(cold.stderr)
    assert len(lines) == 3, cold.stderr
    corpus, tasks, index = lines
    assert corpus.startswith("kimi-env: building the corpus of world seed 0 (300 pages; first use only, cached)")
    assert tasks.startswith("kimi-env: synthesizing 300 tasks")
    assert index.startswith("kimi-env: building the search index of ")
    assert all(" ... done in " in line and line.endswith(" s") for line in lines), lines

    warm = _run(tmp_path / "cache")
    assert _stage_lines(warm.stderr) == [], warm.stderr
    # the same tasks with their metadata keys in the same order, cold or warm (the pool used to come back from
    # synthesis in insertion order the first time and from the JSONL cache with sorted keys afterwards)
    assert cold.stdout == warm.stdout
    keys = json.loads(cold.stdout.splitlines()[-1])
    assert keys == sorted(keys)


def test_progress_can_be_silenced(tmp_path: Path) -> None:
    quiet = _run(tmp_path / "cache", KIMI_ENV_PROGRESS="0")
    assert _stage_lines(quiet.stderr) == [], quiet.stderr


def test_a_stage_inside_a_stage_keeps_one_line_each(capsys, monkeypatch) -> None:
    from kimi_env import progress

    monkeypatch.delenv("KIMI_ENV_PROGRESS", raising=False)
    with progress.stage("outer"):
        with progress.stage("inner"):
            pass
    with progress.stage("plain"):
        pass
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" ... ")[0] for line in lines] == ["kimi-env: outer", "kimi-env: inner", "kimi-env: outer",
                                                          "kimi-env: plain"], lines
    assert lines[0] == "kimi-env: outer ... " and all(" ... done in " in line for line in lines[1:])
