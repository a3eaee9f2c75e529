"""ragkit's extension points, all in one place: what a third party implements to plug in.

- :class:`Embedder` (protocol): texts in, vectors out; documents and queries separately.
- :class:`Store` (protocol): where an index's chunks, vectors and keyword statistics live.
  ``ragkit.stores.memory.MemoryStore`` (in memory, saved to a directory) and
  ``ragkit.stores.postgres.PostgresStore`` (Postgres + pgvector) implement it.
- :class:`Loader` (protocol): one file's bytes in, a document's text and metadata out.
- :class:`Reranker` (protocol): re-scores the best fused candidates for a query.
- :class:`Retriever` (base class): a query in, scored chunks out; subclasses implement ``_search``.
- :class:`Corpus` (protocol): an index as planning and the gate read it (``ragkit.Index``).

Protocols are structural: an implementation needs no ragkit import. The retriever is a base
class because its subclasses share behaviour (argument checks, ``k`` clamping, stable order).

This module leaves out every implementation, and what happens around the stores: chunking,
embedding, fusion and answering stay in the :class:`~ragkit.index.Index` and above, shared by all
stores.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from .filters import Filter, FilterSpec, parse_filter
from .fusion import FUSION_METHODS, FusionMethod
from .types import Chunk, Document, Metadata, ScoredChunk

__all__ = [
    "DEFAULT_DEPTH",
    "DEFAULT_FUSION",
    "Corpus",
    "DocumentEntry",
    "Embedder",
    "IndexSettings",
    "Loader",
    "Query",
    "KeyedRankingStore",
    "RankingStore",
    "Reranker",
    "Retriever",
    "ScoreKind",
    "SearchMode",
    "Store",
    "StoreStats",
    "TextAnalyzer",
    "keyword_text",
]

SearchMode = Literal["hybrid", "bm25", "vector"]
"""How a query is searched: fused keyword + vector rankings, or one of them alone."""

ScoreKind = Literal["bm25", "cosine", "fused", "rerank", "other"]
"""What a retriever's scores mean; the evidence gate reads cosines by this, not by name."""

# Chosen on SciFact train by bench/tune_fusion.py (figures in docs/evaluation.md).
DEFAULT_FUSION: FusionMethod = "zscore"
DEFAULT_DEPTH = 500


@dataclass(frozen=True, slots=True)
class Query:
    """One search: the text and every option, so a new option is one field, not ten signatures.

    Attributes:
        text: the question or keywords.
        k: how many results.
        where: a metadata filter, applied inside each store before the top ``k``.
        mode: ``"hybrid"``, ``"bm25"`` or ``"vector"``; ``None`` picks hybrid when the index has
            vectors and bm25 otherwise.
        fusion: how hybrid search fuses the rankings (``"zscore"``, ``"minmax"``, ``"rrf"``).
        weights: ``(bm25, vector)`` fusion weights; ``None`` for equal.
        depth: candidates each ranking contributes to fusion.

    Example:
        >>> Query("refund policy", k=3, where={"team": "billing"}).where
        Field(key='team', op='eq', value='billing')
    """

    text: str
    k: int = 5
    where: Filter | None = None
    mode: SearchMode | None = None
    fusion: FusionMethod = DEFAULT_FUSION
    weights: tuple[float, float] | None = None
    depth: int = DEFAULT_DEPTH

    def __init__(
        self,
        text: str,
        k: int = 5,
        *,
        where: FilterSpec | None = None,
        mode: SearchMode | None = None,
        fusion: FusionMethod = DEFAULT_FUSION,
        weights: Sequence[float] | None = None,
        depth: int = DEFAULT_DEPTH,
    ) -> None:
        if not isinstance(text, str):
            raise TypeError(f"query must be a str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError("query must not be empty; pass the question or keywords to search for")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be an int, got {type(k).__name__}")
        if k < 1:
            raise ValueError(f"k ({k}) must be >= 1")
        if mode is not None and mode not in ("hybrid", "bm25", "vector"):
            raise ValueError(f"mode {mode!r} is not one of hybrid, bm25, vector")
        if fusion not in FUSION_METHODS:
            raise ValueError(f"fusion {fusion!r} is not one of {', '.join(FUSION_METHODS)}")
        if weights is not None:
            if len(weights) != 2 or any(not np.isfinite(w) or w < 0 for w in weights):
                raise ValueError(
                    f"weights ({list(weights)}) must be two finite non-negative numbers "
                    "(bm25, vector)"
                )
            weights = (float(weights[0]), float(weights[1]))
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth ({depth!r}) must be an integer >= 1")
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "k", int(k))
        object.__setattr__(self, "where", parse_filter(where))
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "fusion", fusion)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "depth", depth)

    def with_k(self, k: int) -> Query:
        """The same query asking for ``k`` results (``k`` already checked by the caller).

        Copies the validated fields instead of validating them again: retrieval asks for a
        deeper copy of every query, so this is on the hot path.
        """
        if k == self.k:
            return self
        copy = object.__new__(Query)
        for name in ("text", "where", "mode", "fusion", "weights", "depth"):
            object.__setattr__(copy, name, getattr(self, name))
        object.__setattr__(copy, "k", int(k))
        return copy


