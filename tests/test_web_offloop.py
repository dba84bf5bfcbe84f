"""CPU work of the offline web stays off the event loop that tools, servers and other episodes share."""

from __future__ import annotations

import sys
import threading
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_web_fixtures import WIKI, build_corpus  # noqa: E402

from kimi_env import aio  # noqa: E402
from kimi_env.tools.browse import BrowseTool  # noqa: E402
from kimi_env.web.corpus import Corpus  # noqa: E402
from kimi_env.web.server import acquire_server  # noqa: E402


def test_server_reads_the_corpus_in_worker_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = build_corpus(tmp_path, n_filler=2)
    loop_thread = []
    aio.run(_note_thread(loop_thread))
    readers: list[threading.Thread] = []
    real_get = Corpus.get

    def spy(self: Corpus, url: str):
        readers.append(threading.current_thread())
        return real_get(self, url)

    monkeypatch.setattr(Corpus, "get", spy)
    with acquire_server(corpus) as srv:
        for path in (f"/raw?url={WIKI}Paris", "/web/https/kimiwiki.test/wiki/Paris", "/page?url=kimiwiki.test/wiki/Paris"):
            with urllib.request.urlopen(srv.base_url + path, timeout=30) as resp:
                assert resp.status == 200
        tool = BrowseTool(corpus, server=srv)
        try:
            assert tool.call(url=WIKI + "Paris").ok
        finally:
            tool.close()
    assert len(readers) == 4 and loop_thread[0] not in readers


async def _note_thread(out: list) -> None:
    out.append(threading.current_thread())
