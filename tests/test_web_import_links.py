"""Importing a folder of saved pages: links between the files by relative path reach the pages they name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kimi_env.tools.browse import BrowseTool
from kimi_env.web.corpus import Corpus
from kimi_env.web.importers import import_html_dir


def _site(root: Path) -> Path:
    (root / "animals").mkdir(parents=True)
    (root / "index.html").write_text(
        '<html><head><title>Zoo</title><link rel="canonical" href="https://zoo.example/"></head><body>'
        '<p>See the <a href="animals/okapi.html#diet">okapi</a>, <a href="animals/">all animals</a>, '
        '<a href="animals/index.html">the animal index</a> and <a href="https://elsewhere.example/x">a real site</a>.'
        "</p></body></html>"
    )
    (root / "animals" / "okapi.html").write_text(
        '<html><head><title>Okapi</title><link rel="canonical" href="https://zoo.example/wiki/Okapi"></head>'
        '<body><h1>Okapi</h1><p id="diet">Okapis eat leaves. Back to <a href="../index.html">the zoo</a>.</p>'
        "</body></html>"
    )
    (root / "animals" / "index.html").write_text(
        "<html><head><title>Animals</title></head><body><p><a href='okapi.html'>Okapi</a></p></body></html>"
    )
    return root


def test_relative_links_between_files_resolve_to_the_imported_urls(tmp_path: Path) -> None:
    docs = {d.url: d for d in import_html_dir(_site(tmp_path / "site"))}
    assert set(docs) == {"https://zoo.example/", "https://zoo.example/wiki/Okapi", "https://offline.invalid/animals/"}
    home = docs["https://zoo.example/"]
    assert home.links == (
        "https://zoo.example/wiki/Okapi",
        "https://offline.invalid/animals/",
        "https://elsewhere.example/x",
    )
    assert docs["https://zoo.example/wiki/Okapi"].links == ("https://zoo.example/",)
    assert docs["https://offline.invalid/animals/"].links == ("https://zoo.example/wiki/Okapi",)


def test_browser_follows_a_relative_link_to_a_page_stored_under_its_canonical_url(tmp_path: Path) -> None:
    corpus = Corpus.build(import_html_dir(_site(tmp_path / "site")), tmp_path / "corpus")
    tool = BrowseTool(corpus)
    try:
        r = tool.call(url="https://zoo.example/")
        assert r.ok and "[1] okapi" in r.content, r.content
        r = tool.call(link=1)
        assert r.ok and "Okapis eat leaves." in r.content and tool.current_url == "https://zoo.example/wiki/Okapi"
        r = tool.call(link=1)  # ../index.html, back to the page stored under https://zoo.example/
        assert r.ok and tool.current_url == "https://zoo.example/"
        r = tool.call(link=2)  # animals/ -> the folder's index.html, stored under its path
        assert r.ok and "Okapi" in r.content and tool.current_url == "https://offline.invalid/animals/"
    finally:
        tool.close()


def test_cli_says_where_urls_came_from(tmp_path: Path) -> None:
    site = _site(tmp_path / "site")
    out = subprocess.run(
        [sys.executable, "-m", "kimi_env.cli", "corpus", "import", str(site), "--out", str(tmp_path / "c")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "1 of 3 pages declare no URL" in out.stdout and "https://offline.invalid/" in out.stdout
    assert "--base-url" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "kimi_env.cli", "corpus", "import", str(site), "--out", str(tmp_path / "d"),
         "--base-url", "https://zoo.example/"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "under https://zoo.example/ (given with --base-url)" in out.stdout
    assert "https://zoo.example/animals/" in set(Corpus.open(tmp_path / "d").urls())


def test_parallel_import_gives_the_same_documents(tmp_path: Path, monkeypatch) -> None:
    import kimi_env.web.importers as importers

    site = _site(tmp_path / "site")
    serial = list(import_html_dir(site, workers=1))
    monkeypatch.setattr(importers, "PARALLEL_MIN_FILES", 1)
    parallel = list(import_html_dir(site, workers=2))
    assert parallel == serial
