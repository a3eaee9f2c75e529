"""The reranking stage: RerankRetriever, the registry, Voyage over a mock transport, wiring."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx2
import pytest
from click.testing import CliRunner

from ragkit import rerankers
from ragkit.base import Query, Reranker
from ragkit.cli import cli
from ragkit.errors import UnknownNameError
from ragkit.index import Index
from ragkit.plan import AnswerOptions, retrieve_context
from ragkit.rerankers import (
    RerankError,
    RerankRetriever,
    get_reranker,
    register_reranker,
    resolve_reranker,
    with_reranker,
)
from ragkit.rerankers.embedding import EmbeddingReranker
from ragkit.rerankers.voyage import VoyageReranker
from ragkit.types import Document, ScoredChunk

from .conftest import SMALL_CORPUS, FakeEmbedder, write_corpus


class Reverse:
    """Scores candidates in the reverse of the order they came in; records what it saw."""

    name = "reverse"

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def rerank(self, query: str, candidates: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        self.seen.append([sc.chunk.id for sc in candidates])
        n = len(candidates)
        return [ScoredChunk(sc.chunk, float(i)) for i, sc in enumerate(candidates)][::-1][:n]


def _docs() -> list[Document]:
    return [Document(name, text) for name, text in SMALL_CORPUS.items()]


@pytest.fixture
def hybrid(fake_embedder: FakeEmbedder) -> Index:
    index = Index(embedder=fake_embedder, chunk_size=32, chunk_overlap=0)
    index.add(_docs())
    return index


@pytest.fixture
def keyword() -> Index:
    index = Index(embedder=None, chunk_size=32, chunk_overlap=0)
    index.add(_docs())
    return index


# -- RerankRetriever -------------------------------------------------------------------------


def test_reranked_results_keep_base_scores_and_add_the_rerankers(hybrid: Index) -> None:
    plain = hybrid.search("what do cats eat", k=3)
    reverse = Reverse()
    reranked = hybrid.search("what do cats eat", k=3, rerank=reverse)
    candidates = reverse.seen[0]
    assert reranked[0].chunk.id == candidates[-1]  # the reverse order won
    assert [r.chunk.id for r in reranked] != [p.chunk.id for p in plain]
    for r in reranked:
        assert set(r.scores) >= {"hybrid", "reverse"}
        assert r.scores["reverse"] == r.score
        assert "vector" in r.scores or "bm25" in r.scores


def test_score_kinds_pass_the_base_through(hybrid: Index) -> None:
    retriever = hybrid.retriever_for(Query("cats"), rerank=Reverse())
    assert isinstance(retriever, RerankRetriever)
    assert retriever.score_kinds() == {
        "bm25": "bm25",
        "vector": "cosine",
        "hybrid": "fused",
        "reverse": "rerank",
    }
    vector_only = with_reranker(hybrid.retriever("vector"), Reverse())
    assert vector_only.score_kinds() == {"vector": "cosine", "reverse": "rerank"}
    assert all("vector" in r.scores for r in vector_only.retrieve("cats", 2))


def test_top_n_bounds_the_candidates_and_k_the_results(hybrid: Index) -> None:
    reverse = Reverse()
    retriever = RerankRetriever(hybrid.retriever(), reverse, top_n=4)
    results = retriever.retrieve("cats dogs python rust", 2)
    assert len(reverse.seen[0]) == 4
    assert len(results) == 2
    retriever.retrieve("cats dogs python rust", 6)  # k above top_n: k candidates
    assert len(reverse.seen[1]) == 6


def test_gate_reads_the_vector_cosine_after_reranking(hybrid: Index) -> None:
    options = AnswerOptions(strategy="retrieve", rerank=Reverse())
    plan = retrieve_context(Query("what do cats eat", k=3), hybrid, options)
    assert plan.gate is not None
    assert plan.gate.top_cosine is not None
    cosines = [sc.scores["vector"] for sc in plan.retrieved if "vector" in sc.scores]
    assert plan.gate.top_cosine == max(cosines)
    assert [sc.scores["reverse"] for sc in plan.retrieved] == sorted(
        (sc.scores["reverse"] for sc in plan.retrieved), reverse=True
    )


def test_retrieve_context_reranks_a_bare_retriever(keyword: Index) -> None:
    reverse = Reverse()
    options = AnswerOptions(rerank=reverse, gate=False)
    plan = retrieve_context(Query("cats", k=2), keyword.retriever(), options)
    assert reverse.seen
    assert plan.retrieved[0].chunk.id == reverse.seen[0][-1]


def test_a_reranker_inventing_chunks_or_failing_is_a_rerank_error(keyword: Index) -> None:
    class Liar:
        name = "liar"

        def rerank(self, query: str, candidates: Sequence[ScoredChunk]) -> list[ScoredChunk]:
            other = Index(embedder=None)
            other.add([Document("x.md", "cats cats"), Document("y.md", "a"), Document("z.md", "b")])
            return other.search("cats", k=1)

    class Broken:
        name = "broken"

        def rerank(self, query: str, candidates: Sequence[ScoredChunk]) -> list[ScoredChunk]:
            raise RuntimeError("out of memory")

    with pytest.raises(RerankError, match="returned chunk 'x.md#0', which was not among"):
        keyword.search("cats", rerank=Liar())
    with pytest.raises(RerankError, match="reranker 'broken' failed: out of memory"):
        keyword.search("cats", rerank=Broken())


def test_bad_arguments_name_the_parameter(keyword: Index) -> None:
    with pytest.raises(ValueError, match=r"top_n \(0\) must be an integer >= 1"):
        RerankRetriever(keyword.retriever(), Reverse(), top_n=0)
    with pytest.raises(TypeError, match="rerank must be a reranker name"):
        resolve_reranker(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reranker must be a Reranker"):
        RerankRetriever(keyword.retriever(), object())  # type: ignore[arg-type]


def test_embedding_reranker_gives_a_keyword_index_a_semantic_order(keyword: Index) -> None:
    reranker = EmbeddingReranker(FakeEmbedder())
    assert isinstance(reranker, Reranker)
    results = keyword.search("cat eats fish chicken mice", k=2, rerank=reranker)
    assert results[0].chunk.document_id == "cats.md"
    assert results[0].scores[reranker.name] == pytest.approx(results[0].score)
    assert "bm25" in results[0].scores


# -- registry --------------------------------------------------------------------------------


def test_registry_names_and_unknown_names() -> None:
    assert {"voyage", "cross-encoder", "embedder"} <= set(rerankers.available_rerankers())
    with pytest.raises(UnknownNameError, match="unknown reranker 'nope'; known: cross-encoder, "):
        get_reranker("nope")
    with pytest.raises(ValueError, match="'cross-encoder' needs a model"):
        get_reranker("cross-encoder")


def test_entry_point_plugins_get_the_model_after_the_colon(
    plugins: dict[str, list[Any]],
) -> None:
    made: list[str | None] = []

    def factory(model: str | None = None) -> Reranker:
        made.append(model)
        return Reverse()

    class EntryPoint:
        name = "mine"

        def load(self) -> object:
            return factory

    plugins[rerankers.ENTRY_POINT_GROUP] = [EntryPoint()]
    rerankers.RERANKERS.reload()
    assert "mine" in rerankers.available_rerankers()
    assert get_reranker("mine:big-model").name == "reverse"
    assert made == ["big-model"]

    class NotAReranker:
        name = "bad"

        def load(self) -> object:
            return lambda model=None: object()

    plugins[rerankers.ENTRY_POINT_GROUP] = [NotAReranker()]
    rerankers.RERANKERS.reload()
    with pytest.raises(TypeError, match="reranker factory 'bad' returned object"):
        get_reranker("bad")


# -- Voyage ----------------------------------------------------------------------------------


def _voyage_reply(scores: Sequence[float], tokens: int = 120) -> dict[str, object]:
    """Voyage's real rerank response shape: data sorted by relevance, index into the input."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return {
        "object": "list",
        "data": [{"relevance_score": scores[i], "index": i} for i in order],
        "model": "rerank-2.5",
        "usage": {"total_tokens": tokens},
    }


