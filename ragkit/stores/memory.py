"""The in-memory store: BM25 postings, vectors and chunks in this process, saved to a directory.

:class:`MemoryStore` implements :class:`ragkit.base.Store` with ``ragkit.bm25.BM25Index`` (keyword
side), ``ragkit.vectors.VectorStore`` (exact scan, compressed first pass at scale) and a map of
integer chunk keys to chunks. Filters become a boolean mask over keys, computed once per
document (chunks share their document's metadata) and cached until the next write; both
searches apply the mask before their top ``k``.

Concurrency: any number of threads may search while one writes. Writes prepare everything
(analysis, validation) before taking the write lock and then apply in-memory bookkeeping that
cannot fail, so a search sees the store before or after a write, never half of one.

This module leaves out chunking and embedding (``ragkit.index``) and the file format
(``ragkit.stores.disk``).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..base import DocumentEntry, IndexSettings, StoreStats, keyword_text
from ..bm25 import Analyzer, BM25Index
from ..errors import IndexConflictError, IndexFormatError, RagkitError
from ..filters import Filter, matches
from ..types import Chunk, ScoredChunk, freeze_metadata
from ..vectors import VectorStore
from ._chunk_rows import ChunkRows
from ._chunk_table import (
    _blame,
    _chunks_from_columns,
    _chunks_from_lines,
    _expect,
    _jsonable,
)
from .disk import (
    Generation,
    current_generation,
    read_generation,
    write_generation,
    writer_lock,
)

__all__ = ["MemoryStore"]

# From this many chunks on (the vector store's default ``binary_threshold``, where search is a
# compressed first pass and re-scoring anyway), vectors are held as float16: half the memory.
_HALF_FROM = 200_000
# After a write of this many chunks, freed heap memory is handed back to the system.
_TRIM_AFTER = 10_000
# Chunks written once the store holds this many keep their texts compressed (zlib level 1):
# about half the bytes, a few microseconds per chunk read.
_PACK_FROM = 100_000
# A write removing at most this many chunks re-analyses them for the BM25 index's removal.
_HINT_CHUNKS = 1024


class _RWLock:
    """Many readers or one writer; a waiting writer holds back new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class MemoryStore:
    """A :class:`ragkit.base.Store` held in memory; :meth:`save` and :meth:`load` a directory.

    Example:
        >>> store = MemoryStore()
        >>> store.stats().chunks
        0
    """

    def __init__(self, *, analyzer: Analyzer | None = None, location: str = "memory") -> None:
        self.analyzer = analyzer if analyzer is not None else Analyzer()
        self.location = location
        self._settings: IndexSettings | None = None
        self._bm25 = BM25Index(analyzer=self.analyzer)
        self._vector_store: VectorStore | None = None
        self._pending_vectors: Callable[[], VectorStore] | None = None
        self._pending_lock = threading.Lock()
        self._chunks = ChunkRows()
        self._doc_keys: dict[str, Sequence[int]] = {}
        self._doc_hash: dict[str, str] = {}
        self._doc_meta: dict[str, Mapping[str, Any]] = {}
        self._next_key = 0
        self._total_chars = 0
        self._lock = _RWLock()
        self._version = 0
        self._masks: dict[Filter, npt.NDArray[np.bool_]] = {}
        self._masks_version = 0
        self._masks_lock = threading.Lock()
        # The generation of ``location`` this store was loaded from or last saved as: a save
        # to ``location`` refuses to replace a generation another writer made meanwhile.
        self._generation: str | None = None
        self._hashes: tuple[int, _SortedSnapshot] | None = None

    @property
    def _vectors(self) -> VectorStore | None:
        """The vectors; those of a store loaded with ``vectors="when used"`` load here, once."""
        if self._pending_vectors is not None:
            with self._pending_lock:
                if self._pending_vectors is not None:
                    self._vector_store = self._pending_vectors()
                    self._pending_vectors = None
        return self._vector_store

    @_vectors.setter
    def _vectors(self, value: VectorStore | None) -> None:
        self._vector_store = value
        self._pending_vectors = None

    def __repr__(self) -> str:
        return (
            f"<MemoryStore {self.location}: {len(self._doc_keys)} documents, "
            f"{len(self._chunks)} chunks>"
        )

    # -- settings --------------------------------------------------------------------------

    @property
    def settings(self) -> IndexSettings | None:
        """What the index was built with (``None`` until :meth:`configure`)."""
        return self._settings

    def configure(self, settings: IndexSettings) -> None:
        """Record the settings of a new store; refuse different settings on a used one (a
        different ``source`` is recorded).

        Raises:
            SettingsMismatchError: the store was built with other settings.
        """
        if self._settings is not None:
            self._settings.require_same(settings, f"the index at {self.location}")
            if settings.source != self._settings.source:
                with self._lock.write():
                    self._settings = replace(self._settings, source=settings.source)
            return
        with self._lock.write():
            self._settings = settings
            self.analyzer = (
                Analyzer.from_config(settings.analyzer) if settings.analyzer else self.analyzer
            )
            self._bm25 = BM25Index(analyzer=self.analyzer, **dict(settings.bm25))
            self._version += 1

    # -- reading ---------------------------------------------------------------------------

    def document_hashes(self, ids: Sequence[str] | None = None) -> Mapping[str, str]:
        """Document ID → SHA-256 of its text, sorted by ID (only ``ids`` when given)."""
        with self._lock.read():
            if ids is not None:
                hashes = self._doc_hash
                return {i: hashes[i] for i in ids if i in hashes}
            cached = self._hashes
            if cached is not None and cached[0] == self._version:
                return cached[1]
            # A plain copy (sorting is deferred to the first iteration): Index.add and remove
            # read this before every write, so it must not cost a sort of every document ID.
            snapshot = _SortedSnapshot(dict(self._doc_hash))
            self._hashes = (self._version, snapshot)
            return snapshot

    def document_vectors(self, document_id: str) -> tuple[tuple[Chunk, ...], np.ndarray] | None:
        with self._lock.read():
            keys = self._doc_keys.get(document_id)
            if not keys or self._vectors is None:
                return None
            return tuple(self._chunks[k] for k in keys), self._vectors.get(keys)

    def document_metadata(self, document_id: str) -> Mapping[str, Any]:
        """The stored metadata of one document; ``KeyError`` when there is none."""
        with self._lock.read():
            return self._doc_meta[document_id]

    def stats(self, where: Filter | None = None) -> StoreStats:
        """Documents, chunks and characters (of the chunks matching ``where``)."""
        with self._lock.read():
            if where is None:
                return StoreStats(len(self._doc_keys), len(self._chunks), self._total_chars)
            mask = self._mask(where)
            docs = chunks = chars = 0
            for keys in self._doc_keys.values():
                hit = [k for k in keys if k < len(mask) and mask[k]]
                if hit:
                    docs += 1
                    chunks += len(hit)
                    chars += sum(self._chunks.chars_of(k) for k in hit)
            return StoreStats(docs, chunks, chars)

    def chunks(self, where: Filter | None = None) -> Iterator[Chunk]:
        """Every chunk (matching ``where``), by document ID, then position (a snapshot)."""
        with self._lock.read():
            mask = self._mask(where) if where is not None else None
            picked = [
                self._chunks[key]
                for doc_id in sorted(self._doc_keys)
                for key in self._doc_keys[doc_id]
                if mask is None or (key < len(mask) and mask[key])
            ]
        return iter(picked)

    def get_chunk(self, chunk_id: str) -> Chunk:
        """The chunk with this ID; ``KeyError`` when there is none."""
        doc_id, _, ordinal = chunk_id.rpartition("#")
        with self._lock.read():
            keys = self._doc_keys.get(doc_id)
            if keys is not None and ordinal.isdigit() and int(ordinal) < len(keys):
                return self._chunks[keys[int(ordinal)]]
        raise KeyError(f"no chunk {chunk_id!r} in this index")

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these IDs, in that order; ``KeyError`` for an unknown ID."""
        return [self.get_chunk(chunk_id) for chunk_id in chunk_ids]

    def keyword_ranking(
        self, text: str, k: int, where: Filter | None = None
    ) -> list[tuple[str, float]]:
        """:meth:`keyword_search` as ``(chunk ID, score)`` pairs (no :class:`ScoredChunk` made)."""
        tokens = self.analyzer(text)
        with self._lock.read():
            allowed = self._mask(where) if where is not None else None
            keys, scores = self._bm25.search_tokens(tokens, k, allowed=allowed, with_ties=True)
            return self._ranked_pairs(keys, scores, k)

    def vector_ranking(
        self, vector: np.ndarray, k: int, where: Filter | None = None
    ) -> list[tuple[str, float]]:
        """:meth:`vector_search` as ``(chunk ID, score)`` pairs (no :class:`ScoredChunk` made)."""
        with self._lock.read():
            if self._vectors is None or not len(self._vectors):
                return []
            allowed = self._mask(where) if where is not None else None
            keys, scores = self._vectors.search(vector, k, allowed=allowed, with_ties=True)
            return self._ranked_pairs(keys, scores, k)

    def keyword_keys(
        self, text: str, k: int, where: Filter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`keyword_search` as ``(keys, scores)`` arrays (``KeyedRankingStore``)."""
        tokens = self.analyzer(text)
        with self._lock.read():
            allowed = self._mask(where) if where is not None else None
            keys, scores = self._bm25.search_tokens(tokens, k, allowed=allowed, with_ties=True)
            return self._ranked_keys(keys, scores, k)

    def vector_keys(
        self, vector: np.ndarray, k: int, where: Filter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`vector_search` as ``(keys, scores)`` arrays (``KeyedRankingStore``)."""
        with self._lock.read():
            if self._vectors is None or not len(self._vectors):
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
            allowed = self._mask(where) if where is not None else None
            keys, scores = self._vectors.search(vector, k, allowed=allowed, with_ties=True)
            return self._ranked_keys(keys, scores, k)

    def chunks_at(self, keys: Sequence[int]) -> list[Chunk]:
        """The chunks with these keys, in that order; ``KeyError`` for a key no longer held."""
        with self._lock.read():
            chunks = self._chunks
            return [chunks[key] for key in keys]

    def document_frequencies(self, terms: Sequence[str]) -> tuple[int, list[int]]:
        """The number of chunks and how many contain each analysed term."""
        with self._lock.read():
            return len(self._bm25), self._bm25.document_frequencies(terms)

    @property
    def dim(self) -> int | None:
        """The vector dimension, or ``None`` with no vectors."""
        return self._vectors.dim if self._vectors is not None else None

    def keyword_search(self, text: str, k: int, where: Filter | None = None) -> list[ScoredChunk]:
        """The ``k`` best chunks by BM25 among those matching ``where``."""
        tokens = self.analyzer(text)
        with self._lock.read():
            allowed = self._mask(where) if where is not None else None
            keys, scores = self._bm25.search_tokens(tokens, k, allowed=allowed, with_ties=True)
            return self._ranked(keys, scores, k)

    def vector_search(
        self, vector: np.ndarray, k: int, where: Filter | None = None
    ) -> list[ScoredChunk]:
        """The ``k`` nearest chunks by cosine among those matching ``where``."""
        with self._lock.read():
            if self._vectors is None or not len(self._vectors):
                return []
            allowed = self._mask(where) if where is not None else None
            keys, scores = self._vectors.search(vector, k, allowed=allowed, with_ties=True)
            return self._ranked(keys, scores, k)

    def _ranked(self, keys: np.ndarray, scores: np.ndarray, k: int) -> list[ScoredChunk]:
        """The top ``k`` by score, ties broken by chunk ID (the order every store returns).

        ``keys``/``scores`` come best first with every key tied at the ``k``-th score; only
        when two neighbours tie is the order redone by chunk ID (a vectorised check).
        """
        chunks = self._chunks
        found = [chunks[key] for key in keys.tolist()]
        values = scores.tolist()
        if len(found) > 1 and bool(np.any(scores[1:] == scores[:-1])):
            ids = np.array([c.id for c in found])
            order = np.lexsort((ids, -np.asarray(scores, dtype=np.float64)))[:k].tolist()
            return [ScoredChunk(found[i], float(values[i])) for i in order]
        return [ScoredChunk(c, float(v)) for c, v in zip(found[:k], values[:k], strict=True)]

    def _ranked_pairs(
        self, keys: np.ndarray, scores: np.ndarray, k: int
    ) -> list[tuple[str, float]]:
        """:meth:`_ranked` as ``(chunk ID, score)`` pairs, in the same order."""
        keys, values = self._ranked_keys(keys, scores, k)
        id_of = self._chunks.id_of
        return [(id_of(key), v) for key, v in zip(keys.tolist(), values.tolist(), strict=True)]

    def _ranked_keys(
        self, keys: np.ndarray, scores: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_ranked` as ``(keys, scores)`` arrays, in the same order."""
        keys = np.asarray(keys, dtype=np.int64)
        values = np.asarray(scores, dtype=np.float64)
        if len(keys) > 1:
            tied = values[1:] == values[:-1]
            if tied.any():
                # Only keys in a run of equal scores need their IDs (a deep BM25 ranking has
                # many such runs): their IDs' order breaks the tie, 0 does for the rest.
                run = np.zeros(len(keys), dtype=np.bool_)
                run[1:] |= tied
                run[:-1] |= tied
                id_of = self._chunks.id_of
                where = np.flatnonzero(run)
                ids = [id_of(key) for key in keys[where].tolist()]
                second = np.zeros(len(keys), dtype=np.int64)
                second[where] = np.argsort(np.argsort(np.array(ids), kind="stable"))
                order = np.lexsort((second, -values))[:k]
                return keys[order], values[order]
        return keys[:k], values[:k]

    def _mask(self, where: Filter) -> npt.NDArray[np.bool_]:
        """``mask[key]`` true for chunks matching ``where``; cached per filter until a write."""
        with self._masks_lock:
            if self._masks_version != self._version:
                self._masks.clear()
                self._masks_version = self._version
            cached = self._masks.get(where)
        if cached is not None:
            return cached
        mask = np.zeros(self._next_key, dtype=np.bool_)
        self._fill_mask(mask, where, self._doc_keys)
        with self._masks_lock:
            if self._masks_version == self._version and len(self._masks) < 64:
                self._masks[where] = mask
        return mask

    def _fill_mask(
        self, mask: npt.NDArray[np.bool_], where: Filter, doc_ids: Iterable[str]
    ) -> None:
        """Set ``mask[key]`` for every chunk of ``doc_ids`` (one verdict per document when its
        chunks share the document's metadata)."""
        for doc_id in doc_ids:
            meta = self._doc_meta[doc_id]
            verdict: bool | None = None
            for key in self._doc_keys[doc_id]:
                chunk_meta = self._chunks.metadata_of(key)
                if chunk_meta is meta:
                    if verdict is None:
                        verdict = matches(where, meta)
                    mask[key] = verdict
                else:
                    mask[key] = matches(where, chunk_meta)

    def _carry_masks(self, before: int, written: Sequence[str], dropped: Sequence[int]) -> None:
        """Bring the cached filter masks across a write (called under the write lock).

        Only the written documents' chunks are evaluated, so the first filtered search after a
        one-document update does not re-evaluate the filter on every document. Masks that were
        already stale before the write are left for :meth:`_mask` to drop.
        """
        with self._masks_lock:
            if self._masks_version != before:
                return
            for where, old in list(self._masks.items()):
                mask = np.zeros(self._next_key, dtype=np.bool_)
                mask[: len(old)] = old
                mask[list(dropped)] = False
                self._fill_mask(mask, where, written)
                self._masks[where] = mask
            self._masks_version = self._version

    # -- writing ---------------------------------------------------------------------------

    def write(self, entries: Sequence[DocumentEntry], delete: Sequence[str] = ()) -> None:
        """Add or replace ``entries`` (by document ID) and delete the ``delete`` documents.

        Everything that can fail (validation, text analysis) happens before the store changes.

        Raises:
            RagkitError: the store is not configured.
            EmbeddingError / ValueError: vectors missing, unexpected or of the wrong shape.
        """
        settings = self._settings
        if settings is None:
            raise RagkitError("the store has no settings yet: call configure() first")
        latest = {e.document_id: e for e in entries}
        drop = [d for d in dict.fromkeys(delete) if d not in latest]
        for entry in latest.values():
            if (entry.vectors is None) != (settings.embedder is None) and entry.chunks:
                raise ValueError(
                    f"document {entry.document_id!r}: vectors must be given exactly when the "
                    f"index has an embedder ({settings.embedder!r})"
                )
            if entry.vectors is not None and entry.vectors.shape[1:] != (settings.dim,):
                raise ValueError(
                    f"document {entry.document_id!r}: vectors of shape {entry.vectors.shape} "
                    f"for an index of dimension {settings.dim}"
                )
        tokens = [self.analyzer(t) for e in latest.values() for t in e.keyword_texts]
        gone = self._removal_tokens([*latest, *drop])
        texts = [c.text for e in latest.values() for c in e.chunks]
        encoded = ChunkRows.encode(texts, pack=len(self._chunks) + len(texts) >= _PACK_FROM)
        del texts
        with self._lock.write():
            self._apply(list(latest.values()), drop, tokens, gone, encoded)
        if len(tokens) >= _TRIM_AFTER:
            del tokens
            _release_free_memory()

    def _removal_tokens(self, doc_ids: Sequence[str]) -> dict[int, list[str]]:
        """Chunk key → the analysed keyword text of the chunks a write will remove.

        The BM25 index keeps no forward index (a few bytes per posting): these tokens tell it a
        removed chunk's terms without a search of its postings. They are re-analysed from the
        stored chunk as ``Index`` indexes it (heading path, then text); the index checks them
        against its postings, so a chunk indexed with other text (a contextualizer's) costs only
        that search. Skipped for large removals, where one pass over the postings is cheaper.
        """
        with self._lock.read():
            keys = [k for d in doc_ids for k in self._doc_keys.get(d, ())]
            if not keys or len(keys) > _HINT_CHUNKS:
                return {}
            chunks = [self._chunks[k] for k in keys]
        return {k: self.analyzer(keyword_text(c)) for k, c in zip(keys, chunks, strict=True)}

    def _apply(
        self,
        entries: list[DocumentEntry],
        drop: list[str],
        tokens: list[list[str]],
        gone: Mapping[int, list[str]] | None = None,
        encoded: tuple[list[bytes], np.ndarray] | None = None,
    ) -> None:
        before = self._version
        dropped = self._drop([e.document_id for e in entries] + drop, gone or {})
        n = sum(len(e.chunks) for e in entries)
        keys = np.arange(self._next_key, self._next_key + n, dtype=np.int64)
        self._next_key += n
        position = self._next_key - n
        vector_parts: list[np.ndarray] = []
        chunks: list[Chunk] = []
        ordinals: list[int] = []
        metas: list[Mapping[str, Any]] = []
        for entry in entries:
            # Keys of a document are consecutive: a range costs 48 bytes, a list of ints ~40
            # per chunk.
            doc_keys = range(position, position + len(entry.chunks))
            position += len(entry.chunks)
            meta = freeze_metadata(entry.metadata)
            self._doc_keys[entry.document_id] = doc_keys
            self._doc_hash[entry.document_id] = entry.content_hash
            self._doc_meta[entry.document_id] = meta
            for ordinal, chunk in enumerate(entry.chunks):
                chunks.append(chunk)
                ordinals.append(ordinal)
                # One metadata object per document in memory when the chunk's equals it.
                metas.append(meta if chunk.metadata == meta else chunk.metadata)
                self._total_chars += len(chunk.text)
            if entry.vectors is not None:
                vector_parts.append(entry.vectors)
        if n:
            self._chunks.add(keys.tolist(), chunks, ordinals, metas, encoded)
            del chunks
            # Chunks indexed under other text than their own (a contextualizer's) keep their
            # term ids: a removal could not re-derive them from the stored chunk.
            own = [
                text == keyword_text(chunk)
                for e in entries
                for chunk, text in zip(e.chunks, e.keyword_texts, strict=True)
            ]
            self._bm25.add_tokens(keys, tokens, keep_terms=None if all(own) else np.invert(own))
            if vector_parts:
                matrix = np.concatenate(vector_parts, axis=0)
                if self._vectors is None:
                    self._vectors = VectorStore(matrix.shape[1], half_from=_HALF_FROM)
                self._vectors.add(keys, matrix)
        self._version += 1
        self._carry_masks(before, [e.document_id for e in entries], dropped)

    def _drop(self, doc_ids: Sequence[str], gone: Mapping[int, list[str]]) -> list[int]:
        keys = [key for doc_id in doc_ids for key in self._doc_keys.get(doc_id, [])]
        if keys:
            hints = [gone.get(k) for k in keys] if gone else None
            self._bm25.remove(keys, hints)
            if self._vectors is not None:
                self._vectors.remove(keys)
            self._total_chars -= self._chunks.remove(keys)
        for doc_id in doc_ids:
            self._doc_keys.pop(doc_id, None)
            self._doc_hash.pop(doc_id, None)
            self._doc_meta.pop(doc_id, None)
        return keys

    def close(self) -> None:
        """Nothing to release; present for the :class:`~ragkit.base.Store` protocol."""

    # -- persistence -----------------------------------------------------------------------

    @property
    def version(self) -> str | None:
        """The generation this store was loaded from or last saved as (``None``: never)."""
        return self._generation

    def save(self, path: str | Path | None = None, *, lock: bool = True) -> Path:
        """Write the store to directory ``path`` atomically (see ``ragkit.stores.disk``).

        Args:
            path: the index directory; ``None`` for where it was loaded from, or first saved to.
            lock: take the directory's writer lock (pass ``False`` when already holding it).

        A save to the directory this store was loaded from (or last saved to) checks, under
        the lock, that no other writer saved it meanwhile: a load → change → save cycle never
        silently replaces another writer's update.

        Raises:
            ValueError: no ``path`` for a store that was never saved.
            IndexLockedError: another process kept the directory locked.
            IndexConflictError: another writer saved ``path`` after this store was loaded
                from it; load it again and reapply the change.
            RagkitError: ``path`` is a file or a foreign non-empty directory, or the disk
                failed (the previous index, if any, stays intact).
        """
        if path is None:
            if self.location == "memory":
                raise ValueError("this index was never saved: pass save(path)")
            path = self.location
        root = Path(path)
        if self._settings is None:
            raise RagkitError("cannot save a store with no settings: configure() it first")
        try:
            if lock:
                with writer_lock(root):
                    self._save(root)
            else:
                self._save(root)
        except OSError as exc:  # disk full, permissions, read-only file system
            raise RagkitError(
                f"could not save the index to {root}: {exc.strerror or exc}; the previous index, "
                "if any, is intact"
            ) from exc
        return root

    def _is_home(self, root: Path) -> bool:
        if self.location == "memory":
            return False
        try:
            return Path(self.location).resolve() == root.resolve()
        except OSError:
            return False

    def _save(self, root: Path) -> None:
        settings = self._settings
        assert settings is not None
        home = self._is_home(root)
        if home:
            live = current_generation(root)
            if live != self._generation:
                seen = self._generation or "no index"
                raise IndexConflictError(
                    f"the index at {root} was saved by another writer after this process "
                    f"loaded it ({seen}, now {live}); saving would lose that update. Load it "
                    "again and reapply your change"
                )
        with self._lock.read():
            # Columns straight from the chunk rows: no Chunk object per chunk.
            chunk_table = self._chunks.columns(self._doc_meta)
            n_chunks = len(self._chunks)
            documents = {
                doc_id: {
                    "sha256": self._doc_hash[doc_id],
                    "keys": list(self._doc_keys[doc_id]),
                    "metadata": _jsonable(self._doc_meta[doc_id]),
                }
                for doc_id in sorted(self._doc_keys)
            }
            bm25_state = dict(self._bm25.state())  # fresh arrays already: no second copy
            vector_state = (
                {k: np.array(v) for k, v in self._vectors.state().items()}
                if self._vectors is not None
                else None
            )
            next_key = self._next_key

        files: dict[str, Any] = {
            "chunks.npz": lambda fh: np.savez(fh, **chunk_table),  # type: ignore[arg-type]
            "bm25.npz": lambda fh: np.savez(fh, **bm25_state),  # type: ignore[arg-type]
        }
        if vector_state is not None:
            files["vectors.npz"] = lambda fh: np.savez(fh, **vector_state)  # type: ignore[arg-type]
        manifest = {
            "settings": settings.as_dict(),
            "next_key": next_key,
            "counts": {
                "documents": len(documents),
                "chunks": n_chunks,
                "vectors": 0 if vector_state is None else int(len(vector_state["keys"])),
            },
            "documents": documents,
        }
        gen = write_generation(root, files, manifest)
        if home or self.location == "memory":
            # A store that had no directory now lives in the one it was first saved to.
            self.location = str(root)
            self._generation = gen

    @classmethod
    def load(cls, path: str | Path, *, vectors: Literal["now", "when used"] = "now") -> MemoryStore:
        """Load a store saved by :meth:`save`, verifying every file.

        Every field is type-checked and the files are checked against each other (the
        manifest's documents, the chunks, the BM25 postings and the vectors must list the same
        keys), so damage is found here, never later in a search.

        ``vectors="when used"`` leaves ``vectors.npz`` unread until the vectors are first used
        (a vector search, a write, a save), where it is verified and checked the same way: a
        keyword search never reads it (``ragkit search --mode bm25``), and damage to it is
        found at that first use.

        Raises:
            IndexFormatError: missing, damaged, tampered with, or of another format version;
                the message names the file.
        """
        root = Path(path)
        gen = read_generation(root, defer=("vectors.npz",) if vectors == "when used" else ())
        return cls._from_generation(gen, str(root))

    @classmethod
    def _from_generation(cls, gen: Generation, location: str) -> MemoryStore:
        folder, manifest = gen.folder, gen.manifest
        where = folder / "manifest.json"
        with _blame(where):
            settings = IndexSettings.from_dict(
                _expect(manifest.get("settings"), dict, where, "settings")
            )
            store = cls(location=location)
            store.configure(settings)  # builds the analyzer and BM25 from the settings
            docs = _expect(manifest.get("documents"), dict, where, "documents")
            counts = _expect(manifest.get("counts"), dict, where, "counts")
            next_key = _expect(manifest.get("next_key"), int, where, "next_key")
            chunk_name = "chunks.jsonl" if manifest.get("version") == 2 else "chunks.npz"
            for name in (chunk_name, "bm25.npz"):
                if name not in gen.files:
                    raise IndexFormatError(f"{where} does not list {name}")
            if settings.embedder is None and "vectors.npz" in (*gen.files, *gen.deferred):
                raise IndexFormatError(
                    f"{where}: settings say keyword-only, but the generation has vectors.npz"
                )
            for doc_id, info in docs.items():
                info = _expect(info, dict, where, f"documents[{doc_id!r}]")
                keys = _expect(info.get("keys"), list, where, f"documents[{doc_id!r}].keys")
                if not all(isinstance(k, int) and not isinstance(k, bool) for k in keys):
                    raise IndexFormatError(f"{where}: documents[{doc_id!r}].keys must be integers")
                store._doc_keys[doc_id] = keys
                store._doc_hash[doc_id] = _expect(info.get("sha256"), str, where, "sha256")
                meta = _expect(info.get("metadata", {}), dict, where, "metadata")
                store._doc_meta[doc_id] = freeze_metadata(meta)
        chunk_file = folder / chunk_name
        if chunk_name == "chunks.jsonl":
            chunks = _chunks_from_lines(gen.files[chunk_name], chunk_file, store._doc_meta)
        else:
            with _blame(chunk_file):
                chunks = _chunks_from_columns(
                    gen.npz(chunk_name), chunk_file, store._doc_keys, store._doc_meta
                )
        listed = sorted(k for keys in store._doc_keys.values() for k in keys)
        if len(set(listed)) != len(listed):
            raise IndexFormatError(f"{where}: a chunk key is listed under two documents")
        if listed != sorted(chunks):
            missing = sorted(set(listed) - set(chunks))[:3]
            extra_keys = sorted(set(chunks) - set(listed))[:3]
            raise IndexFormatError(
                f"{where} and {chunk_file.name} disagree: keys {missing} are listed but not in "
                f"{chunk_file.name}, keys {extra_keys} are there but not listed"
            )
        if counts.get("chunks") != len(chunks) or counts.get("documents") != len(docs):
            raise IndexFormatError(
                f"{where}: counts {counts!r} do not match {len(docs)} documents and "
                f"{len(chunks)} chunks"
            )
        for doc_id, keys in store._doc_keys.items():
            for ordinal, key in enumerate(keys):
                c = chunks[key]
                if c.document_id != doc_id or c.id != f"{doc_id}#{ordinal}":
                    raise IndexFormatError(
                        f"{chunk_file}: chunk {key} does not belong where {where.name} lists it"
                    )
        if listed and listed[-1] >= next_key:
            raise IndexFormatError(f"{where}: next_key {next_key} is not above every chunk key")
        store._total_chars = sum(len(c.text) for c in chunks.values())
        store._chunks = _rows_of(chunks, store._doc_keys)
        del chunks
        store._next_key = next_key
        bm25_file = folder / "bm25.npz"
        with _blame(bm25_file):
            state = gen.npz("bm25.npz")
            store._bm25 = BM25Index.from_state(
                {**store._bm25.config(), **dict(settings.bm25)}, state
            )
            store._bm25.analyzer = store.analyzer
            bm25_keys = np.asarray(state["keys"]).tolist()
            if bm25_keys != listed:
                raise IndexFormatError(
                    f"{bm25_file}: the postings' keys are not the chunks' keys in ascending order"
                )
        if settings.embedder is not None and len(store._chunks):
            vector_file = folder / "vectors.npz"

            def read_vectors() -> VectorStore:
                with _blame(vector_file):
                    return _checked_vectors(gen, settings, counts, listed, where)

            if vector_file.name in gen.deferred:
                store._pending_vectors = read_vectors
            else:
                store._vectors = read_vectors()
        store._generation = folder.name
        return store


def _checked_vectors(
    gen: Generation,
    settings: IndexSettings,
    counts: Mapping[str, Any],
    listed: Sequence[int],
    where: Path,
) -> VectorStore:
    """The vectors of a generation, checked against its chunk keys, settings and counts."""
    vector_file = gen.folder / "vectors.npz"
    vectors = VectorStore.from_state(gen.npz("vectors.npz"), half_from=_HALF_FROM)
    if len(vectors) != len(listed) or sorted(vectors.keys().tolist()) != listed:
        raise IndexFormatError(f"{vector_file}: the vectors' keys do not match the chunks")
    if settings.dim is not None and vectors.dim != settings.dim:
        raise IndexFormatError(
            f"{vector_file}: vectors of dimension {vectors.dim}, settings say {settings.dim}"
        )
    if counts.get("vectors") != len(vectors):
        raise IndexFormatError(
            f"{where}: counts say {counts.get('vectors')!r} vectors, "
            f"{vector_file.name} holds {len(vectors)}"
        )
    return vectors


def _release_free_memory() -> None:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim``; elsewhere nothing).

    A large write frees the analysed tokens, the callers' texts and numpy temporaries, hundreds
    of MB that glibc keeps mapped between the objects that stay; trimming after the write keeps
    that out of the process's resident size (bench/RESULTS.md, "Memory at 1M chunks").
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


