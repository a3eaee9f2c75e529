"""The index: documents chunked and embedded into a store, searched by keyword, vector or both.

:class:`Index` is what users build, update, search and save. It owns the stages every store
shares (chunking, embedding, fusion) and hands the rest to a :class:`ragkit.base.Store`: the
in-memory store (saved to a directory) or Postgres. ``add`` chunks and embeds new or changed
documents (unchanged ones, by content hash, are skipped), ``remove`` drops documents; neither
rebuilds anything. :func:`open_index` opens an index by location (a directory or a
``postgresql://`` URL) with the embedder it was built with, and :func:`index_folder` brings one
up to date with a folder.

Hashing and chunking documents before a write (:class:`Prepared`, :func:`keyword_text`,
:class:`IndexUpdate`) is ``ragkit.entries``; the names are re-exported here.

This module leaves out file loading (``ragkit.loaders``), chunking rules (``ragkit.chunking``),
scoring (``ragkit.bm25``, ``ragkit.vectors``, ``ragkit.fusion``) and storage (``ragkit.stores``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

import numpy as np

from .base import (
    DEFAULT_DEPTH,
    DEFAULT_FUSION,
    DocumentEntry,
    IndexSettings,
    Query,
    Reranker,
    SearchMode,
    Store,
)
from .bm25 import BM25Index, lucene_idf
from .embedders import Embedder, default_embedder, embed_checked, get_embedder
from .entries import (
    IndexUpdate,
    Prepared,
    PreparedDocument,
    document_hash,
    keyword_text,
    prepare_documents,
)
from .errors import RagkitError, SchemaError, SettingsMismatchError
from .filters import FilterSpec, parse_filter
from .fusion import FusionMethod
from .retrievers import BM25Retriever, HybridRetriever, Retriever, VectorRetriever
from .stores import load_store, open_store, writer
from .stores.memory import MemoryStore
from .types import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, Chunk, Document, ScoredChunk

if TYPE_CHECKING:
    from .contextual import SupportsContextualize

__all__ = [
    "Index",
    "IndexUpdate",
    "Prepared",
    "PreparedDocument",
    "document_hash",
    "keyword_text",
    "open_index",
    "writing",
]

logger = logging.getLogger("ragkit")

EMBED_BATCH = 256

ProgressFn = Callable[[int, int], None]
EmbedderArg = Union[Embedder, None, Literal["default"]]  # noqa: UP007 - runtime alias on 3.10

_warned_keyword_only = False


def _resolve_embedder(embedder: EmbedderArg) -> Embedder | None:
    global _warned_keyword_only
    if embedder != "default":
        if embedder is not None and not isinstance(embedder, Embedder):
            raise TypeError(
                "embedder must be an Embedder (name, dim, embed_documents, embed_query), "
                f"None or 'default', got {type(embedder).__name__}"
            )
        return embedder
    found = default_embedder()
    if found is None and not _warned_keyword_only:
        _warned_keyword_only = True
        logger.warning(
            "no embedder installed: indexing keyword-only (BM25). For hybrid search run "
            "`pip install 'ragkit-claude[local]'`."
        )
    return found


class Index:
    """Documents chunked into a store, with BM25 and (when an embedder is present) vectors.

    Args:
        store: where chunks, vectors and keyword statistics live; a new in-memory store by
            default. A store that already holds an index keeps its own settings.
        embedder: ``"default"`` (the offline embedder when installed, else keyword-only), an
            :class:`~ragkit.base.Embedder`, or ``None`` for keyword-only.
        chunk_size: target chunk size in tokens.
        chunk_overlap: overlap between consecutive chunks in tokens.
        bm25_options: the keyword index's ``variant``, ``k1`` and ``b``.

    Raises:
        SettingsMismatchError: ``store`` holds an index built with another embedder or
            chunking.

    Example:
        >>> index = Index(embedder=None)
        >>> _ = index.add([Document("a.md", "Cats purr."), Document("b.md", "Dogs bark."),
        ...                Document("c.md", "Fish swim.")])
        >>> index.search("purr", k=1)[0].chunk.id
        'a.md#0'
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        embedder: EmbedderArg = "default",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
        bm25_options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size ({chunk_size!r}) must be an integer >= 1")
        if not 0 <= chunk_overlap < chunk_size:
            raise ValueError(
                f"chunk_overlap ({chunk_overlap}) must be >= 0 and smaller than "
                f"chunk_size ({chunk_size})"
            )
        if store is not None and not isinstance(store, Store):
            raise TypeError(f"store must be a ragkit Store, got {type(store).__name__}")
        self.store: Store = store if store is not None else MemoryStore()
        existing = self.store.settings
        if existing is not None and embedder == "default":
            self.embedder = _embedder_for(existing)
        else:
            self.embedder = _resolve_embedder(embedder)
        if existing is not None:
            self._check_embedder(existing)
            self.settings = existing
        else:
            config = BM25Index(**dict(bm25_options or {})).config()  # the scoring parameters
            self.settings = IndexSettings(
                embedder=self.embedder.name if self.embedder is not None else None,
                dim=int(self.embedder.dim) if self.embedder is not None else None,
                chunk_size=chunk_size,
                chunk_overlap=chunk_overlap,
                bm25={k: config[k] for k in ("variant", "k1", "b", "epsilon")},
                analyzer=dict(self.store.analyzer.config()),
            )
            self.store.configure(self.settings)

    def _check_embedder(self, settings: IndexSettings) -> None:
        built = settings.embedder
        have = self.embedder.name if self.embedder is not None else None
        if built == have:
            return
        if built is None:
            raise SettingsMismatchError(
                f"the index at {self.store.location} is keyword-only (built without an "
                f"embedder); open it with embedder=None, or build a new index for {have!r}"
            )
        if have is None:
            return  # keyword-only search over an index with vectors; add() refuses
        raise SettingsMismatchError(
            f"the index at {self.store.location} was built with embedder {built!r}, not "
            f"{have!r}; queries must be embedded by the model that embedded the chunks"
        )

    # -- reading -------------------------------------------------------------------------------

    @property
    def chunk_size(self) -> int:
        """Target chunk size in tokens."""
        return self.settings.chunk_size

    @property
    def chunk_overlap(self) -> int:
        """Overlap between consecutive chunks in tokens."""
        return self.settings.chunk_overlap

    @property
    def built_with(self) -> str | None:
        """The name of the embedder the index was built with (``None``: keyword-only)."""
        return self.settings.embedder

    def __len__(self) -> int:
        """Number of chunks."""
        return self.store.stats().chunks

    def __repr__(self) -> str:
        stats = self.store.stats()
        emb = self.settings.embedder or "keyword-only"
        return (
            f"<Index {self.store.location}: {stats.documents} documents, {stats.chunks} chunks, "
            f"{emb}>"
        )

    @property
    def total_chars(self) -> int:
        """Characters in all chunks (overlaps counted twice): a cheap size for planning."""
        return self.store.stats().characters

    @property
    def has_vectors(self) -> bool:
        """True when the index has an embedder and so supports vector and hybrid search."""
        return self.embedder is not None and self.settings.embedder is not None

    @property
    def document_ids(self) -> tuple[str, ...]:
        """IDs of the indexed documents, sorted."""
        return tuple(sorted(self.store.document_hashes()))

    @property
    def documents(self) -> Mapping[str, str]:
        """Document ID → SHA-256 of the text that was indexed."""
        return self.store.document_hashes()

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        """All chunks, ordered by document ID, then position in the document."""
        return tuple(self.store.chunks())

    def chunk(self, chunk_id: str) -> Chunk:
        """The chunk with this ID.

        Raises:
            KeyError: no such chunk.
        """
        return self.store.get_chunk(chunk_id)

    def keyword_idf(self, terms: Sequence[str]) -> list[float]:
        """Lucene idf of each analysed term in this index (an unknown term gets the largest).

        Used by the evidence gate to weight the question's terms: matching a rare term is better
        evidence than matching a common one.
        """
        n, dfs = self.store.document_frequencies(terms)
        return [lucene_idf(df, n) for df in dfs]

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
            mode: ``"hybrid"`` (default with vectors), ``"bm25"`` (default without) or
                ``"vector"``.
            fusion: hybrid mode's fusion method (default z-score).
            weights: hybrid mode's ``(bm25, vector)`` weights (default equal).
            depth: candidates each ranking contributes to hybrid fusion.

        Raises:
            ValueError: vector or hybrid mode on a keyword-only index, or an unknown mode.
        """
        if mode is None:
            mode = "hybrid" if self.has_vectors else "bm25"
        bm25 = BM25Retriever(store=self.store)
        if mode == "bm25":
            return bm25
        if mode not in ("hybrid", "vector"):
            raise ValueError(f"mode {mode!r} is not one of hybrid, bm25, vector")
        if not self.has_vectors or self.embedder is None:
            raise ValueError(
                f"mode {mode!r} needs vectors, but this index is keyword-only (built without an "
                "embedder); use mode='bm25', or rebuild with an embedder "
                "(pip install 'ragkit-claude[local]')"
            )
        vector = VectorRetriever(store=self.store, embedder=self.embedder)
        if mode == "vector":
            return vector
        return HybridRetriever(
            [bm25, vector],
            fusion=fusion or DEFAULT_FUSION,
            weights=weights,
            depth=depth or DEFAULT_DEPTH,
        )

    def search(
        self,
        query: str | Query,
        k: int | None = None,
        *,
        where: FilterSpec | None = None,
        mode: SearchMode | None = None,
        rerank: str | Reranker | None = None,
    ) -> list[ScoredChunk]:
        """The ``k`` best chunks for ``query``, best first.

        Args:
            query: the text, or a :class:`~ragkit.base.Query` carrying every option.
            k: how many results (default 5; overrides a Query's ``k``).
            where: a metadata filter (``{"team": "billing"}``; see ``ragkit.filters``),
                applied inside the store before the top ``k``.
            mode: ``"hybrid"``, ``"bm25"`` or ``"vector"`` (see :meth:`retriever`).
            rerank: a reranker (or its name, see ``ragkit.rerankers``) that re-scores the top
                candidates; ``None`` for none.
        """
        q = self.query(query, k, where=where, mode=mode)
        return self.retriever_for(q, rerank=rerank).retrieve(q)

    def query(
        self,
        query: str | Query,
        k: int | None = None,
        *,
        where: FilterSpec | None = None,
        mode: SearchMode | None = None,
    ) -> Query:
        """``query`` as a :class:`~ragkit.base.Query` with the given overrides applied."""
        if isinstance(query, Query):
            q = query if k is None else replace(query, k=k)
        else:
            q = Query(query, 5 if k is None else k)
        if where is not None:
            q = replace(q, where=parse_filter(where))
        if mode is not None:
            q = replace(q, mode=mode)
        return q

    def retriever_for(self, query: Query, rerank: str | Reranker | None = None) -> Retriever:
        """The retriever that runs ``query`` (its mode and fusion settings), reranked by
        ``rerank`` when given (a :class:`~ragkit.rerankers.RerankRetriever`)."""
        base = self.retriever(
            query.mode, fusion=query.fusion, weights=query.weights, depth=query.depth
        )
        if rerank is None:
            return base
        from .rerankers import with_reranker

        return with_reranker(base, rerank)

    # -- changing ------------------------------------------------------------------------------

    def add(
        self,
        documents: Iterable[Document],
        *,
        progress: ProgressFn | None = None,
        contextualizer: SupportsContextualize | None = None,
    ) -> IndexUpdate:
        """Add documents, replacing any already indexed under the same ID.

        A document whose text and metadata are unchanged (same content hash) is neither
        re-chunked nor re-embedded. Of a changed document, only the chunks whose exact text
        (heading path and text) is new are embedded: the others keep their stored vectors, so
        an edit to a long document costs the chunks around it (not with a ``contextualizer``,
        whose contexts may change with the rest of the document). A document without a
        ``path`` in its metadata gets its ID there, so ``where={"path": {"$glob": ...}}`` works
        for every document. Embedding happens before the store changes, so an error (or an
        interrupt) while embedding leaves the index as it was. The same as
        ``write(prepare(documents))``.

        Args:
            documents: the documents; a later duplicate ID wins.
            progress: called as ``progress(done_chunks, total_chunks)`` while embedding.
            contextualizer: writes a context per new chunk (``ragkit.contextual``), indexed
                (keyword and vector) before the chunk's text; the chunk itself is unchanged.
        """
        return self.write(self.prepare(documents), progress=progress, contextualizer=contextualizer)

    def prepare(self, documents: Iterable[Document]) -> Prepared:
        """Hash every document and chunk the new or changed ones, without writing anything.

        Each document is hashed once and chunked at most once: a sync sizes its progress bar
        and its batches from the result, then hands it (or parts of it) to :meth:`write`.

        Args:
            documents: the documents; a later duplicate ID wins.
        """
        return prepare_documents(
            documents, self.store, chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap
        )

    def write(
        self,
        prepared: Prepared,
        *,
        progress: ProgressFn | None = None,
        contextualizer: SupportsContextualize | None = None,
    ) -> IndexUpdate:
        """Embed the prepared documents and write them to the store in one step.

        Args:
            prepared: what :meth:`prepare` returned (or a :meth:`Prepared.batches` part of it).
            progress: called as ``progress(done_chunks, total_chunks)`` while embedding.
            contextualizer: as for :meth:`add`.
        """
        pending = prepared.documents
        texts = [keyword_text(c) for p in pending for c in p.chunks]
        if contextualizer is not None and pending:
            from .contextual import contextualized_texts

            texts = contextualized_texts(
                contextualizer, [(p.document, list(p.chunks)) for p in pending], texts
            )
            known_vectors: dict[str, np.ndarray] = {}
        else:
            known_vectors = self._stored_vectors([p.document.id for p in pending if p.replaces])
        vectors, embedded = self._embed(texts, progress, known_vectors)
        entries: list[DocumentEntry] = []
        position = 0
        for p in pending:
            n = len(p.chunks)
            entries.append(
                DocumentEntry(
                    document_id=p.document.id,
                    content_hash=p.content_hash,
                    metadata=p.document.metadata,
                    chunks=p.chunks,
                    keyword_texts=tuple(texts[position : position + n]),
                    vectors=None if vectors is None else vectors[position : position + n],
                )
            )
            position += n
        if entries:
            self.store.write(entries)
        return IndexUpdate(
            tuple(p.document.id for p in pending if not p.replaces),
            tuple(p.document.id for p in pending if p.replaces),
            prepared.unchanged,
            (),
            embedded,
            len(texts) - embedded if vectors is not None else 0,
        )

    def record_source(self, source: Mapping[str, Any] | None) -> None:
        """Record how the index's folder is read (``ragkit.ingest.FolderSource.as_dict``);
        saved with the index, and used by a later sync that is given no source."""
        settings = replace(self.settings, source=None if source is None else dict(source))
        self.store.configure(settings)
        self.settings = settings

    def _stored_vectors(self, document_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Embedded text → stored vector, over the chunks of ``document_ids``."""
        found: dict[str, np.ndarray] = {}
        if self.settings.embedder is None:
            return found
        for doc_id in document_ids:
            stored = self.store.document_vectors(doc_id)
            if stored is not None:
                chunks, rows = stored
                found.update(zip((keyword_text(c) for c in chunks), rows, strict=True))
        return found

    def _embed(
        self,
        texts: Sequence[str],
        progress: ProgressFn | None,
        known: Mapping[str, np.ndarray],
    ) -> tuple[np.ndarray | None, int]:
        """One vector per text, and how many texts the embedder was given: a text in ``known``
        (or repeated in ``texts``) is not embedded again."""
        if self.settings.embedder is None or not texts:
            return None, 0
        new = list(dict.fromkeys(t for t in texts if t not in known))
        if not known and len(new) == len(texts):
            return self._embed_texts(texts, progress), len(texts)
        fresh = dict(zip(new, self._embed_texts(new, progress), strict=True)) if new else {}
        rows = [fresh[t] if t in fresh else known[t] for t in texts]
        return np.stack(rows).astype(np.float32, copy=False), len(new)

    def _embed_texts(self, texts: Sequence[str], progress: ProgressFn | None) -> np.ndarray:
        if self.embedder is None:
            raise RagkitError(
                f"the index at {self.store.location} has vectors from {self.settings.embedder!r}; "
                "open it with that embedder to add documents"
            )
        dim = self.settings.dim
        parts: list[np.ndarray] = []
        total = len(texts)
        batch_size = max(1, int(self.embedder.batch_size or EMBED_BATCH))
        for start in range(0, total, batch_size):
            batch = texts[start : start + batch_size]
            parts.append(embed_checked(self.embedder, batch, dim=dim))
            if progress is not None:
                progress(min(start + len(batch), total), total)
        return np.concatenate(parts, axis=0)

    def remove(self, document_ids: Iterable[str]) -> IndexUpdate:
        """Remove documents by ID.

        Raises:
            KeyError: an ID is not in the index (nothing is removed then).
        """
        if isinstance(document_ids, str):
            raise TypeError("document_ids must be a list of IDs, not one string")
        ids = list(dict.fromkeys(document_ids))
        known = self.store.document_hashes(ids)
        missing = [doc_id for doc_id in ids if doc_id not in known]
        if missing:
            raise KeyError(f"not in the index: {', '.join(map(repr, missing))}")
        if ids:
            self.store.write([], delete=ids)
        return IndexUpdate(removed=tuple(ids))

    def close(self) -> None:
        """Release the store's connections or files; the index is not used afterwards."""
        self.store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: str | Path | None = None) -> Path | str:
        """Make the index durable and return where it lives.

        An in-memory index is written to directory ``path`` (default: where it was loaded
        from) atomically: a process killed at any point leaves the previous index loadable. A
        database store is durable after every write; ``save()`` returns its location.

        Raises:
            ValueError: an in-memory index that was never saved, with no ``path``.
            RagkitError: ``path`` is a file, or a non-empty directory that is not a ragkit index.
        """
        return self.store.save(path)

    @classmethod
    def load(cls, path: str | Path, *, embedder: EmbedderArg = "default") -> Index:
        """Open the index saved at ``path`` (a directory or a ``postgresql://`` URL).

        Args:
            path: where the index lives.
            embedder: ``"default"`` reopens the index with the embedder it was built with (by
                name); pass an embedder object to use your own (its name must match), or
                ``None`` to search keyword-only.

        Raises:
            IndexFormatError: missing, corrupt, or written by another format version.
            SettingsMismatchError: ``embedder`` is not the model the index was built with.
            MissingDependencyError: the index's embedder needs an extra that is not installed.
        """
        store = load_store(path)
        if store.settings is None:
            raise SchemaError(
                f"no index at {store.location}; build one with `ragkit index DIR --index URL`"
            )
        return cls(store, embedder=embedder)


