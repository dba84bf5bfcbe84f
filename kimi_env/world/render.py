"""HTML rendering of world pages.

Entity article anatomy (in this order)::

    <h1>Name</h1>
    <table class="infobox"><caption>Name</caption><tr><th>Label</th><td>value or <a href>entity</a></td></tr>...</table>
    <p>lead: 2-3 sentences restating infobox facts, phrasings drawn from several templates</p>
    <h2>History</h2> <p>filler</p><p>filler</p>              (no facts, no digits)
    <h2>Culture|Career|Reception|...</h2> <p>filler</p>
    <h2>Demographics|Financial performance|Attendance|Tourism</h2> <table class="wikitable"> (numeric table, if any)
    <h2>Deep section title</h2> <p>filler, THE DEEP FACT sentence, filler</p>   (if the entity has a deep fact)
    <h2>Notable members|Works|Cities</h2> <ul><li><a href>...</a></li></ul>     (if any)
    <h2>See also</h2> <ul> links to related pages </ul>

Every page's rendering uses its own ``random.Random`` seeded from the world seed and the entity id, so a page is
the same whether rendered alone or in a stream.
"""

from __future__ import annotations

import html
import random

from .model import DEEP, ORG_TYPES, SCHEMA, SECTIONS, WIKI, AuxPage, Entity, World, fmt_date, render_value

TYPE_LABEL = {
    "country": "Country",
    "city": "City",
    "person": "Person",
    "company": "Company",
    "university": "University",
    "society": "Society",
    "book": "Book",
    "film": "Film",
    "album": "Album",
    "event": "Event",
}
SECTION_TITLES = {
    "country": ("History", "Culture", "Symbols"),
    "city": ("History", "Culture", "Architecture"),
    "person": ("Early life", "Career", "Personal life"),
    "company": ("History", "Operations", "Corporate identity"),
    "university": ("History", "Campus", "Traditions"),
    "society": ("History", "Activities", "Meetings"),
    "book": ("Background", "Reception", "Composition"),
    "film": ("Background", "Reception", "Production"),
    "album": ("Background", "Reception", "Production"),
    "event": ("History", "Format", "Champions"),
}
THEMES = {
    "place": ("streets", "markets", "harbor", "dialect", "festivals", "old quarter", "river trade", "craft guilds"),
    "person": ("letters", "travels", "notebooks", "friendships", "early ambitions", "public talks", "workshops"),
    "org": ("workshops", "archives", "staff culture", "ledgers", "partnerships", "charter", "early offices"),
    "work": ("themes", "structure", "critics", "audiences", "revisions", "imagery", "later editions"),
    "event": ("crowds", "ceremonies", "volunteers", "traditions", "programme", "venues", "rules"),
}
ADJ = (
    "quiet",
    "lasting",
    "curious",
    "modest",
    "celebrated",
    "uneven",
    "distinctive",
    "patient",
    "restless",
    "careful",
    "storied",
    "unusual",
)
FILLER = (
    "Accounts of {n} often dwell on its {a} {x}, a theme that returns again and again in local writing.",
    "Observers have described the {x} of {n} as {a}, though opinions on the matter differ widely.",
    "Much of what is told about {n} concerns its {x} and the {a} reputation that grew around them.",
    "Commentators tend to contrast the {a} {x} with the more ordinary {y} that came before.",
    "For a long period the {x} associated with {n} attracted little notice outside a small circle.",
    "Later writers returned to the {y}, treating it as a key to understanding {n} as a whole.",
    "The {a} character of the {x} is frequently mentioned in essays and guidebooks alike.",
    "Several short studies discuss the {y} of {n}, and most of them praise its {a} qualities.",
    "Visitors and critics alike remark on the {x}, which many consider {a} rather than grand.",
    "Over the following decades the {y} changed slowly, and the {a} {x} remained a point of pride.",
    "Local tradition links {n} with its {x}, a connection that is still celebrated in modest ways.",
    "Debates about the {y} continued for many years without reaching any firm conclusion.",
    "A number of memoirs recall the {a} {x} in affectionate and sometimes exaggerated detail.",
    "Scholars have paid growing attention to the {x}, placing {n} within a broader regional story.",
    "It is often said that the {y} shaped {n} more than any single decision or person did.",
    "Surviving descriptions of the {x} are brief, but they agree that it was {a} in tone.",
)
THEME_OF = {
    "country": "place",
    "city": "place",
    "person": "person",
    "company": "org",
    "university": "org",
    "society": "org",
    "book": "work",
    "film": "work",
    "album": "work",
    "event": "event",
}

