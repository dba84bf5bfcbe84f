"""BM25 search over a corpus (title + readable text), built once and cached on disk by content hash.

The index uses `bm25s <https://github.com/xhluca/bm25s>`_ (eager sparse BM25 in numpy) with our own tokenizer
(NFKC, case-folded ``\\w+`` words minus a short English stop list, plural ``-s``/``-es``/``-ies`` folded; the title
counts once, like the body). It was chosen over tantivy
by measurement, see ``docs/web.md``. Results are deterministic: ties are broken by corpus order.

>>> from kimi_env.web.document import Document
>>> from kimi_env.web.corpus import Corpus
>>> c = Corpus.from_documents([Document("https://a.test/x", "Zebra", text="Zebras are striped. They run."),
...                            Document("https://a.test/y", "Lion", text="Lions roar loudly.")])
>>> [h.url for h in get_index(c).search(["striped zebra"], top_k=2)[0]]
['https://a.test/x']
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import KimiEnvError
from .corpus import Corpus, CorpusError, cache_root

__all__ = [
    "Hit", "BM25Index", "get_index", "tokenize", "stem", "surface_forms", "query_terms", "make_snippet", "SearchCancelled", "INDEX_VERSION",
    "MAX_QUERY_CHARS", "MAX_QUERY_TERMS",
]

#: Bumped whenever tokenization or the on-disk layout changes; part of the cache key.
INDEX_VERSION = 3  # 2: dense score rows of frequent terms (kimi_dense.npy); 3: stop list, plural folding, title x1
_META = "kimi_index.json"
_DENSE = "kimi_dense.npy"
_DENSE_TERMS = "kimi_dense_terms.npy"
#: Terms in at least this share of documents get a dense score row (adding it costs ~0.1 ns per document, against
#: ~5 ns per posting for a sparse scatter-add) ...
_DENSE_MIN_SHARE = 1 / 16
#: ... within this many bytes of rows, most frequent terms first.
_DENSE_BUDGET = 192 * 2**20
_WORD = re.compile(r"\w+")
#: Lucene's English stop list (as bm25s and Elasticsearch use it) plus a few pronouns and auxiliaries.
_STOP = frozenset(
    """a an and are as at be but by for from has have he her his if in into is it its no not of on or she such that
    the their them then there these they this to was were which who will with""".split()
)
_SENTENCE = re.compile(r"(?<=[.!?]) +")
#: A query is read up to this many characters ...
MAX_QUERY_CHARS = 1000
#: ... and searched for at most this many distinct terms (the first ones); the search tool refuses longer queries
#: with a message, the index (and the server's ``/search`` on top of it) cuts them, so the cost of one query is
#: bounded whatever its length (a 1M-character query cost seconds of CPU before).
MAX_QUERY_TERMS = 64


class SearchCancelled(KimiEnvError, RuntimeError):
    """A search was stopped through its ``stop`` event (its caller gave up, e.g. the tool's timeout fired)."""


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        url: Canonical URL of the page.
        title: Page title.
        score: BM25 score (higher is better; comparable only within one query).
        snippet: A query-biased passage of the page text (about 240 characters).
    """

    url: str
    title: str
    score: float
    snippet: str

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "title": self.title, "score": self.score, "snippet": self.snippet}


def tokenize(text: str) -> list[str]:
    """Index and query tokens: NFKC-normalized, case-folded words without stop words, plurals folded (:func:`stem`).

    >>> tokenize("The Eiffel Towers' heights, in 1889!")
    ['eiffel', 'tower', 'height', '1889']
    """
    return [stem(w) for w in _WORD.findall(unicodedata.normalize("NFKC", text).casefold()) if w not in _STOP]


def stem(word: str) -> str:
    """Fold an English plural to its singular (the "S-stemmer" of Harman, 1991): ``-ies`` -> ``-y``, ``-es`` after
    s/x/z -> ``-``, ``-s`` -> ``-`` (not after s, u or i). Only plurals, so names and other words stay whole.

    >>> [stem(w) for w in ["cities", "boxes", "towers", "glass", "paris", "bus", "its"]]
    ['city', 'box', 'tower', 'glass', 'paris', 'bus', 'its']
    """
    if not word.endswith("s") or len(word) <= 3:
        return word
    if len(word) > 4 and word.endswith("ies") and word[-4] not in "ae":
        return word[:-3] + "y"
    if word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if word[-2] in "sui":
        return word
    return word[:-1]


def surface_forms(term: str) -> tuple[str, ...]:
    """Every word :func:`stem` maps to ``term`` may have one of these spellings (snippets look for them).

    >>> surface_forms("city"), surface_forms("box")
    (('city', 'citys', 'cities'), ('box', 'boxs', 'boxes'))
    """
    forms = (term, term + "s", term + "es") + ((term[:-1] + "ies",) if term.endswith("y") else ())
    return tuple(f for f in forms if stem(f) == term)


def _unique(tokens: list[str]) -> list[str]:
    return list(dict.fromkeys(tokens))


def query_terms(query: str) -> list[str]:
    """The distinct terms a query is searched for, in order: :func:`tokenize` of its first
    :data:`MAX_QUERY_CHARS` characters, at most :data:`MAX_QUERY_TERMS` of them.

    >>> query_terms("the zebra, the Zebra and the lion")
    ['zebra', 'lion']
    """
    return _unique(tokenize(query[:MAX_QUERY_CHARS]))[:MAX_QUERY_TERMS]


def _check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise SearchCancelled("the search was stopped by its caller (its timeout expired).")


def make_snippet(text: str, terms: set[str], width: int = 240, weights: dict[str, float] | None = None) -> str:
    """The passage of ``text`` (a window of whole sentences, about ``width`` chars) that best matches ``terms``.

    Sentences score by the summed weight of the distinct query terms they contain; the earliest best one wins.
    The window grows forward but not across a heading; markdown markers are dropped and table rows read
    ``a: b``.

    >>> make_snippet("Cats sleep. Dogs bark at night. Birds sing.", {"dogs", "night"}, width=40)
    'Dogs bark at night. Birds sing.'
    >>> make_snippet("# Title\\n| Height | 330 m |\\nOther.", {"height"})
    'Height: 330 m. Other.'
    """
    lines = [line for line in map(str.strip, text.split("\n")) if line]
    if not lines:
        return ""
    weights = weights or {}
    term_list = sorted(terms)
    # Query tokens are \w+ words: a whole-word occurrence is then a match not next to a \w character (in re, \w is
    # str.isalnum() or "_"), found with str.find instead of a per-query regex (whose compilation costs more than
    # the search). Other terms (a caller's phrases) use the regex.
    words_only = all(_WORD.fullmatch(t) for t in term_list)
    pattern = None if words_only else _terms_pattern(tuple(term_list))
    best: tuple[float, int, int] = (0.0, 0, -1)  # (score, line, sentence): the earliest best line, then sentence

    def score_of(chunk: str) -> float:
        low = chunk.lower()
        if not words_only:
            found = set(pattern.findall(low)) if pattern else set()  # type: ignore[union-attr]
            return math.fsum(weights.get(t, 1.0) for t in found)
        end = len(low)
        values = []
        for t in term_list:
            i = low.find(t)
            while i >= 0:
                j = i + len(t)
                if (i == 0 or not (low[i - 1].isalnum() or low[i - 1] == "_")) and (
                    j == end or not (low[j].isalnum() or low[j] == "_")
                ):
                    values.append(weights.get(t, 1.0))
                    break
                i = low.find(t, i + 1)
        # Sum exactly (fsum), so the score does not depend on the order of terms; for up to two values a plain
        # float sum is already exact-rounded.
        return sum(values, 0.0) if len(values) <= 2 else math.fsum(values)

    for li, line in enumerate(lines):
        score = score_of(line) * (0.5 if line.startswith("#") else 1.0)
        if score > best[0]:
            best = (score, li, 0)
    cleaned = None
    if best[0] > 0:
        cleaned = _clean(lines[best[1]])
        scores = [score_of(sentence) for sentence, _h in cleaned]
        best = (best[0], best[1], scores.index(max(scores)) if scores else 0)
    _score, li, si = best
    if si < 0:  # nothing matched: start at the first line that is not a heading
        li = next((i for i, line in enumerate(lines) if not line.startswith("#")), 0)
        si = 0
    units = (cleaned if cleaned is not None else _clean(lines[li]))[si:]
    out = units[0][0] if units else lines[li]
    if len(out) > width:
        return _clip_around(out, terms, width)
    rest = units[1:]
    for line in lines[li + 1 :]:
        if len(out) >= width:
            break
        rest.extend(_clean(line))
        for sentence, heading in rest:
            if heading or len(out) + 1 + len(sentence) > width:
                return out
            out += " " + sentence
        rest = []
    for sentence, heading in rest:
        if heading or len(out) + 1 + len(sentence) > width:
            break
        out += " " + sentence
    return out


@functools.lru_cache(maxsize=256)
def _terms_pattern(terms: tuple[str, ...]) -> re.Pattern | None:
    """A regex finding whole-word occurrences of lower-cased ``terms``."""
    if not terms:
        return None
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=lambda t: (-len(t), t)))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


_TABLE_ROW = re.compile(r"^\|(.*)\|$")


def _clean(line: str) -> list[tuple[str, bool]]:
    """(cleaned sentence, is_heading) units of one line of rendered page text."""
    if line.startswith("#"):
        return [(line.lstrip("#").strip(), True)]
    row = _TABLE_ROW.match(line)
    if row:
        cells = [c.strip() for c in row.group(1).split("|") if c.strip()]
        if not cells:
            return []
        return [(cells[0] + ": " + ", ".join(cells[1:]) + "." if len(cells) > 1 else cells[0], False)]
    line = _MARKER.sub("", line)
    return [(" ".join(p.split()), False) for p in _SENTENCE.split(line) if p.strip()]


_MARKER = re.compile(r"^(- |\d+\. |Table: )")


def _clip_around(sentence: str, terms: set[str], width: int) -> str:
    """A ``width``-char window of a long sentence, starting a little before its first query term."""
    first = None
    for m in _WORD.finditer(sentence):
        if m.group(0).casefold() in terms:
            first = m.start()
            break
    start = 0 if first is None else max(0, first - width // 4)
    if start > 0:
        space = sentence.find(" ", start)
        start = space + 1 if 0 <= space < first else start  # type: ignore[operator]
    window = sentence[start : start + width]
    if start + width < len(sentence) and " " in window[width // 2 :]:
        window = window[: window.rfind(" ")]
    window = " ".join(window.split())
    return ("… " if start > 0 else "") + window + (" …" if start + width < len(sentence) else "")


class BM25Index:
    """A bm25s index over one corpus. Build or load with :meth:`load_or_build` (or the shared :func:`get_index`)."""

    def __init__(self, corpus: Corpus, retriever: Any, path: Path, params: dict) -> None:
        import numpy as np  # noqa: PLC0415

        self.corpus = corpus
        self.path = path
        self.params = params
        self._retriever = retriever
        self._vocab: dict[str, int] = retriever.vocab_dict
        scores = retriever.scores
        self._data = np.asarray(scores["data"])
        self._indices = np.asarray(scores["indices"])
        self._indptr = np.asarray(scores["indptr"])
        self._n = int(scores["num_docs"])
        # Score rows (float32, 0 where absent) of the most frequent terms, memory-mapped: see _scores.
        self._dense = np.load(path / _DENSE, mmap_mode="r")
        self._dense_row = {int(t): i for i, t in enumerate(np.load(path / _DENSE_TERMS))}

    # -- building -----------------------------------------------------------------------------------------------
    @staticmethod
    def default_dir(corpus: Corpus, params: dict) -> Path:
        """``<corpus>/index/<key>`` when the corpus dir is writable, else ``<cache_root>/index/<hash>-<key>``."""
        key = _params_key(params)
        inside = corpus.path / "index"
        if os.access(corpus.path, os.W_OK) and (not inside.exists() or os.access(inside, os.W_OK)):
            return inside / key
        return cache_root() / "index" / f"{corpus.content_hash[:24]}-{key}"

    @classmethod
    def load_or_build(
        cls, corpus: Corpus, *, cache_dir: str | os.PathLike | None = None, k1: float = 1.5, b: float = 0.75,
        rebuild: bool = False,
    ) -> BM25Index:
        """Load the cached index of ``corpus`` (same content hash and params), or build and cache it."""
        params = {"k1": float(k1), "b": float(b), "version": INDEX_VERSION, "title_weight": 1}
        if cache_dir:  # several corpora may share one cache_dir: key by content too
            path = Path(cache_dir).expanduser() / f"{corpus.content_hash[:24]}-{_params_key(params)}"
        else:
            path = cls.default_dir(corpus, params)
        if not rebuild:
            loaded = cls._load(corpus, path, params)
            if loaded is not None:
                return loaded
        from ..errors import count  # noqa: PLC0415
        from ..progress import stage  # noqa: PLC0415

        with stage(f"building the search index of {count(len(corpus), 'document')} (first use only, cached)"):
            return cls._build(corpus, path, params)

    @classmethod
    def _load(cls, corpus: Corpus, path: Path, params: dict) -> BM25Index | None:
        import bm25s  # noqa: PLC0415

        try:
            meta = json.loads((path / _META).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("content_hash") != corpus.content_hash or meta.get("params") != params:
            return None
        if not ((path / _DENSE).is_file() and (path / _DENSE_TERMS).is_file()):
            return None
        try:
            retriever = bm25s.BM25.load(str(path), mmap=True, show_progress=False, verbosity=0)
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt
            return None
        return cls(corpus, retriever, path, params)

    @classmethod
    def _build(cls, corpus: Corpus, path: Path, params: dict) -> BM25Index:
        import bm25s  # noqa: PLC0415
        import numpy as np  # noqa: PLC0415

        if len(corpus) == 0:
            raise CorpusError(f"{corpus.path} has no documents; there is nothing to index. Fix: add documents.")
        vocab: dict[str, int] = {}
        ids: list[Any] = []
        for _doc_id, title, text in corpus.iter_text():
            tokens = tokenize(title) * params["title_weight"] + tokenize(text)
            ids.append(np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokens), dtype=np.int32))
        retriever = bm25s.BM25(k1=params["k1"], b=params["b"])
        retriever.index((ids, vocab), create_empty_token=False, show_progress=False)
        del ids
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".index-build-", dir=path.parent))
        try:
            retriever.save(str(tmp), show_progress=False)
            sc = retriever.scores
            _write_dense(tmp, np.asarray(sc["data"]), np.asarray(sc["indices"]), np.asarray(sc["indptr"]), len(corpus))
            meta = {"content_hash": corpus.content_hash, "params": params, "count": len(corpus), "library": "bm25s"}
            (tmp / _META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
            try:
                os.replace(tmp, path)
            except OSError:  # a concurrent builder won; use its copy
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(corpus, retriever, path, params)

    # -- searching ----------------------------------------------------------------------------------------------
    def _term_ids(self, query: str) -> list[int]:
        return [self._vocab[t] for t in query_terms(query) if t in self._vocab]

    def scores(self, query: str) -> Any:
        """BM25 score of every document for ``query`` (a float32 numpy array of length ``len(corpus)``)."""
        return self._scores(self._term_ids(query))

    def _scores(self, tids: list[int], stop: threading.Event | None = None) -> Any:
        # Summed in float32 in query-term order; a dense row adds 0.0 where the term is absent, which changes
        # nothing, so the result is bit-identical to scatter-adding every posting list.
        import numpy as np  # noqa: PLC0415

        out = np.zeros(self._n, dtype=np.float32)
        for t in tids:
            _check(stop)
            row = self._dense_row.get(t)
            if row is not None:
                out += self._dense[row]
            else:
                start, end = self._indptr[t], self._indptr[t + 1]
                out[self._indices[start:end]] += self._data[start:end]  # one posting per (term, doc): no duplicates
        return out

    def top_ids(self, query: str, top_k: int, *, stop: threading.Event | None = None) -> list[tuple[int, float]]:
        """The ``top_k`` best (row, score) pairs; ties broken by row order (deterministic).

        ``stop``: when it is set, the search raises :class:`SearchCancelled` at its next check (between terms).
        """
        tids = self._term_ids(query)
        if top_k <= 0 or not tids:
            return []
        return self.top_of(self._scores(tids, stop), top_k)

    def top_of(self, scores: Any, top_k: int) -> list[tuple[int, float]]:
        """The ``top_k`` best (row, score) pairs of a score array with positive scores; ties broken by row."""
        import numpy as np  # noqa: PLC0415

        # Split documents into disjoint groups (rows i, i + g, i + 2g, ...: a fast vectorized max) and take the k-th
        # largest group maximum: k documents score at least that, so the top k (and every document tied with the
        # k-th) score at least that too. Selecting only those is exact.
        floor = 0.0
        groups = len(scores) // _GROUP_SIZE
        if groups > 4 * top_k:
            maxima = scores[: groups * _GROUP_SIZE].reshape(_GROUP_SIZE, groups).max(axis=0)
            floor = float(np.partition(maxima, groups - top_k)[groups - top_k])
        cand = np.flatnonzero(scores >= floor) if floor > 0 else np.flatnonzero(scores)
        return _best(cand, scores[cand], top_k)

    def _weights(self, query: str) -> dict[str, float]:
        """Snippet weights of the query's terms by surface form (every spelling that stems to a term): rarer terms
        count more (1 / log2(2 + document frequency))."""
        return {form: w for _t, forms, w in self._term_forms(query) for form in forms}

    def _term_forms(self, query: str) -> list[tuple[str, tuple[str, ...], float]]:
        """(term, its surface forms, snippet weight) per distinct query term."""
        import math  # noqa: PLC0415

        out = []
        for t in query_terms(query):
            tid = self._vocab.get(t)
            df = 0 if tid is None else int(self._indptr[tid + 1] - self._indptr[tid])
            out.append((t, surface_forms(t), 1.0 / math.log2(2 + df)))
        return out

    def search(
        self, queries: list[str], top_k: int = 5, *, snippet_chars: int = 240, stop: threading.Event | None = None
    ) -> list[list[Hit]]:
        """Search each query; returns one ranked list of :class:`Hit` per query (empty when nothing matches).

        Queries are cut to :data:`MAX_QUERY_CHARS` characters and :data:`MAX_QUERY_TERMS` distinct terms. ``stop``:
        a :class:`threading.Event` the caller sets to give up; the search then raises :class:`SearchCancelled` at
        its next check (between query terms and between result snippets), so a search run in a worker thread does
        not compute on after its caller's timeout.
        """
        tops = [self.top_ids(query, top_k, stop=stop) for query in queries]
        return self.hits(queries, tops, snippet_chars=snippet_chars, stop=stop)

    def hits(
        self, queries: list[str], tops: list[list[tuple[int, float]]], *, snippet_chars: int = 240,
        stop: threading.Event | None = None,
    ) -> list[list[Hit]]:
        """:class:`Hit` lists (title, URL, query-biased snippet) for ranked (row, score) lists, one per query."""
        results: list[list[Hit]] = []
        _check(stop)
        docs = self.corpus.summaries(doc_id for top in tops for doc_id, _score in top)  # one read for all queries
        for query, top in zip(queries, tops):
            term_forms = self._term_forms(query) if top else []
            weights = {form: w for _t, forms, w in term_forms for form in forms}
            hits = []
            for doc_id, score in top:
                _check(stop)
                url, title, text = docs[doc_id]
                # The title already shows the terms it contains; the snippet shows where the rest of the query is
                # (as search engines do), e.g. "Vurmark head of state" on Vurmark's page: the head-of-state row.
                in_title = set(tokenize(title))
                focus = {f for t, forms, _w in term_forms if t not in in_title for f in forms} or set(weights)
                hits.append(Hit(url, title, round(score, 4), make_snippet(text, focus, snippet_chars, weights)))
            results.append(hits)
        return results

    def size_bytes(self) -> int:
        """Bytes the index takes on disk."""
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


_GROUP_SIZE = 64


def _best(rows: Any, scores: Any, top_k: int) -> list[tuple[int, float]]:
    """The ``top_k`` highest ``scores`` as (row, score), ties broken by ``rows`` (ascending, unique)."""
    import numpy as np  # noqa: PLC0415

    if len(rows) > top_k:
        threshold = np.partition(scores, len(scores) - top_k)[len(scores) - top_k]
        keep = scores >= threshold
        rows, scores = rows[keep], scores[keep]
    order = np.lexsort((rows, -scores))[:top_k]
    return [(int(rows[i]), float(scores[i])) for i in order]


def _write_dense(out: Path, data: Any, indices: Any, indptr: Any, n_docs: int) -> None:
    """Save dense score rows of the most frequent terms (see _DENSE_MIN_SHARE and _DENSE_BUDGET)."""
    import numpy as np  # noqa: PLC0415

    df = np.diff(indptr)
    frequent = np.flatnonzero(df >= max(1, n_docs * _DENSE_MIN_SHARE))
    frequent = frequent[np.argsort(-df[frequent], kind="stable")][: _DENSE_BUDGET // (4 * max(1, n_docs))]
    frequent = np.sort(frequent).astype(np.int64)
    np.save(out / _DENSE_TERMS, frequent)
    rows = np.lib.format.open_memmap(out / _DENSE, mode="w+", dtype=np.float32, shape=(len(frequent), n_docs))
    for i, t in enumerate(frequent):
        row = np.zeros(n_docs, dtype=np.float32)
        row[indices[indptr[t] : indptr[t + 1]]] = data[indptr[t] : indptr[t + 1]]
        rows[i] = row
    rows.flush()
    del rows


def _params_key(params: dict) -> str:
    return "bm25s-" + hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


_shared: dict[tuple[str, str, str], BM25Index] = {}
_shared_lock = threading.Lock()


def get_index(corpus: Corpus | str | os.PathLike, **kwargs: Any) -> BM25Index:
    """The process-wide shared index of ``corpus`` (loaded or built on first use; thread-safe)."""
    if not isinstance(corpus, Corpus):
        corpus = Corpus.open(corpus)
    key = (str(corpus.path), corpus.content_hash, json.dumps(kwargs, sort_keys=True, default=str))
    with _shared_lock:
        index = _shared.get(key)
        if index is None:
            index = _shared[key] = BM25Index.load_or_build(corpus, **kwargs)
        return index