def _voyage(handler, **kwargs) -> tuple[VoyageReranker, list[httpx2.Request], list[float]]:  # type: ignore[no-untyped-def]
    seen: list[httpx2.Request] = []
    waits: list[float] = []

    def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return handler(request)

    reranker = VoyageReranker(
        api_key="vk-test",
        transport=httpx2.MockTransport(record),
        sleep=waits.append,
        **kwargs,
    )
    return reranker, seen, waits


def test_voyage_sends_query_and_documents_and_maps_scores_back(keyword: Index) -> None:
    candidates = keyword.search("cats dogs", k=3)
    reranker, seen, _ = _voyage(lambda r: httpx2.Response(200, json=_voyage_reply([0.1, 0.9, 0.4])))
    out = reranker.rerank("cats dogs", candidates)
    body = json.loads(seen[0].content)
    assert str(seen[0].url) == "https://api.voyageai.com/v1/rerank"
    assert seen[0].headers["authorization"] == "Bearer vk-test"
    assert body["query"] == "cats dogs"
    assert body["model"] == "rerank-2.5"
    assert body["truncation"] is True
    assert body["documents"][0].endswith(candidates[0].chunk.text)
    assert [sc.chunk.id for sc in out] == [candidates[i].chunk.id for i in (1, 2, 0)]
    assert [sc.score for sc in out] == [0.9, 0.4, 0.1]
    assert reranker.total_tokens == 120
    assert reranker.name == "voyage-rerank-2.5"


