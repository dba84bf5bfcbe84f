"""Turn existing data into :class:`~kimi_env.web.document.Document` streams for :meth:`Corpus.build`.

* :func:`import_jsonl`: one JSON object a line with ``url``, ``title`` and ``text`` or ``html`` (optional ``links``).
* :func:`import_html_dir`: a directory of saved HTML pages; each page's URL comes from ``<link rel=canonical>``,
  ``<base href>`` or ``og:url``, else ``base_url`` + its path relative to the directory.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urljoin

from .corpus import CorpusError
from .document import Document

__all__ = ["import_jsonl", "import_html_dir", "import_path", "decode_html_bytes"]

_JSONL_FIX = (
    'Fix: write one JSON object per line, e.g. {"url": "https://example.test/a", "title": "A", "text": "..."} '
    '(or "html" instead of "text"; optional "links": [absolute URLs]).'
)


def import_jsonl(path: str | os.PathLike, *, max_document_bytes: int | None = None) -> Iterator[Document]:
    """Yield one document per non-empty line of a JSONL file. Errors name the file and line number.

    A line longer than the page cap allows (``max_document_bytes``, default
    :data:`~kimi_env.web.corpus.MAX_DOCUMENT_BYTES`, times 6 for JSON escapes) is refused without reading it whole.
    """
    path = Path(path)
    cap = _page_cap(max_document_bytes)
    limit = 6 * cap + 1_000_000  # a \uXXXX escape is 6 characters per character, plus room for url/title/links
    with path.open("r", encoding="utf-8", errors="strict") as fh:
        lineno = 0
        while True:
            try:
                line = fh.readline(limit + 1)
            except UnicodeDecodeError as exc:
                raise CorpusError(
                    f"{path}:{lineno + 1}: not valid UTF-8 ({exc.reason}). Fix: re-encode the file as UTF-8."
                ) from exc
            if not line:
                return
            lineno += 1
            if len(line) > limit and not line.endswith("\n"):
                raise CorpusError(
                    f"{path}:{lineno}: the line is longer than {limit:,} characters, more than a page under the "
                    "page cap can take. Fix: split or drop that page, or raise the cap (CLI: --max-page-mb)."
                )
            if line.strip():
                yield _jsonl_document(line, path, lineno, cap)


def _page_cap(max_document_bytes: int | None) -> int:
    from .corpus import MAX_DOCUMENT_BYTES  # noqa: PLC0415

    return MAX_DOCUMENT_BYTES if max_document_bytes is None else int(max_document_bytes)


def _parse_json_line(line: str, where: str) -> object:
    """json.loads, with every way the parser can fail on hostile input turned into a CorpusError."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno}). {_JSONL_FIX}") from exc
    except RecursionError:
        raise CorpusError(
            f"{where}: the JSON is nested too deeply to parse (thousands of brackets). {_JSONL_FIX}"
        ) from None
    except ValueError as exc:  # e.g. an integer with more digits than int() accepts
        raise CorpusError(f"{where}: invalid JSON value ({str(exc)[:160]}). {_JSONL_FIX}") from None


def _check_unicode(where: str, key: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CorpusError(
            f"{where}: {key!r} holds the lone surrogate {ascii(value[exc.start])} at character {exc.start}, which "
            "is not valid Unicode text. Fix: repair the text (a \\ud800-\\udfff escape needs its pair) or drop it."
        ) from None


def _jsonl_document(line: str, path: Path, lineno: int, cap: int | None = None) -> Document:
    where = f"{path}:{lineno}"
    obj = _parse_json_line(line, where)
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
    for key, value in (("url", url), ("title", title), ("html", html), ("text", text), *(("links", x) for x in links)):
        if value is not None:
            _check_unicode(where, key, value)
    links = [urljoin(url, x) for x in links]
    body = html if html is not None else text
    if cap is not None and len(body) > cap:  # before rendering it for a title; Corpus.build checks bytes again
        raise CorpusError(
            f"{where}: the page has {len(body):,} characters, over the page cap of {cap:,} bytes. "
            "Fix: split or drop that page, or raise the cap (CLI: --max-page-mb)."
        )
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
        codec = _text_codec(name)
        if codec is None:
            continue
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            if codec == "utf-8":  # declared utf-8 with a few bad bytes: keep utf-8, mark the bad bytes
                return data.decode("utf-8", errors="replace")
        except Exception:  # noqa: BLE001 - whatever a declared codec does, it must not matter
            continue
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


# Codecs that Python can look up but that are not character sets a page can be written in.
# UTF-7 is refused as browsers refuse it (it smuggles markup past filters).
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "mbcs", "oem", "utf-7"}
)


