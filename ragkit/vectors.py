"""Keep unit vectors under integer keys and return the nearest ones by cosine similarity.

``VectorStore`` holds one float32 matrix (capacity grown by 1.25x, so appends are amortised
O(1) with at most a quarter of slack), a key -> row map, and 1-bit sign codes of every vector
(1/32 of the float32 size, stored in blocks of 64 rows with the rows side by side for each
byte, plus 2 bytes per row: the code's number of set bits) kept in sync on every add and
remove. Removal moves the last row into the hole: O(dim), never a rebuild. With ``half_from``
set, the matrix is converted to float16 once the store reaches that many rows (half the
memory; see ``VectorStore``).

Search is exact (one BLAS matrix-vector product over all rows) below ``binary_threshold`` rows.
Above it, search runs in two stages: a scan of the sign codes picks ``rerank`` candidates, and
those are re-scored exactly, so returned scores are always exact cosines of the stored vectors
(computed in float32; of float16-rounded vectors once the matrix is float16). With numba
installed (extra ``fast``) the scan scores each code asymmetrically against the query quantised
to 4 bits per component (sum of the query's components where the code's bit is set: per nibble
of a code, one entry of a 16-entry table, looked up for 16 to 64 rows at once with the CPU's
byte shuffle, PSHUFB, where the CPU has one, SSSE3 to AVX-512BW; plain vector compares and
selects elsewhere); without numba, a blocked numpy scan ranks by Hamming distance between sign
codes (the sign-random-projection angle estimate, Charikar, STOC 2002, on the embedding's own
axes) and re-scores 4x more candidates to make up for its weaker ranking.

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
        # Sign codes in the blocked layout of _to_blocks (ceil(capacity / 64) blocks), and
        # each code's number of set bits (the asymmetric score's offset term).
        self._nbytes = -(-self.dim // 8)
        self._blocks = np.empty((0, self._nbytes, _BLOCK_ROWS), dtype=np.uint8)
        # Whole blocks of counts (the first pass reads 64 at a time).
        self._ones = np.empty(0, dtype=np.uint16 if self.dim < 1 << 16 else np.uint32)
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
        vectors, blocks, ones, stored = self._vectors, self._blocks, self._ones, self._keys
        rows = self._rows
        for key in key_list:
            row = rows.pop(key)
            last = self._n - 1
            if row != last:
                vectors[row] = vectors[last]
                blocks[row // _BLOCK_ROWS, :, row % _BLOCK_ROWS] = blocks[
                    last // _BLOCK_ROWS, :, last % _BLOCK_ROWS
                ]
                ones[row] = ones[last]
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
        codes = self._blocks.nbytes + self._ones.nbytes
        arrays = self._vectors.nbytes + codes + self._keys.nbytes
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
        blocks = np.empty((_block_count(capacity), self._nbytes, _BLOCK_ROWS), dtype=np.uint8)
        ones = np.empty(_block_count(capacity) * _BLOCK_ROWS, dtype=self._ones.dtype)
        keys = np.empty(capacity, dtype=np.int64)
        vectors[:n] = self._vectors[:n]
        blocks[: _block_count(n)] = self._blocks[: _block_count(n)]
        ones[:n] = self._ones[:n]
        keys[:n] = self._keys[:n]
        self._vectors, self._blocks, self._ones, self._keys = vectors, blocks, ones, keys

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
            codes = _sign_bytes(target[start:stop])
            _put_rows(self._blocks, n + start, codes)
            self._ones[n + start : n + stop] = _ones(codes)
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
        results: list[tuple[np.ndarray, np.ndarray]] = []
        for q in queries:
            rows = kernel(self._blocks, self._ones, n, q, candidates)
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
        blocks = _to_blocks(_block_rows(self._blocks, rows))
        picked = rows[kernel(blocks, self._ones[rows], rows.size, q, candidates)]
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


_BLOCK_ROWS = 64
"""Rows per block of the code layout (see ``_to_blocks``): one 64-byte SIMD register holds one
byte position of a whole block."""


def _sign_bytes(vectors: np.ndarray) -> np.ndarray:
    """The sign bits of each row (1 where the component is > 0), ``ceil(dim / 8)`` bytes a row.

    Bit ``j`` of the vector is bit ``j % 8`` of byte ``j // 8``; padding bits are 0.
    """
    packed: np.ndarray = np.packbits(vectors > 0, axis=1, bitorder="little")
    return packed


def _block_count(rows: int) -> int:
    return -(-rows // _BLOCK_ROWS)


def _to_blocks(codes: np.ndarray) -> np.ndarray:
    """Row-major codes ``(m, nbytes)`` in the blocked layout ``(ceil(m / 64), nbytes, 64)``.

    Byte ``j`` of row ``r`` is ``blocks[r // 64, j, r % 64]``: a block's 64 rows lie side by
    side for each byte position, so a scan reads one byte position of 64 rows in one vector
    load, with no transposition at search time. Rows past ``m`` in the last block are zero.
    """
    m, nbytes = codes.shape
    padded = np.zeros((_block_count(m) * _BLOCK_ROWS, nbytes), dtype=np.uint8)
    padded[:m] = codes
    return np.ascontiguousarray(padded.reshape(-1, _BLOCK_ROWS, nbytes).transpose(0, 2, 1))


def _block_rows(blocks: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The codes of the given rows, row-major ``(len(rows), nbytes)``, from the blocked layout."""
    picked: np.ndarray = blocks[rows // _BLOCK_ROWS, :, rows % _BLOCK_ROWS]
    return picked


def _put_rows(blocks: np.ndarray, start: int, codes: np.ndarray) -> None:
    """Write row-major ``codes`` into ``blocks`` as rows ``start, start + 1, ...``."""
    m = codes.shape[0]
    first = -start % _BLOCK_ROWS  # rows before the next block boundary
    head = min(m, first)
    if head:
        rows = np.arange(start, start + head)
        blocks[rows // _BLOCK_ROWS, :, rows % _BLOCK_ROWS] = codes[:head]
    whole = (m - head) // _BLOCK_ROWS
    if whole:  # whole blocks: one transposed copy
        b0 = (start + head) // _BLOCK_ROWS
        body = codes[head : head + whole * _BLOCK_ROWS]
        blocks[b0 : b0 + whole] = body.reshape(whole, _BLOCK_ROWS, -1).transpose(0, 2, 1)
    if head + whole * _BLOCK_ROWS < m:
        rows = np.arange(start + head + whole * _BLOCK_ROWS, start + m)
        blocks[rows // _BLOCK_ROWS, :, rows % _BLOCK_ROWS] = codes[head + whole * _BLOCK_ROWS :]


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount8(x: np.ndarray, out: np.ndarray) -> None:
    """Set bits of each byte of the uint8 array ``x`` into ``out`` (same shape; may be ``x``)."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        np.bitwise_count(x, out=out)
    else:  # one table lookup per byte
        np.take(_POPCOUNT8, x, out=out)


def _ones(codes: np.ndarray) -> np.ndarray:
    """Set bits per row of row-major codes, as uint16 (uint32 above 65,535 dimensions)."""
    bits = np.empty_like(codes)
    _popcount8(codes, bits)
    dtype = np.uint16 if codes.shape[1] * 8 < 1 << 16 else np.uint32
    ones: np.ndarray = bits.sum(axis=1, dtype=dtype)
    return ones


def _hamming_candidates_numpy(
    blocks: np.ndarray, ones: np.ndarray, n: int, query: np.ndarray, count: int
) -> np.ndarray:
    """Rows of the ``count`` codes nearest to the query's sign code in Hamming distance.

    The numpy path (``ones`` is not used). Distances are computed in cache-sized runs of
    blocks; then a histogram of the small integer distances finds the cut-off distance, so no
    sort or argpartition over all rows is needed. Ties at the cut-off go to the lowest rows.
    """
    del ones
    nbytes = blocks.shape[1]
    query_code = _sign_bytes(query[None, :])[0][:, None]
    per_run = _SCAN_BLOCK // _BLOCK_ROWS
    dist = np.empty(_block_count(n) * _BLOCK_ROWS, dtype=np.uint16)
    bits = np.empty((per_run, nbytes, _BLOCK_ROWS), dtype=np.uint8)
    for b0 in range(0, _block_count(n), per_run):
        b1 = min(_block_count(n), b0 + per_run)
        run = bits[: b1 - b0]
        np.bitwise_xor(blocks[b0:b1], query_code, out=run)
        _popcount8(run, run)
        out = dist[b0 * _BLOCK_ROWS : b1 * _BLOCK_ROWS].reshape(b1 - b0, _BLOCK_ROWS)
        np.sum(run, axis=1, dtype=np.uint16, out=out)
    dist = dist[:n]
    counts = np.cumsum(np.bincount(dist, minlength=nbytes * 8 + 1))
    cutoff = int(np.searchsorted(counts, count))  # first distance with >= count rows at or below
    below = np.flatnonzero(dist < cutoff)
    at = np.flatnonzero(dist == cutoff)[: count - below.shape[0]]
    return np.concatenate([below, at])


Kernel = Callable[[np.ndarray, np.ndarray, int, np.ndarray, int], np.ndarray]
"""``(blocks (see _to_blocks), ones (rows,), n, unit float32 query (dim,), count) -> rows``."""

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

# Bit t of each nibble value v, as a (16, 4) matrix: a nibble's lookup table is this times the
# four quantised query components it covers.
_NIBBLE_BITS = (np.arange(16)[:, None] >> np.arange(4)[None, :]) & 1


def _quantise_query(query: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """The query quantised to ``2**_QUERY_BITS`` levels between its smallest and largest
    component, ``u`` (uint8, one per component), and the offset of the first level.

    With ``q[c] ~ lo + step * u[c]``, the asymmetric score ``sum of q[c] over the code's set
    bits`` is ``step * (sum of u[c] over the set bits + (lo / step) * popcount(code))``: ranked
    by the bracket, whose second factor is the returned offset.
    """
    levels = 2**_QUERY_BITS - 1
    lo, hi = float(query.min()), float(query.max())
    step = (hi - lo) / levels if hi > lo else 1.0
    u = np.clip(np.rint((query - lo) / step), 0, levels).astype(np.uint8)
    return u, np.float32(lo / step)


def _query_luts(query: np.ndarray, nbytes: int) -> tuple[np.ndarray, np.float32]:
    """Per byte of a code, two 16-entry tables (low nibble, high nibble): entry ``v`` is the sum
    of the quantised query components whose bits are set in ``v`` (at most 4 x 15 = 60), and
    the offset of ``_quantise_query``. ``(nbytes, 2, 16)`` uint8, contiguous."""
    u, offset = _quantise_query(query)
    padded = np.zeros(nbytes * 8, dtype=np.int32)
    padded[: u.shape[0]] = u
    luts = (padded.reshape(nbytes, 2, 4) @ _NIBBLE_BITS.T).astype(np.uint8)
    return luts, offset


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
        from llvmlite import binding, ir
        from numba.extending import intrinsic
    except ImportError:
        return None
    if binding.get_process_triple().startswith(("x86_64", "i386", "i686")):
        # Without F16C, LLVM lowers the half -> float conversion to a runtime call numba's JIT
        # does not link, and the compiled kernel crashes the process: use numpy instead.
        if "f16c" not in (_target_features() or set()):
            return None

    @intrinsic
    def half_to_float(typingctx: Any, bits: Any) -> Any:  # noqa: ARG001  # pragma: no cover
        """The float16 whose bits are ``bits``, as a float32 (exact)."""

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:  # noqa: ARG001
            return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

        return numba.types.float32(numba.types.uint16), codegen

    _stable_identity(half_to_float, "half_to_float")

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


_PSHUFB = {
    16: "llvm.x86.ssse3.pshuf.b.128",
    32: "llvm.x86.avx2.pshuf.b",
    64: "llvm.x86.avx512.pshuf.b.512",
}
"""LLVM's byte shuffle (PSHUFB) by register width in bytes: SSSE3, AVX2, AVX-512BW."""


def _target_features() -> set[str] | None:
    """The x86 features of the CPU numba compiles for; ``None`` when not x86 or not known.

    numba compiles for the host CPU unless ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` say
    otherwise (for example to build portable caches): then only features named there count, and
    a CPU named without features is not known here.
    """
    try:
        import numba
        from llvmlite import binding
    except ImportError:
        return None
    if not binding.get_process_triple().startswith(("x86_64", "i386", "i686")):
        return None
    cpu_features = getattr(numba.config, "CPU_FEATURES", None)
    cpu_name = getattr(numba.config, "CPU_NAME", None)
    if cpu_features:
        return {f[1:] for f in str(cpu_features).split(",") if f.startswith("+")}
    if cpu_name and cpu_name != "host":
        return None
    return {name for name, on in binding.get_host_cpu_features().items() if on}


def _pshufb_width() -> int:
    """The widest PSHUFB (bytes) of the CPU numba compiles for, or 0 (not x86, or none known)."""
    features = _target_features() or set()
    for width, feature in ((64, "avx512bw"), (32, "avx2"), (16, "ssse3")):
        if feature in features:
            return width
    return 0


def _build_numba_kernel(width: int | None = None) -> Kernel | None:
    """The asymmetric first pass compiled with numba, or ``None`` without a working numba.

    Args:
        width: bytes per PSHUFB to compile for (64, 32, 16), 0 for the portable build,
            ``None`` for the widest the CPU has (``_pshufb_width``). Every width returns the
            same rows.
    """
    try:
        import numba
    except ImportError:
        return None
    if width is None:
        width = _pshufb_width()
    scan_block = _block_scan(width)
    trailing_zeros = _trailing_zeros()
    block_scores = _block_scores()

    # Asymmetric scoring: the query against the sign codes, the sum of q[c] over the set bits c,
    # which ranks like q . sign(x) (= 2 * that sum - sum(q)). It keeps the query's magnitudes
    # that a symmetric Hamming distance throws away (asymmetric distances: Jegou, Douze & Schmid,
    # TPAMI 2011; for binary codes Gordo et al., TPAMI 2014). The query is quantised to 4 bits
    # per component, so each nibble of a code contributes one of 16 small integers: a lookup in
    # a 16-byte table, which PSHUFB does for a whole register of codes at once (the "fast scan"
    # of André, Kermarrec & Le Scouarnec, VLDB 2015, on the blocked layout of _to_blocks).
    # Scores of a block are computed first, then a min-heap keeps the best ``count``; a block
    # none of whose scores beats the heap's minimum is skipped (the heap would reject each).
    def lut_candidates(
        blocks: Any, n: Any, ones: Any, luts: Any, offset: Any, count: Any, acc: Any
    ) -> Any:  # pragma: no cover
        # Heap entries pack a score's order-preserving 32-bit pattern over its row (key >> 32
        # compares as the scores do; rows < 2**32), so a sift moves one 8-byte word. One slot
        # more than the heap holds, the largest key: the missing right child of the last
        # parent never wins, so a full heap's sift-down picks a child without a bounds branch.
        heap = np.empty(count + 1, dtype=np.uint64)
        heap[count] = np.uint64(0xFFFFFFFFFFFFFFFF)
        size = 0
        rows = acc.shape[0]
        scores = np.empty(rows, dtype=np.float32)
        bits = scores.view(np.uint32)
        root = np.empty(1, dtype=np.uint32)
        root_score = root.view(np.float32)
        sign = np.uint64(0x80000000)
        for block in range((n + rows - 1) // rows):
            scan_block(blocks, block, luts, acc)
            first = block * rows
            last = min(rows, n - first)
            floor = np.float32(-np.inf)
            if size == count:
                top = heap[0] >> np.uint64(32)
                root[0] = top ^ sign if top >= sign else top ^ np.uint64(0xFFFFFFFF)
                floor = root_score[0]
            # Bit r: row r beats the heap's minimum as the block starts.
            beats = block_scores(acc, ones, first, offset, floor, scores)
            if last < rows:
                beats &= (np.uint64(1) << np.uint64(last)) - np.uint64(1)
            while beats:  # the rows that may enter, in order (others would be rejected)
                r = trailing_zeros(beats)
                beats &= beats - np.uint64(1)
                b = np.uint64(bits[r])
                order = b ^ np.uint64(0xFFFFFFFF) if b >= sign else b ^ sign
                key = (order << np.uint64(32)) | np.uint64(first + r)
                if size < count:  # push, sift up
                    pos = size
                    size += 1
                    while pos > 0:
                        parent = (pos - 1) // 2
                        if heap[parent] >> np.uint64(32) <= order:
                            break
                        heap[pos] = heap[parent]
                        pos = parent
                    heap[pos] = key
                elif order > heap[0] >> np.uint64(32):  # replace the worst; ties keep lower rows
                    # Floyd's sift-down: the hole goes to a leaf along the smaller children
                    # (no comparison with the score, so few mispredicted branches), then the
                    # score climbs back while its parent is >= it: the arrangement a plain
                    # sift-down (stop at the first child >= score) leaves, equal keys included.
                    pos = 0
                    child = 1
                    while child < size:
                        right = heap[child + 1] >> np.uint64(32) < heap[child] >> np.uint64(32)
                        child += right  # a bool: 0 or 1
                        heap[pos] = heap[child]
                        pos = child
                        child = 2 * pos + 1
                    while pos > 0:
                        parent = (pos - 1) // 2
                        if heap[parent] >> np.uint64(32) < order:
                            break
                        heap[pos] = heap[parent]
                        pos = parent
                    heap[pos] = key
        return (heap[:size] & np.uint64(0xFFFFFFFF)).astype(np.int64)

    def kernel(
        blocks: np.ndarray, ones: np.ndarray, n: int, query: np.ndarray, count: int
    ) -> np.ndarray:
        nbytes = blocks.shape[1]
        luts, offset = _query_luts(query, nbytes)
        # A block's sums stay below 2**16 up to 546 bytes (4,368 dimensions): 120 per byte.
        acc = np.empty(_BLOCK_ROWS, dtype=np.uint16 if nbytes * 120 < 1 << 16 else np.uint32)
        whole = _block_count(n) * _BLOCK_ROWS
        if ones.shape[0] < whole:  # block_scores reads whole blocks
            ones = np.concatenate([ones[:n], np.zeros(whole - n, dtype=ones.dtype)])
        rows: np.ndarray = compiled(blocks, n, ones, luts, offset, count, acc)
        return rows

    # Compile (or load from numba's cache) now, so a broken numba falls back to numpy. A cached
    # build that fails (seen once here, not reproduced) is compiled afresh without the cache.
    for cache in (True, False):
        compiled = numba.njit(cache=cache, nogil=True)(lut_candidates)
        try:
            blocks = np.zeros((1, 8, _BLOCK_ROWS), dtype=np.uint8)
            ones = np.zeros(_BLOCK_ROWS, dtype=np.uint16)
            kernel(blocks, ones, 2, np.zeros(64, np.float32), 1)
        except Exception:
            continue
        return kernel
    return None


_scanners: dict[int, Any] = {}


def _contiguous(*arrays: Any) -> bool:
    """Whether these numba types are C-contiguous arrays of unsigned integers or floats."""
    return all(
        getattr(a, "layout", None) == "C" and getattr(a.dtype, "bitwidth", 0) in (8, 16, 32)
        for a in arrays
    )


@lru_cache(maxsize=1)
def _block_scores() -> Any:
    """A numba intrinsic ``block_scores(sums, ones, first, offset, floor, scores) -> mask``:
    a block's 64 scores ``float32(sums[r]) + offset * float32(ones[first + r])`` (the same
    float32 operations, unfused, as in plain numba) into ``scores``, and a uint64 whose bit
    ``r`` says ``scores[r] > floor``. Plain LLVM vector operations, which every target lowers
    (one compare into a mask register with AVX-512); ``ones`` must hold ``first + 64`` rows."""
    import numba
    from llvmlite import ir
    from numba.extending import intrinsic

    @intrinsic
    def block_scores(
        typingctx: Any,  # noqa: ARG001
        sums: Any,
        ones: Any,
        first: Any,
        offset: Any,
        floor: Any,
        scores: Any,
    ) -> Any:  # pragma: no cover
        if not _contiguous(sums, ones, scores) or scores.dtype != numba.types.float32:
            return None  # a typing error: the IR below assumes these
        sum_bits, ones_bits = sums.dtype.bitwidth, ones.dtype.bitwidth

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            rows, f32 = _BLOCK_ROWS, ir.FloatType()
            vfloat = ir.VectorType(f32, rows)
            arrays = [
                context.make_array(signature.args[i])(context, builder, args[i]) for i in (0, 1, 5)
            ]
            start = context.cast(builder, args[2], signature.args[2], numba.types.intp)

            def load(data: Any, bits: int, at: Any) -> Any:
                vector = ir.VectorType(ir.IntType(bits), rows)
                pointer = builder.bitcast(builder.gep(data, [at]), vector.as_pointer())
                return builder.uitofp(builder.load(pointer, align=1), vfloat)

            zero = ir.Constant(ir.IntType(64), 0)
            total = load(arrays[0].data, sum_bits, zero)
            bits = load(arrays[1].data, ones_bits, start)

            def splat(value: Any) -> Any:
                one = builder.insert_element(ir.Constant(vfloat, None), value, zero)
                return builder.shuffle_vector(
                    one, one, ir.Constant(ir.VectorType(ir.IntType(32), rows), None)
                )

            score = builder.fadd(total, builder.fmul(splat(args[3]), bits))
            out = builder.bitcast(arrays[2].data, vfloat.as_pointer())
            builder.store(score, out, align=1)
            above = builder.fcmp_ordered(">", score, splat(args[4]))
            return builder.bitcast(above, ir.IntType(rows))

        signature = numba.types.uint64(sums, ones, first, offset, floor, scores)
        return signature, codegen

    _stable_identity(block_scores, "block_scores")
    return block_scores


@lru_cache(maxsize=1)
def _trailing_zeros() -> Any:
    """A numba intrinsic: the index (int64) of the lowest set bit of a nonzero uint64 (cttz)."""
    import numba
    from llvmlite import ir
    from numba.extending import intrinsic

    @intrinsic
    def trailing_zeros(typingctx: Any, x: Any) -> Any:  # noqa: ARG001  # pragma: no cover
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:  # noqa: ARG001
            return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

        return numba.types.int64(numba.types.uint64), codegen

    _stable_identity(trailing_zeros, "trailing_zeros")
    return trailing_zeros


def _block_scan(width: int) -> Any:
    """``scan_block(blocks, block, luts, out)`` as a numba intrinsic: per byte position, the 64
    codes' low and high nibbles index the byte's two 16-entry tables with PSHUFB (``width``
    bytes at a time: one instruction per 16, 32 or 64 rows), and the two lookups' sum (at most
    120) is widened and added to the row's sum (``out``'s dtype: uint16 or uint32). Width 0
    is the portable build for any CPU (16-byte vectors; per code bit, a compare and a select of
    its component's level, read from the tables): the same sums.

    Hand-written LLVM IR because no numpy or numba operation reaches a variable byte shuffle:
    LLVM's loop vectoriser turns a table lookup into gathers, not into PSHUFB.
    """
    if width not in _scanners:
        _scanners[width] = _make_block_scan(width)
    return _scanners[width]


def _stable_identity(intrinsic: Any, name: str) -> None:
    """Give a numba intrinsic the same identity in every process.

    numba's cache keys a closure-compiled function by the pickled contents of its closure; an
    intrinsic pickles with a random per-instance UUID, so a kernel closing over one missed the
    cache in every new process (recompiled, ~3 s, and one more cache file each time). A fixed
    UUID (per ragkit build: any edit of this file invalidates numba's cache anyway) makes the
    key stable. numba keeps that UUID private; without the hook, kernels still work, uncached.
    """
    set_uuid = getattr(intrinsic, "_set_uuid", None)
    if set_uuid is not None:
        try:
            set_uuid(f"ragkit.vectors.{name}")
        except AssertionError:  # already given one (this process pickled it): keep that
            pass


def _make_block_scan(width: int) -> Any:
    import numba
    from llvmlite import ir
    from numba.core import cgutils as numba_cgutils
    from numba.extending import intrinsic

    cgutils: Any = numba_cgutils  # untyped

    name = _PSHUFB.get(width, "")

    @intrinsic
    def scan_block(
        typingctx: Any,  # noqa: ARG001
        blocks: Any,
        block: Any,
        luts: Any,
        out: Any,
    ) -> Any:  # pragma: no cover
        if not _contiguous(blocks, luts, out) or blocks.ndim != 3 or luts.ndim != 3:
            return None  # a typing error: the IR below assumes C-contiguous uint8 codes, tables
        if blocks.dtype != numba.types.uint8 or luts.dtype != numba.types.uint8:
            return None
        sum_bits = out.dtype.bitwidth

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            lanes = width or 16  # the portable build: 16-byte vectors, which every target has
            i8, isum, intp = ir.IntType(8), ir.IntType(sum_bits), ir.IntType(64)
            vbytes, vsums = ir.VectorType(i8, lanes), ir.VectorType(isum, lanes)
            table = ir.VectorType(i8, 16)
            codes = context.make_array(signature.args[0])(context, builder, args[0])
            tables = context.make_array(signature.args[2])(context, builder, args[2])
            dest = context.make_array(signature.args[3])(context, builder, args[3])
            nbytes = builder.extract_value(codes.shape, 1)
            index = context.cast(builder, args[1], signature.args[1], numba.types.intp)
            block_bytes = builder.mul(nbytes, ir.Constant(intp, _BLOCK_ROWS))
            base = builder.gep(codes.data, [builder.mul(index, block_bytes)])
            if width:
                shuffle = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(vbytes, [vbytes, vbytes]), name
                )
            parts = _BLOCK_ROWS // lanes
            sums = [
                cgutils.alloca_once_value(builder, ir.Constant(vsums, None)) for _ in range(parts)
            ]
            nibble = ir.Constant(vbytes, [15] * lanes)
            four = ir.Constant(vbytes, [4] * lanes)
            # PSHUFB looks up within each 16-byte lane: repeat the table in every lane.
            repeat = ir.Constant(
                ir.VectorType(ir.IntType(32), lanes), [i % 16 for i in range(lanes)]
            )
            zero = ir.Constant(vbytes, None)

            def select_sum(pair: Any, row: Any) -> list[Any]:
                """The portable lookup: the sum over the byte's 8 bits of (bit set ? its
                component's level : 0), in plain vector operations. A component's level is
                the table entry of its bit alone (entry 1 << t of its nibble's table)."""
                levels = []
                for bit in range(8):
                    at = (1 << bit) if bit < 4 else 16 + (1 << (bit - 4))
                    level = builder.load(builder.gep(pair, [ir.Constant(intp, at)]))
                    one = builder.insert_element(zero, level, ir.Constant(ir.IntType(32), 0))
                    levels.append(builder.shuffle_vector(one, one, ir.Constant(repeat.type, None)))
                found = []
                for part in range(parts):
                    at = builder.gep(row, [ir.Constant(intp, part * lanes)])
                    c = builder.load(builder.bitcast(at, vbytes.as_pointer()), align=1)
                    total = zero
                    for bit in range(8):
                        mask = ir.Constant(vbytes, [1 << bit] * lanes)
                        on = builder.icmp_unsigned("!=", builder.and_(c, mask), zero)
                        total = builder.add(total, builder.select(on, levels[bit], zero))
                    found.append(total)
                return found

            def lookup(j: Any) -> list[Any]:
                """Byte position ``j``: each part's low + high table entries (<= 120)."""
                pair = builder.gep(tables.data, [builder.mul(j, ir.Constant(intp, 32))])
                if not width:
                    row = builder.gep(base, [builder.mul(j, ir.Constant(intp, _BLOCK_ROWS))])
                    return select_sum(pair, row)
                low = builder.load(builder.bitcast(pair, table.as_pointer()), align=1)
                high_at = builder.gep(pair, [ir.Constant(intp, 16)])
                high = builder.load(builder.bitcast(high_at, table.as_pointer()), align=1)
                low = builder.shuffle_vector(low, low, repeat)
                high = builder.shuffle_vector(high, high, repeat)
                row = builder.gep(base, [builder.mul(j, ir.Constant(intp, _BLOCK_ROWS))])
                found = []
                for part in range(parts):
                    at = builder.gep(row, [ir.Constant(intp, part * lanes)])
                    c = builder.load(builder.bitcast(at, vbytes.as_pointer()), align=1)
                    lo = builder.call(shuffle, [low, builder.and_(c, nibble)])
                    hi = builder.call(shuffle, [high, builder.and_(builder.lshr(c, four), nibble)])
                    found.append(builder.add(lo, hi))
                return found

            def accumulate(found: list[Any]) -> None:
                for part, value in enumerate(found):
                    wide = builder.zext(value, vsums)
                    builder.store(builder.add(builder.load(sums[part]), wide), sums[part])

            # Two byte positions are summed in bytes (<= 240) before one widening add.
            two = ir.Constant(intp, 2)
            with cgutils.for_range(builder, builder.udiv(nbytes, two)) as loop:
                j = builder.mul(loop.index, two)
                first = lookup(j)
                second = lookup(builder.add(j, ir.Constant(intp, 1)))
                accumulate([builder.add(x, y) for x, y in zip(first, second, strict=True)])
            odd = builder.icmp_unsigned("!=", builder.urem(nbytes, two), ir.Constant(intp, 0))
            with builder.if_then(odd):
                accumulate(lookup(builder.sub(nbytes, ir.Constant(intp, 1))))
            out_data = builder.bitcast(dest.data, isum.as_pointer())
            for part in range(parts):
                at = builder.gep(out_data, [ir.Constant(intp, part * lanes)])
                builder.store(
                    builder.load(sums[part]), builder.bitcast(at, vsums.as_pointer()), align=1
                )
            return context.get_dummy_value()

        return numba.types.void(blocks, block, luts, out), codegen

    _stable_identity(scan_block, f"scan_block.{width}")
    return scan_block
