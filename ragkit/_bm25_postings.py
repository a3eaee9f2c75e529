"""The postings behind :class:`ragkit.bm25.BM25Index`: their layout and how they change.

Layout (Lucene-like): a term-major CSR "base" of postings (document slot, term frequency), a
small per-term "delta" that single-document adds append to, merged into the base once it grows
past a fraction of it, and tombstones for removed documents, dropped by a compaction once they
are a quarter of the slots. A slot is a document's position in insertion order. The exact
integer statistics (document frequencies, lengths, N) are kept here; scoring, search and the
scoring parameters are left to ragkit.bm25, which subclasses :class:`_Postings`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

from ragkit._arrays import KeyRows, first_repeated
from ragkit.errors import IndexFormatError

# The delta is merged into the base when it holds more postings than this floor or than
# 1/_MERGE_FRACTION of the base: small enough to keep queries on the delta cheap, large enough to
# amortise the O(postings) merge over thousands of single-document adds.
_MIN_MERGE = 1 << 16
# Postings moved per block by a merge (bounds its temporaries).
_MERGE_BLOCK = 1 << 20
_MERGE_FRACTION = 16
# Tombstoned slots are compacted away once they are this fraction of all slots.
_COMPACT_FRACTION = 0.25
_MIN_COMPACT = 1024
# A removal of more slots than this (out of the delta, without usable tokens) finds their terms
# in one pass over all postings instead of a search per slot.
_SEARCH_SLOTS = 32

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class _Buffer:
    """A 1-D numpy array with amortised O(1) append (geometric capacity growth)."""

    __slots__ = ("_data", "_size")

    def __init__(self, data: np.ndarray) -> None:
        self._data = data
        self._size = len(data)

    def extend(self, values: np.ndarray) -> None:
        need = self._size + len(values)
        if need > len(self._data):
            # Grow by 1.25x: still amortised O(1) per element, and at most 25% slack memory.
            grown = np.empty(max(need, len(self._data) * 5 // 4, 16), dtype=self._data.dtype)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : need] = values
        self._size = need

    @property
    def view(self) -> np.ndarray:
        return self._data[: self._size]

    def __len__(self) -> int:
        return self._size


def _tf_dtype(*tfs: np.ndarray) -> type[np.unsignedinteger[Any]] | type[np.signedinteger[Any]]:
    """uint16 for term frequencies when they all fit (nearly always): 2 bytes per posting less."""
    fits = all(len(t) == 0 or int(t.max()) <= np.iinfo(np.uint16).max for t in tfs)
    return np.uint16 if fits else np.int32


def _merge_csr(
    parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], n_terms: int
) -> tuple[IntArray, np.ndarray, np.ndarray]:
    """Merge term-major CSR posting lists, keeping each term's postings in part order.

    Each part is ``(indptr, slots, tfs)`` over a prefix of the ``n_terms`` terms. Linear time:
    every posting is moved once to ``new_start[term] + postings of that term in earlier parts``.
    """
    counts = []
    for indptr, _, _ in parts:
        c = np.zeros(n_terms, dtype=np.int64)
        c[: len(indptr) - 1] = np.diff(indptr)
        counts.append(c)
    total = np.sum(counts, axis=0) if counts else np.zeros(n_terms, dtype=np.int64)
    new_indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(total, out=new_indptr[1:])
    n = int(new_indptr[-1])
    out_slots = np.empty(n, dtype=np.int32)
    out_tfs = np.empty(n, dtype=_tf_dtype(*(tfs for _, _, tfs in parts)))
    offset = new_indptr[:-1].copy()
    for (indptr, slots, tfs), c in zip(parts, counts, strict=True):
        m = len(slots)
        if not m:
            offset += c
            continue
        ptr = indptr.astype(np.int64)
        # Posting j of term t goes to j + shift[t]. Done in blocks of postings, so the int64
        # temporaries stay a few MB instead of 24 bytes per posting of the whole part.
        shift = offset[: len(ptr) - 1] - ptr[:-1]
        for lo in range(0, m, _MERGE_BLOCK):
            hi = min(m, lo + _MERGE_BLOCK)
            first = int(np.searchsorted(ptr, lo, side="right")) - 1
            last = int(np.searchsorted(ptr, hi - 1, side="right")) - 1
            ends = np.clip(ptr[first + 1 : last + 2], lo, hi)
            starts = np.clip(ptr[first : last + 1], lo, hi)
            terms = np.repeat(np.arange(first, last + 1, dtype=np.int64), ends - starts)
            dest = np.arange(lo, hi, dtype=np.int64) + shift[terms]
            out_slots[dest] = slots[lo:hi]
            out_tfs[dest] = tfs[lo:hi]
        offset += c
    return new_indptr, out_slots, out_tfs


class _Postings:
    """Postings, per-slot arrays and vocabulary; the write side of a BM25 index."""

    def _clear(self) -> None:
        self._vocab: dict[str, int] = {}
        self._df = _Buffer(np.zeros(0, dtype=np.int64))
        # Per slot (a slot is a position in insertion order; removed slots are tombstones).
        self._keys = _Buffer(np.zeros(0, dtype=np.int64))
        self._dl = _Buffer(np.zeros(0, dtype=np.int64))
        self._alive = _Buffer(np.zeros(0, dtype=np.bool_))
        self._slot_of = KeyRows()
        self._n_docs = 0
        self._total_len = 0
        self._n_dead = 0
        # Base postings, term-major CSR over the first len(indptr) - 1 term ids.
        self._indptr: IntArray = np.zeros(1, dtype=np.int64)
        self._pslots: np.ndarray = np.zeros(0, dtype=np.int32)
        self._ptfs: np.ndarray = np.zeros(0, dtype=np.uint16)
        # Delta postings per term id, appended by small adds; arrays cached for queries.
        self._delta: dict[int, tuple[list[int], list[int]]] = {}
        self._delta_size = 0
        self._delta_arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        # Term ids of the slots whose postings are in the delta (until it is merged). There is
        # no forward index of the base: a removal finds a slot's terms from its analysed text
        # when the caller has it (checked against the postings), else in the postings.
        self._recent: dict[int, np.ndarray] = {}
        # Term ids of the slots added with keep_terms (until removed; renumbered by compaction).
        self._kept: dict[int, np.ndarray] = {}
        # (base slots array, its non-empty terms, their first and last slots), for removals.
        self._spans: tuple[np.ndarray, IntArray, np.ndarray, np.ndarray] | None = None
        self._version = 0
        self._norm_cache: tuple[int, FloatArray] | None = None
        self._avg_idf_cache: tuple[int, float] | None = None
        self._dead_cache: tuple[int, IntArray] | None = None
        self._block_cache: tuple[np.ndarray, IntArray, np.ndarray, FloatArray, float] | None = None
        # Per-term contributions of recent queries, valid for one version of the index.
        self._contrib_cache: dict[int, list[tuple[np.ndarray, FloatArray, float]]] = {}
        self._contrib_size = 0
        self._contrib_version = -1

    def __len__(self) -> int:
        return self._n_docs

    def __contains__(self, key: object) -> bool:
        return key in self._slot_of

    def memory_bytes(self) -> int:
        """Bytes held by postings, per-document arrays and the vocabulary's text (estimate).

        Counts numpy buffers at their capacity, the delta at 20 bytes per posting (its lists
        and the term ids of its slots) and the vocabulary as UTF-8 plus 8 bytes per term. Left
        out: Python dict overheads and the query-term cache (at most an eighth of the postings,
        as float64 contributions).
        """
        arrays: list[np.ndarray] = [self._indptr, self._pslots, self._ptfs]
        for buf in (self._df, self._keys, self._dl, self._alive):
            arrays.append(buf._data)
        if self._spans is not None:
            arrays.extend(self._spans[1:])
        arrays.extend(self._kept.values())
        vocab = sum(len(t.encode("utf-8")) + 8 for t in self._vocab)
        return sum(a.nbytes for a in arrays) + 20 * self._delta_size + vocab

    def add_tokens(
        self,
        keys: Sequence[int] | np.ndarray,
        token_lists: Sequence[Sequence[str]],
        *,
        keep_terms: Sequence[bool] | np.ndarray | None = None,
    ) -> None:
        """Add already-analysed documents under new keys (no analyzer is applied).

        ``keep_terms`` marks the documents whose term ids the index keeps until they are
        removed (4 bytes per distinct term): those whose tokens the caller cannot give again at
        removal, which would otherwise be found by a search of the postings.

        Raises:
            ValueError: a key is negative, repeated, or already in the index, or the lengths differ.
            TypeError: a token list is a string, or a token is not a string.
        """
        key_arr = self._check_new_keys(keys)
        if len(key_arr) != len(token_lists):
            raise ValueError(
                f"keys ({len(key_arr)}) and token lists ({len(token_lists)}) must have equal length"
            )
        if any(isinstance(tl, str) for tl in token_lists):
            raise TypeError("each token list must be a sequence of strings, not a string")
        if keep_terms is not None and len(keep_terms) != len(key_arr):
            raise ValueError(f"keep_terms ({len(keep_terms)}) must match keys ({len(key_arr)})")
        if not len(key_arr):
            return
        vocab = self._vocab
        # New terms get ids in first-seen order (deterministic state); the distinct tokens are
        # few, so checking them costs little, and no per-token Python list is built.
        new_terms = [t for t in dict.fromkeys(chain.from_iterable(token_lists)) if t not in vocab]
        if not all(isinstance(t, str) for t in new_terms):
            raise TypeError("tokens must be strings")
        vocab.update(zip(new_terms, range(len(vocab), len(vocab) + len(new_terms)), strict=True))
        n_terms = len(vocab)
        lengths = np.fromiter((len(tl) for tl in token_lists), dtype=np.int64, count=len(key_arr))
        term_ids = np.fromiter(
            map(vocab.__getitem__, chain.from_iterable(token_lists)),
            dtype=np.int64,
            count=int(lengths.sum()),
        )

        # Unique (document, term) pairs with their counts, document-major.
        doc_of = np.repeat(np.arange(len(key_arr), dtype=np.int64), lengths)
        pair, tf = np.unique(doc_of * n_terms + term_ids, return_counts=True)
        pair_doc, pair_term = np.divmod(pair, n_terms)
        pair_term32 = pair_term.astype(np.int32)
        tf32 = tf.astype(np.int32)

        slot0 = len(self._keys)
        self._df.extend(np.zeros(n_terms - len(self._df), dtype=np.int64))
        self._df.view[:] += np.bincount(pair_term, minlength=n_terms)
        self._keys.extend(key_arr)
        self._dl.extend(lengths)
        self._alive.extend(np.ones(len(key_arr), dtype=np.bool_))
        self._slot_of.assign(key_arr, np.arange(slot0, slot0 + len(key_arr), dtype=np.int64))
        self._n_docs += len(key_arr)
        self._total_len += int(lengths.sum())

        slots = (pair_doc + slot0).astype(np.int32)
        if keep_terms is not None and np.any(keep_terms):
            bounds = np.zeros(len(key_arr) + 1, dtype=np.int64)
            np.cumsum(np.bincount(pair_doc, minlength=len(key_arr)), out=bounds[1:])
            for i in np.flatnonzero(np.asarray(keep_terms, dtype=np.bool_)).tolist():
                self._kept[slot0 + i] = pair_term32[bounds[i] : bounds[i + 1]].copy()
        # A bulk add (as many postings as the merge floor) goes straight into the base: kept
        # as Python lists in the delta it would cost ~40 bytes per posting until the merge.
        if len(pair) >= _MIN_MERGE or len(pair) + self._delta_size >= self._merge_threshold():
            order = np.argsort(pair_term32, kind="stable")
            batch_indptr = np.zeros(n_terms + 1, dtype=np.int64)
            np.cumsum(np.bincount(pair_term, minlength=n_terms), out=batch_indptr[1:])
            self._merge_delta(extra=(batch_indptr, slots[order], tf32[order]))
        else:
            delta, cache = self._delta, self._delta_arrays
            for s, t, c in zip(slots.tolist(), pair_term.tolist(), tf32.tolist(), strict=True):
                entry = delta.get(t)
                if entry is None:
                    delta[t] = ([s], [c])
                else:
                    entry[0].append(s)
                    entry[1].append(c)
                    cache.pop(t, None)
            self._delta_size += len(pair)
            cuts = np.cumsum(np.bincount(pair_doc, minlength=len(key_arr)))[:-1]
            for slot, terms in enumerate(np.split(pair_term32, cuts), start=slot0):
                self._recent[slot] = terms
        self._version += 1

    def _check_new_keys(self, keys: Sequence[int] | np.ndarray) -> IntArray:
        arr = np.asarray(keys)
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise TypeError(f"keys must be a 1-D sequence of ints, got dtype {arr.dtype}")
        key_arr = arr.astype(np.int64)
        if (key_arr < 0).any():
            raise ValueError(f"keys must be non-negative, got {int(key_arr.min())}")
        repeated = first_repeated(key_arr)
        if repeated is not None:
            raise ValueError(f"key {repeated} is repeated in keys")
        for key in key_arr.tolist():
            if key in self._slot_of:
                raise ValueError(f"key {key} is already in the index; keys are never reused")
        return key_arr

    def _merge_threshold(self) -> int:
        return max(_MIN_MERGE, len(self._pslots) // _MERGE_FRACTION)

    def _merge_delta(self, extra: tuple[IntArray, np.ndarray, np.ndarray] | None = None) -> None:
        """Fold the delta (and an optional batch CSR) into the base postings."""
        n_terms = len(self._vocab)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [
            (self._indptr, self._pslots, self._ptfs)
        ]
        if self._delta:
            terms = sorted(self._delta)
            counts = np.zeros(n_terms, dtype=np.int64)
            counts[terms] = [len(self._delta[t][0]) for t in terms]
            indptr = np.zeros(n_terms + 1, dtype=np.int64)
            np.cumsum(counts, out=indptr[1:])
            slots = np.fromiter(
                chain.from_iterable(self._delta[t][0] for t in terms), np.int32, self._delta_size
            )
            tfs = np.fromiter(
                chain.from_iterable(self._delta[t][1] for t in terms), np.int32, self._delta_size
            )
            parts.append((indptr, slots, tfs))
        if extra is not None:
            parts.append(extra)
        self._indptr, self._pslots, self._ptfs = _merge_csr(parts, n_terms)
        # Rebound, never cleared in place: state() compacts a shallow copy of this index.
        self._delta = {}
        self._delta_arrays = {}
        self._delta_size = 0
        self._recent = {}

    def remove(
        self, keys: Iterable[int], token_lists: Sequence[Sequence[str] | None] | None = None
    ) -> None:
        """Remove documents by key; removing no keys is fine.

        Args:
            keys: the documents to remove.
            token_lists: optionally, per key, the tokens the document was added with (or None
                where unknown). They
                spare a search of the postings for its terms (a few milliseconds at a million
                documents) and are checked against the postings, so tokens that are wrong
                (the document was added with other ones) cost only that search.

        Raises:
            KeyError: a key is not in the index (nothing is removed then).
            ValueError: ``token_lists`` is given with a length other than the keys'.
        """
        key_list = [int(k) for k in keys]
        if token_lists is not None and len(token_lists) != len(key_list):
            raise ValueError(f"token_lists ({len(token_lists)}) must match keys ({len(key_list)})")
        hints = dict(zip(key_list, token_lists, strict=True)) if token_lists is not None else {}
        wanted = list(dict.fromkeys(key_list))
        for key in wanted:
            if key not in self._slot_of:
                raise KeyError(key)
        if not wanted:
            return
        slots = np.array([self._slot_of[k] for k in wanted], dtype=np.int64)
        terms = self._terms_of(slots, [hints.get(k) for k in wanted])
        for key in wanted:
            self._slot_of.pop(key)
        df = self._df.view
        if len(slots) == 1:
            df[terms] -= 1  # a document's term ids are unique
        else:
            df -= np.bincount(terms, minlength=len(df))
        self._alive.view[slots] = False
        self._n_docs -= len(slots)
        self._total_len -= int(self._dl.view[slots].sum())
        self._n_dead += len(slots)
        self._version += 1
        if self._n_docs == 0:
            self._clear()  # nothing left to score: drop every array
        elif self._n_dead >= max(_MIN_COMPACT, _COMPACT_FRACTION * len(self._keys)):
            self._compact()

    def _terms_of(
        self, slots: IntArray, hints: Sequence[Sequence[str] | None]
    ) -> npt.NDArray[np.int32]:
        """The term ids of live ``slots``, concatenated (each slot's are distinct).

        A slot still in the delta has them in ``_recent``, one added with ``keep_terms`` in
        ``_kept`` (dropped here: the slot is being removed); otherwise its tokens, when given
        and equal to its postings, give them; the rest are found in the postings: term by
        term for a few slots, in one pass over all postings for many.
        """
        found: list[np.ndarray] = []
        searched: list[int] = []
        for slot, tokens in zip(slots.tolist(), hints, strict=True):
            kept = self._kept.pop(slot, None)
            recent = self._recent.get(slot, kept)
            if recent is not None:
                found.append(recent)
                continue
            checked = None if tokens is None else self._checked_terms(slot, tokens)
            if checked is not None:
                found.append(checked)
            else:
                searched.append(slot)
        if len(searched) > _SEARCH_SLOTS:
            found.append(self._base_terms_pass(np.array(searched, dtype=np.int64)))
        else:
            found.extend(self._base_terms(slot) for slot in searched)
        if not found:
            return np.zeros(0, dtype=np.int32)
        return np.concatenate(found).astype(np.int32, copy=False)

    def _find(self, terms: IntArray, slot: int) -> IntArray:
        """Per term (of the base), the position of ``slot``'s posting in its list, or -1.

        A binary search of every term's list at once (each list's slots increase); a term
        leaves the search once its range is empty, so short lists cost a few steps.
        """
        indptr, pslots = self._indptr, self._pslots
        lo, end = indptr[terms], indptr[terms + 1]
        live = np.flatnonzero(lo < end)
        a_lo, a_hi = lo[live], end[live]
        while len(live):
            mid = (a_lo + a_hi) >> 1
            right = pslots[mid] < slot
            a_lo = np.where(right, mid + 1, a_lo)
            a_hi = np.where(right, a_hi, mid)
            going = a_lo < a_hi
            if not going.all():
                done = ~going
                lo[live[done]] = a_lo[done]
                live, a_lo, a_hi = live[going], a_lo[going], a_hi[going]
        hit = lo < end
        hit[hit] = pslots[lo[hit]] == slot
        return np.where(hit, lo, -1)

    def _checked_terms(self, slot: int, tokens: Sequence[str]) -> np.ndarray | None:
        """``slot``'s term ids from its tokens, or None unless they are exactly its postings."""
        if isinstance(tokens, str) or len(tokens) != int(self._dl.view[slot]):
            return None
        vocab, n_base = self._vocab, len(self._indptr) - 1
        counts: dict[int, int] = {}
        for tok in tokens:
            tid = vocab.get(tok)
            if tid is None or tid >= n_base:
                return None
            counts[tid] = counts.get(tid, 0) + 1
        terms = np.fromiter(counts, dtype=np.int64, count=len(counts))
        where = self._find(terms, slot)
        if (where < 0).any():
            return None
        tfs = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
        # Every posting's tf is positive and they sum to the slot's length, as these do: the
        # terms found are all of the slot's terms.
        if not np.array_equal(self._ptfs[where].astype(np.int64), tfs):
            return None
        return terms

    def _base_terms(self, slot: int) -> IntArray:
        """``slot``'s term ids, found in the base postings (a slot out of the delta).

        Only the terms whose first and last posting enclose the slot are searched; those two
        slots per term are kept until the base changes (8 bytes per term).
        """
        spans = self._spans
        if spans is None or spans[0] is not self._pslots:
            indptr, pslots = self._indptr, self._pslots
            terms = np.flatnonzero(indptr[1:] > indptr[:-1])
            first, last = pslots[indptr[terms]], pslots[indptr[terms + 1] - 1]
            spans = (pslots, terms, first, last)
            self._spans = spans
        _, terms, first, last = spans
        inside = terms[(first <= slot) & (last >= slot)]
        return inside[self._find(inside, slot) >= 0]

    def _base_terms_pass(self, slots: IntArray) -> IntArray:
        """The term ids of many slots out of the delta, in one pass over the base postings."""
        mark = np.zeros(len(self._keys), dtype=np.bool_)
        mark[slots] = True
        at = np.flatnonzero(mark[self._pslots])
        terms: IntArray = np.searchsorted(self._indptr, at, side="right") - 1
        return terms

    def _compact(self) -> None:
        """Drop tombstoned slots and unused terms; renumber both (scores do not change)."""
        self._merge_delta()
        alive = self._alive.view
        new_slot = np.cumsum(alive, dtype=np.int64) - 1
        df = self._df.view
        live_term = df > 0
        new_term = np.cumsum(live_term, dtype=np.int64) - 1
        n_terms = int(live_term.sum())

        term_of = np.repeat(np.arange(len(self._indptr) - 1, dtype=np.int64), np.diff(self._indptr))
        keep = alive[self._pslots]
        term_of = new_term[term_of[keep]]
        self._pslots = new_slot[self._pslots[keep]].astype(np.int32)
        self._ptfs = self._ptfs[keep]
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_of, minlength=n_terms), out=indptr[1:])
        self._indptr = indptr

        if self._kept:  # rebound, not changed in place (state() compacts a shallow copy)
            self._kept = {
                int(new_slot[slot]): new_term[ids].astype(np.int32)
                for slot, ids in self._kept.items()
            }
        terms = list(self._vocab)
        self._vocab = {terms[i]: j for j, i in enumerate(np.flatnonzero(live_term).tolist())}
        self._df = _Buffer(df[live_term].copy())
        keys = self._keys.view[alive].copy()
        self._keys = _Buffer(keys)
        self._dl = _Buffer(self._dl.view[alive].copy())
        self._alive = _Buffer(np.ones(len(keys), dtype=np.bool_))
        self._slot_of = KeyRows()
        self._slot_of.assign(keys, np.arange(len(keys), dtype=np.int64))
        self._n_dead = 0
        self._version += 1

    def _postings(self, term: int) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        if term < len(self._indptr) - 1:
            lo, hi = int(self._indptr[term]), int(self._indptr[term + 1])
            if hi > lo:
                out.append((self._pslots[lo:hi], self._ptfs[lo:hi]))
        if term in self._delta:
            arrays = self._delta_arrays.get(term)
            if arrays is None:
                s, c = self._delta[term]
                arrays = (np.array(s, dtype=np.int32), np.array(c, dtype=np.int32))
                self._delta_arrays[term] = arrays
            out.append(arrays)
        return out

    def _dead_slots(self) -> IntArray:
        cache = self._dead_cache
        if cache is None or cache[0] != self._version:
            cache = (self._version, np.flatnonzero(~self._alive.view))
            self._dead_cache = cache
        return cache[1]

    def state(self) -> dict[str, np.ndarray]:
        """Every array needed to restore the index (no pickle), compacted; a pure read.

        Keys: ``keys`` (int64, per document), ``doc_len`` (int64), ``indptr`` (int64, per term
        + 1), ``post_docs`` (int32, document position of each posting), ``post_tf`` (int32),
        ``vocab`` (uint8, the terms' UTF-8 joined) and ``vocab_offsets`` (int64, per term + 1).

        The index itself is left as it is: a store saves under its *read* lock while searches
        run, so compacting here would renumber slots under their feet. A shallow copy is
        compacted instead (``_compact`` only rebinds attributes, never writes arrays in place).
        """
        if self._n_dead or self._delta or len(self._vocab) != len(self._indptr) - 1:
            snapshot = copy.copy(self)
            snapshot._compact()
            return snapshot.state()
        encoded = [t.encode("utf-8") for t in self._vocab]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return {
            "keys": self._keys.view.copy(),
            "doc_len": self._dl.view.copy(),
            "indptr": self._indptr.copy(),
            "post_docs": self._pslots.copy(),
            "post_tf": self._ptfs.copy(),
            "vocab": np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(),
            "vocab_offsets": offsets,
        }

    def _load(self, state: Mapping[str, np.ndarray]) -> None:
        def array(name: str, kind: str) -> np.ndarray:
            if name not in state:
                raise IndexFormatError(f"BM25 state is missing {name!r}")
            arr = np.asarray(state[name])
            if arr.ndim != 1 or arr.dtype.kind not in kind:
                raise IndexFormatError(f"BM25 state {name!r} has shape {arr.shape}/{arr.dtype}")
            return arr

        keys = array("keys", "iu").astype(np.int64)
        dl = array("doc_len", "iu").astype(np.int64)
        indptr = array("indptr", "iu").astype(np.int64)
        pdocs = array("post_docs", "iu").astype(np.int64)
        ptf = array("post_tf", "iu").astype(np.int64)
        vocab_bytes = array("vocab", "u")
        offsets = array("vocab_offsets", "iu").astype(np.int64)
        n_docs, n_terms, n_post = len(keys), len(indptr) - 1, len(pdocs)

        def check(ok: bool, what: str) -> None:
            if not ok:
                raise IndexFormatError(f"BM25 state is inconsistent: {what}")

        check(vocab_bytes.dtype == np.uint8, "vocab must be uint8")
        check(len(dl) == n_docs, "doc_len and keys differ in length")
        check(n_terms >= 0 and len(offsets) == n_terms + 1, "vocab_offsets and indptr disagree")
        check(len(ptf) == n_post, "post_docs and post_tf differ in length")
        check(bool(indptr[0] == 0 and indptr[-1] == n_post), "indptr does not span the postings")
        check(bool((np.diff(indptr) > 0).all()), "indptr has an empty or decreasing term")
        check(bool(offsets[0] == 0 and offsets[-1] == len(vocab_bytes)), "vocab_offsets span")
        check(bool((np.diff(offsets) >= 0).all()), "vocab_offsets decrease")
        distinct = first_repeated(keys) is None
        check(bool((keys >= 0).all()) and distinct and len(keys) == n_docs, "keys not unique >= 0")
        check(bool(n_post == 0 or (pdocs.min() >= 0 and pdocs.max() < n_docs)), "posting doc")
        check(bool((ptf > 0).all()), "a term frequency is not positive")
        # Within a term, document positions must strictly increase (no duplicate postings).
        steps = np.diff(pdocs) > 0
        if n_post > 1:
            steps[indptr[1:-1] - 1] = True
        check(bool(steps.all()), "a term's postings are not strictly increasing")
        check(
            bool(np.array_equal(np.bincount(pdocs, weights=ptf, minlength=n_docs), dl)),
            "doc_len does not equal the sum of its term frequencies",
        )
        raw = vocab_bytes.tobytes()
        cuts = offsets.tolist()  # Python ints slice bytes faster than numpy scalars
        try:
            terms = [raw[a:b].decode("utf-8") for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        except UnicodeDecodeError as exc:
            raise IndexFormatError(f"BM25 vocabulary is not UTF-8: {exc}") from exc
        vocab = {t: i for i, t in enumerate(terms)}
        check(len(vocab) == n_terms, "the vocabulary has repeated terms")

        self._vocab = vocab
        self._df = _Buffer(np.diff(indptr))
        self._keys = _Buffer(keys)
        self._dl = _Buffer(dl)
        self._alive = _Buffer(np.ones(n_docs, dtype=np.bool_))
        self._slot_of = KeyRows()
        self._slot_of.assign(keys, np.arange(n_docs, dtype=np.int64))
        self._n_docs = n_docs
        self._total_len = int(dl.sum())
        self._indptr = indptr
        self._pslots = pdocs.astype(np.int32)
        self._ptfs = ptf.astype(_tf_dtype(ptf))
        self._version += 1
