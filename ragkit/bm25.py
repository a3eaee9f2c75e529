"""Keyword search: an incremental in-memory BM25 index over integer keys.

:class:`BM25Index` maps caller-assigned non-negative int64 keys to analysed documents (text
analysis: :class:`ragkit.analyzer.Analyzer`, re-exported here) and answers top-k queries.
Documents can be added and removed at any time without a rebuild, and the scores after any
sequence of changes are bit-for-bit those of a fresh index built from the surviving documents:
the collection statistics (N, total length, document frequencies) are kept as exact integers and
every float is derived from them at query time.

The postings' layout and their changes live in ragkit._bm25_postings (a term-major CSR base, a
small delta for single-document adds, tombstones). A query scatter-adds each term's
contributions into a dense buffer indexed by slot, then selects the top k among the touched
slots. Each term's contributions are cached until the next change, so queries sharing terms with
earlier ones are cheaper. With numba installed (extra ``fast``) and at least
``_NUMBA_MIN_SLOTS`` slots, a kernel (ragkit._bm25_numba) replaces that scan: it never makes a
corpus-sized pass, skips the blocks of postings that cannot change the top k (block-max
MaxScore), and scores the surviving candidates exactly, with the same results bit for bit; for a
k large against the corpus (a hybrid search's depth) it reads every posting of the query's terms
once instead, since pruning would skip little.

This module leaves out chunk IDs, texts and files (ragkit's Index maps keys to chunks), persistence
to disk (``state()`` returns plain numpy arrays; the caller writes them) and fusion with vector
scores (ragkit.fusion).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

from ragkit._bm25_postings import FloatArray, IntArray, _Buffer, _Postings
from ragkit.analyzer import ENGLISH_STOPWORDS, Analyzer
from ragkit.errors import IndexFormatError

__all__ = [
    "ENGLISH_STOPWORDS",
    "Analyzer",
    "BM25Index",
    "Variant",
    "lucene_idf",
    "lucene_tf",
    "okapi_idf",
    "okapi_tf",
]

Variant = Literal["lucene", "okapi"]
"""The BM25 flavours :class:`BM25Index` implements."""


# Defaults per variant. Okapi's are rank_bm25.BM25Okapi's (its test oracle). Lucene's are
# Anserini's k1=0.9, b=0.4, chosen on SciFact *train* (809 queries) jointly with the hybrid fusion
# by bench/tune_fusion.py, because hybrid is what an Index searches by default: 0.9/0.4 with
# z-score fusion had the best train nDCG@10 (0.740) of all (k1, b, fusion) settings tried. For
# BM25 alone, bench/tune_bm25.py found k1=1.2, b=0.5 marginally better on train (0.697 vs
# 0.695); on test BM25 alone scores 0.685 with 0.9/0.4.
_DEFAULTS: dict[str, tuple[float, float]] = {"okapi": (1.5, 0.75), "lucene": (0.9, 0.4)}


# Query-term contributions are cached until the next change, up to this many postings.
_MIN_CACHE = 1 << 18
_CACHE_FRACTION = 8

_FORMAT = 1


class BM25Index(_Postings):
    """An in-memory BM25 index over caller-assigned integer keys, incremental and exact.

    Searches may run concurrently with each other, but not with :meth:`add` or :meth:`remove`
    (guard writes with a lock if you mix them across threads).

    Args:
        variant: ``"lucene"`` (default; idf never negative) or ``"okapi"`` (scores equal to
            ``rank_bm25.BM25Okapi``, including its epsilon floor for negative idf).
        k1: term-frequency saturation; ``None`` takes the variant's default.
        b: length normalisation; ``None`` takes the variant's default.
        epsilon: okapi only: terms in more than half the documents get
            ``epsilon * mean idf`` (rank_bm25's floor).
        analyzer: turns texts and queries into terms; ``Analyzer()`` by default.

    Example:
        >>> index = BM25Index()
        >>> index.add([10, 11, 12], ["cats purr", "dogs bark", "cats and dogs"])
        >>> index.search("cat", 5)[0].tolist()
        [10, 12]
    """

    def __init__(
        self,
        *,
        variant: Variant = "lucene",
        k1: float | None = None,
        b: float | None = None,
        epsilon: float = 0.25,
        analyzer: Analyzer | None = None,
    ) -> None:
        if variant not in _DEFAULTS:
            raise ValueError(f"variant ({variant!r}) must be one of: {', '.join(_DEFAULTS)}")
        dk1, db = _DEFAULTS[variant]
        self.variant: Variant = variant
        self.k1 = float(dk1 if k1 is None else k1)
        self.b = float(db if b is None else b)
        self.epsilon = float(epsilon)
        if not (math.isfinite(self.k1) and self.k1 >= 0):
            raise ValueError(f"k1 ({k1}) must be a finite number >= 0")
        if not (0.0 <= self.b <= 1.0):
            raise ValueError(f"b ({b}) must be between 0 and 1")
        if not math.isfinite(self.epsilon):
            raise ValueError(f"epsilon ({epsilon}) must be finite")
        self.analyzer = Analyzer() if analyzer is None else analyzer
        self._clear()

    # ------------------------------------------------------------------ sizes

    def __repr__(self) -> str:
        return (
            f"BM25Index(variant={self.variant!r}, k1={self.k1}, b={self.b}, "
            f"documents={self._n_docs}, terms={len(self._vocab)})"
        )

    # ------------------------------------------------------------------ adding

    def add(self, keys: Sequence[int] | np.ndarray, texts: Sequence[str]) -> None:
        """Analyse and add documents under new keys.

        Raises:
            ValueError: a key is negative, repeated, or already in the index, or the lengths differ.
            TypeError: ``texts`` is a single string.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        self.add_tokens(keys, [self.analyzer(t) for t in texts])

    # ------------------------------------------------------------------ removing

    # ------------------------------------------------------------------ scoring

    def _term_counts(self, tokens: Sequence[str]) -> dict[int, int]:
        """Term ID → repeats in the query, for the query's terms that some document holds."""
        df = self._df.view
        counts: dict[int, int] = {}
        for tok in tokens:
            tid = self._vocab.get(tok)
            if tid is not None and df[tid] > 0:
                counts[tid] = counts.get(tid, 0) + 1
        return counts

    def _norm(self) -> FloatArray:
        """Per-slot length normalisation ``k1 * (1 - b + b * dl / avgdl)``, cached per version."""
        cache = self._norm_cache
        if cache is not None and cache[0] == self._version:
            return cache[1]
        avgdl = self._total_len / self._n_docs
        # Same operation order as rank_bm25 so okapi scores agree to the last bits.
        norm: FloatArray = self.k1 * (1 - self.b + self.b * self._dl.view / avgdl)
        self._norm_cache = (self._version, norm)
        return norm

    def _length_codes(self) -> tuple[npt.NDArray[np.uint8], FloatArray]:
        """Per-slot length codes and, per code, a lower bound of the norm of its lengths.

        For the numba kernel's choice of candidates: a byte per slot to read instead of a float.
        A slot's length never changes, so codes are only computed for slots new since the last
        call (or all of them after a compaction or load replaced the lengths); the table follows
        the average length, which changes with every write.
        """
        dl = self._dl
        cache: tuple[object, Any, int, FloatArray] | None = getattr(self, "_codes_cache", None)
        if cache is None or cache[0] is not dl:
            codes = _Buffer(_length_code(dl.view))
        else:
            codes = cache[1]
            if len(codes) < len(dl):
                with _codes_lock:  # concurrent searches must not both append the new slots
                    if len(codes) < len(dl):
                        codes.extend(_length_code(dl.view[len(codes) :]))
        if cache is not None and cache[2] == self._version:
            table = cache[3]
        else:
            avgdl = self._total_len / self._n_docs
            # The norm's operations in _norm's order, at each code's shortest length.
            table = (self.k1 * (1 - self.b + self.b * _CODE_LENGTHS / avgdl)).astype(np.float64)
        self._codes_cache = (dl, codes, self._version, table)
        return codes.view, table

    def _average_idf(self) -> float:
        """Okapi's mean idf over the whole vocabulary (terms in at least one live document).

        The sum is grouped by document frequency and taken with ``math.fsum``, so it does not
        depend on term order: an index changed incrementally scores exactly like a fresh one.
        """
        cache = self._avg_idf_cache
        if cache is not None and cache[0] == self._version:
            return cache[1]
        df = self._df.view
        by_df = np.bincount(df[df > 0])
        values = np.flatnonzero(by_df)
        n = self._n_docs
        idf = _okapi_idf_array(values, n)
        average = math.fsum((by_df[values] * idf).tolist()) / max(1, int(by_df.sum()))
        self._avg_idf_cache = (self._version, average)
        return average

    def _idf(self, df: int) -> float:
        if self.variant == "okapi":
            idf = okapi_idf(df, self._n_docs)
            return self.epsilon * self._average_idf() if idf < 0 else idf
        return lucene_idf(df, self._n_docs)

    def _accumulate(self, tokens: Sequence[str]) -> tuple[FloatArray, bool] | None:
        """Dense per-slot scores for a query, or None when no live document can match.

        Returns ``(scores, exact_zero_means_no_match)``: the flag is true when every query
        term's contribution is positive, so a slot matched exactly when its score is > 0.
        Tombstoned slots score 0.
        """
        if isinstance(tokens, str):
            raise TypeError("tokens must be a sequence of strings, not one string")
        if self._n_docs == 0 or self._total_len == 0:
            return None
        df = self._df.view
        counts = self._term_counts(tokens)
        if not counts:
            return None
        norm = self._norm()
        scores = np.zeros(len(self._keys), dtype=np.float64)
        k1p1 = self.k1 + 1
        okapi = self.variant == "okapi"
        positive = True
        if self._contrib_version != self._version:
            self._contrib_cache.clear()
            self._contrib_size = 0
            self._contrib_version = self._version
        cache = self._contrib_cache
        limit = max(_MIN_CACHE, len(self._pslots) // _CACHE_FRACTION)
        for tid, count in counts.items():
            parts = cache.get(tid)
            if parts is None:
                idf = self._idf(int(df[tid]))
                parts = []
                for slots, tfs in self._postings(tid):
                    # In place, but the same operations in the same order as okapi_tf and
                    # lucene_tf (so identical roundings): idf * (tf [* (k1 + 1)] / (tf + norm)).
                    tf = tfs.astype(np.float64)
                    contrib = norm[slots]
                    contrib += tf
                    np.divide(tf * k1p1 if okapi else tf, contrib, out=contrib)
                    contrib *= idf
                    parts.append((slots, contrib, idf))
                size = sum(len(p[0]) for p in parts)
                if self._contrib_size + size <= limit:
                    cache[tid] = parts
                    self._contrib_size += size
            for slots, contrib, idf in parts:
                positive = positive and idf > 0
                # A repeated query term adds again, as rank_bm25 iterates over the query tokens.
                # np.add.at is faster than fancy-index += in numpy 2 (slots are unique anyway).
                for _ in range(count):
                    np.add.at(scores, slots, contrib)
        if self._n_dead:
            scores[self._dead_slots()] = 0.0
        return scores, positive

    def _search_pruned(
        self, kernel: Any, tokens: Sequence[str], k: int, allowed: npt.NDArray[np.bool_] | None
    ) -> tuple[IntArray, FloatArray] | None:
        """The top ``k`` keys and scores from the numba kernel, ties at the ``k``-th included;
        None to take the numpy path.

        The kernel reads only the query's posting lists (no corpus-sized pass), skips the blocks
        of them that cannot change the top ``k`` (ragkit._bm25_numba) and sorts the result by
        (score descending, key ascending). It needs every term's contribution to be positive;
        otherwise (okapi's negative idf) this returns None.
        """
        if isinstance(tokens, str):
            raise TypeError("tokens must be a sequence of strings, not one string")
        n_docs = self._n_docs
        if n_docs == 0 or self._total_len == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        vocab = self._vocab
        counts: dict[int, int] = {}
        for tok in tokens:
            tid = vocab.get(tok)
            if tid is not None:
                counts[tid] = counts.get(tid, 0) + 1
        # Per term in query order; terms of removed documents only are dropped (as _term_counts).
        df = self._df.view
        tid_list: list[int] = []
        count_list: list[int] = []
        idfs: list[float] = []
        okapi = self.variant == "okapi"
        log = math.log
        for tid, c in counts.items():
            d = int(df[tid])
            if d:
                tid_list.append(tid)
                count_list.append(c)
                if okapi:
                    idfs.append(self._idf(d))
                else:  # lucene_idf, inlined: a query has few terms but every call counts here
                    idfs.append(log(1 + (n_docs - d + 0.5) / (d + 0.5)))
        if not tid_list:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        if okapi and min(idfs) <= 0:
            return None
        k1p1 = self.k1 + 1
        tids = np.array(tid_list, dtype=np.int64)
        count = np.array(count_list, dtype=np.int64)
        idf = np.array(idfs, dtype=np.float64)
        dslots, dtfs, d_lo, d_hi = _EMPTY_I32, _EMPTY_I32, _EMPTY_I64, _EMPTY_I64
        delta = self._delta
        if delta:
            d_parts: list[tuple[np.ndarray, np.ndarray]] = []
            d_size = 0
            d_lo = np.zeros(len(tid_list), dtype=np.int64)
            d_hi = np.zeros(len(tid_list), dtype=np.int64)
            for j, tid in enumerate(tid_list):
                if tid in delta:
                    part = self._postings(tid)[-1]
                    d_parts.append(part)
                    d_lo[j], d_hi[j] = d_size, d_size + len(part[0])
                    d_size += len(part[0])
            if d_parts:
                dslots = np.concatenate([p[0] for p in d_parts]).astype(np.int32, copy=False)
                dtfs = np.concatenate([p[1] for p in d_parts]).astype(np.int32, copy=False)
        ok = self._alive.view
        if allowed is not None:
            keys = self._keys.view
            slot_ok = np.zeros(len(keys), dtype=np.bool_)
            inside = keys < len(allowed)
            slot_ok[inside] = allowed[keys[inside]]
            ok = ok & slot_ok
        elif not self._n_dead:
            ok = _EMPTY_BOOL  # every slot may be returned: the kernel skips the check
        if k * _EXHAUSTIVE_RATIO >= n_docs:
            # A k this large (a hybrid search's depth) keeps the k-th score low, so pruning
            # skips little: reading every posting once is cheaper (same scores bit for bit).
            return kernel.all_candidates(  # type: ignore[no-any-return]
                self._pslots, self._ptfs, self._indptr, tids, dslots, dtfs, d_lo, d_hi, idf,
                count, self._norm(), ok, okapi, k1p1, k, self._keys.view, _WINDOW,
            )  # fmt: skip
        acc, touched = _scratch(len(self._keys))
        bptr, blast, bmax, avgdl0 = self._blocks(kernel)
        # A block's bound was taken at avgdl0; with avgdl now larger, norms shrink by at most
        # avgdl0 / avgdl (ragkit._bm25_numba's docstring).
        factor = max(1.0, (self._total_len / n_docs) / avgdl0) if self.b > 0 else 1.0
        return kernel.top_candidates(  # type: ignore[no-any-return]
            self._pslots, self._ptfs, self._indptr, bptr, blast, bmax, tids, count, idf, factor,
            dslots, dtfs, d_lo, d_hi, self._norm(), *self._length_codes(), ok, okapi, k1p1, k,
            self._keys.view, acc, touched, _WINDOW, _LOOKUP_COST,
        )  # fmt: skip

    def _blocks(self, kernel: Any) -> tuple[IntArray, np.ndarray, FloatArray, float]:
        """Per-block bounds of the base postings (ragkit._bm25_numba), rebuilt when they change.

        Built lazily by the first search after a merge or compaction (one pass over the
        postings), so adds and removes stay cheap; the tuple is replaced whole, so concurrent
        searches that both build it are harmless.
        """
        blocks = self._block_cache
        if blocks is None or blocks[0] is not self._pslots:
            avgdl = self._total_len / self._n_docs
            bptr, blast, bmax = kernel.block_maxima(
                self._indptr, self._pslots, self._ptfs, self._norm()
            )
            blocks = (self._pslots, bptr, blast, bmax, avgdl)
            self._block_cache = blocks
        return blocks[1], blocks[2], blocks[3], blocks[4]

    def _matched(self, tokens: Sequence[str]) -> npt.NDArray[np.bool_]:
        """Which slots contain a query term (the slow path, for non-positive contributions)."""
        hits = np.zeros(len(self._keys), dtype=np.bool_)
        df = self._df.view
        for tok in tokens:
            tid = self._vocab.get(tok)
            if tid is not None and df[tid] > 0:
                for slots, _ in self._postings(tid):
                    hits[slots] = True
        hits &= self._alive.view
        return hits

    def search(self, query: str, k: int) -> tuple[IntArray, FloatArray]:
        """The top ``k`` documents for a text query, analysed like the documents.

        Returns:
            ``(keys, scores)``: int64 keys and float64 scores, best first, ties by key ascending;
            only documents containing at least one query term, so possibly fewer than ``k``.

        Raises:
            ValueError: ``k`` is less than 1.
        """
        return self.search_tokens(self.analyzer(query), k)

    def search_tokens(
        self,
        tokens: Sequence[str],
        k: int,
        *,
        allowed: npt.NDArray[np.bool_] | None = None,
        with_ties: bool = False,
    ) -> tuple[IntArray, FloatArray]:
        """Like :meth:`search` for already-analysed query terms (no analyzer is applied).

        Args:
            tokens: the analysed query terms.
            k: how many results at most.
            allowed: a filter applied before the top ``k``: ``allowed[key]`` is true for the
                keys that may be returned (keys beyond its length may not).
            with_ties: also return every key tied with the ``k``-th score (more than ``k``
                results), so a caller can break ties by its own order.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k ({k!r}) must be an int")
        if k < 1:
            raise ValueError(f"k ({k}) must be at least 1")
        if len(self._keys) >= _NUMBA_MIN_SLOTS:
            kernel = _numba_kernel()
            if kernel is not None:
                found = self._search_pruned(kernel, tokens, int(k), allowed)
                if found is not None:
                    return found if with_ties else (found[0][:k], found[1][:k])
        acc = self._accumulate(tokens)
        if acc is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        scores, positive = acc
        slot_ok: npt.NDArray[np.bool_] | None = None
        if allowed is not None:
            keys = self._keys.view
            slot_ok = np.zeros(len(keys), dtype=np.bool_)
            inside = keys < len(allowed)
            slot_ok[inside] = allowed[keys[inside]]
            if positive:
                scores = np.where(slot_ok, scores, 0.0)
        if not positive:
            matched = self._matched(tokens)
            if slot_ok is not None:
                matched &= slot_ok
            cand = np.flatnonzero(matched)
        else:
            # A lower bound on the k-th best score: the k-th largest of per-block maxima (each
            # is a distinct document's score). Cheaper than partitioning every match.
            bound = 0.0
            block = 64
            n_full = len(scores) // block * block
            if n_full // block > k:
                maxima = scores[:n_full].reshape(-1, block).max(axis=1)
                bound = float(np.partition(maxima, len(maxima) - k)[len(maxima) - k])
            cand = np.flatnonzero(scores >= bound) if bound > 0 else np.flatnonzero(scores > 0)
        return self._select(cand, scores[cand], k, with_ties)

    def _select(
        self, cand: np.ndarray, cand_scores: FloatArray, k: int, with_ties: bool
    ) -> tuple[IntArray, FloatArray]:
        """The best ``k`` of candidate slots by (score desc, key asc), with ties if asked."""
        if len(cand) > k:
            # Everything scoring at least the k-th best, ties at the boundary included, then
            # an exact (score desc, key asc) sort of that small set.
            kth = np.partition(cand_scores, len(cand) - k)[len(cand) - k]
            sel = cand_scores >= kth
            cand, cand_scores = cand[sel], cand_scores[sel]
        cand_keys = self._keys.view[cand]
        order = np.lexsort((cand_keys, -cand_scores))
        if not with_ties:
            order = order[:k]
        return cand_keys[order], cand_scores[order]

    def document_frequencies(self, terms: Sequence[str]) -> list[int]:
        """How many live documents contain each analysed term (0 for unknown terms).

        Example:
            >>> index = BM25Index(analyzer=Analyzer(stemmer=None, stopwords=None))
            >>> index.add([0, 1, 2], ["cat", "cat dog", "fish"])
            >>> index.document_frequencies(["cat", "bird"])
            [2, 0]
        """
        df = self._df.view
        out = []
        for term in terms:
            term_id = self._vocab.get(term)
            out.append(int(df[term_id]) if term_id is not None and term_id < len(df) else 0)
        return out

    def get_scores(self, tokens: Sequence[str], keys: Sequence[int] | np.ndarray) -> FloatArray:
        """The score of each given key for analysed query terms (0 where no term matches).

        Raises:
            KeyError: a key is not in the index.
        """
        slots = np.array([self._slot_of[int(k)] for k in np.asarray(keys).tolist()], np.int64)
        acc = self._accumulate(tokens)
        if acc is None:
            return np.zeros(len(slots), dtype=np.float64)
        out: FloatArray = acc[0][slots]
        return out

    # ------------------------------------------------------------------ persistence

    def config(self) -> dict[str, object]:
        """The scoring parameters and analyzer, JSON-serialisable, for :meth:`from_state`."""
        return {
            "format": _FORMAT,
            "variant": self.variant,
            "k1": self.k1,
            "b": self.b,
            "epsilon": self.epsilon,
            "analyzer": self.analyzer.config(),
        }

    @classmethod
    def from_state(cls, config: Mapping[str, object], state: Mapping[str, np.ndarray]) -> BM25Index:
        """Rebuild an index from :meth:`config` and :meth:`state` output.

        Raises:
            IndexFormatError: the config or arrays are missing, of another format, or inconsistent.
        """
        try:
            if config.get("format") != _FORMAT:
                raise IndexFormatError(
                    f"BM25 format {config.get('format')!r} is not supported (expected {_FORMAT})"
                )
            analyzer = Analyzer.from_config(cast(Mapping[str, object], config["analyzer"]))
            index = cls(
                variant=cast(Variant, config["variant"]),
                k1=cast(float, config["k1"]),
                b=cast(float, config["b"]),
                epsilon=cast(float, config["epsilon"]),
                analyzer=analyzer,
            )
        except IndexFormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IndexFormatError(f"invalid BM25 config: {exc}") from exc
        index._load(state)
        return index


# ---------------------------------------------------------------------- the numba kernel

# Below this many slots the numpy path takes well under a millisecond, and importing numba for
# the kernel would cost more than it saves in a short-lived process (tests lower it to 0).
_NUMBA_MIN_SLOTS = 20_000
# The kernel's window of document slots, and when it looks candidates up in a posting list
# rather than reading the list's postings in the window (ragkit._bm25_numba): tuned on SciFact
# claims at 100k and 1M slots by bench/bench_bm25.py.
_WINDOW = 4096
_LOOKUP_COST = 16
# Pruning pays while k is below about 1/600 of the live documents; from there on the kernel reads
# every posting of the query's terms (bench/bench_bm25_depth.py measures where).
_EXHAUSTIVE_RATIO = 600
_use_numba = True  # tests switch this off to exercise the numpy path
_kernel: Any = None  # the kernel once loaded, False when numba is missing or broken
_scratch_local = threading.local()
_codes_lock = threading.Lock()
_EMPTY_I32: npt.NDArray[np.int32] = np.zeros(0, dtype=np.int32)
_EMPTY_I64: IntArray = np.zeros(0, dtype=np.int64)
_EMPTY_BOOL: npt.NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)
# Length codes (one byte per document, for the kernel's choice of candidates): code c stands for
# lengths from _CODE_LENGTHS[c] up to the next entry; exact below 160 terms, then 3 % apart.
_CODE_LENGTHS: IntArray = np.concatenate(
    (np.arange(160), np.floor(160 * 1.03 ** np.arange(1, 97)).astype(np.int64))
)


def _length_code(dl: np.ndarray) -> npt.NDArray[np.uint8]:
    """Each length's code: the last entry of _CODE_LENGTHS at most that length."""
    codes: npt.NDArray[np.uint8] = (np.searchsorted(_CODE_LENGTHS, dl, side="right") - 1).astype(
        np.uint8
    )
    return codes


def _numba_kernel() -> Any:
    """The module ragkit._bm25_numba when numba works here (extra ``fast``), else None."""
    global _kernel
    if not _use_numba:
        return None
    if _kernel is None:
        try:
            from ragkit import _bm25_numba

            # Compile (or load numba's cache) now, so a broken numba falls back to numpy.
            for tf_dtype in (np.uint16, np.int32):
                i32, i64 = np.zeros(1, np.int32), np.zeros(1, np.int64)
                tfs = np.ones(1, tf_dtype)
                indptr = np.arange(2, dtype=np.int64)
                _, blast, bmax = _bm25_numba.block_maxima(indptr, i32, tfs, np.ones(1))
                keys = np.zeros(1, np.int64)
                _bm25_numba.top_candidates(
                    i32, tfs, indptr, indptr, blast, bmax, i64, i64 + 1, np.ones(1), 1.0,
                    i32, i32, i64, i64, np.ones(1), np.zeros(1, np.uint8), np.ones(256),
                    np.ones(1, np.bool_),
                    False, 2.0, 1, keys, np.zeros(1), np.zeros(1, np.int32), _WINDOW, _LOOKUP_COST,
                )  # fmt: skip
                _bm25_numba.all_candidates(
                    i32, tfs, indptr, i64, i32, i32, i64, i64, np.ones(1), i64 + 1,
                    np.ones(1), np.ones(1, np.bool_), False, 2.0, 1, keys, _WINDOW,
                )  # fmt: skip
            _kernel = _bm25_numba
        except Exception:  # ImportError, or numba failing to compile on this machine
            _kernel = False
    return _kernel or None


def _scratch(n_slots: int) -> tuple[FloatArray, npt.NDArray[np.int32]]:
    """This thread's zeroed accumulator and touched-slot list, of at least ``n_slots`` entries
    (the list one more)."""
    acc: FloatArray | None = getattr(_scratch_local, "acc", None)
    if acc is None or len(acc) < n_slots:
        size = max(n_slots, len(acc) * 5 // 4 if acc is not None else 0)
        acc = np.zeros(size, dtype=np.float64)
        _scratch_local.acc = acc
        # One spare entry: the kernels may write one past the last touched slot.
        _scratch_local.touched = np.zeros(size + 1, dtype=np.int32)
    touched: npt.NDArray[np.int32] = _scratch_local.touched
    return acc, touched


# ---------------------------------------------------------------------- scoring functions
# Pure functions of (tf, df, N, dl, avgdl); the index combines them as idf(df, N) * tf-part.


def okapi_idf(df: int, n_docs: int) -> float:
    """Robertson-Sparck Jones idf ``log(N - df + 0.5) - log(df + 0.5)``; negative above N/2.

    Source: Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond"
    (2009), eq. 3.3, as written in rank_bm25 0.2.2 ``BM25Okapi._calc_idf`` (whose epsilon floor
    for negative values the index applies on top).
    """
    return math.log(n_docs - df + 0.5) - math.log(df + 0.5)


def _okapi_idf_array(df: np.ndarray, n_docs: int) -> FloatArray:
    out: FloatArray = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
    return out


def okapi_tf(tf: FloatArray, norm: FloatArray, k1_plus_1: float) -> FloatArray:
    """Okapi saturation ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))``.

    ``norm`` is the precomputed ``k1 * (1 - b + b * dl / avgdl)``. Source: Robertson et al.,
    "Okapi at TREC-3" (1994); operation order as in rank_bm25 0.2.2 ``BM25Okapi.get_scores``.
    """
    out: FloatArray = tf * k1_plus_1 / (tf + norm)
    return out


def lucene_idf(df: int, n_docs: int) -> float:
    """Lucene's idf ``log(1 + (N - df + 0.5) / (df + 0.5))``, never negative.

    Source: Lucene ``BM25Similarity.idf``; Kamphuis et al., "Which BM25 Do You Mean? A
    Large-Scale Reproducibility Study of Scoring Variants" (ECIR 2020), table 1.
    """
    return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))


def lucene_tf(tf: FloatArray, norm: FloatArray) -> FloatArray:
    """Lucene's saturation ``tf / (tf + k1 * (1 - b + b * dl / avgdl))`` without ``(k1 + 1)``.

    Lucene 8 dropped the constant ``(k1 + 1)`` numerator factor (it does not change rankings).
    Source: Lucene ``BM25Similarity`` (LUCENE-8563); Kamphuis et al. (ECIR 2020). Document
    lengths are exact here, not Lucene's lossy one-byte norms (as in bm25s).
    """
    out: FloatArray = tf / (tf + norm)
    return out
