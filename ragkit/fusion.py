"""Rank fusion: combine several ranked lists of IDs into one. Pure functions, no I/O.

Every function takes rankings as sequences of ``(id, score)`` pairs, best first, and returns one
fused list of ``(id, fused_score)`` sorted by fused score descending, ties broken by ID so the
order is deterministic. An ID missing from a ranking contributes that ranking's floor: nothing
for reciprocal rank fusion, the lowest normalised value for the score-based methods.

- :func:`reciprocal_rank_fusion` uses ranks only, so it needs no calibration between retrievers
  whose scores live on different scales (BM25 is unbounded, cosine is in [-1, 1]).
- :func:`minmax_fusion` rescales each ranking's scores to [0, 1] and takes a weighted sum.
- :func:`zscore_fusion` standardises each ranking's scores (distribution-based fusion), which is
  less sensitive than min-max to a single outlying top score.

This module leaves out retrieval itself and any knowledge of chunks: see ``retrievers.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

__all__ = [
    "FUSION_METHODS",
    "FusionMethod",
    "Ranking",
    "fuse",
    "fused_scores",
    "minmax_fusion",
    "reciprocal_rank_fusion",
    "zscore_fusion",
]

Ranking = Sequence[tuple[str, float]]
FusionMethod = Literal["rrf", "minmax", "zscore"]
FUSION_METHODS: tuple[FusionMethod, ...] = ("rrf", "minmax", "zscore")


def _check_weights(rankings: Sequence[object], weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(
            f"weights has {len(weights)} entries but there are {len(rankings)} rankings; "
            "give one weight per ranking"
        )
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise ValueError(f"weights must be finite and non-negative, got {list(weights)}")
    return [float(w) for w in weights]


def _contribution_of(
    method: FusionMethod, rrf_k: int
) -> Callable[[np.ndarray], tuple[np.ndarray, float]]:
    """Per-ranking ``scores -> (values, floor)``: what each listed item adds, and unlisted ones."""
    if method == "rrf":
        if rrf_k < 0:
            raise ValueError(f"k ({rrf_k}) must be >= 0")
        return lambda s: (1.0 / (rrf_k + np.arange(1, s.shape[0] + 1)), 0.0)
    if method == "minmax":
        return _minmax
    if method == "zscore":
        return _zscore
    raise ValueError(f"fusion method {method!r} is not one of {', '.join(FUSION_METHODS)}")


def fused_scores(
    rankings: Sequence[tuple[np.ndarray, np.ndarray]],
    method: FusionMethod = "rrf",
    *,
    weights: Sequence[float] | None = None,
    rrf_k: int = 60,
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse rankings of integer keys: ``(keys, fused)``, each key once, in ascending key order.

    Each ranking is ``(keys, scores)``, best first. This is :func:`fuse` without the final
    order, for callers that name items by integer keys (a store's slots) and break ties by
    their own IDs; the fused values are the same to the bit.

    Example:
        >>> keys, fused = fused_scores([(np.array([7, 3]), np.array([9.0, 1.0]))], "rrf", rrf_k=1)
        >>> keys.tolist(), fused.tolist()
        ([3, 7], [0.3333333333333333, 0.5])
    """
    contribution = _contribution_of(method, rrf_k)
    ws = _check_weights(rankings, weights)
    if not rankings:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    every = np.concatenate([np.asarray(keys, dtype=np.int64) for keys, _ in rankings])
    union, inverse = np.unique(every, return_inverse=True)
    total = np.zeros(len(union), dtype=np.float64)
    offset = 0
    for (keys, scores), w in zip(rankings, ws, strict=True):
        n = len(keys)
        values, floor = contribution(np.asarray(scores, dtype=np.float64))
        part = np.full(len(union), w * floor, dtype=np.float64)
        part[inverse[offset : offset + n]] = w * values
        total += part
        offset += n
    return union, total


