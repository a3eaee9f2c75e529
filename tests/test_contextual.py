"""Contextual retrieval: the real anthropic SDK over a mock transport, single and batch paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from click.testing import CliRunner

from ragkit.chunking import chunk_document
from ragkit.cli import cli
from ragkit.contextual import (
    CHUNK_PROMPT,
    DOCUMENT_PROMPT,
    ContextualizeError,
    Contextualizer,
    cache_path_for,
)
from ragkit.errors import MissingAPIKeyError
from ragkit.index import Index
from ragkit.pricing import price_for
from ragkit.tokens import count_tokens
from ragkit.types import Document

from .conftest import SMALL_CORPUS, write_corpus


def _message(text: str) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 50, "output_tokens": 12},
    }


def _chunk_of(request: dict[str, Any]) -> str:
    return request["messages"][0]["content"][1]["text"].split("<chunk>\n")[1].split("\n</chunk>")[0]


def _echo(request: httpx2.Request) -> httpx2.Response:
    """Answers a Messages request with a context naming the chunk's first word."""
    body = json.loads(request.content)
    first = _chunk_of(body).split()[0]
    return httpx2.Response(200, json=_message(f"Context about {first} zebrafish."))


DOC = Document("pets.md", "# Pets\n\nCats purr softly.\n\n## Dogs\n\nDogs bark loudly at night.\n")


def test_single_requests_cache_the_document_and_return_one_context_per_chunk(claude) -> None:
    client, rec = claude(_echo)
    chunks = chunk_document(DOC, size=8, overlap=0)
    assert len(chunks) >= 2
    ctx = Contextualizer(client, batch=False)
    contexts = ctx.contextualize(DOC, chunks)
    assert len(contexts) == len(chunks) == len(rec.requests)
    first = rec.requests[0]
    assert first["model"] == "claude-haiku-4-5"
    assert first["max_tokens"] == 200
    doc_block, chunk_block = first["messages"][0]["content"]
    assert doc_block["cache_control"] == {"type": "ephemeral"}
    assert doc_block["text"] == DOCUMENT_PROMPT.format(document=DOC.text)
    assert chunk_block["text"] == CHUNK_PROMPT.format(chunk=chunks[0].text)
    assert contexts[0] == f"Context about {chunks[0].text.split()[0]} zebrafish."


def test_index_searches_context_but_keeps_the_chunk_text(claude) -> None:
    client, _ = claude(_echo)
    index = Index(embedder=None, chunk_size=8, chunk_overlap=0)
    others = [Document(n, t) for n, t in SMALL_CORPUS.items()]
    index.add([DOC, *others], contextualizer=Contextualizer(client, batch=False))
    texts = {d.id: d.text for d in [DOC, *others]}
    hits = index.search("zebrafish", k=3)  # a word only the contexts contain
    assert len(hits) == 3
    for hit in hits:
        assert hit.chunk.text == texts[hit.chunk.document_id][hit.chunk.start : hit.chunk.end]
        assert "zebrafish" not in hit.chunk.text


def test_cache_means_unchanged_documents_cost_nothing(claude, tmp_path: Path) -> None:
    cache = tmp_path / "idx.contextual.jsonl"
    client, rec = claude(_echo)
    chunks = chunk_document(DOC, size=8, overlap=0)
    first = Contextualizer(client, batch=False, cache_path=cache).contextualize(DOC, chunks)
    made = len(rec.requests)
    again = Contextualizer(client, batch=False, cache_path=cache)
    assert again.contextualize(DOC, chunks) == first
    assert len(rec.requests) == made
    assert again.requests_made == 0
    assert again.estimate([(DOC, chunks)]).requests == 0
    changed = Document(DOC.id, DOC.text.replace("softly", "loudly"))
    again.contextualize(changed, chunk_document(changed, size=8, overlap=0))
    assert len(rec.requests) > made  # another document hash: asked again
    assert cache_path_for(tmp_path / "index") == tmp_path / "index.contextual.jsonl"
    assert cache_path_for("postgresql://u@h/db") is None


