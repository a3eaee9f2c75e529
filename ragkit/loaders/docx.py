"""Word documents (``.docx``, extra ``docx``: lxml): the body, tables, text boxes and footnotes.

The package is read as a stream: each XML part (document, styles, footnotes, endnotes) is
inflated piece by piece and parsed with lxml's ``iterparse``, and every element is freed as soon
as it has been read, so memory stays near the size of one paragraph whatever the file. Before a
part is inflated its declared size is checked against the file's ``max_inflated_bytes``, and the
bytes actually inflated are counted as they stream; characters and time are checked as the text
grows (``limits.py``). A zip bomb is refused before any of its XML is parsed.

What the text holds, in document order:

- a paragraph in a ``Heading N`` or ``Title`` style (or with an outline level) becomes a
  markdown heading of that level, so the chunker builds heading paths as for markdown; every
  other paragraph is escaped (:func:`~ragkit.loaders.text.escape_markup`) so a line such as
  ``# not a heading`` stays text;
- consecutive ``Source Code`` paragraphs (pandoc's code style, also ``HTML Preformatted``)
  become one fenced code block;
- list paragraphs start with ``- ``;
- a table becomes a markdown pipe table whose header is its first row, preceded by its caption
  (a ``Caption`` or ``Table Caption`` paragraph right before or after it, or a plain paragraph
  right before it that starts ``Table N:``/``Table N.``), and the chunker puts it in a chunk of
  its own (split between rows when larger than a chunk). A cell's paragraphs are joined by
  ``<br>``, pipes are escaped; a merged cell (``gridSpan``, ``vMerge``) keeps its text in its
  first column and top row, the cells it covers are empty; a table inside a cell is flattened
  into that cell's text (cells joined by ``, ``, rows by ``; ``);
- the paragraphs of a text box follow the paragraph that anchors it (the fallback copy Word
  stores for old readers is skipped);
- footnote and endnote references become ``[^N]`` and the notes' text follows the body as
  ``[^N]: ...`` lines.

Both Transitional and Strict Open XML are read. ``title`` is the document's own title (core
properties), else its first heading.

This module leaves out headers, footers, comments, tracked deletions, images, equations and the
legacy binary ``.doc`` format.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from ..errors import LoadError
from ..types import Document
from .limits import Budget, current_budget
from .tables import is_table_title, markdown_table
from .text import escape_markup, first_heading

__all__ = ["DocxLoader"]

_INSTALL = "needs the 'docx' extra: pip install 'ragkit-claude[docx]'"
_W = frozenset(
    {
        "http://schemas.openxmlformats.org/wordprocessingml/2006/main",  # Transitional
        "http://purl.oclc.org/ooxml/wordprocessingml/main",  # Strict
    }
)
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_CODE_STYLES = frozenset({"source code", "sourcecode", "html preformatted", "code", "macro text"})
_CAPTION_STYLES = frozenset({"caption", "table caption", "tablecaption"})
_CHECK_EVERY = 2048  # XML events between two looks at the clock
_MAX_SPAN = 64  # a hostile gridSpan of 10**9 must not build a billion empty cells


def _split(tag: Any) -> tuple[str, str]:
    if not isinstance(tag, str) or not tag.startswith("{"):
        return "", tag if isinstance(tag, str) else ""
    ns, _, local = tag[1:].partition("}")
    return ns, local


def _attr(elem: Any, local: str) -> str | None:
    """A ``w:``-namespaced attribute (either flavour), or an unqualified one."""
    for key, value in elem.attrib.items():
        ns, name = _split(key)
        if name == local and (not ns or ns in _W or ns.endswith("/relationships")):
            return str(value)
    return None


class _Counted(io.RawIOBase):
    """A part's inflated stream that counts its bytes against the file's budget."""

    def __init__(self, raw: IO[bytes], name: str, budget: Budget) -> None:
        self.raw, self.name, self.budget = raw, name, budget

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size if size is not None and size >= 0 else 1 << 16)
        self.budget.add_inflated(self.name, len(data))
        return data


@dataclass
class _Package:
    """The zip and the budget its parts are read under."""

    zf: zipfile.ZipFile
    budget: Budget

    def has(self, name: str) -> bool:
        try:
            self.zf.getinfo(name)
        except KeyError:
            return False
        return True

    def events(self, name: str) -> Iterator[tuple[str, Any]]:
        """``(event, element)`` pairs of a part; every element is freed after its end."""
        from lxml import etree

        info = self.zf.getinfo(name)
        self.budget.check_declared(name, info.file_size)
        with self.zf.open(info) as raw:
            stream = _Counted(raw, name, self.budget)
            parser = etree.iterparse(
                stream,
                events=("start", "end"),
                resolve_entities=False,
                no_network=True,
                load_dtd=False,
                huge_tree=False,
                remove_comments=True,
                remove_pis=True,
            )
            for count, (event, elem) in enumerate(parser):
                if count % _CHECK_EVERY == 0:
                    self.budget.check_time()
                yield event, elem
                if event == "end":
                    elem.clear(keep_tail=False)
                    parent = elem.getparent()
                    if parent is not None:
                        while elem.getprevious() is not None:
                            del parent[0]

    def relationships(self, part: str) -> dict[str, str]:
        """Relationship type (its last path segment) → target part name, for ``part``."""
        folder, base = posixpath.split(part)
        rels = posixpath.join(folder, "_rels", base + ".rels")
        found: dict[str, str] = {}
        if not self.has(rels):
            return found
        for event, elem in self.events(rels):
            if event != "end" or _split(elem.tag)[1] != "Relationship":
                continue
            kind = (elem.get("Type") or "").rsplit("/", 1)[-1]
            target = elem.get("Target") or ""
            if not kind or not target or elem.get("TargetMode") == "External":
                continue
            name = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
            found.setdefault(kind, posixpath.normpath(name))
        return found


@dataclass
class _Cell:
    paragraphs: list[str] = field(default_factory=list)
    span: int = 1  # grid columns it covers (w:gridSpan)


@dataclass
class _Row:
    cells: list[_Cell] = field(default_factory=list)
    before: int = 0  # grid columns skipped before the first cell (w:gridBefore)


@dataclass
class _Paragraph:
    parts: list[str] = field(default_factory=list)
    style: str = ""
    listed: bool = False
    outline: int | None = None
    boxes: list[tuple[str, str]] = field(default_factory=list)  # text-box blocks after it


@dataclass(frozen=True, slots=True)
class _Style:
    name: str
    outline: int | None


def _styles(package: _Package, name: str | None) -> dict[str, _Style]:
    if name is None or not package.has(name):
        return {}
    styles: dict[str, _Style] = {}
    current: list[Any] = []  # [style id, name, outline level]
    for event, elem in package.events(name):
        ns, local = _split(elem.tag)
        if ns not in _W:
            continue
        if local == "style" and event == "start":
            current[:] = [_attr(elem, "styleId") or "", "", None]
        elif event == "end" and current:
            if local == "name":
                current[1] = _attr(elem, "val") or ""
            elif local == "outlineLvl":
                current[2] = _int(_attr(elem, "val"))
            elif local == "style":
                if current[0]:
                    styles[current[0]] = _Style(current[1] or current[0], current[2])
                current.clear()
    return styles


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class _Reader:
    """Turns a part's events into blocks: ``(kind, text)`` with kinds text, heading, list,
    code, caption and table (whose text is the markdown table)."""

    def __init__(self, styles: dict[str, _Style], budget: Budget) -> None:
        self.styles = styles
        self.budget = budget
        self.blocks: list[tuple[str, str]] = []
        self.paragraphs: list[_Paragraph] = []
        self.tables: list[list[_Row]] = []  # open tables, innermost last
        self.containers: list[str] = []  # "cell", "box", "note", "skip"
        self.notes: dict[str, list[str]] = {}
        self.note: tuple[str, list[str]] | None = None
        self.skip = 0

    def read(self, events: Iterator[tuple[str, Any]], *, notes: str | None = None) -> None:
        for event, elem in events:
            if elem.tag == _MC_FALLBACK:
                self.skip += 1 if event == "start" else -1
                continue
            if self.skip:
                continue
            ns, local = _split(elem.tag)
            if ns not in _W:
                continue
            if event == "start":
                self.start(local, elem, notes)
            else:
                self.end(local, elem, notes)

    def start(self, local: str, elem: Any, notes: str | None) -> None:
        if local == "p":
            self.paragraphs.append(_Paragraph())
        elif local == "tbl":
            self.tables.append([])
        elif local == "tr" and self.tables:
            self.tables[-1].append(_Row())
        elif local == "tc" and self.tables and self.tables[-1]:
            self.tables[-1][-1].cells.append(_Cell())
            self.containers.append("cell")
        elif local == "txbxContent":
            self.containers.append("box")
        elif notes is not None and local in ("footnote", "endnote"):
            if _attr(elem, "type") in (None, "normal"):
                self.note = (notes + (_attr(elem, "id") or ""), [])
                self.containers.append("note")
            else:  # the separator lines Word draws above the notes
                self.containers.append("skip")

    def end(self, local: str, elem: Any, notes: str | None) -> None:
        paragraph = self.paragraphs[-1] if self.paragraphs else None
        if local == "t" and paragraph is not None:
            text = elem.text or ""
            self.budget.add_chars(len(text))
            paragraph.parts.append(text)
        elif paragraph is not None and local in ("tab", "ptab"):
            paragraph.parts.append("\t")
        elif paragraph is not None and local in ("br", "cr"):
            paragraph.parts.append("\n")
        elif paragraph is not None and local == "noBreakHyphen":
            paragraph.parts.append("-")
        elif paragraph is not None and local == "pStyle":
            paragraph.style = _attr(elem, "val") or ""
        elif paragraph is not None and local == "numPr":
            paragraph.listed = True
        elif paragraph is not None and local == "outlineLvl":
            paragraph.outline = _int(_attr(elem, "val"))
        elif paragraph is not None and local in ("footnoteReference", "endnoteReference"):
            prefix = "e" if local == "endnoteReference" else ""
            paragraph.parts.append(f"[^{prefix}{_attr(elem, 'id') or ''}]")
        elif local == "p" and paragraph is not None:
            self.paragraphs.pop()
            self.paragraph_done(paragraph)
        elif local == "tc" and self.containers and self.containers[-1] == "cell":
            self.containers.pop()
        elif local == "gridSpan" and (cell := self.cell()) is not None:
            cell.span = max(1, min(_int(_attr(elem, "val")) or 1, _MAX_SPAN))
        elif local == "gridBefore" and self.tables and self.tables[-1]:
            self.tables[-1][-1].before = max(0, min(_int(_attr(elem, "val")) or 0, _MAX_SPAN))
        elif local == "txbxContent" and self.containers and self.containers[-1] == "box":
            self.containers.pop()
        elif local == "tbl" and self.tables:
            self.table_done(self.tables.pop())
        elif notes is not None and local in ("footnote", "endnote"):
            if self.containers and self.containers[-1] in ("note", "skip"):
                self.containers.pop()
            if self.note is not None:
                note_id, texts = self.note
                self.notes[note_id] = texts
                self.note = None

    def block(self, paragraph: _Paragraph) -> tuple[str, str] | None:
        text = "".join(paragraph.parts).replace("\r", "\n").strip()
        if not text:
            return None
        style = self.styles.get(paragraph.style)
        name = (style.name if style is not None else paragraph.style).lower()
        level = 0
        if name == "title":
            level = 1
        elif name.startswith("heading ") and name[8:].strip().isdigit():
            level = int(name[8:].strip())
        else:
            outline = (
                paragraph.outline
                if paragraph.outline is not None
                else (style.outline if style is not None else None)
            )
            if outline is not None and 0 <= outline < 9:
                level = outline + 1
        if level >= 1:
            return "heading", "#" * min(level, 6) + " " + " ".join(text.split())
        if name in _CODE_STYLES or name.replace(" ", "") in _CODE_STYLES:
            return "code", "".join(paragraph.parts).replace("\r", "\n")
        if name in _CAPTION_STYLES:
            return "caption", " ".join(text.split())
        if paragraph.listed or name.startswith("list"):
            return "list", "- " + escape_markup(text)
        return "text", escape_markup(text)

    def cell(self) -> _Cell | None:
        """The innermost open table cell, if the reader is in one."""
        if self.tables and self.tables[-1] and self.tables[-1][-1].cells:
            return self.tables[-1][-1].cells[-1]
        return None

    def paragraph_done(self, paragraph: _Paragraph) -> None:
        block = self.block(paragraph)
        where = self.containers[-1] if self.containers else ""
        cell = self.cell()
        if where == "cell" and cell is not None:
            if block is not None:
                cell.paragraphs.append(" ".join(block[1].split()))
            return
        if where == "note" and self.note is not None:
            if block is not None:
                self.note[1].append(" ".join(block[1].split()))
            return
        if where == "skip":
            return
        out = [block] if block is not None else []
        out.extend(paragraph.boxes)
        if where == "box" and self.paragraphs:
            self.paragraphs[-1].boxes.extend(out)  # after the paragraph anchoring the box
        else:
            self.blocks.extend(out)

    def table_done(self, rows: list[_Row]) -> None:
        grid = _grid(rows)
        if not grid:
            return
        cell = self.cell()
        if self.containers and self.containers[-1] == "cell" and cell is not None:
            # A table inside a table cell: flattened into that cell's text, a row at a time.
            cell.paragraphs.append("; ".join(", ".join(c for c in row if c) for row in grid))
            return
        self.blocks.append(("table", markdown_table(grid)))


def _grid(rows: list[_Row]) -> list[list[str]]:
    """Rows of cell texts on the table's grid, empty rows left out: a cell's paragraphs are
    joined by ``<br>``; a merged cell's text is in its first column and the columns it spans
    are empty (a vertically merged cell's text is in its top row, the rows below are empty)."""
    grid: list[list[str]] = []
    for row in rows:
        cells = [""] * row.before
        for cell in row.cells:
            cells.append("<br>".join(p for p in cell.paragraphs if p))
            cells.extend([""] * (cell.span - 1))
        if any(cells):
            grid.append(cells)
    return grid


def _fence(lines: list[str]) -> str:
    code = "\n".join(lines)
    longest = 2
    run = 0
    for ch in code:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{code}\n{fence}"


def _is_caption(kind: str, text: str) -> bool:
    """A Caption-style paragraph, or a short plain one that starts "Table N:"."""
    if kind == "caption":
        return True
    return kind == "text" and is_table_title(text)


def _assemble(blocks: list[tuple[str, str]]) -> list[str]:
    """Blocks to text: code runs fenced, captions glued to their tables."""
    out: list[str] = []
    i = 0
    while i < len(blocks):
        kind, text = blocks[i]
        if kind == "code":
            run = [text]
            while i + 1 < len(blocks) and blocks[i + 1][0] == "code":
                i += 1
                run.append(blocks[i][1])
            out.append(_fence(run))
        elif _is_caption(kind, text) and i + 1 < len(blocks) and blocks[i + 1][0] == "table":
            out.append(escape_markup(text) + "\n" + blocks[i + 1][1])
            i += 1
        elif kind == "table" and i + 1 < len(blocks) and blocks[i + 1][0] == "caption":
            out.append(escape_markup(blocks[i + 1][1]) + "\n" + text)
            i += 1
        else:
            out.append(text)
        i += 1
    return out


def _core_title(package: _Package, name: str | None) -> str:
    if name is None or not package.has(name):
        return ""
    for event, elem in package.events(name):
        if event == "end" and _split(elem.tag)[1] == "title":
            return " ".join((elem.text or "").split())
    return ""


def _read(data: bytes, document_id: str, budget: Budget) -> tuple[list[str], str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        package = _Package(zf, budget)
        root = package.relationships("")
        main = root.get("officeDocument")
        if main is None and package.has("word/document.xml"):
            main = "word/document.xml"
        if main is None or not package.has(main):
            parts = ", ".join(sorted(zf.namelist())[:5])
            raise LoadError(
                document_id,
                f"not a Word document: no main document part (found {parts}; "
                "is it another Office format renamed .docx?)",
            )
        related = package.relationships(main)
        styles = _styles(package, related.get("styles"))
        reader = _Reader(styles, budget)
        reader.read(package.events(main))
        for kind, prefix in (("footnotes", ""), ("endnotes", "e")):
            name = related.get(kind)
            if name is not None and package.has(name):
                reader.read(package.events(name), notes=prefix)
        blocks = _assemble(reader.blocks)
        for note_id, texts in reader.notes.items():
            text = " ".join(t for t in texts if t)
            if text:
                blocks.append(f"[^{note_id}]: {text}")
        title = _core_title(package, root.get("core-properties"))
    return blocks, title


@dataclass(frozen=True, slots=True)
class DocxLoader:
    """Word ``.docx`` files, streamed with lxml; see the module docstring for what is kept.

    Attributes:
        suffixes: the suffixes it reads.
        max_bytes: the default size limit (images make documents large).
    """

    suffixes: tuple[str, ...] = (".docx",)
    max_bytes: int = 100 * 1024 * 1024

    def load(self, data: bytes, *, document_id: str) -> Document:
        """Read the body, text boxes, tables and notes in order.

        Raises:
            LoadError: the extra is missing; not a readable .docx; no text; over the file's
                inflated-bytes, character or time budget.
        """
        try:
            from lxml import etree
        except ImportError:
            raise LoadError(document_id, _INSTALL) from None
        budget = current_budget(document_id)
        reject: tuple[type[BaseException], ...] = (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            etree.LxmlError,
            KeyError,
            ValueError,
            EOFError,
            NotImplementedError,  # an unsupported compression method
            OSError,
        )
        try:
            blocks, title = _read(data, document_id, budget)
        except LoadError:
            raise
        except reject as exc:
            raise LoadError(document_id, f"not a readable .docx ({type(exc).__name__})") from None
        if not blocks:
            raise LoadError(document_id, "no text in document")
        text = "\n\n".join(blocks)
        title = title or first_heading(text) or ""
        return Document(document_id, text, {"title": title} if title else {})
