"""The reranking stage as a retriever: a base retriever's top candidates, re-scored.

This module leaves out the rerankers themselves (``voyage``, ``cross_encoder``, ``embedding``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..base import Query, Reranker, Retriever, ScoreKind
from ..types import ScoredChunk
from ._common import RerankError

__all__ = ["DEFAULT_TOP_N", "RerankRetriever", "with_reranker"]

DEFAULT_TOP_N = 50
"""Candidates re-scored per query by default: what a hosted reranker bills and a local one
computes grows with it (docs/reranking.md)."""


class RerankRetriever(Retriever):
    """Re-score a base retriever's top ``top_n`` candidates with a reranker; keep the best ``k``.

    A result's ``score`` is the reranker's; its ``scores`` keep every score the base reported
    (a hybrid base's ``bm25`` and ``vector``), add the base's own score under the base's name,
    and the reranker's under the reranker's name. :meth:`score_kinds` declares all of them, so
    the evidence gate still finds the vector cosine it was calibrated on.

    Args:
        base: the first-stage retriever (hybrid, bm25 or vector).
        reranker: the :class:`~ragkit.base.Reranker` that re-scores.
        top_n: candidates taken from the base (at least ``k`` are always taken).

    Raises:
        ValueError: ``top_n < 1``, or the reranker and the base share a name.
    """

    name = "rerank"
    score_kind: ScoreKind = "rerank"

    def __init__(self, base: Retriever, reranker: Reranker, *, top_n: int = DEFAULT_TOP_N) -> None:
        if not isinstance(base, Retriever):
            raise TypeError(f"base must be a ragkit Retriever, got {type(base).__name__}")
        if not isinstance(reranker, Reranker):
            raise TypeError(
                "reranker must be a Reranker (name, rerank(query, candidates)), got "
                f"{type(reranker).__name__}"
            )
        if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
            raise ValueError(f"top_n ({top_n!r}) must be an integer >= 1")
        if reranker.name in base.score_kinds() or reranker.name == base.name:
            raise ValueError(
                f"reranker name {reranker.name!r} is already a score name of the base retriever"
            )
        self.base = base
        self.reranker = reranker
        self.top_n = top_n

    def size(self) -> int | None:
        return self.base.size()

    def score_kinds(self) -> Mapping[str, ScoreKind]:
        """The base's score kinds, the base's own score, and the reranker's (``"rerank"``)."""
        kinds: dict[str, ScoreKind] = dict(self.base.score_kinds())
        kinds[self.base.name] = self.base.score_kind
        kinds[self.reranker.name] = "rerank"
        return kinds

    def _search(self, query: Query) -> list[ScoredChunk]:
        candidates = self.base.retrieve(query.with_k(max(self.top_n, query.k)))
        if not candidates:
            return []
        by_id = {sc.chunk.id: sc for sc in candidates}
        try:
            reranked = self.reranker.rerank(query.text, candidates)
        except RerankError:
            raise
        except Exception as exc:  # a third-party reranker's own failure
            raise RerankError(f"reranker {self.reranker.name!r} failed: {exc}") from exc
        out: list[ScoredChunk] = []
        seen: set[str] = set()
        for sc in reranked:
            original = by_id.get(sc.chunk.id)
            if original is None:
                raise RerankError(
                    f"reranker {self.reranker.name!r} returned chunk {sc.chunk.id!r}, which was "
                    "not among its candidates"
                )
            if sc.chunk.id in seen:
                continue
            seen.add(sc.chunk.id)
            score = self._checked_score(sc)
            scores = dict(original.scores)
            scores[self.base.name] = original.score
            scores[self.reranker.name] = score
            out.append(ScoredChunk(original.chunk, score, scores))
        return out

    def _checked_score(self, sc: ScoredChunk) -> float:
        """The reranker's score as a finite float: the one check every reranker's output passes
        (a NaN would sort anywhere and an infinity would always win)."""
        raw = sc.score
        if isinstance(raw, bool) or not isinstance(raw, (int, float, np.floating, np.integer)):
            raise RerankError(
                f"reranker {self.reranker.name!r} scored chunk {sc.chunk.id!r} with "
                f"{raw!r}, not a number; check the reranker"
            )
        score = float(raw)
        if not math.isfinite(score):
            raise RerankError(
                f"reranker {self.reranker.name!r} scored chunk {sc.chunk.id!r} {score}, not a "
                "finite number; check the reranker (or its provider's reply)"
            )
        return score


def with_reranker(
    base: Retriever, rerank: str | Reranker | None, *, top_n: int = DEFAULT_TOP_N
) -> Retriever:
    """``base`` wrapped in a :class:`RerankRetriever` (``rerank`` by name or object), or
    ``base`` itself when ``rerank`` is ``None``."""
    if rerank is None:
        return base
    from . import resolve_reranker

    return RerankRetriever(base, resolve_reranker(rerank), top_n=top_n)
