"""The world's data model: entities, facts, tables and auxiliary pages, plus lookups and the fingerprint."""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from ..web.document import Document


@functools.lru_cache(maxsize=1)
def _world_code_version() -> str:
    """SHA-256 of the source files that decide a generated world's pages."""
    from pathlib import Path

    here = Path(__file__).parent
    h = hashlib.sha256()
    for path in (here / "generate.py", here / "model.py", here / "render.py", here / "names.py",
                 here.parent / "web" / "document.py"):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()

WIKI = "https://kimiwiki.test/wiki/"
ARCHIVE = "https://almanac-archive.test/entry/"
ARCHIVE_NAME = "the Almanac Archive"

ORG_TYPES = ("company", "university", "society")
ENTITY_TYPES = ("country", "city", "person", "company", "university", "society", "book", "film", "album", "event")

# Infobox rows per entity type: (attribute key, rendered label, value kind). Kinds: entity, year, date, int, area,
# height, money, minutes, text. The label is exactly what the page's infobox <th> shows and what plans name.
SCHEMA: dict[str, tuple[tuple[str, str, str], ...]] = {
    "country": (
        ("capital", "Capital", "entity"),
        ("established", "Established", "year"),
        ("population", "Population", "int"),
        ("area", "Area", "area"),
        ("currency", "Currency", "text"),
        ("leader", "Head of state", "entity"),
    ),
    "city": (
        ("country", "Country", "entity"),
        ("founded", "Founded", "year"),
        ("population", "Population", "int"),
        ("area", "Area", "area"),
        ("mayor", "Mayor", "entity"),
    ),
    "person": (
        ("born", "Born", "date"),
        ("birthplace", "Place of birth", "entity"),
        ("occupation", "Occupation", "text"),
        ("height", "Height", "height"),
        ("member_of", "Member of", "entity"),
    ),
    "company": (
        ("founded", "Founded", "year"),
        ("founder", "Founder", "entity"),
        ("headquarters", "Headquarters", "entity"),
        ("ceo", "CEO", "entity"),
        ("industry", "Industry", "text"),
        ("employees", "Employees", "int"),
        ("revenue", "Revenue", "money"),
    ),
    "university": (
        ("founded", "Founded", "year"),
        ("founder", "Founder", "entity"),
        ("location", "Location", "entity"),
        ("students", "Students", "int"),
    ),
    "society": (
        ("founded", "Founded", "year"),
        ("founder", "Founder", "entity"),
        ("headquarters", "Headquarters", "entity"),
        ("focus", "Focus", "text"),
    ),
    "book": (
        ("author", "Author", "entity"),
        ("publisher", "Publisher", "entity"),
        ("published", "Published", "year"),
        ("pages", "Pages", "int"),
        ("genre", "Genre", "text"),
    ),
    "film": (
        ("director", "Directed by", "entity"),
        ("studio", "Production company", "entity"),
        ("released", "Release date", "date"),
        ("runtime", "Running time", "minutes"),
        ("language", "Language", "text"),
    ),
    "album": (
        ("artist", "Artist", "entity"),
        ("label", "Label", "entity"),
        ("released", "Released", "date"),
        ("tracks", "Tracks", "int"),
        ("length", "Length", "minutes"),
    ),
    "event": (
        ("location", "Location", "entity"),
        ("organizer", "Organizer", "entity"),
        ("first_held", "First held", "year"),
        ("frequency", "Frequency", "text"),
    ),
}

# The one deep attribute per type: (key, display name used in plans, kind, find keyword). The fact is stated only
# in a late section, in a sentence that always contains the keyword (and the keyword appears nowhere else).
DEEP: dict[str, tuple[str, str, str, str]] = {
    "country": ("national_animal", "National animal", "text", "national animal"),
    "city": ("landmark", "Oldest landmark", "text", "oldest surviving"),
    "person": ("alma_mater", "Alma mater", "entity", "studied"),
    "company": ("original_name", "Original name", "text", "originally"),
    "university": ("mascot", "Mascot", "text", "mascot"),
    "society": ("meeting_place", "Meeting place", "entity", "gatherings"),
    "book": ("setting", "Setting", "entity", "setting"),
    "film": ("filming_location", "Filming location", "entity", "filmed"),
    "album": ("recorded_in", "Recording location", "entity", "recorded"),
    "event": ("first_winner", "First winner", "entity", "inaugural"),
}

