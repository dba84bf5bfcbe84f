"""HTML to text: structure, numbered links, robustness against hostile markup."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from kimi_env.web import text as text_mod
from kimi_env.web.text import MAX_LIST_INDENT, arender_html, declared_url, render_html, text_to_html

sys.path.insert(0, str(Path(__file__).parent))
import reference_render_bs4  # noqa: E402  (the BeautifulSoup renderer this one replaced: the quality reference)

BASE = "https://kimiwiki.test/wiki/Page"


def test_structure_and_links() -> None:
    html = """<html><head><title>T</title><style>.x{}</style></head><body>
    <nav><a href="/nav">NAV</a></nav><h1>Main</h1><h3>Sub</h3>
    <table class="infobox"><caption>Box</caption><tr><th>Born</th><td>1815</td></tr><tr><td>City</td><td><a href="London">London</a></td></tr></table>
    <p>Visit <a href="/wiki/London#x">the city</a>, <a href="https://other.test/">other</a>, <a href="#top">top</a>,
    <a href="javascript:void(0)">js</a> and <a href="mailto:a@b">mail</a>.</p>
    <ol><li>one<ul><li>nested</li></ul></li><li>two</li></ol><script>SCRIPT</script><footer>FOOT</footer></body></html>"""
    page = render_html(html, BASE)
    assert page.title == "T"
    assert page.links == ("https://kimiwiki.test/wiki/London", "https://other.test/")
    assert page.text.splitlines() == [
        "# Main",
        "",
        "### Sub",
        "",
        "Table: Box",
        "| Born | 1815 |",
        "| City | [1] London |",
        "",
        "Visit [1] the city, [2] other, top, js and mail.",
        "",
        "1. one",
        "  - nested",
        "2. two",
    ]
    plain = render_html(html, BASE, number_links=False)
    assert "[1]" not in plain.text and plain.links == page.links


def test_base_href_and_title_fallback() -> None:
    page = render_html('<base href="https://x.test/dir/"><h1>Heading only</h1><a href="p">p</a>', BASE)
    assert page.title == "Heading only" and page.links == ("https://x.test/dir/p",)


def test_malformed_html() -> None:
    page = render_html("<p>unclosed <b>bold <i>italic<p>next<table><tr><td>a<td>b</table></div></span>&bogus;", BASE)
    assert "unclosed bold italic" in page.text and "| a | b |" in page.text


def test_deep_nesting_does_not_recurse() -> None:
    page = render_html("<div>" * 50_000 + "deep text" + "</div>" * 50_000 + "<p>after</p>", BASE)
    assert "deep text" in page.text and "after" in page.text and not page.truncated


def test_binary_junk_and_huge_pages() -> None:
    junk = render_html(os.urandom(100_000), BASE)
    assert isinstance(junk.text, str)
    huge = render_html("<p>" + "word " * 200_000 + "</p>", BASE, max_html_chars=100_000)
    assert huge.truncated and len(huge.text) <= 100_000


def test_text_to_html_escapes() -> None:
    page = render_html(text_to_html("<b>T</b>", "a < b\n\nsecond"), BASE)
    assert page.title == "<b>T</b>" and page.text == "# <b>T</b>\n\na < b\n\nsecond"


# -- same text as the BeautifulSoup renderer it replaced ----------------------------------------------------------
def _reference_pages() -> list[tuple[str, str]]:
    from test_web_fixtures import make_documents  # noqa: PLC0415

    from kimi_env.world import generate_world  # noqa: PLC0415

    pages = [(d.html, d.url) for d in make_documents(n_filler=5) if d.html]
    pages += [(d.html, d.url) for d in list(generate_world(seed=0, n_pages=150).documents()) if d.html]
    data = Path(__file__).parent / "data" / "html_pages"
    pages += [(p.read_text(encoding="latin-1"), "https://x.test/" + p.name) for p in sorted(data.rglob("*.html"))]
    pages += [
        ("<p>unclosed <b>bold <i>italic<p>next<table><tr><td>a<td>b</table></div></span>&bogus;", BASE),
        ("<dl><dt>term</dt><dd>definition <a href='x'>x</a></dd></dl><pre>  code\n   indented</pre>", BASE),
        ("<table><caption>C</caption><tr><td><table><tr><td>in</td></tr></table></td><td>out</td></tr></table>", BASE),
        ("<div hidden>H</div><p style='display: none'>S</p><p aria-hidden=true>A</p><div role=navigation>N</div>ok", BASE),
        ("<h1>One <b>two</b></h1><h2>Sub</h2><ol><li>a<li>b<ol><li>c</ol></ol><img alt='pic'><br>line", BASE),
        ('<base href="https://x.test/dir/"><a href="p">p</a><a href="../q?x=1#f">q</a><a href="//h.test/r">r</a>', BASE),
    ]
    return pages


def test_same_text_as_the_beautifulsoup_renderer() -> None:
    pages = _reference_pages()
    assert len(pages) > 100
    for markup, url in pages:
        for number_links in (True, False):
            new = render_html(markup, url, number_links=number_links)
            old = reference_render_bs4.render_html(markup, url, number_links=number_links)
            assert (new.title, new.text, new.links) == (old.title, old.text, old.links), url


def test_declared_url() -> None:
    assert declared_url('<link rel="canonical" href="https://a.test/c"><base href="https://b.test/">') == "https://a.test/c"
    assert declared_url('<base href="https://b.test/"><meta property="og:url" content="https://c.test/">') == "https://b.test/"
    assert declared_url('<link rel="canonical" href="file:///usr/share/doc/x.html">') is None
    assert render_html('<meta property="og:url" content="https://c.test/o"><p>x').declared_url == "https://c.test/o"


# -- bounded output, linear work (issue 15 item 4) ---------------------------------------------------------------
@pytest.mark.parametrize(
    "markup",
    ["<ul><li>x" * 22_000, "<table><tr><td>x" * 12_000, "<ol><li><table><tr><td>y" * 5_000, "<blockquote><ul><li>z" * 9000],
    ids=["lists", "tables", "lists-in-tables", "quotes-and-lists"],
)
def test_nesting_cannot_blow_up_the_output(markup: str) -> None:
    page = render_html(markup, BASE)
    letter = markup[-1]
    assert page.text.count(letter) == markup.count(letter)  # every cell / item is there...
    assert len(page.text) <= 3 * len(markup)  # ... and the text is at most a few times the input, not quadratic


def test_list_indentation_stops_growing() -> None:
    lines = render_html("<ul><li>x" * 50, BASE).text.splitlines()
    assert max(len(line) for line in lines) == len("  " * (MAX_LIST_INDENT - 1) + "- x")


@pytest.mark.parametrize(
    "markup",
    ["<div>" * 40_000 + "</span>" * 40_000 + "<p>tail</p>", "<p><div></p>" * 40_000 + "tail"],
    ids=["unmatched-end-tags", "auto-closed-p"],
)
def test_too_deep_pages_are_read_flat(markup: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """libxml2 scans its element stack for every unmatched end tag: past MAX_PARSE_DEPTH the rest is read as text."""
    steps = []
    real_step = text_mod._RenderJob.step
    monkeypatch.setattr(text_mod._RenderJob, "step", lambda self, *a: (steps.append(self.sink.depth), real_step(self, *a))[1])
    page = render_html(markup, BASE)
    assert "tail" in page.text and not page.truncated
    assert max(steps) <= text_mod.MAX_PARSE_DEPTH  # the parser never got a deeper stack to scan


def test_text_cap() -> None:
    page = render_html("<p>" + "word " * 100_000, BASE, max_text_chars=10_000)
    assert page.truncated and len(page.text) <= 10_000


# -- rendering on an event loop ------------------------------------------------------------------------------
def test_arender_yields_between_slices_and_matches_render_html() -> None:
    markup = "<table>" + "<tr><td>x</td><td><a href='/y'>y</a></td></tr>" * 6_000 + "</table>"  # 264 KB: 32 slices
    ticks = []

    async def main() -> text_mod.RenderedPage:
        done = False

        async def ticker() -> None:
            while not done:
                ticks.append(1)
                await asyncio.sleep(0)

        t = asyncio.ensure_future(ticker())
        page = await arender_html(markup, BASE)
        done = True
        await t
        return page

    page = asyncio.run(main())
    assert page == render_html(markup, BASE)
    assert len(ticks) >= len(markup) // text_mod.SLICE_CHARS - 1  # the loop ran other work between slices


def test_arender_stops_when_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = []
    real_step = text_mod._RenderJob.step
    monkeypatch.setattr(text_mod._RenderJob, "step", lambda self, *a: (steps.append(1), real_step(self, *a))[1])

    async def main() -> None:
        task = asyncio.ensure_future(arender_html("<p>word</p>" * 300_000, BASE))
        for _ in range(3):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        n = len(steps)
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(steps) == n  # no slice ran after the cancellation

    asyncio.run(main())
    assert 0 < len(steps) < 3_300_000 // text_mod.SLICE_CHARS


def test_arender_cpu_budget_cuts_the_page() -> None:
    page = asyncio.run(arender_html("<p>word</p>" * 300_000, BASE, cpu_budget=0.0))
    assert page.truncated and 0 < page.text.count("word") < 300_000