def _embedder_for(settings: IndexSettings) -> Embedder | None:
    """The embedder an index was built with, resolved by its stored name.

    Raises:
        MissingDependencyError: the embedder's extra is not installed (the message gives the
            pip command).
    """
    if settings.embedder is None:
        return None
    default = default_embedder()
    if default is not None and default.name == settings.embedder:
        return default
    return get_embedder(settings.embedder)


writing = writer
"""The writer lock of a location (``ragkit.stores.writer``, kept under this name)."""


def open_index(
    location: str | os.PathLike[str] | None,
    *,
    embedder: EmbedderArg = "default",
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    read_url: str | None = None,
) -> Index:
    """The index at ``location`` (a directory or a ``postgresql://`` URL), or a new one there.

    ``read_url`` (a ``postgresql://`` location only) is a streaming replica of ``location``:
    searches and answers read from it, writes and the write lock go to ``location``
    (docs/postgres.md, read replicas).

    An existing index keeps its own settings and is opened with the embedder it was built with.
    Asking for other settings is refused with a message saying what differs (an index is never
    silently rebuilt); build it elsewhere, or delete it first. ``None`` gives an unsaved
    in-memory index.

    Raises:
        SettingsMismatchError: the existing index has other settings than those asked for.
        IndexFormatError: the saved index is corrupt.
        MissingDependencyError: the saved index's embedder or the Postgres driver is missing.
        TypeError: ``location`` is neither a path, a URL nor ``None``.
    """
    if isinstance(location, os.PathLike):
        location = os.fspath(location)
    if location is not None and not isinstance(location, (str, Path)):
        raise TypeError(
            "location must be a directory path or a postgresql:// URL (or None for an in-memory "
            f"index), got {type(location).__name__}"
        )
    if location is None and read_url is not None:
        raise ValueError("read_url needs a postgresql:// location")
    store = (
        open_store(location, migrate=True, read_url=read_url)
        if location is not None
        else MemoryStore()
    )
    settings = store.settings
    size = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    overlap = DEFAULT_CHUNK_OVERLAP if chunk_overlap is None else chunk_overlap
    if settings is None:
        return Index(store, embedder=embedder, chunk_size=size, chunk_overlap=overlap)
    asked = []
    if chunk_size is not None and chunk_size != settings.chunk_size:
        asked.append(f"chunk size {chunk_size} (index: {settings.chunk_size})")
    if chunk_overlap is not None and chunk_overlap != settings.chunk_overlap:
        asked.append(f"overlap {chunk_overlap} (index: {settings.chunk_overlap})")
    if embedder not in ("default", None):
        name = getattr(embedder, "name", None)
        if name != settings.embedder:
            asked.append(f"embedder {name!r} (index: {settings.embedder!r})")
    if asked:
        raise SettingsMismatchError(
            f"the index at {store.location} was built with other settings: "
            + "; ".join(asked)
            + ". Every chunk would be rebuilt and re-embedded: use another index location, or "
            "delete this one first"
        )
    chosen = _embedder_for(settings) if embedder == "default" else embedder
    if embedder is None and settings.embedder is not None:
        raise SettingsMismatchError(
            f"the index at {store.location} has vectors from {settings.embedder!r}; updating it "
            "keyword-only would drop them. Install that embedder, or use another location"
        )
    return Index(store, embedder=chosen)


_MOVED = frozenset({"CHECKPOINT_SECONDS", "index_folder", "update_from_folder"})


def __getattr__(name: str) -> Any:
    """Names moved to :mod:`ragkit.ingest`, still importable from here for one release, with a
    ``DeprecationWarning`` (PEP 562)."""
    if name in _MOVED:
        import warnings

        from . import ingest

        if name != "update_from_folder":  # that one warns when it is called
            where = "ragkit.index_folder" if name == "index_folder" else f"ragkit.ingest.{name}"
            warnings.warn(
                f"ragkit.index.{name} is deprecated: use {where}", DeprecationWarning, stacklevel=2
            )
        return getattr(ingest, name)
    raise AttributeError(f"module 'ragkit.index' has no attribute {name!r}")