def _batch(status: str, n: int) -> dict[str, Any]:
    return {
        "id": "msgbatch_01",
        "type": "message_batch",
        "processing_status": status,
        "request_counts": {"processing": 0 if status == "ended" else n, "succeeded": 0,
                           "errored": 0, "canceled": 0, "expired": 0},
        "ended_at": "2026-11-25T01:00:00Z" if status == "ended" else None,
        "created_at": "2026-11-25T00:00:00Z",
        "expires_at": "2026-11-26T00:00:00Z",
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": "https://api.anthropic.com/v1/messages/batches/msgbatch_01/results"
        if status == "ended"
        else None,
    }  # fmt: skip


def test_batch_polls_until_ended_and_retries_failed_requests_singly(claude) -> None:
    chunks = chunk_document(DOC, size=8, overlap=0)
    n = len(chunks)
    polls: list[str] = []
    submitted: dict[str, Any] = {}
    retried: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if request.method == "POST" and path == "/v1/messages/batches":
            submitted.update(json.loads(request.content))
            return httpx2.Response(200, json=_batch("in_progress", n))
        if path == "/v1/messages/batches/msgbatch_01":
            polls.append(path)
            status = "in_progress" if len(polls) < 2 else "ended"
            return httpx2.Response(200, json=_batch(status, n))
        if path.endswith("/results"):
            ids = [r["custom_id"] for r in submitted["requests"]]
            lines = [
                {"custom_id": ids[0], "result": {"type": "succeeded",
                                                 "message": _message("Batch context.")}},
                {"custom_id": ids[1], "result": {"type": "errored", "error": {
                    "type": "error", "error": {"type": "api_error", "message": "boom"}}}},
            ] + [{"custom_id": i, "result": {"type": "expired"}} for i in ids[2:]]  # fmt: skip
            body = "\n".join(json.dumps(line) for line in lines).encode()
            return httpx2.Response(200, content=body,
                                   headers={"content-type": "application/binary"})  # fmt: skip
        assert path == "/v1/messages"
        retried.append(_chunk_of(json.loads(request.content)))
        if len(retried) == 1:
            return httpx2.Response(200, json=_message("Retried context."))
        down = {"type": "error", "error": {"type": "api_error", "message": "down"}}
        return httpx2.Response(500, json=down)

    client, _ = claude(handler)
    waits: list[float] = []
    ctx = Contextualizer(client, batch=True, poll_interval=5.0, sleep=waits.append)
    contexts = ctx.contextualize(DOC, chunks)
    assert len(submitted["requests"]) == n
    assert submitted["requests"][0]["params"]["messages"][0]["content"][0]["cache_control"]
    assert waits == [5.0, 5.0]
    assert len(polls) >= 2
    assert contexts[0] == "Batch context."
    assert contexts[1] == "Retried context."  # errored in the batch, then retried alone
    assert retried == [c.text for c in chunks[1:]]
    assert contexts[2:] == [""] * (n - 2)  # still failing: indexed without a context


def test_batch_timeout_cancels_and_raises(claude) -> None:
    chunks = chunk_document(DOC, size=8, overlap=0)

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/cancel"):
            return httpx2.Response(200, json=_batch("canceling", len(chunks)))
        return httpx2.Response(200, json=_batch("in_progress", len(chunks)))

    client, rec = claude(handler)
    ctx = Contextualizer(client, batch=True, poll_interval=10, timeout=20, sleep=lambda s: None)
    with pytest.raises(ContextualizeError, match="did not end within 20s; it was cancelled"):
        ctx.contextualize(DOC, chunks)
    assert rec.raw[-1].url.path.endswith("/cancel")


def test_a_refused_key_stops_the_job(claude) -> None:
    body = {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}}
    client, _ = claude([(401, body)])
    chunks = chunk_document(DOC, size=8, overlap=0)
    with pytest.raises(ContextualizeError, match="refused the contextualization request .401"):
        Contextualizer(client, batch=False).contextualize(DOC, chunks)
    with pytest.raises(MissingAPIKeyError, match="export ANTHROPIC_API_KEY"):
        Contextualizer()