# Sentence templates per deep attribute; each contains the attribute's find keyword (see model.DEEP).
DEEP_TEMPLATES = {
    "national_animal": (
        "The national animal of {n} is the {v}.",
        "{n} adopted the {v} as its national animal.",
        "Coins and flags across the country show the {v}, the national animal of {n}.",
    ),
    "landmark": (
        "The oldest surviving structure in {n} is the {v}.",
        "Among its many buildings, the {v} is the oldest surviving one.",
        "Historians regard the {v} as the oldest surviving landmark of {n}.",
    ),
    "alma_mater": (
        "{n} studied at {v}.",
        "As a young adult, {s} studied at {v}.",
        "It was at {v} that {s} studied before settling into a profession.",
    ),
    "original_name": (
        "The company was originally called {v}.",
        "{n} originally traded under the name {v}.",
        "Before adopting its present name, the firm was originally registered as {v}.",
    ),
    "mascot": (
        "The mascot of the university is the {v}.",
        "Students cheer for the {v}, the mascot of {n}.",
        "The {v} has served as the {n} mascot for generations.",
    ),
    "meeting_place": (
        "The society holds its regular gatherings in {v}.",
        "Its gatherings have long taken place in {v}.",
        "Members travel to {v} for the gatherings of {n}.",
    ),
    "setting": (
        "The novel uses {v} as its setting.",
        "{v} provides the setting for the story.",
        "The setting of the book is {v}.",
    ),
    "filming_location": (
        "The film was filmed on location in {v}.",
        "Most scenes of {n} were filmed in {v}.",
        "The crew filmed the picture in {v}.",
    ),
    "recorded_in": (
        "The album was recorded in {v}.",
        "{n} was recorded over several weeks in {v}.",
        "The songs were recorded in {v}.",
    ),
    "first_winner": (
        "The inaugural edition was won by {v}.",
        "{v} won the inaugural {n}.",
        "The winner of the inaugural contest was {v}.",
    ),
}

_KIND = {etype: {k: kind for k, _, kind in rows} for etype, rows in SCHEMA.items()}


class _Page:
    def __init__(self, title: str, site: str = "KimiWiki"):
        self.title = title
        self.site = site
        self.parts: list[str] = []
        self.links: list[str] = []
        self._seen: set[str] = set()

    def link(self, url: str, text: str) -> str:
        if url not in self._seen:
            self._seen.add(url)
            self.links.append(url)
        return f'<a href="{html.escape(url)}">{html.escape(text)}</a>'

    def add(self, s: str) -> None:
        self.parts.append(s)

    def doc(self):

        body = "\n".join(self.parts)
        page = (
            f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(self.title)} - {self.site}'
            f"</title></head>\n<body>\n{body}\n</body></html>\n"
        )
        return page, tuple(self.links)


def _e(text: str) -> str:
    return html.escape(text, quote=False)


def _filler(rng: random.Random, name: str, theme: str, n: int) -> str:
    xs = THEMES[theme]
    out = []
    for _ in range(n):
        out.append(rng.choice(FILLER).format(n=name, a=rng.choice(ADJ), x=rng.choice(xs), y=rng.choice(xs)))
    return _e(" ".join(out))


