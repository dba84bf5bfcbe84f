"""Warm worker processes: start, jail, talk to, kill, and reuse them.

One :class:`WorkerPool` per (process, :class:`SandboxConfig`), living on kimi_env's background event loop
(:mod:`kimi_env.aio`); every method must be awaited on that loop. A caller *leases* a worker with
:meth:`WorkerPool.acquire` and gives it back with :meth:`WorkerPool.release`; the pool keeps ``min_idle`` workers
started ahead of demand, replaces a worker after a kill, a crash, or ``max_calls_per_worker`` calls, and stops every
worker at :meth:`WorkerPool.aclose` or interpreter exit (``atexit``). Workers also exit by themselves when the host
dies (their stdin closes).

The pool shrinks by itself: tools :meth:`~WorkerPool.attach` to it on their first call and
:meth:`~WorkerPool.detach` when they close (or are garbage-collected); when the last one detaches, every idle worker
is stopped and none is started ahead of demand until a tool attaches again. Idle workers unused for
``idle_timeout_s`` seconds are stopped too, so a pool nobody calls holds no process and no directory.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import signal
import struct
import sys
import tempfile
from dataclasses import asdict
from typing import Any

from .config import SandboxConfig

WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")


class WorkerError(Exception):
    """A worker could not start, broke the protocol, crashed, or was killed."""

    def __init__(self, message: str, kind: str = "sandbox_failure") -> None:
        super().__init__(message)
        self.kind = kind  # "sandbox_failure" | "timeout" | "resource_limit"


def _restricted_python_dir() -> str:
    import importlib.util

    spec = importlib.util.find_spec("RestrictedPython")
    if spec is None or not spec.submodule_search_locations:
        raise WorkerError(
            "RestrictedPython is not installed; the python tool needs it. Fix: pip install 'RestrictedPython>=8.0'."
        )
    return os.path.dirname(next(iter(spec.submodule_search_locations)))


def _resolve_user(user: str | int | None) -> tuple[int | None, int | None]:
    if os.geteuid() != 0 or user is None:
        return None, None
    if isinstance(user, int):
        return user, user
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError as exc:
        raise WorkerError(
            f"SandboxConfig.user is {user!r}, which is not an account on this machine; use an existing "
            "unprivileged account or a numeric uid."
        ) from exc
    return entry.pw_uid, entry.pw_gid


def _scrubbed_env() -> dict[str, str]:
    # PYTHONHASHSEED fixes str hashing, so set iteration order is the same in every worker (determinism).
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0"}


class Worker:
    """One jailed worker process and its protocol pipes."""

    def __init__(self, proc: asyncio.subprocess.Process, workdir: str, config: SandboxConfig) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.workdir = workdir
        self.config = config
        self.calls = 0
        self.idle_since = 0.0  # loop time the worker was last parked idle
        self.cpu_total_s = 0.0
        self.jail: dict[str, Any] = {}
        self.dead = False
        self.kill_reason: str | None = None

    # -- process control --------------------------------------------------------------------------------------
    def kill(self, reason: str = "killed") -> None:
        """SIGKILL the worker's whole process group (it leads its own session). Idempotent, never raises."""
        if not self.dead:
            self.kill_reason = reason
        self.dead = True
        for target in (lambda: os.killpg(self.pid, signal.SIGKILL), lambda: os.kill(self.pid, signal.SIGKILL)):
            try:
                target()
            except (ProcessLookupError, PermissionError, OSError):
                pass

    @property
    def alive(self) -> bool:
        return not self.dead and self.proc.returncode is None

    # -- protocol -------------------------------------------------------------------------------------------------
    async def _send(self, obj: dict) -> None:
        data = json.dumps(obj).encode("utf-8", "surrogatepass")
        assert self.proc.stdin is not None
        self.proc.stdin.write(struct.pack(">I", len(data)) + data)
        await self.proc.stdin.drain()

    async def _receive(self) -> dict:
        assert self.proc.stdout is not None
        head = await self.proc.stdout.readexactly(4)
        (size,) = struct.unpack(">I", head)
        if size > self.config.max_reply_bytes:
            raise WorkerError(f"the worker sent a {size}-byte reply, above max_reply_bytes")
        body = await self.proc.stdout.readexactly(size)
        reply = json.loads(body)
        if not isinstance(reply, dict):
            raise WorkerError("the worker sent a reply that is not a JSON object")
        return reply

    async def request(self, obj: dict, timeout: float) -> dict:
        """Send one request and wait for its reply, at most ``timeout`` seconds of wall time.

        On timeout the worker is killed (code inside can swallow any in-process interrupt, so the limit is
        enforced from outside) and ``WorkerError(kind="timeout")`` is raised. A crash or a protocol error kills
        the worker and raises ``WorkerError``. Cancellation kills the worker too (its state is unknown).
        """
        if not self.alive:
            raise WorkerError("the worker is not running")
        self.calls += 1
        try:
            await self._send(obj)
            reply = await asyncio.wait_for(self._receive(), timeout)
        except asyncio.TimeoutError:
            self.kill("timeout")
            raise WorkerError(f"no reply within {timeout:g} s", "timeout") from None
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError) as exc:
            try:
                note = await self._death_note(exc)  # wait for the exit status first: a kill now would mask it
            finally:
                self.kill("crash")
            raise WorkerError(note, self._death_kind()) from None
        except (ValueError, WorkerError) as exc:  # bad JSON / oversize frame
            self.kill("protocol")
            raise WorkerError(f"the worker broke the protocol ({str(exc)[:200]})") from None
        except BaseException:
            self.kill("cancelled")
            raise
        cpu = reply.get("cpu_total_s")
        if isinstance(cpu, (int, float)):
            self.cpu_total_s = float(cpu)
        return reply

    def _death_kind(self) -> str:
        rc = self.proc.returncode
        if rc is not None and rc in (-signal.SIGXCPU, -signal.SIGXFSZ):
            return "resource_limit"
        return "sandbox_failure"

    async def _death_note(self, exc: BaseException) -> str:
        try:
            await asyncio.wait_for(self.proc.wait(), 1.0)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001
            pass
        rc = self.proc.returncode
        if rc is not None and rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            if rc == -signal.SIGXCPU:
                return f"the worker exceeded its CPU time limit ({self.config.cpu_per_call_s} s per call, {name})"
            return f"the worker was killed by {name}"
        if rc is not None:
            return f"the worker exited with status {rc}"
        return f"the worker stopped answering ({type(exc).__name__})"