def test_voyage_retries_429_and_5xx_with_backoff(keyword: Index) -> None:
    candidates = keyword.search("cats", k=2)
    replies = iter(
        [
            httpx2.Response(429, json={"detail": "rate limited"}, headers={"retry-after": "2"}),
            httpx2.Response(503, json={"detail": "overloaded"}),
            httpx2.Response(200, json=_voyage_reply([0.2, 0.7])),
        ]
    )
    reranker, seen, waits = _voyage(lambda r: next(replies), backoff=0.5)
    out = reranker.rerank("cats", candidates)
    assert len(seen) == 3
    assert out[0].chunk.id == candidates[1].chunk.id
    assert waits[0] == 2.0  # Retry-After honoured
    assert 0.5 <= waits[1] <= 1.0  # 0.5 * 2**1, with jitter (x 0.5-1)


def test_voyage_gives_up_after_max_retries_and_reports_client_errors(keyword: Index) -> None:
    candidates = keyword.search("cats", k=2)
    reranker, seen, waits = _voyage(
        lambda r: httpx2.Response(500, json={"detail": "boom"}), max_retries=2
    )
    with pytest.raises(RerankError, match="Voyage rerank failed with 500 after 3 attempts: boom"):
        reranker.rerank("cats", candidates)
    assert len(seen) == 3
    assert len(waits) == 2
    bad_key, seen, _ = _voyage(lambda r: httpx2.Response(401, json={"detail": "Invalid key"}))
    with pytest.raises(RerankError, match="refused the API key .401: Invalid key.; check VOYAGE"):
        bad_key.rerank("cats", candidates)
    assert len(seen) == 1  # a 4xx is not retried


def test_voyage_retries_connection_errors(keyword: Index) -> None:
    candidates = keyword.search("cats", k=2)
    calls = iter([httpx2.ConnectError("refused"), None])

    def handler(request: httpx2.Request) -> httpx2.Response:
        err = next(calls)
        if err is not None:
            raise err
        return httpx2.Response(200, json=_voyage_reply([0.3, 0.1]))

    reranker, seen, waits = _voyage(handler)
    assert reranker.rerank("cats", candidates)[0].chunk.id == candidates[0].chunk.id
    assert len(waits) == 1


def test_voyage_malformed_replies_are_errors(keyword: Index) -> None:
    candidates = keyword.search("cats", k=2)
    partial = {"data": [{"relevance_score": 0.5, "index": 0}]}
    reranker, _, _ = _voyage(lambda r: httpx2.Response(200, json=partial))
    with pytest.raises(RerankError, match="scored 1 of 2 documents"):
        reranker.rerank("cats", candidates)
    out_of_range = {"data": [{"relevance_score": 0.5, "index": 7}]}
    reranker, _, _ = _voyage(lambda r: httpx2.Response(200, json=out_of_range))
    with pytest.raises(RerankError, match="malformed row"):
        reranker.rerank("cats", candidates)


