"""Keep unit vectors under integer keys and return the nearest ones by cosine similarity.

``VectorStore`` holds one float32 matrix (capacity grown by 1.25x, so appends are amortised
O(1) with at most a quarter of slack), a key -> row map, and 1-bit sign codes of every vector
(1/32 of the float32 size) kept in sync on every add and remove. Removal moves the last row into
the hole: O(dim), never a rebuild. With ``half_from`` set, the matrix is converted to float16
once the store reaches that many rows (half the memory; see ``VectorStore``).

Search is exact (one BLAS matrix-vector product over all rows) below ``binary_threshold`` rows.
Above it, search runs in two stages: a scan of the sign codes picks ``rerank`` candidates, and
those are re-scored exactly, so returned scores are always exact cosines of the stored vectors
(computed in float32; of float16-rounded vectors once the matrix is float16). With numba
installed (extra ``fast``) the scan scores each code asymmetrically against the query quantised
to 4 bits per component (sum of the query's components where the code's bit is set, computed
with AND and POPCNT over the query's bit planes); without numba, a blocked numpy scan
ranks by Hamming distance between sign codes (the sign-random-projection angle estimate,
Charikar, STOC 2002, on the embedding's own axes) and re-scores 4x more candidates to make up
for its weaker ranking.

This module leaves out persistence to disk (the caller saves ``state()``), embedding, text and
chunk IDs: keys are opaque non-negative integers chosen by the caller. It is not safe to write
from two threads at once, or to write while another thread searches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from typing import Any

import numpy as np

from ragkit._arrays import KeyRows, first_repeated
from ragkit.embedders import check_embeddings
from ragkit.errors import IndexFormatError

__all__ = ["VectorStore"]

_WORD_BITS = 64
# Default candidates re-scored after the compressed first pass: _RERANK for a float32 matrix;
# for a float16 one, one row in _RERANK_HALF_ROWS, between _RERANK and _RERANK_HALF.
_RERANK = 1000
_RERANK_HALF = 2000
_RERANK_HALF_ROWS = 500
# Rows per block of the numpy Hamming scan: the block's codes and temporaries (~100 bytes per
# row at 384 dimensions) stay within a core's L2 cache.
_SCAN_BLOCK = 8192
# Rows per block when encoding: bounds the boolean temporary to a few MB.
_ENCODE_BLOCK = 65536
# Rows per block of an exact scan over a float16 matrix: each block is converted to float32 in
# a reused buffer (6 MB at 384 dimensions, within cache) and scanned by BLAS.
_HALF_BLOCK = 4096
# Query-score blocks of search_batch's exact path stay under this many floats (64 MB).
_BATCH_SCORES = 16 * 1024 * 1024

# Below this many stored floats (~32 MB) an exact scan takes a millisecond or two on one core, and
# waking a second BLAS thread costs more than it saves: measured here, with torch's OpenMP
# threads from the query embedding still spinning, a 9k x 384 scan stalled to ~100 ms with two
# OpenBLAS threads and took 0.4 ms with one. Larger scans keep every BLAS thread (bandwidth-bound:
# 2 threads scan 1M x 384 in ~55 ms, 1 thread in ~100 ms).
_SMALL_SCAN_FLOATS = 1 << 23


@lru_cache(maxsize=1)
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it, scans use BLAS's own thread count
        return None
    return ThreadpoolController()


def _scan_threads(floats: int) -> AbstractContextManager[Any]:
    """One BLAS thread for small scans (see ``_SMALL_SCAN_FLOATS``), the default otherwise."""
    controller = _blas_controller()
    if controller is None or floats >= _SMALL_SCAN_FLOATS:
        return nullcontext()
    limited: AbstractContextManager[Any] = controller.limit(limits=1, user_api="blas")
    return limited


# A unit vector read back from a state must have this norm, within this tolerance (or be zero).
_NORM_TOLERANCE = 1e-3


class VectorStore:
    """Exact-cosine vector store with a compressed first pass for large indexes.

    Vectors are L2-normalised on the way in, so every score is a cosine similarity in [-1, 1];
    an all-zero vector is kept as is and scores 0 against everything.

    Example:
        >>> store = VectorStore(2)
        >>> store.add([7, 9], np.array([[1.0, 0.0], [0.0, 2.0]]))
        >>> store.search(np.array([0.0, 1.0]), 1)[0].tolist()
        [9]
    """

    def __init__(
        self,
        dim: int,
        *,
        binary_threshold: int = 200_000,
        rerank: int | None = None,
        half_from: int | None = None,
    ) -> None:
        """Create an empty store.

        Args:
            dim: the vectors' dimension.
            binary_threshold: from this many rows on, ``search`` uses the compressed first pass
                unless told otherwise; below it, search is exact.
            rerank: candidates the compressed first pass hands to exact re-scoring. ``None``
                (the default): 1,000 while the vectors are float32; once they are float16
                (re-scoring float16 rows costs little), one row in 500, from 1,000 up to 2,000
                (2,000 from 1M rows: Recall@10 0.999 against an exact float32 scan of 1M
                MiniLM-like vectors, 0.983-0.992 with 1,000; bench/RESULTS.md, "no forward
                index, compressed texts").
            half_from: from this many rows on, vectors are held as float16 (2 bytes per
                component instead of 4): the matrix is converted once when an add reaches it
                and stays float16 after removals. Scores (exact scan and re-scoring alike) are
                then computed in float32 from the float16-rounded vectors, within about 1e-3
                of the float32 cosines (bench/RESULTS.md, "Memory at 1M chunks"). ``None``
                (the default) keeps float32 at every size.

        Raises:
            ValueError: ``dim`` or ``rerank`` is smaller than 1, or ``binary_threshold`` or
                ``half_from`` is negative.
        """
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim ({dim!r}) must be a positive integer")
        if binary_threshold < 0:
            raise ValueError(f"binary_threshold ({binary_threshold}) must not be negative")
        if rerank is not None and rerank < 1:
            raise ValueError(f"rerank ({rerank}) must be at least 1")
        if half_from is not None and half_from < 0:
            raise ValueError(f"half_from ({half_from}) must not be negative")
        self.half_from = None if half_from is None else int(half_from)
        self.dim = int(dim)
        self.binary_threshold = int(binary_threshold)
        self.rerank = None if rerank is None else int(rerank)
        self._words = -(-self.dim // _WORD_BITS)
        self._n = 0
        self._vectors = np.empty((0, self.dim), dtype=np.float32)
        self._codes = np.empty((0, self._words), dtype=np.uint64)
        self._keys = np.empty(0, dtype=np.int64)
        self._rows = KeyRows()

    def __repr__(self) -> str:
        return f"VectorStore(dim={self.dim}, n={self._n})"

    def _rerank(self) -> int:
        """Candidates to re-score: ``rerank``, or its default for the matrix's dtype."""
        if self.rerank is not None:
            return self.rerank
        if self._vectors.dtype != np.float16:
            return _RERANK
        return min(_RERANK_HALF, max(_RERANK, self._n // _RERANK_HALF_ROWS))

    def __len__(self) -> int:
        return self._n

    def __contains__(self, key: object) -> bool:
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
            return False
        return int(key) in self._rows

    # ------------------------------------------------------------------ writes

    def add(self, keys: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under new keys; all or nothing.

        Args:
            keys: one new non-negative integer key per vector.
            vectors: a ``(len(keys), dim)`` matrix; a float32 copy is normalised and stored.

        Raises:
            EmbeddingError: the vectors have the wrong shape or contain NaN or infinity.
            ValueError: a key is negative, repeated, or already stored.
            TypeError: the keys are not integers.
        """
        key_arr = _as_keys(keys, "keys")
        m = key_arr.shape[0]
        vecs = check_embeddings(vectors, n=m, dim=self.dim)
        if m == 0:
            return
        repeated = first_repeated(key_arr)
        if repeated is not None:
            raise ValueError(f"key {repeated} appears twice in keys")
        key_list = key_arr.tolist()
        for key in key_list:
            if key in self._rows:
                raise ValueError(f"key {key} is already stored; remove it first")
        self._append(key_arr, vecs, normalise=True)

    def remove(self, keys: Iterable[int]) -> None:
        """Remove the vectors stored under ``keys``; all or nothing.

        Each removal moves the last row into the freed one: O(dim) per key.

        Raises:
            KeyError: a key is not stored (the message names it); nothing is removed then.
        """
        key_list = list(dict.fromkeys(_key_list(keys)))
        for key in key_list:
            if key not in self._rows:
                raise KeyError(key)
        vectors, codes, stored = self._vectors, self._codes, self._keys
        rows = self._rows
        for key in key_list:
            row = rows.pop(key)
            last = self._n - 1
            if row != last:
                vectors[row] = vectors[last]
                codes[row] = codes[last]
                moved = int(stored[last])
                stored[row] = moved
                rows[moved] = row
            self._n = last
        # Give memory back once three quarters of the capacity is unused.
        if self._capacity > 1024 and self._n < self._capacity // 4:
            self._resize(max(2 * self._n, 16))

    # ------------------------------------------------------------------ reads

    def keys(self) -> np.ndarray:
        """All stored keys (int64), in storage order (not sorted; changes on removal)."""
        return self._keys[: self._n].copy()

    def get(self, keys: Sequence[int] | np.ndarray) -> np.ndarray:
        """The stored (normalised) vectors of ``keys``, one row per key, as a new array.

        Raises:
            KeyError: a key is not stored.
        """
        rows = [self._rows[key] for key in _key_list(keys)]
        picked: np.ndarray = self._vectors[np.asarray(rows, dtype=np.intp)]
        return picked.astype(np.float32, copy=False)

    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        exact: bool | None = None,
        allowed: np.ndarray | None = None,
        with_ties: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` stored vectors with the highest cosine similarity to ``query``.

        Args:
            query: a vector of length ``dim`` (it need not be normalised).
            k: how many results to return at most.
            exact: ``True`` scans every vector; ``False`` uses the compressed first pass then
                exact re-scoring; ``None`` picks exact below ``binary_threshold`` rows.
            allowed: a filter applied before the top ``k`` (in the compressed first pass too):
                ``allowed[key]`` is true for keys that may be returned (keys beyond its length
                may not). A selective filter is searched exactly over the allowed rows.
            with_ties: also return every key tied with the ``k``-th score, so a caller can
                break ties by its own order.

        Returns:
            ``(keys, scores)``: int64 keys and their float32 cosine scores, best first, ties
            broken by key ascending; at most ``k`` of each (fewer when the store is smaller).

        Raises:
            ValueError: ``k`` is smaller than 1 or ``query`` is not one vector.
            EmbeddingError: ``query`` has the wrong length or is not finite.
        """
        _check_k(k)
        q = np.asarray(query)
        if q.ndim != 1:
            raise ValueError(
                f"query must be one vector (1-D), got shape {q.shape}; use search_batch()"
            )
        prepared = self._prepare_queries(q[None, :])
        if allowed is not None:
            return self._search_allowed(prepared[0], k, exact, allowed, with_ties)
        return self._search_many(prepared, k, exact, with_ties)[0]

    def search_batch(
        self, queries: np.ndarray, k: int, *, exact: bool | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``search`` for each row of ``queries``; exact scans are shared across queries.

        Args:
            queries: a ``(m, dim)`` matrix.
            k: how many results per query at most.
            exact: as in ``search``.

        Returns:
            One ``(keys, scores)`` pair per query, in order.

        Raises:
            ValueError: ``k`` is smaller than 1 or ``queries`` is not a matrix.
            EmbeddingError: the queries have the wrong width or are not finite.
        """
        _check_k(k)
        qs = np.asarray(queries)
        if qs.ndim != 2:
            raise ValueError(f"queries must be a 2-D matrix, got shape {qs.shape}")
        return self._search_many(self._prepare_queries(qs), k, exact)

    def memory_bytes(self) -> int:
        """Bytes held: the allocated arrays (vectors, codes, keys) plus the key map, estimated."""
        arrays = self._vectors.nbytes + self._codes.nbytes + self._keys.nbytes
        # Each map entry also holds two int objects (key and row) beyond the table itself.
        key_map = self._rows.memory_bytes()
        return int(arrays + key_map)

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, np.ndarray]:
        """The store's content as plain arrays, for ``numpy.savez`` (no pickle needed).

        Returns:
            ``{"keys": int64 (n,), "vectors": float32 or float16 (n, dim)}``, normalised vectors
            in storage order, in the dtype they are held in. These are read-only views, valid
            until the next ``add`` or ``remove``: save them at once, or copy them.
        """
        keys = self._keys[: self._n].view()
        vectors = self._vectors[: self._n].view()
        keys.flags.writeable = False
        vectors.flags.writeable = False
        return {"keys": keys, "vectors": vectors}

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray], **options: Any) -> VectorStore:
        """Rebuild a store from ``state()``'s arrays (for example read back with ``numpy.load``).

        Args:
            state: a mapping with ``"keys"`` and ``"vectors"``.
            **options: keyword arguments of ``VectorStore()`` (``binary_threshold``, ``rerank``).

        Raises:
            IndexFormatError: an array is missing or has the wrong shape, dtype or content
                (negative or repeated keys, non-finite or non-unit vectors).
        """
        try:
            keys = np.asarray(state["keys"])
            vectors = np.asarray(state["vectors"])
        except KeyError as exc:
            raise IndexFormatError(f"vector state lacks the {exc.args[0]!r} array") from exc
        if keys.ndim != 1 or keys.dtype.kind not in "iu":
            raise IndexFormatError(
                f"vector keys must be a 1-D integer array, got {keys.dtype} {keys.shape}"
            )
        if vectors.ndim != 2 or vectors.dtype.kind != "f" or vectors.shape[1] < 1:
            raise IndexFormatError(
                f"vectors must be a 2-D float matrix, got {vectors.dtype} {vectors.shape}"
            )
        if vectors.shape[0] != keys.shape[0]:
            raise IndexFormatError(f"{keys.shape[0]} vector keys but {vectors.shape[0]} vectors")
        if keys.size and int(keys.min()) < 0:
            raise IndexFormatError("vector keys must not be negative")
        if first_repeated(keys) is not None:
            raise IndexFormatError("vector keys are not unique")
        store = cls(vectors.shape[1], **options)
        half = store.half_from is not None and vectors.shape[0] >= store.half_from
        # A float16 state kept as float16 is not copied to float32 first (at 1M rows that copy
        # alone is 1.5 GB).
        vecs = np.ascontiguousarray(
            vectors, dtype=np.float16 if half and vectors.dtype == np.float16 else np.float32
        )
        if not np.isfinite(vecs).all():
            raise IndexFormatError("vectors contain NaN or infinity")
        norms = _norms(vecs)
        bad = (np.abs(norms - 1.0) > _NORM_TOLERANCE) & (norms != 0.0)
        if bad.any():
            raise IndexFormatError(
                f"{int(bad.sum())} stored vectors are not unit length (first: row "
                f"{int(np.flatnonzero(bad)[0])})"
            )
        key_arr = keys.astype(np.int64)
        # Stored vectors are already unit length: keep them bit for bit, so a saved and loaded
        # index returns exactly the scores it returned before.
        store._append(key_arr, vecs, normalise=False)
        return store

    # ------------------------------------------------------------------ internals

    @property
    def _capacity(self) -> int:
        return int(self._vectors.shape[0])

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype the vectors are held in: float32, or float16 (see ``half_from``)."""
        return self._vectors.dtype

    def _resize(self, capacity: int, dtype: Any = None) -> None:
        n = self._n
        vectors = np.empty((capacity, self.dim), dtype=dtype or self._vectors.dtype)
        codes = np.empty((capacity, self._words), dtype=np.uint64)
        keys = np.empty(capacity, dtype=np.int64)
        vectors[:n] = self._vectors[:n]
        codes[:n] = self._codes[:n]
        keys[:n] = self._keys[:n]
        self._vectors, self._codes, self._keys = vectors, codes, keys

    def _append(self, key_arr: np.ndarray, vecs: np.ndarray, *, normalise: bool) -> None:
        n, m = self._n, key_arr.shape[0]
        half = (
            self.half_from is not None
            and n + m >= self.half_from
            and self._vectors.dtype != np.float16
        )
        if half or n + m > self._capacity:
            grown = max(n + m, self._capacity * 5 // 4, 16) if n + m > self._capacity else None
            self._resize(grown or self._capacity, np.float16 if half else None)
        target = self._vectors[n : n + m]
        if normalise:
            norms = _norms(vecs)
            norms[norms == 0.0] = 1.0  # a zero vector stays zero and scores 0
            np.divide(vecs, norms[:, None], out=target)
        else:
            target[...] = vecs
        for start in range(0, m, _ENCODE_BLOCK):
            stop = min(m, start + _ENCODE_BLOCK)
            self._codes[n + start : n + stop] = _sign_codes(target[start:stop], self._words)
        self._keys[n : n + m] = key_arr
        self._rows.assign(key_arr, np.arange(n, n + m, dtype=np.int64))
        self._n = n + m

    def _prepare_queries(self, queries: np.ndarray) -> np.ndarray:
        qs = check_embeddings(queries, n=queries.shape[0], dim=self.dim)
        norms = _norms(qs)
        norms[norms == 0.0] = 1.0
        prepared: np.ndarray = (qs / norms[:, None]).astype(np.float32, copy=False)
        return prepared

    def _search_many(
        self, queries: np.ndarray, k: int, exact: bool | None, ties: bool = False
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        n, m = self._n, queries.shape[0]
        if n == 0:
            empty = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))
            return [(empty[0].copy(), empty[1].copy()) for _ in range(m)]
        use_exact = (n < self.binary_threshold) if exact is None else exact
        # Re-score at least 4k candidates: a fused hybrid search asks for hundreds, and its
        # normalisation reads the whole list, not just the top 10.
        candidates = min(n, max(self._rerank(), 4 * k))
        if use_exact or candidates >= n:
            return self._exact_many(queries, k, ties)
        kernel = _candidate_kernel()
        if kernel is _hamming_candidates_numpy:
            candidates = min(n, candidates * _NUMPY_CANDIDATE_FACTOR)
        codes = self._codes[:n]
        results: list[tuple[np.ndarray, np.ndarray]] = []
        for q in queries:
            rows = kernel(codes, q, candidates)
            # Sorted rows make the gather walk memory forwards.
            rows.sort()
            results.append(self._top_k(self._gather_scores(rows, q), rows, k, ties))
        return results

    def _search_allowed(
        self, q: np.ndarray, k: int, exact: bool | None, allowed: np.ndarray, ties: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """One query restricted to the rows whose key is allowed, the filter before the top k."""
        n = self._n
        keys = self._keys[:n]
        ok = np.zeros(n, dtype=np.bool_)
        inside = keys < len(allowed)
        ok[inside] = allowed[keys[inside]]
        rows = np.flatnonzero(ok)
        if rows.size == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        use_exact = (n < self.binary_threshold) if exact is None else exact
        candidates = min(rows.size, max(self._rerank(), 4 * k))
        if use_exact or candidates >= rows.size:
            if rows.size * 4 < n:  # selective: gather the allowed rows and scan only those
                scores = self._gather_scores(rows, q)
            else:
                with _scan_threads(n * self.dim):
                    scores = self._scan(q[None, :])[0][rows]
            return self._top_k(scores, rows, k, ties)
        kernel = _candidate_kernel()
        if kernel is _hamming_candidates_numpy:
            candidates = min(rows.size, candidates * _NUMPY_CANDIDATE_FACTOR)
        picked = rows[kernel(np.ascontiguousarray(self._codes[rows]), q, candidates)]
        picked.sort()
        return self._top_k(self._gather_scores(picked, q), picked, k, ties)

    def _gather_scores(self, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Cosines of ``q`` with the given rows (float32 arithmetic whatever the storage)."""
        if self._vectors.dtype == np.float16:
            kernels = _half_kernels()
            if kernels is not None:
                out = np.empty(rows.shape[0], dtype=np.float32)
                kernels[1](self._vectors.view(np.uint16), rows.astype(np.int64), q, out)
                return out
        picked = self._vectors[rows]
        scores: np.ndarray = picked.astype(np.float32, copy=False) @ q
        return scores

    def _scan(self, queries: np.ndarray) -> np.ndarray:
        """Scores ``(len(queries), n)`` of every stored row: one BLAS product for a float32
        matrix; block by block through a float32 buffer for a float16 one."""
        matrix = self._vectors[: self._n]
        if matrix.dtype == np.float32:
            if queries.shape[0] == 1:
                one: np.ndarray = (matrix @ queries[0])[None, :]
                return one
            many: np.ndarray = queries @ matrix.T
            return many
        n = self._n
        out = np.empty((queries.shape[0], n), dtype=np.float32)
        kernels = _half_kernels()
        if kernels is not None:
            halves = matrix.view(np.uint16)
            for i, q in enumerate(queries):
                kernels[0](halves, q, out[i])
            return out
        buf = np.empty((min(n, _HALF_BLOCK), self.dim), dtype=np.float32)
        for start in range(0, n, _HALF_BLOCK):
            stop = min(n, start + _HALF_BLOCK)
            block = buf[: stop - start]
            block[...] = matrix[start:stop]
            if queries.shape[0] == 1:
                out[0, start:stop] = block @ queries[0]
            else:
                out[:, start:stop] = queries @ block.T
        return out

    def _exact_many(
        self, queries: np.ndarray, k: int, ties: bool = False
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        n = self._n
        block = max(1, min(queries.shape[0], _BATCH_SCORES // n))
        results: list[tuple[np.ndarray, np.ndarray]] = []
        with _scan_threads(n * self.dim):
            for start in range(0, queries.shape[0], block):
                # One query: a BLAS matrix-vector product; several: one matrix product per
                # block, so the matrix is read once per block of queries, not once per query.
                scores = self._scan(queries[start : start + block])
                results.extend(self._top_k(row, None, k, ties) for row in scores)
        return results

    def _top_k(
        self, scores: np.ndarray, rows: np.ndarray | None, k: int, ties: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        size = scores.shape[0]
        if k < size:
            part = np.argpartition(scores, size - k)[size - k :]
            # Everything tied with the k-th score competes, so ties resolve by key, not by the
            # order argpartition happened to leave them in.
            selected = np.flatnonzero(scores >= scores[part].min())
        else:
            selected = np.arange(size)
        picked = scores[selected]
        stored_rows = selected if rows is None else rows[selected]
        keys = self._keys[stored_rows]
        order = np.lexsort((keys, -picked))
        if not ties:
            order = order[:k]
        return keys[order], picked[order].astype(np.float32, copy=False)


# ---------------------------------------------------------------------- helpers


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k ({k!r}) must be a positive integer")


def _key_list(keys: Iterable[int]) -> list[int]:
    if isinstance(keys, np.ndarray):
        as_list: list[int] = _as_keys(keys, "keys").tolist()
        return as_list
    out = []
    for key in keys:
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
            raise TypeError(f"keys must be integers, got {key!r}")
        out.append(int(key))
    return out


def _as_keys(keys: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(keys)
    if arr.size == 0:
        arr = arr.astype(np.int64).reshape(0)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > np.iinfo(np.int64).max):
        raise ValueError(f"{name} must be non-negative int64 values")
    return arr.astype(np.int64, copy=False)


def _norms(vectors: np.ndarray) -> np.ndarray:
    # float64 accumulation: float32 sums of 384 squares drift by ~1e-6, enough to matter when
    # a loaded state is checked for unit length.
    result: np.ndarray = np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64))
    return result.astype(np.float32)


def _sign_codes(vectors: np.ndarray, words: int) -> np.ndarray:
    """Pack the sign bits of each row (1 where the component is > 0) into ``words`` uint64s.

    Bit ``j`` of the vector is bit ``j % 64`` of word ``j // 64``; padding bits are 0.
    """
    m, dim = vectors.shape
    packed = np.zeros((m, words * 8), dtype=np.uint8)
    packed[:, : -(-dim // 8)] = np.packbits(vectors > 0, axis=1, bitorder="little")
    return packed.view("<u8")


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount64(x: np.ndarray, out: np.ndarray) -> None:
    """Set bits of each uint64 of ``x`` into the uint8 array ``out`` (same shape)."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        np.bitwise_count(x, out=out)
    else:  # one table lookup per byte
        out[...] = _POPCOUNT8[x.view(np.uint8)].reshape(*x.shape, 8).sum(axis=-1)


def _hamming_candidates_numpy(codes: np.ndarray, query: np.ndarray, count: int) -> np.ndarray:
    """Rows of the ``count`` codes nearest to the query's sign code in Hamming distance.

    The numpy path. Distances are computed in cache-sized blocks; then a histogram of the small
    integer distances finds the cut-off distance, so no sort or argpartition over all rows is
    needed. Ties at the cut-off go to the lowest rows.
    """
    n, words = codes.shape
    query_code = _sign_codes(query[None, :], words)[0]
    dist = np.empty(n, dtype=np.uint16)
    xor = np.empty((_SCAN_BLOCK, words), dtype=np.uint64)
    bits = np.empty((_SCAN_BLOCK, words), dtype=np.uint8)
    for start in range(0, n, _SCAN_BLOCK):
        stop = min(n, start + _SCAN_BLOCK)
        size = stop - start
        np.bitwise_xor(codes[start:stop], query_code, out=xor[:size])
        _popcount64(xor[:size], bits[:size])
        np.sum(bits[:size], axis=1, dtype=np.uint16, out=dist[start:stop])
    counts = np.cumsum(np.bincount(dist, minlength=words * _WORD_BITS + 1))
    cutoff = int(np.searchsorted(counts, count))  # first distance with >= count rows at or below
    below = np.flatnonzero(dist < cutoff)
    at = np.flatnonzero(dist == cutoff)[: count - below.shape[0]]
    return np.concatenate([below, at])


Kernel = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
"""``(codes (n, words) uint64, unit float32 query (dim,), count) -> candidate rows``."""

# Symmetric Hamming ranks candidates worse than the asymmetric score of the numba kernel
# (bench/bench_vectors.py, 1M MiniLM-like vectors, Recall@10 of the final top 10: Hamming 0.945
# at 1,000 candidates, 0.988 at 4,000; asymmetric 0.994 at 1,000), so the numpy path re-scores
# this many times more candidates.
_NUMPY_CANDIDATE_FACTOR = 4

# The numba kernel is compiled on first use when numba is installed (extra ``fast``).
_kernel: Kernel | None = None
_use_numba = True  # tests switch this off to exercise the numpy path


def _candidate_kernel() -> Kernel:
    global _kernel
    if not _use_numba:
        return _hamming_candidates_numpy
    if _kernel is None:
        _kernel = _build_numba_kernel() or _hamming_candidates_numpy
    return _kernel


_QUERY_BITS = 4
"""Bits per query component in the numba first pass (16 levels: Recall@10 after re-scoring as
with the float query, bench/bench_vectors.py)."""


def _query_planes(query: np.ndarray, words: int) -> tuple[np.ndarray, np.float32]:
    """The query quantised to ``2**_QUERY_BITS`` levels between its smallest and largest
    component, as bit planes packed like the codes, and the offset of the first level.

    With ``q[c] ~ lo + step * u[c]`` and ``u[c] = sum_b 2**b * plane_b[c]``, the asymmetric
    score ``sum of q[c] over the code's set bits`` is ``step * (sum_b 2**b * popcount(code &
    plane_b) + (lo / step) * popcount(code))``: ranked by the bracket, whose second factor is
    the returned offset.
    """
    levels = 2**_QUERY_BITS - 1
    lo, hi = float(query.min()), float(query.max())
    step = (hi - lo) / levels if hi > lo else 1.0
    u = np.clip(np.rint((query - lo) / step), 0, levels).astype(np.uint8)
    bits = (u[None, :] >> np.arange(_QUERY_BITS, dtype=np.uint8)[:, None]) & 1
    packed = np.zeros((_QUERY_BITS, words * 8), dtype=np.uint8)
    packed[:, : -(-query.shape[0] // 8)] = np.packbits(bits, axis=1, bitorder="little")
    return packed.view("<u8"), np.float32(lo / step)


HalfKernels = tuple[Callable[..., None], Callable[..., None]]
"""``scan(halves (n, dim) uint16, q, out (n,))`` and ``gather(halves, rows int64, q, out)``."""

_half: HalfKernels | None = None
_half_built = False


def _half_kernels() -> HalfKernels | None:
    """numba kernels scoring float16 rows (read as their uint16 bits) against a float32 query.

    numpy has no fast float16 product (a cast to float32 first runs ~10x slower than a float32
    BLAS scan here); these convert each component with the CPU's half -> float instruction
    (LLVM ``fpext``, vectorised) and accumulate in float32. The sum's order is fixed by the
    compiled loop, so a row scores the same in the full scan and in re-scoring.
    """
    global _half, _half_built
    if not _use_numba:
        return None
    if not _half_built:
        _half, _half_built = _build_half_kernels(), True
    return _half


def _build_half_kernels() -> HalfKernels | None:
    try:
        import numba
        from llvmlite import ir
        from numba.extending import intrinsic
    except ImportError:
        return None

    @intrinsic
    def half_to_float(typingctx: Any, bits: Any) -> Any:  # noqa: ARG001  # pragma: no cover
        """The float16 whose bits are ``bits``, as a float32 (exact)."""

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:  # noqa: ARG001
            return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

        return numba.types.float32(numba.types.uint16), codegen

    # Reassociation lets LLVM vectorise the float32 sum; the order is still fixed per build.
    fast = {"reassoc", "contract", "nsz", "arcp"}

    @numba.njit(cache=True, nogil=True, fastmath=fast)
    def scan(halves: Any, q: Any, out: Any) -> None:  # pragma: no cover
        n, dim = halves.shape
        for i in range(n):
            acc = np.float32(0.0)
            for j in range(dim):
                acc += half_to_float(halves[i, j]) * q[j]  # type: ignore[call-arg]
            out[i] = acc

    @numba.njit(cache=True, nogil=True, fastmath=fast)
    def gather(halves: Any, rows: Any, q: Any, out: Any) -> None:  # pragma: no cover
        dim = halves.shape[1]
        for r in range(rows.shape[0]):
            i = rows[r]
            acc = np.float32(0.0)
            for j in range(dim):
                acc += half_to_float(halves[i, j]) * q[j]  # type: ignore[call-arg]
            out[r] = acc

    try:  # compile (or load from numba's cache) now, so a broken numba falls back to numpy
        probe = np.ones((2, 3), dtype=np.float16).view(np.uint16)
        scan(probe, np.ones(3, dtype=np.float32), np.empty(2, dtype=np.float32))
        one = np.ones(3, dtype=np.float32)
        gather(probe, np.zeros(1, dtype=np.int64), one, np.empty(1, dtype=np.float32))
    except Exception:
        return None
    return scan, gather


def _build_numba_kernel() -> Kernel | None:
    try:
        import numba
        from numba.extending import intrinsic
    except ImportError:
        return None

    @intrinsic
    def popcount(typingctx: Any, x: Any) -> Any:  # noqa: ARG001  # pragma: no cover
        """LLVM's ctpop: one instruction (POPCNT) per 64-bit word."""

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:  # noqa: ARG001
            return builder.ctpop(args[0])

        return numba.types.uint64(numba.types.uint64), codegen

    # Asymmetric scoring: the query against the sign codes, the sum of q[c] over the set bits c,
    # which ranks like q . sign(x) (= 2 * that sum - sum(q)). It keeps the query's magnitudes
    # that a symmetric Hamming distance throws away (asymmetric distances: Jegou, Douze & Schmid,
    # TPAMI 2011; for binary codes Gordo et al., TPAMI 2014). The query is quantised to a few
    # bits per component and split into bit planes (see _query_planes), so each 64-bit word of
    # a code costs one AND and one POPCNT per plane plus one POPCNT for its own set bits: no
    # table lookups. Scores of a block of rows are computed first (a tight loop), then a
    # min-heap keeps the best ``count``.
    @numba.njit(cache=True, nogil=True)
    def asymmetric_candidates(
        codes: Any, planes: Any, offset: Any, count: Any
    ) -> Any:  # pragma: no cover
        n, words = codes.shape
        heap_score = np.empty(count, dtype=np.float32)
        heap_row = np.empty(count, dtype=np.int64)
        size = 0
        block = 2048
        scores = np.empty(block, dtype=np.float32)
        for first in range(0, n, block):
            last = min(n, first + block)
            for i in range(first, last):
                acc = np.int64(0)
                ones = np.int64(0)
                for w in range(words):
                    x = codes[i, w]
                    ones += np.int64(popcount(x))  # type: ignore[call-arg]
                    for b in range(_QUERY_BITS):  # a constant: the loop is unrolled
                        acc += np.int64(popcount(x & planes[b, w])) << b
                scores[i - first] = np.float32(acc) + offset * np.float32(ones)
            for i in range(first, last):
                score = scores[i - first]
                if size < count:  # push, sift up
                    pos = size
                    size += 1
                    while pos > 0:
                        parent = (pos - 1) // 2
                        if heap_score[parent] <= score:
                            break
                        heap_score[pos] = heap_score[parent]
                        heap_row[pos] = heap_row[parent]
                        pos = parent
                    heap_score[pos] = score
                    heap_row[pos] = i
                elif score > heap_score[0]:  # replace the worst, sift down; ties keep lower rows
                    pos = 0
                    while True:
                        child = 2 * pos + 1
                        if child >= size:
                            break
                        if child + 1 < size and heap_score[child + 1] < heap_score[child]:
                            child += 1
                        if heap_score[child] >= score:
                            break
                        heap_score[pos] = heap_score[child]
                        heap_row[pos] = heap_row[child]
                        pos = child
                    heap_score[pos] = score
                    heap_row[pos] = i
        return heap_row[:size].copy()

    def kernel(codes: np.ndarray, query: np.ndarray, count: int) -> np.ndarray:
        planes, offset = _query_planes(query, codes.shape[1])
        rows: np.ndarray = asymmetric_candidates(codes, planes, offset, count)
        return rows

    try:  # compile (or load from numba's cache) now, so a broken numba falls back to numpy
        kernel(np.zeros((2, 1), dtype=np.uint64), np.zeros(64, dtype=np.float32), 1)
    except Exception:
        return None
    return kernel