def _fused(
    rankings: Sequence[Ranking],
    weights: Sequence[float] | None,
    method: FusionMethod,
    rrf_k: int = 60,
) -> list[tuple[str, float]]:
    """:func:`fused_scores` over IDs, sorted by fused score, ties by ID."""
    position: dict[str, int] = {}
    for ranking in rankings:
        for doc_id, _ in ranking:
            position.setdefault(doc_id, len(position))
    keyed = [
        (
            np.fromiter((position[doc_id] for doc_id, _ in ranking), np.int64, len(ranking)),
            np.fromiter((score for _, score in ranking), np.float64, len(ranking)),
        )
        for ranking in rankings
    ]
    # Positions are 0..n-1 in first-seen order, so the fused keys come back as exactly that.
    _, total = fused_scores(keyed, method, weights=weights, rrf_k=rrf_k)
    ids = list(position)
    # Fused score descending, ties by ID ascending (numpy compares str by code point, as Python
    # does): deterministic whatever the input order.
    order = np.lexsort((np.array(ids, dtype=str), -total)) if ids else np.empty(0, dtype=np.intp)
    return [(ids[i], float(total[i])) for i in order.tolist()]


def reciprocal_rank_fusion(
    rankings: Sequence[Ranking], *, k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: ``score(d) = sum_i w_i / (k + rank_i(d))``, ranks from 1.

    Cormack, Clarke and Büttcher, "Reciprocal Rank Fusion outperforms Condorcet and individual
    Rank Learning Methods", SIGIR 2009; ``k = 60`` is the paper's constant.

    Example:
        >>> reciprocal_rank_fusion([[("a", 9.0), ("b", 1.0)], [("b", 0.9)]], k=1)
        [('b', 0.8333333333333333), ('a', 0.5)]
    """
    return _fused(rankings, weights, "rrf", k)


def _minmax(scores: np.ndarray) -> tuple[np.ndarray, float]:
    if scores.shape[0] == 0:
        return scores, 0.0
    lo, hi = float(scores.min()), float(scores.max())
    if hi == lo:  # one result, or all tied: every listed item is as good as the best
        return np.ones_like(scores), 0.0
    return (scores - lo) / (hi - lo), 0.0


def _zscore(scores: np.ndarray) -> tuple[np.ndarray, float]:
    if scores.shape[0] == 0:
        return scores, 0.0
    std = float(scores.std())
    if std == 0.0:
        # One result, or all tied: no spread to standardise by. Listed items get +1 and unlisted
        # ones -1, as the two items of a two-item ranking would: a lone keyword hit (a rare name
        # or code only one chunk contains) counts as the top of its ranking, not its middle.
        return np.ones_like(scores), -1.0
    values = (scores - scores.mean()) / std
    # An unlisted item ranks below every listed one: give it the lowest listed value.
    return values, float(values.min())


def minmax_fusion(
    rankings: Sequence[Ranking], *, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Weighted sum of min-max normalised scores (convex combination when weights sum to 1).

    Each ranking's scores are rescaled to [0, 1] over the listed items; an item a ranking did not
    list gets 0 from it. Lee, "Analyses of multiple evidence combination", SIGIR 1997; Bruch et
    al., "An Analysis of Fusion Functions for Hybrid Retrieval", TOIS 2023 (convex combination).

    Example:
        >>> minmax_fusion([[("a", 10.0), ("b", 5.0)], [("b", 0.8), ("a", 0.2)]])
        [('a', 1.0), ('b', 1.0)]
    """
    return _fused(rankings, weights, "minmax")


def zscore_fusion(
    rankings: Sequence[Ranking], *, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Weighted sum of z-score standardised scores (distribution-based score fusion).

    Each ranking's scores become ``(s - mean) / std`` over the listed items; an item a ranking
    did not list gets that ranking's lowest standardised value. Montague and Aslam, "Relevance
    score normalization for metasearch", CIKM 2001 (z-score normalisation).

    Example:
        >>> zscore_fusion([[("a", 3.0), ("b", 1.0)], [("a", 0.9), ("b", 0.1)]])
        [('a', 2.0), ('b', -2.0)]
    """
    return _fused(rankings, weights, "zscore")


def fuse(
    rankings: Sequence[Ranking],
    method: FusionMethod = "rrf",
    *,
    weights: Sequence[float] | None = None,
    rrf_k: int = 60,
) -> list[tuple[str, float]]:
    """Fuse rankings with the named method (``"rrf"``, ``"minmax"`` or ``"zscore"``)."""
    return _fused(rankings, weights, method, rrf_k)
