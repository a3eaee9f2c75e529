"""The numba kernel behind :class:`ragkit.bm25.BM25Index` searches (extra ``fast``).

:func:`top_candidates`: given a query's terms, it returns the top ``k`` keys with their exact
scores, best first, ties by key (ties at the ``k``-th score included). It never makes a
corpus-sized pass, and it skips whole blocks of postings that cannot change the top ``k``:
block-max MaxScore over windows of document slots, as in Lucene's ``MaxScoreBulkScorer`` (after
Turtle & Flood, "Query evaluation: strategies and optimizations", IP&M 1995, and Ding & Suel,
"Faster top-k document retrieval using block-max indexes", SIGIR 2011). Two things make the
k-th best score (theta) high early, which is what lets windows and terms be skipped: seeds (the
documents of the rarest query terms with the best partial scores there, scored exactly before
any window) and the order of the windows (highest bound first, stopping at the first one whose
bound is below theta). :func:`block_maxima` builds the per-block bounds. :func:`all_candidates`
is the same contract without pruning, for a ``k`` so large that pruning would skip little.

Each term's base postings are cut into blocks of ``BLOCK`` postings; a block keeps its last slot
and the largest ``tf / (tf + norm)`` of its postings at the average document length of the
moment it was built. Those bounds stay valid while documents come and go: dead documents only
make them looser, and a change of the average length ``avgdl`` is covered by multiplying them by
``max(1, avgdl_now / avgdl_then)`` (the caller passes that as ``factor``). Candidates are picked
with one-byte length codes (the caller's table gives a lower bound of the norm per code, so the
partial scores are upper bounds).

Scores are bit-for-bit those of the numpy path in ragkit.bm25: each candidate's score is summed
afresh in query-term order with the same floating-point operations, after the pruning has picked
the candidates. This module leaves out everything else (analysis, the index's layout, the length
codes, filters: the caller passes a mask of the slots that may be returned).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

__all__ = ["BLOCK", "all_candidates", "block_maxima", "top_candidates"]

BLOCK = 128
"""Postings per block of a term's base posting list."""

# Relative slack on every bound comparison: the candidates are picked with partial sums taken
# in another order than the final one; 1e-6 is far above those roundings (~1e-15), and a larger
# slack only keeps more candidates.
_SLACK = 1e-6

# The seeds' budget: postings of the rarest query terms read to pick them (the rarest term's
# are read if they are at most _SEED_FIRST, more terms while all stay within _SEED_POSTINGS),
# and how many seeds per k are scored exactly. Tuned on SciFact claims at 100k slots.
_SEED_FIRST = 8192
_SEED_POSTINGS = 1024
_SEEDS_PER_K = 2


@numba.njit(cache=True, nogil=True)
def block_maxima(indptr: Any, pslots: Any, ptfs: Any, norm: Any) -> tuple[Any, Any, Any]:
    """Per-block bounds of term-major CSR postings: ``(bptr, blast, bmax)``.

    Term ``t``'s blocks are ``bptr[t]:bptr[t + 1]``; block ``i`` holds postings
    ``indptr[t] + BLOCK * (i - bptr[t])`` onwards (``BLOCK`` of them, fewer in the last),
    ``blast[i]`` is its last slot and ``bmax[i]`` the largest ``tf / (tf + norm[slot])`` in it.
    """
    n_terms = indptr.shape[0] - 1
    bptr = np.zeros(n_terms + 1, dtype=np.int64)
    for t in range(n_terms):
        bptr[t + 1] = bptr[t] + (indptr[t + 1] - indptr[t] + BLOCK - 1) // BLOCK
    n_blocks = bptr[n_terms]
    blast = np.empty(n_blocks, dtype=np.int32)
    bmax = np.empty(n_blocks, dtype=np.float64)
    for t in range(n_terms):
        i = bptr[t]
        hi = indptr[t + 1]
        for start in range(indptr[t], hi, BLOCK):
            end = min(start + BLOCK, hi)
            top = 0.0
            for p in range(start, end):
                tf = np.float64(ptfs[p])
                v = tf / (tf + norm[pslots[p]])
                if v > top:
                    top = v
            blast[i] = pslots[end - 1]
            bmax[i] = top
            i += 1
    return bptr, blast, bmax


