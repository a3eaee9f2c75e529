"""Keyword search: text analysis and an incremental in-memory BM25 index over integer keys.

:class:`Analyzer` turns text into terms (lowercase, ``\\w+`` tokens, Lucene's English stopwords,
Snowball stemming via PyStemmer). :class:`BM25Index` maps caller-assigned non-negative int64 keys
to analysed documents and answers top-k queries. Documents can be added and removed at any time
without a rebuild, and the scores after any sequence of changes are bit-for-bit those of a fresh
index built from the surviving documents: the collection statistics (N, total length, document
frequencies) are kept as exact integers and every float is derived from them at query time.

Layout (Lucene-like): a term-major CSR "base" of postings (document slot, term frequency), a
small per-term "delta" that single-document adds append to, merged into the base once it grows
past a fraction of it, and tombstones for removed documents, dropped by a compaction once they
are a quarter of the slots. A query scatter-adds each term's contributions into a dense buffer
indexed by slot, then selects the top k among the touched slots. Each term's contributions are
cached until the next change, so queries sharing terms with earlier ones are cheaper. With numba
installed (extra ``fast``) and at least ``_NUMBA_MIN_SLOTS`` slots, a kernel
(ragkit._bm25_numba) replaces that scan: it touches only the documents in the posting lists it
reads, skips the long lists that cannot change the top k (MaxScore), and scores the surviving
candidates exactly, with the same results bit for bit.

This module leaves out chunk IDs, texts and files (ragkit's Index maps keys to chunks), persistence
to disk (``state()`` returns plain numpy arrays; the caller writes them) and fusion with vector
scores (ragkit.fusion).
"""

from __future__ import annotations

import copy
import math
import re
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import chain
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import Stemmer

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

# Lucene's EnglishAnalyzer default stop set (the 33 words of Anserini's default analyzer).
ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)

_TOKEN = re.compile(r"\w+")
_CACHE_LIMIT = 1 << 20

# Defaults per variant. Okapi's are rank_bm25.BM25Okapi's (its test oracle). Lucene's are
# Anserini's k1=0.9, b=0.4, chosen on SciFact *train* (809 queries) jointly with the hybrid fusion
# by bench/tune_fusion.py, because hybrid is what an Index searches by default: 0.9/0.4 with
# z-score fusion had the best train nDCG@10 (0.740) of all (k1, b, fusion) settings tried. For
# BM25 alone, bench/tune_bm25.py found k1=1.2, b=0.5 marginally better on train (0.697 vs
# 0.695); on test BM25 alone scores 0.685 with 0.9/0.4.
_DEFAULTS: dict[str, tuple[float, float]] = {"okapi": (1.5, 0.75), "lucene": (0.9, 0.4)}

# The delta is merged into the base when it holds more postings than this floor or than
# 1/_MERGE_FRACTION of the base: small enough to keep queries on the delta cheap, large enough to
# amortise the O(postings) merge over thousands of single-document adds.
_MIN_MERGE = 1 << 16
_MERGE_FRACTION = 16
# Tombstoned slots are compacted away once they are this fraction of all slots.
_COMPACT_FRACTION = 0.25
_MIN_COMPACT = 1024

# Query-term contributions are cached until the next change, up to this many postings.
_MIN_CACHE = 1 << 18
_CACHE_FRACTION = 8

