"""Tests of the hosted embedders (Voyage, OpenAI) through mocked HTTP transports: no network.

Responses use the providers' real shapes: ``{"object": "list", "data": [{"object":
"embedding", "embedding": [...], "index": i}], "model": ..., "usage": {...}}``, and their error
bodies (OpenAI ``{"error": {"message", "type", "code"}}``, Voyage ``{"detail": ...}``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import numpy as np
import pytest

from ragkit.embedders import (
    Embedder,
    EmbedderKeyError,
    OpenAIEmbedder,
    VoyageEmbedder,
    gate_threshold,
    get_embedder,
)
from ragkit.embedders._http import token_batches
from ragkit.errors import EmbeddingError
from ragkit.pricing import EMBEDDING_PRICES, embedding_cost

Handler = Callable[[httpx2.Request], httpx2.Response]


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)


def _vector(seed: int, dim: int) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(dim)
    return [float(x) for x in v / np.linalg.norm(v)]


def _success(body: dict[str, Any], dim: int, *, usage: str) -> httpx2.Response:
    """A provider's answer to ``body``: one vector per input, listed in reverse index order."""
    texts = body["input"]
    data = [
        {"object": "embedding", "embedding": _vector(len(t), dim), "index": i}
        for i, t in enumerate(texts)
    ]
    tokens = sum(len(t.split()) for t in texts)
    counts = (
        {"prompt_tokens": tokens, "total_tokens": tokens}
        if usage == "openai"
        else {"total_tokens": tokens}
    )
    return httpx2.Response(
        200,
        json={"object": "list", "data": data[::-1], "model": body["model"], "usage": counts},
    )


class Recorder:
    """A mock transport's handler that records requests and plays scripted answers."""

    def __init__(self, dim: int, usage: str, script: list[int | str] | None = None) -> None:
        self.dim = dim
        self.usage = usage
        self.script = list(script or [])
        self.requests: list[httpx2.Request] = []
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        body = json.loads(request.content)
        self.bodies.append(body)
        step = self.script.pop(0) if self.script else 200
        if step == "drop":
            raise httpx2.ConnectError("connection reset", request=request)
        if step == 200:
            return _success(body, self.dim, usage=self.usage)
        if self.usage == "openai":
            error = {"message": f"status {step}", "type": "server_error", "code": None}
            payload: dict[str, Any] = {"error": error}
        else:
            payload = {"detail": f"status {step}"}
        headers = {"retry-after": "7"} if step == 429 else {}
        return httpx2.Response(int(step), json=payload, headers=headers)


def _client(handler: Handler) -> httpx2.Client:
    return httpx2.Client(transport=httpx2.MockTransport(handler))


def _openai(rec: Recorder, sleeps: list[float], **kwargs: Any) -> OpenAIEmbedder:
    return OpenAIEmbedder(api_key="sk-test", client=_client(rec), sleep=sleeps.append, **kwargs)


def _voyage(rec: Recorder, sleeps: list[float], **kwargs: Any) -> VoyageEmbedder:
    return VoyageEmbedder(api_key="pa-test", client=_client(rec), sleep=sleeps.append, **kwargs)


# -- requests and answers ----------------------------------------------------------------------


