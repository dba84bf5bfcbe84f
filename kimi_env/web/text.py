"""HTML to readable text for agents: headings, lists, tables and numbered links.

:func:`render_html` turns a page into plain text a language model reads well:

* headings become ``# Title`` / ``## Section`` lines,
* list items become ``- item`` (ordered lists ``1. item``), nested lists are indented by two spaces a level,
* table rows become ``| a | b |`` lines (infoboxes are tables too), a caption becomes ``Table: caption``,
* links become ``[3] anchor text``, numbered in order of first appearance; :attr:`RenderedPage.links` maps the
  number to the absolute URL (``links[2]`` is link 3),
* ``script``, ``style``, ``nav``, ``footer``, forms controls and hidden elements are dropped.

How: libxml2's HTML parser (through lxml) streams parse events into a small state machine; no tree is built. The
cost is linear in the size of the input and the output is bounded:

* list indentation stops growing after :data:`MAX_LIST_INDENT` levels and tables nested deeper than
  :data:`MAX_TABLE_DEPTH` are flattened into their enclosing cell, so no nesting makes a character be copied more
  than a few times (``'<ul><li>x' * 22000`` renders to ~0.4 MB, not 484M characters);
* past :data:`MAX_PARSE_DEPTH` open elements the rest of the page is read with its tags stripped (libxml2 is
  quadratic on deep stacks with unmatched end tags);
* HTML beyond ``max_html_chars`` is not parsed and text beyond ``max_text_chars`` is not produced (the page is
  marked truncated);
* :func:`arender_html` feeds the parser in slices and yields to the event loop between them, so a big page never
  stalls the loop, a cancelled call stops the work at the next slice, and a budget of CPU seconds (the work of
  this page only, not the time other coroutines took) can cut the page short.

Any parser failure falls back to a tag-stripping regex, so a hostile page always yields *some* text.

>>> page = render_html('<title>T</title><h2>Intro</h2><p>See <a href="/wiki/B">B page</a>.</p>',
...                    "https://kimiwiki.test/wiki/A")
>>> print(page.text)
## Intro
<BLANKLINE>
See [1] B page.
>>> page.links
('https://kimiwiki.test/wiki/B',)
"""

from __future__ import annotations

import asyncio
import html as html_lib
import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

__all__ = [
    "RenderedPage",
    "render_html",
    "declared_url",
    "arender_html",
    "text_to_html",
    "MAX_HTML_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_LIST_INDENT",
    "MAX_TABLE_DEPTH",
]

#: HTML beyond this many characters is not parsed (the page is marked truncated).
MAX_HTML_CHARS = 3_000_000
#: Readable text stops after this many characters (the page is marked truncated).
MAX_TEXT_CHARS = 2_000_000
#: Nested lists deeper than this are indented like this level.
MAX_LIST_INDENT = 8
#: Tables nested deeper than this are flattened into the enclosing cell (their cells become plain text).
MAX_TABLE_DEPTH = 3
#: Open elements the parser may hold; past this depth the rest of the page is read as plain text (tags stripped).
#: libxml2 scans its whole element stack for an end tag it cannot match, so unbounded depth would make
#: ``'<div>' * n + '</span>' * n`` quadratic.
MAX_PARSE_DEPTH = 512
#: Characters of HTML fed to the parser at a time (the depth check runs between slices, and
#: :func:`arender_html` yields to the event loop between them).
SLICE_CHARS = 8192

