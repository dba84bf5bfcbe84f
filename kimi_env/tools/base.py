"""The tool contract: a typed ``run`` method, a derived JSON schema, a per-call timeout and bounded output.

A tool subclasses :class:`Tool` and writes ``async def run(self, ...)`` with type hints and a Google-style
docstring; the schema the model sees is derived from them. Callers use ``await tool.acall(**arguments)`` or
``tool.call(**arguments)``; both validate the arguments against the schema, enforce ``timeout`` and
``max_output_chars``, and always return a :class:`ToolResult`, never raise, whatever the arguments or the tool do.

Tools may hold per-episode state (the browser's current page, a notebook's variables): an environment owns its tool
instances and calls :meth:`Tool.reset` at every episode start (with ``seed=`` drawn from the environment's
``np_random`` when ``reset`` takes a ``seed`` parameter), :meth:`Tool.on_episode_end` once when an episode ends
(answer, truncation, close, or a reset that abandons an unfinished episode: release per-episode resources there,
such as a leased worker) and :meth:`Tool.close` when it closes.

**Timeouts are about the work.** A call's timeout (and ``meta["elapsed_s"]``) counts from the start of its
execution. A tool that first waits in a queue (for a worker lease, a connection slot) calls
:func:`execution_started` when its work begins: the time before that is not charged to the call's timeout (it is
reported as ``meta["queued_s"]`` and bounded separately by ``Tool.max_queue_s``).

**Every result is neutralized** (:func:`kimi_env.spaces.neutralize`): control and invisible format characters
(bidi overrides, zero-width characters, BOM) never reach an agent, whether the tool runs inside an environment or
alone (an MCP server, a TRL adapter), because :meth:`Tool.acall` is the one boundary every result passes.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import aio
from ..errors import ToolDefinitionError
from ..schema import function_schema, validate_arguments
from ..spaces import neutralize


class _CallClock:
    """When the current call started waiting and when its execution started (``None`` while queued)."""

    __slots__ = ("created", "started", "event")

    def __init__(self, now: float, queued: bool = False) -> None:
        self.created = now
        self.started: float | None = None if queued else now
        self.event = asyncio.Event()


async def _cancel(task: asyncio.Future) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


_CLOCK: contextvars.ContextVar[_CallClock | None] = contextvars.ContextVar("kimi_env_call_clock", default=None)


def execution_started() -> None:
    """Mark the start of the current tool call's work (after waiting for a lease, a slot, ...).

    The call's timeout counts from here. Call it from inside ``Tool.run`` (or anything it awaits); outside a call,
    and on a second call, it does nothing. A tool that never calls it is timed from the start of ``run``.
    """
    clock = _CLOCK.get()
    if clock is not None and clock.started is None:
        clock.started = time.monotonic()
        clock.event.set()


class ToolStatus:
    """Values of :attr:`ToolResult.status`. Tools may add their own (the python tool does)."""

    OK = "ok"
    INVALID_ARGUMENTS = "invalid_arguments"  # the call did not match the schema; the tool did not run
    ERROR = "error"  # the tool ran and failed (page not found, bad query, ...)
    TIMEOUT = "timeout"  # the per-call timeout expired
    INTERNAL = "internal_error"  # a bug or crash inside the tool itself


@dataclass(frozen=True)
class ToolResult:
    """What a tool call returns.

    Attributes:
        ok: True when the call succeeded.
        content: Text for the agent: the result when ok, else an error sentence that says what to do.
        error: The error sentence when not ok, else None.
        status: One of :class:`ToolStatus` (or a tool-specific status such as ``"compile_error"``).
        meta: Machine-readable extras: ``urls`` (pages opened), ``truncated_chars``, ``elapsed_s``, ...
    """

    ok: bool
    content: str
    error: str | None = None
    status: str = ToolStatus.OK
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def success(cls, content: str, **meta: Any) -> ToolResult:
        return cls(ok=True, content=content, error=None, status=ToolStatus.OK, meta=meta)

    @classmethod
    def failure(cls, error: str, status: str = ToolStatus.ERROR, **meta: Any) -> ToolResult:
        return cls(ok=False, content=f"Error: {error}", error=error, status=status, meta=meta)


def truncate(text: str, limit: int, what: str = "output") -> tuple[str, int]:
    """Cut ``text`` to about ``limit`` characters, with a marker that says how much was cut.

    Returns (text, number of characters cut). The result never exceeds ``limit`` characters.

    >>> truncate("abcdefghij" * 10, 60)
    ('abcdefghijabcdefghija\\n[... 79 characters of output cut ...]', 79)
    >>> truncate("short", 60)
    ('short', 0)
    """
    if len(text) <= limit:
        return text, 0
    for _ in range(3):  # the marker's own length depends on the number it prints
        marker_len = len(f"\n[... {len(text)} characters of {what} cut ...]")
        keep = max(0, limit - marker_len)
        cut = len(text) - keep
        marker = f"\n[... {cut} characters of {what} cut ...]"
        if keep + len(marker) <= limit:
            return text[:keep] + marker, cut
    return text[:limit], len(text) - limit


class Tool:
    """Base class of every tool. Subclasses set ``name`` and write a typed, documented ``async def run``.

    Attributes:
        name: The name the model calls the tool by.
        description: Shown to the model; defaults to the first paragraph of ``run``'s docstring.
        timeout: Seconds a call may take before it returns status ``timeout``.
        max_output_chars: Content longer than this is cut, with a marker that says how much was cut.
        queues: True for a tool whose ``run`` may wait in a queue before it works and calls
            :func:`execution_started` when the work begins; its timeout then counts from that mark.
        max_queue_s: The longest a queued call waits for :func:`execution_started` before it returns ``timeout``.
        param_constraints: Extra JSON-schema keywords per parameter (``minimum``, ``maxItems``, ...), merged into the
            derived schema and enforced by validation.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str | None] = None
    param_constraints: ClassVar[dict[str, dict[str, Any]]] = {}
    queues: ClassVar[bool] = False
    max_queue_s: float = 300.0

    def __init__(self, *, timeout: float = 30.0, max_output_chars: int = 8000) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ToolDefinitionError(f"{type(self).__name__} has no `name`. Fix: set the class attribute `name`.")
        if not (timeout > 0):
            raise ToolDefinitionError(f"timeout must be > 0 seconds, got {timeout!r}.")
        if max_output_chars < 100:
            raise ToolDefinitionError(f"max_output_chars must be >= 100, got {max_output_chars!r}.")
        self.timeout = float(timeout)
        self.max_output_chars = int(max_output_chars)
        self._schema = self._build_schema()

    # -- schema -------------------------------------------------------------------------------------------------
    def _build_schema(self) -> dict:
        run = type(self).run
        if run is Tool.run:
            raise ToolDefinitionError(f"{type(self).__name__} does not implement `async def run(self, ...)`.")
        schema = function_schema(run, name=self.name, description=self.description)
        props = schema["function"]["parameters"]["properties"]
        for pname, extra in self.param_constraints.items():
            if pname not in props:
                raise ToolDefinitionError(f"param_constraints names {pname!r}, which `run` does not take.")
            props[pname].update(extra)
        return schema

    @property
    def schema(self) -> dict:
        """The OpenAI function-format schema (``{"type": "function", "function": {...}}``)."""
        return self._schema

    @property
    def parameters(self) -> dict:
        return self._schema["function"]["parameters"]

    def set_timeout(self, seconds: float) -> None:
        """Change the per-call timeout (environments call this for their ``tool_timeout``)."""
        if not (seconds > 0):
            raise ToolDefinitionError(f"timeout must be > 0 seconds, got {seconds!r}.")
        self.timeout = float(seconds)

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget per-episode state. Called by the environment at every ``reset``.

        A subclass may take ``seed: int | None = None``: the environment then passes a seed drawn from its
        ``np_random``, so a tool's randomness follows ``env.reset(seed=...)``."""

    def on_episode_end(self) -> None:
        """Called once when an episode ends: answer, truncation, close, or a ``reset`` that abandons an unfinished
        episode. Release per-episode resources here (a leased worker). No-op by default; must not raise."""

    async def aclose(self) -> None:
        """Release resources (sessions, processes). Called when the environment closes."""

    def close(self) -> None:
        try:
            aio.run(self.aclose(), timeout=30)
        except Exception:  # noqa: BLE001 - closing must not raise
            pass

    # -- calling ------------------------------------------------------------------------------------------------
    async def run(self, **arguments: Any) -> ToolResult | str:  # pragma: no cover - abstract
        raise NotImplementedError

    async def acall(self, **arguments: Any) -> ToolResult:
        """Validate, run with the timeout, bound the output. Never raises (except on cancellation)."""
        problem = validate_arguments(arguments, self.parameters)
        if problem is not None:
            return self._bound(ToolResult.failure(f"{self.name}: {problem}.", ToolStatus.INVALID_ARGUMENTS), 0.0, 0.0)
        # Models often write null for an optional argument: it means "use the default".
        required = self.parameters.get("required", ())
        arguments = {k: v for k, v in arguments.items() if v is not None or k in required}
        clock = _CallClock(time.monotonic(), queued=self.queues)
        token = _CLOCK.set(clock)
        try:
            task = asyncio.ensure_future(self.run(**arguments))  # the task copies the context: it sees the clock
        finally:
            _CLOCK.reset(token)
        try:
            result = await self._wait(task, clock)
        except asyncio.CancelledError:
            task.cancel()
            raise
        now = time.monotonic()
        started = clock.started if clock.started is not None else now
        return self._bound(result, now - started, started - clock.created)

    async def _wait(self, task: asyncio.Future, clock: _CallClock) -> ToolResult:
        """Wait for ``task`` until ``timeout`` seconds after its execution started (queueing not counted)."""
        while True:
            if clock.started is None:  # queued: wait for the task, or for its execution to start
                marked = asyncio.ensure_future(clock.event.wait())
                try:
                    await asyncio.wait({task, marked}, timeout=clock.created + self.max_queue_s - time.monotonic(),
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    marked.cancel()
                if task.done():
                    break
                if clock.started is None:
                    await _cancel(task)
                    return ToolResult.failure(
                        f"{self.name} waited {self.max_queue_s:g} s without getting a free worker; try again later.",
                        ToolStatus.TIMEOUT)
                continue
            remaining = clock.started + self.timeout - time.monotonic()
            if remaining > 0:
                await asyncio.wait({task}, timeout=remaining)
            if task.done():
                break
            if clock.started + self.timeout <= time.monotonic():
                await _cancel(task)
                return ToolResult.failure(
                    f"{self.name} did not finish within {self.timeout:g} s; try a smaller request.", ToolStatus.TIMEOUT
                )
        try:
            result = task.result()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken tool must not break the episode
            msg, _ = truncate(f"{type(exc).__name__}: {exc}", 300, "error")
            return ToolResult.failure(f"{self.name} failed internally ({msg}).", ToolStatus.INTERNAL)
        if isinstance(result, str):
            return ToolResult.success(result)
        if not isinstance(result, ToolResult):
            return ToolResult.failure(
                f"{self.name} returned {type(result).__name__}, expected ToolResult or str.", ToolStatus.INTERNAL
            )
        return result

    def _bound(self, result: ToolResult, elapsed: float, queued: float) -> ToolResult:
        content, cut = truncate(neutralize(result.content), self.max_output_chars)
        meta = dict(result.meta)
        meta.setdefault("elapsed_s", round(elapsed, 6))
        if queued > 0.0005:
            meta.setdefault("queued_s", round(queued, 6))
        if cut:
            meta["truncated_chars"] = meta.get("truncated_chars", 0) + cut
        error = result.error
        if error is not None:
            error = neutralize(error)
            if len(error) > self.max_output_chars:
                error, _ = truncate(error, self.max_output_chars, "error")
        return ToolResult(ok=result.ok, content=content, error=error, status=result.status, meta=meta)

    def call(self, **arguments: Any) -> ToolResult:
        """Synchronous :meth:`acall`, run on the process's background loop."""
        return aio.run(self.acall(**arguments))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class FunctionTool(Tool):
    """A tool made from a plain typed function (sync or async) by :func:`function_tool`."""

    def __init__(self, fn: Callable, *, name: str | None = None, description: str | None = None, **kwargs: Any):
        self._fn = fn
        self.name = name or fn.__name__  # type: ignore[misc]
        if description is None and not (inspect.getdoc(fn) or "").strip():
            raise ToolDefinitionError(
                f"function_tool {self.name!r}: the function has no docstring, so the agent would be shown a tool "
                "without a description. Fix: give it a Google-style docstring (a summary line, then Args: with one "
                "line per parameter), or pass description='...'."
            )
        self.description = description  # type: ignore[misc]
        super().__init__(**kwargs)

    def _build_schema(self) -> dict:
        return function_schema(self._fn, name=self.name, description=self.description)

    async def run(self, **arguments: Any) -> ToolResult | str:
        if inspect.iscoroutinefunction(self._fn):
            out = await self._fn(**arguments)
        else:
            out = await asyncio.to_thread(self._fn, **arguments)
        if isinstance(out, (ToolResult, str)):
            return out
        try:  # dicts, lists, numbers: JSON, which an agent reads (and writes) better than a Python repr
            return json.dumps(out, ensure_ascii=False)
        except (TypeError, ValueError):
            return str(out)


def function_tool(fn: Callable | None = None, *, name: str | None = None, **kwargs: Any) -> Any:
    """Turn a typed, documented function into a :class:`Tool`. Usable as ``@function_tool`` or a call.

    >>> @function_tool
    ... def add(a: int, b: int) -> int:
    ...     '''Add two integers.
    ...
    ...     Args:
    ...         a: first
    ...         b: second
    ...     '''
    ...     return a + b
    >>> add.call(a=2, b=3).content
    '5'
    >>> add.call(a="2", b=3).status
    'invalid_arguments'
    """
    if fn is None:
        return lambda f: FunctionTool(f, name=name, **kwargs)
    return FunctionTool(fn, name=name, **kwargs)
