"""Offline-web benchmark: corpus and index build, search latency, tool overhead, browse latency, recall@5.

Usage (each size runs in well under two minutes on 2 shared cores)::

    .venv/bin/python benchmarks/bench_web.py --sizes 10000 100000 --append /tmp/bench-web.md

Synthetic pages: ~300 words each from a seeded Zipf-distributed vocabulary of 30,000 made-up words, a 3-word
title. Known-item queries are 5 words drawn from one page's body; recall@5 counts how often that page is in the
top 5. rank_bm25 (BM25Okapi, same tokens) is the reference for recall at the smallest size only (it is slow).

Importing a real site (``--site DIR``, see :func:`bench_import`): a real documentation site, offline from Debian::

    apt-get install -y python3-doc        # Python 3.11's documentation: 530 HTML pages, 50.7 MB
    .venv/bin/python benchmarks/bench_web.py --sizes --site /usr/share/doc/python3.11/html
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kimi_env import aio  # noqa: E402
from kimi_env.tools.browse import BrowseTool  # noqa: E402
from kimi_env.tools.search import SearchTool  # noqa: E402
from kimi_env.web.corpus import Corpus  # noqa: E402
from kimi_env.web.document import Document  # noqa: E402
from kimi_env.web.index import BM25Index, tokenize  # noqa: E402

SYLLABLES = "ka lo mi ra tu ven sor pel dan qui ber tos lia mon gar fel ix ul ne zo".split()


def vocabulary(rng: np.random.Generator, size: int = 30_000) -> np.ndarray:
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(rng.choice(SYLLABLES, int(rng.integers(2, 5))))] = None
    return np.array(list(words))


def generate(n: int, seed: int = 0) -> tuple[list[Document], np.ndarray]:
    """n text pages plus a typical HTML page and a 1 MB HTML page; returns (docs, body word ids)."""
    rng = np.random.default_rng(seed)
    vocab = vocabulary(rng)
    p = 1.0 / np.arange(1, len(vocab) + 1) ** 1.07
    ids = rng.choice(len(vocab), size=(n, 300), p=p / p.sum())
    titles = rng.integers(200, len(vocab), size=(n, 3))
    docs = []
    for i in range(n):
        body = vocab[ids[i]]
        sentences = [" ".join(body[j : j + 15]).capitalize() + "." for j in range(0, 300, 15)]
        text = "\n\n".join(" ".join(sentences[k : k + 4]) for k in range(0, 20, 4))
        docs.append(Document(f"https://bench.test/wiki/P{i}", " ".join(vocab[titles[i]]).title(), text=text))
    typical = "<title>Typical</title><h1>Typical</h1>" + "".join(
        f"<p>{' '.join(vocab[ids[k % n]][:120])} <a href='/wiki/P{k}'>P{k}</a></p>" for k in range(12)
    )
    docs.append(Document("https://bench.test/wiki/Typical", "Typical", html=typical))
    big = "<title>Big</title>" + "".join(
        f"<h2>Part {k}</h2><p>{' '.join(vocab[ids[k % n]])} <a href='/wiki/P{k % n}'>P{k % n}</a></p>" for k in range(480)
    )
    docs.append(Document("https://bench.test/wiki/Big", "Big", html=big))
    return docs, ids


def ms(values: list[float]) -> tuple[float, float]:
    return statistics.median(values) * 1e3, float(np.percentile(values, 99)) * 1e3


def bench(n: int, workdir: Path, n_queries: int, with_reference: bool) -> list[str]:
    rows: list[str] = []
    t = time.perf_counter()
    docs, ids = generate(n)
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    corpus = Corpus.build(docs, workdir / f"c{n}")
    corpus_s = time.perf_counter() - t
    t = time.perf_counter()
    index = BM25Index.load_or_build(corpus, rebuild=True)
    index_s = time.perf_counter() - t
    disk = sum(f.stat().st_size for f in (corpus.path).glob("*") if f.is_file())
    rows.append(f"| {n:,} | corpus build | {corpus_s:.1f} s (generation {gen_s:.1f} s), {disk / 1e6:.0f} MB on disk |")
    rows.append(f"| {n:,} | index build (bm25s) | {index_s:.1f} s, {index.size_bytes() / 1e6:.0f} MB on disk |")

    rng = np.random.default_rng(1)
    targets = rng.choice(n, size=n_queries, replace=False)
    vocab_words = [d.text.split() for d in (docs[i] for i in targets)]
    queries = [" ".join(rng.choice([w.strip(".").lower() for w in words], 5, replace=False)) for words in vocab_words]

    single = []
    for q in queries:
        s = time.perf_counter()
        index.search([q], 5)
        single.append(time.perf_counter() - s)
    five, tool_times, bare_times = [], [], []
    tool = SearchTool(corpus)
    tool.call(queries=queries[:1])
    groups = [queries[i : i + 5] for i in range(0, len(queries) - 4, 5)]
    for g in groups:
        s = time.perf_counter()
        index.search(g, 5)
        five.append(time.perf_counter() - s)
    for g in groups:
        s = time.perf_counter()
        tool.call(queries=g, top_k=5)
        tool_times.append(time.perf_counter() - s)
        s = time.perf_counter()
        index.search(g, 5)
        bare_times.append(time.perf_counter() - s)
    tool.close()
    p50, p99 = ms(single)
    rows.append(f"| {n:,} | search, 1 query (p50 / p99) | {p50:.2f} / {p99:.2f} ms |")
    p50, p99 = ms(five)
    rows.append(f"| {n:,} | search, 5 queries in one call (p50 / p99) | {p50:.2f} / {p99:.2f} ms |")
    ratio = statistics.median(tool_times) / statistics.median(bare_times)
    rows.append(f"| {n:,} | SearchTool.call / bare index.search, 5 queries (p50 ratio) | {ratio:.2f}x "
                f"({statistics.median(tool_times) * 1e3:.2f} vs {statistics.median(bare_times) * 1e3:.2f} ms) |")

    hits = [index.search([q], 5)[0] for q in queries]
    recall = np.mean([docs[t].url in {h.url for h in hs} for t, hs in zip(targets, hits)])
    line = f"| {n:,} | known-item recall@5 ({n_queries} queries) | {recall:.3f}"
    if with_reference:
        import rank_bm25

        t = time.perf_counter()
        tokens = [tokenize(d.title) * 2 + tokenize(d.text or "") for d in docs[:n]]
        ref = rank_bm25.BM25Okapi(tokens, k1=1.5, b=0.75)
        ref_recall = np.mean(
            [t_ in np.argsort(-ref.get_scores(list(dict.fromkeys(tokenize(q)))), kind="stable")[:5] for t_, q in zip(targets[:100], queries[:100])]
        )
        line += f"; rank_bm25 on the first 100 queries: {ref_recall:.3f} (ours on the same 100: "
        line += f"{np.mean([docs[t_].url in {h.url for h in hs} for t_, hs in zip(targets[:100], hits[:100])]):.3f}; "
        line += f"rank_bm25 took {time.perf_counter() - t:.0f} s)"
    rows.append(line + " |")

    browser = BrowseTool(corpus, page_chars=4000)
    browser.call(url="https://bench.test/wiki/Typical")
    typical, big = [], []
    for _ in range(50):
        browser.reset()
        s = time.perf_counter()
        browser.call(url="https://bench.test/wiki/Typical")
        typical.append(time.perf_counter() - s)
    for _ in range(5):
        browser.reset()
        s = time.perf_counter()
        r = browser.call(url="https://bench.test/wiki/Big")
        big.append(time.perf_counter() - s)
    size = len(corpus.get("https://bench.test/wiki/Big").html or "")
    browser.close()
    rows.append(f"| {n:,} | browse, typical page (~9 KB HTML) p50 | {ms(typical)[0]:.2f} ms |")
    rows.append(f"| {n:,} | browse, {size / 1e6:.1f} MB page p50 ({r.meta.get('pages')} pages of 4000 chars) | {ms(big)[0]:.0f} ms |")
    return rows


def bench_import(site: Path, workdir: Path, baseline: bool = True) -> list[str]:
    """``kimi-env corpus import`` of a folder of real HTML pages, against the renderers it could have used.

    Rows: the import itself (wall and CPU seconds of this process and its workers), our renderer alone over every
    page, the BeautifulSoup renderer it replaced (``tests/reference_render_bs4.py``; the old import ran it three
    times a page, this measures one), lxml's bare ``text_content()`` (a floor: no links, headings or tables), and
    the renderer on the hostile nesting inputs of issue 15 (old renderer on a tenth of the size: it is quadratic).
    """
    import lxml.html

    from kimi_env.web.importers import import_html_dir
    from kimi_env.web.text import render_html

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import reference_render_bs4 as reference

    files = sorted(p for p in site.rglob("*") if p.is_file() and p.suffix.lower() in (".html", ".htm"))
    size = sum(p.stat().st_size for p in files)
    rows = [f"| {len(files)} pages, {size / 1e6:.1f} MB | measure | result |", "|---|---|---|"]

    def timed(fn):
        import resource

        def cpu() -> float:
            me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

        w, c = time.perf_counter(), cpu()
        out = fn()
        return out, time.perf_counter() - w, cpu() - c

    corpus, wall, cpu = timed(lambda: Corpus.build(import_html_dir(site), workdir / "site", overwrite=True))
    rows.append(f"| | `corpus import` (Corpus.build over import_html_dir, worker processes) | {wall:.1f} s wall "
                f"({cpu:.1f} s CPU in this process; the workers' CPU is not counted), {len(corpus)} documents |")
    corpus, wall, cpu = timed(lambda: Corpus.build(import_html_dir(site, workers=1), workdir / "site", overwrite=True))
    rows.append(f"| | the same in one process (workers=1) | {wall:.1f} s wall, {cpu:.1f} s CPU |")
    texts = [decode(p.read_bytes()) for p in files]
    base = "https://offline.invalid/"
    _, wall, cpu = timed(lambda: [render_html(t, base + str(i), number_links=False) for i, t in enumerate(texts)])
    ours = wall
    rows.append(f"| | render_html (lxml events) over every page | {wall:.1f} s wall, {cpu:.1f} s CPU |")
    if baseline:
        _, wall, cpu = timed(lambda: [reference.render_html(t, base + str(i), number_links=False) for i, t in enumerate(texts)])
        rows.append(f"| | old renderer (BeautifulSoup + lxml builder), once a page | {wall:.1f} s wall, {cpu:.1f} s CPU "
                    f"({wall / ours:.1f}x ours) |")
    _, wall, cpu = timed(lambda: [lxml.html.document_fromstring(t.encode()).text_content() for t in texts])
    rows.append(f"| | floor: lxml.html text_content() (no links, structure) | {wall:.1f} s wall, {cpu:.1f} s CPU "
                f"(ours is {ours / wall:.1f}x) |")
    for name, unit, n in (("nested lists", "<ul><li>x", 22_000), ("nested tables", "<table><tr><td>x", 12_000),
                          ("deep divs + unmatched end tags", "<div></span>", 30_000)):
        markup = unit * n if "span" not in unit else "<div>" * n + "</span>" * n
        page, wall, _ = timed(lambda: render_html(markup, base))
        line = f"| | {name}, {len(markup) / 1e3:.0f} KB | {wall * 1e3:.0f} ms, {len(page.text) / 1e3:.0f} KB of text"
        small = unit * (n // 10) if "span" not in unit else "<div>" * (n // 10) + "</span>" * (n // 10)
        old, wall_old, _ = timed(lambda: reference.render_html(small, base))
        _, wall_new, _ = timed(lambda: render_html(small, base))
        line += (f"; a tenth of it: old {wall_old * 1e3:.0f} ms / {len(old.text) / 1e3:.0f} KB of text, "
                 f"ours {wall_new * 1e3:.1f} ms |")
        rows.append(line)
    return rows


def bench_loop(workdir: Path, concurrent: int = 96) -> list[str]:
    """How long the shared event loop is kept from other work while the browser renders, ours vs the old path.

    A ticker on the loop wakes every millisecond and records its largest lateness (the longest stretch the loop
    could not serve anything: the corpus server, other episodes' calls) while (a) ``concurrent`` browse calls of a
    typical ~10 KB page run at once and (b) one 96 KB page of nested tables is browsed (issue 15: rendered inline on
    the loop before). The old path is emulated by swapping in the old renderer the way the old browser called it
    (inline under 200,000 characters, else in a thread).
    """
    import kimi_env.tools.browse as browse_mod
    from kimi_env.web.text import arender_html

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import reference_render_bs4 as reference

    async def old_render(markup, url, **_kw):
        if len(markup) > 200_000:
            return await asyncio.to_thread(reference.render_html, markup, url)
        return reference.render_html(markup, url)

    docs, _ = generate(200)
    nested = "<table><tr><td>x" * 6_000
    docs.append(Document("https://bench.test/wiki/Nested", "Nested", html=nested))
    corpus = Corpus.build(docs, workdir / "loop", overwrite=True)

    async def run(n_calls: int, url: str) -> tuple[float, float]:
        tools = [BrowseTool(corpus) for _ in range(n_calls)]
        await tools[0].acall(url="https://bench.test/wiki/P0")  # start the shared server
        worst, stop = 0.0, False

        async def ticker() -> None:
            nonlocal worst
            while not stop:
                t = time.perf_counter()
                await asyncio.sleep(0.001)
                worst = max(worst, time.perf_counter() - t - 0.001)

        tick = asyncio.ensure_future(ticker())
        s = time.perf_counter()
        await asyncio.gather(*(t.acall(url=url) for t in tools))
        total = time.perf_counter() - s
        stop = True
        await tick
        for t in tools:
            await t.aclose()
        return worst, total

    rows = ["| browse on the shared loop | old path (BeautifulSoup, inline < 200k chars) | ours (lxml, slices) |", "|---|---|---|"]
    results = {}
    for label, fn in (("old", old_render), ("ours", arender_html)):
        browse_mod.arender_html = fn
        try:
            results[label] = (
                aio.run(run(concurrent, "https://bench.test/wiki/Typical")),
                aio.run(run(1, "https://bench.test/wiki/Nested")),
            )
        finally:
            browse_mod.arender_html = arender_html
    (o_many, o_nested), (n_many, n_nested) = results["old"], results["ours"]
    rows.append(f"| {concurrent} concurrent calls, typical page: longest loop stall / all done | "
                f"{o_many[0] * 1e3:.0f} ms / {o_many[1]:.2f} s | {n_many[0] * 1e3:.0f} ms / {n_many[1]:.2f} s |")
    rows.append(f"| 1 call, {len(nested) / 1e3:.0f} KB of nested tables: longest loop stall / done | "
                f"{o_nested[0] * 1e3:.0f} ms / {o_nested[1]:.2f} s | {n_nested[0] * 1e3:.0f} ms / {n_nested[1]:.2f} s |")
    return rows


def decode(data: bytes) -> str:
    from kimi_env.web.importers import decode_html_bytes

    return decode_html_bytes(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--site", type=Path, default=None, help="also import this folder of real HTML pages")
    parser.add_argument("--no-baseline", action="store_true", help="with --site: skip the old renderer (slow)")
    parser.add_argument("--loop", action="store_true", help="measure event-loop stalls while browsing, old vs ours")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--append", type=Path, default=None, help="append the markdown table to this file")
    args = parser.parse_args()
    rows = ["| pages | measure | result |", "|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="kimi-bench-") as tmp:
        for i, n in enumerate(args.sizes):
            rows += bench(n, Path(tmp), args.queries, with_reference=(i == 0))
            print("\n".join(rows), flush=True)
        if not args.sizes:
            rows = []
        if args.site is not None:
            rows += ([""] if rows else []) + bench_import(args.site, Path(tmp), baseline=not args.no_baseline)
            print("\n".join(rows), flush=True)
        if args.loop:
            rows += ([""] if rows else []) + bench_loop(Path(tmp))
            print("\n".join(rows), flush=True)
    header = (
        f"\n## Offline web ({time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores shared with other work, Python {platform.python_version()})\n\n"
        f"Command: `.venv/bin/python benchmarks/bench_web.py --sizes {' '.join(map(str, args.sizes))} "
        f"--queries {args.queries}{' --site ' + str(args.site) if args.site else ''}{' --loop' if args.loop else ''}`\n\n"
    )
    text = header + "\n".join(rows) + "\n"
    if args.append:
        with args.append.open("a", encoding="utf-8") as fh:
            fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