_DROP = frozenset(
    """script style noscript template svg canvas iframe object embed nav footer button select option input
    textarea head title meta link map audio video picture source track dialog""".split()
)
_DROP_ROLES = frozenset({"navigation", "contentinfo", "search"})
_BLOCK = frozenset(
    """p div section article main header aside blockquote figure figcaption dl dt dd address hr form fieldset
    details summary center body html legend noframes""".split()
)
_LISTS = frozenset({"ul", "ol", "menu"})
_CELLS = frozenset({"td", "th", "caption"})
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_WS = re.compile(r"\s+")
_SPACES = re.compile(r"[ \t\u00a0]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DISPLAY_NONE = re.compile(r"display\s*:\s*none", re.I)
_NOT_PLAIN = re.compile(r"[:?;\\\t\r\n]|(^|/)\.\.?(/|$)")  # hrefs the fast join leaves to urljoin
_UNSAFE_BASE = re.compile(r"[?;\\\t\r\n#]|/\.\.?(/|$)")


@dataclass(frozen=True)
class RenderedPage:
    """The readable text of one page.

    Attributes:
        title: ``<title>``, else the first ``<h1>``, else ``og:title``, else "".
        text: The readable text (no title line; callers print it in their header).
        links: Absolute URLs in numbering order: link ``[n]`` is ``links[n - 1]``.
        truncated: True when the page was cut: HTML longer than the parse limit, text longer than the text limit,
            or (:func:`arender_html`) the CPU budget ran out.
        declared_url: The URL the page declares for itself (``<link rel=canonical>``, else ``<base href>``, else
            ``og:url``) when it is an absolute http(s) URL, else None.
    """

    title: str
    text: str
    links: tuple[str, ...] = ()
    truncated: bool = False
    declared_url: str | None = None


class _Table:
    """Rows of one table being rendered."""

    __slots__ = ("rows", "row", "caption")

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.row: list[str] | None = None
        self.caption = ""

    def lines(self) -> list[str]:
        out = [f"Table: {self.caption}"] if self.caption else []
        out += ["| " + " | ".join(cells) + " |" for cells in self.rows if any(cells)]
        return out


class _Writer:
    """Accumulates output lines; inline text goes to the current line or, inside a table cell, to the cell.

    ``budget`` counts down the characters still allowed; when it goes negative, ``full`` is set and text is dropped.
    """

    def __init__(self, max_chars: int) -> None:
        self.lines: list[str] = []
        self.line: list[str] = []
        self.prefix = ""
        self.cells: list[list[str]] = []  # stack of open table-cell buffers
        self.tables: list[_Table] = []
        self.flat_tables = 0  # open tables nested too deep: rendered as plain text inside the enclosing cell
        self.lists: list[list[Any]] = []  # [ordered, counter]
        self.pre = 0
        self.budget = max_chars
        self.full = False

    # -- inline ------------------------------------------------------------------------------------------------
    def text(self, s: str) -> None:
        if not s or self.full:
            return
        if (not self.pre or self.cells) and not s.isalnum():
            s = _WS.sub(" ", s)
        self.budget -= len(s)
        if self.budget < 0:
            self.full = True
            return
        (self.cells[-1] if self.cells else self.line).append(s)

    # -- block structure ----------------------------------------------------------------------------------------
    def newline(self) -> None:
        if self.cells:
            self.cells[-1].append(" ")
            return
        if not self.line:
            self.prefix = ""
            return
        raw = "".join(self.line)
        self.line = []
        if self.pre:
            text = raw.strip("\n")
        else:
            text = _SPACES.sub(" ", raw).strip()
        if text:
            self.budget -= len(self.prefix) + 1
            self.lines.append(self.prefix + text)
        self.prefix = ""

    def block(self) -> None:
        self.newline()
        if not self.cells and self.lines and self.lines[-1] != "":
            self.lines.append("")

    def emit_lines(self, lines: list[str]) -> None:
        if self.cells:
            self.cells[-1].append(" ; ".join(lines))
            return
        self.block()
        self.lines.extend(lines)
        self.budget -= sum(len(x) + 1 for x in lines)
        self.block()

    def result(self) -> str:
        self.newline()
        return "\n".join(self.lines).strip("\n")


def _is_hidden(attrib: Any) -> bool:
    if "hidden" in attrib or str(attrib.get("aria-hidden", "")).lower() == "true":
        return True
    role = attrib.get("role")
    if role is not None and str(role).lower() in _DROP_ROLES:
        return True
    style = attrib.get("style")
    return isinstance(style, str) and _DISPLAY_NONE.search(style) is not None


class _Sink:
    """lxml parser target: turns start/end/data events into text, links and the page's title and declared URL."""

    def __init__(self, base_url: str, number_links: bool, max_text_chars: int) -> None:
        self.base = base_url
        self.page = urldefrag(base_url)[0] if base_url else ""
        self.number_links = number_links
        self.w = _Writer(max_text_chars)
        self.links: list[str] = []
        self.link_ids: dict[str, int] = {}
        self.skip = 0  # depth inside a dropped element
        self.depth = 0  # open elements
        self.title: list[str] | None = None  # text of the first <title>
        self.in_title = False
        self.h1: list[str] | None = None  # strings of the first <h1>
        self.h1_depth = 0
        self.og_title: str | None = None
        self.declared: dict[str, str] = {}  # canonical / base / og:url
        self.base_set = False
        self._dir_base: str | None = None  # the base that _dir was computed for
        self._dir: str | None = None

    # -- head data: title, <base>, canonical, og: --------------------------------------------------------------
    def _head_tag(self, tag: str, attrib: Any) -> None:
        if tag == "title":
            if self.title is None:
                self.title = []
                self.in_title = True
        elif tag == "base":
            href = attrib.get("href")
            if isinstance(href, str) and href.strip():
                self.declared.setdefault("base", href.strip())
                if not self.base_set:
                    self.base_set = True
                    try:
                        self.base = urljoin(self.base, href.strip())
                    except ValueError:
                        pass
        elif tag == "link":
            rel = str(attrib.get("rel", "")).lower().split()
            href = attrib.get("href")
            if "canonical" in rel and isinstance(href, str):
                self.declared.setdefault("canonical", href.strip())
        elif tag == "meta":
            prop = str(attrib.get("property", "")).lower()
            content = attrib.get("content")
            if isinstance(content, str):
                if prop == "og:title" and self.og_title is None:
                    self.og_title = content.strip()
                elif prop == "og:url":
                    self.declared.setdefault("og:url", content.strip())

    def link_number(self, href: str) -> int | None:
        url = self._fast_join(href)
        if url is None:
            try:
                url = urldefrag(urljoin(self.base, href.strip()))[0]
            except ValueError:
                return None
        if not url.startswith(("http://", "https://")) or url == self.page:
            return None
        n = self.link_ids.get(url)
        if n is None:
            self.links.append(url)
            n = self.link_ids[url] = len(self.links)
        return n

    def _fast_join(self, href: str) -> str | None:
        """``urldefrag(urljoin(base, href))[0]`` for the common plain relative path (``os.html#x``); None: use
        the standard library (anything with a scheme, query, dot segment, ...)."""
        if self._dir_base != self.base:
            self._dir_base = self.base
            self._dir = None
            if self.base.startswith(("http://", "https://")) and not _UNSAFE_BASE.search(self.base):
                scheme, netloc, path, _q, _f = urlsplit(self.base)
                if netloc:
                    self._dir = f"{scheme}://{netloc}{path[: path.rfind('/') + 1] or '/'}"
        if self._dir is None:
            return None
        path = href.strip().split("#", 1)[0]
        if not path or _NOT_PLAIN.search(path) or path.startswith("/") or path == "." or path == "..":
            return None
        return self._dir + path

    # -- parser target interface -------------------------------------------------------------------------------
    # libxml2 reports every element with a start and an end event (implied ones too), so ``depth`` and ``skip``
    # stay balanced. The handlers below are looked up by tag name; tags without one (span, b, code, ...) cost a
    # dictionary lookup.
    def start(self, tag: str, attrib: Any, nsmap: Any = None) -> None:
        self.depth += 1
        if tag in _HEAD_TAGS:
            self._head_tag(tag, attrib)
        if self.h1_depth:
            self.h1_depth += 1
        elif tag == "h1" and self.h1 is None:
            self.h1 = []
            self.h1_depth = 1
        if self.skip:
            self.skip += 1
            return
        if tag in _DROP or (attrib and not _HIDE_KEYS.isdisjoint(attrib) and _is_hidden(attrib)):
            self.skip = 1
            return
        handler = _START.get(tag)
        if handler is not None:
            handler(self, tag, attrib)

    def _start_heading(self, tag: str, attrib: Any) -> None:
        w = self.w
        w.block()
        if not w.cells:
            w.prefix = "#" * _HEADINGS[tag] + " "

    def _start_br(self, tag: str, attrib: Any) -> None:
        self.w.newline()

    def _start_list(self, tag: str, attrib: Any) -> None:
        self.w.newline()
        self.w.lists.append([tag == "ol", 0])

    def _start_li(self, tag: str, attrib: Any) -> None:
        w = self.w
        w.newline()
        if not w.cells:
            depth = min(max(len(w.lists), 1), MAX_LIST_INDENT)
            marker = "- "
            if w.lists and w.lists[-1][0]:
                w.lists[-1][1] += 1
                marker = f"{w.lists[-1][1]}. "
            w.prefix = "  " * (depth - 1) + marker

    def _start_table(self, tag: str, attrib: Any) -> None:
        w = self.w
        if w.flat_tables or len(w.tables) >= MAX_TABLE_DEPTH:
            w.flat_tables += 1
            w.text(" ")
        else:
            w.tables.append(_Table())

    def _start_tr(self, tag: str, attrib: Any) -> None:
        w = self.w
        if w.flat_tables:
            w.text(" ")
        elif w.tables:
            w.tables[-1].row = []
            w.tables[-1].rows.append(w.tables[-1].row)
        else:
            w.block()

    def _start_cell(self, tag: str, attrib: Any) -> None:
        w = self.w
        if w.flat_tables:
            w.text(" ")
        elif w.tables:
            w.cells.append([])
        elif tag != "caption":
            w.block()

    def _start_pre(self, tag: str, attrib: Any) -> None:
        self.w.block()
        self.w.pre += 1

    def _start_a(self, tag: str, attrib: Any) -> None:
        href = attrib.get("href")
        if isinstance(href, str) and href.strip() and not href.lstrip().startswith("#"):
            n = self.link_number(href)
            if n is not None and self.number_links:
                self.w.text(f"[{n}] ")

    def _start_img(self, tag: str, attrib: Any) -> None:
        alt = attrib.get("alt")
        if isinstance(alt, str) and alt.strip():
            self.w.text(f" {alt.strip()} ")

    def _start_block(self, tag: str, attrib: Any) -> None:
        self.w.block()

    def end(self, tag: str) -> None:
        self.depth -= 1
        if tag == "title":
            self.in_title = False
        if self.h1_depth:
            self.h1_depth -= 1
        if self.skip:
            self.skip -= 1
            return
        handler = _END.get(tag)
        if handler is not None:
            handler(self, tag)

    def _end_block(self, tag: str) -> None:
        self.w.block()

    def _end_list(self, tag: str) -> None:
        w = self.w
        w.newline()
        if w.lists:
            w.lists.pop()
        if not w.lists:
            w.block()

    def _end_item(self, tag: str) -> None:
        self.w.newline()

    def _end_cell(self, tag: str) -> None:
        w = self.w
        if w.flat_tables:
            w.text(" ")
        elif w.tables and w.cells:
            cell = _SPACES.sub(" ", "".join(w.cells.pop()).replace("|", "/")).strip()
            table = w.tables[-1]
            if tag == "caption":
                table.caption = cell
            else:
                if table.row is None:
                    table.row = []
                    table.rows.append(table.row)
                table.row.append(cell)

    def _end_tr(self, tag: str) -> None:
        w = self.w
        if w.flat_tables:
            w.text(" ")
        elif w.tables:
            w.tables[-1].row = None

    def _end_table(self, tag: str) -> None:
        w = self.w
        if w.flat_tables:
            w.text(" ")
            w.flat_tables -= 1
        elif w.tables:
            w.emit_lines(w.tables.pop().lines())

    def _end_pre(self, tag: str) -> None:
        self.w.block()
        self.w.pre = max(0, self.w.pre - 1)

    def data(self, s: str) -> None:
        if self.in_title and self.title is not None:
            self.title.append(s)
        if self.h1_depth and self.h1 is not None:
            self.h1.append(s)
        if not self.skip:
            self.w.text(s)

    def comment(self, text: str) -> None:  # comments are not text
        pass

    def doctype(self, *args: Any) -> None:
        pass

    def pi(self, *args: Any) -> None:
        pass

    def close(self) -> None:
        return None

    # -- results ---------------------------------------------------------------------------------------------------
    def page_title(self) -> str:
        for parts, sep in ((self.title, ""), (self.h1, " ")):
            if parts:
                text = _WS.sub(" ", sep.join(parts)).strip()
                if text:
                    return text
        return self.og_title or ""

    def declared_url(self) -> str | None:
        for key in ("canonical", "base", "og:url"):
            value = self.declared.get(key)
            if value and value.startswith(("http://", "https://")):
                return value
        return None


_HEAD_TAGS = frozenset({"title", "base", "link", "meta"})
_HIDE_KEYS = frozenset({"hidden", "aria-hidden", "role", "style"})
_START: dict[str, Any] = {
    **{h: _Sink._start_heading for h in _HEADINGS},
    "br": _Sink._start_br,
    **{t: _Sink._start_list for t in _LISTS},
    "li": _Sink._start_li,
    "table": _Sink._start_table,
    "tr": _Sink._start_tr,
    **{t: _Sink._start_cell for t in _CELLS},
    "pre": _Sink._start_pre,
    "a": _Sink._start_a,
    "img": _Sink._start_img,
    **{t: _Sink._start_block for t in _BLOCK},
}
_END: dict[str, Any] = {
    **{t: _Sink._end_block for t in (*_HEADINGS, *_BLOCK)},
    **{t: _Sink._end_list for t in _LISTS},
    "li": _Sink._end_item,
    **{t: _Sink._end_cell for t in _CELLS},
    "tr": _Sink._end_tr,
    "table": _Sink._end_table,
    "pre": _Sink._end_pre,
}


def _decode(markup: str | bytes) -> str:
    if isinstance(markup, bytes):
        markup = markup.decode("utf-8", errors="replace")
    return _CONTROL.sub(" ", markup)


class _RenderJob:
    """One page being rendered: fed to the parser in slices (:meth:`step`), finished by :meth:`finish`."""

    def __init__(
        self, markup: str | bytes, base_url: str, number_links: bool, max_html_chars: int, max_text_chars: int
    ) -> None:
        from lxml import etree  # noqa: PLC0415 - keep `import kimi_env.web` light

        text = _decode(markup)
        self.truncated = len(text) > max_html_chars
        self.text = text[:max_html_chars] if self.truncated else text
        self.base_url = base_url
        self.sink = _Sink(base_url, number_links, max_text_chars)
        self.parser = etree.HTMLParser(
            target=self.sink, encoding="utf-8", recover=True, no_network=True, huge_tree=True, remove_pis=True
        )
        self.pos = 0
        self.failed = False
        self.flat_from: int | None = None  # where the too-deep rest of the page starts
        self.cut = False  # stopped early (CPU budget)

    @property
    def done(self) -> bool:
        return self.failed or self.flat_from is not None or self.pos >= len(self.text) or self.sink.w.full

    def step(self, chars: int = SLICE_CHARS) -> None:
        piece = self.text[self.pos : self.pos + chars]
        self.pos += len(piece)
        try:
            self.parser.feed(piece.encode("utf-8", "replace"))
        except (RecursionError, MemoryError, ValueError, TypeError, AttributeError, AssertionError, LookupError):
            self.failed = True
        except Exception as exc:  # noqa: BLE001 - lxml's own errors (XMLSyntaxError, ParserError, ...)
            if type(exc).__module__.startswith("lxml"):
                self.failed = True
            else:
                raise
        if self.sink.depth > MAX_PARSE_DEPTH:
            self.flat_from = self.pos

    def finish(self) -> RenderedPage:
        sink = self.sink
        if not self.failed:
            try:
                self.parser.close()
            except Exception as exc:  # noqa: BLE001 - an empty document is an lxml error; the sink has what it got
                if not type(exc).__module__.startswith("lxml") and not isinstance(exc, (ValueError, TypeError)):
                    raise
        if self.failed:
            return _render_fallback(self.text, self.base_url, self.truncated)
        if self.flat_from is not None:  # nested too deep for the parser: the rest is read as plain text
            rest = self.text[self.flat_from :]
            gt, lt = rest.find(">"), rest.find("<")
            if gt >= 0 and (lt < 0 or gt < lt):  # the slice ended inside a tag: drop the tag's tail
                rest = rest[gt + 1 :]
            sink.w.block()
            sink.w.text(_strip_tags(rest))
        done = self.flat_from is not None or self.pos >= len(self.text)
        truncated = self.truncated or sink.w.full or self.cut or not done
        return RenderedPage(sink.page_title(), sink.w.result(), tuple(sink.links), truncated, sink.declared_url())


#: The last few renderings (an import renders each page for its links, then the corpus renders it again for its
#: text; the same string object makes the second lookup O(1)).
_recent: dict[tuple, RenderedPage] = {}
_recent_lock = threading.Lock()
_RECENT_MAX = 8


def remember(key: tuple, page: RenderedPage) -> None:
    """Put a rendering into the small cache of recent ones (``key`` as in :func:`render_html`)."""
    with _recent_lock:
        _recent.pop(key, None)
        _recent[key] = page
        while len(_recent) > _RECENT_MAX:
            _recent.pop(next(iter(_recent)))


def _recalled(key: tuple) -> RenderedPage | None:
    with _recent_lock:
        page = _recent.pop(key, None)
        if page is not None:
            _recent[key] = page  # most recent last
        return page


def render_html(
    markup: str | bytes,
    base_url: str = "",
    *,
    number_links: bool = True,
    max_html_chars: int = MAX_HTML_CHARS,
    max_text_chars: int = MAX_TEXT_CHARS,
    cpu_budget: float | None = None,
) -> RenderedPage:
    """Render HTML as readable text with numbered links (see the module docstring for the format).

    Args:
        markup: The page; bytes are decoded as UTF-8 with replacement (decode with the right charset first).
        base_url: The page's absolute URL, against which relative links (and ``<base href>``) resolve.
        number_links: Insert ``[n] `` before each link's text (False gives plain text for indexing).
        max_html_chars: Parse at most this many characters.
        max_text_chars: Produce at most about this many characters of text.
        cpu_budget: Seconds of CPU the rendering may use (:func:`time.thread_time`); when they run out, the text
            rendered so far is returned with ``truncated=True``. None: no budget.

    Never raises on bad markup: malformed, binary or absurdly nested input gives best-effort text, in time linear
    in ``len(markup)``.
    """
    key = (markup, base_url, number_links, max_html_chars, max_text_chars) if cpu_budget is None else None
    if key is not None:
        cached = _recalled(key)
        if cached is not None:
            return cached
    job = _RenderJob(markup, base_url, number_links, max_html_chars, max_text_chars)
    used = 0.0
    while not job.done:
        start = time.thread_time()
        job.step()
        used += time.thread_time() - start
        if cpu_budget is not None and used > cpu_budget and not job.done:
            job.cut = True
            break
    page = job.finish()
    if key is not None:
        remember(key, page)
    return page


def declared_url(markup: str) -> str | None:
    """The URL a page declares for itself in its head (``<link rel=canonical>``, else ``<base href>``, else
    ``og:url``), when absolute http(s); only the head (at most the first 200,000 characters) is parsed.

    >>> declared_url('<head><link rel="canonical" href="https://a.test/x"></head><p>body')
    'https://a.test/x'
    """
    head = markup[:200_000]
    end = head.lower().find("</head")
    if end >= 0:
        head = head[:end]
    job = _RenderJob(head, "", False, len(head), 10_000)
    while not job.done:
        job.step()
    return job.finish().declared_url


async def arender_html(
    markup: str | bytes,
    base_url: str = "",
    *,
    number_links: bool = True,
    max_html_chars: int = MAX_HTML_CHARS,
    max_text_chars: int = MAX_TEXT_CHARS,
    cpu_budget: float | None = None,
) -> RenderedPage:
    """:func:`render_html` for an event loop: renders in slices and yields to the loop after each one.

    Other coroutines run between slices (a slice is :data:`SLICE_CHARS` characters of HTML, a few milliseconds of
    work), and cancelling the awaiting task stops the rendering at the next slice. ``cpu_budget`` counts only this
    page's own slices (:func:`time.thread_time`), never the time other coroutines took in between, so it does not
    depend on how busy the loop is. Other arguments as in :func:`render_html`.
    """
    job = _RenderJob(markup, base_url, number_links, max_html_chars, max_text_chars)
    used = 0.0
    while not job.done:
        start = time.thread_time()
        job.step()
        used += time.thread_time() - start
        if cpu_budget is not None and used > cpu_budget and not job.done:
            job.cut = True
            break
        await asyncio.sleep(0)
    return job.finish()


_FALLBACK_DROP = re.compile(r"<(script|style|noscript|template)\b.*?</\1\s*>", re.I | re.S)
_FALLBACK_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.I | re.S)
_FALLBACK_TAG = re.compile(r"<[^>]{0,2000}>")


