"""Retrievers: a query in, the best chunks out, scored. One base class, three built-ins.

- :class:`Retriever` is the extension point: subclasses implement ``_search`` and inherit the
  shared rules of :meth:`Retriever.retrieve` (input checks, clamping ``k``, deterministic order).
- :class:`BM25Retriever` ranks by keywords (``ragkit.bm25``), :class:`VectorRetriever` by cosine
  similarity of embeddings (``ragkit.vectors``), and :class:`HybridRetriever` fuses any
  retrievers' rankings (``ragkit.fusion``) and keeps each contributor's score on the result.

The BM25 and vector retrievers are views over a :class:`ragkit.base.Store`, so they see every
later write, and a query's filter is applied inside the store. ``from_chunks`` builds a
standalone retriever over a list of chunks. This module leaves out storage (``ragkit.stores``)
and embedding models (``ragkit.embedders``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from .base import KeyedRankingStore, Query, RankingStore, Retriever, ScoreKind, Store
from .embedders import Embedder, check_embeddings, embed_checked
from .filters import FilterSpec, matches, parse_filter
from .fusion import FUSION_METHODS, FusionMethod, fuse, fused_scores
from .types import Chunk, ScoredChunk

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = [
    "BM25Retriever",
    "HybridRetriever",
    "Retriever",
    "VectorRetriever",
]


_T = TypeVar("_T")

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _shared_pool() -> ThreadPoolExecutor:
    """One long-lived pool for parallel hybrid search: a pool per query costs more than it saves."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            from concurrent.futures import ThreadPoolExecutor

            _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ragkit-hybrid")
        return _POOL


class BM25Retriever(Retriever):
    """Keyword retrieval: BM25 over a store's postings, the filter applied inside the store.

    Args:
        store: the store to search (``ragkit.stores.memory.MemoryStore``, Postgres, ...).
    """

    name = "bm25"
    score_kind: ScoreKind = "bm25"

    def __init__(self, *, store: Store) -> None:
        self.store = store

    @classmethod
    def from_chunks(cls, chunks: Sequence[Chunk], **bm25_options: Any) -> BM25Retriever:
        """A standalone BM25 retriever over ``chunks`` (options go to ``BM25Index``)."""
        return cls(store=_standalone(chunks, None, bm25_options))

    def _search(self, query: Query) -> list[ScoredChunk]:
        return self.store.keyword_search(query.text, query.k, query.where)

    def _ranking(self, query: Query) -> list[tuple[str, float]] | None:
        """``(chunk ID, score)`` pairs without the chunks, when the store can rank so."""
        if not isinstance(self.store, RankingStore):
            return None
        return self.store.keyword_ranking(query.text, query.k, query.where)

    def _keys(self, query: Query, store: KeyedRankingStore) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, scores)`` from a store that ranks by integer keys."""
        return store.keyword_keys(query.text, query.k, query.where)


class VectorRetriever(Retriever):
    """Dense retrieval: cosine similarity between the query's and the chunks' embeddings.

    Args:
        store: the store holding the chunks' vectors.
        embedder: embeds the query; must be the model that embedded the chunks.
    """

    name = "vector"
    score_kind: ScoreKind = "cosine"

    def __init__(self, *, store: Store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    @classmethod
    def from_chunks(
        cls, chunks: Sequence[Chunk], *, embedder: Embedder, vectors: np.ndarray | None = None
    ) -> VectorRetriever:
        """A standalone vector retriever; embeds ``chunks`` unless ``vectors`` are given."""
        if vectors is None:
            matrix = embed_checked(embedder, [c.text for c in chunks], dim=embedder.dim)
        else:
            matrix = check_embeddings(vectors, n=len(chunks), dim=embedder.dim)
        return cls(store=_standalone(chunks, (embedder, matrix), {}), embedder=embedder)

    def embed_query(self, query: str) -> np.ndarray:
        """The query's embedding, checked against the embedder's dimension.

        Raises:
            EmbeddingError: the embedder failed or returned a vector of the wrong shape.
        """
        vector: np.ndarray = embed_checked(
            self.embedder, [query], dim=self.embedder.dim, query=True
        )[0]
        return vector

    def search_vector(
        self, vector: np.ndarray, k: int, where: FilterSpec | None = None
    ) -> list[ScoredChunk]:
        """Search with an already-embedded query (lets callers embed once, search many ways)."""
        return self.store.vector_search(vector, k, parse_filter(where))

    def _search(self, query: Query) -> list[ScoredChunk]:
        return self.search_vector(self.embed_query(query.text), query.k, query.where)

    def _ranking(self, query: Query) -> list[tuple[str, float]] | None:
        """``(chunk ID, score)`` pairs without the chunks, when the store can rank so."""
        if not isinstance(self.store, RankingStore):
            return None
        vector = self.embed_query(query.text)
        return self.store.vector_ranking(vector, query.k, parse_filter(query.where))

    def _keys(self, query: Query, store: KeyedRankingStore) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, scores)`` from a store that ranks by integer keys."""
        vector = self.embed_query(query.text)
        return store.vector_keys(vector, query.k, parse_filter(query.where))


