"""The ``search`` tool: several queries at once over the offline web, results numbered and de-duplicated.

Output format (one section per query; a page already listed under an earlier query is not repeated)::

    Results for "eiffel tower height":
    [1] Eiffel Tower
    https://kimiwiki.test/wiki/Eiffel_Tower
    The tower is 330 metres tall ...

    [2] ...

    Results for "capital of france":
    [3] Paris
    https://kimiwiki.test/wiki/Paris
    Paris is the capital ...
    (also matched: [1])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError
from ..web.backends import (
    HTTPBackend,
    HybridBackend,
    IndexBackend,
    OpenSearchBackend,
    SearchBackend,
    SearchBackendError,
)
from ..web.corpus import Corpus
from ..web.index import MAX_QUERY_CHARS, MAX_QUERY_TERMS, Hit, tokenize
from .base import Tool, ToolResult, ToolStatus

__all__ = [
    "SearchTool", "SearchBackend", "IndexBackend", "HybridBackend", "HTTPBackend", "OpenSearchBackend",
    "format_results", "RETRIEVALS",
]

#: ``retrieval=`` choices: BM25 alone, or BM25 fused with dense embeddings (extra ``dense``).
RETRIEVALS = ("bm25", "hybrid")


def _clip(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:") + " ..."


def format_results(queries: list[str], results: list[list[Hit]], *, urls: bool = True,
                   snippet_chars: int | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Render per-query hits as numbered text; returns (text, [{"n", "url", "title", "query"}]).

    ``urls=False`` leaves the URL lines out (for environments without a browse tool, where they only cost tokens);
    ``snippet_chars`` clips each snippet at a word boundary."""
    numbered: dict[str, int] = {}
    listed: list[dict[str, Any]] = []
    sections = []
    for query, hits in zip(queries, results):
        lines = [f'Results for "{query}":']
        seen_again = []
        for hit in hits:
            if hit.url in numbered:
                seen_again.append(f"[{numbered[hit.url]}]")
                continue
            n = numbered[hit.url] = len(numbered) + 1
            listed.append({"n": n, "url": hit.url, "title": hit.title, "query": query, "score": hit.score})
            lines.append(f"[{n}] {hit.title or hit.url}")
            if urls:
                lines.append(hit.url)
            if hit.snippet:
                lines.append(_clip(hit.snippet, snippet_chars))
            lines.append("")
        if not hits:
            lines += ["No results. Try different or fewer words.", ""]
        elif seen_again:
            lines += [f"(also matched: {', '.join(seen_again)})", ""]
        sections.append("\n".join(lines).rstrip())
    return "\n\n".join(sections), listed


