"""The ``python`` tool: model-written Python in a RestrictedPython notebook, inside a jailed, warm worker process.

Semantics (documented for the model in the schema, for people in ``docs/sandbox.md``):

* **Notebook, per episode.** Variables, functions, classes and imports persist across the calls of one episode,
  like notebook cells. :meth:`PythonTool.reset` (the environment calls it at every episode start) drops them: the
  next call starts a fresh namespace, with ``random`` re-seeded to the tool's seed, so the same code at the same
  position of an episode prints the same thing. ``persistent=False`` gives a fresh namespace at every call.
* **One worker per episode, shared pool per process.** An episode leases one worker from the process-wide pool of
  its :class:`~kimi_env.sandbox.SandboxConfig` on its first call and gives it back when the episode ends
  (:meth:`PythonTool.on_episode_end`), at ``reset`` or at ``close``; episodes never share a namespace. Constructing a
  tool starts nothing; the first call starts a worker (about 0.1-0.3 s) and the pool then keeps ``min_idle``
  workers warm while any tool is open, stops idle workers after ``idle_timeout_s``, and stops them all when the
  last tool closes.
* **Limits.** A call that runs longer than ``timeout`` seconds is killed from outside (its worker and the episode's
  variables are lost; the next call says so). Memory, CPU, output and source size are capped (see the config).
* **Result.** What the code printed, then the ``repr`` of the last expression's value (if it is not None). Errors
  read ``TypeName: message (line N)`` without a host traceback; :attr:`ToolResult.status` is one of ``ok``,
  ``model_error``, ``compile_error``, ``timeout``, ``resource_limit``, ``sandbox_failure``.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from typing import Any

from .. import aio
from ..errors import InvalidArgumentError
from ..sandbox.config import SandboxConfig
from .base import Tool, ToolResult, truncate

try:  # h-env's Tool base: a call's timeout counts from this mark, not from the wait for a worker lease
    from .base import execution_started
except ImportError:  # a base without queue-aware timeouts: the call is timed from the start of run()

    def execution_started() -> None:
        return None

MAX_SOURCE_CHARS = 20_000

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]{4,16}>")


class PythonStatus:
    """Values of :attr:`ToolResult.status` the python tool returns."""

    OK = "ok"
    MODEL_ERROR = "model_error"  # the code raised an exception
    COMPILE_ERROR = "compile_error"  # syntax error or a construct the sandbox forbids; nothing ran
    TIMEOUT = "timeout"  # wall-clock limit; the worker was killed
    RESOURCE_LIMIT = "resource_limit"  # memory, CPU or output cap
    SANDBOX_FAILURE = "sandbox_failure"  # the worker crashed, could not start, or broke the protocol


def _mask_addresses(text: str) -> str:
    """Replace memory addresses in default reprs (``<object at 0x7f...>``), which differ between runs."""
    return _ADDRESS.sub(" at 0x...>", text)


def _kill_leased(box: list, attached: list) -> None:  # weakref.finalize callback: must not reference the tool
    worker = box[0]
    box[0] = None
    if worker is not None:
        worker.kill("tool garbage-collected")
    _detach(attached)


def _detach(attached: list) -> None:
    """Tell the pool this tool no longer uses it (``attached`` = [pool, token] or [None, token])."""
    pool, token = attached
    attached[0] = None
    if pool is None:
        return
    loop = aio._loop  # the pool lives on this loop; never start a new one just to detach (e.g. at exit)
    if loop is None or loop.is_closed():
        return
    try:
        loop.call_soon_threadsafe(pool.detach, token)
    except RuntimeError:  # loop closed meanwhile (interpreter exit): the atexit hook kills the workers
        pass


class PythonTool(Tool):
    """Run Python in a sandbox; variables persist across the calls of one episode.

    Args (constructor):
        timeout: Wall-clock seconds one call's code may run before the worker is killed.
        max_output_chars: Longest content returned to the agent (longer is cut with a marker).
        persistent: Keep variables across the calls of an episode (notebook). False: every call starts fresh.
        seed: Seed of the sandbox's ``random`` module, applied at the start of every episode.
        sandbox: Limits and switches of the jail (:class:`~kimi_env.sandbox.SandboxConfig`); pools are shared per
            process and per config, so tools built with equal configs share warm workers.
        mask_addresses: Replace ``at 0x7f..`` memory addresses in output, which differ from run to run.
    """

    name = "python"
    queues = True  # a call may wait for a worker lease (max_workers); it marks execution_started() once leased
    param_constraints = {"code": {"minLength": 1, "maxLength": MAX_SOURCE_CHARS}}

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        max_output_chars: int = 8000,
        persistent: bool = True,
        seed: int = 0,
        sandbox: SandboxConfig | None = None,
        mask_addresses: bool = True,
        _unsafe_plain_python_for_tests: bool = False,
    ) -> None:
        config = sandbox if sandbox is not None else SandboxConfig()
        if not isinstance(config, SandboxConfig):
            raise InvalidArgumentError(
                f"PythonTool(sandbox=...) expects a SandboxConfig, got {type(config).__name__}. "
                "Fix: pass kimi_env.sandbox.SandboxConfig(...)."
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidArgumentError(f"PythonTool(seed=...) expects an int, got {seed!r}.")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise InvalidArgumentError(f"PythonTool(timeout=...) expects seconds > 0, got {timeout!r}.")
        if _unsafe_plain_python_for_tests:
            config = config.replace(plain_python=True)
        # The base class's timeout is an outer guard; the code's own limit (exec_timeout) is enforced by killing.
        super().__init__(timeout=float(timeout) + config.start_timeout_s + 5.0, max_output_chars=max_output_chars)
        self.exec_timeout = float(timeout)
        self.config = config
        self.persistent = bool(persistent)
        self.seed = seed
        self.mask_addresses = bool(mask_addresses)
        self._episode_seed = seed
        self._lease: list = [None]  # the leased Worker, boxed so the finalizer can reach it without the tool
        self._calls_on_worker = 0
        self._state_lost = False
        self._lock: asyncio.Lock | None = None
        self._release_after_call = False
        self._jail: dict[str, Any] = {}
        self._attached: list = [None, object()]  # [the pool this tool counts as a user of, this tool's token]
        self._finalizer = weakref.finalize(self, _kill_leased, self._lease, self._attached)

    # -- lifecycle ------------------------------------------------------------------------------------------------
    @property
    def jail_report(self) -> dict[str, Any]:
        """Which jail layers took effect in the last worker used (``netns``, ``uid``, ``rlimit_as``, ...)."""
        return dict(self._jail)

    def reset(self, seed: int | None = None) -> None:
        """Forget the episode's variables (the next call starts a fresh namespace); optionally change the seed."""
        if seed is not None:
            self._episode_seed = int(seed)
        else:
            self._episode_seed = self.seed
        self._state_lost = False
        self._give_back()

    def on_episode_end(self) -> None:
        """The episode ended (answer, truncation): give the worker back now, not at the next ``reset``.

        The environment calls this hook when an episode ends, so a finished episode does not hold a worker while
        the trainer generates other episodes' turns. The episode's variables go with the lease; a later call (there
        should be none before ``reset``) starts a fresh namespace.
        """
        self._give_back()

    def _attach(self, pool: Any) -> None:
        if self._attached[0] is pool:
            return
        if self._attached[0] is not None:
            _detach(self._attached)
        self._attached[0] = pool
        pool.attach(self._attached[1])

    def _give_back(self) -> None:
        """End the lease (from any thread). Decided on the background loop, in order with the calls: a call still
        running keeps its worker until it returns (ending an episode never kills the call in flight)."""
        if self._lock is None and self._lease[0] is None:  # never called: nothing to give back
            return
        try:
            aio.get_loop().call_soon_threadsafe(self._end_lease)
        except RuntimeError:  # loop closed (interpreter exit): just kill
            worker, self._lease[0] = self._lease[0], None
            if worker is not None:
                worker.kill("released")

    def _end_lease(self, call_done: bool = False) -> None:  # on the background loop
        if not call_done and self._lock is not None and self._lock.locked():
            self._release_after_call = True  # run() gives the worker back when the call in flight returns
            return
        self._release_after_call = False
        worker = self._lease[0]
        self._lease[0] = None
        self._calls_on_worker = 0
        if worker is None:
            return
        from ..sandbox.pool import get_pool

        reusable = not self.config.plain_python  # plain-python workers may have been tampered with
        get_pool(self.config).release(worker, reusable)

    async def aclose(self) -> None:
        """Give the worker back and stop counting as a user of the pool (the last tool to close empties it)."""
        self._give_back()
        _detach(self._attached)

    async def warmup(self) -> None:
        """Start the pool's warm workers now instead of at the first call (optional)."""
        from ..sandbox.pool import get_pool

        async def warm() -> None:
            pool = get_pool(self.config)
            self._attach(pool)
            await pool.warm()

        await aio.arun(warm())

    # -- the call -------------------------------------------------------------------------------------------------
    async def run(self, code: str) -> ToolResult:
        """Run Python code in a sandbox and return what it printed and the value of its last expression.

        Variables, functions and imports persist between calls in the same episode, like notebook cells.
        Available modules: math, cmath, statistics, random (seeded), itertools, functools, operator, collections,
        heapq, bisect, re, json, string, textwrap, unicodedata, datetime, time (clocks, no sleep), fractions,
        decimal, copy.
        There is no file, network or process access. Names starting with "_" and str.format are not available
        (use f-strings). Each call is limited in time, memory and printed output.

        Args:
            code: Python source to run, e.g. "import math\\nprint(math.sqrt(2))". End with an expression to see
                its value.
        """
        loop = aio.get_loop()
        if asyncio.get_running_loop() is not loop:
            return await aio.arun(self.run(code))
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # calls of one episode run in order, one at a time
            try:
                return await self._run_locked(code)
            finally:
                if self._release_after_call:  # the episode ended while this call ran
                    self._end_lease(call_done=True)

    async def _run_locked(self, code: str) -> ToolResult:
        from ..sandbox.pool import WorkerError, get_pool

        if len(code) > self.config.max_source_chars:
            return ToolResult.failure(
                f"the code is {len(code)} characters, above the limit of {self.config.max_source_chars}; "
                "send less code per call (variables persist between calls).",
                PythonStatus.RESOURCE_LIMIT,
            )
        pool = get_pool(self.config)
        self._attach(pool)
        start = time.perf_counter()
        notes: list[str] = []
        worker = self._lease[0]
        new_session: int | None = None
        if worker is None or not worker.alive:
            if worker is not None:
                self._lease[0] = None
                pool.release(worker, False)
            try:
                worker = await pool.acquire()
            except WorkerError as exc:
                return ToolResult.failure(
                    f"SandboxFailure: the python sandbox could not start ({exc}).", PythonStatus.SANDBOX_FAILURE
                )
            self._lease[0] = worker
            self._jail = dict(worker.jail)
            self._calls_on_worker = 0
            new_session = self._episode_seed
            if self._state_lost and self.persistent:
                notes.append(
                    "Note: the sandbox was restarted after the previous call was stopped; variables, functions "
                    "and imports defined before are gone."
                )
                self._state_lost = False
        execution_started()  # the lease is held: the work (and its timeout) starts now
        meta: dict[str, Any] = {"worker_pid": worker.pid}
        try:
            reply = await worker.request(
                {"op": "exec", "code": code, "new_session": new_session}, timeout=self.exec_timeout
            )
        except asyncio.CancelledError:  # the caller gave up (an outer timeout): the worker was killed
            self._lease[0] = None
            pool.release(worker, False)
            self._state_lost = True
            raise
        except WorkerError as exc:
            self._lease[0] = None
            pool.release(worker, False)
            self._state_lost = self._calls_on_worker > 0 or bool(notes)
            meta["elapsed_s"] = round(time.perf_counter() - start, 6)
            lost = " Variables from earlier calls are lost." if self.persistent else ""
            if exc.kind == "timeout":
                return ToolResult.failure(
                    f"Timeout: the code ran longer than {self.exec_timeout:g} s and was stopped; nothing it printed "
                    f"is kept.{lost} Make it faster or do less per call.",
                    PythonStatus.TIMEOUT,
                    **meta,
                )
            if exc.kind == "resource_limit":
                return ToolResult.failure(
                    f"ResourceLimit: {exc}; the code was stopped.{lost} Do less work per call.",
                    PythonStatus.RESOURCE_LIMIT,
                    **meta,
                )
            return ToolResult.failure(
                f"SandboxFailure: {exc}.{lost} Run the code again; if it keeps failing, simplify it.",
                PythonStatus.SANDBOX_FAILURE,
                **meta,
            )
        self._calls_on_worker += 1
        if not self.persistent:
            self._lease[0] = None
            pool.release(worker, True and not self.config.plain_python)
        return self._render(reply, notes, meta, start)

    def set_timeout(self, seconds: float) -> None:
        """Set the code's own wall-clock limit (the outer guard follows it)."""
        self.exec_timeout = float(seconds)
        self.timeout = float(seconds) + self.config.start_timeout_s + 5.0

    def _render(self, reply: dict, notes: list[str], meta: dict[str, Any], start: float) -> ToolResult:
        status = reply.get("status")
        stdout = reply.get("stdout") or ""
        value = reply.get("value")
        error = reply.get("error")
        if self.mask_addresses:
            stdout = _mask_addresses(stdout)
            value = _mask_addresses(value) if isinstance(value, str) else value
            error = _mask_addresses(error) if isinstance(error, str) else error
        parts = list(notes)
        if stdout:
            stdout = stdout.removesuffix("\n")
            # keep room for the value and the error line, which the base class's truncation would cut off
            tail = len(value or "") + len(error or "") + 200
            stdout, _ = truncate(stdout, max(200, self.max_output_chars - tail))
            parts.append(stdout)
        if isinstance(value, str):
            parts.append(value)
        meta.update(
            elapsed_s=round(time.perf_counter() - start, 6),
            stdout_chars=len(stdout),
            cpu_total_s=reply.get("cpu_total_s"),
        )
        if reply.get("stdout_dropped"):
            meta["stdout_dropped_chars"] = reply["stdout_dropped"]
        if status == PythonStatus.OK:
            return ToolResult(ok=True, content="\n".join(parts) if parts else "(no output)", meta=meta)
        known = {PythonStatus.MODEL_ERROR, PythonStatus.COMPILE_ERROR, PythonStatus.RESOURCE_LIMIT}
        if status not in known or not isinstance(error, str):
            return ToolResult.failure(
                "SandboxFailure: the sandbox worker sent an unexpected reply. Run the code again.",
                PythonStatus.SANDBOX_FAILURE,
                **meta,
            )
        if status == PythonStatus.COMPILE_ERROR:
            error = f"the code was not run because it does not compile in the sandbox: {error}"
        parts.append(f"Error: {error}")
        return ToolResult(ok=False, content="\n".join(parts), error=error, status=status, meta=meta)
