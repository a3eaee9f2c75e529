"""PDF: the text layer of each page, headings from the outline, page boundaries in the metadata.

Pages are extracted with pypdfium2 (extra ``pdf``; Apache-2.0/BSD-3, Google's PDFium in C++),
chosen over pypdf, pdfminer.six and poppler's ``pdftotext`` for speed and text quality on real
manuals (bench/RESULTS.md, "PDF libraries"). Pages are joined with a blank line; words
hyphenated at a line end are joined again. The metadata records ``pages`` (the page count) and
``page_starts`` (the character offset in :attr:`Document.text` where each page begins; an empty
page starts where the next one does), so :func:`pages_for_span` can give any span of the text,
such as a chunk, its 1-based page numbers. ``title`` is the PDF's own title (document
information), else its first bookmark.

Headings come from the PDF's outline (bookmarks) or its layout, never from the text's
characters: a bookmark's title is found on its page and marked as a markdown heading of the
bookmark's depth (or put at the top of the page when it is not found there); a PDF without an
outline gets its headings from font sizes (:class:`_Layout`). Every extracted line that the
chunker would read as markdown structure (``# comment``, ``=====``, a code fence) is indented by
four spaces so it stays text.

A PDF with no text layer at all (a scan) is refused with the reason ``"no text layer ..."``; an
encrypted PDF is read when it opens with an empty password (permissions only) and refused with
``"encrypted ..."`` otherwise. Time and extracted characters are checked against the file's
budget (``limits.py``) between pages; warnings from the library are summarised in one log line
per file.

Tables drawn with ruling lines (:mod:`ragkit.loaders.tables`) are written as markdown tables,
each with its ``Table N:`` caption line when the page has one right above (or below) it, in the
place of their text; the text beside a table follows it. Headings are never marked inside a
table.

This module leaves out OCR, images, tables without ruling lines (read as their text lines),
annotations, form fields, and headings set in bold at the body's size.
"""

from __future__ import annotations

import logging
import re
import warnings
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import LoadError
from ..types import Document
from .limits import Budget, current_budget
from .tables import PdfTable, find_pdf_tables, is_table_title
from .text import escape_markup

__all__ = ["PdfLoader", "pages_for_span"]

logger = logging.getLogger("ragkit")

_INSTALL = "needs the 'pdf' extra: pip install 'ragkit-claude[pdf]'"
# A hostile outline can hold millions of bookmarks; more than this are not used as headings.
_MAX_BOOKMARKS = 20_000
_MAX_DEPTH = 6
# What may stand before a bookmark's title on its line: a section number ("3.5.3", "A.1",
# "Chapter 3:"), which then becomes part of the heading.
_NUMBERING = re.compile(
    r"\s*(?:(?:Chapter|Appendix|Section|Part)\s+)?[0-9A-Z]{1,4}(?:\.[0-9]+)*[.:]?\s*"
)
# A table-of-contents line: dot leaders, then a page number.
_TOC_LINE = re.compile(r"(?:\.\s*){2,}\d*\s*$|\.\s\.\s\.")
_CONTROL = re.compile(r"[\x00\x01\x03-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def pages_for_span(page_starts: Sequence[int], start: int, end: int) -> tuple[int, ...]:
    """The 1-based numbers of the pages that the text span ``[start, end)`` falls on.

    ``page_starts`` is a PDF document's ``metadata["page_starts"]``: where each page begins in
    the document's text. A page is included when the span overlaps its text; empty pages never
    are.

    Example:
        >>> pages_for_span((0, 120, 120, 300), 100, 150)
        (1, 3)
    """
    if start < 0 or end <= start:
        raise ValueError(f"span ({start}, {end}) must satisfy 0 <= start < end")
    if not page_starts:
        return ()
    first = max(bisect_right(page_starts, start), 1)  # the page holding `start`
    last = max(bisect_left(page_starts, end), 1)  # the last page starting before `end`
    n = len(page_starts)
    return tuple(
        p
        for p in range(first, last + 1)
        if p == n or page_starts[p] > page_starts[p - 1]  # not an empty page
    )


def _clean(page_text: str) -> str:
    # PDFium marks a hyphen it removed at a line end with \\x02: the word goes on, join it.
    text = page_text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"\x02\n?", "", text)
    text = _CONTROL.sub("", text)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def _join(pages: Sequence[str]) -> tuple[str, tuple[int, ...]]:
    """Pages joined by blank lines, and where each begins; an empty page where the next does."""
    kept = [p for p in pages if p.strip()]
    text = "\n\n".join(kept)
    kept_starts: list[int] = []
    offset = 0
    for page in kept:
        kept_starts.append(offset)
        offset += len(page) + 2
    starts: list[int] = []
    following = len(text)  # where the next non-empty page begins; the end for trailing pages
    j = len(kept)
    for page in reversed(pages):
        if page.strip():
            j -= 1
            following = kept_starts[j]
        starts.append(following)
    return text, tuple(reversed(starts))