def test_openai_request_and_vectors_in_input_order() -> None:
    rec, sleeps = Recorder(512, "openai"), []
    emb = _openai(rec, sleeps, model="text-embedding-3-small", dim=512)
    assert isinstance(emb, Embedder)
    assert emb.name == "openai/text-embedding-3-small/512"
    texts = ["alpha", "beta gamma", "delta epsilon zeta"]
    out = emb.embed_documents(texts)
    assert out.shape == (3, 512)
    assert out.dtype == np.float32
    # Answers came back in reverse order: rows follow "index", not position.
    np.testing.assert_allclose(out[2], _vector(len(texts[2]), 512), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    (req,) = rec.requests
    assert str(req.url) == "https://api.openai.com/v1/embeddings"
    assert req.headers["authorization"] == "Bearer sk-test"
    assert rec.bodies[0] == {
        "model": "text-embedding-3-small",
        "input": texts,
        "encoding_format": "float",
        "dimensions": 512,
    }
    assert emb.embed_query("alpha").shape == (512,)


def test_openai_full_dimension_sends_no_dimensions_field() -> None:
    rec, sleeps = Recorder(1536, "openai"), []
    _openai(rec, sleeps).embed_documents(["x"])
    assert "dimensions" not in rec.bodies[0]


def test_openai_truncates_long_inputs_and_replaces_empty_ones() -> None:
    rec, sleeps = Recorder(1536, "openai"), []
    _openai(rec, sleeps).embed_documents(["word " * 9000, ""])
    sent = rec.bodies[0]["input"]
    from ragkit.tokens import count_tokens

    assert count_tokens(sent[0]) <= 8192
    assert sent[1] == " "


def test_voyage_sends_input_type_for_documents_and_queries() -> None:
    rec, sleeps = Recorder(512, "voyage"), []
    emb = _voyage(rec, sleeps, model="voyage-4-lite", dim=512)
    assert emb.name == "voyage/voyage-4-lite/512"
    emb.embed_documents(["a doc", "another doc"])
    emb.embed_query("a question")
    assert [b["input_type"] for b in rec.bodies] == ["document", "query"]
    assert rec.bodies[0] == {
        "model": "voyage-4-lite",
        "input": ["a doc", "another doc"],
        "input_type": "document",
        "output_dimension": 512,
        "truncation": True,
    }
    assert str(rec.requests[0].url) == "https://api.voyageai.com/v1/embeddings"
    assert rec.requests[0].headers["authorization"] == "Bearer pa-test"


def test_requests_stay_within_the_item_limit() -> None:
    rec, sleeps = Recorder(256, "voyage"), []
    emb = _voyage(rec, sleeps, dim=256)
    out = emb.embed_documents([f"text {i}" for i in range(2500)])
    assert out.shape == (2500, 256)
    assert [len(b["input"]) for b in rec.bodies] == [1000, 1000, 500]


def test_requests_stay_within_the_token_limit() -> None:
    rec, sleeps = Recorder(1024, "voyage"), []
    emb = _voyage(rec, sleeps, model="voyage-4-large")  # 120,000 tokens per request
    text = "lorem " * 30_000  # ~30,000 tokens each
    emb.embed_documents([text] * 8)
    from ragkit.tokens import count_tokens

    for body in rec.bodies:
        assert sum(count_tokens(t) for t in body["input"]) <= 0.8 * 120_000
    assert sum(len(b["input"]) for b in rec.bodies) == 8
    assert len(rec.bodies) > 1


def test_token_batches_keep_order_and_isolate_oversized_texts() -> None:
    runs = token_batches([3, 3, 50, 3, 3, 3], max_items=10, max_tokens=7)
    assert [list(r) for r in runs] == [[0, 1], [2], [3, 4], [5]]


def test_empty_input_sends_nothing() -> None:
    rec, sleeps = Recorder(1024, "voyage"), []
    assert _voyage(rec, sleeps).embed_documents([]).shape == (0, 1024)
    assert rec.requests == []


# -- retries and errors ------------------------------------------------------------------------


def test_retries_429_and_5xx_with_backoff_honouring_retry_after() -> None:
    rec, sleeps = Recorder(1536, "openai", [429, 503, "drop"]), []
    out = _openai(rec, sleeps).embed_documents(["hello"])
    assert out.shape == (1, 1536)
    assert len(rec.requests) == 4
    assert sleeps[0] >= 7  # Retry-After: 7
    assert 2 * 0.5 <= sleeps[1] <= 2
    assert 4 * 0.5 <= sleeps[2] <= 4


def test_gives_up_after_max_retries_with_an_embedding_error() -> None:
    rec, sleeps = Recorder(1024, "voyage", [500] * 10), []
    with pytest.raises(EmbeddingError, match=r"HTTP 500: status 500 after 3 tries"):
        _voyage(rec, sleeps, max_retries=2).embed_query("q")
    assert len(rec.requests) == 3
    assert len(sleeps) == 2


def test_client_errors_are_not_retried_and_name_the_key_variable() -> None:
    rec, sleeps = Recorder(1536, "openai", [401]), []
    with pytest.raises(EmbeddingError, match=r"HTTP 401: status 401 \(check OPENAI_API_KEY\)"):
        _openai(rec, sleeps).embed_documents(["x"])
    assert len(rec.requests) == 1
    assert sleeps == []


def test_transport_failure_after_retries_is_an_embedding_error() -> None:
    rec, sleeps = Recorder(1536, "openai", ["drop"] * 3), []
    with pytest.raises(EmbeddingError, match="no answer from .* after 3 tries: ConnectError"):
        _openai(rec, sleeps, max_retries=2).embed_query("x")


def test_wrong_dimension_in_answer_is_an_embedding_error() -> None:
    rec, sleeps = Recorder(256, "voyage"), []  # answers 256-d vectors
    with pytest.raises(EmbeddingError, match="dimension 1024"):
        _voyage(rec, sleeps, dim=1024).embed_query("q")


def test_malformed_answer_is_an_embedding_error() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={"object": "list", "data": [{"vector": [1.0]}]})

    emb = OpenAIEmbedder(api_key="k", client=_client(handler))
    with pytest.raises(EmbeddingError, match="unexpected answer shape"):
        emb.embed_query("q")


