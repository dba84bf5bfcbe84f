"""BrowseTool over the loopback corpus server: rendering, paging, links, find, session state, live-web guards."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_web_fixtures import WIKI, build_corpus  # noqa: E402

from kimi_env import aio  # noqa: E402
from kimi_env.tools.base import ToolStatus  # noqa: E402
from kimi_env.tools.browse import BrowseTool, _PublicOnlyResolver, paginate  # noqa: E402
from kimi_env.web.corpus import Corpus  # noqa: E402
from kimi_env.web.document import Document  # noqa: E402
from kimi_env.web.server import running_servers  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    docs = [
        Document(
            "https://kimiwiki.test/wiki/Long",
            "Long page",
            html="<title>Long page</title><h1>Long</h1>"
            + "".join(f"<p>Paragraph {i} mentions <a href='/wiki/Paris'>Paris</a> and the number {i * 7}.</p>" for i in range(150))
            + "<p>The secret phrase is blue pelican.</p>",
        )
    ]
    return Corpus.build(docs + list(_topic_docs()), tmp_path_factory.mktemp("browse") / "c")


def _topic_docs() -> list[Document]:
    from test_web_fixtures import make_documents

    return make_documents(5)


@pytest.fixture()
def tool(corpus: Corpus) -> BrowseTool:
    t = BrowseTool(corpus, page_chars=1000)
    yield t
    t.close()


def test_open_page_format(tool: BrowseTool) -> None:
    r = tool.call(url=WIKI + "Paris")
    assert r.ok, r.content
    lines = r.content.splitlines()
    assert lines[:4] == ["Paris - KimiWiki", "URL: https://kimiwiki.test/wiki/Paris", "Page 1 of 1", ""]
    assert "# Paris" in lines and "| Name | Paris |" in lines
    assert "- [1] Eiffel Tower [2] Mount Kilimanjaro [3] Photosynthesis" in lines
    assert "SCRIPT-NOISE" not in r.content and "Main page" not in r.content  # script and nav dropped
    assert r.meta["urls"] == [WIKI + "Paris"] and r.meta["unique_urls_visited"] == 1


def test_follow_link_and_history(tool: BrowseTool) -> None:
    tool.call(url=WIKI + "Paris")
    r = tool.call(link=1)
    assert r.ok and r.content.startswith("Eiffel Tower - KimiWiki\nURL: https://kimiwiki.test/wiki/Eiffel_Tower")
    r = tool.call(link=99)
    assert not r.ok and "link 99 does not exist" in r.content and "links 1-3" in r.content
    assert tool.current_url == WIKI + "Eiffel_Tower"  # a failed call keeps the current page
    tool.call(url=WIKI + "Paris")
    assert tool.history == [WIKI + "Paris", WIKI + "Eiffel_Tower", WIKI + "Paris"]
    assert tool.visited_urls == [WIKI + "Paris", WIKI + "Eiffel_Tower"]
    assert tool.call(url=WIKI + "Paris", link=1).status == ToolStatus.INVALID_ARGUMENTS


def test_paging(tool: BrowseTool) -> None:
    r = tool.call(url="https://kimiwiki.test/wiki/Long")
    total = r.meta["pages"]
    assert total > 3 and f"Page 1 of {total}" in r.content and f"[Page 1 of {total}. Next: page=2.]" in r.content
    r2 = tool.call(page=2)
    assert r2.ok and f"Page 2 of {total}" in r2.content and r2.meta["urls"] == []
    body = r2.content.split("\n\n", 1)[1]
    assert len(body) <= 1000 + 40
    last = tool.call(page=total)
    assert "blue pelican" in last.content and "Next:" not in last.content
    r = tool.call(page=total + 1)
    assert not r.ok and f"has {total} page(s)" in r.content
    # links keep their page-wide numbers on every page
    assert "[1] Paris" in r2.content and "[2]" not in r2.content


def test_find(tool: BrowseTool) -> None:
    r = tool.call(url="https://kimiwiki.test/wiki/Long", find="secret   PHRASE")
    assert r.ok and 'Found 1 match for "secret   PHRASE"' in r.content and "blue pelican" in r.content
    assert "[match 1, page " in r.content and r.meta["urls"] == ["https://kimiwiki.test/wiki/Long"]
    r = tool.call(find="number 70")
    assert "Found 3 matches" in r.content  # "number 70", "number 700" and "number 707"
    r = tool.call(find="nonexistent words")
    assert r.ok and 'No match for "nonexistent words"' in r.content


def test_errors_are_observations(tool: BrowseTool) -> None:
    r = tool.call(page=2)
    assert not r.ok and "no page is open" in r.content
    assert not tool.call(link=1).ok
    r = tool.call(url="https://elsewhere.test/page")
    assert not r.ok and "not in the offline web; search first" in r.content and r.meta["urls"] == []
    r = tool.call(url="ftp://kimiwiki.test/x")
    assert not r.ok and "not an absolute http(s) URL" in r.content
    assert tool.call(url=WIKI + "Paris", page=0).status == ToolStatus.INVALID_ARGUMENTS


def test_url_completion(tool: BrowseTool) -> None:
    assert tool.call(url="kimiwiki.test/wiki/Paris").meta["urls"] == [WIKI + "Paris"]
    assert tool.call(url="/wiki/Photosynthesis").meta["urls"] == [WIKI + "Photosynthesis"]
    assert tool.call(url=WIKI + "Paris/#History").meta["urls"] == [WIKI + "Paris"]


def test_reset_clears_session(tool: BrowseTool) -> None:
    tool.call(url=WIKI + "Paris")
    tool.reset()
    assert tool.current_url is None and tool.visited_urls == [] and tool.history == []
    assert not tool.call(page=1).ok
    assert tool.call(url=WIKI + "Paris").meta["unique_urls_visited"] == 1


def test_deterministic_and_concurrent(corpus: Corpus) -> None:
    a, b = BrowseTool(corpus), BrowseTool(corpus)

    async def both() -> list:
        return await asyncio.gather(a.acall(url=WIKI + "Ada_Lovelace"), b.acall(url=WIKI + "Ada_Lovelace"))

    ra, rb = aio.run(both())
    assert ra.content == rb.content and ra.ok
    key = next(iter(running_servers()))
    assert running_servers()[key] == 2  # both tools share one server
    a.close()
    b.close()
    assert key not in running_servers()


def test_offline_only_by_default_and_live_guards(corpus: Corpus) -> None:
    t = BrowseTool(corpus, live_web=True, fetch_timeout=3)
    for url in ("http://127.0.0.1:1/", "http://localhost/", "http://[::1]/", "http://10.0.0.1/", "http://169.254.169.254/latest",
                "http://[::ffff:127.0.0.1]/", "http://user:pw@example.com/"):
        r = t.call(url=url)
        assert not r.ok and ("refused" in r.content or "credentials" in r.content), (url, r.content)
    t.close()


def test_resolver_refuses_names_of_private_addresses() -> None:
    async def go() -> str:
        resolver = _PublicOnlyResolver()
        try:
            await resolver.resolve("localhost", 80)
        except OSError as exc:
            return str(exc)
        finally:
            await resolver.close()
        return "resolved"

    assert "non-public address" in aio.run(go())


def test_paginate_long_lines() -> None:
    chunks = paginate("x" * 2500, 1000)
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    assert paginate("a b " * 600, 1000)[0].endswith("b")


def test_find_does_not_glue_words_across_page_boundaries(tmp_path):
    from kimi_env.tools import BrowseTool
    from kimi_env.web.corpus import Corpus
    from kimi_env.web.document import Document

    text = "\n".join(f"alpha line {i}" for i in range(400))
    corpus = Corpus.build([Document(url="https://x.test/long", title="Long", text=text)], tmp_path / "c")
    tool = BrowseTool(corpus, page_chars=500)
    try:
        first = tool.call(url="https://x.test/long")
        assert first.ok and "Page 1 of" in first.content
        for i in range(399):  # every phrase that spans two lines, including the lines that end a page
            res = tool.call(find=f"line {i} alpha line {i + 1}")
            assert res.ok and "No match" not in res.content, i
        assert "No match" in tool.call(find=f"{1}alpha").content
    finally:
        tool.close()
