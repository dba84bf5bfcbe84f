"""The worker pool gives processes and directories back: when the last tool closes, after an idle time, and when an
episode ends (issue 8 item 4, issue 13 item 7). Every test counts real processes (/proc) and real directories."""

from __future__ import annotations

import gc
import tempfile
import time

import pytest

from kimi_env import aio
from kimi_env.sandbox import SandboxConfig, get_pool
from kimi_env.sandbox.testing import _proc_table
from kimi_env.tools import PythonTool


@pytest.fixture()
def private_tempdir(tmp_path, monkeypatch):
    """Workers' directories go to a folder of this test only, so they can be counted exactly."""
    d = tmp_path / "workers"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def worker_dirs(d) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("kimi-py-"))


def pool_processes(pool) -> list[int]:
    """Every process of a worker this pool started: the worker and, in a PID namespace, its init and code process."""
    started = set(pool.started_pids)
    return [r["pid"] for r in _proc_table() if r["state"] != "Z" and (r["session"] in started or r["pid"] in started)]


def wait_for(condition, what: str, limit_s: float = 20.0) -> None:
    """Poll a behaviour until it holds (a bound against hanging, not a speed requirement)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {limit_s:g} s")
        time.sleep(0.05)


def test_last_tool_closing_stops_every_worker(private_tempdir):
    cfg = SandboxConfig(memory_mb=384, min_idle=1, max_idle=4, idle_timeout_s=0)  # no idle shrinking here
    pool = get_pool(cfg)
    assert pool_processes(pool) == [] and worker_dirs(private_tempdir) == []
    tools = [PythonTool(sandbox=cfg) for _ in range(3)]
    for i, t in enumerate(tools):
        assert t.call(code=f"{i} + 1").content == str(i + 1)
    assert len(pool.live_pids()) >= 3 and len(worker_dirs(private_tempdir)) >= 3
    assert len(pool_processes(pool)) >= 3
    tools[0].close()
    tools[1].close()
    assert tools[2].call(code="'still here'").content == "'still here'"  # one tool open: the pool still serves
    assert pool.stats()["users"] == 1
    tools[2].close()
    wait_for(lambda: pool_processes(pool) == [], "stopping every worker after the last tool closed")
    wait_for(lambda: worker_dirs(private_tempdir) == [], "removing every worker directory")
    assert pool.live_pids() == set() and pool.stats()["idle"] == 0
    # a closed tool may be used again: it attaches once more, and closing it empties the pool again
    assert tools[0].call(code="2 * 21").content == "42"
    tools[0].close()
    wait_for(lambda: pool_processes(pool) == [] and worker_dirs(private_tempdir) == [], "emptying the pool again")


def test_garbage_collected_tool_counts_as_closed(private_tempdir):
    cfg = SandboxConfig(memory_mb=384, min_idle=1, max_idle=4, idle_timeout_s=0, max_calls_per_worker=150)
    pool = get_pool(cfg)
    t = PythonTool(sandbox=cfg)
    assert t.call(code="1").ok
    assert pool_processes(pool) != []
    del t
    gc.collect()
    wait_for(lambda: pool_processes(pool) == [], "stopping the workers of a garbage-collected tool")
    wait_for(lambda: worker_dirs(private_tempdir) == [], "removing their directories")


def test_idle_pool_shrinks_after_idle_timeout(private_tempdir):
    cfg = SandboxConfig(memory_mb=384, min_idle=1, max_idle=4, idle_timeout_s=0.5)
    pool = get_pool(cfg)
    t = PythonTool(sandbox=cfg)
    try:
        assert t.call(code="x = 1").ok
        t.reset()  # the worker goes back to the pool: now idle, like the warm spare
        wait_for(lambda: pool.stats()["idle"] >= 1, "parking the released worker")
        # the tool stays open: only the idle time empties the pool
        wait_for(lambda: pool_processes(pool) == [], "stopping idle workers after idle_timeout_s")
        wait_for(lambda: worker_dirs(private_tempdir) == [], "removing idle workers' directories")
        assert pool.stats()["users"] == 1
        r = t.call(code="x = 2\nx")  # the next call starts a worker again
        assert r.ok and r.content == "2"
    finally:
        t.close()


def test_a_leased_worker_is_not_shrunk(private_tempdir):
    cfg = SandboxConfig(memory_mb=384, min_idle=0, max_idle=2, idle_timeout_s=0.3)
    t = PythonTool(sandbox=cfg)
    try:
        assert t.call(code="kept = 'yes'").ok
        pid = t.call(code="1").meta["worker_pid"]
        time.sleep(1.0)  # longer than idle_timeout_s: a leased worker is not idle
        r = t.call(code="kept")
        assert r.content == "'yes'" and r.meta["worker_pid"] == pid
    finally:
        t.close()


def test_idle_timeout_is_validated():
    from kimi_env.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="idle_timeout_s"):
        SandboxConfig(idle_timeout_s=-1)


# -- the lease ends with the episode (issue 13 item 7) ------------------------------------------------------------


def test_on_episode_end_gives_the_worker_back():
    """With one worker in the pool, a second episode runs only if the first one's lease ended with its episode."""
    cfg = SandboxConfig(memory_mb=384, min_idle=0, max_idle=1, max_workers=1, start_timeout_s=5, idle_timeout_s=0)
    a, b = PythonTool(timeout=3, sandbox=cfg), PythonTool(timeout=3, sandbox=cfg)
    try:
        first = a.call(code="secret = 1\nsecret")
        assert first.ok
        a.on_episode_end()
        r = b.call(code="'b ran'")
        assert r.ok and r.content == "'b ran'", r.content
        assert r.meta["worker_pid"] == first.meta["worker_pid"]  # the same, reused worker
        assert "NameError" in b.call(code="secret").content  # ... with a fresh namespace
    finally:
        a.close()
        b.close()