def _one_line(text: Any) -> str:
    if not isinstance(text, str):
        return ""
    return " ".join(_CONTROL.sub("", text).split())


def _outline(document: Any, n_pages: int, budget: Budget) -> dict[int, list[tuple[int, str]]]:
    """Bookmarks by page index: ``(level 1-6, title)`` in outline order."""
    found: dict[int, list[tuple[int, str]]] = {}
    try:
        for count, bookmark in enumerate(document.get_toc(max_depth=_MAX_DEPTH)):
            if count >= _MAX_BOOKMARKS:
                break
            if count % 256 == 0:
                budget.check_time()
            title = _one_line(bookmark.get_title())
            dest = bookmark.get_dest()
            index = dest.get_index() if dest is not None else None
            if title and isinstance(index, int) and 0 <= index < n_pages:
                level = min(int(bookmark.level) + 1, 6)
                found.setdefault(index, []).append((level, title))
    except LoadError:
        raise
    except Exception:  # noqa: BLE001 - a damaged outline only loses the headings
        logger.debug("PDF outline unreadable", exc_info=True)
    return found


def _mark_headings(text: str, headings: Sequence[tuple[int, str]]) -> str:
    """Mark each bookmark title on its page as a markdown heading (or add it at the top)."""
    pos = 0
    for level, title in headings:
        marker = "#" * level + " "
        pattern = re.compile(r"\s+".join(re.escape(w) for w in title.split()))
        found = pattern.search(text, pos)
        line_start = text.rfind("\n", 0, found.start()) + 1 if found else pos
        prefix = text[line_start : found.start()] if found is not None else ""
        if found is not None and (not prefix.strip() or _NUMBERING.fullmatch(prefix)):
            line_end = text.find("\n", found.end())
            rest = text[found.end() : line_end if line_end >= 0 else len(text)].strip()
            heading = marker + " ".join((prefix + found.group()).split())
            after = "\n\n" + rest if rest else ""
            before = "\n\n" if line_start > 0 else ""
            tail = text[line_end:] if line_end >= 0 else ""
            text = text[:line_start].rstrip("\n") + before + heading + after + tail
            pos = len(text[:line_start].rstrip("\n")) + len(before) + len(heading)
        else:
            at = line_start if found is not None else pos
            head = text[:at].rstrip("\n")
            before = "\n\n" if head else ""
            text = head + before + marker + title + "\n\n" + text[at:].lstrip("\n")
            pos = len(head) + len(before) + len(marker) + len(title)
    return text


