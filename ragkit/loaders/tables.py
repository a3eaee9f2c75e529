"""Tables for the loaders: the markdown pipe-table writer and caption test that the Word and PDF
loaders share, and the PDF table finder.

A table is written as a GitHub-flavoured pipe table whose header is its first row; the chunker
(:mod:`ragkit.chunking`) keeps such a table, with a caption line glued on top, in a chunk of
its own.

The PDF finder reads a page's ruling lines from pypdfium2's page objects (stroked lines and thin
filled rectangles; the sides of larger rectangles too) and its text from PDFium's text page:

- **Grids** (lines both ways, as Word, LibreOffice and most report generators draw them): the
  lines that meet form a grid; a cell is a region with no line between its grid squares, so a
  merged cell is one cell, its text in its first column and top row. A grid row is one table
  row (its cells' lines joined), except when the whole body is one grid row (a box with column
  lines only): then each text line is a row, if every cell with text has as many lines.
- **Rules only** (LaTeX ``booktabs``, Word's horizontal-border styles): at least three
  horizontal rules of the same extent with text between them; the columns are the gaps that run
  through every line of text between the top and bottom rule, each text line a row, and the
  lines above the first inner rule one header row.

A candidate is kept only when it has at least two rows and two columns with text in most rows,
so a framed note, a chart's gridlines or a page rule is left as text. A page without a path
object costs one look at its objects.

This module leaves out tables without any ruling lines (read as text lines), tables inside form
XObjects, rotated tables and tables drawn as images; it does not join a table continued on the
next page (each page's part is a table of its own). In a rules-only table a cell of several
lines becomes several rows, and a header cell spanning columns joins them.
"""

from __future__ import annotations

import ctypes
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PdfTable", "find_pdf_tables", "is_table_title", "markdown_table"]

# A paragraph that names the table below it: "Table 3: Results", "Table 3. Results",
# "Table A.1 - Costs", "TABLE IV. Parameters".
_TABLE_TITLE = re.compile(
    r"(?:Table|Tab\.)\s+(?:[A-Z]?[0-9]+(?:[.-][0-9]+)*|[IVXLC]+)\s*[:.\u2013\u2014-]", re.I
)
_MAX_TITLE = 300

_TOL = 2.0  # points: lines closer than this are one line; ends closer than this meet
_MIN_RULE = 8.0  # points: shorter segments are not table lines
_THIN = 3.0  # points: a filled rectangle thinner than this is a line
_MAX_SEGMENTS = 2_000  # a path with more segments is a drawing, not a table
_MAX_PAIRS = 40_000  # horizontal x vertical lines checked for crossings on one page
_MAX_GRID_LINES = 400  # lines in one grid (a drawing past this is not read as a table)
_MAX_RULES = 1_000  # horizontal lines looked at for rules-only tables
_MAX_CHARS = 50_000  # characters of one page read one by one for a rules-only table


def is_table_title(text: str) -> bool:
    """Whether a one-line paragraph names a table (``Table 3: Results``).

    Example:
        >>> is_table_title("Table 3: Results"), is_table_title("Table 3 shows the results")
        (True, False)
    """
    return len(text) <= _MAX_TITLE and "\n" not in text and _TABLE_TITLE.match(text) is not None


def markdown_table(grid: Sequence[Sequence[str]]) -> str:
    """A pipe table from rows of cell texts; the first row is the header, pipes are escaped.

    Example:
        >>> print(markdown_table([["a", "b|c"], ["1"]]))
        | a | b\\|c |
        | --- | --- |
        | 1 |  |
    """
    width = max(len(r) for r in grid)

    def line(row: Sequence[str]) -> str:
        cells = [c.replace("|", "\\|") for c in row] + [""] * (width - len(row))
        return "| " + " | ".join(cells) + " |"

    lines = [line(grid[0]), "|" + " --- |" * width]
    lines.extend(line(r) for r in grid[1:])
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class PdfTable:
    """A table found on a PDF page: its box in page coordinates (y up) and its cell texts."""

    left: float
    bottom: float
    right: float
    top: float
    rows: tuple[tuple[str, ...], ...]

    def markdown(self) -> str:
        return markdown_table(self.rows)