def _lead(w: World, e: Entity, pg: _Page, rng: random.Random) -> str:
    a = e.attrs
    n = _e(e.name)

    def L(key: str) -> str:
        o = w.entity(a[key])
        return pg.link(o.url, o.name)

    t = e.etype
    if t == "country":
        s = [
            rng.choice(
                (
                    f"{n} is a country whose capital is {L('capital')}.",
                    f"{n} is a sovereign state; its capital and seat of government is {L('capital')}.",
                )
            ),
            rng.choice(
                (
                    f"It was established as a state in {a['established']}.",
                    f"The modern state dates from {a['established']}.",
                )
            ),
        ]
    elif t == "city":
        s = [
            rng.choice(
                (
                    f"{n} is a city in {L('country')}.",
                    f"{n} is one of the cities of {L('country')}.",
                    f"Located in {L('country')}, {n} is a regional centre.",
                )
            ),
            rng.choice(
                (
                    f"It was founded in {a['founded']}.",
                    f"The settlement dates back to {a['founded']}.",
                    f"Its founding is recorded in the year {a['founded']}.",
                )
            ),
        ]
    elif t == "person":
        born = fmt_date(a["born"])
        s = [
            rng.choice((f"{n} (born {born}) is a {a['occupation']}.", f"{n} is a {a['occupation']} born on {born}.")),
            rng.choice(
                (
                    f"{e.name.split()[-1]} was born in {L('birthplace')}.",
                    f"A native of {L('birthplace')}, {e.name.split()[-1]} became known for public work.",
                    f"{L('birthplace')} is the birthplace of {n}.",
                )
            ),
        ]
    elif t in ORG_TYPES:
        kind = {
            "company": f"{a.get('industry', '')} company",
            "university": "university",
            "society": "learned society",
        }[t]
        city_key = "location" if t == "university" else "headquarters"
        s = [
            rng.choice((f"{n} is a {kind} based in {L(city_key)}.", f"{n}, a {kind}, has its seat in {L(city_key)}.")),
            rng.choice(
                (
                    f"It was founded in {a['founded']} by {L('founder')}.",
                    f"{L('founder')} founded it in {a['founded']}.",
                    f"Established by {L('founder')} in {a['founded']}, it has grown steadily.",
                )
            ),
        ]
    elif t == "book":
        s = [
            rng.choice(
                (
                    f"{n} is a {a['genre']} by {L('author')}.",
                    f"{n} is a book written by {L('author')}.",
                    f"Written by {L('author')}, {n} is a {a['genre']}.",
                )
            ),
            rng.choice(
                (
                    f"It was published by {L('publisher')} in {a['published']}.",
                    f"{L('publisher')} brought it out in {a['published']}.",
                    f"The book appeared in {a['published']} under the {L('publisher')} imprint.",
                )
            ),
        ]
    elif t == "film":
        s = [
            rng.choice(
                (
                    f"{n} is a film directed by {L('director')}.",
                    f"Directed by {L('director')}, {n} is a feature film.",
                    f"{n} is a feature film by director {L('director')}.",
                )
            ),
            rng.choice(
                (
                    f"It was produced by {L('studio')} and released on {fmt_date(a['released'])}.",
                    f"{L('studio')} produced the picture, which opened on {fmt_date(a['released'])}.",
                )
            ),
        ]
    elif t == "album":
        s = [
            rng.choice(
                (
                    f"{n} is an album by {L('artist')}.",
                    f"{n} is a studio album from {L('artist')}.",
                    f"By {L('artist')}, {n} collects {a['tracks']} tracks.",
                )
            ),
            rng.choice(
                (
                    f"It was released on {fmt_date(a['released'])} by {L('label')}.",
                    f"{L('label')} issued it on {fmt_date(a['released'])}.",
                )
            ),
        ]
    else:  # event
        s = [
            rng.choice(
                (
                    f"The {n} is an {a['frequency']} event held in {L('location')}.",
                    f"{n} is an {a['frequency']} gathering that takes place in {L('location')}.",
                )
            ),
            rng.choice(
                (
                    f"It is organized by {L('organizer')} and was first held in {a['first_held']}.",
                    f"{L('organizer')} has run it since it was first held in {a['first_held']}.",
                )
            ),
        ]
    return " ".join(s)