class _Layout:
    """Headings of a PDF without an outline, from font sizes: lines set clearly larger than the
    body text (the most used size), one level per size, largest first.

    A size counts as a heading size when it is at least 15 % and 1 pt above the body's and
    covers at most 15 % of the text; lines repeated on many pages (running heads), lines
    without letters or longer than a heading, and pages with more than 20 such lines are left
    as text.
    """

    _MAX_LEVELS = 4
    _MAX_PER_PAGE = 20
    _MAX_LINE = 120

    def __init__(self) -> None:
        self.sizes: Counter[float] = Counter()
        self.pages: list[list[tuple[str, float]]] = []

    def add_page(self, textpage: Any, tables: Sequence[PdfTable] = ()) -> None:
        import pypdfium2.raw as pdfium_c

        lines: list[tuple[str, float]] = []
        try:
            text = textpage.get_text_range()  # one character per PDFium char index
            if len(text) != textpage.count_chars():
                self.pages.append(lines)  # no reliable char-to-size mapping on this page
                return
            handle = textpage.raw
            start = 0
            for raw_line in text.split("\n"):
                # A line's size is its first visible character's; lines weigh by length.
                first = start + len(raw_line) - len(raw_line.lstrip())
                start += len(raw_line) + 1
                line = _one_line(raw_line)
                if not line:
                    continue
                size = round(pdfium_c.FPDFText_GetFontSize(handle, first) * 2) / 2
                if size < 4 or (tables and _in_tables(textpage, first, tables)):
                    continue
                self.sizes[size] += len(line)
                if 2 <= len(line) <= self._MAX_LINE and not _TOC_LINE.search(line):
                    lines.append((line, size))
        except Exception:  # noqa: BLE001 - sizes only add headings; the text is read anyway
            lines = []
        self.pages.append(lines)

    def headings(self) -> dict[int, list[tuple[int, str]]]:
        if not self.sizes:
            return {}
        body = self.sizes.most_common(1)[0][0]
        total = sum(self.sizes.values())
        big = sorted(
            (s for s in self.sizes if s >= body * 1.15 and s >= body + 1),
            reverse=True,
        )
        levels = {
            s: i + 1
            for i, s in enumerate(s for s in big if self.sizes[s] <= 0.15 * total)
            if i < self._MAX_LEVELS
        }
        if not levels:
            return {}
        seen = Counter(line for page in self.pages for line, _ in set(page))
        repeated = max(3, len(self.pages) // 3)
        found: dict[int, list[tuple[int, str]]] = {}
        for index, page in enumerate(self.pages):
            marks = [
                (levels[size], line)
                for line, size in page
                if size in levels and seen[line] < repeated and any(c.isalpha() for c in line)
            ]
            if marks and len(marks) <= self._MAX_PER_PAGE:
                found[index] = marks
        return found


def _in_tables(textpage: Any, index: int, tables: Sequence[PdfTable]) -> bool:
    """Whether character ``index`` of a text page lies in one of ``tables``."""
    left, bottom, right, top = textpage.get_charbox(index)
    x, y = (left + right) / 2, (bottom + top) / 2
    return any(t.left <= x <= t.right and t.bottom <= y <= t.top for t in tables)


# A table's place in a page's text while headings are marked: a private-use character and
# its number, which no bookmark title matches.
_SLOT = "\ue000"
_INSET = 3.0  # points


def _bands(
    textpage: Any, box: tuple[float, float, float, float], tables: Sequence[PdfTable]
) -> list[str | PdfTable]:
    """A page's text around its tables, top to bottom: the text above each band of tables, the
    tables of the band left to right, then the text beside them; then the text below."""
    left, bottom, right, top = box
    out: list[str | PdfTable] = []
    bands: list[list[PdfTable]] = []
    for table in sorted(tables, key=lambda t: -t.top):
        if bands and table.top > min(t.bottom for t in bands[-1]):
            bands[-1].append(table)  # beside a table already in the band
        else:
            bands.append([table])
    y = top
    for band in bands:
        band_top, band_bottom = max(t.top for t in band), min(t.bottom for t in band)
        if y > band_top:
            out.append(textpage.get_text_bounded(left, band_top, right, y))
        band.sort(key=lambda t: t.left)
        out.extend(band)
        x = left
        for x_end, x_next in [(t.left, t.right) for t in band] + [(right, right)]:
            if x_end > x:
                # PDFium takes every character whose box touches the rectangle: inset, so the
                # descenders of the line above the band are not read twice.
                out.append(
                    textpage.get_text_bounded(x, band_bottom + _INSET, x_end, band_top - _INSET)
                )
            x = max(x, x_next)
        y = min(y, band_bottom)
    if y > bottom:
        out.append(textpage.get_text_bounded(left, bottom, right, y))
    return out


def _compose(parts: list[str | PdfTable]) -> tuple[str, list[str]]:
    """A page's text with a slot for each table, and the tables as markdown (with captions)."""
    texts: list[str] = []
    blocks: list[str] = []
    cleaned = [_clean(p).replace(_SLOT, "") if isinstance(p, str) else p for p in parts]
    for i, part in enumerate(cleaned):
        if isinstance(part, str):
            continue
        caption = ""
        before = next((j for j in range(i - 1, -1, -1) if isinstance(cleaned[j], str)), None)
        after = next((j for j in range(i + 1, len(cleaned)) if _nonblank(cleaned[j])), None)
        if before is not None:
            head, _, last = str(cleaned[before]).rpartition("\n")
            if is_table_title(last.strip()):
                caption, cleaned[before] = last.strip(), head
        if not caption and after is not None and isinstance(cleaned[after], str):
            first, _, rest = str(cleaned[after]).partition("\n")
            if is_table_title(first.strip()):
                caption, cleaned[after] = first.strip(), rest
        title = escape_markup(caption) + "\n" if caption else ""
        blocks.append(title + part.markdown())
        cleaned[i] = f"{_SLOT}{len(blocks) - 1}{_SLOT}"
    for part in cleaned:
        if isinstance(part, str) and part.startswith(_SLOT):
            texts.append(part)
        elif isinstance(part, str) and part.strip():
            texts.append(escape_markup(part.strip("\n")))
    return "\n\n".join(texts), blocks


def _nonblank(part: str | PdfTable) -> bool:
    return not isinstance(part, str) or bool(part.strip())


def _fill(text: str, blocks: Sequence[str]) -> str:
    """Put the tables back into their slots."""
    if not blocks:
        return text
    return re.sub(f"{_SLOT}(\\d+){_SLOT}", lambda m: blocks[int(m.group(1))], text)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.messages.append(record.getMessage())


@contextmanager
def _summarised(document_id: str, library: str) -> Iterator[None]:
    """Collect a library's warnings and log records; log one summary line for the file."""
    collect = _Collect()
    library_logger = logging.getLogger(library)
    library_logger.addHandler(collect)
    propagate = library_logger.propagate
    library_logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        library_logger.removeHandler(collect)
        library_logger.propagate = propagate
    messages = collect.messages + [str(w.message) for w in caught]
    if messages:
        first = " ".join(messages[0].split())[:200]
        logger.warning(
            "%r: %d warning(s) from %s while reading (first: %s)",
            document_id,
            len(messages),
            library,
            first,
        )


@dataclass(frozen=True, slots=True)
class PdfLoader:
    """PDF files through pypdfium2; see the module docstring for what is kept.

    Attributes:
        suffixes: the suffixes it reads.
        max_bytes: the default size limit (images make PDFs large).
        tables: find tables drawn with ruling lines and write them as markdown tables
            (:mod:`ragkit.loaders.tables`); ``False`` reads them as text lines.
    """

    suffixes: tuple[str, ...] = (".pdf",)
    max_bytes: int = 100 * 1024 * 1024
    tables: bool = True

    def load(self, data: bytes, *, document_id: str) -> Document:
        """Extract each page's text and mark the outline's headings.

        Raises:
            LoadError: the extra is missing; not a readable PDF; encrypted with a password; no
                text layer; over the file's time or character budget.
        """
        try:
            import pypdfium2 as pdfium
        except ImportError:
            raise LoadError(document_id, _INSTALL) from None
        if b"%PDF" not in data[:1024]:  # the header may follow up to 1 KiB of junk
            raise LoadError(document_id, "not a PDF (no %PDF header)")
        budget = current_budget(document_id)
        with _summarised(document_id, "pypdfium2"):
            try:
                document = pdfium.PdfDocument(data)
            except pdfium.PdfiumError as exc:
                if "password" in str(exc).lower():
                    raise LoadError(
                        document_id, "encrypted (needs a password; decrypt it first)"
                    ) from None
                raise LoadError(document_id, f"not a readable PDF ({exc})") from None
            try:
                pages, title, outline = self._read(document, budget, document_id)
            finally:
                document.close()
        if not pages:
            raise LoadError(document_id, "no pages in PDF")
        if not any(p.strip() for p in pages):
            raise LoadError(
                document_id, "no text layer (a scanned PDF? run OCR on it first, e.g. ocrmypdf)"
            )
        text, page_starts = _join(pages)
        metadata: dict[str, Any] = {"pages": len(pages), "page_starts": page_starts}
        if not title and outline:
            title = outline[min(outline)][0][1]
        if title:
            metadata["title"] = title
        return Document(document_id, text, metadata)

    def _read(
        self, document: Any, budget: Budget, document_id: str
    ) -> tuple[list[str], str, dict[int, list[tuple[int, str]]]]:
        import pypdfium2 as pdfium

        n_pages = len(document)
        outline = _outline(document, n_pages, budget)
        layout = _Layout() if not outline else None
        pages: list[str] = []
        tables: dict[int, list[str]] = {}  # page index -> its tables as markdown
        unreadable: list[int] = []  # 1-based numbers of damaged pages, read as empty
        for index in range(n_pages):
            budget.check_time()
            try:
                page = document[index]
            except pdfium.PdfiumError:
                page = None
            try:
                try:
                    textpage = None if page is None else page.get_textpage()
                except pdfium.PdfiumError:
                    textpage = None
                if textpage is None:
                    # One damaged page loses its own text, not the document's other pages.
                    unreadable.append(index + 1)
                    pages.append("")
                    if layout is not None:
                        layout.pages.append([])
                    continue
                try:
                    found = self._tables(page, textpage)
                    if found:
                        text, tables[index] = _compose(
                            _bands(textpage, tuple(page.get_bbox()), found)
                        )
                        budget.add_chars(len(text) + sum(len(t) for t in tables[index]))
                    else:
                        raw = textpage.get_text_bounded()
                        budget.add_chars(len(raw))
                        text = escape_markup(_clean(raw))
                    if layout is not None:
                        layout.add_page(textpage, found)
                finally:
                    textpage.close()
            finally:
                if page is not None:
                    page.close()
            if index in outline:
                text = _mark_headings(text, outline[index])
            pages.append(text)
        if layout is not None:
            for index, headings in layout.headings().items():
                pages[index] = _mark_headings(pages[index], headings)
        for index, blocks in tables.items():
            pages[index] = _fill(pages[index], blocks)
        if unreadable and len(unreadable) == n_pages:
            raise LoadError(document_id, "not a readable PDF (no page could be read)")
        if unreadable:
            shown = ", ".join(map(str, unreadable[:10])) + (" ..." if len(unreadable) > 10 else "")
            logger.warning(
                "%r: %d of %d pages are damaged and were left out (p. %s); the others are indexed",
                document_id,
                len(unreadable),
                n_pages,
                shown,
            )
        try:
            title = _one_line(document.get_metadata_value("Title"))
        except Exception:  # noqa: BLE001 - a damaged info dictionary only loses the title
            title = ""
        return pages, title, outline

    def _tables(self, page: Any, textpage: Any) -> list[PdfTable]:
        if not self.tables:
            return []
        try:
            return find_pdf_tables(page, textpage)
        except Exception:  # noqa: BLE001 - a damaged drawing only loses the tables
            logger.debug("PDF table finder failed on a page", exc_info=True)
            return []