# List sections (an <h2> followed by a <ul> of links): (type, section heading, relation).
SECTIONS: dict[str, tuple[str, str]] = {
    "country": ("Cities", "has_city"),
    "society": ("Notable members", "has_member"),
    "person": ("Works", "created"),
}

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass
class Entity:
    """A fictional entity. ``attrs`` holds infobox values (entity ids for entity-valued keys), ``deep`` its deep
    attribute (if any), ``lists`` the ids in its list section (members, works, cities)."""

    id: str
    etype: str
    name: str
    slug: str
    attrs: dict[str, Any] = field(default_factory=dict)
    deep: dict[str, Any] = field(default_factory=dict)
    lists: list[str] = field(default_factory=list)
    homonym: bool = False

    @property
    def url(self) -> str:
        return WIKI + self.slug


@dataclass(frozen=True)
class Fact:
    """One stated fact. ``value`` is a literal (int, float, str, ISO date ``YYYY-MM-DD``) or the object's name;
    ``object`` is the object's entity id when the value is an entity. ``label`` is the infobox label, the deep
    attribute's display name or the list section's heading; ``where`` is infobox | deep | section | archive."""

    subject: str
    relation: str
    value: Any
    object: str | None
    label: str
    url: str
    deep: bool
    where: str


@dataclass(frozen=True)
class Table:
    """A numeric table on an entity page: first column the row key, second the number."""

    subject: str
    caption: str
    columns: tuple[str, str]
    rows: tuple[tuple[str, int], ...]
    section: str


@dataclass(frozen=True)
class Conflict:
    """An archive page that disagrees with the authoritative wiki page on one attribute."""

    subject: str
    relation: str
    label: str
    wiki_value: Any
    archive_value: Any
    archive_url: str


@dataclass(frozen=True)
class AuxPage:
    """A page that is not an entity article: list, category, disambiguation or archive page."""

    kind: str  # list_cities | list_orgs | category_people | disambiguation | archive
    url: str
    title: str
    keys: tuple[str, ...]  # entity ids the page is about


def fmt_year(v: int) -> str:
    return str(v)


def fmt_date(iso: str) -> str:
    """An ISO date as pages show it (``D Month YYYY``).

    >>> fmt_date("1962-03-04")
    '4 March 1962'
    """
    y, m, d = (int(x) for x in iso.split("-"))
    return f"{d} {MONTHS[m - 1]} {y}"


def date_aliases(iso: str) -> list[str]:
    """The spellings a date answer accepts: as pages show it, US style, ISO.

    >>> date_aliases("1962-03-04")
    ['4 March 1962', 'March 4, 1962', '1962-03-04']
    """
    y, m, d = (int(x) for x in iso.split("-"))
    return [fmt_date(iso), f"{MONTHS[m - 1]} {d}, {y}", iso]


def fmt_int(v: int) -> str:
    return f"{v:,}"


def render_value(kind: str, value: Any) -> str:
    """The text a literal value has on its page (infobox cell)."""
    if kind == "year":
        return str(value)
    if kind == "date":
        return fmt_date(value)
    if kind == "int":
        return fmt_int(value)
    if kind == "area":
        return f"{value:,.1f} km²"
    if kind == "height":
        return f"{value} cm"
    if kind == "money":
        return f"{value:,} million credits"
    if kind == "minutes":
        return f"{value} minutes"
    return str(value)


def year_of(value: Any) -> int:
    if isinstance(value, int):
        return value
    return _dt.date.fromisoformat(str(value)).year


