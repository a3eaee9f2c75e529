"""Vector search of the Postgres store: pgvector's HNSW index with a candidate list that grows
with the store, and for filters an exact scan of few matching chunks or an iterative scan of
the graph re-ranked exactly.

A mixin of :class:`ragkit.stores.postgres.PostgresStore`; it leaves out the connection and
the filters' SQL (the store and :mod:`._pg_sql` own them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import psycopg

from ..filters import Filter
from ..types import ScoredChunk
from ._pg_sql import _CHUNK_COLUMNS, _check_k, _chunk, _Params, _StoreCore, compile_filter

# The per-query candidate list: at least _EF_SEARCH_MIN, 1.25k for larger k, and one per
# _CHUNKS_PER_EF chunks stored, capped at pgvector's maximum. pgvector's default ef_search of 40
# loses neighbours at k=10, and a fixed ef_search loses more as the graph grows (both measured
# in bench/RESULTS.md).
_EF_SEARCH_MIN = 100
_EF_SEARCH_MAX = 1000
_CHUNKS_PER_EF = 750
# A filtered vector search scans the matching chunks exactly when the planner expects at most
# _EXACT_ROWS of them (and at most that many are found); else the graph is scanned iteratively
# for _FILTERED_CANDIDATES (or 4k) matching rows, re-ranked exactly.
_EXACT_ROWS = 5_000
_FILTERED_CANDIDATES = 40


class _VectorSearch(_StoreCore):
    """The store's vector search (HNSW, exact for few matching chunks)."""

    def vector_search(
        self, vector: np.ndarray, k: int, where: Filter | None = None
    ) -> list[ScoredChunk]:
        """The ``k`` nearest chunks by cosine among chunks matching ``where`` (HNSW).

        A filter expected to match few chunks is answered by an exact scan of them; else the
        HNSW graph is scanned iteratively for a few times ``k`` matching candidates, re-ranked
        exactly (and an exact scan answers if the graph yields fewer than ``k``). Scores are
        cosine similarities; ties are broken by chunk ID.
        """
        rows = self._vector_rows(vector, k, where, _CHUNK_COLUMNS)
        out = [ScoredChunk(_chunk(row), 1.0 - float(row[7])) for row in rows]
        out.sort(key=lambda sc: (-sc.score, sc.chunk.id))
        return out

    def vector_ranking(
        self, vector: np.ndarray, k: int, where: Filter | None = None
    ) -> list[tuple[str, float]]:
        """:meth:`vector_search` as ``(chunk ID, score)`` pairs: no text or metadata is read."""
        rows = self._vector_rows(vector, k, where, "c.chunk_id")
        out = [(str(row[0]), 1.0 - float(row[1])) for row in rows]
        out.sort(key=lambda p: (-p[1], p[0]))
        return out

    def _vector_rows(
        self, vector: np.ndarray, k: int, where: Filter | None, columns: str
    ) -> list[tuple[Any, ...]]:
        """The nearest ``k`` rows (``columns``, then the cosine distance)."""
        k = _check_k(k)
        self._ready()
        settings = self.settings
        if settings is None or settings.dim is None:
            return []
        query = np.asarray(vector, dtype=np.float32)
        if query.shape != (settings.dim,):
            raise ValueError(
                f"vector has shape {query.shape}, this store holds {settings.dim}-d vectors"
            )
        if not np.isfinite(query).all():
            raise ValueError("vector must be finite")
        params = _Params()
        condition = compile_filter(where, params).replace("{", "{{").replace("}", "}}")
        values = {"v": query, "k": k, **params.values}
        with self._connection(read=True) as conn:
            # The candidate list grows with the store: HNSW's recall falls as the graph grows
            # at a fixed ef_search (bench/RESULTS.md, "Vector recall").
            conn.execute(
                self._q(
                    "SELECT set_config('hnsw.ef_search', least(%s, greatest(%s, "
                    "(SELECT chunks FROM {s}.stats) / %s))::text, true)"
                ),
                (_EF_SEARCH_MAX, max(_EF_SEARCH_MIN, k + k // 4), _CHUNKS_PER_EF),
            )
            exact = (
                "SELECT " + columns + ", c.embedding <=> %(v)s::vector AS d "
                "FROM {s}.chunks c WHERE c.embedding IS NOT NULL AND " + condition + " "
                "ORDER BY (c.embedding <=> %(v)s::vector) + 0, c.chunk_id LIMIT %(k)s"
            )  # the + 0 keeps the planner off the index: an exact scan of the matching rows
            rows: list[tuple[Any, ...]] = []
            if where is None:
                # Unfiltered, the graph is always the faster path; the planner's estimate for a
                # large k over wide (TOASTed) rows can prefer a sequential scan and a sort.
                conn.execute("SET LOCAL enable_seqscan = off")
                rows = conn.execute(
                    self._q(
                        "SELECT " + columns + ", c.embedding <=> %(v)s::vector AS d "
                        "FROM {s}.chunks c WHERE c.embedding IS NOT NULL "
                        "ORDER BY c.embedding <=> %(v)s::vector LIMIT %(k)s"
                    ),
                    values,
                ).fetchall()
            else:
                if self._estimate(conn, condition, values) <= _EXACT_ROWS:
                    # Few expected: exactly, unless more than _EXACT_ROWS match after all (the
                    # planner misjudges filters on metadata it has no statistics for); then no
                    # row comes back and the graph answers.
                    rows = conn.execute(
                        self._q(
                            "WITH m AS MATERIALIZED (SELECT " + columns + ", "
                            "c.embedding <=> %(v)s::vector AS d FROM {s}.chunks c "
                            "WHERE c.embedding IS NOT NULL AND " + condition + " "
                            "LIMIT %(few)s + 1) "
                            "SELECT * FROM m WHERE (SELECT count(*) FROM m) <= %(few)s "
                            "ORDER BY m.d, m.chunk_id LIMIT %(k)s"
                        ),
                        {**values, "few": _EXACT_ROWS},
                    ).fetchall()
                    if rows:
                        return rows  # the k nearest, or every matching row if fewer
                # Iterative scan in relaxed order, a few times k candidates re-ranked exactly:
                # the first k found are not always the k nearest matching.
                conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                rows = conn.execute(
                    self._q(
                        "WITH r AS MATERIALIZED (SELECT " + columns + ", "
                        "c.embedding <=> %(v)s::vector AS d FROM {s}.chunks c "
                        "WHERE c.embedding IS NOT NULL AND " + condition + " "
                        "ORDER BY c.embedding <=> %(v)s::vector LIMIT %(m)s) "
                        "SELECT * FROM r ORDER BY r.d + 0, r.chunk_id LIMIT %(k)s"
                    ),
                    {**values, "m": max(_FILTERED_CANDIDATES, 4 * k)},
                ).fetchall()
            if len(rows) < k:
                # The graph returned too few (a very selective filter, or fewer rows than k):
                # the matching rows exactly.
                rows = conn.execute(self._q(exact), values).fetchall()
        return rows

    def _estimate(
        self, conn: psycopg.Connection[Any], condition: str, values: Mapping[str, Any]
    ) -> float:
        """The planner's estimate of the chunks matching ``condition`` (no rows are read)."""
        row = conn.execute(
            self._q(
                "EXPLAIN (FORMAT JSON) SELECT 1 FROM {s}.chunks c "
                "WHERE c.embedding IS NOT NULL AND " + condition
            ),
            values,
        ).fetchone()
        return float(row[0][0]["Plan"]["Plan Rows"]) if row else math.inf
