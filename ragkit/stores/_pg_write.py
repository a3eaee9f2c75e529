"""Writes of the Postgres store: analysing chunks, removing replaced documents, settling the
terms' statistics, COPYing chunks and deriving their postings, and bulk loads that drop and
rebuild the indexes in the same transaction.

A small write analyses every chunk first and settles its terms in one statement; a large one
(from ``_BULK_MIN_CHUNKS`` chunks) analyses each chunk while the binary COPY sends the previous
ones, gives new terms their IDs itself (under the write lock) and sums the terms' statistics
from the new postings in SQL. Both store the same rows (tests/stores/test_postgres.py).

A mixin of :class:`ragkit.stores.postgres.PostgresStore`; it leaves out the connection and
the write lock (the store owns them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ..base import DocumentEntry
from ._pg_schema import _HNSW_EF_CONSTRUCTION, _HNSW_M, _HNSW_MAX_DIM
from ._pg_sql import _check_text, _json, _StoreCore

# A write adding at least _BULK_MIN_CHUNKS chunks and _BULK_FRACTION of the stored ones is a bulk
# load: indexes are dropped and rebuilt in its transaction (docs/postgres.md, "Bulk loads"), with
# up to _BULK_MAX_MEMORY_KB of maintenance_work_mem and _BULK_PARALLEL_WORKERS workers.
_BULK_MIN_CHUNKS = 5_000
_BULK_FRACTION = 0.5
_BULK_MAX_MEMORY_KB = 2 * 1024 * 1024
_BULK_PARALLEL_WORKERS = 2
# Constraints a bulk load drops and rebuilds (their checks run set-wise once, not per row).
_BULK_CONSTRAINTS = (
    ("postings", "postings_pkey"),
    ("chunks", "chunks_chunk_id_key"),
    ("chunks", "chunks_document_id_fkey"),
)


class _Removed:
    """What a write removed: documents, chunks, their lengths and characters, and per term ID
    the number of removed chunks holding it."""

    __slots__ = ("characters", "chunks", "df", "documents", "length")

    def __init__(self) -> None:
        self.documents = 0
        self.chunks = 0
        self.characters = 0
        self.length = 0
        self.df: Counter[int] = Counter()

    def totals(self) -> tuple[int, int, int, int]:
        """Documents, chunks, characters, analysed length: the statistics' columns."""
        return (self.documents, self.chunks, self.characters, self.length)


class _Rows:
    """A write's rows, analysed before the transaction starts."""

    __slots__ = ("characters", "chunks", "df", "documents", "length", "max_tf", "min_length")

    def __init__(self) -> None:
        self.documents: list[tuple[str, str, Jsonb]] = []
        self.chunks: list[tuple[Any, ...]] = []
        self.df: dict[str, int] = {}
        self.max_tf: dict[str, int] = {}
        self.min_length: dict[str, int] = {}
        self.characters = 0
        self.length = 0