_FORMAT = 1

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class Analyzer:
    """Text to terms: lowercase, ``\\w+`` tokens, stopwords removed, Snowball-stemmed.

    Stopwords are removed before stemming (as Lucene does), and compared after lowercasing when
    ``lowercase`` is on. Digits are kept as tokens. The same analyzer must be used for documents
    and queries; :class:`BM25Index` does that for you.

    Args:
        lowercase: lowercase the text before tokenising.
        stopwords: ``"english"`` (Lucene's 33-word list), ``None`` for none, or your own words.
        stemmer: a PyStemmer algorithm name (``Stemmer.algorithms()``) or ``None`` for none.
        min_token_len: drop tokens shorter than this many characters (before stemming).

    Example:
        >>> Analyzer()("The cats are running")
        ['cat', 'run']
    """

    def __init__(
        self,
        *,
        lowercase: bool = True,
        stopwords: str | Collection[str] | None = "english",
        stemmer: str | None = "english",
        min_token_len: int = 1,
    ) -> None:
        if isinstance(stopwords, str):
            if stopwords != "english":
                raise ValueError(
                    f"stopwords ({stopwords!r}) must be 'english', None or a collection of words"
                )
            stop: frozenset[str] = ENGLISH_STOPWORDS
        elif stopwords is None:
            stop = frozenset()
        else:
            words = list(stopwords)
            if not all(isinstance(w, str) for w in words):
                raise TypeError("stopwords must contain only strings")
            stop = frozenset(w.lower() for w in words) if lowercase else frozenset(words)
        if stemmer is not None and stemmer not in Stemmer.algorithms():
            choices = ", ".join(sorted(Stemmer.algorithms()))
            raise ValueError(f"stemmer ({stemmer!r}) must be None or one of: {choices}")
        if isinstance(min_token_len, bool) or not isinstance(min_token_len, int):
            raise TypeError(f"min_token_len ({min_token_len!r}) must be an int")
        if min_token_len < 1:
            raise ValueError(f"min_token_len ({min_token_len}) must be at least 1")
        self._lowercase = bool(lowercase)
        self._stopwords_spec: str | None | list[str] = (
            stopwords if stopwords is None or isinstance(stopwords, str) else sorted(stop)
        )
        self._stop = stop
        self._stemmer_name = stemmer
        self._min_len = min_token_len
        # PyStemmer objects are not thread-safe: one per thread.
        self._local = threading.local()
        # token -> term ("" when dropped): a dict lookup is ~3x cheaper than stemming each token.
        self._cache: dict[str, str] = {}

    def _stemmer(self) -> Any:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = Stemmer.Stemmer(self._stemmer_name)
            self._local.stemmer = stemmer
        return stemmer

    def __call__(self, text: str) -> list[str]:
        """Analyse one text into its list of terms, in order, repeats kept."""
        if self._lowercase:
            text = text.lower()
        tokens: list[str] = _TOKEN.findall(text)
        cache = self._cache
        try:
            # One pass: each distinct token maps to its term, or to "" when it is dropped.
            return [term for term in map(cache.__getitem__, tokens) if term]
        except KeyError:
            # Looked up in this call's own map: another thread may clear the shared cache.
            terms = self._fill(tokens)
            return [term for term in map(terms.__getitem__, tokens) if term]

    def _fill(self, tokens: list[str]) -> dict[str, str]:
        """Each distinct token's term ("" when dropped), also stored in the shared cache."""
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        distinct = set(tokens)
        terms: dict[str, str] = {}
        missing: list[str] = []
        for token in distinct:
            term = cache.get(token)
            if term is None:
                missing.append(token)
            else:
                terms[token] = term
        kept = [t for t in missing if len(t) >= self._min_len and t not in self._stop]
        found = dict.fromkeys(missing, "")
        stems = self._stemmer().stemWords(kept) if self._stemmer_name is not None else kept
        found.update(zip(kept, stems, strict=True))
        cache.update(found)
        terms.update(found)
        return terms

    def config(self) -> dict[str, object]:
        """The constructor arguments, JSON-serialisable; :meth:`from_config` inverts it."""
        stopwords = self._stopwords_spec
        return {
            "lowercase": self._lowercase,
            "stopwords": list(stopwords) if isinstance(stopwords, list) else stopwords,
            "stemmer": self._stemmer_name,
            "min_token_len": self._min_len,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> Analyzer:
        """Rebuild an analyzer from :meth:`config` output.

        Raises:
            ValueError: on unknown keys or invalid values.
        """
        unknown = set(config) - {"lowercase", "stopwords", "stemmer", "min_token_len"}
        if unknown:
            raise ValueError(f"unknown analyzer config keys: {sorted(unknown)}")
        return cls(**cast(dict[str, Any], dict(config)))

    def __reduce__(self) -> tuple[Any, tuple[dict[str, object]]]:
        # Picklable by configuration (the per-thread stemmers and the cache are rebuilt).
        return (Analyzer.from_config, (self.config(),))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Analyzer):
            return NotImplemented
        return self.config() == other.config()

    def __hash__(self) -> int:
        return hash(repr(self.config()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"Analyzer({args})"


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
        if len(slots):
            terms = np.repeat(np.arange(n_terms, dtype=np.int64), c)
            dest = offset[terms] + (
                np.arange(len(slots), dtype=np.int64) - indptr[:-1].astype(np.int64)[terms]
            )
            out_slots[dest] = slots
            out_tfs[dest] = tfs
        offset += c
    return new_indptr, out_slots, out_tfs


class BM25Index:
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

    def _clear(self) -> None:
        self._vocab: dict[str, int] = {}
        self._df = _Buffer(np.zeros(0, dtype=np.int64))
        # Per slot (a slot is a position in insertion order; removed slots are tombstones).
        self._keys = _Buffer(np.zeros(0, dtype=np.int64))
        self._dl = _Buffer(np.zeros(0, dtype=np.int64))
        self._alive = _Buffer(np.zeros(0, dtype=np.bool_))
        self._slot_of: dict[int, int] = {}
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
        # Forward index (term ids per slot), for removal; derived lazily from the postings.
        self._fwd_ptr: _Buffer | None = _Buffer(np.zeros(1, dtype=np.int64))
        self._fwd_terms: _Buffer | None = _Buffer(np.zeros(0, dtype=np.int32))
        self._version = 0
        self._norm_cache: tuple[int, FloatArray] | None = None
        self._avg_idf_cache: tuple[int, float] | None = None
        self._dead_cache: tuple[int, IntArray] | None = None
        self._block_cache: tuple[np.ndarray, IntArray, np.ndarray, FloatArray, float] | None = None
        # Per-term contributions of recent queries, valid for one version of the index.
        self._contrib_cache: dict[int, list[tuple[np.ndarray, FloatArray, float]]] = {}
        self._contrib_size = 0
        self._contrib_version = -1

    # ------------------------------------------------------------------ sizes

    def __len__(self) -> int:
        return self._n_docs

    def __contains__(self, key: object) -> bool:
        return key in self._slot_of

    def __repr__(self) -> str:
        return (
            f"BM25Index(variant={self.variant!r}, k1={self.k1}, b={self.b}, "
            f"documents={self._n_docs}, terms={len(self._vocab)})"
        )

    def memory_bytes(self) -> int:
        """Bytes held by postings, per-document arrays and the vocabulary's text (estimate).

        Counts numpy buffers at their capacity, the delta at 16 bytes per posting and the
        vocabulary as UTF-8 plus 8 bytes per term. Left out: Python dict overheads and the
        query-term cache (at most an eighth of the postings, as float64 contributions).
        """
        arrays: list[np.ndarray] = [self._indptr, self._pslots, self._ptfs]
        for buf in (self._df, self._keys, self._dl, self._alive, self._fwd_ptr, self._fwd_terms):
            if buf is not None:
                arrays.append(buf._data)
        vocab = sum(len(t.encode("utf-8")) + 8 for t in self._vocab)
        return sum(a.nbytes for a in arrays) + 16 * self._delta_size + vocab

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

    def add_tokens(
        self, keys: Sequence[int] | np.ndarray, token_lists: Sequence[Sequence[str]]
    ) -> None:
        """Add already-analysed documents under new keys (no analyzer is applied).

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
        self._slot_of.update(zip(key_arr.tolist(), range(slot0, slot0 + len(key_arr)), strict=True))
        self._n_docs += len(key_arr)
        self._total_len += int(lengths.sum())
        if self._fwd_ptr is not None and self._fwd_terms is not None:
            self._fwd_terms.extend(pair_term32)
            per_doc = np.bincount(pair_doc, minlength=len(key_arr))
            self._fwd_ptr.extend(self._fwd_ptr.view[-1] + np.cumsum(per_doc))

        slots = (pair_doc + slot0).astype(np.int32)
        if len(pair) + self._delta_size >= self._merge_threshold():
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
        if len(np.unique(key_arr)) != len(key_arr):
            uniq, counts = np.unique(key_arr, return_counts=True)
            raise ValueError(f"key {int(uniq[counts > 1][0])} is repeated in keys")
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
        self._delta = {}
        self._delta_arrays = {}
        self._delta_size = 0

    # ------------------------------------------------------------------ removing

    def remove(self, keys: Iterable[int]) -> None:
        """Remove documents by key; removing no keys is fine.

        Raises:
            KeyError: a key is not in the index (nothing is removed then).
        """
        wanted = list(dict.fromkeys(int(k) for k in keys))
        for key in wanted:
            if key not in self._slot_of:
                raise KeyError(key)
        if not wanted:
            return
        fwd_ptr, fwd_terms = self._forward()
        slots = np.array([self._slot_of.pop(k) for k in wanted], dtype=np.int64)
        starts, ends = fwd_ptr[slots], fwd_ptr[slots + 1]
        if len(slots) == 1:
            terms = fwd_terms[int(starts[0]) : int(ends[0])]
        else:
            terms = np.concatenate(
                [fwd_terms[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
            )
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

    def _forward(self) -> tuple[IntArray, np.ndarray]:
        """The forward index (term ids of each slot), derived from the postings if needed."""
        if self._fwd_ptr is None or self._fwd_terms is None:
            self._merge_delta()
            n_slots = len(self._keys)
            terms = np.repeat(
                np.arange(len(self._indptr) - 1, dtype=np.int32), np.diff(self._indptr)
            )
            order = np.argsort(self._pslots, kind="stable")
            ptr = np.zeros(n_slots + 1, dtype=np.int64)
            np.cumsum(np.bincount(self._pslots, minlength=n_slots), out=ptr[1:])
            self._fwd_ptr = _Buffer(ptr)
            self._fwd_terms = _Buffer(terms[order])
        return self._fwd_ptr.view, self._fwd_terms.view

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

        if self._fwd_ptr is not None and self._fwd_terms is not None:
            ptr = self._fwd_ptr.view
            sizes = np.diff(ptr)
            owner_alive = np.repeat(alive, sizes)
            fwd_terms = new_term[self._fwd_terms.view[owner_alive]].astype(np.int32)
            fwd_ptr = np.zeros(int(alive.sum()) + 1, dtype=np.int64)
            np.cumsum(sizes[alive], out=fwd_ptr[1:])
            self._fwd_ptr, self._fwd_terms = _Buffer(fwd_ptr), _Buffer(fwd_terms)

        terms = list(self._vocab)
        self._vocab = {terms[i]: j for j, i in enumerate(np.flatnonzero(live_term).tolist())}
        self._df = _Buffer(df[live_term].copy())
        keys = self._keys.view[alive].copy()
        self._keys = _Buffer(keys)
        self._dl = _Buffer(self._dl.view[alive].copy())
        self._alive = _Buffer(np.ones(len(keys), dtype=np.bool_))
        self._slot_of = dict(zip(keys.tolist(), range(len(keys)), strict=True))
        self._n_dead = 0
        self._version += 1

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
    ) -> tuple[np.ndarray, FloatArray] | None:
        """Candidate slots and exact scores from the numba kernel; None to take the numpy path.

        The kernel reads only the query's posting lists (no corpus-sized pass) and skips the
        longest ones when they cannot change the top ``k`` (ragkit._bm25_numba). It needs every
        term's contribution to be positive; otherwise (okapi's negative idf) this returns None.
        """
        if isinstance(tokens, str):
            raise TypeError("tokens must be a sequence of strings, not one string")
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))
        if self._n_docs == 0 or self._total_len == 0:
            return empty
        df = self._df.view
        counts = self._term_counts(tokens)
        if not counts:
            return empty
        idf = np.array([self._idf(int(df[tid])) for tid in counts], dtype=np.float64)
        if not (idf > 0).all():
            return None
        n_terms = len(counts)
        indptr, n_base, delta = self._indptr, len(self._indptr) - 1, self._delta
        lo = [int(indptr[tid]) if tid < n_base else 0 for tid in counts]
        hi = [int(indptr[tid + 1]) if tid < n_base else 0 for tid in counts]
        d_lo = [0] * n_terms
        d_hi = [0] * n_terms
        d_parts: list[tuple[np.ndarray, np.ndarray]] = []
        d_size = 0
        if delta:
            for j, tid in enumerate(counts):
                if tid in delta:
                    part = self._postings(tid)[-1]
                    d_parts.append(part)
                    d_lo[j], d_hi[j] = d_size, d_size + len(part[0])
                    d_size += len(part[0])
        if d_parts:
            dslots = np.concatenate([p[0] for p in d_parts]).astype(np.int32, copy=False)
            dtfs = np.concatenate([p[1] for p in d_parts]).astype(np.int32, copy=False)
        else:
            dslots, dtfs = _EMPTY_I32, _EMPTY_I32
        count = np.array(list(counts.values()), dtype=np.int64)
        okapi = self.variant == "okapi"
        k1p1 = self.k1 + 1
        bptr, blast, bmax, avgdl0 = self._blocks(kernel)
        # A block's bound was taken at avgdl0; with avgdl now larger, norms shrink by at most
        # avgdl0 / avgdl (ragkit._bm25_numba's docstring).
        factor = max(1.0, (self._total_len / self._n_docs) / avgdl0) if self.b > 0 else 1.0
        scale = idf * count * ((k1p1 if okapi else 1.0) * factor * (1 + 1e-9))
        b_lo = [int(bptr[tid]) if tid < n_base else 0 for tid in counts]
        ok = self._alive.view
        if allowed is not None:
            keys = self._keys.view
            slot_ok = np.zeros(len(keys), dtype=np.bool_)
            inside = keys < len(allowed)
            slot_ok[inside] = allowed[keys[inside]]
            ok = ok & slot_ok
        elif not self._n_dead:
            ok = _EMPTY_BOOL  # every slot may be returned: the kernel skips the check
        acc, touched = _scratch(len(self._keys))
        cand, scores = kernel.top_candidates(
            self._pslots, self._ptfs, np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64),
            np.array(b_lo, dtype=np.int64), blast, bmax,
            dslots, dtfs, np.array(d_lo, dtype=np.int64), np.array(d_hi, dtype=np.int64),
            idf, count, scale, self._norm(), ok, okapi, k1p1, k, acc, touched,
            _WINDOW, _LOOKUP_COST,
        )  # fmt: skip
        return cand, scores

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

    def _dead_slots(self) -> IntArray:
        cache = self._dead_cache
        if cache is None or cache[0] != self._version:
            cache = (self._version, np.flatnonzero(~self._alive.view))
            self._dead_cache = cache
        return cache[1]

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
                    return self._select(found[0], found[1], int(k), with_ties)
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
        check(bool((keys >= 0).all()) and len(np.unique(keys)) == n_docs, "keys not unique >= 0")
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
        try:
            terms = [
                raw[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)
            ]
        except UnicodeDecodeError as exc:
            raise IndexFormatError(f"BM25 vocabulary is not UTF-8: {exc}") from exc
        vocab = {t: i for i, t in enumerate(terms)}
        check(len(vocab) == n_terms, "the vocabulary has repeated terms")

        self._vocab = vocab
        self._df = _Buffer(np.diff(indptr))
        self._keys = _Buffer(keys)
        self._dl = _Buffer(dl)
        self._alive = _Buffer(np.ones(n_docs, dtype=np.bool_))
        self._slot_of = dict(zip(keys.tolist(), range(n_docs), strict=True))
        self._n_docs = n_docs
        self._total_len = int(dl.sum())
        self._indptr = indptr
        self._pslots = pdocs.astype(np.int32)
        self._ptfs = ptf.astype(_tf_dtype(ptf))
        self._fwd_ptr = self._fwd_terms = None  # derived on the first remove
        self._version += 1


# ---------------------------------------------------------------------- the numba kernel

# Below this many slots the numpy path takes well under a millisecond, and importing numba for
# the kernel would cost more than it saves in a short-lived process (tests lower it to 0).
_NUMBA_MIN_SLOTS = 20_000
# The kernel's window of document slots, and when it looks candidates up in a posting list
# rather than reading the list's postings in the window (ragkit._bm25_numba): tuned on SciFact
# claims at 100k and 1M slots by bench/bench_bm25.py.
_WINDOW = 4096
_LOOKUP_COST = 16
_use_numba = True  # tests switch this off to exercise the numpy path
_kernel: Any = None  # the kernel once loaded, False when numba is missing or broken
_scratch_local = threading.local()
_EMPTY_I32: npt.NDArray[np.int32] = np.zeros(0, dtype=np.int32)
_EMPTY_BOOL: npt.NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)


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
                _bm25_numba.top_candidates(
                    i32, tfs, i64, i64 + 1, i64, blast, bmax, i32, i32, i64, i64,
                    np.ones(1), i64 + 1, np.ones(1), np.ones(1), np.ones(1, np.bool_),
                    False, 2.0, 1, np.zeros(1), np.zeros(1, np.int32), _WINDOW, _LOOKUP_COST,
                )  # fmt: skip
            _kernel = _bm25_numba
        except Exception:  # ImportError, or numba failing to compile on this machine
            _kernel = False
    return _kernel or None


def _scratch(n_slots: int) -> tuple[FloatArray, npt.NDArray[np.int32]]:
    """This thread's zeroed accumulator and touched-slot list, of at least ``n_slots`` entries."""
    acc: FloatArray | None = getattr(_scratch_local, "acc", None)
    if acc is None or len(acc) < n_slots:
        size = max(n_slots, len(acc) * 5 // 4 if acc is not None else 0)
        acc = np.zeros(size, dtype=np.float64)
        _scratch_local.acc = acc
        _scratch_local.touched = np.zeros(size, dtype=np.int32)
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