def _standalone(
    chunks: Sequence[Chunk],
    vectors: tuple[Embedder, np.ndarray] | None,
    bm25_options: Mapping[str, Any],
) -> Store:
    """A private in-memory store holding ``chunks`` (as one pseudo-document per chunk)."""
    from .base import DocumentEntry, IndexSettings
    from .bm25 import BM25Index
    from .stores.memory import MemoryStore

    store = MemoryStore()
    config = BM25Index(**dict(bm25_options)).config()  # the scoring parameters
    embedder = vectors[0] if vectors is not None else None
    store.configure(
        IndexSettings(
            embedder=embedder.name if embedder is not None else None,
            dim=embedder.dim if embedder is not None else None,
            chunk_size=1,
            chunk_overlap=0,
            bm25={k: config[k] for k in ("variant", "k1", "b", "epsilon")},
            analyzer=dict(store.analyzer.config()),
        )
    )
    by_doc: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        by_doc.setdefault(c.document_id, []).append(i)
    entries = []
    for doc_id, rows in by_doc.items():
        entries.append(
            DocumentEntry(
                document_id=doc_id,
                content_hash="",
                metadata=chunks[rows[0]].metadata,
                chunks=tuple(chunks[i] for i in rows),
                keyword_texts=tuple(chunks[i].text for i in rows),
                vectors=None if vectors is None else vectors[1][rows],
            )
        )
    store.write(entries)
    return store


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
    score_kind: ScoreKind = "fused"

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

    def score_kinds(self) -> Mapping[str, ScoreKind]:
        """What each contributor's score in a result's ``scores`` means, by name."""
        return {r.name: r.score_kind for r in self.retrievers}

    def _each(self, side: Callable[[Retriever], _T]) -> list[_T]:
        """``side(r)`` for every retriever, in order; with ``parallel``, the first runs here
        while the others run in the shared pool's threads."""
        if self.parallel and len(self.retrievers) > 1:
            pool = _shared_pool()
            futures = [pool.submit(side, r) for r in self.retrievers[1:]]
            first = side(self.retrievers[0])
            return [first, *(f.result() for f in futures)]
        return [side(r) for r in self.retrievers]

    def _rankings(self, query: Query) -> list[list[ScoredChunk]]:
        deep = query.with_k(max(self.depth, query.k))
        return self._each(lambda r: r.retrieve(deep))

    def _search(self, query: Query) -> list[ScoredChunk]:
        narrow = self._narrow_store()
        if narrow is not None:
            return self._search_narrow(query, narrow)
        return self.fuse_rankings(self._rankings(query), limit=query.k)

    def _narrow_store(self) -> RankingStore | None:
        """The one store behind every retriever when it ranks without reading chunks."""
        stores = {
            id(r.store): r.store
            for r in self.retrievers
            if isinstance(r, (BM25Retriever, VectorRetriever))
        }
        if len(stores) != 1 or len(self.retrievers) != sum(
            isinstance(r, (BM25Retriever, VectorRetriever)) for r in self.retrievers
        ):
            return None
        store = next(iter(stores.values()))
        return store if isinstance(store, RankingStore) else None

    def _search_narrow(self, query: Query, store: RankingStore) -> list[ScoredChunk]:
        """Rank each side as ``(chunk ID, score)`` pairs, fuse, fetch only the top k's chunks."""
        deep = query.with_k(max(self.depth, query.k))
        if isinstance(store, KeyedRankingStore):
            return self._search_keyed(query, deep, store)

        def ranking(r: Retriever) -> list[tuple[str, float]]:
            assert isinstance(r, (BM25Retriever, VectorRetriever))
            pairs = r._ranking(deep) or []
            pairs.sort(key=lambda p: (-p[1], p[0]))
            return pairs[: deep.k]

        pairs = self._each(ranking)
        fused = fuse(pairs, self.fusion, weights=self.weights, rrf_k=self.rrf_k)[: query.k]
        try:
            chunks = store.get_chunks([cid for cid, _ in fused])
        except KeyError:  # a writer removed a chunk between the rankings and the fetch
            return self.fuse_rankings(self._rankings(query), limit=query.k)
        if query.where is not None and not all(matches(query.where, c.metadata) for c in chunks):
            # A writer replaced a chunk between the rankings and the fetch, and its new
            # metadata no longer matches: rank again, reading chunks with their scores.
            return self.fuse_rankings(self._rankings(query), limit=query.k)
        per_retriever = [(r.name, dict(p)) for r, p in zip(self.retrievers, pairs, strict=True)]
        return [
            ScoredChunk(
                chunk,
                score,
                {name: scores[cid] for name, scores in per_retriever if cid in scores},
            )
            for chunk, (cid, score) in zip(chunks, fused, strict=True)
        ]

    def _search_keyed(
        self, query: Query, deep: Query, store: KeyedRankingStore
    ) -> list[ScoredChunk]:
        """:meth:`_search_narrow` on integer keys: IDs are read for the fused top k only."""

        def ranking(r: Retriever) -> tuple[np.ndarray, np.ndarray]:
            assert isinstance(r, (BM25Retriever, VectorRetriever))
            return r._keys(deep, store)

        keyed = self._each(ranking)
        keys, fused = fused_scores(keyed, self.fusion, weights=self.weights, rrf_k=self.rrf_k)
        if len(keys) > query.k:  # the best k, with every key tied at the k-th score
            kth = np.partition(fused, len(fused) - query.k)[len(fused) - query.k]
            best = np.flatnonzero(fused >= kth)
            keys, fused = keys[best], fused[best]
        try:
            chunks = store.chunks_at(keys.tolist())
        except KeyError:  # a writer removed or replaced a chunk since the rankings
            return self.fuse_rankings(self._rankings(query), limit=query.k)
        if query.where is not None and not all(matches(query.where, c.metadata) for c in chunks):
            return self.fuse_rankings(self._rankings(query), limit=query.k)
        values = fused.tolist()
        order = sorted(range(len(chunks)), key=lambda i: (-values[i], chunks[i].id))[: query.k]
        per_retriever = [
            (r.name, dict(zip(k.tolist(), s.tolist(), strict=True)))
            for r, (k, s) in zip(self.retrievers, keyed, strict=True)
        ]
        picked = keys.tolist()
        return [
            ScoredChunk(
                chunks[i],
                values[i],
                {name: scores[picked[i]] for name, scores in per_retriever if picked[i] in scores},
            )
            for i in order
        ]

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
