"""The ``browse`` tool: a text web browser over the offline web (and, optionally, the guarded live web).

Pages are fetched over real HTTP (aiohttp) from the loopback corpus server and rendered by
:func:`kimi_env.web.text.render_html`. Output of one call::

    Paris - KimiWiki
    URL: https://kimiwiki.test/wiki/Paris
    Page 1 of 3

    # Paris

    Table: Paris
    | Country | [1] France |
    | Population | 2,102,650 |

    Paris is the capital of [1] France ...

    [Page 1 of 3. Next: page=2. Follow a link: link=N.]

Links are numbered ``[n] anchor text`` in order of first appearance over the whole page (not per page), so
``browse(link=3)`` follows link 3 of the current page from any of its pages. ``find="text"`` lists matching passages
with context and the page they are on. A session (cleared by :meth:`BrowseTool.reset`) keeps the current page,
the history and the set of URLs visited; each call reports the URLs it opened in ``meta["urls"]``.

Offline by default: only corpus URLs open. ``live_web=True`` also fetches real URLs, with guards: public addresses
only (literal or resolved, checked on every redirect hop), a redirect cap, a total timeout, a cap on body bytes,
text content types only, and tolerant charset decoding.
"""

from __future__ import annotations

import asyncio
import bisect
import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from aiohttp.abc import AbstractResolver

from ..errors import InvalidArgumentError
from ..web.corpus import Corpus, normalize_url
from ..web.importers import decode_html_bytes
from ..web.server import ServerHandle, aacquire_server, arelease
from ..web.text import RenderedPage, arender_html
from .base import Tool, ToolResult, ToolStatus

__all__ = ["BrowseTool", "FetchError", "paginate"]

_TEXT_TYPES = frozenset({"text/html", "text/plain", "application/xhtml+xml"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = "kimi-env-browse/0.1 (+offline research agent)"
_HOSTLIKE = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}(:\d+)?(/|$)", re.I)


class FetchError(Exception):
    """A page could not be opened; the message is the observation the agent sees."""


@dataclass
class _Page:
    url: str
    title: str
    pages: list[str]
    links: tuple[str, ...]
    note: str = ""


@dataclass
class _Fetched:
    """A live page's body, fetched and decoded, not yet rendered."""

    url: str
    mime: str
    markup: str
    cut: bool


@dataclass
class _Session:
    current: _Page | None = None
    history: list[str] = field(default_factory=list)
    visited: dict[str, None] = field(default_factory=dict)  # ordered set
    cache: dict[str, _Page] = field(default_factory=dict)


def paginate(text: str, size: int) -> list[str]:
    """Split ``text`` into chunks of at most ``size`` characters, at line breaks (or spaces) where possible.

    >>> paginate("aaa\\nbbb\\nccc", 8)
    ['aaa\\nbbb', 'ccc']
    >>> paginate("", 10)
    ['']
    """
    chunks: list[str] = []
    current: list[str] = []
    length = 0
    for line in text.split("\n"):
        while len(line) > size:  # a single huge line: cut at a space
            cut = line.rfind(" ", 0, size)
            cut = cut if cut > size // 2 else size
            if current:
                chunks.append("\n".join(current))
                current, length = [], 0
            chunks.append(line[:cut])
            line = line[cut:].lstrip(" ")
        if current and length + 1 + len(line) > size:
            chunks.append("\n".join(current))
            current, length = [], 0
        current.append(line)
        length += len(line) + (1 if length else 0)
    if current or not chunks:
        chunks.append("\n".join(current))
    return [c.strip("\n") for c in chunks if c.strip()] or [""]


_WS_TABLE = {c: " " for c in range(0x3001) if chr(c).isspace()}  # every whitespace character (all below U+3001)


def _find_spans(text: str, words: list[str], limit: int) -> list[tuple[int, int]]:
    """Spans of ``text`` where ``words`` occur in order, separated by any whitespace, case-insensitively.

    Linear in ``len(text)`` whatever the words: a regex ``w1\\s+w2\\s+...`` backtracks once per word at every
    start position (150 words on a 2.8M-character page of repeated words took seconds, stalling the event loop).
    Here whitespace runs are collapsed to one space (vectorized), the phrase is found with ``str.find``, and each
    span is mapped back to ``text`` through the kept positions.
    """
    import numpy as np  # noqa: PLC0415 - a core dependency; not imported with kimi_env

    # U+0130 is the one character whose lower() has two characters; mapping it to "i" keeps lengths equal.
    if not text:
        return []
    low = text.translate(_WS_TABLE).replace("\u0130", "i").lower()
    codes = np.frombuffer(low.encode("utf-32-le"), dtype=np.uint32)
    space = codes == 32
    keep = ~space
    keep[0] = True
    keep[1:] |= ~space[:-1]  # drop a space that follows a space
    positions = np.flatnonzero(keep)  # positions[i]: where character i of the collapsed text sits in ``text``
    norm = codes[keep].tobytes().decode("utf-32-le")
    needle = " ".join(words).replace("\u0130", "i").lower()
    spans: list[tuple[int, int]] = []
    pos = norm.find(needle)
    while pos >= 0 and len(spans) < limit:
        end = pos + len(needle)
        spans.append((int(positions[pos]), int(positions[end - 1]) + 1))
        pos = norm.find(needle, end)
    return spans


_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d; is_global says True for ::127.0.0.1
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated site-local; is_global says True
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))  # IPv4 in the low 32 bits