@numba.njit(cache=True, nogil=True, inline="always")
def _term_score(tf_int: Any, norm: float, idf: float, okapi: bool, k1p1: float) -> Any:
    # The numpy path's operations in its order: idf * (tf [* (k1 + 1)] / (tf + norm)).
    # tf * 1.0 is tf exactly: a multiply either way keeps the loops that call this branch-free.
    tf = np.float64(tf_int)
    num = tf * (k1p1 if okapi else 1.0)
    return (num / (norm + tf)) * idf


@numba.njit(cache=True, nogil=True, inline="always")
def _approx(tf_int: Any, code: Any, cnorm: Any, idf: float, okapi: bool, k1p1: float) -> Any:
    # An upper bound of _contribution: the norm of the shortest length with this length code.
    return _term_score(tf_int, cnorm[code], idf, okapi, k1p1)


@numba.njit(cache=True, nogil=True, inline="always")
def _contribution(tf_int: Any, slot: Any, norm: Any, idf: float, okapi: bool, k1p1: float) -> Any:
    return _term_score(tf_int, norm[slot], idf, okapi, k1p1)


@numba.njit(cache=True, nogil=True)
def _find(slots: Any, lo: int, hi: int, slot: int) -> int:
    """Position of ``slot`` in the sorted ``slots[lo:hi]``, or -1."""
    n = hi - lo
    if n <= 0:
        return -1
    # Branch-free (a conditional move per step): whether a step goes left or right is a coin
    # toss, and mispredicted branches cost more than the steps a match could save.
    while n > 1:
        half = n >> 1
        lo = lo + half if slots[lo + half] <= slot else lo
        n -= half
    return lo if slots[lo] == slot else -1


@numba.njit(cache=True, nogil=True)
def _first_at_least(slots: Any, lo: int, hi: int, slot: int) -> int:
    """The first position in the sorted ``slots[lo:hi]`` holding ``slot`` or more (or ``hi``)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if slots[mid] < slot:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def _exact(
    s: int,
    slots: Any,
    tfs: Any,
    lo: Any,
    hi: Any,
    norm: Any,
    idf: Any,
    count: Any,
    okapi: bool,
    k1p1: float,
) -> float:
    """Slot ``s``'s exact score: term ``j``'s posting, if any, is in ``slots[lo[j]:hi[j]]``.

    Summed in query order with the numpy path's operations, so equal to its score bit for bit.
    """
    total = 0.0
    for j in range(idf.shape[0]):
        p = _find(slots, lo[j], hi[j], s)
        if p >= 0:
            v = _contribution(tfs[p], s, norm, idf[j], okapi, k1p1)
            for _ in range(count[j]):
                total += v
    return total


@numba.njit(cache=True, nogil=True)
def _heap_offer(heap: Any, size: int, k: int, v: float) -> int:
    """Offer ``v`` to a min-heap of the ``k`` largest values; the new size."""
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
    return size


@numba.njit(cache=True, nogil=True)
def _pair_offer(vals: Any, slots: Any, size: int, cap: int, v: float, s: int) -> int:
    """Offer ``(v, s)`` to a min-heap (by ``v``) of the ``cap`` largest; the new size."""
    if size < cap:
        pos = size
        size += 1
        while pos > 0:
            parent = (pos - 1) >> 1
            if vals[parent] <= v:
                break
            vals[pos] = vals[parent]
            slots[pos] = slots[parent]
            pos = parent
        vals[pos] = v
        slots[pos] = s
    elif v > vals[0]:
        pos = 0
        while True:
            child = 2 * pos + 1
            if child >= size:
                break
            if child + 1 < size and vals[child + 1] < vals[child]:
                child += 1
            if vals[child] >= v:
                break
            vals[pos] = vals[child]
            slots[pos] = slots[child]
            pos = child
        vals[pos] = v
        slots[pos] = s
    return size


@numba.njit(cache=True, nogil=True, inline="always")
def _append(slots: Any, scores: Any, n: int, s: int, a: float) -> tuple[Any, Any, int]:
    """Put candidate ``(s, a)`` at ``n``, doubling both arrays when full; them and ``n + 1``."""
    if n == slots.shape[0]:
        slots = np.concatenate((slots, np.empty(n, dtype=np.int64)))
        scores = np.concatenate((scores, np.empty(n, dtype=np.float64)))
    slots[n] = s
    scores[n] = a
    return slots, scores, n + 1


@numba.njit(cache=True, nogil=True)
def _ranked(cand: Any, scores: Any, keys: Any) -> tuple[Any, Any]:
    """Candidate slots' keys and scores by score descending, ties by key ascending."""
    n = cand.shape[0]
    ckeys = np.empty(n, dtype=np.int64)
    for i in range(n):
        ckeys[i] = keys[cand[i]]
    by_key = np.argsort(ckeys)
    neg = np.empty(n, dtype=np.float64)
    for i in range(n):
        neg[i] = -scores[by_key[i]]
    order = by_key[np.argsort(neg, kind="mergesort")]  # stable: equal scores keep key order
    out_keys = np.empty(n, dtype=np.int64)
    out_scores = np.empty(n, dtype=np.float64)
    for i in range(n):
        out_keys[i] = ckeys[order[i]]
        out_scores[i] = scores[order[i]]
    return out_keys, out_scores


