"""Word documents (``.docx``, extra ``docx``: python-docx): paragraphs, headings and tables.

The body is read in order. A paragraph in a ``Heading N`` style becomes a markdown heading of
that level (``Title`` is level 1), so the chunker builds heading paths as for markdown; list
paragraphs start with ``- ``; a table becomes one line per row with cells joined by `` | ``.
Blocks are separated by a blank line. ``title`` is the document's own title (core properties),
else its first heading.

The package's declared uncompressed size is checked before parsing, so a small zip cannot
expand into gigabytes of XML.

This module leaves out headers, footers, footnotes, comments, text boxes, images and the legacy
binary ``.doc`` format.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Any

from ..errors import LoadError
from ..types import Document
from .text import first_heading

__all__ = ["DocxLoader"]

_INSTALL = "needs the 'docx' extra: pip install 'ragkit-claude[docx]'"
_MAX_UNCOMPRESSED = 512 * 1024 * 1024


def _heading_level(style_name: str) -> int:
    if style_name == "Title":
        return 1
    if style_name.startswith("Heading "):
        tail = style_name[len("Heading ") :]
        if tail.isdigit() and int(tail) >= 1:
            return min(int(tail), 6)
    return 0


def _paragraph(paragraph: Any) -> str:
    text = str(paragraph.text).replace("\r", "\n").strip()
    if not text:
        return ""
    style = getattr(paragraph.style, "name", "") or ""
    level = _heading_level(style)
    if level:
        return "#" * level + " " + " ".join(text.split())
    ppr = paragraph._p.pPr
    if style.startswith("List") or (ppr is not None and ppr.numPr is not None):
        return "- " + text
    return text


def _table(table: Any) -> str:
    lines = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell is repeated for every grid column
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class DocxLoader:
    """Word ``.docx`` files through python-docx; see the module docstring for what is kept.

    Attributes:
        suffixes: the suffixes it reads.
        max_bytes: the default size limit (images make documents large).
    """

    suffixes: tuple[str, ...] = (".docx",)
    max_bytes: int = 100 * 1024 * 1024

    def load(self, data: bytes, *, document_id: str) -> Document:
        """Read the body's paragraphs and tables in order.

        Raises:
            LoadError: the extra is missing; not a readable .docx; no text.
        """
        try:
            import docx
            from docx.table import Table
        except ImportError:
            raise LoadError(document_id, _INSTALL) from None
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as package:
                if sum(info.file_size for info in package.infolist()) > _MAX_UNCOMPRESSED:
                    raise LoadError(document_id, "too large uncompressed (a zip bomb?)")
            document = docx.Document(io.BytesIO(data))
            blocks: list[str] = []
            for item in document.iter_inner_content():
                block = _table(item) if isinstance(item, Table) else _paragraph(item)
                if block:
                    blocks.append(block)
            title = document.core_properties.title
        except LoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - zip, XML and OPC errors on untrusted bytes
            raise LoadError(document_id, f"not a readable .docx ({type(exc).__name__})") from None
        if not blocks:
            raise LoadError(document_id, "no text in document")
        text = "\n\n".join(blocks)
        title = " ".join(title.split()) if isinstance(title, str) else ""
        title = title or first_heading(text) or ""
        return Document(document_id, text, {"title": title} if title else {})
