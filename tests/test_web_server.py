"""The loopback corpus server: pages, 404s, search endpoint, shared reference-counted lifetime."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_web_fixtures import WIKI, build_corpus  # noqa: E402

from kimi_env.web.corpus import Corpus  # noqa: E402
from kimi_env.web.server import acquire_server, running_servers  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("srv"), n_filler=10)


def _get(url: str) -> tuple[int, dict, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_pages_and_404(corpus: Corpus) -> None:
    with acquire_server(corpus) as srv:
        status, headers, body = _get(srv.page_url(WIKI + "Paris"))
        assert status == 200 and "text/html" in headers["Content-Type"]
        assert headers["X-Canonical-URL"] == WIKI + "Paris" and "<h1>Paris</h1>" in body
        status, _, body = _get(f"{srv.base_url}/web/https/kimiwiki.test/wiki/Filler_2")
        assert status == 200 and "<h1>Filler 2</h1>" in body  # text-only document wrapped as HTML
        assert _get(srv.page_url(WIKI + "Missing"))[0] == 404
        assert _get(f"{srv.base_url}/page")[0] == 400
        status, _, body = _get(f"{srv.base_url}/healthz")
        assert status == 200 and json.loads(body)["count"] == len(corpus)


def test_search_endpoint(corpus: Corpus) -> None:
    with acquire_server(corpus) as srv:
        status, _, body = _get(f"{srv.search_url}?q={quote('eiffel tower')}&q=kilimanjaro&k=2")
        assert status == 200
        results = json.loads(body)["results"]
        assert [r["query"] for r in results] == ["eiffel tower", "kilimanjaro"]
        assert results[0]["hits"][0]["url"] == WIKI + "Eiffel_Tower"
        assert results[1]["hits"][0]["url"] == WIKI + "Mount_Kilimanjaro" and len(results[1]["hits"]) <= 2
        assert _get(f"{srv.search_url}?q=%20")[0] == 400
        status, _, body = _get(f"{srv.search_url}?q=x&k=0")
        assert status == 400 and "k must be between" in json.loads(body)["error"]


def test_shared_and_reference_counted(corpus: Corpus) -> None:
    a = acquire_server(corpus)
    b = acquire_server(corpus)
    assert a.port == b.port and running_servers()[a._key] == 2
    a.release()
    a.release()  # twice is harmless
    assert _get(f"{b.base_url}/healthz")[0] == 200
    b.release()
    assert a._key not in running_servers()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{b.base_url}/healthz", timeout=5)
