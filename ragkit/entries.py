"""The ingest stage before embedding: documents hashed and chunked once into what an index writes.

:func:`prepare_documents` hashes every document (:func:`document_hash`; a touched file with
the same content is unchanged) and chunks the new or changed ones, adding ``path`` and a paged
document's ``page`` to their metadata; the result (:class:`Prepared`) sizes progress bars and
batches before :meth:`ragkit.Index.write` embeds and stores it. :func:`keyword_text` is what
gets embedded and keyword-indexed for a chunk; :class:`IndexUpdate` says what a write changed.

This module leaves out embedding and writing (``ragkit.index``), reading files
(``ragkit.loaders``) and the chunking rules (``ragkit.chunking``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from .base import Store, keyword_text
from .types import Chunk, Document

__all__ = [
    "IndexUpdate",
    "Prepared",
    "PreparedDocument",
    "document_hash",
    "keyword_text",
    "prepare_documents",
]


@dataclass(frozen=True, slots=True)
class IndexUpdate:
    """What an ``add``/``remove``/folder update changed, by document ID."""

    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    chunks_embedded: int = 0
    chunks_reused: int = 0
    """Chunks whose vector was not computed again: the exact text (heading path and text) was
    embedded before in the same document, or repeats in this write. With a vector index,
    ``chunks_embedded + chunks_reused`` is every chunk written."""

    @property
    def changed(self) -> bool:
        """True when anything was added, replaced or removed."""
        return bool(self.added or self.replaced or self.removed)


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A new or changed document, hashed and chunked once, waiting to be embedded and written.

    Attributes:
        document: the document (with ``path`` in its metadata).
        content_hash: :func:`document_hash` of it.
        chunks: its chunks, in order.
        replaces: ``True`` when an older version is in the index.
    """

    document: Document
    content_hash: str
    chunks: tuple[Chunk, ...]
    replaces: bool


@dataclass(frozen=True, slots=True)
class Prepared:
    """What :meth:`Index.prepare` found: the documents to write and those already indexed.

    Attributes:
        documents: new or changed documents, chunked, in input order.
        unchanged: IDs of documents indexed with the same content hash.
    """

    documents: tuple[PreparedDocument, ...] = ()
    unchanged: tuple[str, ...] = ()

    @property
    def chunk_count(self) -> int:
        """Chunks to embed and write: the total of a progress bar."""
        return sum(len(p.chunks) for p in self.documents)

    def batches(self, max_chars: int) -> list[Prepared]:
        """The documents split into parts of at most ``max_chars`` characters of text (a
        larger document is a part of its own); the first part carries ``unchanged``."""
        parts: list[list[PreparedDocument]] = [[]]
        size = 0
        for p in self.documents:
            if parts[-1] and size + len(p.document.text) > max_chars:
                parts.append([])
                size = 0
            parts[-1].append(p)
            size += len(p.document.text)
        return [
            Prepared(tuple(part), self.unchanged if number == 0 else ())
            for number, part in enumerate(parts)
        ]


def prepare_documents(
    documents: Iterable[Document], store: Store, *, chunk_size: int, chunk_overlap: int
) -> Prepared:
    """Hash every document and chunk the new or changed ones (:meth:`ragkit.Index.prepare`).

    A document is unchanged when ``store`` holds it with the same :func:`document_hash`.
    """
    latest: dict[str, Document] = {}
    for doc in documents:
        if not isinstance(doc, Document):
            raise TypeError(f"documents must be ragkit.Document objects, got {type(doc).__name__}")
        if "path" not in doc.metadata:
            # Every chunk can be filtered by path (--path GLOB), loader or not.
            doc = Document(doc.id, doc.text, {**doc.metadata, "path": doc.id})
        latest[doc.id] = doc
    from .chunking import chunk_document  # here, not at the top: a search process never chunks

    known = store.document_hashes(list(latest))
    pending: list[PreparedDocument] = []
    unchanged: list[str] = []
    for doc_id, doc in latest.items():
        digest = document_hash(doc)
        if known.get(doc_id) == digest:
            unchanged.append(doc_id)
            continue
        chunks = _with_pages(doc, chunk_document(doc, size=chunk_size, overlap=chunk_overlap))
        pending.append(PreparedDocument(doc, digest, tuple(chunks), doc_id in known))
    return Prepared(tuple(pending), tuple(unchanged))


def _with_pages(doc: Document, chunks: list[Chunk]) -> list[Chunk]:
    """Chunks of a paged document (PDF) carrying ``page``: the pages their text falls on.

    ``page`` is a tuple, so ``where={"page": 12}`` finds every chunk touching page 12. The
    document's ``page_starts`` offsets stay on the document only.
    """
    starts = doc.metadata.get("page_starts")
    if not isinstance(starts, tuple) or not starts:
        return chunks
    from .loaders.pdf import pages_for_span  # only when indexing PDFs: loaders stay unloaded

    base = {k: v for k, v in doc.metadata.items() if k != "page_starts"}
    return [
        Chunk(
            c.id,
            c.text,
            c.document_id,
            c.start,
            c.end,
            c.headings,
            {**base, "page": pages_for_span(starts, c.start, c.end)},
        )
        for c in chunks
    ]


def document_hash(doc: Document) -> str:
    """The text's SHA-256, extended by the metadata when there is any (a changed title or
    front matter re-indexes the document; its chunks carry the metadata)."""
    if not doc.metadata or dict(doc.metadata) == {"path": doc.id}:
        return doc.content_hash
    meta = {k: v for k, v in doc.metadata.items() if k not in _VOLATILE}
    body = json.dumps(meta, sort_keys=True, default=list, ensure_ascii=False)
    return hashlib.sha256((doc.content_hash + "\0" + body).encode("utf-8")).hexdigest()


_VOLATILE = frozenset({"mtime"})
"""Metadata that changes without the content changing: a touched file is not re-embedded."""