def _non_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _IPV4_COMPATIBLE or ip in _SITE_LOCAL or ip.teredo is not None:
            return True
        embedded = ip.ipv4_mapped or ip.sixtofour  # ::ffff:a.b.c.d and 6to4 2002:AABB:CCDD::
        if embedded is None and any(ip in net for net in _NAT64):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and _non_public(embedded):
            return True
    return not ip.is_global or ip.is_multicast


def _public_socket(addr_info: tuple) -> socket.socket:
    """aiohttp ``socket_factory``: refuse to open a socket to a non-public address (the address actually dialled).

    This is the last line of the SSRF guard: whatever spelling of a host got past the URL checks and whatever the
    resolver returned, aiohttp asks this factory for a socket to one concrete address before it connects.
    """
    family, type_, proto, _, sockaddr = addr_info
    try:
        ip = ipaddress.ip_address(sockaddr[0])
    except (ValueError, IndexError, TypeError):
        raise OSError(f"refused: the connection address {sockaddr!r} is not an IP address") from None
    if _non_public(ip):
        raise OSError(f"refused: {ip} is not a public address")
    return socket.socket(family, type_, proto)


def _client_host(url: str) -> str | None:
    """The host name exactly as aiohttp will use it: yarl's IDNA/UTS-46 encoding of the URL's host.

    ``http://１２７.０.０.１/`` and ``http://127。0。0。1/`` both come out as ``127.0.0.1`` here, which is the address
    aiohttp connects to (without calling the resolver, as it is an IP literal).
    """
    from yarl import URL  # noqa: PLC0415 - aiohttp's own URL type

    try:
        host = URL(url).raw_host
    except (ValueError, UnicodeError):
        return None
    return host or None


class _PublicOnlyResolver(AbstractResolver):
    """aiohttp resolver that refuses host names resolving to any non-public address (SSRF guard)."""

    def __init__(self) -> None:
        from aiohttp.resolver import ThreadedResolver  # noqa: PLC0415

        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        infos = await self._inner.resolve(host, port, family)
        for info in infos:
            try:
                ip = ipaddress.ip_address(info["host"])
            except ValueError as exc:
                raise OSError(f"{host} resolved to an unparsable address {info['host']!r}") from exc
            if _non_public(ip):
                raise OSError(f"refused: {host} resolves to the non-public address {ip}")
        return infos

    async def close(self) -> None:
        await self._inner.close()


