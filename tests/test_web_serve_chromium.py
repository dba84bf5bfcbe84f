"""``kimi-env serve`` in a real browser: headless Chromium searches the front page, opens a result, follows links.

Chromium is driven over the DevTools protocol (aiohttp's websocket client); the server is the real ``kimi-env serve``
process. Skipped only when no chromium binary is installed (``scripts/test.sh`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kimi_env.web.corpus import Corpus
from kimi_env.web.document import Document

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian: apt-get install -y chromium; scripts/test.sh installs it)",
)
WIKI = "https://zoo.test/wiki/"


def _documents() -> list[Document]:
    docs = [
        Document(
            WIKI + "Okapi",
            "Okapi",
            html=(
                "<html><head><title>Okapi - Zoo wiki</title></head><body><h1>Okapi</h1>"
                "<p>The okapi is a giraffid of central Africa. It lives in the "
                "<a href='/wiki/Ituri_Rainforest'>Ituri Rainforest</a> "
                "(<a href='https://en.wikipedia.org/wiki/Okapi'>elsewhere</a>).</p></body></html>"
            ),
        ),
        Document(
            WIKI + "Ituri_Rainforest",
            "Ituri Rainforest",
            html="<title>Ituri Rainforest</title><h1>Ituri Rainforest</h1><p>A rainforest in the Congo basin.</p>",
        ),
    ]
    docs += [Document(WIKI + f"Animal_{k}", f"Animal {k}", text=f"Animal {k} is not an okapi, though it lives near one.")
             for k in range(24)]
    return docs


class _Navigating(AssertionError):
    """The page was replaced while a command ran on it (a click's navigation landed mid-poll)."""


class _DevTools:
    """The smallest DevTools-protocol client: send a command, wait for its answer."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.n = 0

    async def send(self, method: str, **params) -> dict:
        self.n += 1
        await self.ws.send_json({"id": self.n, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=60)
            if msg.get("id") == self.n:
                if "error" in msg:
                    err = msg["error"]
                    if "navigated" in str(err.get("message", "")):
                        raise _Navigating(f"{method}: {err}")
                    raise AssertionError(f"{method}: {err}")
                return msg["result"]

    async def eval(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def until(self, condition: str, what: str) -> None:
        """Wait (up to a minute: the machine may be busy) until the page satisfies ``condition``."""
        deadline = time.monotonic() + 60
        while True:
            try:  # a poll that lands while the page is being replaced asks again (how long that takes is load)
                if await self.eval(f"document.readyState === 'complete' && ({condition})"):
                    return
            except _Navigating:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed {what}; at {await self.eval('location.href')}")
            await asyncio.sleep(0.1)

    async def click(self, selector_js: str, then: str, what: str) -> None:
        before = await self.eval("location.href")
        await self.eval(f"({selector_js}).click()")
        await self.until(f"location.href !== {json.dumps(before)} && ({then})", what)


async def _browse(base: str, devtools_port: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{devtools_port}/json/list") as resp:
            targets = await resp.json()
        page = next(t for t in targets if t["type"] == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            b = _DevTools(ws)
            await b.send("Page.enable")
            await b.send("Page.navigate", url=base + "/")
            await b.until("document.querySelector('input[name=q]') !== null", "the query box")

            # Type a query and press Enter, as a person would.
            await b.eval("document.querySelector('input[name=q]').focus()")
            await b.send("Input.insertText", text="okapi")
            for kind in ("keyDown", "keyUp"):
                await b.send("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter",
                             windowsVirtualKeyCode=13, text="\r" if kind == "keyDown" else "")
            await b.until("document.querySelectorAll('ol.results li').length > 0", "search results")
            results = await b.eval(
                "[...document.querySelectorAll('ol.results li')].map(li => ({title: li.querySelector('a').textContent,"
                " url: li.querySelector('.url').textContent, snippet: li.querySelector('.snippet').textContent}))"
            )
            assert len(results) == 10, results
            assert results[0]["title"] == "Okapi" and results[0]["url"] == WIKI + "Okapi"
            assert "giraffid" in results[0]["snippet"]
            assert all(r["snippet"] for r in results)

            # Pagination: 26 pages mention the okapi, 10 a page.
            await b.click("document.querySelector('a[rel=next]')", "document.querySelector('ol.results') !== null",
                          "the second page of results")
            assert await b.eval("document.querySelector('ol.results').start") == 11
            assert await b.eval("document.querySelectorAll('ol.results li').length") == 10
            await b.click("document.querySelector('a[rel=prev]')", "document.querySelector('ol.results') !== null",
                          "the first page of results again")

            # Open the first result.
            await b.click("document.querySelector('ol.results a.result')",
                          "document.body.innerText.includes('giraffid')", "the Okapi page")
            assert await b.eval("location.pathname") == "/web/https/zoo.test/wiki/Okapi"
            assert "The okapi is a giraffid of central Africa." in await b.eval("document.body.innerText")
            # Every link stays on the server, even one to a page outside the corpus.
            hosts = await b.eval("[...document.links].map(a => new URL(a.href).host)")
            assert hosts and set(hosts) == {await b.eval("location.host")}, hosts

            # Follow a link in the page.
            await b.click("[...document.links].find(a => a.textContent === 'Ituri Rainforest')",
                          "document.body.innerText.includes('Congo basin')", "the Ituri Rainforest page")
            assert await b.eval("location.pathname") == "/web/https/zoo.test/wiki/Ituri_Rainforest"

            # A link out of the corpus says so, on the server.
            await b.send("Page.navigate", url=base + "/web/https/zoo.test/wiki/Okapi")
            await b.until("document.body.innerText.includes('giraffid')", "the Okapi page again")
            await b.click("[...document.links].find(a => a.textContent === 'elsewhere')",
                          "document.title === 'Not in the offline web'", "the not-found page")

            # /page?url= takes the URL forms the browse tool takes.
            await b.send("Page.navigate", url=base + "/page?url=zoo.test/wiki/Ituri_Rainforest")
            await b.until("document.body.innerText.includes('Congo basin')", "the page from /page?url=host/path")


def test_a_person_can_search_and_browse_in_chromium(tmp_path: Path) -> None:
    Corpus.build(_documents(), tmp_path / "corpus", name="Zoo wiki")
    server = subprocess.Popen(
        [sys.executable, "-m", "kimi_env.cli", "serve", "--corpus", str(tmp_path / "corpus"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    profile = tmp_path / "chromium-profile"
    browser = None
    try:
        line = server.stdout.readline()
        assert "Serving 26 pages" in line, line + server.stderr.read()
        base = line.split(" at ")[1].split("/ ")[0]
        browser = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if browser.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"chromium did not start its DevTools endpoint: {browser.stderr.read()[-2000:]}")
            time.sleep(0.1)
        devtools_port = int(port_file.read_text().split()[0])
        asyncio.run(_browse(base, devtools_port))
    finally:
        for proc in (browser, server):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