# -- embedders ---------------------------------------------------------------------------------


@runtime_checkable
class Embedder(Protocol):
    """Texts in, unit-length float32 vectors out; documents and queries embedded separately.

    Instruction prefixes and a provider's ``input_type`` live inside the embedder, so a model
    that embeds queries differently from documents needs nothing from its callers.

    Attributes:
        name: a stable identifier that includes the model and the dimension
            (``"minilm-l6-v2/384"``); stored in the index, so an index is reopened with the
            model that built it.
        dim: the vector dimension.
        batch_size: texts per call that the embedder handles well.
        max_input_tokens: longer inputs are truncated by the model.
    """

    name: str
    dim: int
    batch_size: int
    max_input_tokens: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """A float32 matrix ``(len(texts), dim)``; row ``i`` embeds ``texts[i]``."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """A float32 vector ``(dim,)`` for one query."""
        ...


# -- rerankers ---------------------------------------------------------------------------------


@runtime_checkable
class Reranker(Protocol):
    """Re-scores candidates for a query; returns them best first with the new scores.

    Attributes:
        name: a stable identifier (``"ms-marco-minilm-l6"``), reported with each result's scores.
    """

    name: str

    def rerank(self, query: str, candidates: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        """The candidates re-scored (higher is better), best first."""
        ...


# -- loaders -----------------------------------------------------------------------------------


@runtime_checkable
class Loader(Protocol):
    """Turns one file's bytes into a :class:`~ragkit.types.Document`.

    Attributes:
        suffixes: lower-case file suffixes it reads (``(".md", ".markdown")``).
    """

    @property
    def suffixes(self) -> tuple[str, ...]: ...

    def load(self, data: bytes, *, document_id: str) -> Document:
        """The document's text and the metadata found in the file (title, front matter, pages).

        Raises:
            ragkit.LoadError: the file cannot be read as this type; the reason says why.
        """
        ...


# -- stores ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexSettings:
    """What an index was built with; a store keeps it, and every writer must match it.

    Attributes:
        embedder: the embedder's ``name``, or ``None`` for a keyword-only index.
        dim: the vector dimension (``None`` when keyword-only or not yet known).
        chunk_size: target chunk size in tokens.
        chunk_overlap: overlap between consecutive chunks in tokens.
        bm25: the keyword index's settings (``variant``, ``k1``, ``b``).
        analyzer: the analyzer's settings (:meth:`ragkit.bm25.Analyzer.config`).
        source: how the index's folder was read (:meth:`ragkit.ingest.FolderSource.as_dict`),
            ``None`` when no folder sync recorded one. Unlike the other fields it may change on
            a used store (:meth:`Store.configure` records it); a sync with no source uses it.
    """

    embedder: str | None
    dim: int | None
    chunk_size: int
    chunk_overlap: int
    bm25: Mapping[str, Any] = field(default_factory=dict)
    analyzer: Mapping[str, Any] = field(default_factory=dict)
    source: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the on-disk and in-database record)."""
        return {
            "embedder": self.embedder,
            "dim": self.dim,
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
            "bm25": dict(self.bm25),
            "analyzer": dict(self.analyzer),
            "source": None if self.source is None else dict(self.source),
        }

    def require_same(self, wanted: IndexSettings, where: str) -> None:
        """Raise :class:`~ragkit.errors.SettingsMismatchError` unless ``wanted`` equals these
        settings (compared as JSON values, the recorded ``source`` left out: a sync may change
        it); the message names what differs.
        """
        old = json.loads(json.dumps(self.as_dict()))
        new = json.loads(json.dumps(wanted.as_dict()))
        old.pop("source")
        new.pop("source")
        if old == new:
            return
        from .errors import SettingsMismatchError

        if (self.embedder, self.dim) != (wanted.embedder, wanted.dim):
            raise SettingsMismatchError(
                f"{where} was built with embedder {self.embedder!r} (dimension {self.dim}), "
                f"not {wanted.embedder!r} (dimension {wanted.dim}); use that embedder, or build "
                "a new index elsewhere"
            )
        differ = ", ".join(f"{k}: {old[k]!r} != {new[k]!r}" for k in old if old[k] != new[k])
        raise SettingsMismatchError(
            f"{where} was built with other settings ({differ}); open it with its own "
            "settings, or build a new index elsewhere"
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexSettings:
        """Read :meth:`as_dict`'s form back; ``TypeError``/``KeyError`` when it does not fit."""
        embedder = data["embedder"]
        dim = data["dim"]
        if embedder is not None and not isinstance(embedder, str):
            raise TypeError(f"settings.embedder must be a string or null, got {embedder!r}")
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise TypeError(f"settings.dim must be a positive integer or null, got {dim!r}")
        size, overlap = data["chunk_size"], data["chunk_overlap"]
        for name, value in (("chunk_size", size), ("chunk_overlap", overlap)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"settings.{name} must be an integer, got {value!r}")
        if size < 1 or not 0 <= overlap < size:
            raise ValueError(
                f"settings.chunk_size ({size}) must be >= 1 and settings.chunk_overlap "
                f"({overlap}) from 0 to below it"
            )
        bm25, analyzer = data.get("bm25", {}), data.get("analyzer", {})
        if not isinstance(bm25, Mapping) or not isinstance(analyzer, Mapping):
            raise TypeError("settings.bm25 and settings.analyzer must be objects")
        source = data.get("source")
        if source is not None and not isinstance(source, Mapping):
            raise TypeError(f"settings.source must be an object or null, got {source!r}")
        return cls(
            embedder,
            dim,
            size,
            overlap,
            dict(bm25),
            dict(analyzer),
            None if source is None else dict(source),
        )


def keyword_text(chunk: Chunk) -> str:
    """What gets embedded and keyword-indexed: the heading path, then the chunk text.

    Headings give a chunk the context its own words may lack ("Install > From source").
    (Here, below the stores, so a store can re-derive what it indexed; ``ragkit.entries``
    re-exports it.)
    """
    if not chunk.headings:
        return chunk.text
    return " > ".join(chunk.headings) + "\n" + chunk.text


@dataclass(frozen=True, slots=True)
class DocumentEntry:
    """One document as a store receives it: its chunks, what to index and the vectors.

    Attributes:
        document_id: the document's ID.
        content_hash: SHA-256 of the document's text (incremental sync compares these).
        metadata: the document's metadata.
        chunks: its chunks in order (IDs ``f"{document_id}#{i}"``).
        keyword_texts: per chunk, the text the keyword index analyses (heading path + text).
        vectors: ``(len(chunks), dim)`` float32 unit rows, or ``None`` for keyword-only.
    """

    document_id: str
    content_hash: str
    metadata: Metadata
    chunks: tuple[Chunk, ...]
    keyword_texts: tuple[str, ...]
    vectors: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.keyword_texts) != len(self.chunks):
            raise ValueError(
                f"keyword_texts ({len(self.keyword_texts)}) must match chunks ({len(self.chunks)})"
            )
        if self.vectors is not None and self.vectors.shape[0] != len(self.chunks):
            raise ValueError(
                f"vectors ({self.vectors.shape[0]} rows) must match chunks ({len(self.chunks)})"
            )


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Sizes a store can report cheaply (whole-corpus planning reads these first)."""

    documents: int
    chunks: int
    characters: int


@runtime_checkable
class TextAnalyzer(Protocol):
    """Text → the terms a keyword index holds, the same for documents and queries
    (:class:`ragkit.bm25.Analyzer` is ragkit's; a store may bring its own).

    ``config()`` is JSON-serialisable and recorded in :attr:`IndexSettings.analyzer`, so an
    index reopens with the analyzer that built it.
    """

    def __call__(self, text: str) -> list[str]:
        """The terms of ``text``, in order, repeats kept."""
        ...

    def config(self) -> Mapping[str, object]:
        """The analyzer's settings (for :attr:`IndexSettings.analyzer`)."""
        ...


@runtime_checkable
class Store(Protocol):
    """Where an index's chunks, vectors and keyword statistics live.

    Each store owns its durability: :meth:`save` and :attr:`version`; the writer lock of a
    location is ``ragkit.stores.writer``. Writes are per document: :meth:`write` adds or
    replaces whole documents (old chunks go in
    the same step) and deletes others, atomically as seen by searches. Both searches apply the
    filter inside the store, before the top ``k``, so a filtered search returns
    ``min(k, matching chunks)`` results. Keyword search ranks with BM25 computed from the
    store's own statistics, analysed by :attr:`analyzer`, so every store ranks alike.

    Attributes:
        settings: what the index was built with, ``None`` for a new store.
        location: where the store lives, safe to print (a path, or a URL without password).
    """

    location: str

    @property
    def analyzer(self) -> TextAnalyzer:
        """The text analyzer the keyword side indexes with (the gate uses it too)."""
        ...

    @property
    def settings(self) -> IndexSettings | None: ...

    def configure(self, settings: IndexSettings) -> None:
        """Record the settings of a new store; refuse different settings on a used one, except
        for ``source``, which is recorded (a sync read the folder another way on purpose)."""
        ...

    def document_hashes(self, ids: Sequence[str] | None = None) -> Mapping[str, str]:
        """Document ID → content hash of every stored document (only of ``ids`` when given:
        a one-document update must not read every document's hash)."""
        ...

    def write(self, entries: Sequence[DocumentEntry], delete: Sequence[str] = ()) -> None:
        """Add or replace ``entries`` by document ID and delete the ``delete`` documents."""
        ...

    def document_vectors(self, document_id: str) -> tuple[tuple[Chunk, ...], np.ndarray] | None:
        """A stored document's chunks in order and their vectors (one row each); ``None`` when
        the document is not stored or the store holds no vectors. An edit re-embeds only the
        chunks whose text changed by reusing these rows."""
        ...

    def keyword_search(self, text: str, k: int, where: Filter | None = None) -> list[ScoredChunk]:
        """The ``k`` best chunks by BM25 for ``text`` among chunks matching ``where``."""
        ...

    def vector_search(
        self, vector: np.ndarray, k: int, where: Filter | None = None
    ) -> list[ScoredChunk]:
        """The ``k`` nearest chunks by cosine among chunks matching ``where``."""
        ...

    def chunks(self, where: Filter | None = None) -> Iterator[Chunk]:
        """Every chunk (matching ``where``), by document ID, then position."""
        ...

    def get_chunk(self, chunk_id: str) -> Chunk:
        """The chunk with this ID; ``KeyError`` when there is none."""
        ...

    def stats(self, where: Filter | None = None) -> StoreStats:
        """Documents, chunks and characters (of chunks matching ``where``)."""
        ...

    def document_frequencies(self, terms: Sequence[str]) -> tuple[int, list[int]]:
        """The number of chunks and, per analysed term, how many chunks contain it."""
        ...

    def close(self) -> None:
        """Release connections or files; the store is not used afterwards."""
        ...

    @property
    def version(self) -> str | None:
        """The saved state this store reflects: a directory store's generation (another
        writer's save makes a new one), ``None`` for a store that is always current (a
        database)."""
        ...

    def save(self, path: str | Path | None = None) -> str | Path:
        """Make every write durable and return where the store lives: a directory store
        writes ``path`` (default: where it was loaded from or first saved to) atomically; a
        database store is durable after each write and returns its location."""
        ...


@runtime_checkable
class Corpus(Protocol):
    """An index as planning and the evidence gate see it: a store of chunks, the settings and
    embedder it was built with, and retrievers over it.

    :class:`ragkit.Index` implements it; planning code checks for this protocol, never for the
    concrete class, so another index type (or a test's fake) plugs in without subclassing.
    """

    @property
    def store(self) -> Store: ...

    @property
    def settings(self) -> IndexSettings: ...

    @property
    def embedder(self) -> Embedder | None: ...

    def retriever_for(self, query: Query, rerank: str | Reranker | None = None) -> Retriever:
        """The retriever that runs ``query``, reranked by ``rerank`` when given."""
        ...

    def keyword_idf(self, terms: Sequence[str]) -> list[float]:
        """Lucene idf of each analysed term (the gate weighs the question's terms by it)."""
        ...


@runtime_checkable
class RankingStore(Protocol):
    """A store that can rank without reading chunks (optional, besides :class:`Store`).

    Hybrid search asks each side for hundreds of candidates and returns a handful: with these
    methods it reads only ``(chunk ID, score)`` pairs per side and fetches the fused top ``k``'s
    chunks once. Rankings hold the same IDs and scores as the matching searches, best first,
    ties broken by chunk ID.
    """

    def keyword_ranking(
        self, text: str, k: int, where: Filter | None = None
    ) -> list[tuple[str, float]]:
        """``keyword_search`` as ``(chunk ID, score)`` pairs."""
        ...

    def vector_ranking(
        self, vector: np.ndarray, k: int, where: Filter | None = None
    ) -> list[tuple[str, float]]:
        """``vector_search`` as ``(chunk ID, score)`` pairs."""
        ...

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these IDs, in that order; ``KeyError`` for an unknown ID."""
        ...


@runtime_checkable
class KeyedRankingStore(Protocol):
    """A store whose rankings name chunks by integer keys (optional, a faster RankingStore).

    Hybrid search then fuses arrays of keys (``ragkit.fusion.fused_scores``) and reads chunk IDs
    only for the fused top ``k`` and for ties. Rankings are ``(keys, scores)`` arrays (int64,
    float64) holding the same chunks and scores as the matching searches, in their order (best
    first, ties by chunk ID), at most ``k`` long. Keys are private to one store object, which
    never reuses one: a chunk removed or replaced since the ranking makes :meth:`chunks_at`
    raise ``KeyError``.
    """

    def keyword_keys(
        self, text: str, k: int, where: Filter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``keyword_search`` as ``(keys, scores)``."""
        ...

    def vector_keys(
        self, vector: np.ndarray, k: int, where: Filter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``vector_search`` as ``(keys, scores)``."""
        ...

    def chunks_at(self, keys: Sequence[int]) -> list[Chunk]:
        """The chunks with these keys, in that order; ``KeyError`` for a key no longer held."""
        ...


# -- retrievers --------------------------------------------------------------------------------


class Retriever(ABC):
    """Base class for retrievers: implement ``_search``; call ``retrieve``.

    Subclasses take their configuration as keyword-only ``__init__`` arguments and set ``name``
    (the key under which a hybrid retriever reports their scores) and ``score_kind``.

    Example:
        >>> class Everything(Retriever):
        ...     name = "everything"
        ...     def __init__(self, chunks): self.chunks = chunks
        ...     def _search(self, query):
        ...         return [ScoredChunk(c, 1.0) for c in self.chunks]
    """

    name: str = "retriever"
    score_kind: ScoreKind = "other"

    @abstractmethod
    def _search(self, query: Query) -> list[ScoredChunk]:
        """Return up to ``query.k`` (more is tolerated) scored chunks matching ``query.where``."""

    def size(self) -> int | None:
        """Number of chunks this retriever searches, or ``None`` when it cannot tell."""
        return None

    def score_kinds(self) -> Mapping[str, ScoreKind]:
        """What each contributor's score in a result's ``scores`` means, by name (fused
        retrievers report their parts; a plain retriever has none)."""
        return {}

    def retrieve(self, query: str | Query, k: int | None = None) -> list[ScoredChunk]:
        """The ``k`` best chunks for ``query``, best first.

        Args:
            query: the text, or a :class:`Query` carrying ``k``, a filter and search options.
            k: how many results (overrides ``query.k``; default 5 for a text query).

        Ties are broken by chunk ID, so the order is deterministic. ``k`` larger than the index
        is clamped; an empty index returns ``[]``.

        Raises:
            TypeError: ``query`` is not a string or Query, or ``k`` not an integer.
            ValueError: ``query`` is empty or blank, or ``k < 1``.
        """
        if isinstance(query, Query):
            q = query if k is None else _with_k(query, k)
        elif isinstance(query, str):
            q = Query(query, 5 if k is None else k)
        else:
            raise TypeError(f"query must be a str or ragkit.Query, got {type(query).__name__}")
        n = self.size()
        if n is not None:
            if n == 0:
                return []
            q = q.with_k(min(q.k, n))
        results = self._search(q)
        results.sort(key=lambda sc: (-sc.score, sc.chunk.id))
        return results[: q.k]


def _with_k(query: Query, k: int) -> Query:
    """``query`` asking for ``k`` results, with ``k`` checked as :class:`Query` checks it."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k ({k}) must be >= 1")
    return query.with_k(int(k))