class SearchTool(Tool):
    """Search the offline web. Results list title, URL and a matching passage; open one with the browse tool."""

    name = "search"

    def __init__(
        self,
        corpus: Corpus | str | os.PathLike | None = None,
        *,
        backend: SearchBackend | None = None,
        retrieval: str = "bm25",
        top_k_max: int = 10,
        max_queries: int = 5,
        timeout: float = 20.0,
        max_output_chars: int = 8000,
        default_top_k: int = 5,
        show_urls: bool = True,
        snippet_chars: int | None = None,
    ) -> None:
        """``default_top_k``: results per query when a call does not say (fewer results, shorter contexts: the CPU
        training preset uses 1); ``show_urls=False`` leaves URLs out of the results (search-only environments);
        ``snippet_chars`` clips each snippet at a word boundary (None: whole snippets)."""
        if backend is None and corpus is None:
            raise InvalidArgumentError(
                "SearchTool needs a corpus (Corpus or its directory) or a backend=; got neither. "
                "Fix: SearchTool(Corpus.open('path/to/corpus'))."
            )
        if top_k_max < 1 or max_queries < 1:
            raise InvalidArgumentError(f"top_k_max and max_queries must be >= 1, got {top_k_max} and {max_queries}.")
        if not isinstance(default_top_k, int) or not 1 <= default_top_k <= top_k_max:
            raise InvalidArgumentError(f"default_top_k must be an int in [1, top_k_max={top_k_max}], got "
                                       f"{default_top_k!r}.")
        if snippet_chars is not None and (isinstance(snippet_chars, bool) or not isinstance(snippet_chars, int)
                                          or snippet_chars < 20):
            raise InvalidArgumentError(f"snippet_chars must be an int >= 20 or None, got {snippet_chars!r}.")
        self.snippet_chars = snippet_chars
        self.default_top_k = default_top_k
        self.show_urls = bool(show_urls)
        self.top_k_max = int(top_k_max)
        self.max_queries = int(max_queries)
        if corpus is not None and not isinstance(corpus, Corpus):
            corpus = Corpus.open(Path(corpus))
        if retrieval not in RETRIEVALS:
            from ..errors import unknown_name  # noqa: PLC0415

            raise unknown_name("retrieval", str(retrieval), RETRIEVALS)
        if backend is not None and retrieval != "bm25":
            raise InvalidArgumentError(
                f"retrieval={retrieval!r} chooses the in-process index, but a backend= was given too. "
                "Fix: pass one of them."
            )
        self.corpus = corpus
        self.retrieval = retrieval
        if backend is None and retrieval == "hybrid":
            backend = HybridBackend(corpus)
            backend.index  # noqa: B018 - embeddings and model now (minutes on first use), not in a call's timeout
        self.backend = backend if backend is not None else IndexBackend(corpus)
        super().__init__(timeout=timeout, max_output_chars=max_output_chars)

    def _build_schema(self) -> dict:
        schema = super()._build_schema()
        props = schema["function"]["parameters"]["properties"]
        props["queries"].update({"minItems": 1, "maxItems": self.max_queries})
        props["queries"]["items"].update({"maxLength": MAX_QUERY_CHARS})
        props["top_k"].update({"default": self.default_top_k, "minimum": 1, "maximum": self.top_k_max})
        return schema

    async def run(self, queries: list[str], top_k: int | None = None) -> ToolResult:
        """Search the web for one or more queries at once; returns numbered results with title, URL and snippet.

        Args:
            queries: Search queries (short keyword phrases work best); several run in parallel.
            top_k: Results per query.
        """
        cleaned: list[str] = []
        for i, q in enumerate(queries, 1):
            q = " ".join(q.split())
            if not q:
                return ToolResult.failure(
                    f"query {i} of {len(queries)} is empty; give keywords to search for, "
                    'e.g. {"queries": ["eiffel tower height"]}.',
                    ToolStatus.INVALID_ARGUMENTS,
                )
            words = len(dict.fromkeys(tokenize(q))) if len(q) <= MAX_QUERY_CHARS else 0
            if len(q) > MAX_QUERY_CHARS or words > MAX_QUERY_TERMS:
                got = f"{len(q)} characters" if words == 0 else f"{words} distinct words"
                return ToolResult.failure(
                    f"query {i} of {len(queries)} is too long ({got}); expected at most {MAX_QUERY_CHARS} characters "
                    f"and {MAX_QUERY_TERMS} distinct words. Fix: search a few keywords, or split the request into "
                    "several queries.",
                    ToolStatus.INVALID_ARGUMENTS,
                )
            if q not in cleaned:
                cleaned.append(q)
        try:
            results = await self.backend.search(cleaned, self.default_top_k if top_k is None else top_k)
        except SearchBackendError as exc:
            return ToolResult.failure(f"search backend failed: {exc}. Try again or rephrase.")
        text, listed = format_results(cleaned, results, urls=self.show_urls, snippet_chars=self.snippet_chars)
        return ToolResult.success(
            text, queries=cleaned, result_urls=[r["url"] for r in listed], results=listed
        )

    async def aclose(self) -> None:
        await self.backend.aclose()
