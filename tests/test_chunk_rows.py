"""Tests of the memory store's columnar chunk table (ragkit/stores/_chunk_rows.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ragkit.stores import _chunk_rows
from ragkit.stores._chunk_rows import ChunkRows
from ragkit.stores._chunk_table import _chunk_columns
from ragkit.types import Chunk, freeze_metadata


def make_chunks(doc: str, texts: list[str], meta: dict[str, object]) -> list[Chunk]:
    out, at = [], 0
    for i, text in enumerate(texts):
        heading = ("Intro", "Über") if i % 2 else ()
        out.append(Chunk(f"{doc}#{i}", text, doc, at, at + len(text), heading, meta))
        at += len(text)
    return out


def test_rows_read_back_every_field_and_remove_moves_rows() -> None:
    rows = ChunkRows()
    meta = freeze_metadata({"path": "a.md"})
    a = make_chunks("a", ["héllo wörld", "second ✓", "third"], {"path": "a.md"})
    b = make_chunks("b", ["only one"], {"path": "b.md", "page": 3})
    odd = Chunk("custom-id", "odd text", "c", 0, 8, (), {})
    rows.add([0, 1, 2], a, [0, 1, 2], [meta, meta, meta])
    rows.add([3, 4], [b[0], odd], [0, 0], [b[0].metadata, odd.metadata])
    assert len(rows) == 5
    assert dict(rows) == {0: a[0], 1: a[1], 2: a[2], 3: b[0], 4: odd}
    assert rows[1].metadata is meta
    assert rows.id_of(4) == "custom-id"
    assert rows.chars_of(0) == len("héllo wörld")
    assert rows.remove([0, 3]) == len("héllo wörld") + len("only one")
    assert list(rows) == [1, 2, 4]
    assert dict(rows) == {1: a[1], 2: a[2], 4: odd}
    assert 0 not in rows
    assert 3 not in rows
    assert "1" not in rows
    with pytest.raises(KeyError, match="^0$"):
        rows[0]
    with pytest.raises(KeyError, match="^7$"):
        rows.remove([7])


def test_text_buffer_is_reclaimed_after_removals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_chunk_rows, "_MIN_GARBAGE", 0)
    rows = ChunkRows()
    chunks: list[Chunk] = []
    for i in range(50):
        text = f"text number {i} " * (i % 7 + 1)
        chunks.append(Chunk(f"d{i}#0", text, f"d{i}", 0, len(text), (), {}))
    rows.add(list(range(50)), chunks, [0] * 50, [c.metadata for c in chunks])
    before = rows._used
    rows.remove(list(range(0, 50, 2)) + [1, 3, 5])
    assert rows._used < before  # rewritten: only the live texts remain
    assert dict(rows) == {i: chunks[i] for i in range(7, 50, 2)}


def test_columns_equal_the_chunk_table_writer() -> None:
    rows = ChunkRows()
    doc_meta = {"a": freeze_metadata({"path": "a.md"}), "b": freeze_metadata({"path": "b.md"})}
    a = make_chunks("a", ["one", "two ✓", "three"], {"path": "a.md"})
    b = make_chunks("b", ["four", "five"], {"path": "b.md"})
    b[1] = Chunk("b#1", "five", "b", 4, 8, (), {"path": "b.md", "page": 2})
    rows.add([5, 6], b, [0, 1], [doc_meta["b"], b[1].metadata])
    rows.add([0, 1, 2], a, [0, 1, 2], [doc_meta["a"]] * 3)
    rows.remove([1])
    items = sorted((k, c) for k, c in rows.items())
    want = _chunk_columns(items, doc_meta)
    got = rows.columns(doc_meta)
    for name in ("keys", "starts", "ends", "text", "metadata"):
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    import json

    got_paths = json.loads(got["headings"].tobytes())
    want_paths = json.loads(want["headings"].tobytes())
    assert [got_paths[i] for i in got["heading_ids"]] == [
        want_paths[i] for i in want["heading_ids"]
    ]


def test_compressed_rows_read_back_and_save_as_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_chunk_rows, "_MIN_GARBAGE", 0)
    meta = freeze_metadata({"path": "a.md"})
    long_texts = [f"Paragraph {i}: " + "the same words again, ü ✓ " * (i + 3) for i in range(6)]
    chunks = make_chunks("a", ["tiny", *long_texts], {"path": "a.md"})  # "tiny" stays plain
    plain, packed = ChunkRows(), ChunkRows()
    plain.add(list(range(7)), chunks, list(range(7)), [meta] * 7)
    encoded = ChunkRows.encode([c.text for c in chunks], pack=True)
    assert encoded[1].tolist() == [False] + [True] * 6
    assert sum(map(len, encoded[0][1:])) < sum(len(t.encode()) for t in long_texts) / 2
    packed.add(list(range(7)), chunks, list(range(7)), [meta] * 7, encoded)
    assert dict(packed) == dict(plain) == dict(enumerate(chunks))
    assert packed.memory_bytes() < plain.memory_bytes()
    saved, want = packed.columns({"a": meta}), plain.columns({"a": meta})
    assert saved.keys() == want.keys()
    for name, column in want.items():
        assert np.array_equal(saved[name], column)
    packed.remove([0, 2, 3, 4])  # reclaims the buffer: compressed bytes are moved as they are
    assert dict(packed) == {1: chunks[1], 5: chunks[5], 6: chunks[6]}
    with pytest.raises(ValueError, match=r"encoded texts \(7\) must match chunks \(1\)"):
        packed.add([9], chunks[:1], [0], [meta], ChunkRows.encode(long_texts + ["x"], pack=True))
