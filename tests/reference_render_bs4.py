"""HTML to readable text for agents: headings, lists, tables and numbered links.

:func:`render_html` turns a page into plain text a language model reads well:

* headings become ``# Title`` / ``## Section`` lines,
* list items become ``- item`` (ordered lists ``1. item``), nested lists are indented by two spaces a level,
* table rows become ``| a | b |`` lines (infoboxes are tables too), a caption becomes ``Table: caption``,
* links become ``[3] anchor text``, numbered in order of first appearance; :attr:`RenderedPage.links` maps the
  number to the absolute URL (``links[2]`` is link 3),
* ``script``, ``style``, ``nav``, ``footer``, forms controls and hidden elements are dropped.

The walk over the tree is iterative, so 50,000 levels of nesting cannot raise ``RecursionError``; any parser
failure falls back to a tag-stripping regex, so a hostile page always yields *some* text.

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

import html as html_lib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urldefrag, urljoin

__all__ = ["RenderedPage", "render_html", "text_to_html", "html_title", "MAX_HTML_CHARS"]

#: HTML beyond this many characters is not parsed (the page is marked truncated).
MAX_HTML_CHARS = 3_000_000

_DROP = frozenset(
    """script style noscript template svg canvas iframe object embed nav footer button select option input
    textarea head title meta link map audio video picture source track dialog""".split()
)
_DROP_ROLES = frozenset({"navigation", "contentinfo", "search"})
_BLOCK = frozenset(
    """p div section article main header aside blockquote figure figcaption dl dt dd address hr form fieldset
    details summary center body html legend noframes""".split()
)
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_WS = re.compile(r"\s+")
_SPACES = re.compile(r"[ \t\u00a0]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class RenderedPage:
    """The readable text of one page.

    Attributes:
        title: ``<title>``, else the first ``<h1>``, else "".
        text: The readable text (no title line; callers print it in their header).
        links: Absolute URLs in numbering order: link ``[n]`` is ``links[n - 1]``.
        truncated: True when the HTML was longer than the parse limit and its tail was ignored.
    """

    title: str
    text: str
    links: tuple[str, ...] = ()
    truncated: bool = False


class _Table:
    """Rows of one table being rendered."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.row: list[str] | None = None
        self.caption = ""

    def lines(self) -> list[str]:
        out = [f"Table: {self.caption}"] if self.caption else []
        out += ["| " + " | ".join(cells) + " |" for cells in self.rows if any(cells)]
        return out


class _Writer:
    """Accumulates output lines; inline text goes to the current line or, inside a table cell, to the cell."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.line: list[str] = []
        self.prefix = ""
        self.cells: list[list[str]] = []  # stack of open table-cell buffers
        self.tables: list[_Table] = []
        self.lists: list[list[Any]] = []  # [ordered, counter]
        self.pre = 0

    # -- inline ------------------------------------------------------------------------------------------------
    def text(self, s: str) -> None:
        if not s:
            return
        if self.cells:
            self.cells[-1].append(_WS.sub(" ", s))
        elif self.pre:
            self.line.append(s)
        else:
            self.line.append(_WS.sub(" ", s))

    # -- block structure ----------------------------------------------------------------------------------------
    def newline(self) -> None:
        if self.cells:
            self.cells[-1].append(" ")
            return
        raw = "".join(self.line)
        self.line = []
        if self.pre:
            text = raw.strip("\n")
        else:
            text = _SPACES.sub(" ", raw).strip()
        if text:
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
        self.block()

    def result(self) -> str:
        self.newline()
        return "\n".join(self.lines).strip("\n")


def _is_hidden(tag: Any) -> bool:
    attrs = tag.attrs or {}
    if "hidden" in attrs or str(attrs.get("aria-hidden", "")).lower() == "true":
        return True
    if str(attrs.get("role", "")).lower() in _DROP_ROLES:
        return True
    style = attrs.get("style")
    return isinstance(style, str) and re.search(r"display\s*:\s*none", style, re.I) is not None


class _Renderer:
    """Iterative tree walk producing text and the link table."""

    def __init__(self, base_url: str, number_links: bool) -> None:
        self.base = base_url
        self.page = urldefrag(base_url)[0] if base_url else ""
        self.number_links = number_links
        self.w = _Writer()
        self.links: list[str] = []
        self.link_ids: dict[str, int] = {}

    def link_number(self, href: str) -> int | None:
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

    def enter(self, tag: Any) -> bool:
        """Handle a start tag; return False to skip the element's children."""
        name = tag.name
        w = self.w
        if name in _DROP or _is_hidden(tag):
            return False
        if name in _HEADINGS:
            w.block()
            if not w.cells:
                w.prefix = "#" * _HEADINGS[name] + " "
        elif name == "br":
            w.newline()
        elif name in ("ul", "ol", "menu"):
            w.newline()
            w.lists.append([name == "ol", 0])
        elif name == "li":
            w.newline()
            if not w.cells:
                depth = max(len(w.lists), 1)
                marker = "- "
                if w.lists and w.lists[-1][0]:
                    w.lists[-1][1] += 1
                    marker = f"{w.lists[-1][1]}. "
                w.prefix = "  " * (depth - 1) + marker
        elif name == "table":
            w.tables.append(_Table())
        elif name == "tr" and w.tables:
            w.tables[-1].row = []
            w.tables[-1].rows.append(w.tables[-1].row)
        elif name in ("td", "th", "caption") and w.tables:
            w.cells.append([])
        elif name == "pre":
            w.block()
            w.pre += 1
        elif name == "a":
            href = tag.attrs.get("href") if tag.attrs else None
            if isinstance(href, str) and href.strip() and not href.lstrip().startswith("#"):
                n = self.link_number(href)
                if n is not None and self.number_links:
                    w.text(f"[{n}] ")
        elif name == "img":
            alt = tag.attrs.get("alt") if tag.attrs else None
            if isinstance(alt, str) and alt.strip() and w.line is not None:
                w.text(f" {alt.strip()} ")
        elif name in _BLOCK or name in ("td", "th", "tr"):
            w.block()
        return True

    def leave(self, tag: Any) -> None:
        name = tag.name
        w = self.w
        if name in _HEADINGS or name in _BLOCK:
            w.block()
        elif name in ("ul", "ol", "menu"):
            w.newline()
            if w.lists:
                w.lists.pop()
            if not w.lists:
                w.block()
        elif name in ("li", "dt", "dd"):
            w.newline()
        elif name in ("td", "th", "caption") and w.tables and w.cells:
            cell = _SPACES.sub(" ", "".join(w.cells.pop()).replace("|", "/")).strip()
            table = w.tables[-1]
            if name == "caption":
                table.caption = cell
            else:
                if table.row is None:
                    table.row = []
                    table.rows.append(table.row)
                table.row.append(cell)
        elif name == "tr" and w.tables:
            w.tables[-1].row = None
        elif name == "table" and w.tables:
            w.emit_lines(w.tables.pop().lines())
        elif name == "pre":
            w.block()
            w.pre = max(0, w.pre - 1)

    def walk(self, root: Any) -> None:
        from bs4 import NavigableString, Tag  # noqa: PLC0415 - keep `import kimi_env.web` light

        plain = NavigableString
        stack: list[tuple[Any, bool]] = [(root, True)]
        while stack:
            node, entering = stack.pop()
            if not entering:
                self.leave(node)
                continue
            if isinstance(node, Tag):
                if node is not root and not self.enter(node):
                    continue
                stack.append((node, False))
                stack.extend((child, True) for child in reversed(node.contents))
            elif type(node) is plain:  # comments, doctypes, CDATA are subclasses: skip them
                self.w.text(str(node))


