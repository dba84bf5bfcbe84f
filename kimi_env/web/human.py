"""The offline web for a person in a real browser (``kimi-env serve``): a search front page and pages whose links
stay on the server.

* :func:`search_page`: the front page, a query box and, for ``?q=``, a result list (title, URL, snippet) with
  pagination, :data:`RESULTS_PER_PAGE` results a page.
* :func:`browsable_page`: a corpus page with every link (``<a href>``, ``<img src>``, stylesheets, forms, CSS
  ``url()``) rewritten to this server's ``/web/<scheme>/<host>/<path>`` address, ``srcset``/``ping`` dropped, its
  ``<base>`` removed, and a bar
  on top with the page's real URL and a link to the search page. A link to a page that is not in the corpus still
  stays on the server and answers "not in the offline web".
* :func:`complete_url`: the URL forms the browse tool accepts (``kimiwiki.test/wiki/X`` without a scheme gets
  ``https://``), for ``/page?url=``.

All functions are synchronous and CPU-bound; the server runs them in a worker thread.
"""

from __future__ import annotations

import html as html_lib
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

__all__ = [
    "RESULTS_PER_PAGE",
    "MAX_RESULTS",
    "web_path",
    "complete_url",
    "search_page",
    "browsable_page",
    "not_found_page",
]

RESULTS_PER_PAGE = 10
MAX_RESULTS = 100
_HOSTLIKE = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}(:\d+)?(/|$)", re.I)
_STYLE = (
    "body{font-family:sans-serif;max-width:52em;margin:1em auto;padding:0 1em;line-height:1.45}"
    ".kimi-bar{font-size:.9em;background:#eef;padding:.4em .6em;margin-bottom:1em;border-radius:4px}"
    "ol.results li{margin-bottom:1em}.url{color:#060;font-size:.9em;word-break:break-all}"
    ".snippet{color:#333}nav.pages a{margin-right:1em}"
)


def web_path(url: str) -> str | None:
    """The server path that shows ``url``: ``https://a.test/x?y`` -> ``/web/https/a.test/x?y``; None if not http(s)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    path = f"/web/{parts.scheme.lower()}/{parts.netloc}{parts.path or '/'}"
    if parts.query:
        path += "?" + parts.query
    if parts.fragment:
        path += "#" + parts.fragment
    return path


def complete_url(url: str) -> str:
    """What ``/page?url=`` accepts, as the browse tool does: surrounding spaces dropped, ``host/path`` gets https://."""
    url = url.strip()
    if "://" not in url and _HOSTLIKE.match(url):
        return "https://" + url
    return url


def _page(title: str, body: str) -> str:
    esc = html_lib.escape
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def _search_form(query: str = "") -> str:
    return (
        "<form action='/' method='get' role='search'><input type='search' name='q' size='40' autofocus "
        f"value='{html_lib.escape(query, quote=True)}' placeholder='Search the offline web'> "
        "<button type='submit'>Search</button></form>"
    )


def search_page(corpus_name: str, n_pages: int, query: str = "", page: int = 1, index: Any = None) -> str:
    """The front page: the query box, and for a query the results of page ``page`` (1-based) with links to others.

    ``index`` is a :class:`~kimi_env.web.index.BM25Index` (needed only when ``query`` is not empty).
    """
    esc = html_lib.escape
    query = " ".join(query.split())
    head = (
        f"<h1>{esc(corpus_name)}</h1><p>An offline web of {n_pages:,} page{'s' if n_pages != 1 else ''}. "
        "Programs: <code>/search?q=...</code> (JSON), <code>/page?url=...</code>, <code>/healthz</code>.</p>"
    )
    if not query:
        return _page(corpus_name, head + _search_form())
    max_page = MAX_RESULTS // RESULTS_PER_PAGE
    page = min(max(1, page), max_page)
    hits = index.search([query], min(MAX_RESULTS, page * RESULTS_PER_PAGE + 1))[0]
    shown = hits[(page - 1) * RESULTS_PER_PAGE : page * RESULTS_PER_PAGE]
    first = (page - 1) * RESULTS_PER_PAGE + 1
    parts = [head, _search_form(query)]
    if not shown:
        parts.append(f"<p class='none'>No results for <b>{esc(query)}</b>{' on this page' if page > 1 else ''}. "
                     "Try different or fewer words.</p>")
    else:
        parts.append(f"<p class='count'>Results {first}-{first + len(shown) - 1} for <b>{esc(query)}</b></p>")
        items = []
        for hit in shown:
            href = web_path(hit.url) or "#"
            items.append(
                f"<li><a class='result' href='{esc(href, quote=True)}'>{esc(hit.title or hit.url)}</a>"
                f"<div class='url'>{esc(hit.url)}</div><div class='snippet'>{esc(hit.snippet)}</div></li>"
            )
        parts.append(f"<ol class='results' start='{first}'>" + "".join(items) + "</ol>")
    nav = []
    if page > 1:
        nav.append(f"<a rel='prev' href='/?{esc(urlencode({'q': query, 'p': page - 1}))}'>Previous</a>")
    if len(hits) > page * RESULTS_PER_PAGE and page < max_page:
        nav.append(f"<a rel='next' href='/?{esc(urlencode({'q': query, 'p': page + 1}))}'>Next</a>")
    if nav:
        parts.append(f"<nav class='pages'>Page {page} " + " ".join(nav) + "</nav>")
    return _page(f"{query} - {corpus_name}", "\n".join(parts))


def not_found_page(url: str) -> str:
    esc = html_lib.escape
    return _page(
        "Not in the offline web",
        f"<h1>Not in the offline web</h1><p><span class='url'>{esc(url)}</span> is not a page of this corpus.</p>"
        f"<p><a href='/'>Search the offline web</a></p>" + _search_form(),
    )


def browsable_page(markup: str, url: str) -> str:
    """``markup`` (the page at ``url``) with its links rewritten to stay on this server (see the module docstring)."""
    import lxml.html  # noqa: PLC0415

    try:
        doc = lxml.html.document_fromstring(markup.encode("utf-8", "replace"), parser=_parser())
    except Exception:  # noqa: BLE001 - an unparsable page is shown as text
        doc = lxml.html.document_fromstring(f"<pre>{html_lib.escape(markup)}</pre>")
    try:
        doc.make_links_absolute(url, resolve_base_href=True, handle_failures="discard")
    except ValueError:
        pass
    for base in list(doc.iter("base")):
        base.drop_tree()
    for el in doc.iter():  # addresses rewrite_links does not know: drop them rather than let them leave the server
        if isinstance(el.tag, str):
            for attr in ("srcset", "ping", "imagesrcset"):
                el.attrib.pop(attr, None)

    def to_server(link: str) -> str:
        return web_path(link) or link

    doc.rewrite_links(to_server, resolve_base_href=False)
    body = doc.find("body")
    if body is None:
        body = doc
    bar = lxml.html.fragment_fromstring(
        f"<div class='kimi-bar'>Offline copy of <span class='url'>{html_lib.escape(url)}</span> · "
        "<a href='/'>Search the offline web</a></div>"
    )
    body.insert(0, bar)
    return lxml.html.tostring(doc, encoding="unicode", doctype="<!DOCTYPE html>")


def _parser() -> Any:
    import lxml.html  # noqa: PLC0415

    return lxml.html.HTMLParser(encoding="utf-8", recover=True, no_network=True, huge_tree=True)
