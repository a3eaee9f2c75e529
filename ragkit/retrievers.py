"""Retrievers: a query in, the best chunks out, scored. One base class, three built-ins.

- :class:`Retriever` is the extension point: subclasses implement ``_search`` and inherit the
  shared rules of :meth:`Retriever.retrieve` (input checks, clamping ``k``, deterministic order).
- :class:`BM25Retriever` ranks by keywords (``ragkit.bm25``), :class:`VectorRetriever` by cosine
  similarity of embeddings (``ragkit.vectors``), and :class:`HybridRetriever` fuses any
  retrievers' rankings (``ragkit.fusion``) and keeps each contributor's score on the result.

The BM25 and vector retrievers are views over stores keyed by integer chunk handles, so an
``Index`` can add and remove documents under them without rebuilding. ``from_chunks`` builds a
standalone retriever over a list of chunks. This module leaves out persistence (``index.py``) and
embedding models (``embedders.py``).
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .bm25 import BM25Index
from .embedders import Embedder, check_embeddings
from .fusion import FUSION_METHODS, FusionMethod, fuse
from .types import Chunk, ScoredChunk
from .vectors import VectorStore

__all__ = [
    "BM25Retriever",
    "HybridRetriever",
    "Retriever",
    "VectorRetriever",
]


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _shared_pool() -> ThreadPoolExecutor:
    """One long-lived pool for parallel hybrid search: a pool per query costs more than it saves."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ragkit-hybrid")
        return _POOL


