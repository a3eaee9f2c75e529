"""Numbers from outside ragkit are checked once, where they enter, naming who sent them.

Issue 14 items 10-11: a provider's NaN rerank score was sorted on and an all-zero embedding
was stored (that chunk could never match). The boundaries: ``embed_checked`` for every vector
from any embedder (the index, a standalone vector retriever, the embedding reranker), the
``RerankRetriever`` for every reranker's score, ``check_message`` for the Claude API's token
counts (and its token-count endpoint), ``ModelPrice`` for prices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import httpx2
import numpy as np
import pytest

from ragkit.answering import answer
from ragkit.errors import AnswerError, EmbeddingError
from ragkit.index import Index
from ragkit.plan import AnswerOptions
from ragkit.pricing import ModelPrice
from ragkit.rerankers import RerankError
from ragkit.rerankers.embedding import EmbeddingReranker
from ragkit.rerankers.voyage import VoyageReranker
from ragkit.retrievers import VectorRetriever
from ragkit.types import Chunk, Document, ScoredChunk

from ..conftest import SMALL_CORPUS, FakeEmbedder, load_message

DOCS = [Document(name, text) for name, text in SMALL_CORPUS.items()]


class Faulty(FakeEmbedder):
    """The fake embedder, but one row of every document batch (or the query) is spoiled."""

    def __init__(self, spoil: str, *, on: str = "documents") -> None:
        super().__init__(name=f"faulty-{spoil}")
        self.spoil, self.on = spoil, on

    def _bad(self, out: np.ndarray) -> Any:
        if self.spoil == "nan":
            out[0, 3] = np.nan
        elif self.spoil == "inf":
            out[0, 0] = np.inf
        elif self.spoil == "zero":
            out[0] = 0.0
        elif self.spoil == "huge":  # finite in float64, infinite in float32
            return out.astype(np.float64) * 1e300
        elif self.spoil == "narrow":
            return out[:, :-1]
        elif self.spoil == "ragged":
            rows = out.tolist()
            rows[0] = rows[0][:-1]
            return rows
        return out

    def embed_documents(self, texts: Sequence[str]) -> Any:
        out = self.embed(texts)
        return self._bad(out) if self.on == "documents" else out

    def embed_query(self, text: str) -> Any:
        out = self.embed([text])
        return self._bad(out)[0] if self.on == "query" else out[0]


SPOILS = {
    "nan": "contain NaN or infinity",
    "inf": "contain NaN or infinity",
    "huge": "contain NaN or infinity",
    "zero": "all-zero vector",
    "narrow": "expected embeddings of dimension 64, got 63",
    "ragged": "not a numeric matrix",
}


@pytest.mark.parametrize(("spoil", "message"), SPOILS.items())
def test_bad_document_vectors_are_refused_and_the_index_is_unchanged(
    spoil: str, message: str
) -> None:
    index = Index(embedder=FakeEmbedder(name="faulty-" + spoil), chunk_size=32, chunk_overlap=0)
    index.add(DOCS[:2])
    before = index.chunks
    index.embedder = Faulty(spoil)
    with pytest.raises(EmbeddingError, match=f"embedder 'faulty-{spoil}'.*{message}"):
        index.add(DOCS[2:])
    assert index.chunks == before
    assert len(index.search("cats", k=50, mode="vector")) == len(before)


@pytest.mark.parametrize(("spoil", "message"), SPOILS.items())
def test_bad_query_vectors_are_refused(spoil: str, message: str) -> None:
    embedder = Faulty(spoil, on="query")
    index = Index(embedder=embedder, chunk_size=32, chunk_overlap=0)
    index.add(DOCS)
    if spoil in ("narrow", "ragged"):  # one query row: a short row is the wrong dimension
        message = "expected embeddings of dimension 64, got 63"
    with pytest.raises(EmbeddingError, match=f"embedder 'faulty-{spoil}'.*{message}"):
        index.search("cats", k=3, mode="vector")
    assert index.search("cats", k=3, mode="bm25")  # keyword search needs no vector


def test_a_standalone_vector_retriever_and_the_embedding_reranker_use_the_same_boundary() -> None:
    texts = [f"text number {i} cats" for i in range(3)]
    chunks = [Chunk(f"d{i}#0", t, f"d{i}", 0, len(t)) for i, t in enumerate(texts)]
    with pytest.raises(EmbeddingError, match="embedder 'faulty-zero'.*all-zero vector"):
        VectorRetriever.from_chunks(chunks, embedder=Faulty("zero"))
    candidates = [ScoredChunk(c, 1.0) for c in chunks]
    with pytest.raises(RerankError, match="embedding reranker failed: embedder 'faulty-nan'"):
        EmbeddingReranker(Faulty("nan")).rerank("cats", candidates)


class Scorer:
    """A reranker that gives the candidates the scores it is handed, in order."""

    def __init__(self, scores: Sequence[object]) -> None:
        self.name = "scorer"
        self.scores = scores

    def rerank(self, query: str, candidates: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        pairs = zip(candidates, self.scores, strict=False)
        return [ScoredChunk(sc.chunk, s, sc.scores) for sc, s in pairs]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (math.nan, "scored chunk '.*' nan, not a finite number"),
        (math.inf, "scored chunk '.*' inf, not a finite number"),
        (-math.inf, "scored chunk '.*' -inf, not a finite number"),
        ("0.9", "scored chunk '.*' with '0.9', not a number"),
        (None, "scored chunk '.*' with None, not a number"),
        (True, "scored chunk '.*' with True, not a number"),
    ],
)
def test_a_rerankers_score_must_be_a_finite_number(bad: object, message: str) -> None:
    index = Index(embedder=None, chunk_size=32, chunk_overlap=0)
    index.add(DOCS)
    with pytest.raises(RerankError, match=f"reranker 'scorer' {message}"):
        index.search("cats dogs", k=3, rerank=Scorer([0.5, bad, 0.1, 0.2]))
    good = index.search("cats dogs", k=2, rerank=Scorer([0.5, np.float32(0.9), 1, 0.2]))
    assert [type(sc.score) for sc in good] == [float, float]


def test_voyage_nan_scores_and_bogus_token_counts_are_caught() -> None:
    index = Index(embedder=None, chunk_size=32, chunk_overlap=0)
    index.add(DOCS)
    # Python's json reads the non-standard NaN literal: a provider (or proxy) can send it.
    body = (
        b'{"data": [{"relevance_score": NaN, "index": 0}, {"relevance_score": 0.5, "index": 1}]'
        b', "usage": {"total_tokens": -40}}'
    )
    reranker = VoyageReranker(
        api_key="vk-test",
        transport=httpx2.MockTransport(lambda r: httpx2.Response(200, content=body)),
        sleep=lambda _s: None,
    )
    with pytest.raises(RerankError, match="reranker 'voyage-rerank-2.5' scored chunk .* nan"):
        index.search("cats", k=2, rerank=reranker, mode="bm25")
    assert reranker.total_tokens == 0  # a negative count is not added


@pytest.mark.parametrize(
    ("usage", "message"),
    [
        ({"input_tokens": -5, "output_tokens": 10}, "usage.input_tokens is -5, not a token count"),
        ({"input_tokens": 5, "output_tokens": "10"}, "usage.output_tokens is '10'"),
        ({"input_tokens": True, "output_tokens": 10}, "usage.input_tokens is True"),
        ({"input_tokens": 5, "output_tokens": 10**15}, "usage.output_tokens is 10+"),
        (
            {"input_tokens": 5, "output_tokens": 10, "cache_read_input_tokens": -1},
            "usage.cache_read_input_tokens is -1",
        ),
    ],
)
def test_claude_token_counts_are_checked_where_the_reply_is_read(
    claude: Any, usage: dict[str, Any], message: str
) -> None:
    reply = load_message("success")
    reply["usage"] = usage
    client, rec = claude([reply])
    index = Index(embedder=None, chunk_size=64, chunk_overlap=0)
    index.add(DOCS)
    expected = f"Claude API's reply is not a complete message.*{message}"
    with pytest.raises(AnswerError, match=expected):
        answer("How do dogs learn?", index, AnswerOptions(strategy="retrieve"), client=client)
    assert len(rec.requests) == 1


def test_claude_token_counts_within_range_are_priced() -> None:
    # The success fixture's own usage passes the same check (covered across tests/test_answer.py);
    # here the edge: zero and cache fields absent (None) are counts.
    from ragkit.claude import _problem

    reply = load_message("success")
    reply["usage"] = {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": None}
    import anthropic.types

    assert _problem(anthropic.types.Message.model_validate(reply)) is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, "1.0", True])
def test_prices_must_be_finite_and_not_negative(bad: object) -> None:
    with pytest.raises(ValueError, match=r"ModelPrice.input \(.*\) must be a finite number >= 0"):
        ModelPrice(input=bad, output=5.0, cache_write=1.25, cache_read=0.1)  # type: ignore[arg-type]
    assert ModelPrice(input=0, output=5.0, cache_write=1.25, cache_read=0.1).input == 0
