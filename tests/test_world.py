"""The generated world: determinism, scale, page anatomy, deep facts, tables, conflicts, links."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from kimi_env.world import DEEP, SCHEMA, generate_world
from kimi_env.world.model import ARCHIVE, WIKI, fmt_date, render_value

ROOT = Path(__file__).resolve().parents[1]
CLI = (
    "import argparse, sys\n"
    "from kimi_env.world.cli import register\n"
    "p = argparse.ArgumentParser(); register(p.add_subparsers(required=True))\n"
    "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
)


def run_cli(args: list[str], hashseed: str = "0") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    return subprocess.run(
        [sys.executable, "-c", CLI, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )


@pytest.fixture(scope="module")
def world():
    return generate_world(seed=0, n_pages=800)


@pytest.fixture(scope="module")
def pages(world):
    return {d.url: d for d in world.documents()}


def text_of(html: str) -> str:
    soup = BeautifulSoup(html, "lxml")
    return re.sub(r"\s+", " ", soup.body.get_text(" ")).strip()


def test_same_seed_same_bytes_across_processes(tmp_path):
    outs = []
    for hashseed in ("1", "987"):
        d = tmp_path / f"h{hashseed}"
        run_cli(["world", "build", "--seed", "5", "--pages", "500", "--out", str(d / "w")], hashseed)
        run_cli(
            [
                "synth",
                "--n",
                "300",
                "--seed",
                "2",
                "--world-seed",
                "5",
                "--pages",
                "500",
                "--out",
                str(d / "tasks.jsonl"),
            ],
            hashseed,
        )
        outs.append(d)
    for name in ("w/documents.jsonl", "w/facts.jsonl", "w/tables.jsonl", "tasks.jsonl"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    assert len((outs[0] / "tasks.jsonl").read_text().splitlines()) == 300
    meta = [json.loads((o / "w/world.json").read_text()) for o in outs]
    assert meta[0]["fingerprint"] == meta[1]["fingerprint"]


def test_seed_changes_world():
    a, b = generate_world(seed=1, n_pages=300), generate_world(seed=2, n_pages=300)
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == generate_world(seed=1, n_pages=300).fingerprint()


def test_default_size():
    # generation speed is measured in benchmarks/bench_world.py (docs/benchmarks.md), not asserted here
    w = generate_world()
    docs = list(w.documents())
    assert 1900 <= len(docs) <= 2100
    assert len({d.url for d in docs}) == len(docs)
    stats = w.stats()
    for t in SCHEMA:
        assert stats[t] > 0, t
    assert stats["deep_facts"] > 100 and stats["tables"] > 100 and stats["conflicts"] > 20


@pytest.mark.slow
def test_scale_20k_pages():
    w = generate_world(seed=3, n_pages=20_000)
    n = sum(1 for _ in w.documents())
    assert 19_000 <= n <= 21_000


@pytest.mark.slow
def test_scale_100k_pages():
    w = generate_world(seed=4, n_pages=100_000)
    assert sum(1 for _ in w.documents()) >= 95_000


def test_html_parses_links_resolve(world, pages):
    urls = set(world.page_urls())
    assert urls == set(pages)
    for url, d in pages.items():
        soup = BeautifulSoup(d.html, "lxml")
        assert soup.h1 is not None and soup.h1.get_text() == d.title
        hrefs = [a["href"] for a in soup.find_all("a")]
        assert list(dict.fromkeys(hrefs)) == list(d.links), url
        for h in hrefs:
            assert h in urls, f"{url} links to missing {h}"
        e = world.by_url(url)
        if e is not None:
            box = soup.find("table", class_="infobox")
            assert box is not None and box.caption.get_text() == e.name
            assert url.startswith(WIKI)


def test_infobox_rows_state_the_facts(world, pages):
    boxes = {}
    for f in world.facts:
        if f.where != "infobox":
            continue
        e = world.entity(f.subject)
        if f.url not in boxes:
            soup = BeautifulSoup(pages[f.url].html, "lxml")
            boxes[f.url] = {tr.th.get_text(): tr.td for tr in soup.find("table", class_="infobox").find_all("tr")}
        rows = boxes[f.url]
        cell = rows[f.label]
        if f.object:
            assert cell.a["href"] == world.entity(f.object).url
        else:
            kind = next(k for key, _, k in SCHEMA[e.etype] if key == f.relation)
            assert cell.get_text().startswith(render_value(kind, f.value))


def test_deep_facts_are_hidden_deep(world, pages):
    n = 0
    for f in world.facts:
        if not f.deep:
            continue
        n += 1
        e = world.entity(f.subject)
        _, _, _, keyword = DEEP[e.etype]
        soup = BeautifulSoup(pages[f.url].html, "lxml")
        box = soup.find("table", class_="infobox").get_text(" ")
        first_p = soup.find("p").get_text(" ")
        text = text_of(pages[f.url].html)
        value = str(f.value)
        assert value not in box and value not in first_p
        assert value not in text[:600], (e.name, value)
        # the keyword marks exactly one sentence, late in the page, and that sentence states the value
        hits = [m.start() for m in re.finditer(re.escape(keyword), text, re.IGNORECASE)]
        assert len(hits) == 1, (e.name, keyword, len(hits))
        assert hits[0] > 1000
        sentence = next(s for s in re.split(r"(?<=\.) ", text) if keyword.lower() in s.lower())
        assert value in sentence
    assert n > 100


def test_tables_of_numbers(world, pages):
    checked = 0
    for eid, tables in world.tables.items():
        e = world.entity(eid)
        soup = BeautifulSoup(pages[e.url].html, "lxml")
        for t in tables:
            table = next(x for x in soup.find_all("table", class_="wikitable") if x.caption.get_text() == t.caption)
            rows = [[c.get_text() for c in tr.find_all(["td", "th"])] for tr in table.find_all("tr")]
            assert rows[0] == list(t.columns)
            assert [(r[0], int(r[1].replace(",", ""))) for r in rows[1:]] == list(t.rows)
            assert len(t.rows) >= 4
            checked += 1
        if e.etype == "city":
            assert e.attrs["population"] == tables[0].rows[-1][1]
    assert checked > 50


def test_conflict_pages_disagree(world, pages):
    assert world.conflicts
    for c in world.conflicts:
        assert c.wiki_value != c.archive_value
        assert c.archive_url.startswith(ARCHIVE) and c.archive_url in pages
        e = world.entity(c.subject)
        soup = BeautifulSoup(pages[e.url].html, "lxml")
        rows = {tr.th.get_text(): tr.td.get_text() for tr in soup.find("table", class_="infobox").find_all("tr")}
        wiki_text = str(c.wiki_value) if isinstance(c.wiki_value, int) else fmt_date(c.wiki_value)
        archive_text = str(c.archive_value) if isinstance(c.archive_value, int) else fmt_date(c.archive_value)
        assert rows[c.label] == wiki_text
        archive = text_of(pages[c.archive_url].html)
        assert archive_text in archive and wiki_text not in archive
        assert world.conflict(e.id, c.label) == c


def test_names_unique_except_deliberate_distractors(world):
    homonyms = 0
    for e in world.entities:
        same = world.by_name(e.name)
        if len(same) > 1:
            homonyms += 1
            assert all(x.etype == "person" and x.homonym for x in same)
            assert e.slug != e.name.replace(" ", "_")  # qualified slug; the bare name is a disambiguation page
            assert world.document(WIKI + e.name.replace(" ", "_")) is not None
    disamb = [p for p in world.aux_pages if p.kind == "disambiguation"]
    assert disamb and any(p.title.endswith("(surname)") for p in disamb)
    companies = [e.name for e in world.entities if e.etype == "company"]
    assert any(n.split()[-1] in ("Group", "International", "Holdings", "Company") for n in companies)
    big = generate_world(seed=0, n_pages=3000)
    assert any(len(big.by_name(e.name)) > 1 for e in big.entities)


def test_world_is_temporally_consistent(world):
    def year(v):
        return v if isinstance(v, int) else int(v[:4])

    for e in world.entities:
        a = e.attrs
        if "founder" in a:
            assert year(world.entity(a["founder"]).attrs["born"]) < a["founded"]
        for who, when in (("author", "published"), ("director", "released"), ("artist", "released")):
            if who in a:
                assert year(world.entity(a[who]).attrs["born"]) < year(a[when])
        if e.etype == "city":
            assert world.entity(a["country"]).attrs["population"] > a["population"]


def test_lookups(world):
    e = next(x for x in world.entities if x.etype == "film")
    assert world.by_name(e.name.upper()) == [e]
    assert world.by_url(e.url) is e
    assert world.entity(e.id) is e
    assert world.document(e.url).title == e.name
    assert world.document(WIKI + "No_such_page") is None
    assert {f.label for f in world.facts_about(e.id)} >= {"Directed by", "Release date"}