class World:
    """A generated encyclopedia: entities, the fact graph, tables, conflicts and pages (rendered lazily)."""

    def __init__(
        self,
        seed: int,
        entities: list[Entity],
        aux_pages: list[AuxPage],
        tables: dict[str, list[Table]],
        conflicts: list[Conflict],
        n_pages: int | None = None,
    ):
        self.seed = seed
        self.n_pages = n_pages  # the size requested from generate_world (len(world) is the actual page count)
        self.entities = entities
        self.aux_pages = aux_pages
        self.tables = tables
        self.conflicts = conflicts
        self._by_id = {e.id: e for e in entities}
        self._by_name: dict[str, list[Entity]] = {}
        self._by_url: dict[str, Entity] = {}
        for e in entities:
            self._by_name.setdefault(e.name.lower(), []).append(e)
            self._by_url[e.url] = e
        self._aux_by_url = {p.url: p for p in aux_pages}
        self.facts: list[Fact] = self._build_facts()
        self._fact_index: dict[tuple[str, str], list[Fact]] = {}
        for f in self.facts:
            self._fact_index.setdefault((f.subject, f.label), []).append(f)
        self._conflict_index = {(c.subject, c.label): c for c in conflicts}
        self._conflict_subjects = {c.subject for c in conflicts}

    # ---- lookups -------------------------------------------------------------------------------------------
    def entity(self, entity_id: str) -> Entity:
        return self._by_id[entity_id]

    def by_name(self, name: str) -> list[Entity]:
        """All entities whose name is ``name`` (case-insensitive); more than one means the name is ambiguous."""
        return list(self._by_name.get(name.lower(), ()))

    def by_url(self, url: str) -> Entity | None:
        return self._by_url.get(url)

    def page_urls(self) -> list[str]:
        return [e.url for e in self.entities] + [p.url for p in self.aux_pages]

    def facts_about(self, entity_id: str, label: str | None = None) -> list[Fact]:
        if label is not None:
            return list(self._fact_index.get((entity_id, label), ()))
        return [f for f in self.facts if f.subject == entity_id]

    def conflict(self, entity_id: str, label: str) -> Conflict | None:
        return self._conflict_index.get((entity_id, label))

    def conflicts_of(self, entity_id: str) -> list[Conflict]:
        return [c for c in self.conflicts if c.subject == entity_id] if entity_id in self._conflict_subjects else []

    def name_of(self, entity_id: str) -> str:
        return self._by_id[entity_id].name

    def __len__(self) -> int:
        return len(self.entities) + len(self.aux_pages)

    # ---- facts ---------------------------------------------------------------------------------------------
    def _build_facts(self) -> list[Fact]:
        facts: list[Fact] = []
        for e in self.entities:
            for key, label, kind in SCHEMA[e.etype]:
                if key not in e.attrs:
                    continue
                v = e.attrs[key]
                if kind == "entity":
                    facts.append(Fact(e.id, key, self._by_id[v].name, v, label, e.url, False, "infobox"))
                else:
                    facts.append(Fact(e.id, key, v, None, label, e.url, False, "infobox"))
            if e.deep:
                key, label, kind, _ = DEEP[e.etype]
                v = e.deep[key]
                if kind == "entity":
                    facts.append(Fact(e.id, key, self._by_id[v].name, v, label, e.url, True, "deep"))
                else:
                    facts.append(Fact(e.id, key, v, None, label, e.url, True, "deep"))
            if e.etype in SECTIONS and e.lists:
                heading, rel = SECTIONS[e.etype]
                for oid in e.lists:
                    facts.append(Fact(e.id, rel, self._by_id[oid].name, oid, heading, e.url, False, "section"))
        for c in self.conflicts:
            facts.append(Fact(c.subject, c.relation, c.archive_value, None, c.label, c.archive_url, False, "archive"))
        return facts

    # ---- pages ---------------------------------------------------------------------------------------------
    def documents(self) -> Iterator[Document]:
        """Every page as a :class:`Document`, rendered lazily (entity articles first, then auxiliary pages)."""
        from .render import render_aux, render_entity

        for e in self.entities:
            yield render_entity(self, e)
        for p in self.aux_pages:
            yield render_aux(self, p)

    def document(self, url: str) -> Document | None:
        from .render import render_aux, render_entity

        if url in self._by_url:
            return render_entity(self, self._by_url[url])
        if url in self._aux_by_url:
            return render_aux(self, self._aux_by_url[url])
        return None

    def cache_key(self) -> str:
        """A key for caches built from this world (its corpus, its task pools), computed without rendering a page:
        SHA-256 over the generation arguments and the source of the modules that decide the pages (a world is a
        pure function of them: same seed, size and code give the same bytes, see :meth:`fingerprint`).

        >>> a, b = World(1, [], [], {}, [], n_pages=10), World(1, [], [], {}, [], n_pages=11)
        >>> a.cache_key() == World(1, [], [], {}, [], n_pages=10).cache_key() != b.cache_key()
        True
        """
        return hashlib.sha256(f"{_world_code_version()}|{self.seed}|{self.n_pages}".encode()).hexdigest()

    def fingerprint(self) -> str:
        """SHA-256 over every document, fact and table: same seed and size give the same hex digest.

        Computed once per world (a world is not changed after generation)."""
        cached = getattr(self, "_fingerprint", None)
        if cached is not None:
            return cached
        h = hashlib.sha256()
        for d in self.documents():
            h.update(json.dumps([d.url, d.title, d.html, list(d.links)], ensure_ascii=False).encode())
        for f in self.facts:
            h.update(json.dumps(asdict(f), sort_keys=True, ensure_ascii=False).encode())
        for eid in sorted(self.tables):
            for t in self.tables[eid]:
                h.update(json.dumps(asdict(t), sort_keys=True, ensure_ascii=False).encode())
        self._fingerprint: str = h.hexdigest()
        return self._fingerprint

    def stats(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entities:
            out[e.etype] = out.get(e.etype, 0) + 1
        for p in self.aux_pages:
            out["page:" + p.kind] = out.get("page:" + p.kind, 0) + 1
        out["pages"] = len(self)
        out["facts"] = len(self.facts)
        out["deep_facts"] = sum(f.deep for f in self.facts)
        out["tables"] = sum(len(v) for v in self.tables.values())
        out["conflicts"] = len(self.conflicts)
        return out
