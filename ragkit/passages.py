"""Passages: the chunks chosen for a question, merged and packed into what is sent.

Chunks of one document that touch (at most :data:`MERGE_GAP_CHARS` apart) merge into one
:class:`Passage` (one ``search_result`` block, one text block per chunk, so a citation's block
range maps back to chunk IDs); :func:`pack` keeps chunks best-first while their *estimated*
tokens (``ragkit.tokens``) fit a budget; :func:`chunk_label` names a chunk with its pages.

This module leaves out choosing the chunks and the strategy (``ragkit.plan``) and the request
built from the passages (``ragkit.messages``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ragkit.tokens import count_tokens
from ragkit.types import Chunk, ScoredChunk

__all__ = [
    "BLOCK_OVERHEAD_TOKENS",
    "MERGE_GAP_CHARS",
    "Passage",
    "Segment",
    "chunk_label",
    "corpus_passages",
    "estimate_passage_tokens",
    "merge_passages",
    "pack",
]

BLOCK_OVERHEAD_TOKENS = 12
"""Estimated tokens a search_result block adds beyond its text and title (type, source, markup)."""

MERGE_GAP_CHARS = 2
"""Chunks of one document at most this many characters apart merge into one passage: the
whitespace a chunker trims between consecutive chunks (anything in that gap is not sent)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One text block inside a passage, attributed to the chunk it came from.

    When chunks overlap, the overlap is sent once, as part of the earlier chunk's segment, so
    the passage reads as the document does.
    """

    chunk_id: str
    text: str


@dataclass(frozen=True, slots=True)
class Passage:
    """One ``search_result`` block: consecutive chunks of one document, merged.

    Attributes:
        source: the block's ``source``: the ID of the passage's first chunk (a real chunk ID).
        title: the block's ``title``: the document ID, plus the heading path when there is one.
        document_id: the document the passage comes from.
        segments: the text blocks in document order; citation block indexes point into these.
        chunk_ids: every chunk the passage covers, in document order (a chunk wholly inside its
            predecessor's overlap has no segment of its own but is still covered).
        rank: the best (lowest) retrieval rank among its chunks; passages are sent in rank order.
    """

    source: str
    title: str
    document_id: str
    segments: tuple[Segment, ...]
    chunk_ids: tuple[str, ...]
    rank: int

    @property
    def text(self) -> str:
        """The passage text as sent (segments joined)."""
        return "".join(s.text for s in self.segments)

    def chunk_ids_for_blocks(self, start: int, end: int) -> tuple[str, ...]:
        """The chunk IDs of ``segments[start:end]`` (a citation's block range), in order.

        An out-of-range or empty range maps to the passage's first chunk, so a citation of a
        sent passage is never lost to an index quirk.
        """
        picked = tuple(dict.fromkeys(s.chunk_id for s in self.segments[max(start, 0) : end]))
        return picked or (self.source,)


def chunk_label(chunk: Chunk) -> str:
    """Where a chunk is, for people: its document, and its page(s) when it has them.

    Example:
        >>> chunk_label(Chunk("a.pdf#3", "x", "a.pdf", 0, 1, metadata={"page": (12, 13)}))
        'a.pdf pp. 12-13'
    """
    pages = chunk.metadata.get("page")
    if isinstance(pages, tuple) and pages and all(isinstance(p, int) for p in pages):
        if len(pages) == 1:
            return f"{chunk.document_id} p. {pages[0]}"
        return f"{chunk.document_id} pp. {pages[0]}-{pages[-1]}"
    return chunk.document_id


def _title(chunk: Chunk) -> str:
    label = chunk_label(chunk)
    if chunk.headings:
        return f"{label} — {' > '.join(chunk.headings)}"
    return label


def _merge_run(run: Sequence[tuple[int, Chunk]], *, gap: int | None) -> list[Passage]:
    """Merge one document's chunks (sorted by start) into passages; ``gap=None`` merges all."""
    passages: list[Passage] = []
    segments: list[Segment] = []
    ids: list[str] = []
    first: Chunk | None = None
    best = 0
    end = 0

    def close() -> None:
        if first is not None:
            passages.append(
                Passage(
                    source=first.id,
                    title=_title(first),
                    document_id=first.document_id,
                    segments=tuple(segments),
                    chunk_ids=tuple(ids),
                    rank=best,
                )
            )

    for rank, chunk in run:
        if first is not None and (gap is None or chunk.start <= end + gap):
            ids.append(chunk.id)
            best = min(best, rank)
            if chunk.end > end:
                # chunk.text == document[start:end], so the part past `end` is a suffix slice.
                fresh = chunk.text[max(end - chunk.start, 0) :]
                segments.append(Segment(chunk.id, fresh))
                end = chunk.end
            continue
        close()
        first, best, end = chunk, rank, chunk.end
        segments, ids = [Segment(chunk.id, chunk.text)], [chunk.id]
    close()
    return passages


def merge_passages(
    chunks: Sequence[Chunk | ScoredChunk], *, gap: int = MERGE_GAP_CHARS
) -> list[Passage]:
    """Merge adjacent or overlapping chunks of the same document into passages.

    Chunks are taken as ranked (index 0 is best). Chunks of one document whose offsets touch,
    overlap or lie at most ``gap`` characters apart become one passage whose segments follow
    document order; passages come out ordered by their best chunk's rank.

    Example:
        >>> a = Chunk("d#0", "abcd", "d", 0, 4); b = Chunk("d#1", "cdef", "d", 2, 6)
        >>> merge_passages([b, a])[0].text
        'abcdef'
    """
    ranked = ((r, c.chunk if isinstance(c, ScoredChunk) else c) for r, c in enumerate(chunks))
    return _passages_by_document(ranked, gap)


def _passages_by_document(ranked: Iterable[tuple[int, Chunk]], gap: int | None) -> list[Passage]:
    """Group ranked chunks by document, merge each document's run, order by best rank."""
    by_doc: dict[str, list[tuple[int, Chunk]]] = {}
    for rank, chunk in ranked:
        by_doc.setdefault(chunk.document_id, []).append((rank, chunk))
    passages: list[Passage] = []
    for run in by_doc.values():
        run.sort(key=lambda rc: (rc[1].start, rc[1].end))
        passages.extend(_merge_run(run, gap=gap))
    passages.sort(key=lambda p: p.rank)
    return passages


def corpus_passages(chunks: Iterable[Chunk]) -> list[Passage]:
    """The whole corpus as passages: one per document, all its chunks merged, in corpus order.

    Each document's segments stay attributed to their chunks, so citations of whole-corpus
    blocks still map to chunk IDs.
    """
    return _passages_by_document(enumerate(chunks), None)


def estimate_passage_tokens(passage: Passage, count: Callable[[str], int] = count_tokens) -> int:
    """Estimated tokens of one search_result block: text, title and block overhead."""
    return count(passage.text) + count(passage.title) + BLOCK_OVERHEAD_TOKENS


def pack(
    ranked: Sequence[ScoredChunk],
    budget_tokens: int,
    *,
    count: Callable[[str], int] = count_tokens,
) -> tuple[list[ScoredChunk], int]:
    """Take chunks best-first while their estimated tokens fit ``budget_tokens``.

    Chunks are never split; packing stops at the first chunk that does not fit, so the context
    is always a prefix of the ranking (a lower-ranked chunk never displaces a better one). Each
    chunk is counted whole with its block overhead, which over-estimates merged overlaps.

    Returns:
        The chunks kept and their estimated tokens.

    Example:
        >>> c = ScoredChunk(Chunk("d#0", "word " * 10, "d", 0, 50), 1.0)
        >>> len(pack([c], 1000)[0])
        1
    """
    if budget_tokens < 1:
        raise ValueError(f"budget_tokens ({budget_tokens}) must be >= 1")
    kept: list[ScoredChunk] = []
    used = 0
    for sc in ranked:
        cost = count(sc.chunk.text) + count(_title(sc.chunk)) + BLOCK_OVERHEAD_TOKENS
        if used + cost > budget_tokens:
            break
        kept.append(sc)
        used += cost
    return kept, used
