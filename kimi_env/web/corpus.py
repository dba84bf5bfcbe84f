"""The offline web on disk: a corpus of documents keyed by canonical URL.

A corpus directory holds two files:

* ``manifest.json``: ``{"format": "kimi-env-corpus", "format_version": 1, "count", "content_hash", "name",
  "created_by"}``. ``content_hash`` is a SHA-256 over every document (URL, title, HTML, text, links, in order), so
  two corpora with the same documents have the same hash on any machine; indexes are cached under it.
* ``corpus.sqlite``: one row per document (``id`` = position, normalized URL key, URL, title, zlib-compressed
  body, zlib-compressed readable text for indexing, links as JSON). Rows are read on demand, so opening a
  million-page corpus costs no text in memory, and a lookup by URL is one indexed SQLite query (~20 us).

>>> from kimi_env.web.document import Document
>>> c = Corpus.from_documents([Document("https://kimiwiki.test/wiki/A", "A", text="Alpha.")])
>>> len(c), c.get("https://KimiWiki.test/wiki/A/#History").title
(1, 'A')
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .. import __version__
from ..errors import InvalidArgumentError, KimiEnvError
from .document import Document

__all__ = ["Corpus", "CorpusError", "normalize_url", "cache_root"]

FORMAT = "kimi-env-corpus"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATA = "corpus.sqlite"
_DEFAULT_PORTS = {"http": "80", "https": "443"}
MAX_DOCUMENT_BYTES = 10_000_000  # the import-time page cap: UTF-8 bytes of one document's HTML or text
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class CorpusError(KimiEnvError, ValueError):
    """A corpus directory or an input file is missing, malformed or inconsistent."""


def cache_root() -> Path:
    """``$KIMI_ENV_CACHE`` when set, else ``~/.cache/kimi-env``."""
    env = os.environ.get("KIMI_ENV_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kimi-env"


def normalize_url(url: str) -> str:
    """The lookup key of a URL: fragment dropped, scheme and host lower-cased, default port and trailing slash dropped.

    >>> normalize_url("HTTPS://KimiWiki.test:443/wiki/Paris/#History")
    'https://kimiwiki.test/wiki/Paris'
    >>> normalize_url("https://kimiwiki.test")
    'https://kimiwiki.test/'
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    netloc = parts.netloc.lower()
    if scheme in _DEFAULT_PORTS and netloc.endswith(":" + _DEFAULT_PORTS[scheme]):
        netloc = netloc.rsplit(":", 1)[0]
    path = parts.path or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    return urlunsplit((scheme, netloc, path, parts.query, ""))


# -- where a build may write (issue 15, finding 2) --------------------------------------------------------------------
_OWN_ENTRIES = (MANIFEST, DATA, "index")  # what a corpus directory holds (index/: the search-index cache)


def _is_our_corpus(path: Path) -> tuple[bool, list[str]]:
    """Whether ``path`` is a kimi-env corpus (our manifest format, only our entries); else the foreign entries."""
    foreign = sorted(p.name for p in path.iterdir() if p.name not in _OWN_ENTRIES and not p.name.startswith(DATA))
    manifest = path / MANIFEST
    if manifest.is_symlink() or not manifest.is_file() or (path / DATA).is_symlink() or not (path / DATA).is_file():
        return False, foreign
    try:
        data = json.loads(manifest.read_bytes()[:1_000_000])
    except (OSError, ValueError, RecursionError):
        return False, foreign
    return isinstance(data, dict) and data.get("format") == FORMAT and not foreign, foreign


def _check_out_dir(out: Path, overwrite: bool, source: str | os.PathLike | None) -> Path:
    """The resolved directory a build may replace, or a CorpusError saying why not and what to do instead."""
    if out.is_symlink():
        raise CorpusError(
            f"{out} is a symbolic link (to {os.readlink(out)}); kimi-env never builds or deletes through a link. "
            "Fix: pass the link's target itself, or a new directory, as --out."
        )
    out = out.resolve()
    if source is not None:
        src = Path(source).expanduser().resolve()
        if src == out or out in src.parents:
            raise CorpusError(
                f"--out {out} is the import's own source ({src}) or holds it; building there would delete the "
                "input. Fix: choose a new directory for --out."
            )
    if not out.exists():
        return out
    if not out.is_dir():
        raise CorpusError(f"{out} exists and is a file, not a directory. Fix: choose a new directory for --out.")
    entries = list(out.iterdir())
    if not entries:
        return out
    ours, foreign = _is_our_corpus(out)
    if not ours:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise CorpusError(
            f"{out} exists and is not a corpus written by kimi-env (it holds "
            f"{shown or 'a manifest.json of another format'}); "
            "building there would delete what it holds, so it is refused even with --overwrite. "
            "Fix: choose a new or empty directory for --out."
        )
    if not overwrite:
        raise CorpusError(
            f"{out} already holds a kimi-env corpus. Fix: choose another --out, or pass --overwrite "
            "(overwrite=True) to replace that corpus."
        )
    return out