def _text_codec(name: str) -> str | None:
    """The Python codec for a declared charset, or None for unknown names and non-text codecs (zlib, base64, rot13)."""
    import codecs  # noqa: PLC0415

    try:
        info = codecs.lookup(name.strip().lower())
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name.replace("_", "-") in _NOT_CHARSETS:
        return None
    return info.name


def import_html_dir(
    directory: str | os.PathLike,
    base_url: str | None = None,
    *,
    on_skip: Callable[[Path, str], None] | None = None,
    max_document_bytes: int | None = None,
) -> Iterator[Document]:
    """Yield one document per ``*.html`` / ``*.htm`` file under ``directory`` (sorted, recursive).

    Args:
        directory: Saved pages.
        base_url: Used for pages without ``<link rel=canonical>``, ``<base href>`` or ``og:url``: the page URL is
            ``base_url`` joined with the file's path relative to ``directory`` (``index.html`` maps to the folder).
        on_skip: Called with (file, reason) for each file left out: a symbolic link (or a file under a linked
            folder) whose target is outside ``directory``. Default: a :class:`UserWarning` per file.
        max_document_bytes: Page cap; a bigger file is a :class:`CorpusError` (default
            :data:`~kimi_env.web.corpus.MAX_DOCUMENT_BYTES`).
    """
    root = Path(directory)
    if not root.is_dir():
        raise CorpusError(f"{root} is not a directory. Fix: pass the folder that holds the saved .html pages.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".html", ".htm"))
    if not files:
        raise CorpusError(f"{root} holds no .html or .htm files. Fix: point at the folder of saved pages.")
    inside = _contained_files(root, files, on_skip or _warn_skip)
    for file, real in inside:
        _check_file_size(file, real, max_document_bytes)
        yield _html_file_document(file, root, base_url)


def _contained_files(
    root: Path, files: list[Path], on_skip: Callable[[Path, str], None]
) -> Iterator[tuple[Path, Path]]:
    """(file, resolved path) of the files whose resolved path stays under ``root``; ``on_skip`` hears of the rest."""
    real_root = root.resolve()
    for file in files:
        try:
            real = file.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # a dangling link, a link loop
            on_skip(file, f"cannot be resolved ({type(exc).__name__})")
            continue
        if real != real_root and real_root not in real.parents:
            on_skip(file, f"links outside the imported folder (to {real}); not imported")
            continue
        yield file, real


def _warn_skip(file: Path, reason: str) -> None:
    import warnings  # noqa: PLC0415

    warnings.warn(f"{file}: {reason}", UserWarning, stacklevel=3)


def _check_file_size(file: Path, real: Path, max_document_bytes: int | None) -> None:
    cap = _page_cap(max_document_bytes)
    size = real.stat().st_size
    if size > cap:
        raise CorpusError(
            f"{file}: {size:,} bytes, over the page cap of {cap:,} bytes. Fix: split or drop that page, or raise "
            "the cap (CLI: --max-page-mb; max_document_bytes=...)."
        )


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
        url = urljoin(base_url.rstrip("/") + "/", quote(os.fsencode(rel)))  # raw bytes of non-UTF-8 names
    page = render_html(html, url, number_links=False)
    return Document(url, page.title or _printable_name(file.stem), html=html, links=page.links)


def _printable_name(name: str) -> str:
    """A file name as valid Unicode (bytes that are not UTF-8 become U+FFFD)."""
    return os.fsencode(name).decode("utf-8", errors="replace")


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


def import_path(
    path: str | os.PathLike,
    base_url: str | None = None,
    *,
    on_skip: Callable[[Path, str], None] | None = None,
    max_document_bytes: int | None = None,
) -> Iterator[Document]:
    """:func:`import_jsonl` for a ``.jsonl`` file, :func:`import_html_dir` for a directory."""
    p = Path(path)
    if p.is_dir():
        return import_html_dir(p, base_url, on_skip=on_skip, max_document_bytes=max_document_bytes)
    if p.is_file() and p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return import_jsonl(p, max_document_bytes=max_document_bytes)
    raise CorpusError(
        f"{p}: expected a .jsonl file or a directory of .html pages, got "
        f"{'a missing path' if not p.exists() else 'a ' + (p.suffix or 'file without extension') + ' file'}. "
        "Fix: pass a JSONL file (one document a line) or a folder of saved pages."
    )
