"""Turn existing data into :class:`~kimi_env.web.document.Document` streams for :meth:`Corpus.build`.

* :func:`import_jsonl`: one JSON object a line with ``url``, ``title`` and ``text`` or ``html`` (optional ``links``).
* :func:`import_html_dir`: a directory of saved HTML pages; each page's URL comes from ``<link rel=canonical>``,
  ``<base href>`` or ``og:url``, else ``base_url`` (default :data:`DEFAULT_BASE_URL`) + its path relative to the
  directory; links between the files by relative path are mapped to the URLs the files got.
"""

from __future__ import annotations

import html as html_lib
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urldefrag, urljoin

from .corpus import CorpusError
from .document import Document
from .text import MAX_HTML_CHARS, MAX_TEXT_CHARS

__all__ = ["import_jsonl", "import_html_dir", "import_path", "decode_html_bytes", "DEFAULT_BASE_URL"]

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


#: Where pages without a declared URL live when no ``base_url`` is given: ``.invalid`` is reserved (RFC 2606), so
#: these URLs can never mean a real site.
DEFAULT_BASE_URL = "https://offline.invalid/"

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s>"']+))""", re.I)


def import_html_dir(
    directory: str | os.PathLike,
    base_url: str | None = None,
    *,
    report: dict | None = None,
    workers: int | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
    max_document_bytes: int | None = None,
) -> Iterator[Document]:
    """Yield one document per ``*.html`` / ``*.htm`` file under ``directory`` (sorted, recursive).

    Each page's URL is the one it declares (``<link rel=canonical>``, ``<base href>``, ``og:url``); a page without
    one gets ``base_url`` (default :data:`DEFAULT_BASE_URL`) joined with its path relative to ``directory``
    (``index.html`` maps to the folder). Links between the imported files by relative path (``animals/okapi.html``)
    are rewritten, in the stored HTML and in :attr:`Document.links`, to the URL the linked file got, so they work
    even when that file declared a canonical URL elsewhere.

    Args:
        directory: Saved pages.
        base_url: URL prefix for pages that declare no URL.
        report: If given, filled before the first document is yielded: ``files``, ``derived`` (pages whose URL came
            from their path), ``base_url`` (the prefix used). ``files`` counts the files imported, not those skipped.
        workers: Processes that parse pages (default: the usable CPU cores, at most 4; folders of fewer than
            :data:`PARALLEL_MIN_FILES` pages are parsed in this process). Documents come out in file order either way.
        on_skip: Called with (file, reason) for each file left out: a symbolic link (or a file under a linked
            folder) whose target is outside ``directory``, or one that cannot be resolved. Default: a
            :class:`UserWarning` per file.
        max_document_bytes: Page cap; a bigger file is a :class:`CorpusError`, raised before any page is parsed
            (default :data:`~kimi_env.web.corpus.MAX_DOCUMENT_BYTES`).
    """
    root = Path(directory)
    if not root.is_dir():
        raise CorpusError(f"{root} is not a directory. Fix: pass the folder that holds the saved .html pages.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".html", ".htm"))
    if not files:
        raise CorpusError(f"{root} holds no .html or .htm files. Fix: point at the folder of saved pages.")
    prefix = (base_url or DEFAULT_BASE_URL).rstrip("/") + "/"
    if not prefix.startswith(("http://", "https://")):
        raise CorpusError(
            f"base_url must be an absolute http(s) URL, got {base_url!r}. Fix: e.g. https://site.example/"
        )
    # Only files whose resolved path stays under the folder (symlinks out are skipped), each under the page cap;
    # from here on every read goes to the resolved path that was checked.
    inside = list(_contained_files(root, files, on_skip or _warn_skip))
    for file, real in inside:
        _check_file_size(file, real, max_document_bytes)
    # Pass 1: every file's URL (only the head of each page is parsed), so links between files can be mapped.
    urls: dict[str, str] = {}
    declared: set[str] = set()  # files whose URL is not their path under the prefix
    for file, real in inside:
        rel = file.relative_to(root).as_posix()
        url = _head_url(real)
        if url is None:
            url = _path_url(prefix, rel)
        else:
            declared.add(rel)
        urls[rel] = url
    if report is not None:
        report.update(files=len(inside), derived=len(inside) - len(declared), base_url=prefix)
    # Pass 2: the documents.
    links = _LocalLinks(urls, declared)
    items = [(str(real), file.relative_to(root).as_posix()) for file, real in inside]
    if workers is None:
        workers = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if workers <= 1 or len(items) < PARALLEL_MIN_FILES:
        for real, rel in items:
            yield _html_file_document(Path(real), rel, links)
    else:
        yield from _parallel_documents(items, links, workers)


#: Folders with fewer pages than this are imported in one process (starting workers would cost more).
PARALLEL_MIN_FILES = 64
_worker_links: _LocalLinks | None = None


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


def _init_worker(links: _LocalLinks) -> None:
    global _worker_links
    _worker_links = links


def _worker_document(item: tuple[str, str]) -> tuple[Document, Any]:
    from .text import _recent  # noqa: PLC0415

    assert _worker_links is not None
    doc = _html_file_document(Path(item[0]), item[1], _worker_links)
    page = _recent.get((doc.html, doc.url, False, MAX_HTML_CHARS, MAX_TEXT_CHARS))
    _recent.clear()
    return doc, page


def _parallel_documents(items: list[tuple[str, str]], links: _LocalLinks, workers: int) -> Iterator[Document]:
    """The documents of ``items``, parsed by ``workers`` processes, yielded in order (a bounded window in flight)."""
    import multiprocessing  # noqa: PLC0415
    from collections import deque  # noqa: PLC0415
    from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

    from .text import remember  # noqa: PLC0415

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    try:
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(links,))
    except (OSError, NotImplementedError, ImportError):  # no process support here (some sandboxes): one process
        for file, rel in items:
            yield _html_file_document(Path(file), rel, links)
        return
    with pool:
        pending = iter(items)
        window: deque = deque(pool.submit(_worker_document, item) for _, item in zip(range(4 * workers), pending))
        while window:
            doc, page = window.popleft().result()
            item = next(pending, None)
            if item is not None:
                window.append(pool.submit(_worker_document, item))
            if page is not None:  # the corpus renders each page for its text: let it find this rendering
                remember((doc.html, doc.url, False, MAX_HTML_CHARS, MAX_TEXT_CHARS), page)
            yield doc


