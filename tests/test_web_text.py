"""HTML to text: structure, numbered links, robustness against hostile markup."""

from __future__ import annotations

import os
import time

from kimi_env.web.text import render_html, text_to_html

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
    start = time.perf_counter()
    page = render_html("<div>" * 50_000 + "deep text" + "</div>" * 50_000, BASE)
    assert "deep text" in page.text
    assert time.perf_counter() - start < 20


def test_binary_junk_and_huge_pages() -> None:
    junk = render_html(os.urandom(100_000), BASE)
    assert isinstance(junk.text, str)
    huge = render_html("<p>" + "word " * 200_000 + "</p>", BASE, max_html_chars=100_000)
    assert huge.truncated and len(huge.text) <= 100_000


def test_text_to_html_escapes() -> None:
    page = render_html(text_to_html("<b>T</b>", "a < b\n\nsecond"), BASE)
    assert page.title == "<b>T</b>" and page.text == "# <b>T</b>\n\na < b\n\nsecond"
