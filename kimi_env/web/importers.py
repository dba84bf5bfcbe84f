"""Turn existing data into :class:`~kimi_env.web.document.Document` streams for :meth:`Corpus.build`.

* :func:`import_jsonl`: one JSON object a line with ``url``, ``title`` and ``text`` or ``html`` (optional ``links``).
* :func:`import_html_dir`: a directory of saved HTML pages; each page's URL comes from ``<link rel=canonical>``,
  ``<base href>`` or ``og:url``, else ``base_url`` + its path relative to the directory.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urljoin

from .corpus import CorpusError
from .document import Document

__all__ = ["import_jsonl", "import_html_dir", "import_path", "decode_html_bytes"]

_JSONL_FIX = (
    'Fix: write one JSON object per line, e.g. {"url": "https://example.test/a", "title": "A", "text": "..."} '
    '(or "html" instead of "text"; optional "links": [absolute URLs]).'
)


def import_jsonl(path: str | os.PathLike) -> Iterator[Document]:
    """Yield one document per non-empty line of a JSONL file. Errors name the file and line number."""
    path = Path(path)
    with path.open("r", encoding="utf-8", errors="strict") as fh:
        lineno = 0
        while True:
            try:
                line = fh.readline()
            except UnicodeDecodeError as exc:
                raise CorpusError(
                    f"{path}:{lineno + 1}: not valid UTF-8 ({exc.reason}). Fix: re-encode the file as UTF-8."
                ) from exc
            if not line:
                return
            lineno += 1
            if line.strip():
                yield _jsonl_document(line, path, lineno)


def _jsonl_document(line: str, path: Path, lineno: int) -> Document:
    where = f"{path}:{lineno}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno}). {_JSONL_FIX}") from exc
    if not isinstance(obj, dict):
        raise CorpusError(f"{where}: expected a JSON object, got {type(obj).__name__}. {_JSONL_FIX}")
    url, title = obj.get("url"), obj.get("title", "")
    html, text, links = obj.get("html"), obj.get("text"), obj.get("links", [])
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise CorpusError(f"{where}: 'url' must be an absolute http(s) URL, got {url!r}. {_JSONL_FIX}")
    if not isinstance(title, str):
        raise CorpusError(f"{where}: 'title' must be a string, got {type(title).__name__}. {_JSONL_FIX}")
    if html is None and text is None:
        raise CorpusError(f"{where}: neither 'text' nor 'html' is present. {_JSONL_FIX}")
    for key, value in (("html", html), ("text", text)):
        if value is not None and not isinstance(value, str):
            raise CorpusError(f"{where}: {key!r} must be a string, got {type(value).__name__}. {_JSONL_FIX}")
    if not isinstance(links, list) or not all(isinstance(x, str) for x in links):
        raise CorpusError(f"{where}: 'links' must be a list of URL strings. {_JSONL_FIX}")
    links = [urljoin(url, x) for x in links]
    if html is not None:
        return Document(url, title or _title_of(html, url), html=html, links=tuple(links))
    return Document(url, title, text=text, links=tuple(links))


def _title_of(html: str, url: str) -> str:
    from .text import render_html  # noqa: PLC0415

    return render_html(html, url, number_links=False).title


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def decode_html_bytes(data: bytes, declared: str | None = None) -> str:
    """Decode HTML bytes: BOM, then the declared (HTTP or ``<meta>``) charset, then UTF-8, then cp1252.

    Unknown charset names are ignored; undecodable bytes become U+FFFD, never an exception.

    >>> decode_html_bytes(b'<meta charset="latin-1">caf\\xe9')
    '<meta charset="latin-1">café'
    >>> decode_html_bytes(b"ok \\xff", "no-such-charset")
    'ok ÿ'
    """
    import codecs  # noqa: PLC0415

    for bom, enc in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return data[len(bom) :].decode(enc, errors="replace")
    candidates: list[str] = []
    if declared:
        candidates.append(declared)
    m = _META_CHARSET.search(data[:4096])
    if m:
        candidates.append(m.group(1).decode("ascii", "replace"))
    for name in candidates:
        try:
            codec = codecs.lookup(name.strip().lower()).name
        except LookupError:
            continue
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            if codec == "utf-8":  # declared utf-8 with a few bad bytes: keep utf-8, mark the bad bytes
                return data.decode("utf-8", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def import_html_dir(directory: str | os.PathLike, base_url: str | None = None) -> Iterator[Document]:
    """Yield one document per ``*.html`` / ``*.htm`` file under ``directory`` (sorted, recursive).

    Args:
        directory: Saved pages.
        base_url: Used for pages without ``<link rel=canonical>``, ``<base href>`` or ``og:url``: the page URL is
            ``base_url`` joined with the file's path relative to ``directory`` (``index.html`` maps to the folder).
    """
    root = Path(directory)
    if not root.is_dir():
        raise CorpusError(f"{root} is not a directory. Fix: pass the folder that holds the saved .html pages.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".html", ".htm"))
    if not files:
        raise CorpusError(f"{root} holds no .html or .htm files. Fix: point at the folder of saved pages.")
    for file in files:
        yield _html_file_document(file, root, base_url)


def _html_file_document(file: Path, root: Path, base_url: str | None) -> Document:
    from bs4 import BeautifulSoup  # noqa: PLC0415

    from .text import render_html  # noqa: PLC0415

    html = decode_html_bytes(file.read_bytes())
    url = _declared_url(BeautifulSoup(html[:200_000], "lxml"))
    if url is None:
        if not base_url:
            raise CorpusError(
                f"{file}: no <link rel=canonical>, <base href> or og:url, so its URL is unknown. "
                "Fix: pass base_url (CLI: --base-url https://site.example/) to derive URLs from file paths."
            )
        rel = file.relative_to(root).as_posix()
        if rel == "index.html" or rel.endswith("/index.html"):
            rel = rel[: -len("index.html")]
        url = urljoin(base_url.rstrip("/") + "/", quote(rel))
    page = render_html(html, url, number_links=False)
    return Document(url, page.title or file.stem, html=html, links=page.links)


def _declared_url(soup: object) -> str | None:
    candidates = [
        ("link", {"rel": "canonical"}, "href"),
        ("base", {}, "href"),
        ("meta", {"property": "og:url"}, "content"),
    ]
    for tag_name, attrs, attr in candidates:
        tag = soup.find(tag_name, attrs=attrs)  # type: ignore[attr-defined]
        value = tag.get(attr) if tag is not None else None
        if isinstance(value, str) and value.strip().startswith(("http://", "https://")):
            return value.strip()
    return None


def import_path(path: str | os.PathLike, base_url: str | None = None) -> Iterator[Document]:
    """:func:`import_jsonl` for a ``.jsonl`` file, :func:`import_html_dir` for a directory."""
    p = Path(path)
    if p.is_dir():
        return import_html_dir(p, base_url)
    if p.is_file() and p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return import_jsonl(p)
    raise CorpusError(
        f"{p}: expected a .jsonl file or a directory of .html pages, got "
        f"{'a missing path' if not p.exists() else 'a ' + (p.suffix or 'file without extension') + ' file'}. "
        "Fix: pass a JSONL file (one document a line) or a folder of saved pages."
    )