def render_entity(w: World, e: Entity):
    """The article of one entity as a :class:`~kimi_env.web.document.Document`."""
    from ..web.document import Document

    rng = random.Random(f"page:{w.seed}:{e.id}")
    pg = _Page(e.name)
    pg.add(f"<h1>{_e(e.name)}</h1>")
    rows = [f"<caption>{_e(e.name)}</caption>", f"<tr><th>Type</th><td>{TYPE_LABEL[e.etype]}</td></tr>"]
    for key, label, kind in SCHEMA[e.etype]:
        if key not in e.attrs:
            continue
        v = e.attrs[key]
        if kind == "entity":
            o = w.entity(v)
            cell = pg.link(o.url, o.name)
        else:
            cell = _e(render_value(kind, v))
            if key == "revenue":
                cell += " (2023)"
            elif key == "population" and e.etype == "city":
                cell += " (2020 census)"
        rows.append(f"<tr><th>{_e(label)}</th><td>{cell}</td></tr>")
    pg.add('<table class="infobox">' + "".join(rows) + "</table>")
    pg.add(f"<p>{_lead(w, e, pg, rng)}</p>")
    theme = THEME_OF[e.etype]
    s1, s2, s3 = SECTION_TITLES[e.etype]
    pg.add(f"<h2>{s1}</h2>")
    pg.add(f"<p>{_filler(rng, e.name, theme, 4)}</p>")
    pg.add(f"<p>{_filler(rng, e.name, theme, 4)}</p>")
    pg.add(f"<h2>{s2}</h2>")
    pg.add(f"<p>{_filler(rng, e.name, theme, 4)}</p>")
    for t in w.tables.get(e.id, ()):
        pg.add(f"<h2>{_e(t.section)}</h2>")
        trs = [
            f"<caption>{_e(t.caption)}</caption>",
            f"<tr><th>{_e(t.columns[0])}</th><th>{_e(t.columns[1])}</th></tr>",
        ]
        trs += [f"<tr><td>{_e(k)}</td><td>{v:,}</td></tr>" for k, v in t.rows]
        pg.add('<table class="wikitable">' + "".join(trs) + "</table>")
    if e.deep:
        key, _, kind, _ = DEEP[e.etype]
        v = e.deep[key]
        if kind == "entity":
            o = w.entity(v)
            vs = pg.link(o.url, o.name)
        else:
            vs = _e(v)
        sentence = rng.choice(DEEP_TEMPLATES[key]).format(n=_e(e.name), s=_e(e.name.split()[-1]), v=vs)
        pg.add(f"<h2>{s3}</h2>")
        pg.add(f"<p>{_filler(rng, e.name, theme, 3)}</p>")
        pg.add(f"<p>{_filler(rng, e.name, theme, 1)} {sentence} {_filler(rng, e.name, theme, 1)}</p>")
    if e.etype in SECTIONS and e.lists:
        heading = SECTIONS[e.etype][0]
        items = "".join(f"<li>{pg.link(w.entity(i).url, w.entity(i).name)}</li>" for i in e.lists)
        pg.add(f"<h2>{heading}</h2><ul>{items}</ul>")
    see = []
    if e.etype == "country":
        see.append(pg.link(f"{WIKI}List_of_cities_in_{e.slug}", f"List of cities in {e.name}"))
    if e.homonym:
        see.append(pg.link(WIKI + e.name.replace(" ", "_"), f"{e.name} (disambiguation)"))
    if see:
        pg.add("<h2>See also</h2><ul>" + "".join(f"<li>{x}</li>" for x in see) + "</ul>")
    page, links = pg.doc()
    return Document(url=e.url, title=e.name, html=page, links=links)


