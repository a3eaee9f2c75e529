"""The index: chunks, their vectors and their BM25 postings, kept in step, saved atomically.

:class:`Index` is what users build, update, search and save. ``add`` chunks and embeds new or
changed documents (unchanged ones, by content hash, are skipped), ``remove`` drops documents;
neither rebuilds the stores, and both leave the index as a from-scratch build of the same
documents would be. :func:`index_folder` brings an index on disk up to date with a folder.

On disk an index is a directory::

    PATH/CURRENT            name of the live generation, replaced atomically (os.replace)
    PATH/gen-…/manifest.json format name and version, settings, documents and their hashes
    PATH/gen-…/chunks.jsonl one chunk per line
    PATH/gen-…/bm25.npz     BM25 postings (numpy arrays, no pickle)
    PATH/gen-…/vectors.npz  keys and float32 vectors (absent for a keyword-only index)

A save writes a new generation and then swaps ``CURRENT``, so a crash at any point leaves the
previous index loadable. This module leaves out file loading (``loaders.py``), chunking rules
(``chunking.py``) and scoring (``bm25.py``, ``vectors.py``, ``fusion.py``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Union

import numpy as np

from .bm25 import BM25Index, lucene_idf
from .chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, chunk_document
from .embedders import Embedder, check_embeddings, default_embedder
from .errors import EmbeddingError, IndexFormatError, RagkitError
from .fusion import FUSION_METHODS, FusionMethod
from .loaders import DEFAULT_INCLUDE, DEFAULT_MAX_BYTES, LoadResult, load_folder
from .retrievers import BM25Retriever, HybridRetriever, Retriever, VectorRetriever
from .types import Chunk, Document, ScoredChunk
from .vectors import VectorStore

__all__ = [
    "DEFAULT_FUSION",
    "FORMAT_VERSION",
    "Index",
    "IndexUpdate",
    "build_dataset_index",
    "SearchMode",
    "index_folder",
    "open_index",
    "update_from_folder",
]

logger = logging.getLogger("ragkit")

FORMAT_NAME = "ragkit-index"
FORMAT_VERSION = 1
SearchMode = Literal["hybrid", "bm25", "vector"]
# Chosen on SciFact *train* by bench/tune_fusion.py, jointly with BM25's k1/b (grid: BM25 k1/b x
# rrf/minmax/zscore x vector weight 0.3..0.7 x depth 100..500 x rrf k): z-score fusion with equal
# weights over the top 500 of each retriever had the best train nDCG@10 (0.740; min-max's best
# 0.739, rrf's 0.724). Equal weights and a parameter-free normalisation carry over to other
# collections better than a tuned weight.
DEFAULT_FUSION: FusionMethod = "zscore"
DEFAULT_WEIGHTS: tuple[float, float] | None = None
DEFAULT_DEPTH = 500
EMBED_BATCH = 256

ProgressFn = Callable[[int, int], None]
EmbedderArg = Union[Embedder, None, Literal["default"]]  # noqa: UP007 - runtime alias on 3.10

_warned_keyword_only = False


def _resolve_embedder(embedder: EmbedderArg) -> Embedder | None:
    global _warned_keyword_only
    if embedder != "default":
        return embedder
    found = default_embedder()
    if found is None and not _warned_keyword_only:
        _warned_keyword_only = True
        logger.warning(
            "no embedder installed: indexing keyword-only (BM25). For hybrid search run "
            "`pip install torch==2.13.0` then `pip install 'ragkit[local]'`."
        )
    return found


def _embedding_text(chunk: Chunk) -> str:
    """What gets embedded and keyword-indexed: the heading path, then the chunk text.

    Headings give a chunk the context its own words may lack ("Install > From source").
    """
    if not chunk.headings:
        return chunk.text
    return " > ".join(chunk.headings) + "\n" + chunk.text


@dataclass(frozen=True, slots=True)
class IndexUpdate:
    """What an ``add``/``remove``/folder update changed, by document ID."""

    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    chunks_embedded: int = 0

    @property
    def changed(self) -> bool:
        """True when anything was added, replaced or removed."""
        return bool(self.added or self.replaced or self.removed)


class Index:
    """Chunks of documents with a BM25 index and (when an embedder is present) their vectors.

    Args:
        embedder: ``"default"`` (the offline MiniLM embedder when installed, else keyword-only),
            an :class:`~ragkit.embedders.Embedder`, or ``None`` for keyword-only.
        chunk_size: target chunk size in tokens.
        chunk_overlap: overlap between consecutive chunks in tokens.
        bm25_options: passed to :class:`~ragkit.bm25.BM25Index` (``variant``, ``k1``, ``b``).
        fusion: how hybrid search fuses the BM25 and vector rankings.
        weights: ``(bm25, vector)`` weights for fusion, default equal.
        depth: candidates each retriever contributes to hybrid fusion.

    Example:
        >>> index = Index(embedder=None)
        >>> _ = index.add([Document("a.md", "Cats purr."), Document("b.md", "Dogs bark."),
        ...                Document("c.md", "Fish swim.")])
        >>> index.search("purr", k=1)[0].chunk.id
        'a.md#0'
    """

    def __init__(
        self,
        *,
        embedder: EmbedderArg = "default",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
        bm25_options: Mapping[str, Any] | None = None,
        fusion: FusionMethod = DEFAULT_FUSION,
        weights: Sequence[float] | None = DEFAULT_WEIGHTS,
        depth: int = DEFAULT_DEPTH,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size ({chunk_size}) must be >= 1")
        if not 0 <= chunk_overlap < chunk_size:
            raise ValueError(
                f"chunk_overlap ({chunk_overlap}) must be >= 0 and smaller than "
                f"chunk_size ({chunk_size})"
            )
        if fusion not in FUSION_METHODS:
            raise ValueError(f"fusion {fusion!r} is not one of {', '.join(FUSION_METHODS)}")
        self.embedder = _resolve_embedder(embedder)
        self.built_with: str | None = self.embedder.name if self.embedder is not None else None
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.fusion: FusionMethod = fusion
        self.weights = None if weights is None else tuple(float(w) for w in weights)
        self.depth = depth
        self._bm25 = BM25Index(**dict(bm25_options or {}))
        self._vectors: VectorStore | None = None
        self._chunks: dict[int, Chunk] = {}
        self._doc_keys: dict[str, list[int]] = {}
        self._doc_hash: dict[str, str] = {}
        self._next_key = 0
        self._total_chars = 0

    # -- reading -------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of chunks."""
        return len(self._chunks)

    def __repr__(self) -> str:
        emb = self.embedder.name if self.embedder is not None else "keyword-only"
        return f"<Index {len(self._doc_keys)} documents, {len(self)} chunks, {emb}>"

    @property
    def total_chars(self) -> int:
        """Characters in all chunks (overlaps counted twice): a cheap size for planning."""
        return self._total_chars

    @property
    def has_vectors(self) -> bool:
        """True when the index has an embedder and so supports vector and hybrid search."""
        return self.embedder is not None

    @property
    def document_ids(self) -> tuple[str, ...]:
        """IDs of the indexed documents, sorted."""
        return tuple(sorted(self._doc_keys))

    @property
    def documents(self) -> Mapping[str, str]:
        """Document ID → SHA-256 of the text that was indexed."""
        return MappingProxyType(dict(sorted(self._doc_hash.items())))

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        """All chunks, ordered by document ID, then position in the document."""
        return tuple(
            self._chunks[key] for doc_id in sorted(self._doc_keys) for key in self._doc_keys[doc_id]
        )

    def chunk(self, chunk_id: str) -> Chunk:
        """The chunk with this ID.

        Raises:
            KeyError: no such chunk.
        """
        doc_id, _, ordinal = chunk_id.rpartition("#")
        keys = self._doc_keys.get(doc_id)
        if keys is not None and ordinal.isdigit() and int(ordinal) < len(keys):
            return self._chunks[keys[int(ordinal)]]
        raise KeyError(f"no chunk {chunk_id!r} in this index")

    def keyword_idf(self, terms: Sequence[str]) -> list[float]:
        """Lucene idf of each analysed term in this index (an unknown term gets the largest).

        Used by the evidence gate to weight the question's terms: matching a rare term is better
        evidence than matching a common one.
        """
        n = len(self._bm25)
        return [lucene_idf(df, n) for df in self._bm25.document_frequencies(terms)]

    # -- searching -----------------------------------------------------------------------------

    def retriever(
        self,
        mode: SearchMode | None = None,
        *,
        fusion: FusionMethod | None = None,
        weights: Sequence[float] | None = None,
        depth: int | None = None,
    ) -> Retriever:
        """A retriever over this index that sees later ``add``/``remove`` calls.

        Args:
            mode: ``"hybrid"`` (default with vectors), ``"bm25"`` (default without) or ``"vector"``.
            fusion: override the index's fusion method for hybrid mode.
            weights: override the ``(bm25, vector)`` fusion weights.
            depth: override how many candidates each retriever contributes to fusion.

        Raises:
            ValueError: vector or hybrid mode on a keyword-only index, or an unknown mode.
        """
        if mode is None:
            mode = "hybrid" if self.has_vectors else "bm25"
        bm25 = BM25Retriever(bm25=self._bm25, chunks=self._chunks)
        if mode == "bm25":
            return bm25
        if mode not in ("hybrid", "vector"):
            raise ValueError(f"mode {mode!r} is not one of hybrid, bm25, vector")
        if self.embedder is None:
            raise ValueError(
                f"mode {mode!r} needs vectors, but this index is keyword-only (built without an "
                "embedder); use mode='bm25', or rebuild with an embedder "
                "(pip install 'ragkit[local]')"
            )
        vector = VectorRetriever(
            store=self._vector_store(), chunks=self._chunks, embedder=self.embedder
        )
        if mode == "vector":
            return vector
        return HybridRetriever(
            [bm25, vector],
            fusion=fusion or self.fusion,
            weights=weights if weights is not None else self.weights,
            depth=depth or self.depth,
        )

    def search(
        self, query: str, k: int = 5, *, mode: SearchMode | None = None
    ) -> list[ScoredChunk]:
        """The ``k`` best chunks for ``query`` (see :meth:`retriever` for ``mode``)."""
        return self.retriever(mode).retrieve(query, k)

    # -- changing ------------------------------------------------------------------------------

    def _vector_store(self) -> VectorStore:
        if self._vectors is None:
            # Empty so far: the dimension is unknown until the first embedding. A retriever made
            # now searches this empty store; make a new one after adding documents.
            return VectorStore(1)
        return self._vectors

    def add(
        self, documents: Iterable[Document], *, progress: ProgressFn | None = None
    ) -> IndexUpdate:
        """Add documents, replacing any already indexed under the same ID.

        A document whose text is unchanged (same content hash) is neither re-chunked nor
        re-embedded. Embedding happens before anything in the index changes, so an error (or an
        interrupt) while embedding leaves the index as it was.

        Args:
            documents: the documents; a later duplicate ID wins.
            progress: called as ``progress(done_chunks, total_chunks)`` while embedding.
        """
        latest: dict[str, Document] = {}
        for doc in documents:
            if not isinstance(doc, Document):
                raise TypeError(
                    f"documents must be ragkit.Document objects, got {type(doc).__name__}"
                )
            latest[doc.id] = doc
        added: list[str] = []
        replaced: list[str] = []
        unchanged: list[str] = []
        pending: list[tuple[str, str, list[Chunk]]] = []
        for doc_id, doc in latest.items():
            digest = doc.content_hash
            if self._doc_hash.get(doc_id) == digest:
                unchanged.append(doc_id)
                continue
            (replaced if doc_id in self._doc_hash else added).append(doc_id)
            chunks = chunk_document(doc, size=self.chunk_size, overlap=self.chunk_overlap)
            pending.append((doc_id, digest, chunks))
        new_chunks = [c for _, _, chunks in pending for c in chunks]
        texts = [_embedding_text(c) for c in new_chunks]
        vectors = self._embed(texts, progress)
        # Nothing has changed yet; from here on only in-memory bookkeeping that cannot fail.
        self._drop(replaced)
        keys = np.arange(self._next_key, self._next_key + len(new_chunks), dtype=np.int64)
        self._next_key += len(new_chunks)
        position = 0
        for doc_id, digest, chunks in pending:
            doc_keys = [int(k) for k in keys[position : position + len(chunks)]]
            position += len(chunks)
            self._doc_keys[doc_id] = doc_keys
            self._doc_hash[doc_id] = digest
            for key, chunk in zip(doc_keys, chunks, strict=True):
                self._chunks[key] = chunk
                self._total_chars += len(chunk.text)
        if new_chunks:
            self._bm25.add(keys, texts)
            if vectors is not None:
                if self._vectors is None:
                    self._vectors = VectorStore(vectors.shape[1])
                self._vectors.add(keys, vectors)
        return IndexUpdate(tuple(added), tuple(replaced), tuple(unchanged), (), len(new_chunks))

    def _embed(self, texts: Sequence[str], progress: ProgressFn | None) -> np.ndarray | None:
        if self.embedder is None or not texts:
            return None
        dim = self._vectors.dim if self._vectors is not None else None
        parts: list[np.ndarray] = []
        total = len(texts)
        for start in range(0, total, EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            try:
                raw = self.embedder.embed(batch)
            except RagkitError:
                raise
            except Exception as exc:  # a third-party embedder's own failure
                raise EmbeddingError(f"embedder {self.embedder.name!r} failed: {exc}") from exc
            part = check_embeddings(raw, n=len(batch), dim=dim)
            dim = part.shape[1]
            parts.append(part)
            if progress is not None:
                progress(min(start + len(batch), total), total)
        return np.concatenate(parts, axis=0)

    def _drop(self, doc_ids: Iterable[str]) -> None:
        keys = [key for doc_id in doc_ids for key in self._doc_keys.get(doc_id, [])]
        if keys:
            self._bm25.remove(keys)
            if self._vectors is not None:
                self._vectors.remove(keys)
            for key in keys:
                self._total_chars -= len(self._chunks.pop(key).text)
        for doc_id in doc_ids:
            self._doc_keys.pop(doc_id, None)
            self._doc_hash.pop(doc_id, None)

    def remove(self, document_ids: Iterable[str]) -> IndexUpdate:
        """Remove documents by ID.

        Raises:
            KeyError: an ID is not in the index (nothing is removed then).
        """
        ids = list(dict.fromkeys(document_ids))
        missing = [doc_id for doc_id in ids if doc_id not in self._doc_keys]
        if missing:
            raise KeyError(f"not in the index: {', '.join(map(repr, missing))}")
        self._drop(ids)
        return IndexUpdate(removed=tuple(ids))

    # -- persistence ---------------------------------------------------------------------------

    def _manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "embedder": self.embedder.name if self.embedder is not None else None,
            "dim": self._vectors.dim if self._vectors is not None else None,
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
            "bm25": self._bm25.config(),
            "next_key": self._next_key,
            "documents": {
                doc_id: {"sha256": self._doc_hash[doc_id], "keys": self._doc_keys[doc_id]}
                for doc_id in sorted(self._doc_keys)
            },
        }

    def save(self, path: str | Path) -> Path:
        """Write the index to directory ``path`` atomically; returns the path.

        A new generation is written beside the current one, flushed to disk, and then made
        current with one atomic rename; older generations are removed afterwards. A process
        killed at any point leaves the previous index loadable.

        Raises:
            RagkitError: ``path`` is a file, or a non-empty directory that is not a ragkit index
                (refused so that a wrong path cannot clobber the user's files).
        """
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise RagkitError(f"cannot save the index to {root}: it is a file, not a directory")
        if root.is_dir() and any(root.iterdir()) and not (root / "CURRENT").exists():
            raise RagkitError(
                f"cannot save the index to {root}: the directory is not empty and is not a ragkit "
                "index; choose another --index path"
            )
        try:
            root.mkdir(parents=True, exist_ok=True)
            with open(root / ".lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                self._save_locked(root)
        except OSError as exc:  # disk full, permissions, read-only file system
            raise RagkitError(
                f"could not save the index to {root}: {exc}; the previous index, if any, is intact"
            ) from exc
        return root

    def _save_locked(self, root: Path) -> None:
        gen = f"gen-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        tmp = root / f".{gen}.tmp"
        tmp.mkdir()
        try:
            self._write_generation(tmp)
            os.rename(tmp, root / gen)
            pointer = root / ".CURRENT.tmp"
            with open(pointer, "w", encoding="utf-8") as fh:
                fh.write(gen + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(pointer, root / "CURRENT")
            _fsync_dir(root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        # Only now is the new generation live; older ones (and debris of crashed saves) go.
        for old in root.iterdir():
            if old.name != gen and (old.name.startswith("gen-") or old.name.startswith(".gen-")):
                shutil.rmtree(old, ignore_errors=True)

    def _write_generation(self, folder: Path) -> None:
        with open(folder / "chunks.jsonl", "w", encoding="utf-8") as fh:
            for key in sorted(self._chunks):
                c = self._chunks[key]
                record = {
                    "key": key,
                    "id": c.id,
                    "document_id": c.document_id,
                    "start": c.start,
                    "end": c.end,
                    "headings": list(c.headings),
                    "text": c.text,
                }
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        _save_npz(folder / "bm25.npz", self._bm25.state())
        if self._vectors is not None:
            _save_npz(folder / "vectors.npz", self._vectors.state())
        manifest = json.dumps(self._manifest(), indent=1, ensure_ascii=False)
        with open(folder / "manifest.json", "w", encoding="utf-8") as fh:
            fh.write(manifest)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(folder)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        embedder: EmbedderArg = "default",
        fusion: FusionMethod = DEFAULT_FUSION,
        weights: Sequence[float] | None = DEFAULT_WEIGHTS,
        depth: int = DEFAULT_DEPTH,
    ) -> Index:
        """Load an index saved by :meth:`save`.

        Args:
            path: the index directory.
            embedder: ``"default"`` uses the offline MiniLM embedder when the index was built with
                it; pass the embedder the index was built with otherwise. An index with vectors
                loaded where its embedder is unavailable falls back to keyword-only search, with
                a warning.

            fusion, weights, depth: hybrid search settings, as for :class:`Index`. They are
                query-time choices and are not stored in the index, so improved defaults in a
                newer ragkit apply to indexes built by an older one.

        Raises:
            IndexFormatError: missing, corrupt, truncated, or written by another format version.
            EmbeddingError: ``embedder`` is not the model the index was built with.
        """
        root = Path(path)
        folder, manifest = _read_manifest(root)
        try:
            return cls._from_generation(folder, manifest, embedder, fusion, weights, depth)
        except IndexFormatError:
            raise
        except (KeyError, TypeError, ValueError, OSError, json.JSONDecodeError, EOFError) as exc:
            raise IndexFormatError(
                f"index at {root} is corrupt: {type(exc).__name__}: {exc}"
            ) from exc

    @classmethod
    def _from_generation(
        cls,
        folder: Path,
        manifest: dict[str, Any],
        embedder: EmbedderArg,
        fusion: FusionMethod,
        weights: Sequence[float] | None,
        depth: int,
    ) -> Index:
        built_with = manifest["embedder"]
        chosen: Embedder | None
        if embedder == "default":
            chosen = default_embedder() if built_with is not None else None
            if built_with is not None and (chosen is None or chosen.name != built_with):
                logger.warning(
                    "index was built with embedder %r, which is not available here: "
                    "searching keyword-only (BM25)",
                    built_with,
                )
                chosen = None
        else:
            chosen = embedder
            if chosen is not None and built_with is not None and chosen.name != built_with:
                raise EmbeddingError(
                    f"index was built with embedder {built_with!r} but {chosen.name!r} was given; "
                    "queries must be embedded by the same model"
                )
            if chosen is not None and built_with is None:
                raise EmbeddingError(
                    "index is keyword-only; load it with embedder=None or rebuild it"
                )
        index = cls(
            embedder=None,
            chunk_size=int(manifest["chunk_size"]),
            chunk_overlap=int(manifest["chunk_overlap"]),
            fusion=fusion,
            weights=weights,
            depth=depth,
        )
        index.embedder = chosen
        index.built_with = built_with
        chunks: dict[int, Chunk] = {}
        with open(folder / "chunks.jsonl", encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                try:
                    r = json.loads(line)
                    chunks[int(r["key"])] = Chunk(
                        r["id"],
                        r["text"],
                        r["document_id"],
                        int(r["start"]),
                        int(r["end"]),
                        tuple(r["headings"]),
                    )
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    raise IndexFormatError(
                        f"{folder / 'chunks.jsonl'} line {line_no} is corrupt: {exc}"
                    ) from exc
        index._chunks = chunks
        index._total_chars = sum(len(c.text) for c in chunks.values())
        for doc_id, info in manifest["documents"].items():
            index._doc_keys[doc_id] = [int(k) for k in info["keys"]]
            index._doc_hash[doc_id] = str(info["sha256"])
        listed = sorted(k for keys in index._doc_keys.values() for k in keys)
        if listed != sorted(chunks):
            raise IndexFormatError(f"{folder}: manifest and chunks.jsonl disagree about the chunks")
        index._next_key = int(manifest["next_key"])
        index._bm25 = BM25Index.from_state(manifest["bm25"], _load_npz(folder / "bm25.npz"))
        if len(index._bm25) != len(chunks):
            raise IndexFormatError(
                f"{folder}: BM25 postings cover {len(index._bm25)} chunks, not {len(chunks)}"
            )
        if built_with is not None and (folder / "vectors.npz").exists():
            if chosen is not None:
                store = VectorStore.from_state(_load_npz(folder / "vectors.npz"))
                if len(store) != len(chunks):
                    raise IndexFormatError(
                        f"{folder}: {len(store)} vectors for {len(chunks)} chunks"
                    )
                index._vectors = store
        elif built_with is not None and chunks:
            raise IndexFormatError(f"{folder}: vectors.npz is missing")
        return index


def _read_manifest(root: Path) -> tuple[Path, dict[str, Any]]:
    """The live generation's folder and its validated manifest."""
    if not (root / "CURRENT").is_file():
        if not root.exists():
            raise IndexFormatError(
                f"no index at {root}; build one with `ragkit index DIR --index {root}`"
            )
        raise IndexFormatError(f"{root} is not a ragkit index (no CURRENT file)")
    try:
        gen = (root / "CURRENT").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{root}/CURRENT is unreadable: {exc}") from exc
    folder = root / gen
    if not gen or "/" in gen or not folder.is_dir():
        raise IndexFormatError(f"{root}/CURRENT names a missing generation {gen!r}")
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexFormatError(
            f"{folder / 'manifest.json'} is unreadable or corrupt: {exc}"
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise IndexFormatError(f"{folder / 'manifest.json'} is not a ragkit index manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise IndexFormatError(
            f"{root} has index format version {manifest.get('version')!r}; this ragkit reads "
            f"version {FORMAT_VERSION}. Rebuild it with `ragkit index`."
        )
    return folder, manifest


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **dict(arrays))  # type: ignore[arg-type]
        fh.flush()
        os.fsync(fh.fileno())


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError as exc:
        raise IndexFormatError(f"{path} is missing") from exc
    except Exception as exc:  # ValueError, OSError, zipfile.BadZipFile, EOFError from damage
        raise IndexFormatError(f"{path} is corrupt: {type(exc).__name__}: {exc}") from exc


def update_from_folder(
    index: Index,
    folder: str | Path,
    *,
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    fallback_encoding: str | None = None,
    progress: ProgressFn | None = None,
) -> tuple[IndexUpdate, LoadResult]:
    """Bring ``index`` in line with ``folder``: add new files, replace changed, remove deleted.

    Files that could not be loaded are reported in the returned ``LoadResult.skipped`` and are
    left as they were in the index (a file that became unreadable is not silently dropped).
    """
    loaded = load_folder(
        folder,
        include=include,
        exclude=exclude,
        max_bytes=max_bytes,
        fallback_encoding=fallback_encoding,
    )
    update = index.add(loaded.documents, progress=progress)
    present = {d.id for d in loaded.documents} | {s.path for s in loaded.skipped}
    gone = [doc_id for doc_id in index.document_ids if doc_id not in present]
    if gone:
        index.remove(gone)
    return (
        IndexUpdate(
            update.added, update.replaced, update.unchanged, tuple(gone), update.chunks_embedded
        ),
        loaded,
    )


def open_index(
    path: str | Path | None,
    *,
    embedder: EmbedderArg = "default",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
) -> Index:
    """The index saved at ``path`` if it has these settings, else a new empty one.

    A saved index built with other chunk settings or another embedder is not reused (it is
    replaced on the next save); one whose embedder is not installed here is refused, so that
    its vectors are not silently dropped.

    Raises:
        RagkitError: the saved index needs an embedder that is not available.
        IndexFormatError: the saved index is corrupt.
    """
    wanted = _resolve_embedder(embedder)
    if path is not None and (Path(path) / "CURRENT").exists():
        built_with = _read_manifest(Path(path))[1].get("embedder")
        if wanted is None and built_with is not None:
            raise RagkitError(
                f"the index at {path} was built with embedder {built_with!r}, which is not "
                "available here; install it (pip install 'ragkit[local]') so the index keeps its "
                "vectors, or choose another --index path for a keyword-only index"
            )
        try:
            index = Index.load(path, embedder=wanted)
        except EmbeddingError:
            logger.warning("the saved index used another embedder: rebuilding from scratch")
        else:
            if (index.chunk_size, index.chunk_overlap) == (chunk_size, chunk_overlap):
                return index
            logger.warning("chunk settings changed: rebuilding the index from scratch")
    return Index(embedder=wanted, chunk_size=chunk_size, chunk_overlap=chunk_overlap)


def build_dataset_index(
    corpus: Mapping[str, tuple[str, str]],
    *,
    keyword_only: bool = False,
    embedder: EmbedderArg = "default",
    cache: str | Path | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
    progress: ProgressFn | None = None,
) -> Index:
    """Index a test collection's corpus (``doc_id -> (title, text)``), reusing ``cache``.

    Each record becomes one document; a title becomes the document's top heading, so every chunk
    of a long record carries it. With ``cache``, the index is kept under ``cache/<kind>`` and
    updated incrementally, so a second run embeds nothing.
    """
    chosen: EmbedderArg = None if keyword_only else embedder
    target: Path | None = None
    if cache is not None:
        resolved = _resolve_embedder(chosen)
        kind = "keyword-only" if resolved is None else resolved.name.replace("/", "__")
        target = Path(cache) / f"{kind}-{chunk_size}-{chunk_overlap}"
        chosen = resolved
    index = open_index(target, embedder=chosen, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    documents = [
        Document(doc_id, f"# {title.strip()}\n\n{text}" if title.strip() else text)
        for doc_id, (title, text) in corpus.items()
        if (title + text).strip()
    ]
    index.add(documents, progress=progress)
    gone = [doc_id for doc_id in index.document_ids if doc_id not in corpus]
    if gone:
        index.remove(gone)
    if target is not None:
        index.save(target)
    return index


def index_folder(
    folder: str | Path,
    path: str | Path | None = None,
    *,
    embedder: EmbedderArg = "default",
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
    progress: ProgressFn | None = None,
) -> Index:
    """Build or update the index saved at ``path`` from the files in ``folder``, and return it.

    Incremental: unchanged files (by content hash) are neither re-chunked nor re-embedded,
    changed files are replaced and deleted files removed. If the saved index used other chunk
    settings or another embedder, it is rebuilt from scratch. Without ``path`` nothing is saved.

    Example:
        >>> index = index_folder("docs", ".ragkit/index")  # doctest: +SKIP
    """
    index = open_index(path, embedder=embedder, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    update_from_folder(index, folder, include=include, exclude=exclude, progress=progress)
    if path is not None:
        index.save(path)
    return index