@numba.njit(cache=True, nogil=True)
def _term_ranges(indptr: Any, tids: Any) -> tuple[Any, Any]:
    """Each term's base postings ``lo:hi`` (empty for terms new since the base was built)."""
    n_base = indptr.shape[0] - 1
    n_terms = tids.shape[0]
    t_lo = np.zeros(n_terms, dtype=np.int64)
    t_hi = np.zeros(n_terms, dtype=np.int64)
    for j in range(n_terms):
        t = tids[j]
        if t < n_base:
            t_lo[j] = indptr[t]
            t_hi[j] = indptr[t + 1]
    return t_lo, t_hi


@numba.njit(cache=True, nogil=True, inline="always")
def _scatter_bound(
    slots: Any,
    tfs: Any,
    lo: int,
    hi: int,
    codes: Any,
    cnorm: Any,
    w: float,
    c: int,
    ok: Any,
    okapi: bool,
    k1p1: float,
    acc: Any,
    touched: Any,
    n_t: int,
) -> int:
    """Add the upper bounds (:func:`_approx`, times ``c``) of one term's postings ``lo:hi`` to
    ``acc``, listing first touches in ``touched``; the new touched count."""
    check_ok = ok.shape[0] > 0
    for p in range(lo, hi):
        s = slots[p]
        if check_ok and not ok[s]:
            continue
        v = _approx(tfs[p], codes[s], cnorm, w, okapi, k1p1) * c
        # Branch-free: whether a document was touched before is as good as random.
        a0 = acc[s]
        touched[n_t] = s
        n_t += a0 == 0.0
        acc[s] = a0 + v
    return n_t