def _swap_in(tmp: Path, out: Path) -> None:
    """Move the finished build ``tmp`` to ``out``; an old ``out`` is moved aside first and deleted only afterwards."""
    if not out.exists():
        os.replace(tmp, out)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rmdir(aside)
    os.replace(out, aside)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(aside, out)  # put the old corpus back
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _doc_record(doc: Document) -> bytes:
    """The canonical serialization that the content hash covers."""
    return json.dumps([doc.url, doc.title, doc.html, doc.text, list(doc.links)], ensure_ascii=False).encode() + b"\n"


def _check_document(doc: object, position: int) -> Document:
    if not isinstance(doc, Document):
        raise CorpusError(
            f"Document #{position} is a {type(doc).__name__}, expected kimi_env.web.Document. "
            "Fix: wrap it, e.g. Document(url=..., title=..., text=...)."
        )
    if not isinstance(doc.url, str) or not doc.url.startswith(("http://", "https://")):
        raise CorpusError(
            f"Document #{position} has url {doc.url!r}; expected an absolute http(s) URL such as "
            "'https://kimiwiki.test/wiki/Page'. Fix: give every document its canonical absolute URL."
        )
    bad = _CONTROL.search(doc.url)
    if bad:
        raise CorpusError(
            f"Document #{position} has url {doc.url[:200]!r} with the control character {bad.group()!r} at "
            f"{bad.start()}; such a URL can never be requested. Fix: percent-encode it (e.g. %0A) or drop it."
        )
    if doc.html is None and doc.text is None:
        raise CorpusError(f"Document #{position} ({doc.url}) has neither html nor text. Fix: set one of them.")
    _utf8(doc.url, "url", position, doc)
    _utf8(doc.title or "", "title", position, doc)
    for link in doc.links:
        _utf8(link, "links", position, doc)
    return doc


