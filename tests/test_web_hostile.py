"""Hostile pages never break an episode: each gives a short, specific observation within the timeout.

A hostile aiohttp server runs on loopback; the browser uses ``live_web=True`` with the test-only switch
``allow_private_hosts=True`` (the guards that refuse loopback are tested in test_browse_tool.py).
"""

from __future__ import annotations

import asyncio

import pytest

from kimi_env import aio
from kimi_env.tools.browse import BrowseTool

FETCH_TIMEOUT = 10.0  # generous: a loaded machine may not schedule the loop for seconds; only /trickle waits it out


async def _start_hostile() -> tuple:
    from aiohttp import web

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="<title>Fine</title><p>All good here.</p>", content_type="text/html")

    async def malformed(request: web.Request) -> web.Response:
        return web.Response(text="<html><p>open <b>bold <table><td>cell</div></span><<>>&&;;</title><p>tail", content_type="text/html")

    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"<p>" + b"lorem ipsum " * 450_000 + b"</p>", content_type="text/html")

    async def png(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, content_type="image/png")

    async def octet(request: web.Request) -> web.Response:
        return web.Response(body=bytes(range(256)) * 40, content_type="application/octet-stream")

    async def untyped_binary(request: web.Request) -> web.Response:
        resp = web.Response(body=b"\x00\x01\x02" * 1000)
        resp.headers["Content-Type"] = ""
        return resp

    async def bad_utf8(request: web.Request) -> web.Response:
        return web.Response(body=b"<title>Bad bytes</title><p>caf\xe9 \xff\xfe ok</p>", headers={"Content-Type": "text/html; charset=utf-8"})

    async def bogus_charset(request: web.Request) -> web.Response:
        return web.Response(body="<title>Bogus</title><p>naïve</p>".encode(), headers={"Content-Type": "text/html; charset=no-such-charset"})

    async def loop_a(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop-b")

    async def loop_b(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop-a")

    async def chain(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        raise web.HTTPFound(f"/chain/{n + 1}")

    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        await resp.prepare(request)
        for _ in range(60):
            await resp.write(b"x")
            await asyncio.sleep(1)
        return resp

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, text="nope")

    async def server_error(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    async def many_links(request: web.Request) -> web.Response:
        links = "".join(f'<a href="/p/{i}">link {i}</a> ' for i in range(100_000))
        return web.Response(text=f"<title>Links</title><p>{links}</p>", content_type="text/html")

    async def deep(request: web.Request) -> web.Response:
        return web.Response(text="<div>" * 50_000 + "bottom" + "</div>" * 50_000, content_type="text/html")

    async def nested_lists(request: web.Request) -> web.Response:
        return web.Response(text="<ul><li>x" * 22_000, content_type="text/html")  # 198 KB

    async def nested_tables(request: web.Request) -> web.Response:
        return web.Response(text="<table><tr><td>x" * 12_000, content_type="text/html")  # 192 KB

    async def paragraphs(request: web.Request) -> web.Response:
        return web.Response(text="<p>a paragraph</p>" * 20_000, content_type="text/html")  # 360 KB, not deep

    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="just text\nsecond line", content_type="text/plain")

    app = web.Application()
    for path, handler in {
        "/ok": ok, "/malformed": malformed, "/huge": huge, "/png": png, "/octet": octet, "/untyped": untyped_binary,
        "/bad-utf8": bad_utf8, "/bogus-charset": bogus_charset, "/loop-a": loop_a, "/loop-b": loop_b,
        "/chain/{n}": chain, "/trickle": trickle, "/404": not_found, "/500": server_error, "/links": many_links,
        "/deep": deep, "/plain.txt": plain, "/nested-lists": nested_lists, "/nested-tables": nested_tables,
        "/paragraphs": paragraphs,
    }.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


@pytest.fixture(scope="module")
def base() -> str:
    runner, port = aio.run(_start_hostile())
    yield f"http://127.0.0.1:{port}"
    aio.run(runner.cleanup())


@pytest.fixture(scope="module")
def tool() -> BrowseTool:
    t = BrowseTool(live_web=True, allow_private_hosts=True, fetch_timeout=FETCH_TIMEOUT, max_bytes=1_000_000,
                   max_redirects=4, timeout=20)
    yield t
    t.close()


def _call(tool: BrowseTool, base: str, path: str):
    r = tool.call(url=base + path)
    assert r.status != "timeout", (path, r.content)  # bounded work, never the tool's own timeout
    assert len(r.content) <= tool.max_output_chars
    ok = tool.call(url=base + "/ok")  # the tool still works for the next call
    assert ok.ok and "All good here." in ok.content
    return r


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/png", "is image/png, not a readable page"),
        ("/octet", "is application/octet-stream, not a readable page"),
        ("/untyped", "binary content without a content type"),
        ("/loop-a", "redirects in a loop"),
        ("/chain/0", "redirects more than 4 times"),
        ("/404", "answered HTTP 404 Not Found"),
        ("/500", "answered HTTP 500 Internal Server Error"),
        ("/trickle", f"did not answer within {FETCH_TIMEOUT:g} s"),
    ],
)
def test_hostile_errors(tool: BrowseTool, base: str, path: str, expected: str) -> None:
    r = _call(tool, base, path)
    assert not r.ok and expected in r.content, r.content
    assert len(r.content) < 300


