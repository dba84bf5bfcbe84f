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

__all__ = ["ServerHandle", "create_app", "acquire_server", "aacquire_server", "release", "arelease", "serve"]

MAX_SEARCH_QUERIES = 20
MAX_SEARCH_K = 100


def create_app(corpus: Corpus) -> Any:
    """The aiohttp application serving ``corpus`` (see the module docstring for routes)."""
    from aiohttp import web  # noqa: PLC0415

    from . import human  # noqa: PLC0415
    from .text import text_to_html  # noqa: PLC0415

    app = web.Application()
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
            text=found[1], content_type="text/html", charset="utf-8", headers={"X-Canonical-URL": found[0]}
        )

    def read_browsable(url: str) -> tuple[int, str, dict]:  # in a worker thread
        found = read_page(url)
        if found is None:
            return 404, human.not_found_page(url), {}
        return 200, human.browsable_page(found[1], found[0]), {"X-Canonical-URL": found[0]}

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
        return web.Response(text=body, content_type="text/html", charset="utf-8")

    app.router.add_get("/", home)
    app.router.add_get("/raw", raw)
    app.router.add_get("/page", page)
    app.router.add_get("/web/{rest:.*}", web_path)
    app.router.add_get("/search", search)
    app.router.add_get("/healthz", healthz)
    return app


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


_servers: dict[tuple, _Running] = {}
_registry_lock: asyncio.Lock | None = None


def _lock() -> asyncio.Lock:
    global _registry_lock
    if _registry_lock is None:
        _registry_lock = asyncio.Lock()
    return _registry_lock


async def _start(corpus: Corpus, host: str, port: int) -> _Running:
    from aiohttp import web  # noqa: PLC0415

    runner = web.AppRunner(create_app(corpus), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = runner.addresses[0][1]
    return _Running(runner, host, int(bound))


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
            await running.runner.cleanup()


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


def serve(corpus: Corpus | str | os.PathLike, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve ``corpus`` in the foreground until interrupted (``kimi-env serve``)."""
    corpus = _as_corpus(corpus)

    async def main() -> None:
        running = await _start(corpus, host, port)
        print(
            f"Serving {len(corpus)} pages of {corpus.path} at http://{host}:{running.port}/ "
            f"(open it in a browser to search and read; programs: /raw?url=..., /search?q=...). Ctrl-C stops.",
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await running.runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