@pytest.mark.parametrize(
    "bad_reply",
    [
        httpx2.Response(
            200, content=b"<html>proxy login</html>", headers={"content-type": "text/html"}
        ),
        httpx2.Response(
            200,
            content=json.dumps(_message("cut")).encode()[:60],
            headers={"content-type": "application/json"},
        ),
    ],
    ids=["html-page", "json-cut-off"],
)
def test_a_reply_the_sdk_cannot_read_loses_that_chunks_context_only(
    claude, caplog: pytest.LogCaptureFixture, bad_reply: httpx2.Response
) -> None:
    # Found by an outside probe: a proxy's HTML page raised AttributeError from _text_of, and
    # JSON cut off in transit a JSONDecodeError that `ragkit index` showed as a usage error.
    chunks = chunk_document(DOC, size=8, overlap=0)
    replies = [bad_reply, *(_echo for _ in chunks[1:])]

    def handler(request: httpx2.Request) -> httpx2.Response:
        reply = replies.pop(0)
        return reply(request) if callable(reply) else reply

    client, _ = claude(handler)
    with caplog.at_level("WARNING"):
        contexts = Contextualizer(client, batch=False).contextualize(DOC, chunks)
    assert contexts[0] == ""
    assert all(c.startswith("Context about") for c in contexts[1:])
    assert "1 chunk contexts could not be written" in caplog.text


def test_cost_estimate_from_the_pricing_table(claude) -> None:
    client, rec = claude(_echo)
    chunks = chunk_document(DOC, size=8, overlap=0)
    single = Contextualizer(client, batch=False).estimate([(DOC, chunks)])
    batch = Contextualizer(client, batch=True).estimate([(DOC, chunks)])
    doc = count_tokens(DOCUMENT_PROMPT.format(document=DOC.text))
    prompt = count_tokens(CHUNK_PROMPT.format(chunk=""))
    inputs = sum(doc + prompt + count_tokens(c.text) for c in chunks)  # short: no caching
    price = price_for("claude-haiku-4-5")
    assert price is not None
    expected = (inputs * price.input + 200 * len(chunks) * price.output) / 1e6
    assert single.requests == len(chunks)
    assert single.input_tokens == inputs
    assert single.usd == pytest.approx(expected)
    assert batch.batch
    assert batch.usd == pytest.approx(expected / 2)
    assert "(estimate)" in single.describe()
    assert not rec.requests

    long_doc = Document("long.md", "Sentence number seven about mitochondria. " * 900)
    long_chunks = chunk_document(long_doc, size=256, overlap=0)
    est = Contextualizer(client, batch=False).estimate([(long_doc, long_chunks)])
    d = count_tokens(DOCUMENT_PROMPT.format(document=long_doc.text))
    assert d >= 4096
    rest = sum(prompt + count_tokens(c.text) for c in long_chunks)
    cached = (
        rest * price.input
        + d * price.cache_write
        + d * (len(long_chunks) - 1) * price.cache_read
        + 200 * len(long_chunks) * price.output
    ) / 1e6
    assert est.usd == pytest.approx(cached)


def test_cli_index_contextualize_asks_then_caches(
    claude, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, rec = claude(_echo)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setattr("anthropic.Anthropic", lambda: client)
    corpus = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    path = tmp_path / "idx"
    base = ["index", str(corpus), "--index", str(path), "--keyword-only", "--contextualize"]
    runner = CliRunner()
    refused = runner.invoke(cli, base)
    assert refused.exit_code == 1
    assert "(estimate)" in refused.output
    assert "pass --yes" in refused.output
    assert not rec.requests
    done = runner.invoke(cli, [*base, "--yes", "--json"])
    assert done.exit_code == 0, done.output
    made = len(rec.requests)
    assert made > 0
    assert (tmp_path / "idx.contextual.jsonl").exists()
    found = runner.invoke(cli, ["search", "zebrafish", "--index", str(path), "--json"])
    assert json.loads(found.stdout)["results"]
    (corpus / "cats.md").write_text("# Cats\n\nCats hunt birds.\n")
    again = runner.invoke(cli, [*base, "--yes"])
    assert again.exit_code == 0, again.output
    assert len(rec.requests) == made + 1  # only the changed file's one chunk