def _utf8(value: str, field: str, position: int, doc: Document) -> bytes:
    """``value`` as UTF-8, or a CorpusError naming the document and field (a lone surrogate is not Unicode text)."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        where = ascii(doc.url[:200]) if field != "url" else f"#{position}"
        raise CorpusError(
            f"Document #{position} ({where}): {field!r} holds {ascii(value[exc.start : exc.start + 1])} at "
            f"character {exc.start}, a lone surrogate that is not valid Unicode. Fix: repair the text "
            "(e.g. value.encode('utf-8', 'replace').decode()) or drop the document."
        ) from None


def _plain_text(doc: Document) -> tuple[str, tuple[str, ...]]:
    """Readable text (for indexing and snippets) and links of a document."""
    if doc.html is None:
        return doc.text or "", tuple(doc.links)
    from .text import render_html  # noqa: PLC0415

    page = render_html(doc.html, doc.url, number_links=False)
    return page.text, tuple(doc.links) or page.links


class Corpus:
    """A read-only corpus of documents on disk. Thread-safe; cheap to open.

    Use :meth:`build` to write one, :meth:`open` to read one, :meth:`from_documents` for small in-memory sets.
    """

    def __init__(self, path: Path, manifest: dict) -> None:
        self.path = path
        self.manifest = manifest
        self._local = threading.local()

    # -- construction -------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike) -> Corpus:
        """Open a corpus directory written by :meth:`build`."""
        path = Path(path).expanduser().resolve()
        manifest_path = path / MANIFEST
        if not manifest_path.is_file() or not (path / DATA).is_file():
            raise CorpusError(
                f"{path} is not a kimi-env corpus (expected {MANIFEST} and {DATA} in it). "
                "Fix: build one with `kimi-env corpus import PATH --out DIR` or Corpus.build(...)."
            )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CorpusError(f"{manifest_path} is unreadable ({exc}). Fix: rebuild the corpus.") from exc
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            raise CorpusError(
                f"{manifest_path} has format {manifest.get('format')!r} version {manifest.get('format_version')!r}; "
                f"expected {FORMAT!r} version {FORMAT_VERSION}. Fix: rebuild the corpus with this kimi-env."
            )
        return cls(path, manifest)

    @classmethod
    def build(
        cls,
        documents: Iterable[Document],
        out_dir: str | os.PathLike,
        *,
        name: str | None = None,
        overwrite: bool = False,
        on_duplicate: str = "error",
        source: str | os.PathLike | None = None,
        max_document_bytes: int | None = None,
    ) -> Corpus:
        """Write ``documents`` (streamed, any number) to ``out_dir`` and open the result.

        Args:
            documents: Documents with canonical absolute URLs.
            out_dir: Directory to create (or replace when ``overwrite``).
            name: A human name stored in the manifest (default: the directory name).
            overwrite: Replace an existing corpus at ``out_dir``.
            on_duplicate: What to do when two documents have the same normalized URL: ``"error"``, ``"first"``
                (keep the first) or ``"last"`` (keep the last).
            source: The file or folder the documents are read from; refused as ``out_dir`` (or inside it), so an
                overwrite can never delete its own input.
            max_document_bytes: The largest document (UTF-8 bytes of its HTML or text) accepted; a bigger one is a
                :class:`CorpusError` (default :data:`MAX_DOCUMENT_BYTES`).

        ``overwrite`` replaces only a directory that is recognizably a kimi-env corpus (our manifest format, only
        our files in it); it never writes through a symbolic link, and the new corpus is built in a temporary
        directory and swapped in, so a failed build leaves the old corpus as it was.
        """
        if on_duplicate not in ("error", "first", "last"):
            raise InvalidArgumentError(f"on_duplicate must be 'error', 'first' or 'last', got {on_duplicate!r}.")
        out = _check_out_dir(Path(out_dir).expanduser(), overwrite, source)
        cap = MAX_DOCUMENT_BYTES if max_document_bytes is None else int(max_document_bytes)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".corpus-build-", dir=out.parent))
        try:
            manifest = _write_corpus(documents, tmp, name or out.name, on_duplicate, cap)
            _swap_in(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(out, manifest)

    @classmethod
    def from_documents(
        cls, documents: Iterable[Document], *, name: str | None = None, cache_dir: str | os.PathLike | None = None
    ) -> Corpus:
        """Build (or reuse) a corpus for a small set of documents under the cache directory, keyed by content hash.

        Two calls with the same documents, in any process, open the same directory.
        """
        docs = [_check_document(d, i) for i, d in enumerate(documents)]
        digest = hashlib.sha256()
        for doc in docs:
            digest.update(_doc_record(doc))
        root = Path(cache_dir).expanduser() if cache_dir else cache_root() / "corpora"
        target = root / digest.hexdigest()[:24]
        if (target / MANIFEST).is_file():
            try:
                return cls.open(target)
            except CorpusError:
                pass
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".corpus-build-", dir=root))
        try:
            manifest = _write_corpus(docs, tmp, name or "in-memory", "error")
            try:
                os.replace(tmp, target)
            except OSError:  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
                return cls.open(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(target.resolve(), manifest)

    # -- reading ------------------------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            uri = (self.path / DATA).as_uri() + "?mode=ro&immutable=1"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._local.conn = conn
        return conn

    @property
    def content_hash(self) -> str:
        """SHA-256 (hex) over all documents; equal corpora have equal hashes."""
        return str(self.manifest["content_hash"])

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.path.name))

    def __len__(self) -> int:
        return int(self.manifest["count"])

    def __contains__(self, url: object) -> bool:
        return isinstance(url, str) and self.id_of(url) is not None

    def __iter__(self) -> Iterator[Document]:
        cur = self._db().execute("SELECT url, title, kind, body, links FROM docs ORDER BY id")
        for row in cur:
            yield _row_document(row)

    def __repr__(self) -> str:
        return f"Corpus({str(self.path)!r}, count={len(self)}, hash={self.content_hash[:12]})"

    def id_of(self, url: str) -> int | None:
        """The row number of ``url`` (normalized), or None."""
        row = self._db().execute("SELECT id FROM docs WHERE key = ?", (normalize_url(url),)).fetchone()
        return None if row is None else int(row[0])

    def get(self, url: str) -> Document | None:
        """The document at ``url`` (fragment, case of scheme/host and trailing slash ignored), or None."""
        if not isinstance(url, str):
            return None
        row = self._db().execute(
            "SELECT url, title, kind, body, links FROM docs WHERE key = ?", (normalize_url(url),)
        ).fetchone()
        return None if row is None else _row_document(row)

    def get_by_id(self, doc_id: int) -> Document:
        """The document in row ``doc_id`` (0-based build order)."""
        row = self._db().execute("SELECT url, title, kind, body, links FROM docs WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            raise IndexError(f"corpus has {len(self)} documents; row {doc_id} does not exist")
        return _row_document(row)

    def summary(self, doc_id: int) -> tuple[str, str, str]:
        """(url, title, readable text) of row ``doc_id``: what search results and snippets need."""
        row = self._db().execute("SELECT url, title, plain, body FROM docs WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            raise IndexError(f"corpus has {len(self)} documents; row {doc_id} does not exist")
        return row[0], row[1], zlib.decompress(row[2] or row[3]).decode("utf-8")

    def summaries(self, doc_ids: Iterable[int]) -> dict[int, tuple[str, str, str]]:
        """:meth:`summary` of several rows at once (one SQLite query per 500 rows), keyed by row."""
        ids = sorted({int(i) for i in doc_ids})
        out: dict[int, tuple[str, str, str]] = {}
        for k in range(0, len(ids), 500):
            chunk = ids[k : k + 500]
            rows = self._db().execute(
                f"SELECT id, url, title, plain, body FROM docs WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            for doc_id, url, title, plain, body in rows:
                out[int(doc_id)] = (url, title, zlib.decompress(plain or body).decode("utf-8"))
        missing = [i for i in ids if i not in out]
        if missing:
            raise IndexError(f"corpus has {len(self)} documents; row {missing[0]} does not exist")
        return out

    def iter_text(self) -> Iterator[tuple[int, str, str]]:
        """(row, title, readable text) of every document in order: the input of the search index."""
        cur = self._db().execute("SELECT id, title, plain, body FROM docs ORDER BY id")
        for doc_id, title, plain, body in cur:
            yield int(doc_id), title, zlib.decompress(plain or body).decode("utf-8")

    def urls(self) -> Iterator[str]:
        """Every document URL, in build order."""
        for (url,) in self._db().execute("SELECT url FROM docs ORDER BY id"):
            yield url

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _row_document(row: tuple) -> Document:
    url, title, kind, body, links = row
    content = zlib.decompress(body).decode("utf-8")
    link_tuple = tuple(json.loads(links)) if links else ()
    if kind == 1:
        return Document(url, title, html=content, links=link_tuple)
    return Document(url, title, text=content, links=link_tuple)


def _capped_body(doc: Document, position: int, max_bytes: int) -> bytes:
    """The document's HTML or text as UTF-8, checked against the page cap before anything renders it."""
    field = "html" if doc.html is not None else "text"
    value = doc.html if doc.html is not None else doc.text or ""
    if len(value) > max_bytes:  # characters > cap means bytes > cap: refuse before encoding a huge string
        size = len(value)
    else:
        body = _utf8(value, field, position, doc)
        if len(body) <= max_bytes:
            return body
        size = len(body)
    raise CorpusError(
        f"Document #{position} ({doc.url[:200]}): its {field} has at least {size:,} bytes, over the page cap of "
        f"{max_bytes:,} bytes. Fix: split or drop the page, or raise the cap (CLI: --max-page-mb; "
        "Corpus.build(max_document_bytes=...))."
    )