def test_malformed_html(tool: BrowseTool, base: str) -> None:
    r = _call(tool, base, "/malformed")
    assert r.ok and "cell" in r.content and "tail" in r.content


def test_huge_page_is_truncated(tool: BrowseTool, base: str) -> None:
    r = _call(tool, base, "/huge")
    assert r.ok and "only the beginning was read" in r.content
    assert r.meta["pages"] <= 1_000_000 // tool.page_chars + 2


@pytest.mark.parametrize("path, text", [("/bad-utf8", "caf\ufffd"), ("/bogus-charset", "naïve")])
def test_bad_encodings(tool: BrowseTool, base: str, path: str, text: str) -> None:
    r = _call(tool, base, path)
    assert r.ok and text in r.content


def test_many_links(tool: BrowseTool, base: str) -> None:
    r = _call(tool, base, "/links")
    assert r.ok and "[1] link 0" in r.content, r.content  # a 100k-link page renders
    r2 = tool.call(url=base + "/links", page=3)
    assert r2.ok and "link " in r2.content


def test_deep_nesting(tool: BrowseTool, base: str) -> None:
    r = _call(tool, base, "/deep")
    assert r.ok and "bottom" in r.content


@pytest.mark.parametrize("path", ["/nested-lists", "/nested-tables"])
def test_nesting_bombs_render_small(tool: BrowseTool, base: str, path: str) -> None:
    """Issue 15.4: these rendered to 484M characters / took 28 s of CPU on the shared loop."""
    r = _call(tool, base, path)
    assert r.ok and "x" in r.content, r.content
    assert r.meta["pages"] <= 3 * 200_000 // tool.page_chars


def test_fetch_timeout_is_about_the_network(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering (here made slower than the whole fetch timeout) does not count against ``fetch_timeout``."""
    import kimi_env.tools.browse as browse_mod

    real = browse_mod.arender_html

    async def slow_render(*args, **kwargs):
        await asyncio.sleep(6.0)
        return await real(*args, **kwargs)

    monkeypatch.setattr(browse_mod, "arender_html", slow_render)
    t = BrowseTool(live_web=True, allow_private_hosts=True, fetch_timeout=5.0, timeout=30)
    try:
        r = t.call(url=base + "/ok")
        assert r.ok and "All good here." in r.content, r.content
    finally:
        t.close()


def test_render_budget_cuts_a_page_instead_of_stalling(base: str) -> None:
    t = BrowseTool(live_web=True, allow_private_hosts=True, fetch_timeout=FETCH_TIMEOUT, render_cpu_budget=1e-9)
    try:
        r = t.call(url=base + "/malformed")  # small: one slice, under any budget
        assert r.ok and "only the beginning" not in r.content
        r = t.call(url=base + "/paragraphs")  # 44 slices: the budget stops it after the first
        assert r.ok and "only its beginning was read" in r.content, r.content
        assert r.meta["pages"] <= 2  # one slice of HTML, not 44
    finally:
        t.close()


def test_plain_text(tool: BrowseTool, base: str) -> None:
    r = _call(tool, base, "/plain.txt")
    assert r.ok and "just text\nsecond line" in r.content


def test_redirect_target_is_rechecked(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the guards on, a redirect to a private address is refused even when the first hop was allowed."""
    import socket

    from kimi_env.tools import browse

    monkeypatch.setattr(browse, "_public_socket", lambda info: socket.socket(*info[:3]))  # the URL check alone
    t = BrowseTool(live_web=True, fetch_timeout=FETCH_TIMEOUT)
    first = base + "/loop-a"
    real_check = t._check_address

    def check(url: str) -> None:
        if url != first:
            real_check(url)

    t._check_address = check  # type: ignore[method-assign]
    r = t.call(url=first)
    assert not r.ok and "refused" in r.content and "/loop-b" in r.content
    t.close()
