"""Helpers for tests of the sandbox: post-conditions every attack must leave true (used by tests/test_sandbox_*)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .pool import all_pools


def _proc_table() -> list[dict[str, Any]]:
    rows = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{name}/status") as f:
                status = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        uid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:")), -1)
        rows.append(
            {"pid": int(name), "state": rest[0], "ppid": int(rest[1]), "pgrp": int(rest[2]),
             "session": int(rest[3]), "uid": uid}
        )  # fmt: skip
    return rows


def _owner(row: dict[str, Any], started: set[int], parent: dict[int, int]) -> int | None:
    """The started worker a process belongs to (by session, group, or ancestry), else None."""
    for key in ("session", "pgrp"):
        if row[key] in started:
            return row[key]
    pid, hops = row["pid"], 0
    while pid in parent and hops < 64:  # a process that left the session (setsid) still has ancestors
        if pid in started:
            return pid
        pid, hops = parent[pid], hops + 1
    return None


def leaked_processes(wait_s: float = 10.0, uid: int | None = 65534) -> list[dict[str, Any]]:
    """Processes started by a sandbox that no live worker of this process's pools accounts for.

    A worker is the process a pool started plus, inside a PID namespace, that namespace's init and the process
    that runs the code (both in the worker's session, and its descendants): they count while the worker is alive.
    Also reported: a child of this process running as ``uid`` (other test processes' workers are not ours, so the
    uid alone is not enough). Killed processes take a moment to disappear, so this retries for ``wait_s`` seconds.
    Zombies are ignored.
    """
    deadline = time.monotonic() + wait_s
    while True:
        me = os.getpid()
        pools = all_pools()
        started = {pid for pool in pools for pid in pool.started_pids}
        table = [row for row in _proc_table() if row["state"] != "Z"]
        live = {pid for pool in pools for pid in pool.live_pids()}  # read after the table: new workers count
        parent = {row["pid"]: row["ppid"] for row in table}

        leaked = []
        for row in table:
            worker = _owner(row, started, parent)
            if worker is not None:
                if worker not in live:
                    leaked.append(row)
            elif uid is not None and row["uid"] == uid and row["ppid"] == me:
                leaked.append(row)
        if not leaked or time.monotonic() > deadline:
            return leaked
        time.sleep(0.05)


def worker_stopped(pid: int, wait_s: float = 20.0) -> bool:
    """True once no pool lists ``pid`` as a live worker and the process is gone (or a zombie); polls ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        listed = any(pid in pool.live_pids() for pool in all_pools())
        try:
            with open(f"/proc/{pid}/stat") as f:
                running = f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            running = False
        if not listed and not running:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def snapshot(path: Path) -> dict[str, tuple[int, int, bytes]]:
    """Mode, size and content of every file under ``path`` (to check an attack changed nothing)."""
    out = {}
    for p in sorted(path.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(path))] = (st.st_mode, st.st_size, p.read_bytes() if p.is_file() else b"")
    return out


def check_postconditions(tool: Any, sentinel_dir: Path | None = None, before: dict | None = None) -> None:
    """Assert: the host is alive, the next call works (within the tool's own limit, on a worker that answers), no
    worker process leaked, nothing changed outside. How fast the next call is lives in benchmarks/bench_python.py
    (a timing here would depend on the machine's load)."""
    cwd = os.getcwd()
    result = tool.call(code="print(1+1)")
    assert result.ok and result.content.splitlines()[-1] == "2", f"next call failed after the attack: {result}"
    leaked = leaked_processes()
    assert not leaked, f"sandbox processes left behind: {leaked}"
    assert os.getcwd() == cwd
    if sentinel_dir is not None and before is not None:
        assert snapshot(sentinel_dir) == before, "the attack changed files outside the sandbox's directory"