@numba.njit(cache=True, nogil=True)
def top_candidates(
    pslots: Any,
    ptfs: Any,
    indptr: Any,
    bptr: Any,
    blast: Any,
    bmax: Any,
    tids: Any,
    count: Any,
    idf: Any,
    factor: float,
    dslots: Any,
    dtfs: Any,
    d_lo: Any,
    d_hi: Any,
    norm: Any,
    codes: Any,
    cnorm: Any,
    ok: Any,
    okapi: bool,
    k1p1: float,
    k: int,
    keys: Any,
    acc: Any,
    touched: Any,
    window: int,
    lookup_cost: int,
) -> tuple[Any, Any]:
    """The top ``k`` keys and their exact scores, best first, ties by key, ties at the ``k``-th
    score included (so possibly more than ``k``); see the module docstring.

    Per query term ``j`` (in query order, repeats folded into ``count[j]``): term ``tids[j]``'s
    base postings ``pslots/ptfs[indptr[t]:indptr[t + 1]]`` (none when ``t`` is past the base)
    with blocks ``bptr[t]:bptr[t + 1]`` (``blast``, ``bmax``), and delta postings
    ``dslots/dtfs[d_lo[j]:d_hi[j]]`` (``d_lo`` empty: no delta), all sorted by slot; every delta
    slot is above every base slot (a document's postings are all in one of the two).
    ``idf[j] > 0``, and ``factor`` times a block's ``bmax`` bounds ``tf / (tf + norm)`` for its
    postings now. ``ok[slot]`` is false for slots that must not be returned (``ok`` empty: all
    may); ``keys[slot]`` is the slot's key. ``acc`` (float64) and ``touched`` (int32) are scratch
    arrays of at least one entry per slot (``touched`` one more); ``acc`` must be all zero and
    is left all zero.
    The candidates are picked with ``cnorm[codes[slot]]``, a lower bound of ``norm[slot]`` (one
    byte per slot to read instead of eight; their scores are then computed with ``norm``).
    ``window`` is the number of slots scored together; the documents left in a window are looked
    up in a non-essential term's postings when ``lookup_cost`` times their number is below that
    term's postings there, else those postings are read.
    """
    n_terms = idf.shape[0]
    t_lo, t_hi = _term_ranges(indptr, tids)
    n_base = indptr.shape[0] - 1
    b_lo = np.zeros(n_terms, dtype=np.int64)
    scale = np.empty(n_terms, dtype=np.float64)
    for j in range(n_terms):
        if tids[j] < n_base:
            b_lo[j] = bptr[tids[j]]
        scale[j] = idf[j] * count[j] * (k1p1 if okapi else 1.0) * factor * (1 + 1e-9)
    check_ok = ok.shape[0] > 0
    heap = np.empty(k, dtype=np.float64)
    size = 0
    theta = 0.0
    c_slot = np.empty(4 * k + 64, dtype=np.int64)
    c_score = np.empty(4 * k + 64, dtype=np.float64)
    n_c = 0

    # The delta (recent single-document adds): scored in full, it is small.
    n_t = 0
    for j in range(d_lo.shape[0]):
        n_t = _scatter_bound(dslots, dtfs, d_lo[j], d_hi[j], codes, cnorm, idf[j], count[j], ok,
                             okapi, k1p1, acc, touched, n_t)  # fmt: skip
    for i in range(n_t):
        s = touched[i]
        a = acc[s]
        acc[s] = 0.0
        if a >= theta * (1.0 - _SLACK):
            a = _exact(s, dslots, dtfs, d_lo, d_hi, norm, idf, count, okapi, k1p1)
        if a >= theta:
            c_slot, c_score, n_c = _append(c_slot, c_score, n_c, s, a)
            size = _heap_offer(heap, size, k, a)
            if size == k:
                theta = heap[0]

    # Seeds, so that theta starts high: the documents of the query's rarest terms with the
    # best partial scores there, scored exactly. Without them theta grows from zero over the
    # first windows, which then prune little.
    by_df = np.argsort(t_hi - t_lo)
    sel = np.empty(n_terms, dtype=np.int64)
    n_sel = 0
    budget = 0
    for jj in by_df:
        n = t_hi[jj] - t_lo[jj]
        if n == 0:
            continue
        if budget + n > (_SEED_POSTINGS if budget else _SEED_FIRST):
            break
        budget += n
        sel[n_sel] = jj
        n_sel += 1
    # Window-local accumulator and touched offsets, shared with the windows below: the same
    # small arrays for every window, so they stay in cache.
    accw = np.zeros(window, dtype=np.float64)
    tw = np.empty(window + 1, dtype=np.int32)  # one spare: the first-touch write is branch-free
    cap = _SEEDS_PER_K * k
    h_val = np.empty(cap, dtype=np.float64)
    h_slot = np.empty(cap, dtype=np.int64)
    n_s = 0
    if n_sel:
        pos = np.empty(n_sel, dtype=np.int64)
        for i in range(n_sel):
            pos[i] = t_lo[sel[i]]
        while True:
            nxt = -1
            for i in range(n_sel):
                if pos[i] < t_hi[sel[i]]:
                    s = pslots[pos[i]]
                    if nxt < 0 or s < nxt:
                        nxt = s
            if nxt < 0:
                break
            start = nxt - nxt % window
            end = start + window
            n_t = 0
            for i in range(n_sel):
                jj = sel[i]
                p = pos[i]
                hi = t_hi[jj]
                w_j = idf[jj]
                c = count[jj]
                while p < hi:
                    s = pslots[p]
                    if s >= end:
                        break
                    if not check_ok or ok[s]:
                        v = _approx(ptfs[p], codes[s], cnorm, w_j, okapi, k1p1) * c
                        o = s - start
                        a0 = accw[o]
                        tw[n_t] = o
                        n_t += a0 == 0.0
                        accw[o] = a0 + v
                    p += 1
                pos[i] = p
            for i in range(n_t):
                o = tw[i]
                a = accw[o]
                accw[o] = 0.0
                n_s = _pair_offer(h_val, h_slot, n_s, cap, a, start + o)
    n_seed = n_s
    seeds = np.sort(h_slot[:n_s])
    if n_seed:
        # Each seed's posting of term j can only be in the block whose last slot is the first
        # at or past the seed's: found by walking the block ends (a small array), not by
        # binary search over the whole list (a cache miss at most steps).
        s_lo = np.empty((n_seed, n_terms), dtype=np.int64)
        s_hi = np.empty((n_seed, n_terms), dtype=np.int64)
        for j in range(n_terms):
            b = b_lo[j]
            e = b_lo[j] + (t_hi[j] - t_lo[j] + BLOCK - 1) // BLOCK
            for i in range(n_seed):
                while b < e and blast[b] < seeds[i]:
                    b += 1
                first = t_lo[j] + (b - b_lo[j]) * BLOCK
                s_lo[i, j] = min(first, t_hi[j])
                s_hi[i, j] = min(first + BLOCK, t_hi[j])
        for i in range(n_seed):
            s = seeds[i]
            a = _exact(s, pslots, ptfs, s_lo[i], s_hi[i], norm, idf, count, okapi, k1p1)
            if a >= theta:
                c_slot, c_score, n_c = _append(c_slot, c_score, n_c, s, a)
                size = _heap_offer(heap, size, k, a)
                if size == k:
                    theta = heap[0]

    # The base, window by window (``window`` slots each). In a window a term's bound is the
    # largest of its blocks there; terms whose bounds sum below theta are non-essential: a
    # document found only in them cannot reach the top k. The essential terms' postings are
    # read; the others are added to the documents those touched while they can still reach
    # theta, by lookups when few are left, else by reading the term's postings in the window.
    # Windows are visited by their bound, highest first: theta rises fast on the windows most
    # likely to hold the top k, and the visit stops at the first window bounded below theta.
    bend = b_lo + (t_hi - t_lo + BLOCK - 1) // BLOCK
    last = -1
    for j in range(n_terms):
        if bend[j] > b_lo[j] and blast[bend[j] - 1] > last:
            last = blast[bend[j] - 1]
    n_win = last // window + 1 if last >= 0 else 0
    w_top = np.zeros((n_win, n_terms), dtype=np.float64)  # term j's bound in window w
    w_first = np.zeros((n_win, n_terms), dtype=np.int64)  # its first posting there may be after
    w_cap = np.zeros((n_win, n_terms), dtype=np.int64)  # its postings there end before this
    w_total = np.zeros(n_win, dtype=np.float64)
    for j in range(n_terms):
        b = b_lo[j]
        for w in range(n_win):
            start = w * window
            end = start + window
            while b < bend[j] and blast[b] < start:
                b += 1
            w_first[w, j] = min(t_hi[j], t_lo[j] + (b - b_lo[j]) * BLOCK)
            top = 0.0
            e = b
            while e < bend[j]:
                if bmax[e] > top:
                    top = bmax[e]
                if blast[e] >= end:
                    break
                e += 1
            w_cap[w, j] = min(t_hi[j], t_lo[j] + (e + 1 - b_lo[j]) * BLOCK)
            w_top[w, j] = top * scale[j]
            w_total[w] += w_top[w, j]
    visit = np.argsort(-w_total)
    order = np.arange(n_terms)
    # Window-local accumulator and touched offsets: the same small arrays for every window, so
    # they stay in cache (a slot-indexed one would bring a new stretch of memory each window).
    for w in visit:
        floor = theta * (1.0 - _SLACK)
        if w_total[w] < floor:
            break  # and so is every window after this one
        start = w * window
        end = start + window
        wb = w_top[w]
        r_lo = w_first[w]
        cap_p = w_cap[w]
        for i in range(1, n_terms):
            j = order[i]
            x = wb[j]
            m = i - 1
            while m >= 0 and wb[order[m]] > x:
                order[m + 1] = order[m]
                m -= 1
            order[m + 1] = j
        n_ne = 0
        ne_sum = 0.0
        while n_ne < n_terms and ne_sum + wb[order[n_ne]] < floor:
            ne_sum += wb[order[n_ne]]
            n_ne += 1
        n_t = 0
        for i in range(n_ne, n_terms):
            j = order[i]
            if wb[j] == 0.0:
                continue
            hi = cap_p[j]
            p = _first_at_least(pslots, r_lo[j], hi, start)
            w_j = idf[j]
            c = count[j]
            while p < hi:
                s = pslots[p]
                if s >= end:
                    break
                if not check_ok or ok[s]:
                    v = _approx(ptfs[p], codes[s], cnorm, w_j, okapi, k1p1) * c
                    # Branch-free: whether the slot was already touched is unpredictable.
                    o = s - start
                    a0 = accw[o]
                    tw[n_t] = o
                    n_t += a0 == 0.0
                    accw[o] = a0 + v
                p += 1
        rest = ne_sum
        m = n_ne - 1
        while True:
            # Keep the touched documents that can still reach theta.
            floor = theta * (1.0 - _SLACK) - rest * (1.0 + _SLACK)
            kept = 0
            for i in range(n_t):
                o = tw[i]
                if accw[o] >= floor:
                    tw[kept] = o
                    kept += 1
                else:
                    accw[o] = 0.0
            n_t = kept
            if m < 0 or n_t == 0 or wb[order[m]] == 0.0:
                break
            j = order[m]
            m -= 1
            rest -= wb[j]
            if rest < 0.0:
                rest = 0.0
            p = r_lo[j]
            hi = cap_p[j]
            w_j = idf[j]
            c = count[j]
            # Look the documents up in term j's postings of the window, or read those.
            if n_t * lookup_cost < hi - p:
                for i in range(n_t):
                    o = tw[i]
                    s = start + o
                    f = _find(pslots, p, hi, s)
                    if f >= 0:
                        accw[o] += _approx(ptfs[f], codes[s], cnorm, w_j, okapi, k1p1) * c
            else:
                p = _first_at_least(pslots, p, hi, start)
                while p < hi:
                    s = pslots[p]
                    if s >= end:
                        break
                    o = s - start
                    if accw[o] != 0.0:
                        accw[o] += _approx(ptfs[p], codes[s], cnorm, w_j, okapi, k1p1) * c
                    p += 1
        for i in range(n_t):
            o = tw[i]
            s = start + o
            a = accw[o]
            accw[o] = 0.0
            if a < theta * (1.0 - _SLACK) or (n_seed and _find(seeds, 0, n_seed, s) >= 0):
                continue  # below theta, or a seed (offered already)
            # Exact while the window's postings are in cache (and theta then exact too).
            a = _exact(s, pslots, ptfs, r_lo, cap_p, norm, idf, count, okapi, k1p1)
            if a >= theta:
                c_slot, c_score, n_c = _append(c_slot, c_score, n_c, s, a)
                size = _heap_offer(heap, size, k, a)
                if size == k:
                    theta = heap[0]

    # The candidates: every document offered that still reaches the final theta, exactly.
    n_cand = 0
    for i in range(n_c):
        if c_score[i] >= theta:
            c_slot[n_cand] = c_slot[i]
            c_score[n_cand] = c_score[i]
            n_cand += 1
    return _ranked(c_slot[:n_cand], c_score[:n_cand], keys)