class BrowseTool(Tool):
    """Open a web page as text, go to a page of a long document, follow a numbered link, or find text on a page."""

    name = "browse"
    param_constraints = {
        "page": {"minimum": 1},
        "link": {"minimum": 1},
        "find": {"minLength": 1, "maxLength": 300},
        "url": {"maxLength": 2048},
    }

    def __init__(
        self,
        corpus: Corpus | str | os.PathLike | None = None,
        *,
        server: ServerHandle | None = None,
        live_web: bool = False,
        page_chars: int = 4000,
        max_find_results: int = 5,
        find_context_chars: int = 200,
        fetch_timeout: float = 10.0,
        max_bytes: int = 2_000_000,
        max_redirects: int = 5,
        allow_private_hosts: bool = False,
        timeout: float = 30.0,
        max_output_chars: int = 8000,
        render_cpu_budget: float = 10.0,
    ) -> None:
        """Create a browser.

        Args:
            corpus: The offline web (a :class:`Corpus` or its directory). Required unless ``live_web``.
            server: A running corpus server to use (default: the shared one, acquired on first use).
            live_web: Also open real URLs that are not in the corpus (guarded; see the module docstring).
            page_chars: Characters per page of a long document.
            max_find_results: Passages ``find`` returns at most.
            find_context_chars: Characters of context on each side of a ``find`` match.
            fetch_timeout: Seconds for fetching one page over the network (live pages: all redirect hops and the
                body; corpus pages: the loopback request). Rendering is not part of it.
            max_bytes: Body bytes read at most from a page, offline or live (the rest is cut and the page says so).
            max_redirects: Redirect hops followed at most.
            allow_private_hosts: TESTS ONLY: let live_web reach loopback/private addresses.
            timeout: Per-call timeout of the tool.
            max_output_chars: Output cap of the tool.
            render_cpu_budget: CPU seconds rendering one page may take (this page's own work, whatever else runs
                on the event loop); past it the page shows what was rendered and says it was cut.
        """
        if corpus is None and server is None and not live_web:
            raise InvalidArgumentError(
                "BrowseTool needs a corpus (or live_web=True); got neither. Fix: BrowseTool(Corpus.open('dir'))."
            )
        if page_chars < 200:
            raise InvalidArgumentError(f"page_chars must be >= 200, got {page_chars}.")
        if corpus is not None and not isinstance(corpus, Corpus):
            corpus = Corpus.open(corpus)
        self.corpus = corpus if corpus is not None else (server.corpus if server is not None else None)
        self.live_web = bool(live_web)
        self.page_chars = int(page_chars)
        self.max_find_results = int(max_find_results)
        self.find_context_chars = int(find_context_chars)
        self.fetch_timeout = float(fetch_timeout)
        self.max_bytes = int(max_bytes)
        self.max_redirects = int(max_redirects)
        self.allow_private_hosts = bool(allow_private_hosts)
        self.render_cpu_budget = float(render_cpu_budget)
        self._server = server
        self._own_server = False
        self._server_lock: asyncio.Lock | None = None
        self._local_http: Any = None
        self._live_http: Any = None
        self._session = _Session()
        super().__init__(timeout=timeout, max_output_chars=max_output_chars)

    # -- episode state ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the current page, history, visited URLs and page cache."""
        self._session = _Session()

    @property
    def current_url(self) -> str | None:
        return self._session.current.url if self._session.current else None

    @property
    def history(self) -> list[str]:
        """URLs opened this episode, in order (repeats included)."""
        return list(self._session.history)

    @property
    def visited_urls(self) -> list[str]:
        """Unique URLs opened this episode, in first-visit order."""
        return list(self._session.visited)

    # -- the tool -----------------------------------------------------------------------------------------------
    async def run(
        self, url: str | None = None, page: int = 1, find: str | None = None, link: int | None = None
    ) -> ToolResult:
        """Open a web page and read it as text with numbered links; or page through it, follow a link, or find text.

        Args:
            url: Absolute URL to open (e.g. from search results). Omit to stay on the current page.
            page: Which page of a long document to show (1-based).
            find: Text to look for on the page; returns matching passages with context.
            link: Number of a link on the current page to follow, as shown in [n].
        """
        s = self._session
        if link is not None:
            if url is not None:
                return ToolResult.failure("give either url or link, not both.", ToolStatus.INVALID_ARGUMENTS)
            if s.current is None:
                return ToolResult.failure("no page is open, so link numbers mean nothing yet; open a url first.")
            if link > len(s.current.links):
                have = f"links 1-{len(s.current.links)}" if s.current.links else "no links"
                return ToolResult.failure(f"link {link} does not exist; {s.current.url} has {have}.")
            url = s.current.links[link - 1]
        opened: list[str] = []
        if url is not None:
            target = self._absolute(url)
            try:
                doc = await self._open(target)
            except FetchError as exc:
                return ToolResult.failure(str(exc), urls=[], unique_urls_visited=len(s.visited))
            s.current = doc
            s.history.append(doc.url)
            s.visited.setdefault(doc.url, None)
            opened.append(doc.url)
        elif s.current is None:
            return ToolResult.failure("no page is open; give url=... (for example a URL from search results).")
        doc = s.current
        meta = {"urls": opened, "unique_urls_visited": len(s.visited), "pages": len(doc.pages), "title": doc.title,
                "url": doc.url}
        if find is not None:
            return ToolResult.success(self._find(doc, find), **meta)
        if page > len(doc.pages):
            return ToolResult.failure(
                f"page {page} does not exist; {doc.url} has {len(doc.pages)} page(s). Use page=1..{len(doc.pages)}.",
                **meta,
            )
        return ToolResult.success(self._show(doc, page), page=page, **meta)

    def _absolute(self, url: str) -> str:
        """Complete what agents type: ``kimiwiki.test/wiki/X`` gets ``https://``, ``/wiki/X`` the current page's host."""
        url = url.strip()
        if url.startswith(("http://", "https://")) or "://" in url:
            return url
        if _HOSTLIKE.match(url):
            return "https://" + url
        current = self._session.current
        return urljoin(current.url, url) if current is not None else url

    # -- rendering ------------------------------------------------------------------------------------------------
    def _show(self, doc: _Page, page: int) -> str:
        n = len(doc.pages)
        head = f"{doc.title or '(untitled)'}\nURL: {doc.url}\nPage {page} of {n}"
        if doc.note:
            head += f"\n({doc.note})"
        body = doc.pages[page - 1] or "(this page has no readable text)"
        foot = f"\n\n[Page {page} of {n}. Next: page={page + 1}.]" if page < n else ""
        return f"{head}\n\n{body}{foot}"

    def _find(self, doc: _Page, needle: str) -> str:
        words = needle.split()
        head = f"{doc.title or '(untitled)'}\nURL: {doc.url}"
        if not words:
            return f'{head}\n\nNothing to find: find="{needle}" has no words.'
        # Pages are joined with a newline (pagination cut at line breaks), so words never glue across a boundary.
        starts = [0]
        for chunk in doc.pages[:-1]:
            starts.append(starts[-1] + len(chunk) + 1)
        text = "\n".join(doc.pages)
        matches = _find_spans(text, words, 201)
        if not matches:
            return f'{head}\n\nNo match for "{needle}" on this page ({len(doc.pages)} page(s)). Try a shorter phrase.'
        more = "+" if len(matches) > 200 else ""
        shown = matches[: self.max_find_results]
        noun = "match" if len(matches) == 1 else "matches"
        lines = [f'{head}\n\nFound {len(matches)}{more} {noun} for "{needle}" (showing {len(shown)}):']
        ctx = self.find_context_chars
        for i, (m_start, m_end) in enumerate(shown, 1):
            page_no = bisect.bisect_right(starts, m_start)
            a, b = max(0, m_start - ctx), min(len(text), m_end + ctx)
            snippet = " ".join(text[a:b].split())
            lines.append(f"\n[match {i}, page {page_no}] {'… ' if a else ''}{snippet}{' …' if b < len(text) else ''}")
        return "\n".join(lines)

    async def _render(self, markup: str, url: str) -> RenderedPage:
        # On the loop, in slices that yield between them: other calls and the corpus server keep running, a
        # cancelled call stops rendering at the next slice, and the CPU budget counts this page's work only.
        return await arender_html(markup, url, cpu_budget=self.render_cpu_budget)

    def _page_from(self, url: str, rendered: RenderedPage, note: str = "") -> _Page:
        notes = [note] if note else []
        if rendered.truncated and not note:
            notes.append("the page is very long; only its beginning was read")
        chunks = paginate(rendered.text, self.page_chars)
        return _Page(url, rendered.title, chunks, rendered.links, "; ".join(notes))

    # -- opening ------------------------------------------------------------------------------------------------
    async def _open(self, url: str) -> _Page:
        if not url.startswith(("http://", "https://")):
            raise FetchError(f"{url!r} is not an absolute http(s) URL; give a full URL such as a search result's.")
        cached = self._session.cache.get(normalize_url(url))
        if cached is not None:
            return cached
        if self.corpus is not None and url in self.corpus:
            page = await self._open_corpus(url)
        elif self.live_web:
            page = await self._open_live(url)
        else:
            raise FetchError(f"{url} is not in the offline web; search first and open a URL from the results.")
        if len(self._session.cache) >= 64:
            self._session.cache.pop(next(iter(self._session.cache)))
        self._session.cache[normalize_url(url)] = page
        return page

    async def _get_server(self) -> ServerHandle:
        if self._server is None:
            if self._server_lock is None:
                self._server_lock = asyncio.Lock()
            async with self._server_lock:
                if self._server is None:
                    self._server = await aacquire_server(self.corpus)
                    self._own_server = True
        return self._server

    def _local_client(self) -> Any:
        import aiohttp  # noqa: PLC0415

        if self._local_http is None or self._local_http.closed:
            self._local_http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.fetch_timeout), trust_env=False
            )
        return self._local_http

    async def _open_corpus(self, url: str) -> _Page:
        import aiohttp  # noqa: PLC0415

        server = await self._get_server()
        try:
            async with self._local_client().get(server.page_url(url)) as resp:
                if resp.status == 404:
                    raise FetchError(f"{url} is not in the offline web; search first and open a URL from the results.")
                if resp.status != 200:
                    raise FetchError(f"the offline web server answered HTTP {resp.status} for {url}; try again.")
                canonical = resp.headers.get("X-Canonical-URL", url)
                body, cut = await self._read_capped(resp)
        except aiohttp.ClientError as exc:
            raise FetchError(f"the offline web server is unreachable ({type(exc).__name__}); try again.") from exc
        except asyncio.TimeoutError:
            raise FetchError(
                f"the offline web server did not send {url} within {self.fetch_timeout:g} s; try again."
            ) from None
        note = f"the page is longer than {self.max_bytes:,} bytes; only the beginning was read" if cut else ""
        markup = body.decode("utf-8", errors="replace")
        return self._page_from(canonical, await self._render(markup, canonical), note)

    # -- the live web -------------------------------------------------------------------------------------------
    def _live_client(self) -> Any:
        import aiohttp  # noqa: PLC0415

        if self._live_http is None or self._live_http.closed:
            if self.allow_private_hosts:
                connector = aiohttp.TCPConnector(limit=8, ttl_dns_cache=60)
            else:  # names are checked when resolved, and every address when it is dialled
                connector = aiohttp.TCPConnector(
                    resolver=_PublicOnlyResolver(), socket_factory=_public_socket, limit=8, ttl_dns_cache=60
                )
            self._live_http = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # no proxies from the environment: they would bypass the address checks
                headers={"User-Agent": _USER_AGENT, "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9"},
                timeout=aiohttp.ClientTimeout(total=self.fetch_timeout, sock_connect=min(5.0, self.fetch_timeout)),
            )
        return self._live_http

    def _check_address(self, url: str) -> None:
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise FetchError(f"{url} is not an http(s) URL with a host name; only web pages can be opened.")
        if parts.username or parts.password:
            raise FetchError(f"{url} has credentials in it; URLs with user:password@ are not opened.")
        if self.allow_private_hosts:
            return
        # Check the host as the HTTP client will spell it (fullwidth digits, ideographic full stops ... normalized),
        # not as urlsplit leaves it; _public_socket then checks the address actually dialled.
        host = _client_host(url)
        if host is None:
            raise FetchError(f"{url} has a host name that is not valid (IDNA); only web pages can be opened.")
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            name = host.rstrip(".").lower()
            if name == "localhost" or name.endswith(".localhost"):
                raise FetchError(f"refused {url}: {host} is a local address; only public web addresses can be opened.")
            return  # a name: the resolver checks every address it resolves to
        if _non_public(ip):
            raise FetchError(f"refused {url}: {ip} is not a public address; only public web addresses can be opened.")

    async def _open_live(self, url: str) -> _Page:
        # The fetch timeout is about the network only; rendering comes after it, under its own CPU budget.
        try:
            fetched = await asyncio.wait_for(self._fetch_chain(url), timeout=self.fetch_timeout)
        except asyncio.TimeoutError:
            raise FetchError(
                f"{url} did not answer within {self.fetch_timeout:g} s (slow or stalled server); try another page."
            ) from None
        note = f"the page is longer than {self.max_bytes:,} bytes; only the beginning was read" if fetched.cut else ""
        if fetched.mime == "text/plain":
            rendered = RenderedPage(fetched.url.rsplit("/", 1)[-1] or fetched.url, fetched.markup.strip())
        else:
            rendered = await self._render(fetched.markup, fetched.url)
        return self._page_from(fetched.url, rendered, note)

    async def _fetch_chain(self, url: str) -> _Fetched:
        import aiohttp  # noqa: PLC0415

        start, seen = url, {url}
        for _hop in range(self.max_redirects + 1):
            self._check_address(url)
            try:
                async with self._live_client().get(url, allow_redirects=False) as resp:
                    if resp.status in _REDIRECTS:
                        location = resp.headers.get("Location")
                        if not location:
                            raise FetchError(f"{url} answered a redirect ({resp.status}) without a Location.")
                        url = urljoin(url, location)
                        if url in seen:
                            raise FetchError(f"{start} redirects in a loop (back to {url}); try another page.")
                        seen.add(url)
                        continue
                    return await self._read_live(url, resp)
            except aiohttp.ClientConnectorError as exc:
                reason = str(exc.os_error) if getattr(exc, "os_error", None) else str(exc)
                if "refused:" in reason:
                    why = reason.split("refused:", 1)[1].strip().split("\n", 1)[0][:160]
                    raise FetchError(f"refused {url}: {why}; only public web addresses can be opened.") from None
                raise FetchError(f"could not connect to {urlsplit(url).hostname} ({reason[:120]}).") from None
            except aiohttp.TooManyRedirects:
                raise FetchError(f"{start} redirects too often.") from None
            except aiohttp.ClientPayloadError as exc:
                raise FetchError(f"{url} sent a broken body ({str(exc)[:120]}).") from None
            except aiohttp.ClientError as exc:
                raise FetchError(f"fetching {url} failed ({type(exc).__name__}: {str(exc)[:120]}).") from None
        raise FetchError(f"{start} redirects more than {self.max_redirects} times; try another page.")

    async def _read_live(self, url: str, resp: Any) -> _Fetched:
        if resp.status >= 400:
            raise FetchError(f"{url} answered HTTP {resp.status} {resp.reason or ''}".rstrip() + "; try another page.")
        ctype = resp.headers.get("Content-Type", "")
        mime = ctype.split(";", 1)[0].strip().lower()
        if mime and mime not in _TEXT_TYPES:
            raise FetchError(
                f"{url} is {mime}, not a readable page (only text/html, text/plain and XHTML are); try another page."
            )
        body, cut = await self._read_capped(resp)
        if not mime and b"\x00" in body[:2048]:
            raise FetchError(f"{url} sent binary content without a content type; it is not a readable page.")
        charset = None
        try:
            charset = resp.charset
        except Exception:  # noqa: BLE001 - a malformed header must not matter
            charset = None
        return _Fetched(url, mime, decode_html_bytes(body, charset), cut)

    async def _read_capped(self, resp: Any) -> tuple[bytes, bool]:
        buf = bytearray()
        while len(buf) < self.max_bytes:
            chunk = await resp.content.read(min(65536, self.max_bytes - len(buf)))
            if not chunk:
                return bytes(buf), False
            buf += chunk
        more = await resp.content.read(1)
        return bytes(buf), bool(more)

    # -- lifecycle ----------------------------------------------------------------------------------------------
    async def aclose(self) -> None:
        for client in (self._local_http, self._live_http):
            if client is not None and not client.closed:
                await client.close()
        self._local_http = self._live_http = None
        if self._own_server and self._server is not None:
            server, self._server, self._own_server = self._server, None, False
            await arelease(server)