def _decode(markup: str | bytes) -> str:
    if isinstance(markup, bytes):
        markup = markup.decode("utf-8", errors="replace")
    return _CONTROL.sub(" ", markup)


def html_title(soup: Any) -> str:
    """The page title: ``<title>``, else the first ``<h1>``, else ``og:title``, else ""."""
    for tag in (soup.find("title"), soup.find("h1")):
        if tag is not None:
            text = _WS.sub(" ", tag.get_text(" ")).strip()
            if text:
                return text
    og = soup.find("meta", attrs={"property": "og:title"})
    if og is not None and isinstance(og.get("content"), str):
        return og["content"].strip()
    return ""


def render_html(
    markup: str | bytes, base_url: str = "", *, number_links: bool = True, max_html_chars: int = MAX_HTML_CHARS
) -> RenderedPage:
    """Render HTML as readable text with numbered links (see the module docstring for the format).

    Args:
        markup: The page; bytes are decoded as UTF-8 with replacement (decode with the right charset first).
        base_url: The page's absolute URL, against which relative links (and ``<base href>``) resolve.
        number_links: Insert ``[n] `` before each link's text (False gives plain text for indexing).
        max_html_chars: Parse at most this many characters.

    Never raises on bad markup: malformed, binary or absurdly nested input gives best-effort text.
    """
    text = _decode(markup)
    truncated = len(text) > max_html_chars
    if truncated:
        text = text[:max_html_chars]
    try:
        return _render_soup(text, base_url, number_links, truncated)
    except (RecursionError, MemoryError, ValueError, TypeError, AttributeError, AssertionError):
        return _render_fallback(text, base_url, truncated)


def _render_soup(text: str, base_url: str, number_links: bool, truncated: bool) -> RenderedPage:
    from bs4 import BeautifulSoup  # noqa: PLC0415

    soup = BeautifulSoup(text, "lxml")
    base_tag = soup.find("base", href=True)
    if base_tag is not None and isinstance(base_tag.get("href"), str):
        try:
            base_url = urljoin(base_url, base_tag["href"].strip())
        except ValueError:
            pass
    renderer = _Renderer(base_url, number_links)
    renderer.walk(soup)
    return RenderedPage(html_title(soup), renderer.w.result(), tuple(renderer.links), truncated)


_FALLBACK_DROP = re.compile(r"<(script|style|noscript|template)\b.*?</\1\s*>", re.I | re.S)
_FALLBACK_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.I | re.S)
_FALLBACK_TAG = re.compile(r"<[^>]{0,2000}>")


def _render_fallback(text: str, base_url: str, truncated: bool) -> RenderedPage:
    """Strip tags with regexes: the last resort when the parser cannot cope."""
    m = _FALLBACK_TITLE.search(text)
    title = _WS.sub(" ", html_lib.unescape(m.group(1))).strip() if m else ""
    body = _FALLBACK_TAG.sub(" ", _FALLBACK_DROP.sub(" ", text))
    body = _WS.sub(" ", html_lib.unescape(body)).strip()
    return RenderedPage(title, body, (), truncated)


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
