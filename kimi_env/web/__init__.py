"""The offline web: corpora of documents on disk, HTML-to-text rendering, a BM25 index and a loopback server.

Everything is imported lazily, so ``import kimi_env.web`` stays light (no aiohttp, bs4 or bm25s until used)::

    from kimi_env.web import Corpus, Document, import_jsonl, acquire_server, get_index
"""

from __future__ import annotations

from typing import Any

from .document import Document

__all__ = [
    "Document",
    "Corpus",
    "CorpusError",
    "normalize_url",
    "import_jsonl",
    "import_html_dir",
    "import_path",
    "render_html",
    "arender_html",
    "RenderedPage",
    "BM25Index",
    "Hit",
    "get_index",
    "acquire_server",
    "aacquire_server",
    "release",
    "arelease",
    "ServerHandle",
    "create_app",
    "SearchBackend",
    "IndexBackend",
    "HTTPBackend",
    "OpenSearchBackend",
]

_LAZY = {
    "Corpus": "corpus",
    "CorpusError": "corpus",
    "normalize_url": "corpus",
    "import_jsonl": "importers",
    "import_html_dir": "importers",
    "import_path": "importers",
    "render_html": "text",
    "arender_html": "text",
    "RenderedPage": "text",
    "BM25Index": "index",
    "Hit": "index",
    "get_index": "index",
    "acquire_server": "server",
    "aacquire_server": "server",
    "release": "server",
    "arelease": "server",
    "ServerHandle": "server",
    "create_app": "server",
    "SearchBackend": "backends",
    "IndexBackend": "backends",
    "HTTPBackend": "backends",
    "OpenSearchBackend": "backends",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'kimi_env.web' has no attribute {name!r}")
