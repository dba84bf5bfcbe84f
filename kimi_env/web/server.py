"""Serve a corpus over HTTP on loopback: pages as HTML and a JSON search endpoint.

URL mapping (canonical URL ``https://kimiwiki.test/wiki/Paris``):

* ``GET /raw?url=<canonical URL, percent-encoded>``: the page exactly as stored (what
  :class:`~kimi_env.tools.BrowseTool` reads).
* ``GET /`` and ``GET /?q=words&p=2``: the search page for a person (query box, results with titles, URLs and
  snippets, pagination); see :mod:`kimi_env.web.human`.
* ``GET /web/<scheme>/<host>/<path>``: the page for a person, e.g. ``/web/https/kimiwiki.test/wiki/Paris``, with
  its links rewritten to stay on this server.
* ``GET /page?url=<URL>``: the same, for any URL form the browse tool accepts (``kimiwiki.test/wiki/Paris``).
* ``GET /search?q=...&q=...&k=5``: ``{"results": [{"query": q, "hits": [{url, title, score, snippet}]}]}``.
* ``GET /healthz``: ``{"ok": true, "count": N, "content_hash": ...}``.

Unknown pages are 404; documents with only text are wrapped as minimal HTML. Every page response carries the
header ``X-Canonical-URL``. Corpus reads, rendering and searches run in worker threads, never on the event loop
that the server shares with the tools.

Security (docs/web.md, threat model): a request whose ``Host`` header names another server gets 421 (DNS
rebinding); every response carries ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``; imported
pages (``/raw``, ``/web/...``, ``/page``) carry :data:`PAGE_CSP` (no scripts, sandboxed), the server's own pages
(``/`` and "not in the offline web") :data:`HOME_CSP` (no scripts; the search form may submit to this server).

Environments share one server per corpus and process: :func:`acquire_server` starts it on the background loop of
:mod:`kimi_env.aio` on a free port (or returns the running one, counting users), :func:`release` stops it when the
last user is gone.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .. import aio
from .corpus import Corpus

__all__ = [
    "ServerHandle", "ServerLimits", "create_app", "acquire_server", "aacquire_server", "release", "arelease", "serve"
]

MAX_SEARCH_QUERIES = 20
MAX_SEARCH_K = 100


def create_app(
    corpus: Corpus, *, allowed_hosts: tuple[str, ...] | list[str] = (), in_flight: dict | None = None
) -> Any:
    """The aiohttp application serving ``corpus`` (see the module docstring for routes).

    Args:
        corpus: The corpus to serve.
        allowed_hosts: Host names accepted in the ``Host`` header besides the address the request arrived on (and
            ``localhost`` on loopback); see :func:`_guard_middleware`.
        in_flight: Filled with {connection's request handler: requests in flight} (the connection cap reads it).
    """
    from aiohttp import web  # noqa: PLC0415

    from . import human  # noqa: PLC0415
    from .text import text_to_html  # noqa: PLC0415

    busy = in_flight if in_flight is not None else {}
    app = web.Application(middlewares=[_guard_middleware(allowed_hosts, busy)])
    state: dict[str, Any] = {"index": None, "lock": None}

    def read_page(url: str) -> tuple[str, str] | None:  # in a worker thread: SQLite read and decompression
        doc = corpus.get(url)
        if doc is None:
            return None
        return doc.url, doc.html if doc.html is not None else text_to_html(doc.title, doc.text or "")

    async def raw(request: Any) -> Any:
        url = request.query.get("url")
        if not url:
            return web.Response(status=400, text="Expected /raw?url=<absolute URL>.\n", content_type="text/plain")
        found = await asyncio.to_thread(read_page, url)
        if found is None:
            return web.Response(
                status=404, text=f"Not found in the offline web: {url}\n", content_type="text/plain", charset="utf-8"
            )
        return web.Response(
            text=found[1],
            content_type="text/html",
            charset="utf-8",
            headers={"X-Canonical-URL": found[0], **PAGE_HEADERS},
        )

    def read_browsable(url: str) -> tuple[int, str, dict]:  # in a worker thread
        found = read_page(url)
        if found is None:  # the server's own page (with a search form), not imported markup
            return 404, human.not_found_page(url), dict(HOME_HEADERS)
        return 200, human.browsable_page(found[1], found[0]), {"X-Canonical-URL": found[0], **PAGE_HEADERS}

    async def browsable(url: str) -> Any:
        status, body, headers = await asyncio.to_thread(read_browsable, url)
        return web.Response(status=status, text=body, content_type="text/html", charset="utf-8", headers=headers)

    async def page(request: Any) -> Any:
        url = request.query.get("url")
        if not url or not url.strip():
            return web.Response(status=400, text="Expected /page?url=<URL>.\n", content_type="text/plain")
        return await browsable(human.complete_url(url))

    async def web_path(request: Any) -> Any:
        rest = request.raw_path[len("/web/") :]  # undecoded: canonical URLs keep their percent-encoding
        scheme, _, remainder = rest.partition("/")
        if scheme not in ("http", "https") or not remainder:
            return web.Response(
                status=400, text="Expected /web/<http|https>/<host>/<path>.\n", content_type="text/plain"
            )
        return await browsable(f"{scheme}://{remainder}")

    async def get_index() -> Any:
        if state["index"] is None:
            if state["lock"] is None:
                state["lock"] = asyncio.Lock()
            async with state["lock"]:
                if state["index"] is None:
                    from .index import get_index as _get  # noqa: PLC0415

                    state["index"] = await asyncio.to_thread(_get, corpus)
        return state["index"]

    async def search(request: Any) -> Any:
        queries = [q for q in request.query.getall("q", []) if q.strip()]
        if not queries:
            return web.json_response({"error": "expected at least one non-empty q parameter: /search?q=words"}, status=400)
        if len(queries) > MAX_SEARCH_QUERIES:
            return web.json_response({"error": f"at most {MAX_SEARCH_QUERIES} q parameters, got {len(queries)}"}, status=400)
        try:
            k = int(request.query.get("k", "5"))
        except ValueError:
            return web.json_response({"error": f"k must be an integer, got {request.query.get('k')!r}"}, status=400)
        if not 1 <= k <= MAX_SEARCH_K:
            return web.json_response({"error": f"k must be between 1 and {MAX_SEARCH_K}, got {k}"}, status=400)
        index = await get_index()
        results = await asyncio.to_thread(index.search, queries, k)
        return web.json_response(
            {"results": [{"query": q, "hits": [h.to_dict() for h in hits]} for q, hits in zip(queries, results)]}
        )

    async def healthz(request: Any) -> Any:
        return web.json_response({"ok": True, "count": len(corpus), "content_hash": corpus.content_hash})

    async def home(request: Any) -> Any:
        query = request.query.get("q", "")
        try:
            page_no = int(request.query.get("p", "1"))
        except ValueError:
            page_no = 1
        index = await get_index() if query.strip() else None
        body = await asyncio.to_thread(human.search_page, corpus.name, len(corpus), query, page_no, index)
        return web.Response(text=body, content_type="text/html", charset="utf-8", headers=HOME_HEADERS)

    app.router.add_get("/", home)
    app.router.add_get("/raw", raw)
    app.router.add_get("/page", page)
    app.router.add_get("/web/{rest:.*}", web_path)
    app.router.add_get("/search", search)
    app.router.add_get("/healthz", healthz)
    return app


# -- hardening (issue 15, finding 6): Host check, security headers, timeouts, connection cap -------------------------
# Imported pages are untrusted HTML on the loopback origin: no scripts, no plugins, no forms, no outside fetches,
# and a sandboxed (opaque) origin, so a page opened in a browser can reach neither the server's other routes nor
# other loopback services. Inline styles and data: images still render.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'; sandbox"
)
PAGE_HEADERS = {"Content-Security-Policy": PAGE_CSP}
# The server's own pages (the search front page, "not in the offline web"): its markup, every corpus string in it
# escaped. Still no scripts (the page needs none) and no outside fetches; only its search form may submit, to this
# server. Not sandboxed: a sandbox without allow-forms would block the form.
HOME_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HOME_HEADERS = {"Content-Security-Policy": HOME_CSP}
# On every response: the ones that set no policy (JSON, plain-text errors) get the strict one.
_COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
_DEFAULT_HEADERS = {**_COMMON_HEADERS, **PAGE_HEADERS}


@dataclass(frozen=True)
class ServerLimits:
    """Connection limits of the corpus server.

    Attributes:
        idle_timeout: Seconds a connection may go without a complete request head, from its start or the end of its
            last response; trickling bytes do not extend it (aiohttp's ``keepalive_timeout``).
        max_connections: Open connections at most. At the cap, a new connection closes the oldest one that has no
            request in flight (or gets a 503 when every one is busy). Default: half the process's descriptor
            limit (``RLIMIT_NOFILE``), at most 1024, so idle connections can never exhaust descriptors.
    """

    idle_timeout: float = 30.0
    max_connections: int | None = None

    def connection_cap(self) -> int:
        if self.max_connections is not None:
            return max(1, int(self.max_connections))
        soft = _descriptor_limit()
        return 512 if soft is None else max(8, min(1024, soft // 2))

    def backlog(self) -> int:
        """Listen backlog: asyncio accepts up to this many sockets in one burst before the cap can act, so the
        cap plus two bursts must stay under the descriptor limit."""
        soft = _descriptor_limit()
        return 100 if soft is None else max(4, min(100, soft // 8))


def _descriptor_limit() -> int | None:
    try:
        import resource  # noqa: PLC0415 - POSIX only

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    return int(soft)


def _host_allowed(host_header: str, local_ip: str | None, allowed: frozenset[str]) -> bool:
    """Whether a ``Host`` header names this server: its own address, localhost on loopback, or an allowed name.

    A DNS-rebinding page reaches us under the attacker's *name* (``evil.example`` resolving to 127.0.0.1), so the
    name is what is checked; the port is not (port forwarding changes it legitimately).
    """
    import ipaddress  # noqa: PLC0415

    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.rstrip(".")
    if host in allowed:
        return True
    try:
        requested = ipaddress.ip_address(host)
    except ValueError:
        requested = None
    local = None
    if local_ip:
        try:
            local = ipaddress.ip_address(local_ip.split("%", 1)[0])
        except ValueError:
            local = None
    if local is None:
        return host == "localhost" or requested is not None
    if isinstance(local, ipaddress.IPv6Address) and local.ipv4_mapped is not None:
        local = local.ipv4_mapped
    if requested is not None:
        return requested == local
    return host == "localhost" and local.is_loopback


def _guard_middleware(allowed_hosts: tuple[str, ...] | list[str], busy: dict) -> Any:
    """Refuse requests whose ``Host`` is not this server (421); add security headers (``nosniff``, ``no-referrer``,
    and the strict :data:`PAGE_CSP` where a route set no policy of its own) to every response; track requests in
    flight."""
    from aiohttp import web  # noqa: PLC0415

    allowed = frozenset(h.strip().lower().rstrip(".") for h in allowed_hosts)

    @web.middleware
    async def guard(request: Any, handler: Any) -> Any:
        host = request.headers.get("Host")
        if host is not None:
            sock = request.transport.get_extra_info("sockname") if request.transport is not None else None
            if not _host_allowed(host, sock[0] if sock else None, allowed):
                return web.Response(
                    status=421,
                    text=f"Misdirected request: this server does not answer for Host {host[:100]!r}. "
                    "Use its address (e.g. http://127.0.0.1:PORT/) or start it with --allow-host NAME.\n",
                    content_type="text/plain",
                    headers=_DEFAULT_HEADERS,
                )
        proto = request.protocol
        busy[proto] = busy.get(proto, 0) + 1
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own answers (unknown route: 404, wrong method: 405)
            for key, value in _DEFAULT_HEADERS.items():
                exc.headers.setdefault(key, value)
            raise
        finally:
            left = busy.get(proto, 1) - 1
            if left > 0:
                busy[proto] = left
            else:
                busy.pop(proto, None)
        for key, value in _DEFAULT_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    return guard


_REFUSED_503 = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Refuse(asyncio.Protocol):
    """A connection over the cap with every other connection busy: answer 503 and close."""

    def connection_made(self, transport: Any) -> None:
        transport.write(_REFUSED_503)
        transport.close()


def _capped_factory(server: Any, busy: dict, cap: int) -> Any:
    """Protocol factory around aiohttp's ``web.Server`` that keeps at most ``cap`` connections open."""
    closing: set = set()  # force-closed, until aiohttp drops them from server.connections (no weakrefs to them)

    def factory() -> Any:
        connections = server.connections  # in accept order
        closing.intersection_update(connections)
        live = [h for h in connections if h not in closing]
        if len(live) >= cap:
            idle = [h for h in live if not busy.get(h)]
            if not idle:
                return _Refuse()
            for victim in idle[: len(live) - cap + 1]:  # the oldest idle ones, down to room for this one
                closing.add(victim)
                victim.force_close()
        return server()

    return factory


async def _listen(runner: Any, host: str, port: int, limits: ServerLimits, busy: dict) -> tuple[Any, int]:
    """Listen on ``host:port`` with the connection cap; returns (asyncio server, bound port)."""
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(
        _capped_factory(runner.server, busy, limits.connection_cap()),
        host,
        port,
        reuse_address=True,
        backlog=limits.backlog(),
    )
    return listener, int(listener.sockets[0].getsockname()[1])


@dataclass
class ServerHandle:
    """A user's claim on a running corpus server. Call :meth:`release` (or use ``with``) when done.

    Attributes:
        corpus: The corpus served.
        host: Bound address (loopback by default).
        port: Bound port.
        base_url: ``http://host:port``.
    """

    corpus: Corpus
    host: str
    port: int
    _key: tuple = field(repr=False, default=())
    _released: bool = field(repr=False, default=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def page_url(self, url: str) -> str:
        """Server address of the page with canonical ``url``, exactly as stored (``/raw``; people use ``/web/...``)."""
        return f"{self.base_url}/raw?url={quote(url, safe='')}"

    @property
    def search_url(self) -> str:
        return f"{self.base_url}/search"

    def release(self) -> None:
        release(self)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class _Running:
    runner: Any
    host: str
    port: int
    refs: int = 0
    listener: Any = None

    async def cleanup(self) -> None:
        if self.listener is not None:
            self.listener.close()
        await self.runner.cleanup()


_servers: dict[tuple, _Running] = {}
_registry_lock: asyncio.Lock | None = None


def _lock() -> asyncio.Lock:
    global _registry_lock
    if _registry_lock is None:
        _registry_lock = asyncio.Lock()
    return _registry_lock


async def _start(
    corpus: Corpus,
    host: str,
    port: int,
    limits: ServerLimits | None = None,
    allowed_hosts: tuple[str, ...] | list[str] = (),
) -> _Running:
    from aiohttp import web  # noqa: PLC0415

    limits = limits or ServerLimits()
    busy: dict = {}
    app = create_app(corpus, allowed_hosts=allowed_hosts, in_flight=busy)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=limits.idle_timeout)
    await runner.setup()
    try:
        listener, bound = await _listen(runner, host, port, limits, busy)
    except BaseException:
        await runner.cleanup()
        raise
    return _Running(runner, host, bound, listener=listener)


async def _acquire(corpus: Corpus, host: str) -> ServerHandle:
    key = (str(corpus.path), corpus.content_hash, host)
    async with _lock():
        running = _servers.get(key)
        if running is None:
            running = _servers[key] = await _start(corpus, host, 0)
        running.refs += 1
        return ServerHandle(corpus, running.host, running.port, _key=key)


async def _release(handle: ServerHandle) -> None:
    if handle._released:
        return
    handle._released = True
    async with _lock():
        running = _servers.get(handle._key)
        if running is None:
            return
        running.refs -= 1
        if running.refs <= 0:
            del _servers[handle._key]
            await running.cleanup()


def _as_corpus(corpus: Corpus | str | os.PathLike) -> Corpus:
    return corpus if isinstance(corpus, Corpus) else Corpus.open(corpus)


async def aacquire_server(corpus: Corpus | str | os.PathLike, *, host: str = "127.0.0.1") -> ServerHandle:
    """Async :func:`acquire_server` (usable from any event loop, including the background one)."""
    return await aio.arun(_acquire(_as_corpus(corpus), host))


def acquire_server(corpus: Corpus | str | os.PathLike, *, host: str = "127.0.0.1") -> ServerHandle:
    """Start (or share) the loopback server of ``corpus`` on the background loop; returns a handle to release.

    One server runs per corpus and process, on a free port; each call adds a user. From code running on the
    background loop itself, use ``await aacquire_server(...)``.
    """
    return aio.run(_acquire(_as_corpus(corpus), host))


async def arelease(handle: ServerHandle) -> None:
    """Async :func:`release`."""
    await aio.arun(_release(handle))


def release(handle: ServerHandle) -> None:
    """Drop one user of the server; the last release stops it. Releasing twice is harmless."""
    if handle._released:
        return
    loop = aio.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:  # called from a coroutine on the background loop: schedule, do not block it
        loop.create_task(_release(handle))
    else:
        aio.run(_release(handle), timeout=30)


def running_servers() -> dict[tuple, int]:
    """(corpus path, hash, host) -> number of users, for diagnostics and tests."""
    return {k: v.refs for k, v in _servers.items()}


def serve(
    corpus: Corpus | str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    limits: ServerLimits | None = None,
    allowed_hosts: tuple[str, ...] | list[str] = (),
) -> None:
    """Serve ``corpus`` in the foreground until interrupted (``kimi-env serve``)."""
    corpus = _as_corpus(corpus)

    async def main() -> None:
        running = await _start(corpus, host, port, limits, allowed_hosts)
        print(
            f"Serving {len(corpus)} page{'' if len(corpus) == 1 else 's'} of {corpus.path} "
            f"at http://{host}:{running.port}/ "
            f"(open it in a browser to search and read; programs: /raw?url=..., /search?q=...). Ctrl-C stops.",
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await running.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