# Lines are (position, start, end): a horizontal line at y from x0 to x1, a vertical one at x
# from y0 to y1.
_Line = tuple[float, float, float]


def _lines(page: Any) -> tuple[list[_Line], list[_Line]]:
    """The visible straight horizontal and vertical lines drawn on a page (top level only)."""
    import pypdfium2.raw as c

    raw = page.raw
    horizontal: list[_Line] = []
    vertical: list[_Line] = []
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    fill, stroke = ctypes.c_int(), ctypes.c_int()
    x, y = ctypes.c_float(), ctypes.c_float()
    matrix = c.FS_MATRIX()
    # Most objects are text: the first look at each is two library calls, bound once.
    get_object, get_type, path = c.FPDFPage_GetObject, c.FPDFPageObj_GetType, c.FPDF_PAGEOBJ_PATH
    for j in range(c.FPDFPage_CountObjects(raw)):
        obj = get_object(raw, j)
        if get_type(obj) != path:
            continue
        if not c.FPDFPath_GetDrawMode(obj, fill, stroke) or not (fill.value or stroke.value):
            continue  # a clipping path draws nothing
        if not c.FPDFPageObj_GetBounds(obj, left, bottom, right, top):
            continue
        width, height = right.value - left.value, top.value - bottom.value
        if height <= _THIN and width >= _MIN_RULE:
            horizontal.append(((bottom.value + top.value) / 2, left.value, right.value))
            continue
        if width <= _THIN and height >= _MIN_RULE:
            vertical.append(((left.value + right.value) / 2, bottom.value, top.value))
            continue
        if width < _MIN_RULE and height < _MIN_RULE:
            continue
        n = c.FPDFPath_CountSegments(obj)
        if n > _MAX_SEGMENTS or not c.FPDFPageObj_GetMatrix(obj, matrix):
            continue
        a, b, cc, d, e, f = matrix.a, matrix.b, matrix.c, matrix.d, matrix.e, matrix.f
        start = current = None
        for i in range(n):
            segment = c.FPDFPath_GetPathSegment(obj, i)
            if not c.FPDFPathSegment_GetPoint(segment, x, y):
                continue
            point = (a * x.value + cc * y.value + e, b * x.value + d * y.value + f)
            kind = c.FPDFPathSegment_GetType(segment)
            if kind == c.FPDF_SEGMENT_LINETO and current is not None:
                _add_line(current, point, horizontal, vertical)
            elif kind == c.FPDF_SEGMENT_MOVETO:
                start = point
            current = point
            if c.FPDFPathSegment_GetClose(segment) and start is not None:
                _add_line(point, start, horizontal, vertical)
                current = start
    return horizontal, vertical


def _add_line(
    p: tuple[float, float], q: tuple[float, float], horizontal: list[_Line], vertical: list[_Line]
) -> None:
    if abs(p[1] - q[1]) <= 0.5 and abs(p[0] - q[0]) >= _MIN_RULE:
        horizontal.append(((p[1] + q[1]) / 2, min(p[0], q[0]), max(p[0], q[0])))
    elif abs(p[0] - q[0]) <= 0.5 and abs(p[1] - q[1]) >= _MIN_RULE:
        vertical.append(((p[0] + q[0]) / 2, min(p[1], q[1]), max(p[1], q[1])))


def _merge(lines: list[_Line]) -> list[_Line]:
    """Lines within ``_TOL`` of one position snapped together; touching pieces joined."""
    out: list[_Line] = []
    lines = sorted(lines)
    i = 0
    while i < len(lines):
        j = i
        while j + 1 < len(lines) and lines[j + 1][0] - lines[i][0] <= _TOL:
            j += 1
        group = lines[i : j + 1]
        pos = statistics.fmean(line[0] for line in group)
        spans = sorted((line[1], line[2]) for line in group)
        lo, hi = spans[0]
        for s, t in spans[1:]:
            if s <= hi + _TOL:
                hi = max(hi, t)
            else:
                out.append((pos, lo, hi))
                lo, hi = s, t
        out.append((pos, lo, hi))
        i = j + 1
    return out


