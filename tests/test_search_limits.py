"""Attack tests for the search path's bounds (issue 15 item 5): query length and term caps, and a timed-out search
that really stops (no worker thread computing on after the tool's timeout)."""

from __future__ import annotations

import json
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_web_fixtures import build_corpus  # noqa: E402

import kimi_env.web.index as index_mod  # noqa: E402
from kimi_env.tools.base import ToolStatus  # noqa: E402
from kimi_env.tools.search import SearchTool  # noqa: E402
from kimi_env.web.corpus import Corpus  # noqa: E402
from kimi_env.web.index import MAX_QUERY_CHARS, MAX_QUERY_TERMS, SearchCancelled, get_index, query_terms  # noqa: E402
from kimi_env.web.server import acquire_server  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("limits"))


def test_schema_caps_query_length(corpus: Corpus) -> None:
    tool = SearchTool(corpus)
    assert tool.parameters["properties"]["queries"]["items"]["maxLength"] == MAX_QUERY_CHARS
    huge = "eiffel tower " * 80_000  # ~1M characters: refused before any search work
    r = tool.call(queries=[huge] * 5)
    assert r.status == ToolStatus.INVALID_ARGUMENTS
    assert f"at most {MAX_QUERY_CHARS} characters" in r.content and len(r.content) < 300
    tool.close()


def test_too_many_distinct_terms_refused(corpus: Corpus) -> None:
    tool = SearchTool(corpus)
    words = " ".join(f"w{i}" for i in range(MAX_QUERY_TERMS + 1))  # well under the character cap
    assert len(words) < MAX_QUERY_CHARS
    r = tool.call(queries=["eiffel tower", words])
    assert r.status == ToolStatus.INVALID_ARGUMENTS
    assert "query 2 of 2 is too long" in r.content and f"{MAX_QUERY_TERMS + 1} distinct words" in r.content
    assert tool.call(queries=[" ".join(f"w{i}" for i in range(MAX_QUERY_TERMS))]).ok  # at the cap: searched
    tool.close()


def test_index_cuts_long_queries(corpus: Corpus) -> None:
    # The index (under the server's /search and direct library use) reads a query only up to the caps.
    index = get_index(corpus)
    head = "eiffel tower paris"
    huge = head + " " + " ".join(f"junk{i}" for i in range(200_000))
    assert len(query_terms(huge)) == MAX_QUERY_TERMS
    assert query_terms(huge) == query_terms(huge[:MAX_QUERY_CHARS])[:MAX_QUERY_TERMS]
    assert index.top_ids(huge, 5) == index.top_ids(" ".join(query_terms(huge)), 5)
    assert index.top_ids(huge, 5)[0] == index.top_ids(head, 5)[0]


def test_server_search_bounds_long_queries(corpus: Corpus) -> None:
    # Over HTTP the same cut applies: a long query is answered like its first terms, not by scoring every word.
    long_q = "eiffel tower " + " ".join(f"junk{i}" for i in range(700))  # ~7.7 KB, as in the report
    with acquire_server(corpus) as srv:
        url = srv.base_url + "/search?" + urllib.parse.urlencode([("q", long_q), ("k", "3")])
        with urllib.request.urlopen(url, timeout=30) as resp:
            data = json.loads(resp.read())
        cut = " ".join(query_terms(long_q))
        expected = [h.url for h in get_index(corpus).search([cut], 3)[0]]
    assert [h["url"] for h in data["results"][0]["hits"]] == expected


def test_stop_event_stops_between_terms(corpus: Corpus) -> None:
    index = get_index(corpus)
    stop = threading.Event()
    stop.set()
    with pytest.raises(SearchCancelled, match="stopped by its caller"):
        index.search(["eiffel tower"], 5, stop=stop)
    assert index.search(["eiffel tower"], 5, stop=threading.Event())  # unset: a normal search


def test_timed_out_search_stops_its_worker_thread(corpus: Corpus, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tool's timeout fires while the worker thread is inside the search; once the thread may go on, it must
    give up at its next check instead of finishing a search nobody will read."""
    tool = SearchTool(corpus, timeout=0.3)
    index = get_index(corpus)
    tool.backend._index = index  # noqa: SLF001 - loaded, so the call goes straight to the search
    gate, done = threading.Event(), threading.Event()
    checks: list[bool] = []
    outcome: list[str] = []
    real_check, real_search = index_mod._check, type(index).search  # noqa: SLF001

    def slow_check(stop: threading.Event | None) -> None:
        # The first check of the search holds the worker thread (as a slow term would) until the test lets it go.
        checks.append(stop is not None and stop.is_set())
        if len(checks) == 1:
            gate.wait(30)
        real_check(stop)

    def recording_search(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        try:
            out = real_search(self, *args, **kwargs)
            outcome.append("finished")
            return out
        except SearchCancelled:
            outcome.append("cancelled")
            raise
        finally:
            done.set()

    monkeypatch.setattr(index_mod, "_check", slow_check)
    monkeypatch.setattr(type(index), "search", recording_search)
    r = tool.call(queries=["eiffel tower paris"])
    assert r.status == ToolStatus.TIMEOUT, r.content
    assert not done.is_set()  # the worker is still held at its first check
    gate.set()
    assert done.wait(30)
    assert outcome == ["cancelled"]  # it stopped at the check right after the timeout ...
    assert len(checks) == 1  # ... and did no further step
    monkeypatch.undo()
    tool.timeout = 20.0
    assert tool.call(queries=["eiffel tower paris"]).ok  # the tool still works afterwards
    tool.close()
