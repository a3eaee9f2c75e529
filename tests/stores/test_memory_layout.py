"""The memory store's compact layout: compressed chunk texts and a BM25 index without a forward
index. What a user relies on: texts read back exactly, searches equal to a fresh store's after
any removal (after a load, after a contextualised write), and a save/load round trip equal
(BM25 scores bit for bit; cosines to float32 rounding)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import ragkit._bm25_postings as postings_module
from ragkit.base import DocumentEntry
from ragkit.filters import parse_filter
from ragkit.stores import memory as memory_module
from ragkit.stores.memory import MemoryStore

from .conftest import SETTINGS, entry

QUERIES = ["alpha beta", "gamma", "delta epsilon zeta", "über straße", "omega alpha alpha"]
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "omega", "über", "straße", "x"]


def documents(n: int, seed: int = 0) -> list[DocumentEntry]:
    rng = np.random.default_rng(seed)
    out = []
    for d in range(n):
        texts = [
            " ".join(rng.choice(WORDS, size=int(rng.integers(1, 40))).tolist())
            for _ in range(int(rng.integers(1, 4)))
        ]
        headings = ("Guide", "Über") if d % 3 == 0 else ()
        out.append(entry(f"doc{d}.md", texts, {"n": d % 4}, headings=headings))
    return out


def store_of(entries: list[DocumentEntry]) -> MemoryStore:
    store = MemoryStore()
    store.configure(SETTINGS)
    store.write(entries)
    return store


def rankings(store: MemoryStore) -> list[object]:
    out: list[object] = []
    for q in QUERIES:
        out.append(store.keyword_ranking(q, 50))
        out.append(store.keyword_ranking(q, 3, where=parse_filter({"n": 1})))
    probe = np.linspace(-1.0, 1.0, SETTINGS.dim or 8).astype(np.float32)
    # Cosines to float32 rounding: a BLAS scan's sums depend on the rows' layout.
    out.append([(i, round(v, 5)) for i, v in store.vector_ranking(probe, 20)])
    out.append(store.document_frequencies(WORDS))
    out.append(store.stats())
    return out


@pytest.fixture
def packed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compress every chunk text written (the store does so from 100k chunks on)."""
    monkeypatch.setattr(memory_module, "_PACK_FROM", 0)


@pytest.mark.usefixtures("packed")
def test_compressed_texts_read_back_exactly_and_save_load_round_trip(tmp_path: Path) -> None:
    entries = documents(40)
    store = store_of(entries)
    assert bool(store._chunks._cols["packed"][: len(store._chunks)].any())
    want = [c for e in sorted(entries, key=lambda e: e.document_id) for c in e.chunks]
    assert list(store.chunks()) == want
    assert store.get_chunk("doc3.md#0") == entries[3].chunks[0]
    hits = store.keyword_search("über straße", 5)
    assert [h.chunk for h in hits] == [store.get_chunk(h.chunk.id) for h in hits]
    store.save(tmp_path / "index")
    loaded = MemoryStore.load(tmp_path / "index")
    assert list(loaded.chunks()) == want
    assert rankings(loaded) == rankings(store)


@pytest.mark.usefixtures("packed")
def test_removals_after_a_load_equal_a_fresh_store(tmp_path: Path) -> None:
    entries = documents(60, seed=1)
    store = store_of(entries)
    store.save(tmp_path / "index")
    loaded = MemoryStore.load(tmp_path / "index")
    gone = {"doc5.md", "doc6.md", "doc30.md"}
    loaded.write([], delete=sorted(gone))  # one chunk at a time in the BM25 index
    replaced = entry("doc7.md", ["omega omega gamma"], {"n": 1})
    loaded.write([replaced])
    kept = [e for e in entries if e.document_id not in gone]
    fresh = store_of([replaced if e.document_id == "doc7.md" else e for e in kept])
    assert rankings(loaded) == rankings(fresh)
    loaded.save()
    assert rankings(MemoryStore.load(tmp_path / "index")) == rankings(fresh)


@pytest.mark.parametrize("hints", ["given", "suppressed"])
def test_removing_chunks_indexed_with_other_keyword_text_equals_a_fresh_store(
    hints: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A contextualizer indexes a chunk under more text than it holds: the re-analysed chunk
    # does not match its postings, and the removal must still find every term it was added with.
    if hints == "suppressed":  # and many chunks at once: found in one pass over the postings
        monkeypatch.setattr(memory_module, "_HINT_CHUNKS", 0)
        monkeypatch.setattr(postings_module, "_SEARCH_SLOTS", 2)
    entries = documents(30, seed=2)
    contextual = [
        dataclasses.replace(e, keyword_texts=tuple(f"zeta omega {t}" for t in e.keyword_texts))
        if i % 2
        else e
        for i, e in enumerate(entries)
    ]
    store = store_of(contextual)
    doomed = [e.document_id for e in contextual[:12]]
    store.write([], delete=doomed[:3])
    store.write([], delete=doomed[3:])  # several chunks in one removal
    fresh = store_of(contextual[12:])
    assert rankings(store) == rankings(fresh)
    # After a save and load the kept terms are gone: the postings are searched instead.
    store.save(tmp_path / "index")
    loaded = MemoryStore.load(tmp_path / "index")
    loaded.write([], delete=[e.document_id for e in contextual[12:20]])
    assert rankings(loaded) == rankings(store_of(contextual[20:]))


def test_a_removal_after_single_document_writes_equals_a_fresh_store() -> None:
    # Small writes land in the BM25 delta (their terms kept until it is merged): remove some of
    # them, and some from the bulk write before them.
    entries = documents(50, seed=3)
    store = store_of(entries[:40])
    for e in entries[40:]:
        store.write([e])
    gone = {"doc41.md", "doc45.md", "doc2.md", "doc17.md"}
    store.write([], delete=sorted(gone))
    kept = [e for e in entries if e.document_id not in gone]
    assert rankings(store) == rankings(store_of(kept))
