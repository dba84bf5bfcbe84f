"""Deterministic world generation: entities, relations, tables, conflicts, auxiliary pages.

All randomness comes from ``random.Random`` instances seeded with the world seed (string seeds go through SHA-512,
so they do not depend on ``PYTHONHASHSEED``); nothing iterates over a set or a hash-ordered container.
"""

from __future__ import annotations

import random
from collections import defaultdict

from . import names as N
from .model import ARCHIVE, MONTHS, ORG_TYPES, AuxPage, Conflict, Entity, Table, World

# Share of entity articles per type (normalized); the rest of the pages are list, category, disambiguation
# and archive pages (about 10 %).
SHARES = (
    ("country", 0.012),
    ("city", 0.10),
    ("person", 0.34),
    ("company", 0.10),
    ("university", 0.025),
    ("society", 0.04),
    ("book", 0.13),
    ("film", 0.08),
    ("album", 0.08),
    ("event", 0.05),
)
ENTITY_SHARE_OF_PAGES = 0.905
OCCUPATIONS = (
    ("writer", 0.20),
    ("film director", 0.10),
    ("musician", 0.12),
    ("painter", 0.08),
    ("engineer", 0.10),
    ("entrepreneur", 0.14),
    ("politician", 0.08),
    ("scientist", 0.08),
    ("athlete", 0.05),
    ("architect", 0.05),
)
GENRES = ("mystery", "historical novel", "science fiction", "poetry collection", "memoir", "fantasy", "thriller")
LANGUAGES = ("Velmari", "Ostric", "Thaloran", "Quessan")
INDUSTRIES = ("technology", "manufacturing", "logistics", "energy", "finance")
LANDMARKS = ("Bridge", "Gate", "Tower", "Chapel", "Market Hall", "Lighthouse", "Aqueduct")
CONFLICT_RATE = 0.05
NEAR_DUP_RATE = 0.05
HOMONYM_RATE = 0.012
DEEP_RATE = 0.75


def _counts(n_pages: int) -> dict[str, int]:
    n_entities = max(60, round(n_pages * ENTITY_SHARE_OF_PAGES))
    total = sum(s for _, s in SHARES)
    counts = {t: max(3, round(n_entities * s / total)) for t, s in SHARES}
    counts["company"] = max(counts["company"], 12)
    return counts


def _weighted(rng: random.Random, pairs: tuple[tuple[str, float], ...]) -> str:
    x = rng.random() * sum(w for _, w in pairs)
    for k, w in pairs:
        x -= w
        if x < 0:
            return k
    return pairs[-1][0]


def _date(rng: random.Random, year: int) -> str:
    m = rng.randint(1, 12)
    d = rng.randint(1, 28)
    return f"{year:04d}-{m:02d}-{d:02d}"