def test_env_releases_the_worker_when_the_episode_ends():
    import kimi_env

    env = kimi_env.make("MathCode-v0")
    try:
        tool = env.unwrapped.tools[0]
        env.reset(seed=0)
        obs, *_ = env.step('<tool_call>{"name": "python", "arguments": {"code": "print(6*7)"}}</tool_call>')
        assert "42" in obs
        worker = tool._lease[0]
        assert worker is not None and worker.alive
        _, _, terminated, _, _ = env.step("<answer>42</answer>")
        assert terminated
        wait_for(lambda: tool._lease[0] is None, "giving the worker back at the answer, not at the next reset")

        def back_in_pool() -> bool:
            pool = get_pool(tool.config)
            return worker.pid in {w.pid for w in pool._idle} or not worker.alive

        wait_for(back_in_pool, "the worker going back to the pool")
        assert worker.alive, f"the worker was stopped instead of reused ({worker.kill_reason})"
    finally:
        env.close()


def test_episode_end_during_a_call_waits_for_the_call():
    """The engine may end an episode (truncate) while a call still runs: that call finishes on its worker, then the
    worker goes back; it is never handed to the pool mid-call."""
    import asyncio
    import threading

    t = PythonTool(timeout=20)
    try:
        assert t.call(code="kept = 5").ok

        async def call_and_end():
            task = asyncio.ensure_future(t.acall(code="s = 0\nfor i in range(3 * 10**6):\n    s += i\nkept + s % 7"))
            await asyncio.sleep(0.3)  # the call is running now
            threading.Thread(target=t.on_episode_end).start()  # from another thread, like an engine's
            return await task

        r = aio.run(call_and_end())
        expected = 5 + sum(range(3 * 10**6)) % 7
        assert r.ok and r.content == str(expected), r.content
        worker = r.meta["worker_pid"]
        wait_for(lambda: t._lease[0] is None, "giving the worker back after the call")
        pool = get_pool(t.config)
        wait_for(lambda: worker in {w.pid for w in pool._idle}, "the worker going back to the pool, cleaned, not killed")
        r = t.call(code="kept")  # a new episode's namespace
        assert "NameError" in r.content
    finally:
        t.close()


def _queue_aware_base() -> bool:
    from kimi_env.tools import base

    return hasattr(base, "execution_started")


@pytest.mark.skipif(not _queue_aware_base(), reason="needs h-env's queue-aware Tool base (execution_started)")
def test_waiting_for_a_lease_is_not_charged_to_the_call():
    """With every worker leased, a call waits for one; its timeout counts from the lease (issue 13 item 7)."""
    import threading

    cfg = SandboxConfig(memory_mb=384, min_idle=0, max_idle=1, max_workers=1, start_timeout_s=2, idle_timeout_s=0)
    a, b = PythonTool(timeout=1, sandbox=cfg), PythonTool(timeout=1, sandbox=cfg)
    try:
        assert a.call(code="1").ok
        timer = threading.Timer(b.timeout + 1.0, a.on_episode_end)  # held past b's whole outer timeout
        timer.start()
        r = b.call(code="'b ran'")
        timer.join()
        assert r.ok and r.content == "'b ran'", r.content
        assert r.meta["queued_s"] > b.timeout
    finally:
        a.close()
        b.close()