def _crosses(h: _Line, v: _Line) -> bool:
    return h[1] - _TOL <= v[0] <= h[2] + _TOL and v[1] - _TOL <= h[0] <= v[2] + _TOL


class _Find:
    """Union-find over integers."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def root(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        self.parent[self.root(i)] = self.root(j)


def _clusters(values: list[float]) -> list[float]:
    out: list[float] = []
    for v in sorted(values):
        if not out or v - out[-1] > _TOL:
            out.append(v)
    return out


def _cell_lines(textpage: Any, left: float, bottom: float, right: float, top: float) -> list[str]:
    text = textpage.get_text_bounded(left, bottom, right, top)
    text = re.sub(r"\x02\s*", "", text)  # a hyphen PDFium removed at a line end: join the word
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def _split_rows(row: list[list[str]]) -> list[list[str]]:
    """A grid row as table rows: one per text line when every cell with text has the same
    number of lines (a table with no lines between its body rows), else one row of joined
    lines (cells whose text wraps)."""
    counts = {len(lines) for lines in row if lines}
    if len(counts) == 1 and (n := counts.pop()) >= 2 and sum(1 for x in row if x) >= 2:
        return [[lines[i] if lines else "" for lines in row] for i in range(n)]
    return [[" ".join(lines) for lines in row]]


def _keep(rows: list[list[str]]) -> tuple[tuple[str, ...], ...] | None:
    """Rows and columns with text, if what is left is a table (2+ rows and columns, and cells
    of text in most rows)."""
    rows = [r for r in rows if any(r)]
    if not rows:
        return None
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    used = [i for i in range(width) if any(r[i] for r in rows)]
    grid = tuple(tuple(r[i] for i in used) for r in rows)
    if len(grid) < 2 or len(used) < 2:
        return None
    full = sum(1 for r in grid if sum(1 for cell in r if cell) >= 2)
    if 2 * full < len(grid):
        return None
    return grid


def _grid_tables(textpage: Any, horizontal: list[_Line], vertical: list[_Line]) -> list[PdfTable]:
    """Tables drawn as grids: connected horizontal and vertical lines."""
    if not horizontal or not vertical or len(horizontal) * len(vertical) > _MAX_PAIRS:
        return []
    n_h = len(horizontal)
    groups = _Find(n_h + len(vertical))
    for i, h in enumerate(horizontal):
        for j, v in enumerate(vertical):
            if _crosses(h, v):
                groups.union(i, n_h + j)
    members: dict[int, tuple[list[_Line], list[_Line]]] = {}
    for i, h in enumerate(horizontal):
        members.setdefault(groups.root(i), ([], []))[0].append(h)
    for j, v in enumerate(vertical):
        members.setdefault(groups.root(n_h + j), ([], []))[1].append(v)
    tables: list[PdfTable] = []
    for hs, vs in members.values():
        if len(hs) < 2 or len(vs) < 2 or len(hs) + len(vs) > _MAX_GRID_LINES:
            continue
        found = _one_grid(textpage, hs, vs)
        if found is not None:
            tables.append(found)
    return tables


def _one_grid(textpage: Any, hs: list[_Line], vs: list[_Line]) -> PdfTable | None:
    xs = _clusters([v[0] for v in vs])
    ys = _clusters([h[0] for h in hs])[::-1]  # top first
    n_rows, n_cols = len(ys) - 1, len(xs) - 1
    if n_rows < 1 or n_cols < 1 or n_rows * n_cols > 2_500:
        return None

    def has_v(x: float, y_mid: float) -> bool:
        return any(abs(v[0] - x) <= _TOL and v[1] - _TOL <= y_mid <= v[2] + _TOL for v in vs)

    def has_h(y: float, x_mid: float) -> bool:
        return any(abs(h[0] - y) <= _TOL and h[1] - _TOL <= x_mid <= h[2] + _TOL for h in hs)

    cells = _Find(n_rows * n_cols)
    for r in range(n_rows):
        y_mid = (ys[r] + ys[r + 1]) / 2
        for col in range(n_cols):
            x_mid = (xs[col] + xs[col + 1]) / 2
            if col + 1 < n_cols and not has_v(xs[col + 1], y_mid):
                cells.union(r * n_cols + col + 1, r * n_cols + col)
            if r + 1 < n_rows and not has_h(ys[r + 1], x_mid):
                cells.union((r + 1) * n_cols + col, r * n_cols + col)
    # Each merged region: its box, and its text in its top-left grid square.
    boxes: dict[int, list[int]] = {}
    for r in range(n_rows):
        for col in range(n_cols):
            root = cells.root(r * n_cols + col)
            box = boxes.setdefault(root, [r, col, r, col])
            box[2], box[3] = max(box[2], r), max(box[3], col)
    grid: list[list[list[str]]] = [[[] for _ in range(n_cols)] for _ in range(n_rows)]
    for r0, c0, r1, c1 in boxes.values():
        grid[r0][c0] = _cell_lines(textpage, xs[c0], ys[r1 + 1], xs[c1 + 1], ys[r0])
    rows: list[list[str]] = []
    for r, row in enumerate(grid):
        # Lines between the body rows are drawn (then each grid row is one table row, however
        # its cells wrap) unless the body is a single grid row.
        if r == n_rows - 1 and n_rows <= 2:
            rows.extend(_split_rows(row))
        else:
            rows.append([" ".join(lines) for lines in row])
    kept = _keep(rows)
    if kept is None:
        return None
    return PdfTable(xs[0], ys[-1], xs[-1], ys[0], kept)


@dataclass(frozen=True, slots=True)
class _Char:
    text: str
    line: int  # PDFium's line of text (its line breaks), counted from the page's start
    left: float
    right: float
    bottom: float
    top: float


def _chars(textpage: Any, bottom: float, top: float) -> list[_Char]:
    """The page's characters (no spaces or line breaks) whose middle lies between ``bottom``
    and ``top``, with PDFium's line numbers."""
    import pypdfium2.raw as c

    raw = textpage.raw
    n = min(c.FPDFText_CountChars(raw), _MAX_CHARS)
    rect = c.FS_RECTF()
    get_unicode, get_box = c.FPDFText_GetUnicode, c.FPDFText_GetLooseCharBox
    out: list[_Char] = []
    line = 0
    for i in range(n):
        code = get_unicode(raw, i)
        if code == 10:
            line += 1
        # The loose box spans the glyph's advance and the font's height: letters of a word
        # touch, a space is a gap.
        if code in (0, 2, 10, 13, 32) or not get_box(raw, i, rect):
            continue
        if bottom <= (rect.bottom + rect.top) / 2 <= top:
            out.append(_Char(chr(code), line, rect.left, rect.right, rect.bottom, rect.top))
    return out


