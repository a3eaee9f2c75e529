"""Keyword search of the Postgres store: BM25 in SQL over the postings, ranked exactly as
:class:`ragkit.bm25.BM25Index` ranks, pruned with MaxScore when the query terms have many
postings.

A mixin of :class:`ragkit.stores.postgres.PostgresStore`; it leaves out the connection, the
schema and the filters' SQL (the store and :mod:`._pg_sql` own them).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import psycopg
from psycopg import sql

from ..bm25 import okapi_idf
from ..filters import Filter
from ..types import ScoredChunk
from ._pg_sql import _CHUNK_COLUMNS, _check_k, _chunk, _Params, _StoreCore, compile_filter

# Keyword search prunes (MaxScore) when the query terms have at least this many postings, and
# seeds its threshold from the rarest terms' postings up to _SEED_POSTINGS.
_PRUNE_POSTINGS = 20_000
_SEED_POSTINGS = 20_000
# From this k on (hybrid search's depth), the pruned query joins the non-essential terms'
# postings instead of looking each candidate up (measured in bench/RESULTS.md, "Issue 13").
_JOIN_K = 100


class _QueryTerm(NamedTuple):
    """A query term: its ID, weight (idf x repeats), df and upper bound of its contribution."""

    term_id: int
    weight: float
    df: int
    bound: float


def _seed_terms(terms: Sequence[_QueryTerm]) -> list[_QueryTerm]:
    """The terms whose postings seed the pruning threshold; none when pruning cannot pay.

    Pruning needs positive weights (okapi's floored idf can be 0) and at least two terms; below
    ``_PRUNE_POSTINGS`` postings one exhaustive statement is cheaper. The seed is the terms of
    highest bound (the rarest, mostly) up to ``_SEED_POSTINGS`` postings, at least one term.
    """
    if len(terms) < 2 or any(t.weight <= 0 for t in terms):
        return []
    if sum(t.df for t in terms) < _PRUNE_POSTINGS:
        return []
    order = sorted(terms, key=lambda t: -t.bound)
    seed, read = [order[0]], order[0].df
    for term in order[1:]:
        if read + term.df > _SEED_POSTINGS:
            break
        seed.append(term)
        read += term.df
    return seed


def _split(terms: Sequence[_QueryTerm], theta: float) -> tuple[set[int], float, float] | None:
    """MaxScore's split for a threshold: (essential term IDs, the other terms' summed bound,
    the threshold less a rounding margin); ``None`` when every term is essential."""
    if theta <= 0:
        return None
    theta *= 1 - 1e-9  # scores and bounds are rounded differently: never prune a tie
    bound, rest = 0.0, set()
    for term in sorted(terms, key=lambda t: t.bound):
        if bound + term.bound >= theta:
            break
        bound += term.bound
        rest.add(term.term_id)
    if not rest:
        return None
    return {t.term_id for t in terms} - rest, bound, theta


class _KeywordSearch(_StoreCore):
    """The store's keyword search (BM25 over the postings)."""

    def keyword_search(self, text: str, k: int, where: Filter | None = None) -> list[ScoredChunk]:
        """The ``k`` best chunks by BM25 for ``text`` among chunks matching ``where``.

        Ties are broken by chunk ID; only chunks containing a query term are returned.
        """
        rows = self._keyword_rows(text, k, where, _CHUNK_COLUMNS)
        return [ScoredChunk(_chunk(row), float(row[7])) for row in rows]

    def keyword_ranking(
        self, text: str, k: int, where: Filter | None = None
    ) -> list[tuple[str, float]]:
        """:meth:`keyword_search` as ``(chunk ID, score)`` pairs: no chunk row is read."""
        return [(row[0], float(row[1])) for row in self._keyword_rows(text, k, where, "c.chunk_id")]

    def _keyword_rows(
        self, text: str, k: int, where: Filter | None, columns: str
    ) -> list[tuple[Any, ...]]:
        """The best ``k`` rows (``columns``, then the score) for ``text``, best first."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        k = _check_k(k)
        self._ready()
        self.settings  # noqa: B018 - adopts the stored analyzer and BM25 parameters
        tokens = self.analyzer(text)
        if not tokens:
            return []
        counts = Counter(tokens)  # first-appearance order, as BM25Index accumulates
        bm25 = self._bm25
        params = _Params()
        condition = compile_filter(where, params)
        with self._connection(read=True) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            found = conn.execute(
                self._q(
                    "SELECT s.chunks, s.total_length, t.term, t.term_id, t.df, t.max_tf, "
                    "t.min_length FROM {s}.stats s "
                    "LEFT JOIN {s}.terms t ON t.term = ANY(%s) AND t.df > 0"
                ),
                (list(counts),),
            ).fetchall()
            if not found:
                return []
            n_docs, total = int(found[0][0]), int(found[0][1])
            by_term = {row[2]: row[3:] for row in found if row[2] is not None}
            if n_docs == 0 or total == 0 or not by_term:
                return []
            okapi = bm25.variant == "okapi"
            avgdl = total / n_docs
            values: dict[str, Any] = {
                "k1p1": bm25.k1 + 1 if okapi else 1.0,
                "k1": bm25.k1,
                "omb": 1 - bm25.b,
                "b": bm25.b,
                "avgdl": avgdl,
                "k": k,
                **params.values,
            }
            terms: list[_QueryTerm] = []
            average: list[float] = []  # okapi's mean idf, fetched once if a term needs it
            for term, count in counts.items():
                if term not in by_term:
                    continue
                term_id, df, max_tf, min_length = (int(v) for v in by_term[term])
                # A repeated query term counts again, as in BM25Index.
                w = self._idf(conn, df, n_docs, average) * count
                f_max = (max_tf * values["k1p1"]) / (
                    bm25.k1 * (values["omb"] + bm25.b * min_length / avgdl) + max_tf
                )
                terms.append(_QueryTerm(term_id, w, df, w * f_max))
            seed = _seed_terms(terms)
            plan = None
            if seed:
                theta = self._seed_threshold(conn, seed, condition, where is not None, values)
                plan = _split(terms, theta)
            if plan is None:
                return list(
                    conn.execute(
                        self._keyword_query(condition, where is not None, columns, pruned=False),
                        {
                            "ids": [t.term_id for t in terms],
                            "w": [t.weight for t in terms],
                            **values,
                        },
                    ).fetchall()
                )
            essential, bound, theta = plan
            join = k >= _JOIN_K
            return list(
                conn.execute(
                    self._keyword_query(
                        condition, where is not None, columns, pruned=True, join=join
                    ),
                    {
                        "ids": [t.term_id for t in terms],
                        "w": [t.weight for t in terms],
                        "ess": [t.term_id in essential for t in terms],
                        "ubn": bound,
                        "theta": theta,
                        "m": max(4 * k, 40),
                        "margin": 1 - 1e-9,
                        **values,
                    },
                ).fetchall()
            )

    def _keyword_query(
        self, condition: str, filtered: bool, columns: str, *, pruned: bool, join: bool = False
    ) -> sql.Composed:
        """BM25 over the postings of the query terms (all of them, or MaxScore-pruned).

        Pruned (MaxScore, Turtle & Flood 1995): the postings of the essential terms are read in
        full; a chunk among them whose partial score plus the non-essential terms' bound
        (``ubn``) reaches ``theta`` gets the non-essential contributions by index lookups. A
        chunk with no essential term scores at most ``ubn`` < ``theta``, below the k-th.
        """
        contrib = (
            "((p.tf * %(k1p1)s) / (%(k1)s * (%(omb)s + %(b)s * p.length / %(avgdl)s) + p.tf)) * q.w"
        )
        if pruned:
            rest = (
                "coalesce((SELECT sum(" + contrib + ") FROM q JOIN {s}.postings p"
                " ON p.term_id = q.term_id AND p.chunk_key = {key} WHERE NOT q.ess), 0)"
            )
            matching = (
                " AND EXISTS (SELECT 1 FROM {s}.chunks c WHERE c.chunk_key = e.chunk_key AND "
                + condition.replace("{", "{{").replace("}", "}}") + ")"
                if filtered else ""
            )  # fmt: skip
            scored = (
                " q AS (SELECT * FROM unnest(%(ids)s::int[], %(w)s::float8[], %(ess)s::bool[])"
                "   AS q(term_id, w, ess)),"
                " e AS MATERIALIZED (SELECT p.chunk_key, sum(" + contrib + ") AS part"
                "   FROM q JOIN {s}.postings p ON p.term_id = q.term_id WHERE q.ess"
                "   GROUP BY p.chunk_key HAVING sum(" + contrib + ") + %(ubn)s >= %(theta)s),"
                # A better threshold: the k-th full score among the best partial scores.
                " probe AS (SELECT e.part + " + rest.replace("{key}", "e.chunk_key") + " AS score"
                "   FROM (SELECT * FROM e WHERE true" + matching + ""
                "         ORDER BY e.part DESC LIMIT %(m)s) e),"
                " th AS (SELECT greatest(%(theta)s, coalesce((SELECT score FROM probe"
                "   ORDER BY score DESC OFFSET %(k)s - 1 LIMIT 1), 0) * %(margin)s) AS t),"
            )  # fmt: skip
            if join:
                # Many candidates: read the other terms' postings once and join, instead of
                # one index lookup per candidate and term.
                scored += (
                    " c AS MATERIALIZED (SELECT e.chunk_key, e.part FROM e"
                    "   WHERE e.part + %(ubn)s >= (SELECT t FROM th)),"
                    " r AS (SELECT p.chunk_key, sum(" + contrib + ") AS part"
                    "   FROM q JOIN {s}.postings p ON p.term_id = q.term_id"
                    "   WHERE NOT q.ess AND p.chunk_key IN (SELECT chunk_key FROM c)"
                    "   GROUP BY p.chunk_key),"
                    " s AS (SELECT c.chunk_key, c.part + coalesce(r.part, 0) AS score"
                    "   FROM c LEFT JOIN r USING (chunk_key)),"
                )  # fmt: skip
            else:
                scored += (
                    " s AS (SELECT e.chunk_key, e.part + " + rest.replace("{key}", "e.chunk_key")
                    + "   AS score FROM e WHERE e.part + %(ubn)s >= (SELECT t FROM th)),"
                )  # fmt: skip
        else:
            scored = (
                " q AS (SELECT * FROM unnest(%(ids)s::int[], %(w)s::float8[]) AS q(term_id, w)),"
                " s AS (SELECT p.chunk_key, sum(" + contrib + ") AS score"
                "   FROM q JOIN {s}.postings p ON p.term_id = q.term_id GROUP BY p.chunk_key),"
            )
        if filtered:
            scored += (
                " f AS (SELECT s.chunk_key, s.score FROM s JOIN {s}.chunks c USING (chunk_key)"
                " WHERE " + condition.replace("{", "{{").replace("}", "}}") + "),"
            )
        else:
            scored += " f AS (SELECT chunk_key, score FROM s),"
        return self._q(
            "WITH" + scored +
            " top AS (SELECT score FROM f ORDER BY score DESC LIMIT %(k)s)"
            # The k best and the ties at the k-th score, each chunk fetched by its key.
            " SELECT " + columns + ", f.score"
            " FROM (SELECT * FROM f WHERE score >= (SELECT min(score) FROM top)) f"
            " CROSS JOIN LATERAL (SELECT * FROM {s}.chunks c"
            "   WHERE c.chunk_key = f.chunk_key) c"
            " ORDER BY f.score DESC, c.chunk_id LIMIT %(k)s"
        )  # fmt: skip

    def _seed_threshold(
        self,
        conn: psycopg.Connection[Any],
        seed: Sequence[_QueryTerm],
        condition: str,
        filtered: bool,
        values: Mapping[str, Any],
    ) -> float:
        """A lower bound of the k-th best score: the k-th best partial score over ``seed``'s
        postings (contributions are positive, so a partial score is at most the full one)."""
        query = (
            "WITH q AS (SELECT * FROM unnest(%(ids)s::int[], %(w)s::float8[]) AS q(term_id, w)),"
            " s AS (SELECT p.chunk_key, sum("
            "   ((p.tf * %(k1p1)s) / (%(k1)s * (%(omb)s + %(b)s * p.length / %(avgdl)s) + p.tf))"
            "   * q.w) AS score"
            "   FROM q JOIN {s}.postings p ON p.term_id = q.term_id GROUP BY p.chunk_key)"
        )
        if filtered:
            query += (
                " SELECT s.score FROM s JOIN {s}.chunks c USING (chunk_key) WHERE "
                + condition.replace("{", "{{").replace("}", "}}")
            )
        else:
            query += " SELECT s.score FROM s"
        query += " ORDER BY 1 DESC OFFSET %(k)s - 1 LIMIT 1"
        ids, weights = [t.term_id for t in seed], [t.weight for t in seed]
        row = conn.execute(self._q(query), {**values, "ids": ids, "w": weights}).fetchone()
        return float(row[0]) if row else 0.0

    def _idf(
        self, conn: psycopg.Connection[Any], df: int, n_docs: int, average: list[float]
    ) -> float:
        bm25 = self._bm25
        if bm25.variant != "okapi":
            return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
        idf = okapi_idf(df, n_docs)
        if idf >= 0:
            return idf
        if not average:
            # rank_bm25's floor: epsilon x the mean idf over the vocabulary, summed by df as
            # BM25Index does (math.fsum of count x idf per distinct df).
            hist = conn.execute(
                self._q("SELECT df, count(*) FROM {s}.terms WHERE df > 0 GROUP BY df")
            ).fetchall()
            values = np.array([h[0] for h in hist], dtype=np.int64)
            counts = np.array([h[1] for h in hist], dtype=np.int64)
            order = np.argsort(values)
            values, counts = values[order], counts[order]
            idfs = np.log(n_docs - values + 0.5) - np.log(values + 0.5)
            total = math.fsum((counts * idfs).tolist())
            average.append(total / max(1, int(counts.sum())))
        return bm25.epsilon * average[0]

    def document_frequencies(self, terms: Sequence[str]) -> tuple[int, list[int]]:
        """The number of chunks and, per analysed term, how many chunks contain it."""
        self._ready()
        terms = list(terms)
        with self._connection(read=True) as conn:
            rows = conn.execute(
                self._q(
                    "SELECT s.chunks, t.term, t.df FROM {s}.stats s "
                    "LEFT JOIN {s}.terms t ON t.term = ANY(%s)"
                ),
                (terms,),
            ).fetchall()
        n = int(rows[0][0]) if rows else 0
        df = {row[1]: int(row[2]) for row in rows if row[1] is not None}
        return n, [df.get(t, 0) for t in terms]