class _SortedSnapshot(Mapping[str, str]):
    """A read-only mapping over a private copy, iterated in key order (sorted when first needed).

    Lookups cost what a dict's do; only iteration pays for the sort, once.
    """

    __slots__ = ("_data", "_order")

    def __init__(self, data: dict[str, str]) -> None:
        self._data = data
        self._order: list[str] | None = None

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[str]:
        if self._order is None:
            self._order = sorted(self._data)
        return iter(self._order)

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: {self._data[k]!r}' for k in self)}}}"


def _rows_of(chunks: dict[int, Chunk], doc_keys: dict[str, Sequence[int]]) -> ChunkRows:
    """A loaded chunk table as :class:`ChunkRows` (the documents' key lists become ranges
    where their keys are consecutive, as every save of this store writes them)."""
    rows = ChunkRows()
    keys: list[int] = []
    ordinals: list[int] = []
    for doc_id, listed in doc_keys.items():
        if len(listed) and list(listed) == list(range(listed[0], listed[0] + len(listed))):
            doc_keys[doc_id] = range(listed[0], listed[0] + len(listed))
        keys.extend(listed)
        ordinals.extend(range(len(listed)))
    picked = [chunks[k] for k in keys]
    rows.add(keys, picked, ordinals, [c.metadata for c in picked])
    return rows