def _path_url(prefix: str, rel: str) -> str:
    if rel == "index.html" or rel.endswith("/index.html"):
        rel = rel[: -len("index.html")]
    return urljoin(prefix, quote(os.fsencode(rel)))  # raw bytes of non-UTF-8 names


def _head_url(file: Path) -> str | None:
    from .text import declared_url  # noqa: PLC0415

    with file.open("rb") as fh:
        data = fh.read(65536)
    cut = data.rfind(b">")
    if len(data) == 65536 and cut > 0:  # never decode half a character
        data = data[: cut + 1]
    return declared_url(decode_html_bytes(data))


_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_PLAIN_HREF = re.compile(r"(?!\.\.?/)(?!.*/\.\.?/)[A-Za-z0-9_~/-][A-Za-z0-9._~/-]*(#[^\s]*)?")  # no dot segments


class _LocalLinks:
    """Maps relative links between imported files to the URLs those files got."""

    def __init__(self, urls: dict[str, str], declared: set[str]) -> None:
        self.urls = urls
        self.declared = declared

    def target(self, href: str, rel: str) -> tuple[str, str] | None:
        """(file, URL with the link's fragment) of the imported file that relative ``href`` in file ``rel`` names."""
        href = html_lib.unescape(href).strip()
        if not href or href.startswith(("#", "//")) or _SCHEME.match(href):
            return None
        path, sep, fragment = href.partition("#")
        path = path.split("?", 1)[0]
        if not path:
            return None
        path = unquote(path)
        joined = path.lstrip("/") if path.startswith("/") else posixpath.join(posixpath.dirname(rel), path)
        target = posixpath.normpath(joined)
        if target == ".." or target.startswith("../"):
            return None
        for candidate in (target, posixpath.join(target, "index.html"), target + ".html"):
            url = self.urls.get(candidate)
            if url is not None:
                return candidate, url + (sep + fragment if fragment else "")
        return None

    def rewrite(self, html: str, url: str, rel: str) -> str:
        """``html`` with each ``<a href>`` naming an imported file set to that file's URL, where plain resolution
        against the page URL would miss it (a canonical URL elsewhere, ``dir/index.html`` stored as ``dir/``)."""

        def fix(m: re.Match) -> str:
            value = next(g for g in m.groups()[1:] if g is not None)
            found = self.target(value, rel)
            if found is None:
                return m.group(0)
            target_rel, target = found
            both_paths = rel not in self.declared and target_rel not in self.declared
            if both_paths and not target_rel.endswith("index.html") and _PLAIN_HREF.fullmatch(value):
                return m.group(0)  # both URLs are file paths under the prefix: plain resolution already works
            try:
                plain = urldefrag(urljoin(url, html_lib.unescape(value).strip()))[0]
            except ValueError:
                plain = None
            if plain == urldefrag(target)[0]:
                return m.group(0)
            return f'{m.group(1)}"{html_lib.escape(target)}"'

        return _HREF.sub(fix, html)


def _html_file_document(file: Path, rel: str, links: _LocalLinks) -> Document:
    from .text import remember, render_html  # noqa: PLC0415

    html = decode_html_bytes(file.read_bytes())
    url = links.urls[rel]
    if len(links.urls) > 1 and "href" in html:
        html = links.rewrite(html, url, rel)
    page = render_html(html, url, number_links=False)
    remember((html, url, False, MAX_HTML_CHARS, MAX_TEXT_CHARS), page)
    return Document(url, page.title or _printable_name(Path(rel).stem), html=html, links=page.links)


def _printable_name(name: str) -> str:
    """A file name as valid Unicode (bytes that are not UTF-8 become U+FFFD)."""
    return os.fsencode(name).decode("utf-8", errors="replace")


def import_path(
    path: str | os.PathLike,
    base_url: str | None = None,
    *,
    report: dict | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
    max_document_bytes: int | None = None,
) -> Iterator[Document]:
    """:func:`import_jsonl` for a ``.jsonl`` file, :func:`import_html_dir` for a directory (keywords as there)."""
    p = Path(path)
    if p.is_dir():
        return import_html_dir(p, base_url, report=report, on_skip=on_skip, max_document_bytes=max_document_bytes)
    if p.is_file() and p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return import_jsonl(p, max_document_bytes=max_document_bytes)
    raise CorpusError(
        f"{p}: expected a .jsonl file or a directory of .html pages, got "
        f"{'a missing path' if not p.exists() else 'a ' + (p.suffix or 'file without extension') + ' file'}. "
        "Fix: pass a JSONL file (one document a line) or a folder of saved pages."
    )