def _write_corpus(
    documents: Iterable[Document], out: Path, name: str, on_duplicate: str, max_bytes: int = MAX_DOCUMENT_BYTES
) -> dict:
    """Stream documents into ``out/corpus.sqlite``; write the manifest last. Returns the manifest."""
    conn = sqlite3.connect(out / DATA)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute(
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, url TEXT NOT NULL, "
        "title TEXT NOT NULL, kind INTEGER NOT NULL, body BLOB NOT NULL, plain BLOB NOT NULL, links TEXT)"
    )
    digest = hashlib.sha256()
    count = 0
    try:
        for position, doc in enumerate(documents):
            doc = _check_document(doc, position)
            key = normalize_url(doc.url)
            existing = conn.execute("SELECT id, url FROM docs WHERE key = ?", (key,)).fetchone()
            if existing is not None:
                if on_duplicate == "error":
                    raise CorpusError(
                        f"Document #{position} ({doc.url}) has the same URL as document #{existing[0]} "
                        f"({existing[1]}) after normalization. Fix: de-duplicate the input or pass "
                        "on_duplicate='first' / 'last'."
                    )
                if on_duplicate == "first":
                    continue
            body = _capped_body(doc, position, max_bytes)
            plain, links = _plain_text(doc)
            row = (
                key,
                doc.url,
                doc.title or "",
                1 if doc.html is not None else 0,
                zlib.compress(body, 6),
                zlib.compress(plain.encode("utf-8"), 6) if doc.html is not None else b"",  # text docs: body is the text
                json.dumps(list(links), ensure_ascii=False) if links else None,
            )
            if existing is not None:  # "last"
                conn.execute(
                    "UPDATE docs SET key=?, url=?, title=?, kind=?, body=?, plain=?, links=? WHERE id=?",
                    (*row, existing[0]),
                )
            else:
                conn.execute("INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (count, *row))
                count += 1
        conn.commit()
        # The hash covers the stored documents in row order (duplicates resolved), not the raw input.
        for (url, title, kind, body, links) in conn.execute("SELECT url, title, kind, body, links FROM docs ORDER BY id"):
            digest.update(_doc_record(_row_document((url, title, kind, body, links))))
    finally:
        conn.close()
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "count": count,
        "content_hash": digest.hexdigest(),
        "created_by": f"kimi-env {__version__}",
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