def _rule_tables(textpage: Any, horizontal: list[_Line], taken: list[PdfTable]) -> list[PdfTable]:
    """Tables drawn with horizontal rules only: three or more rules of one extent."""
    free = [
        h
        for h in horizontal
        if not any(
            t.left - _TOL <= h[1]
            and h[2] <= t.right + _TOL
            and t.bottom - _TOL <= h[0] <= t.top + _TOL
            for t in taken
        )
    ]
    families: list[list[_Line]] = []
    for h in sorted(free, key=lambda line: -line[0]):
        for family in families:
            if abs(family[0][1] - h[1]) <= 3 * _TOL and abs(family[0][2] - h[2]) <= 3 * _TOL:
                family.append(h)
                break
        else:
            families.append([h])
    families = [f for f in families if len(f) >= 3]
    if not families:
        return []
    chars = _chars(textpage, min(f[-1][0] for f in families), max(f[0][0] for f in families))
    tables: list[PdfTable] = []
    for rules in families:
        found = _one_ruled(rules, chars)
        if found is not None:
            tables.append(found)
    return tables


def _text_lines(chars: list[_Char]) -> list[list[_Char]]:
    """Characters grouped into PDFium's lines of text, top line first."""
    lines: dict[int, list[_Char]] = {}
    for ch in chars:
        lines.setdefault(ch.line, []).append(ch)
    return sorted(lines.values(), key=lambda line: -max(ch.top for ch in line))