class Retriever(ABC):
    """Base class for retrievers: implement ``_search``; call ``retrieve``.

    Subclasses take their configuration as keyword-only ``__init__`` arguments and set ``name``,
    the key under which a :class:`HybridRetriever` reports their scores.

    Example:
        >>> class Everything(Retriever):
        ...     name = "everything"
        ...     def __init__(self, chunks): self.chunks = chunks
        ...     def _search(self, query, k):
        ...         return [ScoredChunk(c, 1.0) for c in self.chunks]
    """

    name: str = "retriever"

    @abstractmethod
    def _search(self, query: str, k: int) -> list[ScoredChunk]:
        """Return up to ``k`` (more is tolerated) scored chunks for a non-empty query."""

    def size(self) -> int | None:
        """Number of chunks this retriever searches, or ``None`` when it cannot tell."""
        return None

    def retrieve(self, query: str, k: int = 5) -> list[ScoredChunk]:
        """The ``k`` best chunks for ``query``, best first.

        Ties are broken by chunk ID, so the order is deterministic. ``k`` larger than the index
        is clamped; an empty index returns ``[]``.

        Raises:
            TypeError: ``query`` is not a string or ``k`` not an integer.
            ValueError: ``query`` is empty or blank, or ``k < 1``.
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        if not query.strip():
            raise ValueError("query must not be empty; pass the question or keywords to search for")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be an int, got {type(k).__name__}")
        if k < 1:
            raise ValueError(f"k ({k}) must be >= 1")
        n = self.size()
        if n is not None:
            if n == 0:
                return []
            k = min(int(k), n)
        results = self._search(query, int(k))
        results.sort(key=lambda sc: (-sc.score, sc.chunk.id))
        return results[:k]


class BM25Retriever(Retriever):
    """Keyword retrieval with BM25 over a :class:`ragkit.bm25.BM25Index`.

    Args:
        bm25: the keyword index, keyed by chunk handle.
        chunks: chunk handle → chunk, for the handles in ``bm25`` (a live mapping is fine).
    """

    name = "bm25"

    def __init__(self, *, bm25: BM25Index, chunks: Mapping[int, Chunk]) -> None:
        self.bm25 = bm25
        self.chunks = chunks

    @classmethod
    def from_chunks(cls, chunks: Sequence[Chunk], **bm25_options: Any) -> BM25Retriever:
        """A standalone BM25 retriever over ``chunks`` (options go to ``BM25Index``)."""
        bm25 = BM25Index(**bm25_options)
        bm25.add(np.arange(len(chunks), dtype=np.int64), [c.text for c in chunks])
        return cls(bm25=bm25, chunks=dict(enumerate(chunks)))

    def size(self) -> int:
        return len(self.bm25)

    def _search(self, query: str, k: int) -> list[ScoredChunk]:
        keys, scores = self.bm25.search(query, k)
        chunks = self.chunks
        return [
            ScoredChunk(chunks[int(key)], float(s)) for key, s in zip(keys, scores, strict=True)
        ]


class VectorRetriever(Retriever):
    """Dense retrieval: cosine similarity between the query's and the chunks' embeddings.

    Args:
        store: the vectors, keyed by chunk handle.
        chunks: chunk handle → chunk, for the handles in ``store``.
        embedder: embeds the query; must be the model that embedded the chunks.
    """

    name = "vector"

    def __init__(
        self, *, store: VectorStore, chunks: Mapping[int, Chunk], embedder: Embedder
    ) -> None:
        self.store = store
        self.chunks = chunks
        self.embedder = embedder

    @classmethod
    def from_chunks(
        cls, chunks: Sequence[Chunk], *, embedder: Embedder, vectors: np.ndarray | None = None
    ) -> VectorRetriever:
        """A standalone vector retriever; embeds ``chunks`` unless ``vectors`` are given."""
        texts = [c.text for c in chunks]
        raw = embedder.embed(texts) if vectors is None else vectors
        matrix = check_embeddings(raw, n=len(chunks))
        store = VectorStore(matrix.shape[1] if len(chunks) else 1)
        if len(chunks):
            store.add(np.arange(len(chunks), dtype=np.int64), matrix)
        return cls(store=store, chunks=dict(enumerate(chunks)), embedder=embedder)

    def size(self) -> int:
        return len(self.store)

    def embed_query(self, query: str) -> np.ndarray:
        """The query's embedding, checked against the store's dimension."""
        vectors = check_embeddings(self.embedder.embed([query]), n=1, dim=self.store.dim)
        query_vector: np.ndarray = vectors[0]
        return query_vector

    def search_vector(self, vector: np.ndarray, k: int) -> list[ScoredChunk]:
        """Search with an already-embedded query (lets callers embed once, search many ways)."""
        keys, scores = self.store.search(vector, k)
        chunks = self.chunks
        return [
            ScoredChunk(chunks[int(key)], float(s)) for key, s in zip(keys, scores, strict=True)
        ]

    def _search(self, query: str, k: int) -> list[ScoredChunk]:
        return self.search_vector(self.embed_query(query), k)


class HybridRetriever(Retriever):
    """Fuses the rankings of several retrievers into one.

    Each retriever is asked for ``depth`` candidates (at least ``k``); the rankings are fused by
    ``fusion`` (``"rrf"``, ``"minmax"`` or ``"zscore"``, see ``ragkit.fusion``) with optional
    per-retriever ``weights``. Every result's ``scores`` maps each contributing retriever's
    ``name`` to the raw score it gave, so a caller can see why a chunk ranked where it did.

    Args:
        retrievers: the retrievers to fuse; their ``name`` attributes must be distinct.
        fusion: the fusion method.
        weights: one non-negative weight per retriever (default equal).
        depth: candidates taken from each retriever before fusion.
        rrf_k: the RRF constant.
        parallel: run the retrievers in threads (numpy and the embedder release the GIL).
    """

    name = "hybrid"

    def __init__(
        self,
        retrievers: Sequence[Retriever],
        *,
        fusion: FusionMethod = "zscore",
        weights: Sequence[float] | None = None,
        depth: int = 500,
        rrf_k: int = 60,
        parallel: bool = False,
    ) -> None:
        if not retrievers:
            raise ValueError("retrievers must name at least one retriever to fuse")
        names = [r.name for r in retrievers]
        if len(set(names)) != len(names):
            raise ValueError(
                f"retriever names must be distinct to report their scores, got {names}"
            )
        if fusion not in FUSION_METHODS:
            raise ValueError(f"fusion {fusion!r} is not one of {', '.join(FUSION_METHODS)}")
        if weights is not None and (
            len(weights) != len(retrievers) or any(not math.isfinite(w) or w < 0 for w in weights)
        ):
            raise ValueError(
                f"weights ({list(weights)}) must hold one finite non-negative weight per retriever "
                f"({len(retrievers)})"
            )
        if depth < 1:
            raise ValueError(f"depth ({depth}) must be >= 1")
        self.retrievers = tuple(retrievers)
        self.fusion: FusionMethod = fusion
        self.weights = None if weights is None else tuple(float(w) for w in weights)
        self.depth = depth
        self.rrf_k = rrf_k
        self.parallel = parallel

    def size(self) -> int | None:
        sizes = [r.size() for r in self.retrievers]
        if any(s is None for s in sizes):
            return None
        return max(s for s in sizes if s is not None)

    def _rankings(self, query: str, depth: int) -> list[list[ScoredChunk]]:
        if self.parallel and len(self.retrievers) > 1:
            # The first retriever runs here while the others run in the shared pool's threads.
            pool = _shared_pool()
            futures = [pool.submit(r.retrieve, query, depth) for r in self.retrievers[1:]]
            first = self.retrievers[0].retrieve(query, depth)
            return [first, *(f.result() for f in futures)]
        return [r.retrieve(query, depth) for r in self.retrievers]

    def _search(self, query: str, k: int) -> list[ScoredChunk]:
        rankings = self._rankings(query, max(self.depth, k))
        return self.fuse_rankings(rankings, limit=k)

    def fuse_rankings(
        self, rankings: Sequence[Sequence[ScoredChunk]], limit: int | None = None
    ) -> list[ScoredChunk]:
        """Fuse per-retriever results (in ``self.retrievers`` order) into scored chunks.

        Only the best ``limit`` fused results are built (all when ``None``): hybrid search fuses
        hundreds of candidates to return a handful.
        """
        pairs = [[(sc.chunk.id, sc.score) for sc in ranking] for ranking in rankings]
        fused = fuse(pairs, self.fusion, weights=self.weights, rrf_k=self.rrf_k)
        if limit is not None:
            fused = fused[:limit]
        by_id = {sc.chunk.id: sc.chunk for ranking in rankings for sc in ranking}
        per_retriever = [(r.name, dict(p)) for r, p in zip(self.retrievers, pairs, strict=True)]
        return [
            ScoredChunk(
                by_id[cid],
                score,
                {name: scores[cid] for name, scores in per_retriever if cid in scores},
            )
            for cid, score in fused
        ]
