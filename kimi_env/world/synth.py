"""Task synthesis from a world's fact graph.

Each candidate ``i`` is drawn with its own ``random.Random`` seeded from ``(seed, world seed, i)``, so a task set
is a deterministic function of the seeds and can be extended without changing its prefix. The answer of each
task is computed directly from the entities; the funnel (:mod:`.funnel`) re-derives it independently by running
the task's plan (:mod:`.plan`, which documents the plan format) against the fact graph.

Kinds: ``lookup``, ``multihop``, ``comparison``, ``aggregation``, ``arithmetic``, ``date_arithmetic``, ``set``,
``browse_only``, ``conflict``.

Metadata of every task: ``kind``, ``template``, ``required_tools``, ``hops``, ``difficulty`` (1-5),
``evidence_urls`` (the pages of the entities the question names and of a source it names; intermediate pages
would reveal intermediate answers, so the full list is private in ``_evidence_urls``), ``plan`` and, after the
funnel, ``split``. Private: ``_evidence_urls``, ``_world`` (the ``generate_world`` arguments ``seed`` and
``n_pages`` of the world it was drawn from, and its actual page count),
``_start_ids``, ``_signature`` (template + starting entities, for near-duplicate removal).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable
from typing import Any

from ..tasks import Task
from .model import ARCHIVE_NAME, DEEP, ORG_TYPES, Entity, World, date_aliases, year_of

KINDS = (
    "lookup",
    "multihop",
    "comparison",
    "aggregation",
    "arithmetic",
    "date_arithmetic",
    "set",
    "browse_only",
    "conflict",
)
KIND_WEIGHTS = {
    "lookup": 0.11,
    "multihop": 0.22,
    "comparison": 0.12,
    "aggregation": 0.11,
    "arithmetic": 0.11,
    "date_arithmetic": 0.10,
    "set": 0.08,
    "browse_only": 0.10,
    "conflict": 0.05,
}
WORKS = ("book", "film", "album")

# Entity-valued hops: type -> [(attribute key, label, phrase, deep)]
HOPS: dict[str, tuple[tuple[str, str, str, bool], ...]] = {
    "book": (
        ("author", "Author", "the author of {x}", False),
        ("publisher", "Publisher", "the publisher of {x}", False),
        ("setting", "Setting", "the city in which {x} is set", True),
    ),
    "film": (
        ("director", "Directed by", "the director of {x}", False),
        ("studio", "Production company", "the company that produced {x}", False),
        ("filming_location", "Filming location", "the city where {x} was filmed", True),
    ),
    "album": (
        ("artist", "Artist", "the artist who made {x}", False),
        ("label", "Label", "the record label that released {x}", False),
        ("recorded_in", "Recording location", "the city where {x} was recorded", True),
    ),
    "person": (
        ("birthplace", "Place of birth", "the birthplace of {x}", False),
        ("member_of", "Member of", "the society that {x} belongs to", False),
        ("alma_mater", "Alma mater", "the university where {x} studied", True),
    ),
    "company": (
        ("founder", "Founder", "the founder of {x}", False),
        ("headquarters", "Headquarters", "the city where {x} is headquartered", False),
        ("ceo", "CEO", "the CEO of {x}", False),
    ),
    "university": (
        ("founder", "Founder", "the founder of {x}", False),
        ("location", "Location", "the city where {x} is located", False),
    ),
    "society": (
        ("founder", "Founder", "the founder of {x}", False),
        ("headquarters", "Headquarters", "the city where {x} is headquartered", False),
        ("meeting_place", "Meeting place", "the city where {x} holds its gatherings", True),
    ),
    "city": (
        ("country", "Country", "the country where {x} is located", False),
        ("mayor", "Mayor", "the mayor of {x}", False),
    ),
    "country": (
        ("capital", "Capital", "the capital of {x}", False),
        ("leader", "Head of state", "the head of state of {x}", False),
    ),
    "event": (
        ("location", "Location", "the host city of {x}", False),
        ("organizer", "Organizer", "the organizer of {x}", False),
        ("first_winner", "First winner", "the first winner of {x}", True),
    ),
}
# Literal final attributes: type -> [(key, label, question template, answer kind)]
FINALS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "person": (
        ("born", "Born", "When was {x} born?", "date"),
        ("born", "Born", "In what year was {x} born?", "year"),
        ("height", "Height", "How tall is {x}, in centimetres?", "int"),
        ("occupation", "Occupation", "What is the occupation of {x}?", "text"),
    ),
    "company": (
        ("founded", "Founded", "In what year was {x} founded?", "year"),
        ("employees", "Employees", "How many employees does {x} have?", "int"),
        ("revenue", "Revenue", "What was the 2023 revenue of {x}, in millions of credits?", "int"),
        ("industry", "Industry", "In which industry does {x} operate?", "text"),
    ),
    "city": (
        ("population", "Population", "What was the population of {x} at the 2020 census?", "int"),
        ("founded", "Founded", "In what year was {x} founded?", "year"),
        ("area", "Area", "What is the area of {x}, in square kilometres?", "float"),
    ),
    "country": (
        ("population", "Population", "What is the population of {x}?", "int"),
        ("established", "Established", "In what year was {x} established as a state?", "year"),
        ("currency", "Currency", "What is the currency of {x}?", "text"),
    ),
    "university": (
        ("founded", "Founded", "In what year was {x} founded?", "year"),
        ("students", "Students", "How many students does {x} have?", "int"),
    ),
    "society": (("founded", "Founded", "In what year was {x} founded?", "year"),),
    "book": (
        ("published", "Published", "In what year was {x} published?", "year"),
        ("pages", "Pages", "How many pages does {x} have?", "int"),
        ("genre", "Genre", "What is the genre of {x}?", "text"),
    ),
    "film": (
        ("released", "Release date", "When was {x} released?", "date"),
        ("runtime", "Running time", "What is the running time of {x}, in minutes?", "int"),
        ("language", "Language", "In what language is {x}?", "text"),
    ),
    "album": (
        ("released", "Released", "When was {x} released?", "date"),
        ("tracks", "Tracks", "How many tracks does {x} have?", "int"),
        ("length", "Length", "How long is {x}, in minutes?", "int"),
    ),
    "event": (("first_held", "First held", "In what year was {x} first held?", "year"),),
}
WHO = {
    "person": "Who is {p}?",
    "city": "Which city is {p}?",
    "country": "Which country is {p}?",
    "company": "Which company is {p}?",
    "university": "Which university is {p}?",
    "society": "Which society is {p}?",
}
DEEP_QUESTIONS = {
    "national_animal": "What is the national animal of {x}?",
    "landmark": "What is the oldest surviving landmark in {x}?",
    "alma_mater": "At which university did {x} study?",
    "original_name": "What was the original name of {x}?",
    "mascot": "What is the mascot of {x}?",
    "meeting_place": "In which city does {x} hold its gatherings?",
    "setting": "In which city is {x} set?",
    "filming_location": "In which city was {x} filmed?",
    "recorded_in": "In which city was {x} recorded?",
    "first_winner": "Who won the inaugural {x}?",
}


def _who(etype: str, phrase: str) -> str:
    """A question asking for the entity a phrase describes."""
    if phrase.startswith(
        ("the city ", "the university ", "the society ", "the company ", "the record label ", "the artist ")
    ):
        q = f"Name {phrase}."
    else:
        q = WHO.get(etype, "Which entity is {p}?").format(p=phrase)
    return q[0].upper() + q[1:]


class _Skip(Exception):
    pass


def _q(e: Entity) -> str:
    """How an entity is named in a question: work titles in quotes."""
    return f'"{e.name}"' if e.etype in WORKS else e.name


def _lk(entity: str, attribute: str, deep: bool = False, source: str | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"op": "lookup", "entity": entity, "attribute": attribute, "deep": deep}
    if deep:
        step["find"] = next(d[3] for d in DEEP.values() if d[1] == attribute)
    step["source"] = source
    return step


def _int_aliases(v: int) -> list[str]:
    out = [str(v), f"{v:,}"]
    return list(dict.fromkeys(out))


def _float_aliases(v: float, digits: int = 1) -> list[str]:
    return list(dict.fromkeys([f"{v:.{digits}f}", f"{v:,.{digits}f}"]))


class Synthesizer:
    """Draws task candidates from a world. Use :func:`synthesize` for the common case."""

    def __init__(self, world: World, seed: int = 0):
        self.w = world
        self.seed = seed
        self.by_type: dict[str, list[Entity]] = {}
        for e in world.entities:
            self.by_type.setdefault(e.etype, []).append(e)
        self.surname_count: dict[str, int] = {}
        for p in self.by_type.get("person", ()):
            s = p.name.split()[-1]
            self.surname_count[s] = self.surname_count.get(s, 0) + 1
        self.with_deep = {t: [e for e in es if e.deep] for t, es in self.by_type.items()}
        self.with_table: dict[str, list[Entity]] = {}
        for t, es in self.by_type.items():
            self.with_table[t] = [e for e in es if e.id in world.tables]
        self.conflicted = [world.entity(c.subject) for c in world.conflicts]
        self.generators: dict[str, Callable[[random.Random], dict[str, Any]]] = {
            "lookup": self.lookup,
            "multihop": self.multihop,
            "comparison": self.comparison,
            "aggregation": self.aggregation,
            "arithmetic": self.arithmetic,
            "date_arithmetic": self.date_arithmetic,
            "set": self.set_,
            "browse_only": self.browse_only,
            "conflict": self.conflict,
        }

    # ---- answers -------------------------------------------------------------------------------------------
    def entity_answers(self, e: Entity) -> list[str]:
        out = [e.name]
        if e.etype == "person" and not e.homonym and len(self.w.by_name(e.name)) == 1:
            s = e.name.split()[-1]
            if self.surname_count.get(s) == 1 and not self.w.by_name(s):
                out.append(s)  # surname-only is an alias only when no other person shares it
        return out

    def literal_answers(self, kind: str, v: Any) -> tuple[list[str], str]:
        if kind == "date":
            return date_aliases(v), "date"
        if kind == "year":
            return [str(year_of(v))], "date"
        if kind == "int":
            return _int_aliases(v), "number"
        if kind == "float":
            return _float_aliases(v), "number"
        if kind == "text" and (
            v.split()[0]
            in ("silver", "grey", "red", "black", "golden", "white", "blue", "spotted", "striped", "copper")
        ):
            return [v, "the " + v], "text"
        return [str(v)], "text"

    # ---- kinds ---------------------------------------------------------------------------------------------
    def _pick(self, rng: random.Random, types: Iterable[str], pool: dict[str, list[Entity]] | None = None) -> Entity:
        pool = pool or self.by_type
        types = [t for t in types if pool.get(t)]
        if not types:
            raise _Skip
        return rng.choice(pool[rng.choice(types)])

    def _sample_same_split(self, rng: random.Random, etype: str, k: int) -> list[Entity]:
        """``k`` distinct entities of one type that all fall in the same train/validation/test split.

        The funnel keeps a task only when its starting entities share a split; drawing them together keeps
        multi-entity kinds (comparisons, aggregations) in every split instead of almost only in train.
        """
        from .funnel import entity_split  # noqa: PLC0415 - funnel imports this module

        if not hasattr(self, "_split_pools"):
            self._split_pools: dict[tuple[str, str], list[Entity]] = {}
        pool = self.by_type.get(etype, [])
        if len(pool) < k:
            raise _Skip
        anchor = rng.choice(pool)
        split = entity_split(self.w.seed, anchor.id)
        key = (etype, split)
        if key not in self._split_pools:
            self._split_pools[key] = [e for e in pool if entity_split(self.w.seed, e.id) == split]
        others = [e for e in self._split_pools[key] if e.id != anchor.id]
        if len(others) < k - 1:
            raise _Skip
        return [anchor, *rng.sample(others, k - 1)]

    def lookup(self, rng: random.Random) -> dict[str, Any]:
        e = self._pick(rng, list(FINALS))
        if rng.random() < 0.35 and e.etype in HOPS:
            key, label, phrase, _ = rng.choice([h for h in HOPS[e.etype] if not h[3]])
            if key not in e.attrs:
                raise _Skip
            o = self.w.entity(e.attrs[key])
            q = _who(o.etype, phrase.format(x=_q(e)))
            return {
                "question": q,
                "answers": self.entity_answers(o),
                "answer_type": "text",
                "plan": [_lk(e.name, label), {"op": "answer", "args": ["$0"]}],
                "start": [e],
                "chain": [e, o],
                "template": f"lookup:{e.etype}:{key}",
            }
        key, label, tmpl, kind = rng.choice(FINALS[e.etype])
        v = e.attrs[key]
        answers, atype = self.literal_answers(kind, v)
        plan = [
            _lk(e.name, label),
            {
                "op": "year" if kind == "year" and label in ("Born", "Release date", "Released") else "answer",
                "args": ["$0"],
            },
        ]
        return {
            "question": tmpl.format(x=_q(e)),
            "answers": answers,
            "answer_type": atype,
            "plan": plan,
            "start": [e],
            "chain": [e],
            "template": f"lookup:{e.etype}:{key}:{kind}",
        }

    def multihop(self, rng: random.Random) -> dict[str, Any]:
        hops = rng.choice((2, 2, 3, 3, 3, 4, 4, 5))
        start = self._pick(rng, list(HOPS))
        chain = [start]
        plan: list[dict[str, Any]] = []
        phrase = _q(start)
        labels = []
        end_on_entity = rng.random() < 0.3
        n_rel = hops if end_on_entity else hops - 1
        cur = start
        for _ in range(n_rel):
            options = []
            for key, label, ph, deep in HOPS.get(cur.etype, ()):
                v = cur.deep.get(key) if deep else cur.attrs.get(key)
                if v is not None and all(v != c.id for c in chain):
                    nxt = self.w.entity(v)
                    if nxt.etype in HOPS or nxt.etype in FINALS:
                        options.append((key, label, ph, deep, nxt))
            if not options:
                raise _Skip
            key, label, ph, deep, nxt = rng.choice(options)
            plan.append(_lk(cur.name if not plan else f"${len(plan) - 1}", label, deep))
            phrase = ph.format(x=phrase)
            labels.append(label)
            chain.append(nxt)
            cur = nxt
        if end_on_entity:
            if cur.etype not in WHO:
                raise _Skip
            q = _who(cur.etype, phrase)
            answers, atype = self.entity_answers(cur), "text"
            plan.append({"op": "answer", "args": [f"${len(plan) - 1}"]})
        else:
            if cur.etype not in FINALS:
                raise _Skip
            key, label, tmpl, kind = rng.choice(FINALS[cur.etype])
            q = tmpl.format(x=phrase)
            answers, atype = self.literal_answers(kind, cur.attrs[key])
            plan.append(_lk(f"${len(plan) - 1}", label))
            labels.append(label)
            op = "year" if kind == "year" and label in ("Born", "Release date", "Released") else "answer"
            plan.append({"op": op, "args": [f"${len(plan) - 1}"]})
        q = q[0].upper() + q[1:]
        return {
            "question": q,
            "answers": answers,
            "answer_type": atype,
            "plan": plan,
            "start": [start],
            "chain": chain,
            "template": f"multihop:{start.etype}:{'/'.join(labels)}",
        }

    COMPARISONS = (
        ("company", "founded", "Founded", "Which was founded earlier, {a} or {b}?", "min"),
        ("company", "employees", "Employees", "Which company has more employees, {a} or {b}?", "max"),
        (
            "city",
            "population",
            "Population",
            "Which city had the larger population at the 2020 census, {a} or {b}?",
            "max",
        ),
        ("city", "founded", "Founded", "Which city was founded first, {a} or {b}?", "min"),
        ("person", "born", "Born", "Who was born first, {a} or {b}?", "min"),
        ("person", "height", "Height", "Who is taller, {a} or {b}?", "max"),
        ("book", "pages", "Pages", "Which book has more pages, {a} or {b}?", "max"),
        ("book", "published", "Published", "Which book was published earlier, {a} or {b}?", "min"),
        ("film", "runtime", "Running time", "Which film has the longer running time, {a} or {b}?", "max"),
        ("film", "released", "Release date", "Which film was released earlier, {a} or {b}?", "min"),
        ("country", "area", "Area", "Which country is larger by area, {a} or {b}?", "max"),
        ("university", "students", "Students", "Which university has more students, {a} or {b}?", "max"),
        ("album", "tracks", "Tracks", "Which album has more tracks, {a} or {b}?", "max"),
    )

    def comparison(self, rng: random.Random) -> dict[str, Any]:
        if rng.random() < 0.25:  # two-hop: compare the founders' births of two organizations
            t = rng.choice(ORG_TYPES)
            a, b = self._sample_same_split(rng, t, 2)
            fa, fb = (self.w.entity(x.attrs["founder"]) for x in (a, b))
            if fa.id == fb.id or fa.attrs["born"] == fb.attrs["born"]:
                raise _Skip
            win = a if fa.attrs["born"] < fb.attrs["born"] else b
            plan = [
                _lk(a.name, "Founder"),
                _lk(b.name, "Founder"),
                _lk("$0", "Born"),
                _lk("$1", "Born"),
                {"op": "compare", "args": ["$2", "$3"], "names": [a.name, b.name], "pick": "min"},
            ]
            return {
                "question": f"Whose founder was born first, {a.name}'s or {b.name}'s?",
                "answers": [win.name],
                "answer_type": "text",
                "plan": plan,
                "start": [a, b],
                "chain": [a, b, fa, fb],
                "template": f"comparison:{t}:founder_born",
            }
        t, key, label, tmpl, pick = rng.choice(self.COMPARISONS)
        a, b = self._sample_same_split(rng, t, 2)
        va, vb = a.attrs[key], b.attrs[key]
        if va == vb:
            raise _Skip
        win = a if (va < vb) == (pick == "min") else b
        plan = [
            _lk(a.name, label),
            _lk(b.name, label),
            {"op": "compare", "args": ["$0", "$1"], "names": [a.name, b.name], "pick": pick},
        ]
        return {
            "question": tmpl.format(a=_q(a), b=_q(b)),
            "answers": [win.name],
            "answer_type": "text",
            "plan": plan,
            "start": [a, b],
            "chain": [a, b],
            "template": f"comparison:{t}:{key}",
        }

    AGGREGATES = (
        ("city", "population", "Population", "What is the combined population of {xs} at the 2020 census?", "sum"),
        ("company", "employees", "Employees", "How many employees do {xs} have in total?", "sum"),
        (
            "company",
            "employees",
            "Employees",
            "What is the average number of employees of {xs}? Round to one decimal place.",
            "mean",
        ),
        (
            "book",
            "pages",
            "Pages",
            "What is the average page count of the books {xs}? Round to one decimal place.",
            "mean",
        ),
        ("university", "students", "Students", "How many students do {xs} have altogether?", "sum"),
        (
            "film",
            "runtime",
            "Running time",
            "What is the mean running time, in minutes, of the films {xs}? Round to one decimal place.",
            "mean",
        ),
    )

    def aggregation(self, rng: random.Random) -> dict[str, Any]:
        r = rng.random()
        if r < 0.5:
            t, key, label, tmpl, op = rng.choice(self.AGGREGATES)
            k = rng.choice((3, 3, 4))
            es = self._sample_same_split(rng, t, k)
            names = [_q(e) for e in es]
            xs = ", ".join(names[:-1]) + " and " + names[-1]
            vals = [e.attrs[key] for e in es]
            plan: list[dict[str, Any]] = [_lk(e.name, label) for e in es]
            digits = 1 if op == "mean" else 0
            plan.append({"op": op, "args": [f"${i}" for i in range(k)], "round": digits})
            total = sum(vals) if op == "sum" else round(sum(vals) / k, 1)
            answers = _int_aliases(total) if op == "sum" else _float_aliases(total)
            return {
                "question": tmpl.format(xs=xs),
                "answers": answers,
                "answer_type": "number",
                "plan": plan,
                "start": es,
                "chain": es,
                "template": f"aggregation:{t}:{key}:{op}",
                "python": True,
            }
        if r < 0.75:
            country = self._pick(rng, ["country"])
            cities = [self.w.entity(c) for c in country.lists]
            if not 2 <= len(cities) <= 12:
                raise _Skip
            total = sum(c.attrs["population"] for c in cities)
            plan = [
                {"op": "list", "entity": country.name, "section": "Cities"},
                {"op": "lookup_each", "entities": "$0", "attribute": "Population", "deep": False, "source": None},
                {"op": "sum", "args": ["$1"], "round": 0},
            ]
            q = (
                f"Add up the 2020 census populations of all the cities listed in the Cities section of the "
                f"KimiWiki article on {country.name}. What is the total?"
            )
            return {
                "question": q,
                "answers": _int_aliases(total),
                "answer_type": "number",
                "plan": plan,
                "start": [country],
                "chain": [country, *cities],
                "template": "aggregation:country:city_population_sum",
                "python": True,
                "browse": True,
            }
        society = self._pick(rng, ["society"])
        members = [self.w.entity(m) for m in society.lists]
        if len(members) < 2:
            raise _Skip
        city = self.w.entity(rng.choice(members).attrs["birthplace"])
        n = sum(m.attrs["birthplace"] == city.id for m in members)
        plan = [
            {"op": "list", "entity": society.name, "section": "Notable members"},
            {"op": "lookup_each", "entities": "$0", "attribute": "Place of birth", "deep": False, "source": None},
            {"op": "filter", "items": "$0", "values": "$1", "cmp": "eq", "value": city.name},
            {"op": "count", "args": ["$2"]},
        ]
        q = f"How many of the notable members of {society.name} listed on its KimiWiki page were born in {city.name}?"
        return {
            "question": q,
            "answers": _int_aliases(n),
            "answer_type": "number",
            "plan": plan,
            "start": [society, city],
            "chain": [society, city, *members],
            "template": "aggregation:society:members_born_in:count",
            "browse": True,
        }

    def arithmetic(self, rng: random.Random) -> dict[str, Any]:
        e = self._pick(rng, ["company", "city", "event", "country"], self.with_table)
        t = self.w.tables[e.id][0]
        keys = [k for k, _ in t.rows]
        base = {"start": [e], "chain": [e], "python": True, "browse": True}

        def step(rows: list[str]) -> dict[str, Any]:
            return {"op": "table", "entity": e.name, "table": t.caption, "column": t.columns[1], "rows": rows}

        if e.etype == "city":
            i, j = sorted(rng.sample(range(len(keys)), 2))
            a, b = t.rows[i][1], t.rows[j][1]
            g = round((b - a) / a * 100, 1)
            q = (
                f"By what percentage did the population of {e.name} change between the {keys[i]} and {keys[j]} "
                f"censuses, according to the census table in its KimiWiki article? Round to one decimal place."
            )
            ans = _float_aliases(g) + [f"{g:.1f}%"]
            return dict(
                question=q,
                answers=ans,
                answer_type="number",
                template="arithmetic:city:growth",
                plan=[step([keys[i], keys[j]]), {"op": "growth", "args": ["$0"], "round": 1}],
                **base,
            )
        if e.etype == "country":
            start = rng.randrange(0, 10)
            months = keys[start : start + rng.choice((2, 3))]
            total = sum(dict(t.rows)[m] for m in months)
            q = (
                f"According to the monthly arrivals table in its KimiWiki article, how many visitors arrived in "
                f"{e.name} in {', '.join(months[:-1])} and {months[-1]} 2019 combined?"
            )
            return dict(
                question=q,
                answers=_int_aliases(total),
                answer_type="number",
                template="arithmetic:country:visitors_sum",
                plan=[step(months), {"op": "sum", "args": ["$0"], "round": 0}],
                **base,
            )
        i = rng.randrange(0, len(keys) - 2)
        j = rng.randrange(i + 2, len(keys))
        rows = keys[i : j + 1]
        vals = [v for k, v in t.rows[i : j + 1]]
        what = "revenue" if e.etype == "company" else "attendance"
        unit = ", in millions of credits" if e.etype == "company" else ""
        op = rng.choice(("sum", "mean", "diff"))
        if op == "sum":
            q = (
                f"According to its KimiWiki article, what was the total {what} of {e.name} from {keys[i]} to "
                f"{keys[j]} inclusive{unit}?"
            )
            return dict(
                question=q,
                answers=_int_aliases(sum(vals)),
                answer_type="number",
                template=f"arithmetic:{e.etype}:sum",
                plan=[step(rows), {"op": "sum", "args": ["$0"], "round": 0}],
                **base,
            )
        if op == "mean":
            m = round(sum(vals) / len(vals), 1)
            q = (
                f"According to its KimiWiki article, what was the average yearly {what} of {e.name} from "
                f"{keys[i]} to {keys[j]} inclusive{unit}? Round to one decimal place."
            )
            return dict(
                question=q,
                answers=_float_aliases(m),
                answer_type="number",
                template=f"arithmetic:{e.etype}:mean",
                plan=[step(rows), {"op": "mean", "args": ["$0"], "round": 1}],
                **base,
            )
        d = vals[-1] - vals[0]
        q = (
            f"By how much did the yearly {what} of {e.name} change from {keys[i]} to {keys[j]}{unit}, according "
            f"to its KimiWiki article? Give a negative number for a decrease."
        )
        return dict(
            question=q,
            answers=_int_aliases(d),
            answer_type="number",
            template=f"arithmetic:{e.etype}:diff",
            plan=[step([keys[j]]), step([keys[i]]), {"op": "diff", "args": ["$0", "$1"]}],
            **base,
        )

    def date_arithmetic(self, rng: random.Random) -> dict[str, Any]:
        r = rng.random()
        if r < 0.4:
            o = self._pick(rng, ORG_TYPES)
            f = self.w.entity(o.attrs["founder"])
            d = o.attrs["founded"] - year_of(f.attrs["born"])
            plan = [
                _lk(o.name, "Founder"),
                _lk("$0", "Born"),
                _lk(o.name, "Founded"),
                {"op": "diff_years", "args": ["$1", "$2"]},
            ]
            q = f"How many years after the birth of its founder was {o.name} founded? (Subtract the years.)"
            return {
                "question": q,
                "answers": _int_aliases(d),
                "answer_type": "number",
                "plan": plan,
                "start": [o],
                "chain": [o, f],
                "template": f"date_arithmetic:{o.etype}:founder_birth",
            }
        if r < 0.7:
            w = self._pick(rng, WORKS)
            who_key, _who_label = {
                "book": ("author", "Author"),
                "film": ("director", "Directed by"),
                "album": ("artist", "Artist"),
            }[w.etype]
            date_key, date_label, verb = {
                "book": ("published", "Published", "published"),
                "film": ("released", "Release date", "released"),
                "album": ("released", "Released", "released"),
            }[w.etype]
            p = self.w.entity(w.attrs[who_key])
            d = year_of(w.attrs[date_key]) - year_of(p.attrs["born"])
            plan = [_lk(p.name, "Born"), _lk(w.name, date_label), {"op": "diff_years", "args": ["$0", "$1"]}]
            q = f"How many years after {p.name}'s birth was {_q(w)} {verb}? (Subtract the years.)"
            return {
                "question": q,
                "answers": _int_aliases(d),
                "answer_type": "number",
                "plan": plan,
                "start": [p, w],
                "chain": [p, w],
                "template": f"date_arithmetic:{w.etype}:creator_birth",
            }
        o = self._pick(rng, ("company", "society"))
        city = self.w.entity(o.attrs["headquarters"])
        d = o.attrs["founded"] - city.attrs["founded"]
        plan = [_lk(city.name, "Founded"), _lk(o.name, "Founded"), {"op": "diff_years", "args": ["$0", "$1"]}]
        q = f"How many years passed between the founding of {city.name} and the founding of {o.name}?"
        return {
            "question": q,
            "answers": _int_aliases(d),
            "answer_type": "number",
            "plan": plan,
            "start": [city, o],
            "chain": [city, o],
            "template": f"date_arithmetic:{o.etype}:city_founding",
        }

    def set_(self, rng: random.Random) -> dict[str, Any]:
        r = rng.random()
        if r < 0.4:
            society = self._pick(rng, ["society"])
            members = [self.w.entity(m) for m in society.lists]
            if len(members) < 2:
                raise _Skip
            city = self.w.entity(rng.choice(members).attrs["birthplace"])
            hits = [m for m in members if m.attrs["birthplace"] == city.id]
            plan = [
                {"op": "list", "entity": society.name, "section": "Notable members"},
                {"op": "lookup_each", "entities": "$0", "attribute": "Place of birth", "deep": False, "source": None},
                {"op": "filter", "items": "$0", "values": "$1", "cmp": "eq", "value": city.name},
            ]
            q = (
                f"Which of the notable members of {society.name} listed on KimiWiki were born in {city.name}? "
                f"Answer as a comma-separated list."
            )
            start, chain, template = [society, city], [society, city, *members], "set:society:members_born_in"
        elif r < 0.7:
            person = self._pick(rng, ["person"])
            works = [self.w.entity(x) for x in person.lists]
            if len(works) < 2:
                raise _Skip
            label = {"book": "Published", "film": "Release date", "album": "Released"}[works[0].etype]
            key = "published" if works[0].etype == "book" else "released"
            years = sorted({year_of(x.attrs[key]) for x in works})
            if len(years) < 2:
                raise _Skip
            cut = rng.choice(years[1:])
            hits = [x for x in works if year_of(x.attrs[key]) < cut]
            verb = "published" if key == "published" else "released"
            plan = [
                {"op": "list", "entity": person.name, "section": "Works"},
                {"op": "lookup_each", "entities": "$0", "attribute": label, "deep": False, "source": None},
                {"op": "filter", "items": "$0", "values": "$1", "cmp": "lt", "value": cut},
            ]
            q = (
                f"Which of the works by {person.name} listed on KimiWiki were {verb} before {cut}? Answer as a "
                f"comma-separated list of titles."
            )
            start, chain, template = [person], [person, *works], "set:person:works_before"
        else:
            country = self._pick(rng, ["country"])
            cities = [self.w.entity(c) for c in country.lists]
            pops = sorted(c.attrs["population"] for c in cities)
            if len(pops) < 3:
                raise _Skip
            k = rng.randrange(1, len(pops))
            lo, hi = pops[k - 1], pops[k]
            if hi - lo < 2:
                raise _Skip
            mag = 10 ** max(0, len(str(hi - lo)) - 1)
            cut = (lo // mag + 1) * mag
            if not lo < cut < hi:
                cut = (lo + hi) // 2
            hits = [c for c in cities if c.attrs["population"] > cut]
            plan = [
                {"op": "list", "entity": country.name, "section": "Cities"},
                {"op": "lookup_each", "entities": "$0", "attribute": "Population", "deep": False, "source": None},
                {"op": "filter", "items": "$0", "values": "$1", "cmp": "gt", "value": cut},
            ]
            q = (
                f"Which cities of {country.name} listed on KimiWiki had more than {cut:,} inhabitants at the 2020 "
                f"census? Answer as a comma-separated list."
            )
            start, chain, template = [country], [country, *cities], "set:country:cities_above"
        if not hits:
            raise _Skip
        names = sorted((h.name for h in hits), key=str.lower)
        answers = [", ".join(names)]
        if len(names) > 1:
            answers.append(", ".join(names[:-1]) + " and " + names[-1])
        return {
            "question": q,
            "answers": answers,
            "answer_type": "list",
            "plan": plan,
            "start": start,
            "chain": chain,
            "template": template,
            "browse": True,
        }

    def browse_only(self, rng: random.Random) -> dict[str, Any]:
        e = self._pick(rng, list(DEEP), self.with_deep)
        key, label, kind, _ = DEEP[e.etype]
        v = e.deep[key]
        if kind == "entity":
            o = self.w.entity(v)
            answers, chain = self.entity_answers(o), [e, o]
        else:
            answers, _ = self.literal_answers("text", v)
            chain = [e]
        q = DEEP_QUESTIONS[key].format(x=_q(e))
        plan = [_lk(e.name, label, deep=True), {"op": "answer", "args": ["$0"]}]
        return {
            "question": q,
            "answers": answers,
            "answer_type": "text",
            "plan": plan,
            "start": [e],
            "chain": chain,
            "template": f"browse_only:{e.etype}:{key}",
            "browse": True,
        }

    def conflict(self, rng: random.Random) -> dict[str, Any]:
        if not self.w.conflicts:
            raise _Skip
        c = rng.choice(self.w.conflicts)
        e = self.w.entity(c.subject)
        use_archive = rng.random() < 0.25
        value = c.archive_value if use_archive else c.wiki_value
        source = c.archive_url if use_archive else e.url
        what = {
            "founded": ("in what year was {x} founded", "year"),
            "born": ("on what date was {x} born", "date"),
            "released": ("on what date was {x} released", "date"),
        }[c.relation]
        clause = what[0].format(x=_q(e))
        if use_archive:
            q = f"Sources disagree about {_q(e)}. According to {ARCHIVE_NAME} (not KimiWiki), {clause}?"
        else:
            q = (
                f"Sources disagree about {_q(e)}. According to its KimiWiki article, which is the authoritative "
                f"source, {clause}?"
            )
        answers, atype = self.literal_answers(what[1], value)
        plan = [_lk(e.name, c.label, source=source), {"op": "answer", "args": ["$0"]}]
        return {
            "question": q,
            "answers": answers,
            "answer_type": atype,
            "plan": plan,
            "start": [e],
            "chain": [e],
            "template": f"conflict:{e.etype}:{c.relation}:{'archive' if use_archive else 'wiki'}",
            "browse": True,
            "sources": [source],
        }

    # ---- assembly ------------------------------------------------------------------------------------------
    def candidate(self, index: int, kinds: tuple[str, ...] | None = None) -> Task | None:
        rng = random.Random(f"synth:{self.seed}:{self.w.seed}:{index}")
        kinds = kinds or KINDS
        weights = [KIND_WEIGHTS[k] for k in kinds]
        kind = rng.choices(kinds, weights)[0]
        for _ in range(8):
            try:
                raw = self.generators[kind](rng)
            except _Skip:
                continue
            return self._task(kind, raw)
        return None

    def _task(self, kind: str, raw: dict[str, Any]) -> Task:
        plan = raw["plan"]
        lookups = [s for s in plan if s["op"] in ("lookup", "lookup_each", "list", "table")]
        deep = any(s.get("deep") for s in lookups)
        # hops: the longest chain of dependent fact-gathering steps
        depth: list[int] = []
        for s in plan:
            refs = [
                v for k, v in s.items() if k in ("entity", "entities", "items", "values") and str(v).startswith("$")
            ]
            refs += [a for a in s.get("args", ()) if str(a).startswith("$")]
            d = max((depth[int(r[1:])] for r in refs), default=0)
            depth.append(d + (1 if s["op"] in ("lookup", "lookup_each", "list", "table") else 0))
        hops = max(depth)
        python = bool(raw.get("python"))
        browse = bool(raw.get("browse")) or deep
        tools = ["search"] + (["browse"] if browse else []) + (["python"] if python else [])
        difficulty = max(1, min(5, hops + int(deep) + int(python) + int(len(lookups) > 3) + int(kind == "set")))
        start: list[Entity] = raw["start"]
        public_evidence = list(dict.fromkeys([e.url for e in start] + raw.get("sources", [])))
        evidence = list(dict.fromkeys(public_evidence + [e.url for e in raw["chain"]]))
        question = raw["question"]
        digest = hashlib.sha256(f"{self.w.seed}|{len(self.w)}|{question}".encode()).hexdigest()[:12]
        meta = {
            "kind": kind,
            "template": raw["template"].split(":")[0] + ":" + raw["template"].split(":")[1]
            if kind == "multihop"
            else raw["template"],
            "required_tools": tools,
            "hops": hops,
            "difficulty": difficulty,
            "evidence_urls": public_evidence,
            "plan": plan,
            "_evidence_urls": evidence,
            "_world": {"seed": self.w.seed, "n_pages": self.w.n_pages, "pages": len(self.w)},
            "_start_ids": [e.id for e in start],
            "_signature": raw["template"] + "|" + ",".join(sorted(e.id for e in start)),
        }
        return Task(
            id=f"kw{self.w.seed}-{digest}",
            question=question,
            answers=tuple(raw["answers"]),
            answer_type=raw["answer_type"],
            metadata=meta,
        )


def synthesize(
    world: World, n: int, seed: int = 0, *, start: int = 0, kinds: Iterable[str] | None = None
) -> list[Task]:
    """Draw candidates ``start .. start+n-1`` (unfiltered; see :func:`kimi_env.world.funnel.build_tasks`)."""
    ks = tuple(kinds) if kinds else None
    if ks:
        bad = [k for k in ks if k not in KINDS]
        if bad:
            from ..errors import unknown_name

            raise unknown_name("task kind", bad[0], KINDS)
    s = Synthesizer(world, seed)
    out = []
    for i in range(start, start + n):
        t = s.candidate(i, ks)
        if t is not None:
            out.append(t)
    return out


def task_json(task: Task) -> str:
    return json.dumps(task.to_dict(), sort_keys=True, ensure_ascii=False)
