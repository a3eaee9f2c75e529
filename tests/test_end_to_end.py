"""End to end: a folder indexed with the real offline embedder, answered through the real SDK.

The Claude API is a mock transport returning real Messages API JSON; everything else is real:
loading, chunking, all-MiniLM-L6-v2 embeddings, BM25, fusion, context packing, citations.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import ragkit
from ragkit.embedders import MINILM_NAME, local_embedder_available

from .conftest import SMALL_CORPUS, write_corpus

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not local_embedder_available(), reason="needs the 'local' extra"),
]


def test_index_folder_then_answer_with_citations(tmp_path: Path, claude) -> None:  # type: ignore[no-untyped-def]
    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    index = ragkit.index_folder(folder, tmp_path / "idx")
    assert index.has_vectors
    assert index.embedder is not None
    assert index.embedder.name == MINILM_NAME

    # paraphrase: no shared keyword with the answer chunk, the embeddings must find it
    hits = index.search("How are puppies taught tricks?", k=2, mode="vector")
    assert hits[0].chunk.document_id == "dogs.md"

    client, rec = claude(["success"])
    question = ragkit.Query("How do dogs learn?", k=3)
    retrieve = ragkit.AnswerOptions(strategy="retrieve")
    result = ragkit.answer(question, index, retrieve, client=client)
    sent = [b for b in rec.last["messages"][0]["content"] if b["type"] == "search_result"]
    sent_ids = {b["source"] for b in sent}
    assert sent
    assert all("#" in s for s in sent_ids)
    assert result.text.startswith("Dogs learn commands")
    assert result.citations
    assert {c.chunk_id for c in result.citations} <= {sc.chunk.id for sc in result.chunks}
    assert not result.abstained
    assert result.usage.cost_usd is not None

    # reloaded from disk, the same question retrieves the same chunks
    again = ragkit.Index.load(tmp_path / "idx")
    assert [h.chunk.id for h in again.search("How do dogs learn?", 3)] == [
        h.chunk.id for h in index.search("How do dogs learn?", 3)
    ]


def test_unrelated_question_is_gated_without_a_call(tmp_path: Path, claude) -> None:  # type: ignore[no-untyped-def]
    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    index = ragkit.index_folder(folder, tmp_path / "idx")
    client, rec = claude(["success"])
    result = ragkit.answer(
        "What is the capital of Australia?",
        index,
        ragkit.AnswerOptions(strategy="retrieve"),
        client=client,
    )
    assert result.abstained
    assert result.strategy == "none"
    assert rec.requests == [], "no tokens spent"
