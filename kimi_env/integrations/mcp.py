"""Model Context Protocol, both ways, with the official ``mcp`` package (extra ``mcp``).

**Client**: :class:`MCPTool` offers a tool of any MCP server to an environment's agent. The schema comes from the
server's ``tools/list``; each call goes through the :class:`~kimi_env.Tool` contract (argument validation against
that schema, the per-call timeout, the output cap) and comes back as a :class:`~kimi_env.ToolResult`::

    tools = mcp_tools("stdio:python -m my_server")          # every tool of the server, one shared connection
    search = MCPTool("http://127.0.0.1:8000/mcp", name="search")

A server that dies, hangs or answers something malformed gives the agent a short error observation (status
``error``, ``timeout`` or ``internal_error``) and the episode goes on; the next call starts the server again.

**Server**: ``kimi-env mcp-serve --corpus DIR`` (or :func:`build_server`) exposes our search, browse and python tools
over MCP stdio, or streamable HTTP on loopback (``--transport http --port N``), with the limits and error messages
they have inside an environment: unknown tools and wrong arguments get the same sentences our environments give, and
the result's ``_meta["kimi_env/status"]`` carries the typed status (``unknown_tool``, ``invalid_arguments``, ...).
One server process holds one set of tools: the browse session and the python notebook persist across the calls of
all its clients (one agent per server, as with stdio).
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import aio
from ..errors import InvalidArgumentError, KimiEnvError, unknown_name
from ..tools.base import Tool, ToolResult, ToolStatus, truncate

__all__ = ["MCPTool", "MCPConnection", "MCPError", "mcp_tools", "build_server", "serve", "main", "register"]

STATUS_KEY = "kimi_env/status"


class MCPError(KimiEnvError):
    """An MCP server could not be reached or listed (raised to programmers at construction time)."""


def _require_mcp() -> Any:
    try:
        import mcp
    except ImportError as exc:
        raise InvalidArgumentError(
            "MCP support needs the official `mcp` package (>= 2), which is not installed. "
            "Fix: pip install 'kimi-env[mcp]'."
        ) from exc
    return mcp


def _parse_target(server: Any) -> Any:
    """``"stdio:CMD ARGS"`` -> StdioServerParameters; ``http(s)://...`` -> URL; StdioServerParameters as is."""
    from mcp.client.stdio import StdioServerParameters

    # the official client starts servers with a minimal environment; our own settings (the cache) pass through
    ours = {k: v for k, v in os.environ.items() if k.startswith("KIMI_ENV_")} or None
    if isinstance(server, StdioServerParameters):
        return server
    if isinstance(server, (list, tuple)) and server and all(isinstance(s, str) for s in server):
        return StdioServerParameters(command=server[0], args=list(server[1:]), env=ours)
    if isinstance(server, str):
        if server.startswith("stdio:"):
            argv = shlex.split(server[len("stdio:"):])
            if not argv:
                raise InvalidArgumentError("MCP server 'stdio:' names no command. Fix: 'stdio:python -m my_server'.")
            return StdioServerParameters(command=argv[0], args=argv[1:], env=ours)
        if server.startswith(("http://", "https://")):
            return server
    raise InvalidArgumentError(
        f"MCP server must be 'stdio:COMMAND ARGS', an http(s):// URL of a streamable-HTTP endpoint, an argv list or "
        f"StdioServerParameters; got {server!r}. Fix: e.g. MCPTool('stdio:python -m my_server')."
    )


