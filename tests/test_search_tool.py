"""SearchTool: schema, formatting, de-duplication, errors, and its three backends (index, HTTP, OpenSearch)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_web_fixtures import WIKI, build_corpus  # noqa: E402

from kimi_env import aio  # noqa: E402
from kimi_env.tools.base import ToolStatus  # noqa: E402
from kimi_env.tools.search import HTTPBackend, OpenSearchBackend, SearchTool  # noqa: E402
from kimi_env.web.corpus import Corpus  # noqa: E402
from kimi_env.web.server import acquire_server  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("search"))


@pytest.fixture(scope="module")
def tool(corpus: Corpus) -> SearchTool:
    t = SearchTool(corpus)
    yield t
    t.close()


def test_schema_carries_limits(corpus: Corpus) -> None:
    t = SearchTool(corpus, max_queries=3, top_k_max=7)
    props = t.parameters["properties"]
    assert props["queries"]["maxItems"] == 3 and props["queries"]["items"] == {"type": "string", "maxLength": 1000}
    assert props["top_k"]["maximum"] == 7 and props["top_k"]["default"] == 5
    assert t.parameters["required"] == ["queries"]
    r = t.call(queries=["a", "b", "c", "d"])
    assert r.status == ToolStatus.INVALID_ARGUMENTS and "at most 3 items" in r.content
    assert t.call(queries=["paris"], top_k=8).status == ToolStatus.INVALID_ARGUMENTS


def test_results_numbered_and_deduplicated(tool: SearchTool) -> None:
    r = tool.call(queries=["eiffel tower", "eiffel tower paris", "kilimanjaro volcano"], top_k=2)
    assert r.ok, r.content
    lines = r.content.splitlines()
    assert lines[0] == 'Results for "eiffel tower":'
    assert lines[1] == "[1] Eiffel Tower" and lines[2] == WIKI + "Eiffel_Tower" and "330 metres" in lines[3]
    urls = r.meta["result_urls"]
    assert len(urls) == len(set(urls))  # each page listed once over all queries
    also = [line for line in lines if line.startswith("(also matched: ")]
    assert len(also) == 1 and "[1]" in also[0]  # the second query found the Eiffel page again
    numbers = [int(line[1 : line.index("]")]) for line in lines if line.startswith("[") and "]" in line]
    assert numbers == list(range(1, len(urls) + 1))
    assert 'Results for "kilimanjaro volcano":' in r.content and WIKI + "Mount_Kilimanjaro" in urls


def test_deterministic_output(tool: SearchTool, corpus: Corpus) -> None:
    queries = ["river festival", "coral reef", "algorithm"]
    first = tool.call(queries=queries).content
    assert SearchTool(corpus).call(queries=queries).content == first


def test_empty_and_unmatched_queries(tool: SearchTool) -> None:
    r = tool.call(queries=["paris", "   "])
    assert not r.ok and r.status == ToolStatus.INVALID_ARGUMENTS and "query 2 of 2 is empty" in r.content
    r = tool.call(queries=["qqqzzzxx"])
    assert r.ok and "No results. Try different or fewer words." in r.content
    assert tool.call(queries=[]).status == ToolStatus.INVALID_ARGUMENTS


def test_concurrent_calls(tool: SearchTool) -> None:
    async def many() -> list:
        return await asyncio.gather(*(tool.acall(queries=[q]) for q in ["paris", "reef", "engine", "tower"]))

    results = aio.run(many())
    assert all(r.ok for r in results)
    assert results[1].meta["result_urls"][0] == WIKI + "Great_Barrier_Reef"


def test_http_backend_matches_index(tool: SearchTool, corpus: Corpus) -> None:
    with acquire_server(corpus) as srv:
        remote = SearchTool(corpus, backend=HTTPBackend(srv.base_url))
        queries = ["eiffel tower", "coral reef"]
        assert remote.call(queries=queries).content == tool.call(queries=queries).content
        remote.close()


def test_backend_failure_is_an_observation(corpus: Corpus) -> None:
    t = SearchTool(backend=HTTPBackend("http://127.0.0.1:9", timeout=2))
    r = t.call(queries=["paris"])
    assert not r.ok and r.status == ToolStatus.ERROR and "search backend failed" in r.content
    t.close()


def test_needs_corpus_or_backend() -> None:
    from kimi_env.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="needs a corpus"):
        SearchTool()


async def _fake_opensearch(seen: list) -> tuple:
    """A tiny aiohttp stand-in for OpenSearch's `POST /<index>/_search` (no real cluster installs here)."""
    from aiohttp import web

    async def search(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.match_info["index"], body))
        query = body["query"]["multi_match"]["query"]
        if query == "boom":
            return web.json_response({"error": "bad"}, status=500)
        hits = [
            {"_score": 3.5, "_source": {"url": f"https://os.test/{query}", "title": f"A for {query}", "text": "alpha text"},
             "highlight": {"text": [f"about   {query} here"]}},
            {"_score": 1.0, "_source": {"url": "https://os.test/b", "title": "B", "text": "beta " * 100}},
        ]
        return web.json_response({"hits": {"total": {"value": 2}, "hits": hits[: body["size"]]}})

    app = web.Application()
    app.router.add_post("/{index}/_search", search)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


def test_opensearch_backend_against_fake_api() -> None:
    seen: list = []
    runner, port = aio.run(_fake_opensearch(seen))
    try:
        t = SearchTool(backend=OpenSearchBackend(f"http://127.0.0.1:{port}", "web", snippet_chars=50))
        r = t.call(queries=["tides", "moon"], top_k=2)
        assert r.ok, r.content
        assert "[1] A for tides\nhttps://os.test/tides\nabout tides here" in r.content
        assert "[2] B" in r.content and "[3] A for moon" in r.content  # B de-duplicated for the 2nd query
        index, body = seen[0]
        assert index == "web" and body["size"] == 2
        assert body["query"]["multi_match"]["fields"] == ["title^2", "text"]
        r = t.call(queries=["boom"])
        assert not r.ok and "HTTP 500" in r.content
    finally:
        t.close()
        aio.run(runner.cleanup())
    assert json.dumps(seen)  # the requests were plain JSON
