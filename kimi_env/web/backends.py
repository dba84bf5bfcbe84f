"""Search backends behind :class:`~kimi_env.tools.SearchTool`: one small async interface, three implementations.

* :class:`IndexBackend` (default): the in-process BM25 index of a corpus.
* :class:`HybridBackend`: the in-process hybrid index (BM25 fused with dense embeddings; extra ``dense``).
* :class:`HTTPBackend`: the ``/search`` endpoint of a corpus server (``kimi-env serve``) elsewhere.
* :class:`OpenSearchBackend`: an OpenSearch / Elasticsearch index through its ``_search`` API (``multi_match`` over
  title and text; snippets from the ``highlight`` of ``text``, else its beginning).

Every backend returns, per query, a ranked list of :class:`~kimi_env.web.index.Hit` and raises
:class:`SearchBackendError` with a readable sentence when the backend fails.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from ..errors import KimiEnvError
from .index import Hit

__all__ = ["SearchBackend", "SearchBackendError", "IndexBackend", "HybridBackend", "HTTPBackend", "OpenSearchBackend"]


class SearchBackendError(KimiEnvError, RuntimeError):
    """A backend could not answer (unreachable, bad response)."""


class SearchBackend:
    """The interface: ``await backend.search(queries, top_k) -> list[list[Hit]]`` (one list per query)."""

    async def search(self, queries: list[str], top_k: int) -> list[list[Hit]]:  # pragma: no cover - abstract
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections."""


class IndexBackend(SearchBackend):
    """Searches the in-process, disk-cached BM25 index of a corpus (shared by every user in the process)."""

    def __init__(self, corpus: Any, **index_kwargs: Any) -> None:
        from .corpus import Corpus  # noqa: PLC0415

        self.corpus = corpus if isinstance(corpus, Corpus) else Corpus.open(corpus)
        self._index_kwargs = index_kwargs
        self._index: Any = None

    @property
    def index(self) -> Any:
        """The :class:`~kimi_env.web.index.BM25Index` (loaded or built on first use)."""
        if self._index is None:
            from .index import get_index  # noqa: PLC0415

            self._index = get_index(self.corpus, **self._index_kwargs)
        return self._index

    async def search(self, queries: list[str], top_k: int) -> list[list[Hit]]:
        # In a worker thread: the shared event loop keeps serving other tools and environments meanwhile, and the
        # tool's timeout can fire. When it fires, this coroutine is cancelled; `stop` then tells the worker thread
        # to give up at its next check instead of computing on for a result nobody reads.
        if self._index is None:
            await asyncio.to_thread(lambda: self.index)
        return await _stoppable(self._index.search, queries, top_k)


class HybridBackend(IndexBackend):
    """Searches the in-process :class:`~kimi_env.web.dense.HybridIndex` of a corpus: BM25 fused with dense
    embeddings (extra ``dense``; embeddings built on first use and cached on disk like the BM25 index).

    Args:
        corpus: A :class:`~kimi_env.web.corpus.Corpus` or its directory.
        **hybrid_kwargs: ``fusion``, ``alpha``, ``rrf_k``, ``depth`` (see :class:`~kimi_env.web.dense.HybridIndex`).
    """

    def __init__(self, corpus: Any, **hybrid_kwargs: Any) -> None:
        from .dense import require_dense  # noqa: PLC0415

        require_dense()  # a missing extra is a programmer's error: say so now, with the fix
        super().__init__(corpus, **hybrid_kwargs)

    @property
    def index(self) -> Any:
        """The :class:`~kimi_env.web.dense.HybridIndex` (loaded or built on first use)."""
        if self._index is None:
            from .dense import get_hybrid_index  # noqa: PLC0415

            self._index = get_hybrid_index(self.corpus, **self._index_kwargs)
        return self._index


async def _stoppable(search: Any, queries: list[str], top_k: int) -> list[list[Hit]]:
    """Run ``search(queries, top_k, stop=event)`` in a worker thread; set the event when the caller is cancelled."""
    stop = threading.Event()
    try:
        return await asyncio.to_thread(search, queries, top_k, stop=stop)
    finally:
        stop.set()  # after a normal return this changes nothing


