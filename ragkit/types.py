"""The data that flows between ragkit's stages: frozen dataclasses with validation only.

``Document`` (loaders) → ``Chunk`` (chunking) → ``ScoredChunk`` (retrieval and fusion) →
``Answer`` with ``Citation`` and ``Usage`` (answering). Collections inside them are tuples and
read-only mappings, so every value can be shared between threads and hashed into caches.

This module leaves out behaviour: no I/O, no scoring, no formatting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "Answer",
    "Chunk",
    "Citation",
    "Document",
    "Metadata",
    "ScoredChunk",
    "Strategy",
    "Usage",
    "freeze_metadata",
]

Metadata = Mapping[str, Any]
"""A read-only mapping of metadata: JSON-like values (str, int, float, bool, None, lists)."""

Strategy = Literal["retrieve", "full", "none"]
"""How an answer's context was chosen: retrieved chunks, the whole corpus, or no call at all."""

_EMPTY: Mapping[str, float] = MappingProxyType({})
_NO_METADATA: Metadata = MappingProxyType({})


DEFAULT_CHUNK_SIZE = 256
"""Default largest chunk, in tokens (``ragkit.chunking``)."""

DEFAULT_CHUNK_OVERLAP = 32
"""Default overlap between consecutive chunks of a document, in tokens."""


def _freeze_value(key: str, value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_freeze_value(key, v) for v in value)
    if hasattr(value, "isoformat"):  # date, datetime: stored as ISO 8601 text, compared as such
        return str(value.isoformat())
    raise TypeError(
        f"metadata[{key!r}] must be a str, number, bool, None, date or a list of those, "
        f"got {type(value).__name__}"
    )


def freeze_metadata(metadata: Mapping[str, Any] | None) -> Metadata:
    """A read-only copy of ``metadata`` with JSON-like values (lists become tuples).

    Example:
        >>> dict(freeze_metadata({"tags": ["a", "b"]}))
        {'tags': ('a', 'b')}
    """
    if not metadata:
        return _NO_METADATA
    if isinstance(metadata, MappingProxyType) and all(
        isinstance(v, (str, bool, int, float, tuple, type(None))) for v in metadata.values()
    ):
        return metadata
    frozen: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"metadata keys must be str, got {type(key).__name__}")
        frozen[key] = _freeze_value(key, value)
    return MappingProxyType(frozen)


@dataclass(frozen=True, slots=True)
class Document:
    """One source document: its ID (path relative to the indexed folder, ``/`` separated), text
    and metadata (read-only; loaders fill ``path``, ``suffix``, ``size``, ``mtime``, ``title``
    and markdown front-matter fields, and user code may add its own).

    Example:
        >>> Document("guide/intro.md", "# Intro\\nHello").content_hash[:8]
        '2c4ad051'
    """

    id: str
    text: str
    metadata: Metadata = field(default_factory=lambda: _NO_METADATA)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"Document.id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.text, str):
            raise TypeError(
                f"Document.text must be a str, got {type(self.text).__name__} "
                "(decode bytes first, e.g. data.decode('utf-8'))"
            )
        object.__setattr__(self, "metadata", freeze_metadata(self.metadata))

    @property
    def content_hash(self) -> str:
        """SHA-256 of the UTF-8 text; incremental indexing compares these."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Chunk:
    """A span of a document, the unit that is indexed, retrieved and cited.

    Attributes:
        id: ``"{document_id}#{ordinal}"``, stable while the document is unchanged.
        text: exactly ``document.text[start:end]``.
        document_id: the ID of the document it came from.
        start: character offset of the first character in the document.
        end: character offset one past the last character.
        headings: the heading path the chunk falls under, outermost first (markdown headings,
            a PDF's outline, DOCX heading styles). A piece of a table split across chunks
            ends it with the table's caption and header row, so every piece reads as a table.
        metadata: the document's metadata plus anything specific to the chunk (a PDF page);
            filters match against it.
    """

    id: str
    text: str
    document_id: str
    start: int
    end: int
    headings: tuple[str, ...] = ()
    metadata: Metadata = field(default_factory=lambda: _NO_METADATA)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", freeze_metadata(self.metadata))
        if not 0 <= self.start < self.end:
            raise ValueError(
                f"Chunk offsets must satisfy 0 <= start < end, got {self.start}, {self.end}"
            )
        if self.end - self.start != len(self.text):
            raise ValueError(
                f"Chunk text length ({len(self.text)}) must equal "
                f"end - start ({self.end - self.start})"
            )


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A retrieved chunk and its score (higher is better).

    Attributes:
        chunk: the chunk.
        score: the score of the retriever that returned it (fused score for hybrid search).
        scores: for fused results, the score each contributing retriever gave, by name
            (``{"bm25": 7.1, "vector": 0.62}``); a retriever that did not return the chunk is
            absent.
    """

    chunk: Chunk
    score: float
    scores: Mapping[str, float] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        if not isinstance(self.scores, MappingProxyType):
            object.__setattr__(self, "scores", MappingProxyType(dict(self.scores)))

    @property
    def id(self) -> str:
        """The chunk's ID (shortcut for ``.chunk.id``)."""
        return self.chunk.id


@dataclass(frozen=True, slots=True)
class Citation:
    """A passage Claude cited: the chunk ID it came from and the cited text."""

    chunk_id: str
    cited_text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens billed for one call and the estimated cost.

    ``cost_usd`` is an estimate from ragkit's dated pricing table (``None`` for an unknown
    model); the bill is the authority.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cost_usd: float | None = 0.0


@dataclass(frozen=True, slots=True)
class Answer:
    """What :func:`ragkit.answer` returns.

    Attributes:
        text: the model's answer, or an explanation when ragkit abstained without a call.
        citations: passages cited, de-duplicated, in order; only chunk IDs that were sent.
        chunks: the chunks that were sent as context (or would have been, on abstention).
        model: the model asked (empty when no call was made).
        stop_reason: the API's stop reason, or ``None`` when no call was made.
        abstained: true when the context did not contain the answer: the model said so, cited
            nothing, refused, or the retrieval evidence was too weak to call at all.
        usage: tokens and estimated cost (zeros when no call was made).
        strategy: ``"retrieve"``, ``"full"`` (whole corpus in context) or ``"none"`` (no call).
        dropped_citations: citations whose source was not a chunk that was sent; never returned.
        complete: false when the answer was cut short: the model stopped for ``max_tokens`` or
            any reason other than ``end_turn``, ``stop_sequence`` or ``refusal``.
    """

    text: str
    citations: tuple[Citation, ...] = ()
    chunks: tuple[ScoredChunk, ...] = ()
    model: str = ""
    stop_reason: str | None = None
    abstained: bool = False
    usage: Usage = field(default_factory=Usage)
    strategy: Strategy = "retrieve"
    dropped_citations: int = 0
    complete: bool = True

    @property
    def cited_chunk_ids(self) -> tuple[str, ...]:
        """The distinct chunk IDs cited, in first-cited order."""
        return tuple(dict.fromkeys(c.chunk_id for c in self.citations))
