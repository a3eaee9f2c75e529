"""The memory store's chunks held in columns: one UTF-8 buffer of texts plus a few numpy arrays.

:class:`ChunkRows` is a read-only ``Mapping[int, Chunk]`` over the store's integer chunk keys
with two writers, :meth:`ChunkRows.add` (a batch) and :meth:`ChunkRows.remove`. A chunk is not
kept as a :class:`~ragkit.types.Chunk` with its own ``str`` objects (about 270 bytes of Python
objects besides the text, per chunk): its text lives in one growing UTF-8 buffer, its span,
ordinal and heading path in numpy columns, and its document ID and metadata as references to
the objects the store already keeps per document. A ``Chunk`` is built when one is read (a
search builds ten or so); :meth:`ChunkRows.id_of` gives a chunk's ID without decoding its text.

Texts can be held compressed (zlib level 1, per chunk: about half the bytes of prose, a few
microseconds to decompress one): :meth:`ChunkRows.encode` compresses a batch (a caller can do it
before taking its write lock) and a row records whether its bytes are compressed. A chunk table
loaded from disk keeps its texts as they are.

Keys index a dense numpy array (the memory store assigns them 0, 1, 2, ... and never reuses
them). Removal moves the last row into the freed one (O(1)); the freed text bytes are reclaimed
by rewriting the buffer once they are half of it.

This module leaves out persistence (``_chunk_table``) and everything about documents beyond the
references it holds.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..types import Chunk
from ._chunk_table import _checked_chunk, _jsonable

_COLUMNS = (
    ("keys", np.int64),
    ("ordinals", np.int32),  # -1: the chunk's ID is not "{document_id}#{ordinal}" (see _odd_ids)
    ("starts", np.int64),
    ("ends", np.int64),
    ("paths", np.int32),
    ("offsets", np.int64),
    ("sizes", np.int64),
    ("packed", np.bool_),  # the row's text bytes are zlib-compressed
)
# Text bytes freed by removals are reclaimed once they are this fraction of the buffer.
_GARBAGE_FRACTION = 0.5
_MIN_GARBAGE = 1 << 20


def _grown(array: np.ndarray, need: int) -> np.ndarray:
    """``array`` with room for ``need`` elements (1.25x growth: amortised O(1), little slack)."""
    if need <= len(array):
        return array
    bigger = np.empty(max(need, len(array) * 5 // 4, 16), dtype=array.dtype)
    bigger[: len(array)] = array
    return bigger


class ChunkRows(Mapping[int, Chunk]):
    """Chunks by integer key, in columns (see the module docstring); iterated by ascending key."""

    def __init__(self) -> None:
        self._n = 0
        self._cols: dict[str, np.ndarray] = {name: np.empty(0, dtype) for name, dtype in _COLUMNS}
        self._doc_ids: list[str] = []
        self._metas: list[Mapping[str, Any]] = []
        self._row_of = np.empty(0, dtype=np.int64)  # by key; -1: no such chunk
        self._text = np.empty(0, dtype=np.uint8)
        self._used = 0  # bytes of _text written (live and garbage)
        self._garbage = 0
        self._path_ids: dict[tuple[str, ...], int] = {(): 0}
        self._path_list: list[tuple[str, ...]] = [()]
        self._odd_ids: dict[int, str] = {}

    # -- Mapping ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n

    def __contains__(self, key: object) -> bool:
        return self._row(key) >= 0

    def __iter__(self) -> Iterator[int]:
        return iter(np.sort(self._cols["keys"][: self._n]).tolist())

    def __getitem__(self, key: int) -> Chunk:
        row = self._row(key)
        if row < 0:
            raise KeyError(key)
        cols = self._cols
        text = self._text_of(row).decode("utf-8")
        return _checked_chunk(
            self._id(row, key),
            text,
            self._doc_ids[row],
            int(cols["starts"][row]),
            int(cols["ends"][row]),
            self._path_list[int(cols["paths"][row])],
            self._metas[row],
        )

    # -- cheaper reads ---------------------------------------------------------------------

    def id_of(self, key: int) -> str:
        """The chunk's ID, without decoding its text."""
        row = self._row(key)
        if row < 0:
            raise KeyError(key)
        return self._id(row, key)

    def metadata_of(self, key: int) -> Mapping[str, Any]:
        """The chunk's metadata (its document's mapping when it has no metadata of its own)."""
        row = self._row(key)
        if row < 0:
            raise KeyError(key)
        return self._metas[row]

    def chars_of(self, key: int) -> int:
        """The length of the chunk's text in characters."""
        row = self._row(key)
        if row < 0:
            raise KeyError(key)
        return int(self._cols["ends"][row] - self._cols["starts"][row])

    def memory_bytes(self) -> int:
        """Bytes of the numpy columns and the text buffer at their capacity, plus 8 bytes per
        row for each of the two reference lists (the referenced objects are the store's)."""
        arrays = sum(a.nbytes for a in self._cols.values()) + self._row_of.nbytes
        return int(arrays + self._text.nbytes + 16 * self._n)

    def columns(self, doc_meta: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """The chunk table as ``_chunk_table._chunk_columns`` writes it (format 3), built from
        the columns without a ``Chunk`` per chunk. ``headings`` lists every heading path seen
        (``heading_ids`` index it). Texts already in key order are passed on without a copy."""
        n, cols = self._n, self._cols
        keys = cols["keys"][:n]
        order = np.argsort(keys, kind="stable")
        offsets, sizes = cols["offsets"][:n][order], cols["sizes"][:n][order]
        total = int(sizes.sum())
        if bool(cols["packed"][:n].any()):
            # Decompressed one row at a time, in key order: one copy of the texts, no more.
            joined = bytearray()
            for row in order.tolist():
                joined += self._text_of(row)
            text = np.frombuffer(joined, dtype=np.uint8)
        elif n == 0 or (
            int(offsets[0]) == 0 and bool(np.array_equal(offsets[1:], np.cumsum(sizes)[:-1]))
        ):
            text = self._text[:total]
        else:
            text = np.empty(total, dtype=np.uint8)
            at = 0
            source = self._text
            for start, size in zip(offsets.tolist(), sizes.tolist(), strict=True):
                text[at : at + size] = source[start : start + size]
                at += size
        extra: dict[str, Any] = {}
        metas, doc_ids = self._metas, self._doc_ids
        for row in np.flatnonzero(
            [m is not doc_meta.get(d) for m, d in zip(metas, doc_ids, strict=True)]
        ).tolist():
            if metas[row] != doc_meta.get(doc_ids[row]):
                extra[str(int(keys[row]))] = _jsonable(metas[row])

        def utf8(value: str) -> np.ndarray:
            return np.frombuffer(value.encode("utf-8"), dtype=np.uint8)

        return {
            "keys": keys[order],
            "starts": cols["starts"][:n][order],
            "ends": cols["ends"][:n][order],
            "text": text,
            "headings": utf8(json.dumps([list(p) for p in self._path_list], ensure_ascii=False)),
            "heading_ids": cols["paths"][:n][order],
            "metadata": utf8(json.dumps(extra, ensure_ascii=False)),
        }

    # -- writes ----------------------------------------------------------------------------

    @staticmethod
    def encode(texts: Sequence[str], *, pack: bool) -> tuple[list[bytes], np.ndarray]:
        """The bytes :meth:`add` stores for ``texts`` and which of them are compressed.

        With ``pack``, each text is compressed (zlib level 1) unless that does not make it
        smaller (short texts); otherwise the bytes are its UTF-8.
        """
        raw = [t.encode("utf-8") for t in texts]
        if not pack:
            return raw, np.zeros(len(raw), dtype=np.bool_)
        out: list[bytes] = []
        flags = np.zeros(len(raw), dtype=np.bool_)
        for i, data in enumerate(raw):
            small = zlib.compress(data, 1)
            if len(small) < len(data):
                out.append(small)
                flags[i] = True
            else:
                out.append(data)
        return out, flags

    def add(
        self,
        keys: Sequence[int],
        chunks: Sequence[Chunk],
        ordinals: Sequence[int],
        metas: Sequence[Mapping[str, Any]],
        encoded: tuple[list[bytes], np.ndarray] | None = None,
    ) -> None:
        """Add chunks under new keys; ``ordinals[i]`` is chunk ``i``'s position in its
        document (its ID is normally ``f"{document_id}#{ordinal}"``) and ``metas[i]`` the
        metadata object to keep for it (the document's own, when equal, so it is shared).
        ``encoded`` is :meth:`encode`'s output for the chunks' texts (their UTF-8 when not
        given); this method takes the bytes over."""
        m = len(keys)
        if not m:
            return
        n = self._n
        if encoded is None:
            encoded = self.encode([c.text for c in chunks], pack=False)
        data, packed = encoded
        if len(data) != m or len(packed) != m:
            raise ValueError(f"encoded texts ({len(data)}) must match chunks ({m})")
        sizes = np.fromiter(map(len, data), dtype=np.int64, count=m)
        blob = np.frombuffer(b"".join(data), dtype=np.uint8)
        data.clear()
        self._text = _grown(self._text, self._used + len(blob))
        self._text[self._used : self._used + len(blob)] = blob
        offsets = np.empty(m, dtype=np.int64)
        offsets[0] = self._used
        np.cumsum(sizes[:-1], out=offsets[1:])
        offsets[1:] += self._used
        self._used += len(blob)
        paths = self._path_ids
        path_list = self._path_list
        path_ids = []
        for c in chunks:
            pid = paths.get(c.headings)
            if pid is None:
                pid = paths[c.headings] = len(path_list)
                path_list.append(c.headings)
            path_ids.append(pid)
        ords = [
            o if c.id == f"{c.document_id}#{o}" else -1
            for c, o in zip(chunks, ordinals, strict=True)
        ]
        for key, c, o in zip(keys, chunks, ords, strict=True):
            if o < 0:
                self._odd_ids[key] = c.id
        values: dict[str, np.ndarray] = {
            "keys": np.asarray(keys, dtype=np.int64),
            "ordinals": np.asarray(ords, dtype=np.int32),
            "starts": np.fromiter((c.start for c in chunks), dtype=np.int64, count=m),
            "ends": np.fromiter((c.end for c in chunks), dtype=np.int64, count=m),
            "paths": np.asarray(path_ids, dtype=np.int32),
            "offsets": offsets,
            "sizes": sizes,
            "packed": packed,
        }
        for name, column in values.items():
            grown = _grown(self._cols[name], n + m)
            grown[n : n + m] = column
            self._cols[name] = grown
        self._doc_ids.extend(c.document_id for c in chunks)
        self._metas.extend(metas)
        key_arr: np.ndarray = values["keys"]
        top = int(key_arr.max()) + 1
        if top > len(self._row_of):
            old = len(self._row_of)
            self._row_of = _grown(self._row_of, top)
            self._row_of[old:] = -1
        self._row_of[key_arr] = np.arange(n, n + m, dtype=np.int64)
        self._n = n + m

    def remove(self, keys: Sequence[int]) -> int:
        """Remove the chunks of ``keys`` (all present); returns the characters they held."""
        cols, chars = self._cols, 0
        for key in keys:
            row = self._row(key)
            if row < 0:
                raise KeyError(key)
            chars += int(cols["ends"][row] - cols["starts"][row])
            self._garbage += int(cols["sizes"][row])
            self._odd_ids.pop(key, None)
            last = self._n - 1
            if row != last:
                for column in cols.values():
                    column[row] = column[last]
                self._doc_ids[row] = self._doc_ids[last]
                self._metas[row] = self._metas[last]
                self._row_of[int(cols["keys"][row])] = row
            self._doc_ids.pop()
            self._metas.pop()
            self._row_of[key] = -1
            self._n = last
        if self._garbage > max(_MIN_GARBAGE, _GARBAGE_FRACTION * self._used):
            self._reclaim()
        return chars

    # -- internals -------------------------------------------------------------------------

    def _row(self, key: object) -> int:
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
            return -1
        k = int(key)
        if not 0 <= k < len(self._row_of):
            return -1
        return int(self._row_of[k])

    def _text_of(self, row: int) -> bytes:
        """The UTF-8 text of ``row`` (decompressed when it is held compressed)."""
        cols = self._cols
        offset, size = int(cols["offsets"][row]), int(cols["sizes"][row])
        data = self._text[offset : offset + size].tobytes()
        return zlib.decompress(data) if cols["packed"][row] else data

    def _id(self, row: int, key: int) -> str:
        ordinal = int(self._cols["ordinals"][row])
        if ordinal < 0:
            return self._odd_ids[int(key)]
        return f"{self._doc_ids[row]}#{ordinal}"

    def _reclaim(self) -> None:
        """Rewrite the text buffer with the live rows' texts only, in row order (a copy per
        row: no per-byte index arrays, which would cost 8 bytes per text byte)."""
        n, cols = self._n, self._cols
        sizes = cols["sizes"][:n]
        offsets = cols["offsets"][:n]
        total = int(sizes.sum())
        text = np.empty(max(16, total * 5 // 4), dtype=np.uint8)
        old = self._text
        at = 0
        for row, (start, size) in enumerate(zip(offsets.tolist(), sizes.tolist(), strict=True)):
            text[at : at + size] = old[start : start + size]
            offsets[row] = at
            at += size
        self._text = text
        self._used, self._garbage = total, 0