class MCPConnection:
    """One client session to one MCP server, owned by a task on kimi-env's background loop (so the official
    client's task-scoped context managers enter and exit in one task), shared by the :class:`MCPTool` s of that
    server. Reconnects on the next call after the server died or a call timed out."""

    def __init__(self, server: Any, *, connect_timeout: float = 30.0) -> None:
        _require_mcp()
        self.spec = server
        self.target = _parse_target(server)
        self.connect_timeout = float(connect_timeout)
        self._client: Any = None
        self._owner: asyncio.Task | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._lock: asyncio.Lock | None = None
        self._users = 0

    def __repr__(self) -> str:
        return f"MCPConnection({self.spec!r})"

    async def _own(self, ready: asyncio.Event, stop: asyncio.Event) -> None:
        from mcp import Client

        try:
            async with Client(self.target, read_timeout_seconds=None) as client:
                self._client = client
                ready.set()
                await stop.wait()
        except BaseException as exc:  # noqa: BLE001 - recorded, reported as an error observation or MCPError
            self._error = exc
        finally:
            self._client = None
            ready.set()

    async def connect(self) -> Any:
        """The live client, connecting (or reconnecting) first. Raises :class:`MCPError` when that fails."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is not None and self._owner is not None and not self._owner.done():
                return self._client
            await self._drop()
            self._error = None
            ready, self._stop = asyncio.Event(), asyncio.Event()
            self._owner = asyncio.get_running_loop().create_task(self._own(ready, self._stop))
            try:
                await asyncio.wait_for(ready.wait(), self.connect_timeout)
            except asyncio.TimeoutError:
                await self._drop()
                raise MCPError(f"MCP server {self.spec!r} did not complete the handshake within "
                               f"{self.connect_timeout:g} s. Fix: check that the command starts an MCP server.")
            if self._client is None:
                raise MCPError(f"could not connect to MCP server {self.spec!r}: {_describe(self._error)}. "
                               "Fix: check the command or URL (run it by hand to see its errors).")
            return self._client

    async def _drop(self) -> None:
        owner, self._owner = self._owner, None
        if owner is None:
            return
        if self._stop is not None:
            self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(owner), 10)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - a stuck teardown is cancelled
            owner.cancel()
        self._client = None

    async def list_tools(self) -> list[Any]:
        client = await self.connect()
        result = await asyncio.wait_for(client.list_tools(), self.connect_timeout)
        return list(result.tools)

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        client = await self.connect()
        try:
            return await client.call_tool(name, arguments)
        except asyncio.CancelledError:
            # the tool's timeout cancelled us: the server may hang; start it again on the next call
            asyncio.get_running_loop().create_task(self._drop())
            raise
        except Exception:
            await self._drop()
            raise

    async def aclose(self) -> None:
        await self._drop()

    def close(self) -> None:
        try:
            aio.run(self.aclose(), timeout=30)
        except Exception:  # noqa: BLE001 - closing must not raise
            pass


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "the connection closed"
    groups = getattr(builtins, "BaseExceptionGroup", ())
    while groups and isinstance(exc, groups) and exc.exceptions:
        exc = exc.exceptions[0]
    first = (str(exc).strip().splitlines() or [""])[0]
    return truncate(f"{type(exc).__name__}: {first}", 200, "error")[0]


def _result_text(result: Any) -> str:
    parts = []
    for item in getattr(result, "content", None) or []:
        kind = getattr(item, "type", None)
        if kind == "text":
            parts.append(str(item.text))
        elif kind == "resource" and hasattr(getattr(item, "resource", None), "text"):
            parts.append(str(item.resource.text))
        else:
            parts.append(f"[{kind or type(item).__name__} content omitted]")
    if not parts and getattr(result, "structured_content", None) is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    return "\n".join(parts)


class MCPTool(Tool):
    """One tool of an MCP server as a kimi-env :class:`~kimi_env.Tool`.

    Args:
        server: ``"stdio:COMMAND ARGS"``, a streamable-HTTP URL (``http://127.0.0.1:8000/mcp``), an argv list, or an
            :class:`MCPConnection` to share with other tools of the same server.
        name: The server's tool to offer; may be omitted when the server has exactly one tool.
        timeout: Per-call seconds (a hanging server gives status ``timeout`` and is restarted on the next call).
        max_output_chars: Output cap.
        connect_timeout: Seconds for starting the server, the handshake and listing its tools.

    Raises:
        MCPError: the server cannot be started or listed. InvalidArgumentError: ``name`` is not one of its tools.
    """

    name = "mcp"  # replaced per instance by the server's tool name

    def __init__(self, server: Any, name: str | None = None, *, timeout: float = 30.0, max_output_chars: int = 8000,
                 connect_timeout: float = 30.0, _listed: Any = None) -> None:
        self.connection = server if isinstance(server, MCPConnection) else MCPConnection(
            server, connect_timeout=connect_timeout)
        self.connection._users += 1
        remote = _listed
        if remote is None:
            listed = aio.run(self.connection.list_tools(), timeout=connect_timeout + 15)
            by_name = {t.name: t for t in listed}
            if name is None:
                if len(listed) != 1:
                    self.connection.close()
                    raise InvalidArgumentError(
                        f"MCP server {self.connection.spec!r} has {len(listed)} tools "
                        f"({', '.join(sorted(by_name)) or 'none'}); name one with MCPTool(server, name=...), or take "
                        "them all with mcp_tools(server)."
                    )
                remote = listed[0]
            elif name not in by_name:
                self.connection.close()
                raise unknown_name("MCP tool", name, by_name)
            else:
                remote = by_name[name]
        self.name = remote.name  # type: ignore[misc]
        schema = dict(remote.input_schema or {})
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        schema.setdefault("required", [])
        self._remote_schema = {
            "type": "function",
            "function": {"name": remote.name, "description": remote.description or "", "parameters": schema},
        }
        super().__init__(timeout=timeout, max_output_chars=max_output_chars)

    def _build_schema(self) -> dict:
        return self._remote_schema

    async def run(self, **arguments: Any) -> ToolResult:
        try:
            result = await self.connection.call(self.name, arguments)
        except MCPError as exc:
            return ToolResult.failure(f"{self.name}: {exc}", ToolStatus.ERROR)
        except (asyncio.CancelledError, asyncio.TimeoutError):
            raise
        except Exception as exc:  # noqa: BLE001 - a dead or broken server is an observation, not a crash
            return ToolResult.failure(
                f"{self.name}: the MCP server failed or answered something malformed ({_describe(exc)}); "
                "it will be restarted on the next call.", ToolStatus.INTERNAL)
        text = _result_text(result)
        if getattr(result, "is_error", False):
            return ToolResult.failure(f"{self.name}: {text or 'the server reported an error'}", ToolStatus.ERROR)
        return ToolResult.success(text)

    async def aclose(self) -> None:
        self.connection._users -= 1
        if self.connection._users <= 0:
            await self.connection.aclose()


def mcp_tools(server: Any, *, timeout: float = 30.0, max_output_chars: int = 8000,
              connect_timeout: float = 30.0) -> list[MCPTool]:
    """Every tool of an MCP server, sharing one connection (closed when the last of them closes)."""
    conn = server if isinstance(server, MCPConnection) else MCPConnection(server, connect_timeout=connect_timeout)
    listed = aio.run(conn.list_tools(), timeout=connect_timeout + 15)
    return [MCPTool(conn, t.name, timeout=timeout, max_output_chars=max_output_chars, _listed=t) for t in listed]


# ---------------------------------------------------------------------- server side
def build_server(tools: Sequence[Tool], name: str = "kimi-env") -> Any:
    """An official low-level MCP ``Server`` exposing ``tools`` (listed with our derived schemas, called through
    :meth:`Tool.acall`, so validation, timeouts and output caps are ours)."""
    _require_mcp()
    import mcp.types as types
    from mcp.server.lowlevel import Server

    by_name = {t.name: t for t in tools}

    async def on_list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=[
            types.Tool(name=t.name, description=t.schema["function"]["description"], input_schema=t.parameters)
            for t in tools
        ])

    async def on_call_tool(ctx: Any, params: Any) -> Any:
        tool = by_name.get(params.name)
        if tool is None:
            text, status = "Error: " + str(unknown_name("tool", str(params.name)[:60], by_name)), "unknown_tool"
            ok = False
        else:
            arguments = params.arguments if params.arguments is not None else {}
            result = await aio.arun(tool.acall(**arguments)) if isinstance(arguments, dict) else \
                ToolResult.failure(f"{tool.name}: arguments must be a JSON object, got {type(arguments).__name__}.",
                                   ToolStatus.INVALID_ARGUMENTS)
            text, status, ok = result.content, result.status, result.ok
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=not ok,
                                    _meta={STATUS_KEY: status})

    return Server(name, version="0.1.0", on_list_tools=on_list_tools, on_call_tool=on_call_tool)


def make_server_tools(corpus: str | None, tool_names: Sequence[str], *, world_seed: int = 0, pages: int = 2000,
                      python_timeout: float = 10.0) -> list[Tool]:
    """Our tools over an imported corpus directory (or, with ``corpus=None``, the generated world's corpus)."""
    from ..tools import BrowseTool, PythonTool, SearchTool
    from ..web.corpus import Corpus

    known = ("search", "browse", "python")
    for n in tool_names:
        if n not in known:
            raise unknown_name("tool", n, known)
    needs_corpus = any(n in ("search", "browse") for n in tool_names)
    store = None
    if needs_corpus:
        if corpus is not None:
            if not Path(corpus).is_dir():
                raise InvalidArgumentError(f"--corpus {corpus!r} is not a directory. Fix: give the output folder of "
                                           "`kimi-env corpus import` (or omit it to serve the generated world).")
            store = Corpus.open(corpus)
        else:
            from ..world import generate_world
            from ..world.solvable import world_corpus

            store = world_corpus(generate_world(seed=world_seed, n_pages=pages))
    makers = {"search": lambda: SearchTool(store), "browse": lambda: BrowseTool(store),
              "python": lambda: PythonTool(timeout=python_timeout)}
    tools = [makers[n]() for n in tool_names]
    if "search" in tool_names:
        from ..web.index import get_index

        get_index(store)  # build or load the index now, not inside the first call's timeout
    return tools


async def serve(tools: Sequence[Tool], *, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8000,
                path: str = "/mcp") -> None:
    """Serve ``tools`` over MCP stdio or streamable HTTP (loopback only) until the client goes away (stdio) or the
    process is stopped (HTTP)."""
    server = build_server(tools)
    if transport == "stdio":
        from mcp.server.stdio import stdio_server

        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
        return
    if transport != "http":
        raise unknown_name("transport", transport, ("stdio", "http"))
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise InvalidArgumentError(f"mcp-serve binds loopback only (127.0.0.1, localhost or ::1), got --host {host!r}.")
    import uvicorn

    app = server.streamable_http_app(streamable_http_path=path, host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve()


def build_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--corpus", default=None, help="corpus directory (kimi-env corpus import); default: the generated "
                   "world of --world-seed/--pages")
    p.add_argument("--tools", default="search,browse,python", help="comma-separated tools to expose")
    p.add_argument("--transport", default="stdio", choices=("stdio", "http"))
    p.add_argument("--host", default="127.0.0.1", help="HTTP only; loopback addresses only")
    p.add_argument("--port", type=int, default=8000, help="HTTP only")
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument("--pages", type=int, default=2000)
    p.add_argument("--python-timeout", type=float, default=10.0)
    return p


def _cmd(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.tools.split(",") if n.strip()]
    if args.transport == "http" and args.host not in ("127.0.0.1", "localhost", "::1"):
        raise InvalidArgumentError(f"mcp-serve binds loopback only (127.0.0.1, localhost or ::1), got --host "
                                   f"{args.host!r}.")
    _require_mcp()
    tools = make_server_tools(args.corpus, names, world_seed=args.world_seed, pages=args.pages,
                              python_timeout=args.python_timeout)
    if args.transport == "http":
        print(f"kimi-env mcp-serve: streamable HTTP on http://{args.host}:{args.port}/mcp "
              f"(tools: {', '.join(names)})", file=sys.stderr, flush=True)
    try:
        import anyio

        anyio.run(lambda: serve(tools, transport=args.transport, host=args.host, port=args.port))
    except KeyboardInterrupt:
        pass
    finally:
        for t in tools:
            t.close()
    return 0


def register(subparsers: Any) -> None:
    """CLI plugin hook (entry-point group ``kimi_env.cli``): adds ``kimi-env mcp-serve``."""
    p = subparsers.add_parser("mcp-serve", help="serve search, browse and python over MCP (stdio or loopback HTTP)")
    build_parser(p)
    p.set_defaults(func=_cmd)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(argparse.ArgumentParser(prog="kimi-env mcp-serve")).parse_args(argv)
    return _cmd(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