class _Builder:
    def __init__(self, seed: int, n_pages: int):
        self.seed = seed
        self.rng = random.Random(f"kimi-world:{seed}:{n_pages}")
        self.book = N.NameBook()
        self.entities: list[Entity] = []
        self.by_type: dict[str, list[Entity]] = defaultdict(list)
        self.slugs: set[str] = set()
        self.counts = _counts(n_pages)

    def new(self, etype: str, name: str, slug: str | None = None) -> Entity:
        slug = slug or name.replace(" ", "_")
        if slug in self.slugs:
            raise AssertionError(f"duplicate slug {slug}")
        self.slugs.add(slug)
        e = Entity(id=f"E{len(self.entities):07d}", etype=etype, name=name, slug=slug)
        self.entities.append(e)
        self.by_type[etype].append(e)
        return e

    # ---- places --------------------------------------------------------------------------------------------
    def places(self) -> None:
        rng = self.rng
        for _ in range(self.counts["country"]):
            c = self.new("country", self.book.unique(N.country_name, rng))
            c.attrs["established"] = rng.randint(1600, 1995)
            c.attrs["area"] = round(rng.uniform(8_000, 900_000), 1)
            c.attrs["currency"] = f"{N.word(rng, (2, 2))} {rng.choice(('crown', 'mark', 'florin', 'taler'))}"
        countries = self.by_type["country"]
        for i in range(self.counts["city"]):
            city = self.new("city", self.book.unique(N.city_name, rng))
            country = countries[i % len(countries)] if i < 2 * len(countries) else rng.choice(countries)
            city.attrs["country"] = country.id
            country.lists.append(city.id)
            city.attrs["founded"] = rng.randint(700, 1900)
            city.attrs["area"] = round(rng.uniform(20, 1500), 1)
        for country in countries:
            cities = [self.entity(c) for c in country.lists]
            country.attrs["capital"] = rng.choice(cities).id
        # population tables by census year; infobox shows the last census
        self.tables: dict[str, list[Table]] = {}
        for city in self.by_type["city"]:
            pop = rng.randint(20_000, 2_500_000)
            rows = []
            for year in range(1970, 2030, 10):
                rows.append((str(year), pop))
                pop = max(5_000, int(pop * rng.uniform(0.9, 1.35)))
            city.attrs["population"] = rows[-1][1]
            self.tables[city.id] = [
                Table(city.id, "Population by census year", ("Census year", "Population"), tuple(rows), "Demographics")
            ]
        for country in countries:
            total = sum(self.entity(c).attrs["population"] for c in country.lists)
            country.attrs["population"] = int(total * rng.uniform(1.5, 4.0))
            base = rng.randint(20_000, 600_000)
            rows = tuple(
                (m, int(base * rng.uniform(0.6, 1.6)))
                for m in MONTHS
            )
            self.tables[country.id] = [
                Table(country.id, "Monthly visitor arrivals in 2019", ("Month", "Visitors"), rows, "Tourism")
            ]

    def entity(self, eid: str) -> Entity:
        return self.entities[int(eid[1:])]

    # ---- people --------------------------------------------------------------------------------------------
    def people(self) -> None:
        rng = self.rng
        cities = self.by_type["city"]
        n = self.counts["person"]
        families = [N.surname(rng) for _ in range(max(5, n // 3))]
        made: list[Entity] = []
        for _ in range(n):
            occupation = _weighted(rng, OCCUPATIONS)
            if made and rng.random() < HOMONYM_RATE:
                twin = rng.choice(made)
                if not twin.homonym and twin.attrs["occupation"] != occupation:
                    p = self._person(twin.name, occupation, homonym_of=twin)
                    made.append(p)
                    continue
            family = rng.choice(families) if rng.random() < 0.5 else None
            name = self.book.unique(lambda r, f=family: N.person_name(r, f), rng)
            made.append(self._person(name, occupation))
        for p in made:
            p.attrs["born"] = _date(rng, rng.randint(1890, 2000))
            p.attrs["birthplace"] = rng.choice(cities).id
            p.attrs["height"] = rng.randint(150, 200)

    def _person(self, name: str, occupation: str, homonym_of: Entity | None = None) -> Entity:
        if homonym_of is None:
            p = self.new("person", name)
        else:
            # both namesakes get qualified slugs; the bare name becomes a disambiguation page
            if not homonym_of.homonym:
                self.slugs.discard(homonym_of.slug)
                homonym_of.slug = f"{homonym_of.name}_({homonym_of.attrs['occupation']})".replace(" ", "_")
                self.slugs.add(homonym_of.slug)
                homonym_of.homonym = True
            p = self.new("person", name, f"{name}_({occupation})".replace(" ", "_"))
            p.homonym = True
        p.attrs["occupation"] = occupation
        return p

    # ---- organizations -------------------------------------------------------------------------------------
    def organizations(self) -> None:
        rng = self.rng
        people = self.by_type["person"]
        cities = self.by_type["city"]
        founders = [p for p in people if int(p.attrs["born"][:4]) <= 1980]
        industries = ["publishing", "film", "music"] + list(INDUSTRIES)
        n_companies = self.counts["company"]
        for i in range(n_companies):
            industry = (
                industries[i]
                if i < len(industries)
                else (
                    rng.choice(("publishing", "publishing", "film", "music"))
                    if rng.random() < 0.5
                    else rng.choice(INDUSTRIES)
                )
            )
            name = self.book.unique(lambda r, ind=industry: N.company_name(r, ind), rng)
            self._company(name, industry, founders, cities)
            if rng.random() < NEAR_DUP_RATE:
                dup = N.near_duplicate(name, rng)
                if self.book.take(dup):
                    self._company(dup, industry, founders, cities)
        for _ in range(self.counts["university"]):
            city = rng.choice(cities)
            name = self.book.unique(
                lambda r, c=city: rng.choice(
                    (
                        f"University of {c.name}",
                        f"{c.name} Institute of Technology",
                        f"{N.word(r, (2, 2))} College",
                        f"{c.name} Polytechnic",
                    )
                ),
                rng,
            )
            u = self.new("university", name)
            founder = rng.choice(founders)
            u.attrs["founded"] = rng.randint(int(founder.attrs["born"][:4]) + 25, 2015)
            u.attrs["founder"] = founder.id
            u.attrs["location"] = city.id
            u.attrs["students"] = rng.randint(800, 60_000)
        for _ in range(self.counts["society"]):
            city = rng.choice(cities)
            s = self.new("society", self.book.unique(lambda r, c=city: N.society_name(r, c.name), rng))
            founder = rng.choice(founders)
            s.attrs["founded"] = rng.randint(int(founder.attrs["born"][:4]) + 20, 2015)
            s.attrs["founder"] = founder.id
            s.attrs["headquarters"] = city.id
            s.attrs["focus"] = s.name.split()[-2].lower()

    def _company(self, name: str, industry: str, founders: list[Entity], cities: list[Entity]) -> None:
        rng = self.rng
        c = self.new("company", name)
        founder = rng.choice(founders)
        born = int(founder.attrs["born"][:4])
        c.attrs["founded"] = rng.randint(born + 22, min(2020, born + 70))
        c.attrs["founder"] = founder.id
        c.attrs["headquarters"] = rng.choice(cities).id
        c.attrs["industry"] = industry
        c.attrs["employees"] = rng.randint(12, 90_000)
        start = max(c.attrs["founded"] + 1, 2023 - rng.randint(5, 9))
        revenue = rng.randint(5, 9_000)
        rows = []
        for year in range(start, 2024):
            rows.append((str(year), revenue))
            revenue = max(1, int(revenue * rng.uniform(0.8, 1.3)))
        if not rows:
            rows = [("2023", revenue)]
        c.attrs["revenue"] = rows[-1][1]
        if len(rows) >= 4:
            self.tables[c.id] = [
                Table(
                    c.id, "Annual revenue", ("Year", "Revenue (million credits)"), tuple(rows), "Financial performance"
                )
            ]

    def roles(self) -> None:
        """Links that need both people and organizations: CEOs, mayors, heads of state, memberships, alma maters."""
        rng = self.rng
        people = self.by_type["person"]
        adults = [p for p in people if int(p.attrs["born"][:4]) <= 1990]
        for c in self.by_type["company"]:
            c.attrs["ceo"] = rng.choice(adults).id
        for city in self.by_type["city"]:
            city.attrs["mayor"] = rng.choice(adults).id
        for country in self.by_type["country"]:
            country.attrs["leader"] = rng.choice(adults).id
        societies = self.by_type["society"]
        universities = self.by_type["university"]
        by_country: dict[str, list[Entity]] = defaultdict(list)
        for city in self.by_type["city"]:
            by_country[city.attrs["country"]].append(city)
        for p in people:
            if rng.random() < 0.45:
                s = rng.choice(societies)
                p.attrs["member_of"] = s.id
                s.lists.append(p.id)
                if rng.random() < 0.6:  # members cluster around the society's country: set questions get answers
                    home = self.entity(s.attrs["headquarters"]).attrs["country"]
                    p.attrs["birthplace"] = rng.choice(by_country[home]).id
            if rng.random() < DEEP_RATE:
                p.deep["alma_mater"] = rng.choice(universities).id

    # ---- works and events ----------------------------------------------------------------------------------
    def works(self) -> None:
        rng = self.rng
        people = self.by_type["person"]
        cities = self.by_type["city"]
        companies = self.by_type["company"]
        by_job: dict[str, list[Entity]] = defaultdict(list)
        for p in people:
            by_job[p.attrs["occupation"]].append(p)
        by_industry: dict[str, list[Entity]] = defaultdict(list)
        for c in companies:
            by_industry[c.attrs["industry"]].append(c)
        spec = (
            ("book", "writer", "publishing", "author", "publisher", "setting"),
            ("film", "film director", "film", "director", "studio", "filming_location"),
            ("album", "musician", "music", "artist", "label", "recorded_in"),
        )
        for etype, job, industry, who_key, org_key, deep_key in spec:
            creators = by_job[job] or people
            # a few prolific creators: Zipf-like draw over a shuffled pool
            pool = list(creators)
            rng.shuffle(pool)
            cum, acc = [], 0.0
            for i in range(len(pool)):
                acc += 1.0 / (i + 1) ** 0.7
                cum.append(acc)
            for _ in range(self.counts[etype]):
                w = self.new(etype, self.book.unique(lambda r, k=etype: N.title(r, k), rng))
                creator = rng.choices(pool, cum_weights=cum)[0]
                org = rng.choice(by_industry[industry] or companies)
                born = int(creator.attrs["born"][:4])
                lo = max(born + 20, org.attrs["founded"])
                year = rng.randint(lo, max(lo, 2024))
                w.attrs[who_key] = creator.id
                w.attrs[org_key] = org.id
                creator.lists.append(w.id)
                if etype == "book":
                    w.attrs["published"] = year
                    w.attrs["pages"] = rng.randint(90, 980)
                    w.attrs["genre"] = rng.choice(GENRES)
                elif etype == "film":
                    w.attrs["released"] = _date(rng, year)
                    w.attrs["runtime"] = rng.randint(72, 190)
                    w.attrs["language"] = rng.choice(LANGUAGES)
                else:
                    w.attrs["released"] = _date(rng, year)
                    w.attrs["tracks"] = rng.randint(6, 22)
                    w.attrs["length"] = rng.randint(28, 80)
                if rng.random() < DEEP_RATE:
                    w.deep[deep_key] = rng.choice(cities).id

    def events(self) -> None:
        rng = self.rng
        orgs = self.by_type["company"] + self.by_type["society"] + self.by_type["university"]
        people = self.by_type["person"]
        for _ in range(self.counts["event"]):
            city = rng.choice(self.by_type["city"])
            ev = self.new("event", self.book.unique(lambda r, c=city: N.event_name(r, c.name), rng))
            org = rng.choice(orgs)
            ev.attrs["location"] = city.id
            ev.attrs["organizer"] = org.id
            first = rng.randint(org.attrs["founded"], max(org.attrs["founded"], 2016))
            ev.attrs["first_held"] = first
            ev.attrs["frequency"] = rng.choice(("annual", "annual", "biennial"))
            if rng.random() < DEEP_RATE:
                winners = [
                    p for p in rng.sample(people, min(30, len(people))) if int(p.attrs["born"][:4]) <= first - 15
                ]
                if winners:
                    ev.deep["first_winner"] = winners[0].id
            if ev.attrs["frequency"] == "annual" and first <= 2016:
                start = max(first, 2023 - rng.randint(5, 8))
                att = rng.randint(800, 120_000)
                rows = []
                for year in range(start, 2024):
                    rows.append((str(year), att))
                    att = max(100, int(att * rng.uniform(0.8, 1.25)))
                self.tables[ev.id] = [
                    Table(ev.id, "Attendance by year", ("Year", "Attendance"), tuple(rows), "Attendance")
                ]

    def deep_literals(self) -> None:
        rng = self.rng
        for country in self.by_type["country"]:
            if rng.random() < DEEP_RATE:
                country.deep["national_animal"] = f"{rng.choice(N.COLORS)} {rng.choice(N.ANIMALS)}"
        for city in self.by_type["city"]:
            if rng.random() < DEEP_RATE:
                city.deep["landmark"] = f"{N.word(rng, (2, 2))} {rng.choice(LANDMARKS)}"
        for c in self.by_type["company"]:
            if rng.random() < DEEP_RATE:
                c.deep["original_name"] = self.book.unique(
                    lambda r: (
                        f"{N.word(r, (2, 2))} {r.choice(('Trading Company', 'Workshop', 'Partners', 'Cooperative'))}"
                    ),
                    rng,
                )
        for u in self.by_type["university"]:
            if rng.random() < DEEP_RATE:
                u.deep["mascot"] = f"{rng.choice(N.COLORS)} {rng.choice(N.ANIMALS)}"
        for s in self.by_type["society"]:
            if rng.random() < DEEP_RATE:
                others = [
                    c
                    for c in rng.sample(self.by_type["city"], min(5, len(self.by_type["city"])))
                    if c.id != s.attrs["headquarters"]
                ]
                if others:
                    s.deep["meeting_place"] = others[0].id

    # ---- conflicts and auxiliary pages ---------------------------------------------------------------------
    def conflicts(self) -> list[Conflict]:
        rng = self.rng
        out = []
        targets = {
            "company": ("founded", "Founded"),
            "university": ("founded", "Founded"),
            "society": ("founded", "Founded"),
            "city": ("founded", "Founded"),
            "person": ("born", "Born"),
            "film": ("released", "Release date"),
        }
        for e in self.entities:
            if e.etype not in targets or e.homonym or rng.random() >= CONFLICT_RATE:
                continue
            key, label = targets[e.etype]
            wiki = e.attrs[key]
            shift = rng.choice((-3, -2, -1, 1, 2, 3))
            if isinstance(wiki, int):
                other = wiki + shift
            else:
                other = f"{int(wiki[:4]) + shift:04d}{wiki[4:]}"
            out.append(Conflict(e.id, key, label, wiki, other, ARCHIVE + e.slug))
        return out

    def aux_pages(self, conflicts: list[Conflict]) -> list[AuxPage]:
        from .model import WIKI

        pages: list[AuxPage] = []
        orgs_in: dict[str, list[str]] = defaultdict(list)
        people_from: dict[str, list[str]] = defaultdict(list)
        for e in self.entities:
            if e.etype in ORG_TYPES:
                city = e.attrs.get("headquarters") or e.attrs.get("location")
                orgs_in[self.entity(city).attrs["country"]].append(e.id)
            elif e.etype == "person":
                people_from[self.entity(e.attrs["birthplace"]).attrs["country"]].append(e.id)
        for country in self.by_type["country"]:
            pages.append(
                AuxPage(
                    "list_cities",
                    f"{WIKI}List_of_cities_in_{country.slug}",
                    f"List of cities in {country.name}",
                    (country.id,),
                )
            )
            if orgs_in[country.id]:
                pages.append(
                    AuxPage(
                        "list_orgs",
                        f"{WIKI}List_of_organizations_in_{country.slug}",
                        f"List of organizations in {country.name}",
                        (country.id, *orgs_in[country.id]),
                    )
                )
            if people_from[country.id]:
                pages.append(
                    AuxPage(
                        "category_people",
                        f"{WIKI}Category:People_from_{country.slug}",
                        f"Category:People from {country.name}",
                        (country.id, *people_from[country.id]),
                    )
                )
        # disambiguation: exact namesakes (the bare name), shared surnames, near-duplicate organization names
        groups: dict[str, list[str]] = {}
        for p in self.by_type["person"]:
            if p.homonym:
                groups.setdefault(p.name, []).append(p.id)
        namesakes = list(groups)
        surname: dict[str, list[str]] = {}
        for p in self.by_type["person"]:
            surname.setdefault(p.name.split()[-1], []).append(p.id)
        for fam, ids in surname.items():
            if len(ids) >= 3 and fam not in groups and (fam + " (surname)") not in self.book:
                groups[fam + " (surname)"] = ids
        first_word: dict[str, list[str]] = {}
        by_rest: dict[str, list[Entity]] = {}
        for c in self.by_type["company"]:
            first_word.setdefault(c.name.split()[0], []).append(c.id)
            by_rest.setdefault(c.name.split(" ", 1)[1] if " " in c.name else "", []).append(c)
        for c in self.by_type["company"]:
            parts = c.name.split()
            if parts[-1] in ("Group", "International", "Holdings", "Company") and len(first_word[parts[0]]) == 1:
                # a near-duplicate: find its original by the respelled first word and shared middle words
                mid = " ".join(parts[1:-1])
                twins = [
                    o.id
                    for o in by_rest.get(mid, ())
                    if o.id != c.id and o.name.split()[0].lower()[:2] == parts[0].lower()[:2]
                ]
                if twins:
                    key = parts[0] + " (disambiguation)"
                    if key not in groups:
                        groups[key] = [twins[0], c.id]
        for key, ids in groups.items():
            if key in namesakes or self.book.take(key):
                pages.append(AuxPage("disambiguation", WIKI + key.replace(" ", "_"), key, tuple(ids)))
        for c in conflicts:
            e = self.entity(c.subject)
            pages.append(AuxPage("archive", c.archive_url, f"{e.name} (Almanac Archive)", (e.id,)))
        return pages


def generate_world(seed: int = 0, n_pages: int = 2000) -> World:
    """Generate a world of about ``n_pages`` pages (entity articles plus list, category, disambiguation and
    archive pages). Deterministic: the same ``seed`` and ``n_pages`` give the same world, byte for byte.

    >>> w = generate_world(seed=3, n_pages=300)
    >>> 240 <= len(w) <= 360 and w.fingerprint() == generate_world(seed=3, n_pages=300).fingerprint()
    True
    """
    b = _Builder(seed, n_pages)
    b.places()
    b.people()
    b.organizations()
    b.roles()
    b.works()
    b.events()
    b.deep_literals()
    conflicts = b.conflicts()
    aux = b.aux_pages(conflicts)
    return World(seed, b.entities, aux, b.tables, conflicts, n_pages=n_pages)
