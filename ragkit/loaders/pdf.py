"""PDF: the text layer of each page, with page boundaries in the metadata (extra ``pdf``: pypdf).

Pages are extracted with pypdf (BSD licence, pure Python) and joined with a blank line. The
metadata records ``pages`` (the page count) and ``page_starts`` (the character offset in
:attr:`Document.text` where each page begins; an empty page starts where the next one does), so
:func:`pages_for_span` can give any span of the text, such as a chunk, its 1-based page numbers.
``title`` is the PDF's own title (document information), when it has one.

A PDF with no text layer at all (a scan) is refused with the reason ``"no text layer ..."``; an
encrypted PDF is read when it opens with an empty password (permissions only) and refused with
``"encrypted ..."`` otherwise.

This module leaves out OCR, images, tables as structure, annotations and form fields.
"""

from __future__ import annotations

import io
import warnings
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import LoadError
from ..types import Document

__all__ = ["PdfLoader", "pages_for_span"]

_INSTALL = "needs the 'pdf' extra: pip install 'ragkit-claude[pdf]'"


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
    text = page_text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
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


def _title(reader: Any) -> str | None:
    try:
        info = reader.metadata
        title = info.title if info is not None else None
    except Exception:  # noqa: BLE001 - a damaged info dictionary only loses the title
        return None
    if not isinstance(title, str):
        return None
    title = " ".join(title.replace("\x00", "").split())
    return title or None


@dataclass(frozen=True, slots=True)
class PdfLoader:
    """PDF files through pypdf; see the module docstring for what is kept.

    Attributes:
        suffixes: the suffixes it reads.
        max_bytes: the default size limit (images make PDFs large).
    """

    suffixes: tuple[str, ...] = (".pdf",)
    max_bytes: int = 100 * 1024 * 1024

    def load(self, data: bytes, *, document_id: str) -> Document:
        """Extract each page's text.

        Raises:
            LoadError: the extra is missing; not a readable PDF; encrypted with a password; no
                text layer.
        """
        try:
            import pypdf
            from pypdf.errors import DependencyError
        except ImportError:
            raise LoadError(document_id, _INSTALL) from None
        if b"%PDF" not in data[:1024]:  # the header may follow up to 1 KiB of junk
            raise LoadError(document_id, "not a PDF (no %PDF header)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pypdf warns about every small defect
                reader = pypdf.PdfReader(io.BytesIO(data))
                if reader.is_encrypted:
                    try:
                        opened = reader.decrypt("")
                    except DependencyError:
                        raise LoadError(
                            document_id,
                            "encrypted with AES; install cryptography to read it "
                            "(pip install 'ragkit-claude[pdf]')",
                        ) from None
                    if not opened:
                        raise LoadError(
                            document_id, "encrypted (needs a password; decrypt it first)"
                        )
                pages = [_clean(page.extract_text() or "") for page in reader.pages]
                title = _title(reader)
        except LoadError:
            raise
        except Exception as exc:  # noqa: BLE001
            # pypdf reads untrusted bytes; on damage its parser raises many kinds of errors
            # (PyPdfError, but also KeyError, ValueError, zlib.error, ...).
            raise LoadError(document_id, f"not a readable PDF ({type(exc).__name__})") from None
        if not pages:
            raise LoadError(document_id, "no pages in PDF")
        if not any(p.strip() for p in pages):
            raise LoadError(
                document_id, "no text layer (a scanned PDF? run OCR on it first, e.g. ocrmypdf)"
            )
        text, page_starts = _join(pages)
        metadata: dict[str, Any] = {"pages": len(pages), "page_starts": page_starts}
        if title:
            metadata["title"] = title
        return Document(document_id, text, metadata)
