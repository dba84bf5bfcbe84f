"""Corpus on disk: build, open, lookups, hashing, importers (JSONL, saved HTML pages)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_web_fixtures import HTML_PAGES, WIKI, build_corpus, make_documents  # noqa: E402

from kimi_env.web.corpus import Corpus, CorpusError, normalize_url  # noqa: E402
from kimi_env.web.document import Document  # noqa: E402
from kimi_env.web.importers import decode_html_bytes, import_html_dir, import_jsonl, import_path  # noqa: E402


def test_build_open_roundtrip(tmp_path: Path) -> None:
    built = build_corpus(tmp_path)
    opened = Corpus.open(tmp_path / "corpus")
    docs = make_documents()
    assert len(opened) == len(docs) == 46
    assert list(opened.urls()) == [d.url for d in docs]
    assert [d.url for d in opened] == [d.url for d in docs]
    assert opened.content_hash == built.content_hash and len(opened.content_hash) == 64
    paris = opened.get(WIKI + "Paris")
    assert paris is not None and paris.html is not None and paris.title == "Paris"
    assert WIKI + "Eiffel_Tower" in paris.links  # links were extracted from the HTML
    filler = opened.get(WIKI + "Filler_3")
    assert filler is not None and filler.html is None and filler.text
    manifest = json.loads((tmp_path / "corpus" / "manifest.json").read_text())
    assert manifest["count"] == 46 and manifest["created_by"].startswith("kimi-env")


def test_lookup_normalizes_urls(tmp_path: Path) -> None:
    c = build_corpus(tmp_path, n_filler=1)
    for variant in (WIKI + "Paris/", WIKI + "Paris#History", "HTTPS://KIMIWIKI.TEST:443/wiki/Paris", f" {WIKI}Paris "):
        doc = c.get(variant)
        assert doc is not None and doc.url == WIKI + "Paris", variant
    assert c.get(WIKI + "paris") is None  # paths stay case-sensitive
    assert c.get(WIKI + "Nope") is None and WIKI + "Nope" not in c
    assert normalize_url("https://a.test/x/?q=1#f") == "https://a.test/x?q=1"


def test_content_hash_is_stable_and_sensitive(tmp_path: Path) -> None:
    a = Corpus.build(make_documents(5), tmp_path / "a")
    b = Corpus.build(make_documents(5), tmp_path / "b")
    assert a.content_hash == b.content_hash
    changed = make_documents(5)
    changed[-1] = Document(changed[-1].url, changed[-1].title, text="different")
    assert Corpus.build(changed, tmp_path / "c").content_hash != a.content_hash


def test_duplicates_and_overwrite(tmp_path: Path) -> None:
    docs = [Document("https://a.test/x", "one", text="1"), Document("https://a.test/x/", "two", text="2")]
    with pytest.raises(CorpusError, match=r"same URL as document #0.*on_duplicate"):
        Corpus.build(docs, tmp_path / "dup")
    assert not (tmp_path / "dup").exists()  # nothing half-written
    assert Corpus.build(docs, tmp_path / "first", on_duplicate="first").get("https://a.test/x").title == "one"
    last = Corpus.build(docs, tmp_path / "last", on_duplicate="last")
    assert len(last) == 1 and last.get("https://a.test/x").title == "two"
    with pytest.raises(CorpusError, match="overwrite=True"):
        Corpus.build(docs[:1], tmp_path / "last")
    assert len(Corpus.build(docs[:1], tmp_path / "last", overwrite=True)) == 1


def test_bad_documents_and_dirs(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="absolute http"):
        Corpus.build([Document("/wiki/A", "A", text="x")], tmp_path / "x")
    with pytest.raises(CorpusError, match="neither html nor text"):
        Corpus.build([Document("https://a.test/", "A")], tmp_path / "y")
    with pytest.raises(CorpusError, match="not a kimi-env corpus.*kimi-env corpus import"):
        Corpus.open(tmp_path)


def test_from_documents_reuses_cache(tmp_path: Path) -> None:
    docs = make_documents(3)
    a = Corpus.from_documents(docs, cache_dir=tmp_path)
    b = Corpus.from_documents(docs, cache_dir=tmp_path)
    assert a.path == b.path and len(a) == 9
    assert Corpus.from_documents(docs[:2], cache_dir=tmp_path).path != a.path


def test_import_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    rows = [
        {"url": "https://a.test/one", "title": "One", "text": "first page", "links": ["/two"]},
        {"url": "https://a.test/two", "html": "<title>Two</title><p>second</p>"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    docs = list(import_jsonl(path))
    assert [d.url for d in docs] == ["https://a.test/one", "https://a.test/two"]
    assert docs[0].links == ("https://a.test/two",)  # resolved against the page URL
    assert docs[1].title == "Two"  # taken from <title> when missing
    c = Corpus.build(import_path(path), tmp_path / "c")
    assert len(c) == 2


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"docs.jsonl:2: invalid JSON"),
        ('["a"]', r"docs.jsonl:2: expected a JSON object, got list"),
        ('{"url": "/rel", "text": "x"}', r"docs.jsonl:2: 'url' must be an absolute"),
        ('{"url": "https://a.test/b", "title": "B"}', r"docs.jsonl:2: neither 'text' nor 'html'.*Fix:"),
        ('{"url": "https://a.test/b", "text": 5}', r"docs.jsonl:2: 'text' must be a string"),
    ],
)
def test_import_jsonl_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"url": "https://a.test/a", "text": "ok"}\n' + line + "\n")
    with pytest.raises(CorpusError, match=message):
        list(import_jsonl(path))


def test_import_html_dir() -> None:
    docs = {d.url: d for d in import_html_dir(HTML_PAGES, base_url="https://cities.example.net/")}
    assert set(docs) == {
        "https://polar.example.org/wiki/Lake_Vostok",  # <link rel=canonical>
        "https://polar.example.org/wiki/Antarctica",  # <base href>
        "https://cities.example.net/articles/cafe-culture",  # og:url
        "https://cities.example.net/guides/",  # base_url + path; index.html maps to the folder
    }
    vostok = docs["https://polar.example.org/wiki/Lake_Vostok"]
    assert vostok.title == "Lake Vostok - Polar Encyclopedia"
    assert "https://polar.example.org/wiki/Subglacial_lake" in vostok.links  # ../wiki/ relative link
    assert "https://polar.example.org/wiki/Antarctica" in vostok.links  # fragment dropped
    assert "https://polar.example.org/wiki/2012" in vostok.links
    assert not any(u.endswith(("/login", "/terms")) for u in vostok.links)  # nav and footer dropped
    cafe = docs["https://cities.example.net/articles/cafe-culture"]
    assert cafe.title == "Café culture"  # iso-8859-1 declared in <meta>
    assert "https://cities.example.net/articles/vienna.html" in cafe.links
    antarctica = docs["https://polar.example.org/wiki/Antarctica"]
    assert "https://polar.example.org/wiki/Lake_Vostok" in antarctica.links


def test_import_html_dir_text_drops_chrome(tmp_path: Path) -> None:
    c = Corpus.build(import_html_dir(HTML_PAGES, base_url="https://cities.example.net/"), tmp_path / "c")
    doc_id = c.id_of("https://polar.example.org/wiki/Lake_Vostok")
    _url, _title, text = c.summary(doc_id)
    assert "largest of subglacial lakes" in text
    for noise in ("TRACKING-SCRIPT-TEXT", "NAVIGATION-LINK-TEXT", "FOOTER-TEXT", "HIDDEN-TEXT", "font-family"):
        assert noise not in text


def test_import_html_dir_without_base_url_uses_the_placeholder_host() -> None:
    report: dict = {}
    urls = {d.url for d in import_html_dir(HTML_PAGES, report=report)}
    assert "https://offline.invalid/guides/" in urls  # the page without a declared URL: its path under the placeholder
    assert "https://polar.example.org/wiki/Lake_Vostok" in urls  # declared URLs still win
    assert report == {"files": 4, "derived": 1, "base_url": "https://offline.invalid/"}


def test_import_path_rejects_other_files(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(CorpusError, match=r"expected a .jsonl file or a directory"):
        import_path(tmp_path / "x.csv")


def test_decode_html_bytes() -> None:
    assert decode_html_bytes(b"\xef\xbb\xbfhi") == "hi"
    assert decode_html_bytes("é".encode("cp1252")) == "é"  # not utf-8: cp1252 fallback
    assert decode_html_bytes(b"ok\xff\xfe", "utf-8") == "ok\ufffd\ufffd"
    assert decode_html_bytes(b"plain", "x-bogus-charset") == "plain"


def test_importing_kimi_env_web_is_light() -> None:
    code = (
        "import sys, kimi_env.web; "
        "print(sorted(m for m in ('bs4', 'aiohttp', 'bm25s', 'lxml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_build_never_deletes_a_directory_that_is_not_a_corpus(tmp_path):
    from kimi_env.web.corpus import Corpus, CorpusError
    from kimi_env.web.document import Document

    precious = tmp_path / "pages"
    precious.mkdir()
    (precious / "notes.txt").write_text("precious")
    docs = [Document(url="https://x.test/a", title="A", text="a")]
    for overwrite in (False, True):
        with pytest.raises(CorpusError, match="not a corpus"):
            Corpus.build(docs, precious, overwrite=overwrite)
    assert (precious / "notes.txt").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(Corpus.build(docs, empty)) == 1
    assert len(Corpus.build(docs, empty, overwrite=True)) == 1