@pytest.mark.parametrize(
    ("make", "variable"),
    [(lambda: OpenAIEmbedder(), "OPENAI_API_KEY"), (lambda: VoyageEmbedder(), "VOYAGE_API_KEY")],
)
def test_missing_key_is_a_clear_error_before_any_request(
    make: Callable[[], Any], variable: str
) -> None:
    emb = make()
    emb._client = _client(lambda r: pytest.fail("no request may be sent"))
    with pytest.raises(EmbedderKeyError, match=f"{variable} is not set: export {variable}="):
        emb.embed_query("q")


def test_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOYAGE_API_KEY", "pa-env")
    rec = Recorder(1024, "voyage")
    VoyageEmbedder(client=_client(rec)).embed_query("q")
    assert rec.requests[0].headers["authorization"] == "Bearer pa-env"


# -- names, registry, cost ---------------------------------------------------------------------


def test_registry_resolves_hosted_names() -> None:
    assert get_embedder("openai/text-embedding-3-large/256").name == (
        "openai/text-embedding-3-large/256"
    )
    assert get_embedder("openai").name == "openai/text-embedding-3-small/1536"
    assert get_embedder("voyage/voyage-4-lite/2048").name == "voyage/voyage-4-lite/2048"
    assert get_embedder("voyage").name == "voyage/voyage-4/1024"
    assert gate_threshold("voyage/voyage-4/1024") is None  # uncalibrated: coverage decides


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("openai/text-embedding-ada-002", "is not one of"),
        ("openai/text-embedding-3-small/4096", "between 1 and 1536"),
        ("voyage/voyage-4/300", "must be one of 256, 512, 1024, 2048"),
        ("voyage/voyage-2", "is not one of"),
        ("voyage/voyage-4/big", "must be a number"),
    ],
)
def test_registry_refuses_unknown_models_and_dimensions(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_embedder(name)


def test_cost_estimate_before_sending() -> None:
    rec, sleeps = Recorder(1536, "openai"), []
    emb = _openai(rec, sleeps)
    cost = emb.estimate_cost(["hello world"] * 3000)
    assert (cost.texts, cost.tokens, cost.requests) == (3000, 6000, 2)
    assert cost.usd == pytest.approx(6000 * 0.02 / 1e6)
    assert rec.requests == []  # nothing sent


def test_embedding_prices_cover_every_shipped_model() -> None:
    from ragkit.embedders import openai as openai_module
    from ragkit.embedders import voyage as voyage_module

    for model in [*openai_module.MODELS, *voyage_module.MODELS]:
        assert model in EMBEDDING_PRICES
    assert embedding_cost("text-embedding-3-large", 2_000_000) == pytest.approx(0.26)
    assert embedding_cost("unknown-model", 10) is None
    with pytest.raises(ValueError, match="tokens"):
        embedding_cost("voyage-4", -1)
