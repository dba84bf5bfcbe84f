"""Red-team regressions for the offline web (issue 15): each test pins one property an attack broke before its fix.

Every server a test attacks is started by the test, on loopback. Nothing here sends traffic anywhere else: the
"public" side of the address guard is played by a loopback address that a test declares public for its duration.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from kimi_env import aio
from kimi_env.tools import browse as browse_mod
from kimi_env.tools.browse import BrowseTool

SECRET = "TOP-SECRET-CANARY-7f3a"


# -- helpers ------------------------------------------------------------------------------------------------------
class _Loopback:
    """An aiohttp server on a loopback address with routes given as {path: handler}; records the paths it served."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.hits: list[str] = []
        self.runner = None
        self.port = 0

    async def start(self, routes: dict) -> _Loopback:
        from aiohttp import web

        app = web.Application()
        for path, handler in routes.items():

            async def wrapped(request, _handler=handler):
                self.hits.append(request.path)
                return await _handler(request)

            app.router.add_get(path, wrapped)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        await self.runner.cleanup()


def _secret_server(host: str) -> _Loopback:
    from aiohttp import web

    async def secret(request):
        return web.Response(text=f"<title>metadata</title><p>{SECRET}</p>", content_type="text/html")

    return aio.run(_Loopback(host).start({"/secret": secret}))


@pytest.fixture
def internal():
    """A loopback server standing for an internal service (cloud metadata, an admin port ...)."""
    server = _secret_server("127.0.0.1")
    yield server
    aio.run(server.stop())


def _live_browser() -> BrowseTool:
    return BrowseTool(live_web=True, fetch_timeout=5, timeout=15)  # the real guard: allow_private_hosts=False


# -- finding 1: non-ASCII spellings of IP addresses ---------------------------------------------------------------
@pytest.mark.parametrize(
    "spelling",
    ["１２７.０.０.１", "127。0。0。1", "１２７。０。０。１", "127．0．0．1", "127｡0｡0｡1"],
    ids=["fullwidth-digits", "ideographic-stops", "both", "fullwidth-stops", "halfwidth-stops"],
)
def test_unicode_spellings_of_loopback_are_refused(internal, spelling):
    # urlsplit saw a host *name* (the guard let it pass to the resolver), yarl normalized it to 127.0.0.1 and aiohttp
    # dialled that literal without ever calling the resolver: the page of the internal service came back.
    t = _live_browser()
    r = t.call(url=f"http://{spelling}:{internal.port}/secret")
    t.close()
    assert not r.ok and "refused" in r.content and SECRET not in r.content, r.content
    assert internal.hits == []  # not even a request reached it


def test_unicode_spelling_of_metadata_address_is_refused():
    t = _live_browser()
    r = t.call(url="http://１６９.２５４.１６９.２５４/latest/meta-data/")
    t.close()
    assert not r.ok and "refused" in r.content and "169.254.169.254" in r.content, r.content


@pytest.fixture
def public_127_0_0_1(monkeypatch):
    """For one test, 127.0.0.1 plays a public web host; every other non-global address stays refused."""
    real = browse_mod._non_public
    monkeypatch.setattr(browse_mod, "_non_public", lambda ip: str(ip) != "127.0.0.1" and real(ip))


def test_redirect_to_unicode_spelling_of_internal_address_is_refused(public_127_0_0_1):
    # A "public" page answers 302 to the fullwidth spelling of an internal address (127.0.0.2 here).
    from aiohttp import web

    inner = _secret_server("127.0.0.2")

    async def jump(request):  # a raw header: web.HTTPFound would normalize the URL on the server side
        return web.Response(status=302, headers={"Location": f"http://１２７。０。０。２:{inner.port}/secret"})

    outer = aio.run(_Loopback("127.0.0.1").start({"/jump": jump}))
    t = _live_browser()
    try:
        r = t.call(url=f"http://127.0.0.1:{outer.port}/jump")
    finally:
        t.close()
        aio.run(outer.stop())
        aio.run(inner.stop())
    assert outer.hits == ["/jump"]  # the public page was fetched: the guard let the first hop through
    assert not r.ok and "refused" in r.content and SECRET not in r.content, r.content
    assert inner.hits == []


def test_the_dialled_address_is_checked_even_when_the_url_check_misses(internal, monkeypatch):
    # Defence in depth: whatever spelling gets past the URL check, the socket is refused for a non-public address.
    monkeypatch.setattr(BrowseTool, "_check_address", lambda self, url: None)
    t = _live_browser()
    r = t.call(url=f"http://127.0.0.1:{internal.port}/secret")
    t.close()
    assert not r.ok and "refused" in r.content and "127.0.0.1" in r.content, r.content
    assert internal.hits == []
