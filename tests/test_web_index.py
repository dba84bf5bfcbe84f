"""BM25 index: ranking, snippets, determinism, on-disk cache keyed by content hash."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_web_fixtures import TOPICS, WIKI, build_corpus, make_documents  # noqa: E402

from kimi_env.web.corpus import Corpus  # noqa: E402
from kimi_env.web.document import Document  # noqa: E402
from kimi_env.web.index import BM25Index, make_snippet, tokenize  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("idx"))


@pytest.fixture(scope="module")
def index(corpus: Corpus) -> BM25Index:
    return BM25Index.load_or_build(corpus)


@pytest.mark.parametrize(
    "query, expected",
    [
        ("eiffel tower height", "Eiffel_Tower"),
        ("highest mountain in africa", "Mount_Kilimanjaro"),
        ("chloroplasts glucose light energy", "Photosynthesis"),
        ("first published algorithm analytical engine", "Ada_Lovelace"),
        ("largest coral reef", "Great_Barrier_Reef"),
    ],
)
def test_known_items_rank_first(index: BM25Index, query: str, expected: str) -> None:
    hits = index.search([query], top_k=5)[0]
    assert hits[0].url == WIKI + expected
    assert len({h.url for h in hits}) == len(hits) <= 5
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))


def test_snippets_are_query_biased(index: BM25Index) -> None:
    hit = index.search(["330 metres wrought iron"], top_k=1)[0][0]
    assert "330 metres" in hit.snippet and len(hit.snippet) <= 300
    assert "SCRIPT-NOISE" not in hit.snippet and "Main page" not in hit.snippet


def test_batch_and_empty_queries(index: BM25Index) -> None:
    results = index.search(["kilimanjaro", "zzzz-unknown-word", "the of and"], top_k=3)
    assert len(results) == 3 and results[0] and results[1] == [] and results[2] == []


def test_ties_are_broken_by_corpus_order(tmp_path: Path) -> None:
    docs = [Document(f"https://t.test/{i}", f"Doc {i}", text="same words here") for i in range(8)]
    index = BM25Index.load_or_build(Corpus.build(docs, tmp_path / "c"))
    assert [h.url for h in index.search(["same words"], top_k=5)[0]] == [f"https://t.test/{i}" for i in range(5)]


def test_deterministic_across_builds(tmp_path: Path, index: BM25Index) -> None:
    other = BM25Index.load_or_build(Corpus.build(make_documents(), tmp_path / "again"))
    queries = ["river festival", "tower paris", "canal temple castle"]
    assert other.search(queries, 5) == index.search(queries, 5)


def test_cache_is_reused_and_keyed_by_content(tmp_path: Path) -> None:
    corpus = build_corpus(tmp_path, n_filler=5)
    first = BM25Index.load_or_build(corpus)
    assert first.path.is_relative_to(corpus.path) and (first.path / "kimi_index.json").is_file()
    stamp = (first.path / "kimi_index.json").stat().st_mtime_ns
    time.sleep(0.01)
    again = BM25Index.load_or_build(corpus)
    assert (again.path / "kimi_index.json").stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert again.search(["kilimanjaro"], 1) == first.search(["kilimanjaro"], 1)
    rebuilt = BM25Index.load_or_build(corpus, rebuild=True)
    assert (rebuilt.path / "kimi_index.json").stat().st_mtime_ns != stamp
    other = BM25Index.load_or_build(corpus, k1=1.2)
    assert other.path != first.path  # params are part of the key
    explicit = BM25Index.load_or_build(corpus, cache_dir=tmp_path / "cache")
    assert explicit.path.parent == tmp_path / "cache" and explicit.size_bytes() > 0


def test_stale_cache_is_rebuilt(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    a = Corpus.build([Document("https://a.test/1", "Alpha", text="alpha words")], tmp_path / "a")
    b = Corpus.build([Document("https://a.test/1", "Beta", text="beta words")], tmp_path / "b")
    assert BM25Index.load_or_build(a, cache_dir=cache).search(["alpha"], 1)[0]
    index_b = BM25Index.load_or_build(b, cache_dir=cache)  # same dir, other content hash: rebuilt
    assert index_b.search(["alpha"], 1)[0] == [] and index_b.search(["beta"], 1)[0][0].title == "Beta"


def test_agrees_with_rank_bm25(index: BM25Index, corpus: Corpus) -> None:
    rank_bm25 = pytest.importorskip("rank_bm25")
    tokens = [tokenize(title) * 2 + tokenize(text) for _i, title, text in corpus.iter_text()]
    reference = rank_bm25.BM25Okapi(tokens, k1=1.5, b=0.75)
    for name, text in TOPICS.items():
        query = " ".join(text.split()[2:7])
        scores = reference.get_scores(list(dict.fromkeys(tokenize(query))))
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        assert index.search([query], 1)[0][0].url == corpus.get_by_id(best).url, query


def test_make_snippet_window() -> None:
    text = "Intro sentence. " * 30 + "The needle is here. After it. " + "Tail. " * 30
    snip = make_snippet(text, {"needle"}, width=60)
    assert snip.startswith("The needle is here.") and len(snip) <= 60
    long_sentence = "word " * 200 + "needle " + "word " * 200
    clipped = make_snippet(long_sentence, {"needle"}, width=100)
    assert "needle" in clipped and clipped.startswith("… ") and len(clipped) <= 110
    assert make_snippet("", {"x"}) == ""


def test_snippet_shows_the_query_terms_the_title_does_not(tmp_path: Path) -> None:
    docs = [
        Document(url="https://kimiwiki.test/wiki/Vurmark", title="Vurmark",
                 html="<h1>Vurmark</h1><table><tr><th>Capital</th><td>Querssa</td></tr>"
                      "<tr><th>Head of state</th><td>Calbaeszein Vainoxander</td></tr></table>"
                      "<p>" + "Filler words about the region. " * 12 + "</p>"
                      "<p>Vurmark is a sovereign state; its capital is Querssa.</p>"),
    ] + [  # other countries make "head" and "state" common words, so the rare title word would dominate
        Document(url=f"https://kimiwiki.test/wiki/Other_{i}", title=f"Other {i}",
                 html=f"<table><tr><th>Head of state</th><td>Person {i}</td></tr></table><p>A state.</p>")
        for i in range(6)
    ]
    corpus = Corpus.build(docs, tmp_path / "c")
    index = BM25Index.load_or_build(corpus, cache_dir=tmp_path / "idx")
    (hit, *_), = index.search(["Vurmark head of state"], top_k=1)
    assert hit.title == "Vurmark" and "Head of state: Calbaeszein Vainoxander" in hit.snippet, hit.snippet
