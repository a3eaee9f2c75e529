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