def describe(w: World, e: Entity) -> str:
    """A short disambiguating description, e.g. ``painter, born 1931``."""
    a = e.attrs
    if e.etype == "person":
        return f"{a['occupation']}, born {a['born'][:4]}"
    if e.etype in ORG_TYPES:
        return f"{e.etype if e.etype != 'company' else a['industry'] + ' company'} founded in {a['founded']}"
    if e.etype == "city":
        return f"city in {w.entity(a['country']).name}"
    return TYPE_LABEL[e.etype].lower()


def render_aux(w: World, p: AuxPage):
    from ..web.document import Document

    pg = _Page(p.title, "Almanac Archive" if p.kind == "archive" else "KimiWiki")
    pg.add(f"<h1>{_e(p.title)}</h1>")
    if p.kind == "list_cities":
        country = w.entity(p.keys[0])
        pg.add(f"<p>This list covers the cities of {pg.link(country.url, country.name)} that have an article.</p>")
        rows = ["<tr><th>City</th><th>Population</th><th>Founded</th></tr>"]
        for cid in country.lists:
            c = w.entity(cid)
            rows.append(
                f"<tr><td>{pg.link(c.url, c.name)}</td><td>{c.attrs['population']:,}</td>"
                f"<td>{c.attrs['founded']}</td></tr>"
            )
        pg.add('<table class="wikitable">' + "".join(rows) + "</table>")
    elif p.kind == "list_orgs":
        country = w.entity(p.keys[0])
        pg.add(f"<p>Organizations headquartered in {pg.link(country.url, country.name)}.</p>")
        rows = ["<tr><th>Name</th><th>Type</th><th>Founded</th></tr>"]
        for oid in p.keys[1:]:
            o = w.entity(oid)
            rows.append(
                f"<tr><td>{pg.link(o.url, o.name)}</td><td>{TYPE_LABEL[o.etype]}</td><td>{o.attrs['founded']}</td></tr>"
            )
        pg.add('<table class="wikitable">' + "".join(rows) + "</table>")
    elif p.kind == "category_people":
        country = w.entity(p.keys[0])
        pg.add(f"<p>People born in {pg.link(country.url, country.name)}.</p>")
        pg.add("<ul>" + "".join(f"<li>{pg.link(w.entity(i).url, w.entity(i).name)}</li>" for i in p.keys[1:]) + "</ul>")
    elif p.kind == "disambiguation":
        base = p.title.replace(" (surname)", "").replace(" (disambiguation)", "")
        pg.add(f"<p><b>{_e(base)}</b> may refer to:</p>")
        pg.add(
            "<ul>"
            + "".join(
                f"<li>{pg.link(w.entity(i).url, w.entity(i).name)}, {_e(describe(w, w.entity(i)))}</li>" for i in p.keys
            )
            + "</ul>"
        )
    elif p.kind == "archive":
        e = w.entity(p.keys[0])
        c = w.conflicts_of(e.id)[0]
        rng = random.Random(f"archive:{w.seed}:{e.id}")
        pg.add("<p><i>Almanac Archive entry, transcribed from older printed almanacs; not revised since.</i></p>")
        if c.relation == "born":
            fact = rng.choice(
                (
                    f"{_e(e.name)} was born on {fmt_date(c.archive_value)}.",
                    f"Born on {fmt_date(c.archive_value)}, {_e(e.name)} worked as a {e.attrs['occupation']}.",
                )
            )
        elif c.relation == "released":
            fact = f"{_e(e.name)} was released on {fmt_date(c.archive_value)}."
        else:
            fact = rng.choice(
                (
                    f"{_e(e.name)} was founded in {c.archive_value}.",
                    f"According to the almanac, {_e(e.name)} dates from {c.archive_value}.",
                )
            )
        pg.add(f"<p>{fact} {_filler(rng, e.name, THEME_OF[e.etype], 2)}</p>")
        pg.add(f"<p>See the encyclopedia article: {pg.link(e.url, e.name)}.</p>")
    page, links = pg.doc()
    return Document(url=p.url, title=p.title, html=page, links=links)