def test_voyage_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    with pytest.raises(RerankError, match="VOYAGE_API_KEY is not set"):
        get_reranker("voyage")
    monkeypatch.setenv("VOYAGE_API_KEY", "vk-env")
    assert get_reranker("voyage:rerank-2.5-lite").name == "voyage-rerank-2.5-lite"


def test_voyage_cost_estimate_uses_the_price_table(keyword: Index) -> None:
    candidates = keyword.search("cats", k=2)
    reranker, _, _ = _voyage(lambda r: httpx2.Response(200, json=_voyage_reply([0.1, 0.2])))
    cost = reranker.estimate_cost("cats", candidates)
    assert cost is not None
    assert 0 < cost < 1e-4


# -- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def keyword_index_dir(tmp_path: Path) -> Path:
    corpus = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    path = tmp_path / "idx"
    result = CliRunner().invoke(cli, ["index", str(corpus), "--index", str(path), "--keyword-only"])
    assert result.exit_code == 0, result.output
    return path


def test_cli_search_and_ask_rerank_by_name(
    keyword_index_dir: Path, monkeypatch: pytest.MonkeyPatch, plugins: dict[str, list[Any]]
) -> None:
    reverse = Reverse()
    register_reranker("rev", lambda model=None: reverse)
    runner = CliRunner()
    out = runner.invoke(
        cli, ["search", "cats", "--index", str(keyword_index_dir), "--rerank", "rev", "--json"]
    )
    assert out.exit_code == 0, out.output
    results = json.loads(out.stdout)["results"]
    assert reverse.seen
    assert results[0]["id"] == reverse.seen[0][-1]
    ask = runner.invoke(
        cli,
        ["ask", "cats", "--index", str(keyword_index_dir), "--rerank", "rev", "--strategy",
         "retrieve", "--no-gate", "--json"],
    )  # fmt: skip
    assert ask.exit_code == 0, ask.output
    assert len(reverse.seen) == 2


def test_cli_rerank_errors(keyword_index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    runner = CliRunner()
    unknown = runner.invoke(cli, ["search", "cats", "--index", str(keyword_index_dir),
                                  "--rerank", "nope"])  # fmt: skip
    assert unknown.exit_code == 2
    assert "unknown reranker 'nope'" in unknown.output
    no_key = runner.invoke(cli, ["search", "cats", "--index", str(keyword_index_dir),
                                 "--rerank", "voyage"])  # fmt: skip
    assert no_key.exit_code == 1
    assert "VOYAGE_API_KEY is not set" in no_key.output
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")  # the answering path checks it too
    ask = runner.invoke(cli, ["ask", "cats", "--index", str(keyword_index_dir),
                              "--rerank", "nope"])  # fmt: skip
    assert ask.exit_code == 2
    assert "unknown reranker 'nope'" in ask.output


# -- cross-encoder (real sentence-transformers code on a tiny model built here) ------------------


@pytest.mark.slow
def test_cross_encoder_reranker_loads_a_local_model_offline(tmp_path: Path, keyword: Index) -> None:
    pytest.importorskip("sentence_transformers")
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from ragkit.rerankers.cross_encoder import CrossEncoderReranker

    words = sorted({w.lower().strip(".,:#=") for t in SMALL_CORPUS.values() for w in t.split()})
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    model_dir = tmp_path / "tiny-cross-encoder"
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(model_dir)
    config = BertConfig(
        vocab_size=len(words) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=128, num_labels=1,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(model_dir)

    reranker = CrossEncoderReranker(model_dir, max_length=64)
    assert reranker.name == "cross-encoder:tiny-cross-encoder"
    candidates = keyword.search("cats dogs", k=4)
    out = reranker.rerank("cats dogs", candidates)
    assert sorted(sc.chunk.id for sc in out) == sorted(sc.chunk.id for sc in candidates)
    assert [sc.score for sc in out] == sorted((sc.score for sc in out), reverse=True)
    reranked = keyword.search("cats dogs", k=2, rerank=reranker)
    assert [r.chunk.id for r in reranked] == [sc.chunk.id for sc in out[:2]]
    with pytest.raises(RerankError, match="cannot load cross-encoder"):
        CrossEncoderReranker(tmp_path / "missing")
