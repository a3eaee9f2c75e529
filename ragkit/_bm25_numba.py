"""The numba kernel behind :class:`ragkit.bm25.BM25Index` searches (extra ``fast``).

One function, :func:`top_candidates`: given a query's posting lists, it returns a small set of
document slots that contains every document of the top ``k`` (ties at the ``k``-th score
included), each with its exact score. It touches only the documents in the posting lists it
reads (never a corpus-sized pass), and it skips reading the longest lists when it can prove they
cannot change the top ``k``: MaxScore (Turtle & Flood, "Query evaluation: strategies and
optimizations", IP&M 1995), with per-term upper bounds on one posting's contribution.

Scores are bit-for-bit those of the numpy path in ragkit.bm25: each candidate's score is summed
afresh in query-term order with the same floating-point operations, after the pruning has picked
the candidates. This module leaves out everything else (analysis, the index's layout, ties and
keys, filters: the caller passes a mask of the slots that may be returned).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

__all__ = ["top_candidates"]

# Relative slack on every bound comparison: partial sums taken in another order than the final
# one differ in the last bits; 1e-9 is far above any such rounding and far below any real gap.
_SLACK = 1e-9
# Reading one posting costs about this fraction of looking one candidate up in the unread posting
# lists (a binary search or two of random reads against a sequential scatter): the kernel stops
# reading lists only when candidates * _LOOKUP_COST < postings left to read.
_LOOKUP_COST = 24


@numba.njit(cache=True, nogil=True)
def _kth_largest(acc: Any, touched: Any, n_touched: int, k: int, heap: Any) -> float:
    """The k-th largest of ``acc[touched[:n_touched]]`` (0 when there are fewer), via a min-heap."""
    if n_touched < k:
        return 0.0
    size = 0
    for i in range(n_touched):
        v = acc[touched[i]]
        if size < k:
            pos = size
            size += 1
            while pos > 0:
                parent = (pos - 1) >> 1
                if heap[parent] <= v:
                    break
                heap[pos] = heap[parent]
                pos = parent
            heap[pos] = v
        elif v > heap[0]:
            pos = 0
            while True:
                child = 2 * pos + 1
                if child >= size:
                    break
                if child + 1 < size and heap[child + 1] < heap[child]:
                    child += 1
                if heap[child] >= v:
                    break
                heap[pos] = heap[child]
                pos = child
            heap[pos] = v
    return float(heap[0])


@numba.njit(cache=True, nogil=True, inline="always")
def _contribution(tf_int: Any, slot: Any, norm: Any, idf: float, okapi: bool, k1p1: float) -> Any:
    # The numpy path's operations in its order: idf * (tf [* (k1 + 1)] / (tf + norm)).
    tf = np.float64(tf_int)
    denom = norm[slot] + tf
    num = tf * k1p1 if okapi else tf
    return (num / denom) * idf


@numba.njit(cache=True, nogil=True)
def _find(slots: Any, lo: int, hi: int, slot: int) -> int:
    """Position of ``slot`` in the sorted ``slots[lo:hi]``, or -1."""
    while lo < hi:
        mid = (lo + hi) >> 1
        v = slots[mid]
        if v < slot:
            lo = mid + 1
        elif v > slot:
            hi = mid
        else:
            return mid
    return -1


@numba.njit(cache=True, nogil=True)
def _prune(acc: Any, touched: Any, n: int, theta: float, remaining: float) -> int:
    """Keep, in order, the slots of ``touched[:n]`` that can reach ``theta``; zero the rest."""
    floor = theta * (1.0 - _SLACK) - remaining * (1.0 + _SLACK)
    kept = 0
    for i in range(n):
        s = touched[i]
        if acc[s] >= floor:
            touched[kept] = s
            kept += 1
        else:
            acc[s] = 0.0
    return kept


@numba.njit(cache=True, nogil=True)
def _complete(
    acc: Any,
    touched: Any,
    n: int,
    rest: Any,
    bound: Any,
    remaining: float,
    theta: float,
    k: int,
    heap: Any,
    pslots: Any,
    ptfs: Any,
    t_lo: Any,
    t_hi: Any,
    dslots: Any,
    dtfs: Any,
    d_lo: Any,
    d_hi: Any,
    idf: Any,
    count: Any,
    norm: Any,
    okapi: bool,
    k1p1: float,
) -> Any:
    """Add the unread terms to the candidates ``touched[:n]`` by lookups; the top-k survivors.

    Candidates go best partial score first, and each looks the unread terms up (by decreasing
    bound) only while it can still reach theta; theta rises to the k-th best completed score,
    so most candidates stop after a lookup or two, and the rest are not visited at all. Leaves
    ``acc`` zero on ``touched[:n]``.
    """
    n_rest = rest.shape[0]
    after = np.empty(n_rest, dtype=np.float64)  # the bounds of the unread terms after each one
    tail = 0.0
    for i in range(n_rest - 1, -1, -1):
        after[i] = tail
        tail += bound[rest[i]]
    partial = np.empty(n, dtype=np.float64)
    for i in range(n):
        partial[i] = acc[touched[i]]
        acc[touched[i]] = 0.0
    done_slot = np.empty(n, dtype=touched.dtype)
    done_score = np.empty(n, dtype=np.float64)
    n_done = 0
    size = 0
    # Rounds: sort only the best ``batch`` remaining candidates, complete them (theta rises),
    # then drop every remaining candidate that cannot reach the new theta; a full sort of many
    # thousands of candidates would cost more than the lookups it saves.
    pending = np.arange(n)
    batch = max(64, 4 * k)
    while pending.shape[0] > 0:
        floor = theta * (1.0 - _SLACK) - remaining * (1.0 + _SLACK)
        kept = 0
        for i in range(pending.shape[0]):
            if partial[pending[i]] >= floor:
                pending[kept] = pending[i]
                kept += 1
        pending = pending[:kept]
        if kept == 0:
            break
        if kept > batch:
            cut = np.partition(-partial[pending], batch - 1)[batch - 1]
            first = pending[-partial[pending] <= cut]
            pending = pending[-partial[pending] > cut]
        else:
            first = pending
            pending = pending[:0]
        by_score = first[np.argsort(-partial[first], kind="mergesort")]
        batch *= 4
        for ci in range(by_score.shape[0]):
            a = partial[by_score[ci]]
            if a + remaining * (1.0 + _SLACK) < theta * (1.0 - _SLACK):
                pending = pending[:0]  # every later candidate has a lower partial score
                break
            s = touched[by_score[ci]]
            alive = True
            for i in range(n_rest):
                j = rest[i]
                p = _find(pslots, t_lo[j], t_hi[j], s)
                if p >= 0:
                    a += _contribution(ptfs[p], s, norm, idf[j], okapi, k1p1) * count[j]
                else:
                    p = _find(dslots, d_lo[j], d_hi[j], s)
                    if p >= 0:
                        a += _contribution(dtfs[p], s, norm, idf[j], okapi, k1p1) * count[j]
                if a + after[i] * (1.0 + _SLACK) < theta * (1.0 - _SLACK):
                    alive = False
                    break
            if not alive:
                continue
            done_slot[n_done] = s
            done_score[n_done] = a
            n_done += 1
            # A min-heap of the k best completed scores; its root is a lower bound on the final
            # k-th score, so theta may rise to it.
            if size < k:
                pos = size
                size += 1
                while pos > 0:
                    parent = (pos - 1) >> 1
                    if heap[parent] <= a:
                        break
                    heap[pos] = heap[parent]
                    pos = parent
                heap[pos] = a
            elif a > heap[0]:
                pos = 0
                while True:
                    child = 2 * pos + 1
                    if child >= size:
                        break
                    if child + 1 < size and heap[child + 1] < heap[child]:
                        child += 1
                    if heap[child] >= a:
                        break
                    heap[pos] = heap[child]
                    pos = child
                heap[pos] = a
            if size == k and heap[0] > theta:
                theta = heap[0]
    kept = 0
    for i in range(n_done):
        if done_score[i] >= theta * (1.0 - _SLACK):
            done_slot[kept] = done_slot[i]
            kept += 1
    return done_slot[:kept].copy()


@numba.njit(cache=True, nogil=True)
def top_candidates(
    pslots: Any,
    ptfs: Any,
    t_lo: Any,
    t_hi: Any,
    dslots: Any,
    dtfs: Any,
    d_lo: Any,
    d_hi: Any,
    idf: Any,
    count: Any,
    bound: Any,
    norm: Any,
    ok: Any,
    okapi: bool,
    k1p1: float,
    k: int,
    acc: Any,
    touched: Any,
) -> tuple[Any, Any]:
    """Candidate slots and their exact scores; see the module docstring.

    Per query term ``j`` (in query order, repeats folded into ``count[j]``): base postings
    ``pslots/ptfs[t_lo[j]:t_hi[j]]`` and delta postings ``dslots/dtfs[d_lo[j]:d_hi[j]]``, both
    sorted by slot, ``idf[j] > 0``, and ``bound[j]`` >= any one posting's contribution times
    ``count[j]``. ``ok[slot]`` is false for slots that must not be returned (``ok`` empty: all
    may). ``acc`` (float64) and ``touched`` (int32) are scratch arrays of at least one entry per
    slot; ``acc`` must be all zero and is left all zero.
    """
    n_terms = idf.shape[0]
    check_ok = ok.shape[0] > 0
    # Terms by decreasing bound: the rare, high-idf terms are read first.
    order = np.argsort(-bound, kind="mergesort")
    remaining = 0.0
    unread = 0
    for j in range(n_terms):
        remaining += bound[j]
        unread += (t_hi[j] - t_lo[j]) + (d_hi[j] - d_lo[j])
    heap = np.empty(k, dtype=np.float64)
    n_touched = 0
    read_bound = 0.0
    theta = 0.0
    stop = n_terms
    for oi in range(n_terms):
        # Once the k-th best partial score beats the bound of every unread term, no unseen
        # document can reach the top k: stop reading (MaxScore's non-essential terms).
        if oi > 0 and read_bound > remaining * (1.0 + _SLACK):
            theta = _kth_largest(acc, touched, n_touched, k, heap)
            if theta > remaining * (1.0 + _SLACK):
                # Stopping is now exact; it pays when looking the candidates up in the unread
                # lists costs less than reading those lists.
                floor = theta * (1.0 - _SLACK) - remaining * (1.0 + _SLACK)
                n_cand = 0
                for i in range(n_touched):
                    if acc[touched[i]] >= floor:
                        n_cand += 1
                if n_cand * _LOOKUP_COST < unread:
                    stop = oi
                    break
        j = order[oi]
        w = idf[j]
        c = count[j]
        for p in range(t_lo[j], t_hi[j]):
            s = pslots[p]
            if not check_ok or ok[s]:
                v = _contribution(ptfs[p], s, norm, w, okapi, k1p1) * c
                if acc[s] == 0.0:
                    touched[n_touched] = s
                    n_touched += 1
                acc[s] += v
        for p in range(d_lo[j], d_hi[j]):
            s = dslots[p]
            if not check_ok or ok[s]:
                v = _contribution(dtfs[p], s, norm, w, okapi, k1p1) * c
                if acc[s] == 0.0:
                    touched[n_touched] = s
                    n_touched += 1
                acc[s] += v
        read_bound += bound[j]
        remaining -= bound[j]
        unread -= (t_hi[j] - t_lo[j]) + (d_hi[j] - d_lo[j])
    # The candidates: documents whose partial score plus the unread terms' bounds can still
    # reach theta (every document of the top k is among them).
    theta = _kth_largest(acc, touched, n_touched, k, heap)
    if stop == n_terms:
        n_cand = _prune(acc, touched, n_touched, theta, 0.0)
        cand = touched[:n_cand].copy()
        for i in range(n_cand):
            acc[cand[i]] = 0.0
    else:
        n_cand = _prune(acc, touched, n_touched, theta, remaining)
        cand = _complete(
            acc, touched, n_cand, order[stop:], bound, remaining, theta, k, heap,
            pslots, ptfs, t_lo, t_hi, dslots, dtfs, d_lo, d_hi, idf, count, norm, okapi, k1p1,
        )  # fmt: skip
        n_cand = cand.shape[0]
    scores = np.empty(n_cand, dtype=np.float64)
    # Exact scores, summed in query order (as the numpy path does, term by term).
    for i in range(n_cand):
        s = cand[i]
        total = 0.0
        for j in range(n_terms):
            p = _find(pslots, t_lo[j], t_hi[j], s)
            if p >= 0:
                tf_int = ptfs[p]
            else:
                p = _find(dslots, d_lo[j], d_hi[j], s)
                if p < 0:
                    continue
                tf_int = dtfs[p]
            v = _contribution(tf_int, s, norm, idf[j], okapi, k1p1)
            for _ in range(count[j]):
                total += v
        scores[i] = total
    return cand, scores