class _HTTPClient(SearchBackend):
    """Lazily creates one aiohttp session on the loop that first uses it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._session: Any = None

    def _client(self) -> Any:
        import aiohttp  # noqa: PLC0415

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout), trust_env=False, raise_for_status=False
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def _json(self, method: str, url: str, what: str, **kwargs: Any) -> Any:
        import aiohttp  # noqa: PLC0415

        try:
            async with self._client().request(method, url, **kwargs) as resp:
                if resp.status != 200:
                    body = (await resp.text(errors="replace"))[:200]
                    raise SearchBackendError(f"{what} answered HTTP {resp.status}: {body.strip()}")
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise SearchBackendError(f"{what} at {url} failed ({type(exc).__name__}: {exc})") from exc


class HTTPBackend(_HTTPClient):
    """Queries a corpus server's ``GET /search?q=..&q=..&k=..`` endpoint.

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:8080`` (a :class:`~kimi_env.web.server.ServerHandle`'s
            ``base_url``).
        timeout: Seconds for one request.
    """

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        super().__init__(timeout)
        self.base_url = base_url.rstrip("/")

    async def search(self, queries: list[str], top_k: int) -> list[list[Hit]]:
        params = [("q", q) for q in queries] + [("k", str(top_k))]
        data = await self._json("GET", f"{self.base_url}/search", "the search server", params=params)
        try:
            return [[Hit(h["url"], h["title"], float(h["score"]), h["snippet"]) for h in r["hits"]] for r in data["results"]]
        except (KeyError, TypeError) as exc:
            raise SearchBackendError(f"the search server sent an unexpected JSON shape ({exc!r})") from exc


class OpenSearchBackend(_HTTPClient):
    """Searches an OpenSearch / Elasticsearch index with ``POST /<index>/_search`` (one request per query, concurrent).

    Documents must have ``url``, ``title`` and ``text`` fields (field names are configurable).

    Args:
        url: Cluster address, e.g. ``http://localhost:9200``.
        index: Index name.
        fields: ``multi_match`` fields with boosts.
        url_field: Field holding the page URL.
        title_field: Field holding the title.
        text_field: Field holding the text (highlighted for snippets).
        auth: Optional (user, password) for basic auth; default from ``$OPENSEARCH_USER`` / ``$OPENSEARCH_PASSWORD``.
        timeout: Seconds for one request.
    """

    def __init__(
        self,
        url: str,
        index: str,
        *,
        fields: tuple[str, ...] = ("title^2", "text"),
        url_field: str = "url",
        title_field: str = "title",
        text_field: str = "text",
        auth: tuple[str, str] | None = None,
        timeout: float = 10.0,
        snippet_chars: int = 240,
    ) -> None:
        super().__init__(timeout)
        self.url = url.rstrip("/")
        self.index = index
        self.fields = list(fields)
        self.url_field, self.title_field, self.text_field = url_field, title_field, text_field
        user, password = os.environ.get("OPENSEARCH_USER"), os.environ.get("OPENSEARCH_PASSWORD")
        self.auth = auth or ((user, password) if user and password else None)
        self.snippet_chars = snippet_chars

    def request_body(self, query: str, top_k: int) -> dict:
        """The ``_search`` body for one query."""
        return {
            "size": top_k,
            "query": {"multi_match": {"query": query, "fields": self.fields, "type": "best_fields"}},
            "_source": [self.url_field, self.title_field, self.text_field],
            "highlight": {
                "fields": {self.text_field: {"fragment_size": self.snippet_chars, "number_of_fragments": 1}},
                "pre_tags": [""],
                "post_tags": [""],
            },
        }

    async def _one(self, query: str, top_k: int) -> list[Hit]:
        import aiohttp  # noqa: PLC0415

        auth = aiohttp.BasicAuth(*self.auth) if self.auth else None
        data = await self._json(
            "POST", f"{self.url}/{self.index}/_search", "OpenSearch", json=self.request_body(query, top_k), auth=auth
        )
        try:
            raw = data["hits"]["hits"]
        except (KeyError, TypeError) as exc:
            raise SearchBackendError(f"OpenSearch sent no hits.hits in its answer ({exc!r})") from exc
        hits = []
        for h in raw:
            src = h.get("_source") or {}
            highlight = (h.get("highlight") or {}).get(self.text_field) or []
            snippet = highlight[0] if highlight else str(src.get(self.text_field, ""))[: self.snippet_chars]
            url = src.get(self.url_field)
            if isinstance(url, str):
                hits.append(Hit(url, str(src.get(self.title_field, "")), float(h.get("_score") or 0.0), " ".join(snippet.split())))
        return hits

    async def search(self, queries: list[str], top_k: int) -> list[list[Hit]]:
        return list(await asyncio.gather(*(self._one(q, top_k) for q in queries)))