class _Writes(_StoreCore):
    """The store's writes and bulk loads."""

    def write(self, entries: Sequence[DocumentEntry], delete: Sequence[str] = ()) -> None:
        """Add or replace ``entries`` and delete the ``delete`` documents, in one transaction.

        A replaced document's old chunks, postings and statistics go in the same transaction;
        concurrent writers on the same schema wait for each other (advisory lock).

        Raises:
            ValueError: a document is written twice or both written and deleted, vectors are
                missing or of the wrong dimension, or a text contains a NUL character.
            IndexLockedError: another writer held the lock longer than ``lock_timeout``.
        """
        if isinstance(delete, str):
            raise TypeError("delete must be a sequence of document IDs, not one string")
        entries = list(entries)
        ids = [e.document_id for e in entries]
        if len(set(ids)) != len(ids):
            dup = next(i for i, n in Counter(ids).items() if n > 1)
            raise ValueError(f"document {dup!r} appears twice in one write")
        both = set(ids) & set(delete)
        if both:
            raise ValueError(f"document {sorted(both)[0]!r} is both written and deleted")
        self._ready()
        settings = self.settings
        dim = settings.dim if settings is not None else None
        # A large write is analysed while it is copied (the server inserts one chunk while
        # Python analyses the next), its terms' statistics summed from its postings in SQL.
        stream = sum(len(e.chunks) for e in entries) >= _BULK_MIN_CHUNKS
        rows = self._prepare(entries, dim, analyse=not stream)
        if not rows.chunks and not delete and not entries:
            return
        with self._connection() as conn:
            self._lock(conn)
            gone = list(delete) + ids
            removed = self._remove(conn, gone) if gone else _Removed()
            bulk = bool(entries) and self._bulk_begin(conn, len(rows.chunks), dim)
            if stream:
                self._insert_streamed(conn, rows, removed)
            else:
                term_ids = self._update_terms(conn, rows, removed)
                if entries:
                    self._insert(conn, rows, term_ids)
            added = (len(entries), len(rows.chunks), rows.characters, rows.length)
            net = [a - r for a, r in zip(added, removed.totals(), strict=True)]
            if any(net):
                conn.execute(
                    self._q(
                        "UPDATE {s}.stats SET documents = documents + %s, chunks = chunks + %s, "
                        "characters = characters + %s, total_length = total_length + %s"
                    ),
                    net,
                )
            if bulk:
                self._bulk_end(conn, dim)

    def _create_hnsw(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS chunks_embedding ON {s}.chunks "
                "USING hnsw (embedding vector_cosine_ops) "
                "WITH (m = {m}, ef_construction = {ef})"
            ).format(
                s=self._ident,
                m=sql.Literal(_HNSW_M),
                ef=sql.Literal(_HNSW_EF_CONSTRUCTION),
            )
        )

    def _bulk_begin(self, conn: psycopg.Connection[Any], n: int, dim: int | None) -> bool:
        """Whether this write of ``n`` chunks is a bulk load; if so, drop the indexes that
        row-by-row maintenance makes slow (rebuilt by :meth:`_bulk_end`, same transaction).

        A write is a bulk load when it adds at least ``_BULK_MIN_CHUNKS`` chunks and at least
        ``_BULK_FRACTION`` of the chunks already stored: building an HNSW graph over every row
        then costs less than inserting the new rows into the old graph one by one.
        """
        if n < _BULK_MIN_CHUNKS:
            return False
        row = conn.execute(self._q("SELECT chunks FROM {s}.stats")).fetchone()
        stored = int(row[0]) if row else 0
        if n < _BULK_FRACTION * stored:
            return False
        total = stored + n
        # Enough memory for the graph (vectors + neighbour lists) and the postings' sort.
        need = total * ((dim or 0) * 4 + 400) + total * 120 * 48
        kb = max(65_536, min(_BULK_MAX_MEMORY_KB, need // 1024))
        for setting in ("maintenance_work_mem", "work_mem"):  # work_mem: the postings' sort
            conn.execute(
                sql.SQL("SET LOCAL {} = {}").format(sql.Identifier(setting), sql.Literal(f"{kb}kB"))
            )
        conn.execute(
            sql.SQL("SET LOCAL max_parallel_maintenance_workers = {}").format(
                sql.Literal(_BULK_PARALLEL_WORKERS)
            )
        )
        # A loader killed mid-load: the server notices within a second and rolls back.
        conn.execute("SET LOCAL client_connection_check_interval = 1000")
        # One commit: a server crash may lose it (never half of it); the loader repeats it.
        conn.execute("SET LOCAL synchronous_commit = off")
        for name in ("chunks_embedding", "chunks_metadata", "postings_chunk", "chunks_document"):
            conn.execute(
                sql.SQL("DROP INDEX IF EXISTS {s}.{name}").format(
                    s=self._ident, name=sql.Identifier(name)
                )
            )
        for table, name in _BULK_CONSTRAINTS:
            conn.execute(
                sql.SQL("ALTER TABLE {s}.{table} DROP CONSTRAINT IF EXISTS {name}").format(
                    s=self._ident, table=sql.Identifier(table), name=sql.Identifier(name)
                )
            )
        return True

    def _bulk_end(self, conn: psycopg.Connection[Any], dim: int | None) -> None:
        """Rebuild what :meth:`_bulk_begin` dropped, sorted and in parallel, then ANALYZE."""
        conn.execute(
            self._q(
                "ALTER TABLE {s}.postings ADD CONSTRAINT postings_pkey "
                "PRIMARY KEY (term_id, chunk_key) INCLUDE (tf, length)"
            )
        )
        conn.execute(self._q("CREATE INDEX postings_chunk ON {s}.postings (chunk_key)"))
        conn.execute(
            self._q(
                "CREATE INDEX chunks_metadata ON {s}.chunks USING gin (metadata jsonb_path_ops)"
            )
        )
        conn.execute(
            self._q("ALTER TABLE {s}.chunks ADD CONSTRAINT chunks_chunk_id_key UNIQUE (chunk_id)")
        )
        conn.execute(self._q("CREATE INDEX chunks_document ON {s}.chunks (document_id, ordinal)"))
        # Checked in one join (the row-by-row check is what the load skipped).
        conn.execute(
            self._q(
                "ALTER TABLE {s}.chunks ADD CONSTRAINT chunks_document_id_fkey FOREIGN KEY "
                "(document_id) REFERENCES {s}.documents (document_id) ON DELETE CASCADE"
            )
        )
        if dim is not None and dim <= _HNSW_MAX_DIM:
            self._create_hnsw(conn)
        # The columns queries filter and join on: the texts' and vectors' statistics would
        # read every sampled row's TOASTed values, and no plan uses them.
        conn.execute(
            self._q(
                "ANALYZE {s}.chunks (chunk_key, chunk_id, document_id, metadata, length), "
                "{s}.postings, {s}.terms"
            )
        )

    def _prepare(
        self, entries: Sequence[DocumentEntry], dim: int | None, *, analyse: bool = True
    ) -> _Rows:
        """Check every chunk and its vector (outside the transaction) and analyse it; with
        ``analyse=False`` a chunk keeps its keyword text in place of its term counts (and 0 as
        its length) for :meth:`_insert_streamed`."""
        rows = _Rows()
        analyzer = self.analyzer
        for entry in entries:
            if not isinstance(entry, DocumentEntry):
                raise TypeError(f"entries must be DocumentEntry values, got {type(entry).__name__}")
            vectors = entry.vectors
            if vectors is not None:
                vectors = np.asarray(vectors, dtype=np.float32)
                if dim is None or vectors.ndim != 2 or vectors.shape[1] != dim:
                    raise ValueError(
                        f"document {entry.document_id!r}: vectors of shape {vectors.shape} do "
                        f"not fit this store (dimension {dim}); configure it with the embedder"
                    )
                if not np.isfinite(vectors).all():
                    raise ValueError(f"document {entry.document_id!r}: vectors are not finite")
            elif dim is not None and entry.chunks:
                raise ValueError(
                    f"document {entry.document_id!r} has no vectors, but this store holds "
                    f"{dim}-dimensional vectors for every chunk"
                )
            _check_text(entry.document_id, "document ID")
            rows.documents.append(
                (entry.document_id, entry.content_hash, _json(entry.metadata, entry.document_id))
            )
            for i, (chunk, ktext) in enumerate(zip(entry.chunks, entry.keyword_texts, strict=True)):
                if chunk.document_id != entry.document_id:
                    raise ValueError(
                        f"chunk {chunk.id!r} belongs to {chunk.document_id!r}, "
                        f"not {entry.document_id!r}"
                    )
                _check_text(chunk.id, "chunk text", chunk.text)
                rows.characters += len(chunk.text)
                tokens = analyzer(ktext) if analyse else []
                counts = Counter(tokens)
                rows.chunks.append(
                    (
                        chunk.id,
                        chunk.document_id,
                        i,
                        chunk.text,
                        chunk.start,
                        chunk.end,
                        list(chunk.headings),
                        _json(chunk.metadata, chunk.id),
                        len(tokens),
                        counts if analyse else ktext,  # the streamed path analyses the text later
                        None if vectors is None else vectors[i],
                    )
                )
                if not analyse:
                    continue
                rows.length += len(tokens)
                n_tokens = len(tokens)
                df, max_tf, min_length = rows.df, rows.max_tf, rows.min_length
                for term, tf in counts.items():
                    if term in df:
                        df[term] += 1
                        if tf > max_tf[term]:
                            max_tf[term] = tf
                        if n_tokens < min_length[term]:
                            min_length[term] = n_tokens
                    else:
                        df[term], max_tf[term], min_length[term] = 1, tf, n_tokens
        return rows

    def _remove(self, conn: psycopg.Connection[Any], document_ids: list[str]) -> _Removed:
        """Delete documents, their chunks and postings; what was removed (the terms' document
        frequencies and the statistics are settled by the caller, with the write's additions)."""
        removed = _Removed()
        found = conn.execute(
            self._q(
                "SELECT chunk_key, length, char_length(text), term_ids "
                "FROM {s}.chunks WHERE document_id = ANY(%s)"
            ),
            (document_ids,),
        ).fetchall()
        if found:
            keys = [row[0] for row in found]
            removed.chunks = len(found)
            removed.length = sum(int(row[1]) for row in found)
            removed.characters = sum(int(row[2]) for row in found)
            for row in found:
                removed.df.update(row[3])
            # Found through postings_chunk: a few leaf pages, not one lookup per term.
            conn.execute(self._q("DELETE FROM {s}.postings WHERE chunk_key = ANY(%s)"), (keys,))
        removed.documents = conn.execute(
            self._q("DELETE FROM {s}.documents WHERE document_id = ANY(%s)"), (document_ids,)
        ).rowcount
        return removed

    def _update_terms(
        self, conn: psycopg.Connection[Any], rows: _Rows, removed: _Removed
    ) -> dict[str, int]:
        """Term → ID for every term in ``rows``, adding new terms; in one statement, document
        frequencies raised by ``rows`` and lowered by ``removed``, contribution bounds (highest
        tf, shortest chunk) widened; terms left in no chunk deleted."""
        df, max_tf, min_length = rows.df, rows.max_tf, rows.min_length
        terms = sorted(df)
        if not terms and not removed.df:
            return {}

        def columns(names: list[str]) -> tuple[list[Any], ...]:
            """Per term: name, df added, highest tf and shortest length in this write."""
            return (
                names,
                [df[t] for t in names],
                [max_tf[t] for t in names],
                [min_length[t] for t in names],
            )

        gone = sorted(removed.df)
        found = conn.execute(
            self._q(
                "WITH x AS (SELECT * FROM unnest(%s::text[], %s::int[], %s::int[], %s::int[])"
                "   AS x(term, n, tf, len)),"
                " d AS (SELECT term_id, sum(n) AS n, max(tf) AS tf, min(len) AS len FROM ("
                "   SELECT t.term_id, x.n, x.tf, x.len FROM x JOIN {s}.terms t ON t.term = x.term"
                "     AND t.term = ANY(%s::text[])"
                "   UNION ALL SELECT r.term_id, -r.n, 0, 2147483647"
                "   FROM unnest(%s::int[], %s::int[]) AS r(term_id, n)) u GROUP BY term_id)"
                " UPDATE {s}.terms t SET df = t.df + d.n, max_tf = greatest(t.max_tf, d.tf),"
                " min_length = least(t.min_length, d.len) FROM d WHERE t.term_id = d.term_id"
                " AND (t.term = ANY(%s::text[]) OR t.term_id = ANY(%s::int[]))"
                " RETURNING t.term, t.term_id, t.df"
            ),
            # The = ANY conditions repeat the joins' keys so that the planner looks the terms up
            # in their indexes instead of hashing the whole vocabulary (a scan per write).
            (*columns(terms), terms, gone, [removed.df[t] for t in gone], terms, gone),
        ).fetchall()
        ids: dict[str, int] = {term: term_id for term, term_id, _ in found}
        dead = [term_id for _, term_id, n in found if n <= 0]
        if dead:
            conn.execute(self._q("DELETE FROM {s}.terms WHERE term_id = ANY(%s)"), (dead,))
        new = [t for t in terms if t not in ids]
        if new:
            added = conn.execute(
                self._q(
                    "INSERT INTO {s}.terms (term, df, max_tf, min_length) "
                    "SELECT * FROM unnest(%s::text[], %s::int[], %s::int[], %s::int[]) "
                    "RETURNING term, term_id"
                ),
                columns(new),
            ).fetchall()
            ids.update(added)
        return ids

    def _copy_documents(self, cur: psycopg.Cursor[Any], rows: _Rows) -> list[int]:
        """COPY the documents; the keys of ``rows``' chunks, in order, from the key sequence."""
        with cur.copy(
            self._q(
                "COPY {s}.documents (document_id, content_hash, metadata) "
                "FROM STDIN (FORMAT BINARY)"
            )
        ) as copy:
            copy.set_types(["text", "text", "jsonb"])
            for doc in rows.documents:
                copy.write_row(doc)
        if not rows.chunks:
            return []
        return [
            k
            for (k,) in cur.execute(
                "SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
                (self._sequence, len(rows.chunks)),
            ).fetchall()
        ]

    @contextmanager
    def _copy_chunks(self, cur: psycopg.Cursor[Any], vectors: bool) -> Iterator[psycopg.Copy]:
        """A binary COPY into the chunks; rows as :meth:`_insert` writes them."""
        columns = (
            "chunk_key, chunk_id, document_id, ordinal, text, start_offset, end_offset, "
            "headings, metadata, length, term_ids, term_tfs"
        )
        types = [
            "int8", "text", "text", "int4", "text", "int4", "int4", "text[]", "jsonb",
            "int4", "int4[]", "int4[]",
        ]  # fmt: skip
        if vectors:
            columns += ", embedding"
            types.append("vector")
        with cur.copy(
            self._q("COPY {s}.chunks (" + columns + ") FROM STDIN (FORMAT BINARY)")
        ) as copy:
            copy.set_types(types)
            yield copy

    def _insert_postings(self, cur: psycopg.Cursor[Any], first: int, last: int) -> None:
        """Derive the postings of the chunks keyed ``first`` to ``last``, in one statement."""
        # In chunk order: a chunk's postings share a few heap pages, which is what a later
        # replace of the chunk deletes (queries read the primary key's index-only scans).
        cur.execute(
            self._q(
                "INSERT INTO {s}.postings (term_id, chunk_key, tf, length) "
                "SELECT u.term_id, c.chunk_key, u.tf, c.length "
                "FROM {s}.chunks c, unnest(c.term_ids, c.term_tfs) AS u(term_id, tf) "
                "WHERE c.chunk_key BETWEEN %s AND %s ORDER BY c.chunk_key"
            ),
            (first, last),
        )

    def _insert(self, conn: psycopg.Connection[Any], rows: _Rows, ids: Mapping[str, int]) -> None:
        """COPY the documents and chunks, then derive the chunks' postings in one statement."""
        with conn.cursor() as cur:
            keys = self._copy_documents(cur, rows)
            if not keys:
                return
            has_vectors = rows.chunks[0][10] is not None
            with self._copy_chunks(cur, has_vectors) as copy:
                for key, row in zip(keys, rows.chunks, strict=True):
                    counts: Counter[str] = row[9]
                    out = [
                        key, *row[:9],
                        [ids[t] for t in counts], list(counts.values()),
                    ]  # fmt: skip
                    if has_vectors:
                        out.append(row[10])
                    copy.write_row(out)
            self._insert_postings(cur, keys[0], keys[-1])

    def _insert_streamed(
        self, conn: psycopg.Connection[Any], rows: _Rows, removed: _Removed
    ) -> None:
        """COPY the documents and the chunks of a large write, analysing each chunk as it is
        copied; derive the postings, then every term's statistics from them, in SQL.

        Term IDs are given here: the write lock keeps every other writer out, so the IDs
        from one ``nextval`` of the terms' identity on are free. A token's term ID is looked
        up once per distinct token (:meth:`ragkit.analyzer.Analyzer.terms`), so a chunk costs
        one dictionary lookup per token; the analysis is the analyzer's own.
        """
        analyzer = self.analyzer
        with conn.cursor() as cur:
            keys = self._copy_documents(cur, rows)
            if keys:
                sequence = cur.execute(
                    "SELECT pg_get_serial_sequence(%s, 'term_id')", (self._terms_table,)
                ).fetchone()
                assert sequence is not None
                row = cur.execute("SELECT nextval(%s::regclass)", (sequence[0],)).fetchone()
                assert row is not None
                first_new = int(row[0])
                vocabulary: dict[str, int] = dict(
                    cur.execute(self._q("SELECT term, term_id FROM {s}.terms")).fetchall()
                )
                new: list[str] = []
                of_token: dict[str, int] = {}  # token -> term ID; 0 when the token is dropped
                lookup = of_token.__getitem__
                has_vectors = rows.chunks[0][10] is not None
                with self._copy_chunks(cur, has_vectors) as copy:
                    for key, chunk in zip(keys, rows.chunks, strict=True):
                        tokens = analyzer.tokens(chunk[9])
                        try:
                            # Counted in C; dropped tokens count under 0 and are removed.
                            counts = Counter(map(lookup, tokens))
                        except KeyError:
                            missing = [t for t in set(tokens) if t not in of_token]
                            for token, term in analyzer.terms(missing).items():
                                if term:
                                    term_id = vocabulary.get(term)
                                    if term_id is None:
                                        term_id = vocabulary[term] = first_new + len(new)
                                        new.append(term)
                                    of_token[token] = term_id
                                else:
                                    of_token[token] = 0
                            counts = Counter(map(lookup, tokens))
                        length = len(tokens) - counts.pop(0, 0)
                        rows.length += length
                        out = [
                            key, *chunk[:8], length, list(counts), list(counts.values()),
                        ]  # fmt: skip
                        if has_vectors:
                            out.append(chunk[10])
                        copy.write_row(out)
                self._insert_postings(cur, keys[0], keys[-1])
                # Per term of this write: df, highest tf, shortest chunk, from its postings;
                # new terms inserted with their IDs, known ones raised in place.
                cur.execute(
                    self._q(
                        "WITH a AS (SELECT term_id, count(*)::int AS n, max(tf) AS tf,"
                        "   min(length) AS len FROM {s}.postings"
                        "   WHERE chunk_key BETWEEN %(lo)s AND %(hi)s GROUP BY term_id),"
                        " ins AS (INSERT INTO {s}.terms (term_id, term, df, max_tf, min_length)"
                        "   OVERRIDING SYSTEM VALUE"
                        "   SELECT a.term_id, x.term, a.n, a.tf, a.len"
                        "   FROM unnest(%(new)s::text[]) WITH ORDINALITY AS x(term, i)"
                        "   JOIN a ON a.term_id = %(first)s + x.i - 1)"
                        " UPDATE {s}.terms t SET df = t.df + a.n,"
                        " max_tf = greatest(t.max_tf, a.tf),"
                        " min_length = least(t.min_length, a.len)"
                        " FROM a WHERE t.term_id = a.term_id AND a.term_id < %(first)s"
                    ),
                    {"lo": keys[0], "hi": keys[-1], "new": new, "first": first_new},
                )
                if new:
                    cur.execute(
                        "SELECT setval(%s::regclass, %s)", (sequence[0], first_new + len(new) - 1)
                    )
            if removed.df:
                gone = sorted(removed.df)
                found = cur.execute(
                    self._q(
                        "UPDATE {s}.terms t SET df = t.df - r.n"
                        " FROM unnest(%s::int[], %s::int[]) AS r(term_id, n)"
                        " WHERE t.term_id = r.term_id RETURNING t.term_id, t.df"
                    ),
                    (gone, [removed.df[t] for t in gone]),
                ).fetchall()
                dead = [term_id for term_id, n in found if n <= 0]
                if dead:
                    cur.execute(self._q("DELETE FROM {s}.terms WHERE term_id = ANY(%s)"), (dead,))
