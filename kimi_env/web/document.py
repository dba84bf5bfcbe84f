"""The unit of the offline web: one page with a canonical URL."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Document:
    """One page of a corpus.

    Attributes:
        url: Canonical absolute URL, the one agents see and cite (stable across processes and ports).
        title: Page title.
        html: The page as HTML, when it has markup (generated world pages and imported HTML do).
        text: The page as plain text, when it has no markup (JSONL imports with ``text``).
        links: Absolute URLs this page links to, in page order.
    """

    url: str
    title: str
    html: str | None = None
    text: str | None = None
    links: tuple[str, ...] = field(default_factory=tuple)
