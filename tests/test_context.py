"""ragkit.context: packing to a budget, merging passages, the evidence gate, planning."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ragkit.base import Query
from ragkit.gate import EvidenceGate, query_coverage
from ragkit.index import Index
from ragkit.plan import (
    BLOCK_OVERHEAD_TOKENS,
    AnswerOptions,
    corpus_passages,
    estimate_passage_tokens,
    merge_passages,
    pack,
    retrieve_context,
)
from ragkit.tokens import count_tokens
from ragkit.types import Chunk, Document, ScoredChunk

from .conftest import FixedRetriever

TEXT = "Alpha beta gamma. Delta epsilon zeta. Eta theta iota. Kappa lambda mu. Nu xi omicron."


def span(doc: str, i: int, start: int, end: int, text: str = TEXT) -> Chunk:
    return Chunk(f"{doc}#{i}", text[start:end], doc, start, end)


Fixed = FixedRetriever
FUSED = Fixed([])


# -- merging -------------------------------------------------------------------------------


def test_overlapping_chunks_merge_into_document_order_and_read_once() -> None:
    a, b, c = span("d", 0, 0, 36), span("d", 1, 30, 54), span("d", 2, 54, len(TEXT))
    (p,) = merge_passages([c, a, b])  # ranked c, a, b
    assert p.text == TEXT
    assert p.source == "d#0"  # a real chunk ID: the passage's first chunk
    assert p.chunk_ids == ("d#0", "d#1", "d#2")
    assert [s.chunk_id for s in p.segments] == ["d#0", "d#1", "d#2"]
    assert p.rank == 0
    assert p.chunk_ids_for_blocks(1, 3) == ("d#1", "d#2")
    assert p.chunk_ids_for_blocks(7, 9) == ("d#0",)  # out of range: the passage's first chunk


def test_separate_documents_and_distant_chunks_stay_apart_ordered_by_rank() -> None:
    far1, far2 = span("d", 0, 0, 17), span("d", 3, 54, 70)
    other = Chunk("e#0", "Other text.", "e", 0, 11)
    passages = merge_passages([far2, other, far1])
    assert [p.source for p in passages] == ["d#3", "e#0", "d#0"]


def test_a_chunk_inside_its_neighbour_has_no_segment_but_is_covered() -> None:
    big, inner = span("d", 0, 0, 50), span("d", 1, 10, 30)
    (p,) = merge_passages([inner, big])
    assert p.text == TEXT[:50]
    assert p.chunk_ids == ("d#0", "d#1")
    assert [s.chunk_id for s in p.segments] == ["d#0"]


@given(st.lists(st.tuples(st.integers(0, 80), st.integers(1, 30)), min_size=1, max_size=8))
def test_merged_passages_are_exact_document_slices(spans: list[tuple[int, int]]) -> None:
    chunks = {}
    for i, (s, n) in enumerate(spans):
        e = min(s + n, len(TEXT))
        if e > s:
            chunks[(s, e)] = span("d", i, s, e)
    if not chunks:
        return
    passages = merge_passages(list(chunks.values()), gap=0)
    covered = set()
    for p in passages:
        first = next(c for c in chunks.values() if c.id == p.source)
        assert p.text == TEXT[first.start : first.start + len(p.text)]
        covered.update(p.chunk_ids)
    assert covered == {c.id for c in chunks.values()}


def test_corpus_passages_rebuild_whole_documents() -> None:
    doc = [span("d", 0, 0, 36), span("d", 1, 30, len(TEXT))]
    other = [Chunk("e#0", "Other text.", "e", 0, 11)]
    passages = corpus_passages(doc + other)
    assert [p.text for p in passages] == [TEXT, "Other text."]


# -- packing -------------------------------------------------------------------------------


def test_pack_is_best_first_never_splits_and_stops_at_the_budget() -> None:
    chunks = [ScoredChunk(span("d", i, 18 * i, 18 * i + 17), 1.0 - i / 10) for i in range(4)]
    each = count_tokens(chunks[0].chunk.text) + count_tokens("d") + BLOCK_OVERHEAD_TOKENS
    kept, used = pack(chunks, 2 * each + 1)
    assert [c.id for c in kept] == ["d#0", "d#1"]
    assert used <= 2 * each + 1
    assert pack(chunks, 10_000)[0] == chunks
    with pytest.raises(ValueError, match="budget_tokens"):
        pack(chunks, 0)


def test_estimates_count_text_title_and_overhead() -> None:
    (p,) = merge_passages([span("d", 0, 0, 36)])
    assert (
        estimate_passage_tokens(p)
        == count_tokens(p.text) + count_tokens("d") + BLOCK_OVERHEAD_TOKENS
    )


# -- the gate ------------------------------------------------------------------------------


def test_query_coverage_uses_stems_and_ignores_stop_words() -> None:
    chunk = Chunk("c#0", "Studies of cats show that a cat eats fish.", "c", 0, 42)
    assert query_coverage("What do cats eat?", [chunk]) == 1.0
    assert query_coverage("What do dogs eat?", [chunk]) == 0.5
    assert query_coverage("what is it?", [chunk]) is None


def test_gate_uses_the_vector_cosine_when_present() -> None:
    c = Chunk("c#0", "unrelated words here", "c", 0, 20)
    gate = EvidenceGate(min_cosine=0.3, min_coverage=0.9)
    strong = gate.check(
        "capital of peru", [ScoredChunk(c, 0.1, {"vector": 0.5, "bm25": 1.0})], retriever=FUSED
    )
    weak = gate.check("capital of peru", [ScoredChunk(c, 0.1, {"vector": 0.1})], retriever=FUSED)
    assert strong.passed
    assert strong.top_cosine == 0.5
    assert not weak.passed
    assert "best cosine 0.10, needs 0.30" in weak.reason
    assert "gate=False" not in weak.reason  # the caller words the hint (gate=False, --no-gate)


def test_gate_combine_rules() -> None:
    c = Chunk("c#0", "capital of peru is lima", "c", 0, 23)
    hits = [ScoredChunk(c, 0.1, {"vector": 0.1})]  # full keyword coverage, weak cosine
    q = "capital of peru"
    # default "fallback": the cosine decides when there is one
    gate = EvidenceGate(min_cosine=0.3, min_coverage=0.5)
    assert not gate.check(q, hits, retriever=FUSED).passed
    assert replace(gate, combine="any").check(q, hits, retriever=FUSED).passed
    assert not replace(gate, combine="all").check(q, hits, retriever=FUSED).passed
    # without vectors, coverage judges
    keyword_only = [ScoredChunk(c, 7.5)]
    assert EvidenceGate(min_cosine=0.3, min_coverage=0.5).check(q, keyword_only).passed
    unrelated = [ScoredChunk(Chunk("d#0", "dogs bark", "d", 0, 9), 1.0)]
    assert not EvidenceGate(min_cosine=0.3, min_coverage=0.5).check("lima beans", unrelated).passed


def test_gate_reads_the_score_of_a_retriever_declaring_cosines() -> None:
    c = Chunk("c#0", "zzz", "c", 0, 3)

    class Dense(Fixed):
        name = "my-dense"  # any name: the declared kind is what counts
        score_kind = "cosine"

    hits = [ScoredChunk(c, 0.9)]
    v = EvidenceGate(min_coverage=None).check("peru", hits, retriever=Dense(hits))
    assert v.passed
    assert v.top_cosine == 0.9
    # The same scores from a retriever that does not declare them cosines are not read as such.
    unknown = EvidenceGate(min_coverage=None).check("peru", hits, retriever=Fixed(hits))
    assert unknown.top_cosine is None


def test_gate_with_no_signal_passes_and_empty_retrieval_stops() -> None:
    c = Chunk("c#0", "zzz", "c", 0, 3)
    assert EvidenceGate(min_coverage=None).check("peru", [ScoredChunk(c, 1.0)]).passed
    assert not EvidenceGate().check("peru", []).passed
    with pytest.raises(ValueError, match="combine .* must be 'fallback', 'any' or 'all'"):
        EvidenceGate(combine="some")  # type: ignore[arg-type]


# -- planning ------------------------------------------------------------------------------

DOCS = {
    "cats.md": "Cats are small carnivorous mammals that sleep most of the day.",
    "dogs.md": "Dogs were domesticated from wolves and learn commands through rewards.",
    "rust.md": "Rust enforces memory safety through ownership and a borrow checker.",
}
CORPUS = [Chunk(f"{d}#0", t, d, 0, len(t)) for d, t in DOCS.items()]


def TinyIndex() -> Index:  # noqa: N802 - reads as the class it used to be
    """A keyword-only index of DOCS (one chunk each)."""
    index = Index(embedder=None)
    index.add([Document(d, t) for d, t in DOCS.items()])
    assert [c.id for c in index.chunks] == [c.id for c in CORPUS]
    return index


def test_plan_auto_sends_the_corpus_when_it_fits() -> None:
    plan = retrieve_context("How do dogs learn?", TinyIndex())
    assert plan.strategy == "full"
    assert plan.gate is None
    assert [p.source for p in plan.passages] == ["cats.md#0", "dogs.md#0", "rust.md#0"]
    assert plan.estimated_tokens > sum(count_tokens(t) for t in DOCS.values())


def test_plan_retrieves_when_over_budget_or_forced() -> None:
    small = retrieve_context(
        Query("How do dogs learn commands?", k=1), TinyIndex(), AnswerOptions(budget_tokens=50)
    )
    assert small.strategy == "retrieve"
    assert [c.id for c in small.chunks] == ["dogs.md#0"]
    assert small.estimated_tokens <= 50
    forced = retrieve_context(
        "How do dogs learn commands?", TinyIndex(), AnswerOptions(strategy="retrieve")
    )
    assert forced.strategy == "retrieve"
    assert forced.gate is not None
    assert forced.gate.passed


def test_plan_gate_stop_keeps_the_retrieved_chunks() -> None:
    plan = retrieve_context(
        "Who painted the Sistine Chapel?", TinyIndex(), AnswerOptions(strategy="retrieve")
    )
    assert plan.strategy == "none"
    assert plan.passages == ()
    assert plan.gate is not None
    assert not plan.gate.passed


def test_plan_budget_smaller_than_the_best_chunk_is_an_error() -> None:
    with pytest.raises(ValueError, match="budget_tokens"):
        retrieve_context(
            "How do dogs learn commands?",
            TinyIndex(),
            AnswerOptions(strategy="retrieve", budget_tokens=5),
        )


def test_plan_with_a_bare_retriever() -> None:
    r = Fixed([ScoredChunk(CORPUS[1], 2.0, {"vector": 0.8})])
    assert retrieve_context("dogs?", r).strategy == "retrieve"
    with pytest.raises(ValueError, match="needs an Index"):
        retrieve_context("dogs?", r, AnswerOptions(strategy="full"))
    with pytest.raises(ValueError, match="question"):
        retrieve_context("  ", r)
    assert retrieve_context("dogs?", Fixed([])).strategy == "none"


def test_idf_weighted_coverage_favours_rare_terms() -> None:
    from ragkit.gate import query_coverage
    from ragkit.types import Chunk

    chunk = Chunk("c#0", "The salmon swam well upstream.", "c", 0, 30)
    weights = {"salmon": 5.0, "well": 0.5, "wine": 8.0}

    def idf(terms):  # type: ignore[no-untyped-def]
        return [weights.get(t, 1.0) for t in terms]

    # unweighted, "wine" and "well" count alike; weighted, missing the rare "wine" costs more
    assert query_coverage("salmon well wine", [chunk]) == pytest.approx(2 / 3)
    assert query_coverage("salmon well wine", [chunk], idf=idf) == pytest.approx(5.5 / 13.5)


def test_index_keyword_idf_orders_terms_by_rarity() -> None:
    from ragkit.index import Index
    from ragkit.types import Document

    index = Index(embedder=None)
    index.add(
        [
            Document(f"d{i}.md", f"common words here, doc {i}" + (" rare" if i == 0 else ""))
            for i in range(5)
        ]
    )
    common, rare, unknown = index.keyword_idf(["common", "rare", "zebra"])
    assert common < rare < unknown