class WorkerPool:
    """Warm, reusable workers for one :class:`SandboxConfig`. Use :func:`get_pool`, not the constructor."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._idle: list[Worker] = []
        self._all: dict[int, Worker] = {}
        self._starting = 0
        self._recycling = 0
        self._cond: asyncio.Condition | None = None
        self._tasks: set[asyncio.Task] = set()
        self.started_pids: list[int] = []  # every worker this pool ever started (tests check none is left)
        self.started_workdirs: list[str] = []  # and its directory (tests check none is left)
        self.closed = False
        self._users: set[object] = set()  # tokens of the tools attached (see attach/detach)
        self._quiet = False  # the last user detached: keep nothing warm until one attaches again
        self._janitor: asyncio.Task | None = None
        self._uid, self._gid = _resolve_user(config.user)
        self._lib = _restricted_python_dir()

    # -- bookkeeping --------------------------------------------------------------------------------------------
    def live_pids(self) -> set[int]:
        return set(self._all)

    def stats(self) -> dict[str, int]:
        return {
            "idle": len(self._idle), "alive": len(self._all), "starting": self._starting,
            "recycling": self._recycling, "users": len(self._users),
        }  # fmt: skip

    # -- users ----------------------------------------------------------------------------------------------------
    def attach(self, token: object) -> None:
        """Count a user (a tool) of the pool; while one is attached, ``min_idle`` workers are kept warm."""
        self._users.add(token)
        self._quiet = False

    def detach(self, token: object) -> None:
        """Forget a user; when none is left, stop every idle worker (leased ones go when they are released)."""
        self._users.discard(token)
        if self._users or self.closed:
            return
        self._quiet = True
        for worker in list(self._idle):
            self._idle.remove(worker)
            worker.kill("no tool uses the pool any more")

    def _park(self, worker: Worker) -> None:
        """Put a started, clean worker on the idle list (and make sure the idle janitor runs)."""
        worker.idle_since = asyncio.get_running_loop().time()
        self._idle.append(worker)
        if self.config.idle_timeout_s > 0 and (self._janitor is None or self._janitor.done()):
            self._janitor = asyncio.get_running_loop().create_task(self._shrink_when_idle())

    async def _shrink_when_idle(self) -> None:
        """Stop idle workers that nobody leased for ``idle_timeout_s`` seconds; return when none is idle."""
        limit = self.config.idle_timeout_s
        loop = asyncio.get_running_loop()
        while self._idle and not self.closed:
            oldest = min(w.idle_since for w in self._idle)
            await asyncio.sleep(max(0.0, oldest + limit - loop.time()) + 0.01)
            now = loop.time()
            for worker in list(self._idle):
                if now - worker.idle_since >= limit:
                    self._idle.remove(worker)
                    worker.kill(f"idle for {limit:g} s")

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    def _spawn_background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- starting -------------------------------------------------------------------------------------------------
    async def _start(self) -> Worker:
        cfg = self.config
        workdir = tempfile.mkdtemp(prefix="kimi-py-")
        self.started_workdirs.append(workdir)
        try:
            os.chmod(workdir, 0o700)
            if self._uid is not None:
                os.chown(workdir, self._uid, self._gid if self._gid is not None else -1)
            wcfg = asdict(cfg)
            wcfg.update(
                workdir=workdir,
                uid=self._uid,
                gid=self._gid,
                lib_path=self._lib,
                cpu_lifetime_s=cfg.cpu_per_call_s * (cfg.max_calls_per_worker + 2),
                max_request_bytes=cfg.max_source_chars * 4 + 4096,
            )
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-S", "-s", "-B", WORKER_SCRIPT, json.dumps(wcfg),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env=_scrubbed_env(),
                cwd=workdir,
                start_new_session=True,
                close_fds=True,
                limit=cfg.max_reply_bytes + 16,
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        worker = Worker(proc, workdir, cfg)
        self._all[worker.pid] = worker
        self.started_pids.append(worker.pid)
        self._spawn_background(self._reap(worker))
        try:
            hello = await asyncio.wait_for(worker._receive(), cfg.start_timeout_s)
        except BaseException as exc:
            worker.kill("start failed")
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise WorkerError(
                f"a sandbox worker did not start within {cfg.start_timeout_s:g} s ({type(exc).__name__}); the "
                "machine may be overloaded or the interpreter cannot start under the limits (raise memory_mb)."
            ) from None
        if hello.get("op") != "ready":
            worker.kill("start failed")
            raise WorkerError(f"a sandbox worker failed to start: {str(hello.get('error'))[:500]}")
        worker.jail = dict(hello.get("jail") or {})
        if cfg.require_isolation:
            missing = []
            if cfg.isolate_network and not worker.jail.get("netns"):
                missing.append("network namespace (needs root or unprivileged user namespaces)")
            if cfg.isolate_processes and not worker.jail.get("pidns"):
                missing.append("PID namespace (needs root or unprivileged user namespaces)")
            if cfg.private_tmp and not worker.jail.get("private_tmp"):
                missing.append("private /tmp (a mount namespace with a tmpfs; needs root or user namespaces)")
            if os.geteuid() == 0 and not worker.jail.get("dropped_privileges"):
                missing.append("privilege drop (set SandboxConfig.user to an unprivileged account)")
            if missing:
                worker.kill("isolation missing")
                raise WorkerError(
                    "require_isolation is set but the worker could not enable: " + "; ".join(missing) + "."
                )
        return worker

    async def _reap(self, worker: Worker) -> None:
        """Wait for the worker to exit (however it dies), then forget it and delete its directory."""
        try:
            await worker.proc.wait()
        finally:
            worker.dead = True
            self._all.pop(worker.pid, None)
            if worker in self._idle:
                self._idle.remove(worker)
            try:
                await asyncio.to_thread(shutil.rmtree, worker.workdir, True)
            except RuntimeError:  # interpreter shutting down: no executor threads any more
                shutil.rmtree(worker.workdir, ignore_errors=True)
            cond = self._condition()
            async with cond:
                cond.notify_all()

    async def _start_counted(self) -> Worker:
        self._starting += 1
        try:
            return await self._start()
        finally:
            self._starting -= 1

    async def _refill(self) -> None:
        try:
            worker = await self._start_counted()
        except Exception:  # noqa: BLE001 - a failed background start shows up at the next acquire
            return
        if self.closed or self._quiet:
            worker.kill("pool closed" if self.closed else "no tool uses the pool any more")
            return
        self._park(worker)
        cond = self._condition()
        async with cond:
            cond.notify_all()

    def _maybe_refill(self) -> None:
        cfg = self.config
        while (
            not self.closed
            and not self._quiet
            and len(self._idle) + self._starting < cfg.min_idle
            and len(self._all) + self._starting < cfg.max_workers
        ):
            self._starting += 1  # reserve the slot now; _refill's own count replaces it
            self._spawn_background(self._refill_reserved())

    async def _refill_reserved(self) -> None:
        self._starting -= 1
        await self._refill()

    # -- leasing --------------------------------------------------------------------------------------------------
    async def acquire(self) -> Worker:
        """Lease a started worker (an idle one, or a new one). Waits while ``max_workers`` are all leased."""
        if self.closed:
            raise WorkerError("the sandbox pool was closed")
        cond = self._condition()
        # a worker being cleaned after its episode is usually back within milliseconds: wait that long for it,
        # not for a slow cleaning (its finalizers may run until recycle_timeout_s)
        recycle_deadline = asyncio.get_running_loop().time() + 0.1
        while True:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    self._maybe_refill()
                    return worker
            left = recycle_deadline - asyncio.get_running_loop().time()
            if self._recycling and left > 0:
                async with cond:
                    try:
                        await asyncio.wait_for(cond.wait(), left)
                    except asyncio.TimeoutError:
                        pass
                continue
            if len(self._all) + self._starting < self.config.max_workers:
                worker = await self._start_counted()
                self._maybe_refill()
                return worker
            async with cond:
                try:  # release() cannot notify (it is sync): poll as well
                    await asyncio.wait_for(cond.wait(), 0.25)
                except asyncio.TimeoutError:
                    pass

    def release(self, worker: Worker, reusable: bool = True) -> None:
        """Give a leased worker back: keep it warm, or stop it (dead, worn out, not reusable, pool full)."""
        cfg = self.config
        keep = (
            reusable
            and not self.closed
            and not self._quiet
            and worker.alive
            and worker.calls < cfg.max_calls_per_worker
            and worker.cpu_total_s < cfg.cpu_per_call_s * cfg.max_calls_per_worker
            and len(self._idle) < cfg.max_idle
        )
        if keep:
            # Not straight back to the idle list: the episode's namespace is dropped and the worker checked first
            # (see _recycle), so nothing of this episode can run or be found during the next one.
            self._recycling += 1
            self._spawn_background(self._recycle(worker))
        else:
            worker.kill("released")
        self._maybe_refill()

    async def _recycle(self, worker: Worker) -> None:
        """End the episode in ``worker`` and keep the worker warm only if it reports itself clean.

        The worker drops the namespace (finalizers of the episode's objects run now, under a time limit, not inside
        the next episode), restores shared state, and checks that no function, generator or class of the episode
        survived (e.g. stashed in a library cache) and that its memory did not grow; otherwise it is stopped.
        """
        clean = False
        try:
            reply = await worker.request({"op": "end"}, timeout=self.config.recycle_timeout_s)
            clean = reply.get("op") == "ended" and reply.get("clean") is True
        except WorkerError:
            pass  # timed out, crashed or broke the protocol: request() killed it
        finally:
            self._recycling -= 1
            keep = (
                clean and not self.closed and not self._quiet and worker.alive
                and len(self._idle) < self.config.max_idle
            )  # fmt: skip
            if keep:
                self._park(worker)
            else:
                worker.kill("not clean after its episode" if not clean else "released")
            if not self.closed:
                self._maybe_refill()
            cond = self._condition()
            async with cond:
                cond.notify_all()

    async def warm(self, n: int | None = None) -> None:
        """Start workers until ``n`` (default ``min_idle``) are idle."""
        target = self.config.min_idle if n is None else min(n, self.config.max_idle)
        while len(self._idle) < target and len(self._all) + self._starting < self.config.max_workers:
            worker = await self._start_counted()
            self._park(worker)

    # -- shutdown -------------------------------------------------------------------------------------------------
    def kill_all(self) -> None:
        """Synchronously SIGKILL every worker (safe from atexit or any thread)."""
        self.closed = True
        for worker in list(self._all.values()):
            worker.kill("pool closed")
        for worker in list(self._all.values()):
            shutil.rmtree(worker.workdir, ignore_errors=True)

    async def aclose(self) -> None:
        """Stop every worker and wait until they are gone."""
        self.kill_all()
        self._idle.clear()
        if self._janitor is not None:
            self._janitor.cancel()
        procs = [w.proc for w in list(self._all.values())]
        if procs:
            await asyncio.wait([asyncio.ensure_future(p.wait()) for p in procs], timeout=5)
        for task in list(self._tasks):
            if not task.done():
                try:
                    await asyncio.wait_for(asyncio.shield(task), 5)
                except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                    pass


_POOLS: dict[tuple[int, SandboxConfig], WorkerPool] = {}


def get_pool(config: SandboxConfig) -> WorkerPool:
    """The process-wide pool for ``config`` (created on first use; a forked child gets its own)."""
    key = (os.getpid(), config)
    pool = _POOLS.get(key)
    if pool is None or pool.closed:
        pool = _POOLS[key] = WorkerPool(config)
    return pool


def all_pools() -> list[WorkerPool]:
    pid = os.getpid()
    return [p for (owner, _), p in _POOLS.items() if owner == pid]


async def close_all_pools() -> None:
    for pool in all_pools():
        await pool.aclose()


def _kill_all_at_exit() -> None:
    for pool in all_pools():
        pool.kill_all()


atexit.register(_kill_all_at_exit)