def _strip_tags(text: str) -> str:
    body = _FALLBACK_TAG.sub(" ", _FALLBACK_DROP.sub(" ", text))
    return _WS.sub(" ", html_lib.unescape(body)).strip()


def _render_fallback(text: str, base_url: str, truncated: bool) -> RenderedPage:
    """Strip tags with regexes: the last resort when the parser cannot cope."""
    m = _FALLBACK_TITLE.search(text)
    title = _WS.sub(" ", html_lib.unescape(m.group(1))).strip() if m else ""
    body = _strip_tags(text)
    return RenderedPage(title, body[:MAX_TEXT_CHARS], (), truncated or len(body) > MAX_TEXT_CHARS)


def text_to_html(title: str, text: str) -> str:
    """Wrap plain text as a minimal HTML page (paragraphs split on blank lines).

    >>> text_to_html("A & B", "one\\n\\ntwo")
    '<!DOCTYPE html>\\n<html><head><meta charset="utf-8"><title>A &amp; B</title></head><body>\\n<h1>A &amp; B</h1>\\n<p>one</p>\\n<p>two</p>\\n</body></html>\\n'
    """
    esc = html_lib.escape
    paras = [p.strip() for p in re.split(r"\n\s*\n", text or "") if p.strip()]
    body = "\n".join("<p>" + esc(p).replace("\n", "<br>\n") + "</p>" for p in paras)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{esc(title)}</title></head><body>\n'
        f"<h1>{esc(title)}</h1>\n{body}\n</body></html>\n"
    )
