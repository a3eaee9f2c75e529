"""The Retriever contract, checked for every built-in retriever and a user subclass."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from ragkit.base import Query
from ragkit.retrievers import BM25Retriever, HybridRetriever, Retriever, VectorRetriever
from ragkit.types import Chunk, ScoredChunk

from .conftest import FakeEmbedder

TEXTS = [
    "cats purr and sleep in the sun",
    "dogs bark at the mail carrier",
    "cats and dogs can live together",
    "the stock market fell sharply today",
    "rust programs are memory safe",
    "python programs are easy to read",
]
CHUNKS = [Chunk(f"doc{i}.md#0", t, f"doc{i}.md", 0, len(t)) for i, t in enumerate(TEXTS)]


class KeywordOverlap(Retriever):
    """A user-style subclass: counts shared words. Only ``_search`` is implemented."""

    name = "overlap"

    def __init__(self, *, chunks: list[Chunk]) -> None:
        self.chunks = chunks

    def size(self) -> int:
        return len(self.chunks)

    def _search(self, query: Query) -> list[ScoredChunk]:
        words = set(query.text.lower().split())
        return [ScoredChunk(c, float(len(words & set(c.text.split())))) for c in self.chunks]


def _bm25() -> Retriever:
    return BM25Retriever.from_chunks(CHUNKS)


def _vector() -> Retriever:
    return VectorRetriever.from_chunks(CHUNKS, embedder=FakeEmbedder())


def _hybrid(fusion: str) -> Callable[[], Retriever]:
    return lambda: HybridRetriever([_bm25(), _vector()], fusion=fusion)  # type: ignore[arg-type]


def _overlap() -> Retriever:
    return KeywordOverlap(chunks=CHUNKS)


FACTORIES = {
    "bm25": _bm25,
    "vector": _vector,
    "hybrid-rrf": _hybrid("rrf"),
    "hybrid-minmax": _hybrid("minmax"),
    "hybrid-zscore": _hybrid("zscore"),
    "subclass": _overlap,
}


@pytest.fixture(params=sorted(FACTORIES))
def retriever(request: pytest.FixtureRequest) -> Retriever:
    return FACTORIES[request.param]()


@pytest.mark.parametrize("k", [1, 3, 6, 50])
def test_contract(retriever: Retriever, k: int) -> None:
    results = retriever.retrieve("cats and dogs", k)
    assert 1 <= len(results) <= min(k, len(CHUNKS))
    ids = [r.chunk.id for r in results]
    assert len(set(ids)) == len(ids)
    assert set(ids) <= {c.id for c in CHUNKS}
    keys = [(-r.score, r.chunk.id) for r in results]
    assert keys == sorted(keys), "sorted by score, ties by chunk id"
    assert retriever.retrieve("cats and dogs", k) == results, "deterministic"


def test_relevant_chunk_ranks_first(retriever: Retriever) -> None:
    assert retriever.retrieve("memory safe rust programs", 2)[0].chunk.id == "doc4.md#0"


@pytest.mark.parametrize("query", ["", "   ", "\n"])
def test_empty_query_is_rejected(retriever: Retriever, query: str) -> None:
    with pytest.raises(ValueError, match="query must not be empty"):
        retriever.retrieve(query, 3)


@pytest.mark.parametrize("k", [0, -2])
def test_bad_k_is_rejected(retriever: Retriever, k: int) -> None:
    with pytest.raises(ValueError, match=rf"k \({k}\) must be >= 1"):
        retriever.retrieve("cats", k)


def test_non_string_query_and_non_int_k(retriever: Retriever) -> None:
    with pytest.raises(TypeError, match="query must be a str or ragkit.Query, got bytes"):
        retriever.retrieve(b"cats", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="k must be an int, got float"):
        retriever.retrieve("cats", 2.5)  # type: ignore[arg-type]


def test_subclass_missing_search_fails_at_creation() -> None:
    class Broken(Retriever):  # type: ignore[misc]
        pass

    with pytest.raises(TypeError, match="abstract"):
        Broken()  # type: ignore[abstract]


def test_ties_are_broken_by_chunk_id() -> None:
    class Flat(KeywordOverlap):
        def _search(self, query: Query) -> list[ScoredChunk]:
            return [ScoredChunk(c, 1.0) for c in reversed(self.chunks)]

    got = Flat(chunks=CHUNKS).retrieve("anything", 3)
    assert [r.chunk.id for r in got] == ["doc0.md#0", "doc1.md#0", "doc2.md#0"]


def test_hybrid_reports_each_retrievers_score() -> None:
    bm25, vector = _bm25(), _vector()
    hybrid = HybridRetriever([bm25, vector], fusion="minmax")
    top = hybrid.retrieve("rust memory", 3)
    assert top[0].chunk.id == "doc4.md#0"
    assert set(top[0].scores) == {"bm25", "vector"}
    assert top[0].scores["bm25"] == pytest.approx(bm25.retrieve("rust memory", 1)[0].score)
    assert top[0].scores["vector"] == pytest.approx(vector.retrieve("rust memory", 1)[0].score)


def test_hybrid_parallel_equals_sequential() -> None:
    seq = HybridRetriever([_bm25(), _vector()]).retrieve("python programs", 4)
    par = HybridRetriever([_bm25(), _vector()], parallel=True).retrieve("python programs", 4)
    assert seq == par


def test_hybrid_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="distinct"):
        HybridRetriever([_bm25(), _bm25()])
    with pytest.raises(ValueError, match="not one of"):
        HybridRetriever([_bm25()], fusion="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weight per retriever"):
        HybridRetriever([_bm25(), _vector()], weights=[1.0])
    with pytest.raises(ValueError, match="at least one"):
        HybridRetriever([])


def test_empty_retriever_returns_nothing() -> None:
    assert BM25Retriever.from_chunks([]).retrieve("cats", 3) == []


def test_vector_retriever_uses_given_vectors() -> None:
    vectors = np.eye(len(CHUNKS), 8, dtype=np.float32)
    r = VectorRetriever.from_chunks(CHUNKS, embedder=FakeEmbedder(dim=8), vectors=vectors)
    assert r.search_vector(vectors[3], 1)[0].chunk.id == "doc3.md#0"


class _PairsOnly:
    """A memory store seen only through Store + RankingStore (no integer-key rankings)."""

    def __init__(self, store: object) -> None:
        self._store = store

    def keyword_search(self, *args: object) -> list[ScoredChunk]:
        return self._store.keyword_search(*args)  # type: ignore[attr-defined, no-any-return]

    def vector_search(self, *args: object) -> list[ScoredChunk]:
        return self._store.vector_search(*args)  # type: ignore[attr-defined, no-any-return]

    def keyword_ranking(self, *args: object) -> list[tuple[str, float]]:
        return self._store.keyword_ranking(*args)  # type: ignore[attr-defined, no-any-return]

    def vector_ranking(self, *args: object) -> list[tuple[str, float]]:
        return self._store.vector_ranking(*args)  # type: ignore[attr-defined, no-any-return]

    def get_chunks(self, ids: list[str]) -> list[Chunk]:
        return self._store.get_chunks(ids)  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("fusion", ["rrf", "minmax", "zscore"])
@pytest.mark.parametrize("depth", [3, 8, 500])
def test_hybrid_on_integer_keys_equals_the_id_pairs_path(fusion: str, depth: int) -> None:
    # The memory store ranks by integer keys and hybrid search fuses those, reading chunk IDs
    # only for the top k: results, fused scores, per-retriever scores and the order of ties
    # (duplicate texts tie on both sides) must equal the (chunk ID, score) pairs path and the
    # plain path that fuses ScoredChunk lists.
    from ragkit.base import KeyedRankingStore, RankingStore

    rng = np.random.default_rng(5)
    words = ["cat", "dog", "rust", "memory", "python", "fish", "sun", "market", "read", "safe"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(2, 9)))) for _ in range(60)]
    texts += [texts[3]] * 4 + [texts[10]] * 3  # exact ties on both sides
    # IDs in the opposite order to the store's keys, so that ordering ties by key would show.
    chunks = [Chunk(f"d{99 - i}#0", t, f"d{99 - i}", 0, len(t), metadata={"n": i % 3}) for i, t in
              enumerate(texts)]  # fmt: skip
    embedder = FakeEmbedder(dim=16)
    bm25 = BM25Retriever.from_chunks(chunks)
    store = bm25.store
    vectors = embedder.embed_documents(texts)
    vector = VectorRetriever.from_chunks(chunks, embedder=embedder, vectors=vectors)
    store = vector.store  # one store for both sides: the narrow paths need that
    bm25 = BM25Retriever(store=store)
    assert isinstance(store, KeyedRankingStore)
    pairs_store = _PairsOnly(store)
    assert isinstance(pairs_store, RankingStore)
    assert not isinstance(pairs_store, KeyedRankingStore)
    keyed = HybridRetriever([bm25, vector], fusion=fusion, depth=depth)  # type: ignore[arg-type]
    by_ids = HybridRetriever(
        [BM25Retriever(store=pairs_store), VectorRetriever(store=pairs_store, embedder=embedder)],  # type: ignore[arg-type]
        fusion=fusion,  # type: ignore[arg-type]
        depth=depth,
    )
    for text in ["cat dog", "rust memory safe", texts[3], texts[10], "python read fish sun"]:
        for k in (1, 3, 10):
            for where in (None, {"n": 1}):
                query = Query(text, k, where=where)
                got = keyed.retrieve(query)
                assert got == by_ids.retrieve(query), (text, k, where)
                assert got == keyed.fuse_rankings(keyed._rankings(query), limit=k)
                assert len(got) == k