def _join_chars(chars: list[_Char], space: float) -> str:
    """Characters of one line, left to right, with a space where the gap is a word space."""
    out: list[str] = []
    for i, ch in enumerate(chars):
        if i and ch.left - chars[i - 1].right > space:
            out.append(" ")
        out.append(ch.text)
    return "".join(out)


def _one_ruled(rules: list[_Line], chars: list[_Char]) -> PdfTable | None:
    """A rules-only table between the first and last of ``rules`` (top first)."""
    top, bottom = rules[0][0], rules[-1][0]
    left, right = min(r[1] for r in rules), max(r[2] for r in rules)
    inside = [
        ch
        for ch in chars
        if left - _TOL <= (ch.left + ch.right) / 2 <= right + _TOL
        and bottom < (ch.bottom + ch.top) / 2 < top
    ]
    ink = [ch for ch in inside if not ch.text.isspace()]
    if len(ink) < 4:
        return None
    height = statistics.median([ch.top - ch.bottom for ch in ink] or [10.0])
    gap = max(2 * _TOL, 0.6 * height)  # between columns; a word space is narrower
    spans = sorted((ch.left, ch.right) for ch in ink)
    columns: list[list[float]] = [list(spans[0])]
    for s, t in spans[1:]:
        if s - columns[-1][1] < gap:
            columns[-1][1] = max(columns[-1][1], t)
        else:
            columns.append([s, t])
    if len(columns) < 2:
        return None
    header_end = rules[1][0]  # the first inner rule
    header: list[str] = [""] * len(columns)
    rows: list[list[str]] = []
    for line in _text_lines(ink):
        cells = [""] * len(columns)
        for col, (lo, hi) in enumerate(columns):
            part = sorted(
                (ch for ch in line if lo - 0.5 <= (ch.left + ch.right) / 2 <= hi + 0.5),
                key=lambda ch: ch.left,
            )
            cells[col] = _join_chars(part, 0.12 * height)
        if (line[0].bottom + line[0].top) / 2 > header_end:
            header = [" ".join(f"{a} {b}".split()) for a, b in zip(header, cells, strict=True)]
        else:
            rows.append(cells)
    kept = _keep([header, *rows] if any(header) else rows)
    if kept is None:
        return None
    return PdfTable(left, bottom, right, top, kept)


def find_pdf_tables(page: Any, textpage: Any) -> list[PdfTable]:
    """The tables on a pypdfium2 page, top first; see the module docstring for how."""
    horizontal, vertical = _lines(page)
    if not horizontal:
        return []
    horizontal, vertical = _merge(horizontal), _merge(vertical)
    tables = _grid_tables(textpage, horizontal, vertical)
    if 3 <= len(horizontal) <= _MAX_RULES:
        tables.extend(_rule_tables(textpage, horizontal, tables))
    tables.sort(key=lambda t: -t.top)
    # A table inside another (a grid drawn in a cell) is read as part of the outer one.
    return [
        t
        for i, t in enumerate(tables)
        if not any(
            o is not t
            and o.left - _TOL <= t.left
            and t.right <= o.right + _TOL
            and o.bottom - _TOL <= t.bottom
            and t.top <= o.top + _TOL
            and (o.top - o.bottom) * (o.right - o.left) > (t.top - t.bottom) * (t.right - t.left)
            for o in tables[:i] + tables[i + 1 :]
        )
    ]
