"""The pages ``kimi-env serve`` shows a person (the browser test is tests/test_web_serve_chromium.py)."""

from __future__ import annotations

import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from test_web_fixtures import WIKI, build_corpus  # noqa: E402

from kimi_env.web.human import browsable_page, complete_url, web_path  # noqa: E402
from kimi_env.web.server import acquire_server  # noqa: E402


def test_every_address_in_a_page_stays_on_the_server() -> None:
    out = browsable_page(
        '<base href="https://x.test/d/"><a href="p">p</a><a href="//cdn.test/q">q</a><img src="i.png" '
        'srcset="https://cdn.test/i2.png 2x"><link rel=stylesheet href="s.css"><form action="/f"></form>'
        '<a href="https://x.test/a?b=1#c" ping="https://t.test/">a</a><style>p{background:url(https://cdn.test/bg)}</style>',
        "https://x.test/d/page",
    )
    addresses = re.findall(r"""(?:href|src|action|srcset|ping)=["']([^"']*)["']|url\(([^)]*)\)""", out)
    addresses = [a or b for a, b in addresses]
    assert addresses and all(a.startswith("/") for a in addresses), addresses
    assert "/web/https/x.test/d/p" in addresses and "/web/https/cdn.test/q" in addresses
    assert "/web/https/x.test/a?b=1#c" in addresses and "<base" not in out
    assert "srcset" not in out and "ping=" not in out


def test_url_forms() -> None:
    assert complete_url(" kimiwiki.test/wiki/Paris ") == "https://kimiwiki.test/wiki/Paris"
    assert complete_url("http://a.test/x") == "http://a.test/x"
    assert web_path("https://a.test/x%20y?q=1#f") == "/web/https/a.test/x%20y?q=1#f"
    assert web_path("mailto:a@b.test") is None


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_search_page_pagination_and_page_forms(tmp_path: Path) -> None:
    corpus = build_corpus(tmp_path, n_filler=40)
    with acquire_server(corpus) as srv:
        status, body = _get(srv.base_url + "/")
        assert status == 200 and "name='q'" in body and "<ol" not in body
        status, body = _get(srv.base_url + "/?q=eiffel+tower")
        assert status == 200 and body.count("<li>") == 10 and "rel='next'" in body
        assert "href='/web/https/kimiwiki.test/wiki/Eiffel_Tower'>Eiffel Tower</a>" in body
        assert f"<div class='url'>{WIKI}Eiffel_Tower</div>" in body
        status, body2 = _get(srv.base_url + "/?q=eiffel+tower&p=2")
        assert status == 200 and "start='11'" in body2 and "rel='prev'" in body2
        status, body = _get(srv.base_url + "/?q=%3Cscript%3E")  # the query is escaped, not markup
        assert "<script>" not in body.split("</style>", 1)[1]
        for form in ("kimiwiki.test/wiki/Paris", WIKI + "Paris#History", "https://KIMIWIKI.test/wiki/Paris/"):
            status, body = _get(srv.base_url + "/page?url=" + urllib.request.quote(form, safe=""))
            assert status == 200 and "Paris is the capital of France" in body, form
            assert 'href="/web/https/kimiwiki.test/wiki/Eiffel_Tower"' in body
        status, body = _get(srv.base_url + "/web/https/kimiwiki.test/wiki/Nowhere")
        assert status == 404 and "Not in the offline web" in body
