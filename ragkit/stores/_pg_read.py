"""Reads of the Postgres store: chunks (all, by ID, per document), document hashes and
statistics, through the replica when the store has one.

A mixin of :class:`ragkit.stores.postgres.PostgresStore`; it leaves out searches
(:mod:`._pg_bm25`, :mod:`._pg_vector`) and the connection (the store owns it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from ..base import StoreStats
from ..filters import Filter
from ..types import Chunk
from ._pg_sql import (
    _CHUNK_COLUMNS,
    _array,
    _chunk,
    _Params,
    _StoreCore,
    compile_filter,
)

_PAGE = 1000  # chunks() fetches this many rows per round trip


class _Reads(_StoreCore):
    """The store's reads of chunks, hashes and statistics."""

    def document_hashes(self, ids: Sequence[str] | None = None) -> Mapping[str, str]:
        """Document ID → content hash of every stored document (only of ``ids`` when given)."""
        self._ready()
        with self._connection() as conn:
            if ids is None:
                rows = conn.execute(
                    self._q("SELECT document_id, content_hash FROM {s}.documents")
                ).fetchall()
            else:
                rows = conn.execute(
                    self._q(
                        "SELECT document_id, content_hash FROM {s}.documents "
                        "WHERE document_id = ANY(%s)"
                    ),
                    (list(ids),),
                ).fetchall()
        return {doc_id: digest for doc_id, digest in rows}

    def chunks(self, where: Filter | None = None) -> Iterator[Chunk]:
        """Every chunk (matching ``where``), by document ID, then position; fetched in pages."""
        self._ready()
        params = _Params()
        condition = compile_filter(where, params).replace("{", "{{").replace("}", "}}")
        query = self._q(
            "SELECT " + _CHUNK_COLUMNS + ", c.ordinal FROM {s}.chunks c "
            "WHERE (c.document_id, c.ordinal) > (%(doc)s, %(ord)s) AND " + condition + " "
            "ORDER BY c.document_id, c.ordinal LIMIT %(page)s"
        )
        last: tuple[str, int] = ("", -1)
        while True:
            with self._connection(read=True) as conn:
                rows = conn.execute(
                    query, {"doc": last[0], "ord": last[1], "page": _PAGE, **params.values}
                ).fetchall()
            for row in rows:
                yield _chunk(row)
            if len(rows) < _PAGE:
                return
            last = (rows[-1][2], int(rows[-1][7]))

    def get_chunk(self, chunk_id: str) -> Chunk:
        """The chunk with this ID; ``KeyError`` when there is none."""
        self._ready()
        with self._connection(read=True) as conn:
            row = conn.execute(
                self._q("SELECT " + _CHUNK_COLUMNS + " FROM {s}.chunks c WHERE c.chunk_id = %s"),
                (chunk_id,),
            ).fetchone()
        if row is None:
            raise KeyError(chunk_id)
        return _chunk(row)

    def document_vectors(self, document_id: str) -> tuple[tuple[Chunk, ...], np.ndarray] | None:
        """A stored document's chunks in order and their vectors; ``None`` without vectors."""
        self._ready()
        with self._connection() as conn:
            rows = conn.execute(
                self._q(
                    "SELECT " + _CHUNK_COLUMNS + ", c.embedding FROM {s}.chunks c "
                    "WHERE c.document_id = %s ORDER BY c.ordinal"
                ),
                (document_id,),
            ).fetchall()
        if not rows or any(row[-1] is None for row in rows):
            return None
        vectors = np.stack([_array(row[-1]) for row in rows])
        return tuple(_chunk(row) for row in rows), vectors

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these IDs, in that order (one query); ``KeyError`` for an unknown ID."""
        self._ready()
        ids = list(chunk_ids)
        if not ids:
            return []
        with self._connection(read=True) as conn:
            rows = conn.execute(
                self._q(
                    "SELECT " + _CHUNK_COLUMNS + " FROM {s}.chunks c WHERE c.chunk_id = ANY(%s)"
                ),
                (ids,),
            ).fetchall()
        found = {row[0]: _chunk(row) for row in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(missing[0])
        return [found[i] for i in ids]

    def stats(self, where: Filter | None = None) -> StoreStats:
        """Documents, chunks and characters (of chunks matching ``where``)."""
        self._ready()
        with self._connection(read=True) as conn:
            if where is None:
                row = conn.execute(
                    self._q("SELECT documents, chunks, characters FROM {s}.stats")
                ).fetchone()
            else:
                params = _Params()
                condition = compile_filter(where, params).replace("{", "{{").replace("}", "}}")
                row = conn.execute(
                    self._q(
                        "SELECT count(DISTINCT c.document_id), count(*), "
                        "coalesce(sum(char_length(c.text)), 0) FROM {s}.chunks c WHERE " + condition
                    ),
                    params.values,
                ).fetchone()
        documents, chunks, characters = row if row else (0, 0, 0)
        return StoreStats(int(documents), int(chunks), int(characters))