@numba.njit(cache=True, nogil=True, inline="always")
def _window_sum(
    slots: Any,
    tfs: Any,
    p: int,
    hi: int,
    start: int,
    end: int,
    norm: Any,
    w: float,
    c: int,
    ok: Any,
    okapi: bool,
    k1p1: float,
    accw: Any,
    tw: Any,
    n_t: int,
) -> tuple[int, int]:
    """Add one term's postings from ``p`` (up to ``hi``) with slots below ``end`` to the window
    accumulator ``accw`` (slot ``s`` at ``s - start``, ``c`` times each), listing first touches
    in ``tw``; the next position and the new touched count."""
    check_ok = ok.shape[0] > 0
    while p < hi:
        s = slots[p]
        if s >= end:
            break
        if not check_ok or ok[s]:
            v = _contribution(tfs[p], s, norm, w, okapi, k1p1)
            o = s - start
            a0 = accw[o]
            # Branch-free: whether a document was touched before is as good as random.
            tw[n_t] = o
            n_t += a0 == 0.0
            for _ in range(c):
                a0 += v
            accw[o] = a0
        p += 1
    return p, n_t


@numba.njit(cache=True, nogil=True)
def all_candidates(
    pslots: Any,
    ptfs: Any,
    indptr: Any,
    tids: Any,
    dslots: Any,
    dtfs: Any,
    d_lo: Any,
    d_hi: Any,
    idf: Any,
    count: Any,
    norm: Any,
    ok: Any,
    okapi: bool,
    k1p1: float,
    k: int,
    keys: Any,
    window: int,
) -> tuple[Any, Any]:
    """:func:`top_candidates` without pruning: every posting of the query's terms is read.

    Window by window of ``window`` slots, every term's postings there in query order, summed in
    a window-local accumulator, so each document's score is summed in the order :func:`_exact`
    uses (bit for bit the same) and the accumulator and the window's norms stay in cache; each
    window's documents are offered to a heap of the ``k`` best. Cheaper than pruning when ``k``
    is large (a hybrid search's depth), where the ``k``-th score stays low and prunes little.
    """
    n_terms = idf.shape[0]
    t_lo, t_hi = _term_ranges(indptr, tids)
    has_delta = d_lo.shape[0] > 0
    pos = t_lo.copy()
    dpos = d_lo.copy() if has_delta else np.zeros(n_terms, dtype=np.int64)
    dend = d_hi if has_delta else np.zeros(n_terms, dtype=np.int64)
    accw = np.zeros(window, dtype=np.float64)
    tw = np.empty(window + 1, dtype=np.int32)  # one spare: the first-touch write is branch-free
    heap = np.empty(k, dtype=np.float64)
    size = 0
    theta = 0.0
    c_slot = np.empty(4 * k + 64, dtype=np.int64)
    c_score = np.empty(4 * k + 64, dtype=np.float64)
    n_c = 0
    w_slot = np.empty(window, dtype=np.int64)
    w_score = np.empty(window, dtype=np.float64)
    while True:
        nxt = -1  # the lowest slot not read yet: the next window starts at its window
        for j in range(n_terms):
            if pos[j] < t_hi[j]:
                s = pslots[pos[j]]
                if nxt < 0 or s < nxt:
                    nxt = s
            elif dpos[j] < dend[j]:
                s = dslots[dpos[j]]
                if nxt < 0 or s < nxt:
                    nxt = s
        if nxt < 0:
            break
        start = nxt - nxt % window
        end = start + window
        n_t = 0
        for j in range(n_terms):
            w_j = idf[j]
            c = count[j]
            pos[j], n_t = _window_sum(pslots, ptfs, pos[j], t_hi[j], start, end, norm, w_j, c,
                                      ok, okapi, k1p1, accw, tw, n_t)  # fmt: skip
            if has_delta:  # a document's postings are all in the base or all in the delta
                dpos[j], n_t = _window_sum(dslots, dtfs, dpos[j], dend[j], start, end, norm, w_j,
                                           c, ok, okapi, k1p1, accw, tw, n_t)  # fmt: skip
        # The window's documents that reach theta, kept in window-sized arrays first: growing
        # the candidate arrays rebinds them, which numba pays for on every pass of a loop.
        m = 0
        for i in range(n_t):
            o = tw[i]
            a = accw[o]
            accw[o] = 0.0
            if a >= theta:
                w_slot[m] = start + o
                w_score[m] = a
                m += 1
                size = _heap_offer(heap, size, k, a)
                if size == k:
                    theta = heap[0]
        for i in range(m):
            c_slot, c_score, n_c = _append(c_slot, c_score, n_c, w_slot[i], w_score[i])
    n_cand = 0
    for i in range(n_c):
        if c_score[i] >= theta:
            c_slot[n_cand] = c_slot[i]
            c_score[n_cand] = c_score[i]
            n_cand += 1
    return _ranked(c_slot[:n_cand], c_score[:n_cand], keys)
