"""The outline of a markdown or reStructuredText text: where its headings (ATX, setext and reST
underlines) and heading paths are, which spans are fenced code or front matter, and where each
pipe table (with its caption) starts and ends, so the chunker can cut there and nowhere inside.

A pure function of the text (:func:`_outline`); it leaves out choosing the cuts and counting
tokens (``ragkit.chunking``).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

_NON_SPACE = re.compile(r"\S")

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})([^\n]*)$", re.M)
# The closing '#' sequence is stripped in _atx_title: a lazy group followed by optional spaces
# and hashes backtracks quadratically on a long line of spaces.
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]([^\n]*))?$", re.M)
# A setext (markdown) or reStructuredText title underline: one punctuation character repeated.
_UNDERLINE = re.compile(r"^([=\-~^\"'`*+#:._])\1*[ \t]*$", re.M)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
# A pipe table's delimiter row (GitHub-flavoured markdown): cells of dashes, at least one pipe.
_TABLE_DELIMITER = re.compile(
    r"^ {0,3}(?:\|[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?"
    r"|:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)+\|?)[ \t]*$",
    re.M,
)
_MAX_CAPTION = 300  # characters of a paragraph glued above a table that still count as caption


@dataclass(frozen=True, slots=True)
class _Table:
    """A pipe table: its caption (or ``""``), header row, and where its rows end."""

    start: int  # the caption's (or the header row's) first character
    end: int  # the end of the last row
    caption: str
    header: str
    row_ends: list[int]  # end of each row line after the delimiter row, increasing


@dataclass(frozen=True, slots=True)
class _Outline:
    """Where the headings, pipe tables and fenced code blocks of a text are."""

    starts: list[int]  # first non-space character of each heading block, increasing
    ends: dict[int, int]  # heading start -> end of its block (after the underline, if any)
    paths: list[tuple[str, ...]]  # heading path at each heading, outermost first
    fence_starts: list[int]
    fence_ends: list[int]
    tables: list[_Table]  # in text order, not overlapping
    table_starts: list[int]

    def path_at(self, pos: int) -> tuple[str, ...]:
        i = bisect_right(self.starts, pos) - 1
        return self.paths[i] if i >= 0 else ()

    def table_at(self, pos: int) -> _Table | None:
        """The table whose span holds ``pos``, if any."""
        i = bisect_right(self.table_starts, pos) - 1
        if i >= 0 and pos < self.tables[i].end:
            return self.tables[i]
        return None

    def headings_at(self, pos: int) -> tuple[str, ...]:
        """The heading path at ``pos``; inside a table past its header, also its caption and
        header row, which a later piece of a split table would otherwise lack."""
        path = self.path_at(pos)
        table = self.table_at(pos)
        if table is None or pos <= table.row_ends[0]:
            return path
        return path + ((table.caption,) if table.caption else ()) + (table.header,)

    def in_fence(self, pos: int) -> bool:
        i = bisect_right(self.fence_starts, pos) - 1
        return i >= 0 and pos < self.fence_ends[i]


def _is_title_underline(text: str, fence: re.Match[str]) -> bool:
    """Whether a would-be opening fence (``~~~~``) is the underline of a reST title above it.

    A bare fence line right below a text line at least as long as that line is read as an
    underline (reST's rule); a code fence after a text line is normally shorter than the line.
    """
    if fence.group(2).strip() or fence.start() == 0:
        return False
    above_start = text.rfind("\n", 0, fence.start() - 1) + 1
    above = text[above_start : fence.start() - 1].strip()
    return bool(above) and len(fence.group(1)) >= len(above)


def _outline(text: str) -> _Outline:
    """Find ATX and setext/reStructuredText headings outside fenced code and front matter."""
    fences: list[tuple[int, int]] = []
    front = _FRONT_MATTER.match(text)
    if front is not None:
        fences.append((0, front.end()))
    opening: re.Match[str] | None = None
    for m in _FENCE.finditer(text, front.end() if front else 0):
        if opening is None:
            if not _is_title_underline(text, m):
                opening = m
        elif m.group(1)[0] == opening.group(1)[0] and len(m.group(1)) >= len(opening.group(1)):
            if not m.group(2).strip():
                fences.append((opening.start(), m.end()))
                opening = None
    if opening is not None:  # an unclosed fence runs to the end, as in CommonMark
        fences.append((opening.start(), len(text)))
    fence_starts = [a for a, _ in fences]
    fence_ends = [b for _, b in fences]

    def fenced(pos: int) -> bool:
        i = bisect_right(fence_starts, pos) - 1
        return i >= 0 and pos < fence_ends[i]

    # (block start, block end, style, title); style is an ATX level or an underline style key.
    found: list[tuple[int, int, int | tuple[str, bool], str]] = []
    atx_lines: set[int] = set()
    for m in _ATX.finditer(text):
        if fenced(m.start()):
            continue
        atx_lines.add(m.start())
        title = _atx_title(m.group(2) or "")
        if title:
            found.append((m.start(), m.end(), len(m.group(1)), title))
    for m in _UNDERLINE.finditer(text):
        start = m.start()
        if start == 0 or start in atx_lines or fenced(start):
            continue
        title_start = text.rfind("\n", 0, start - 1) + 1
        title_line = text[title_start : start - 1]
        title = title_line.strip()
        if (
            not title
            or title_line.startswith(("    ", "\t"))
            or title_start in atx_lines
            or _UNDERLINE.fullmatch(title_line)
            or fenced(title_start)
        ):
            continue
        mark = m.group(1)
        if len(m.group(0).rstrip()) < min(3, len(title)):
            continue
        block_start, overlined = title_start, False
        if title_start > 0:
            above_start = text.rfind("\n", 0, title_start - 1) + 1
            above = text[above_start : title_start - 1]
            if above.strip() and above.strip() == mark * len(above.strip()):
                block_start, overlined = above_start, True
            elif above.strip() and not _UNDERLINE.fullmatch(above):
                continue  # the last line of a paragraph, not a title
        found.append((block_start, m.end(), (mark, overlined), title))
    found.sort(key=lambda h: h[0])

    # ATX levels are explicit. Underline styles get levels in order of first use, as in
    # docutils; next to ATX headings, setext '=' and '-' mean levels 1 and 2 as in CommonMark.
    has_atx = any(isinstance(h[2], int) for h in found)
    style_levels: dict[tuple[str, bool], int] = {}
    if has_atx:
        style_levels = {("=", False): 1, ("-", False): 2}
    next_level = 3 if has_atx else 1
    starts: list[int] = []
    ends: dict[int, int] = {}
    paths: list[tuple[str, ...]] = []
    stack: list[tuple[int, str]] = []
    last_end = -1
    for block_start, block_end, style, title in found:
        if block_start < last_end:
            continue  # an underline read twice (rst over- and underline)
        if isinstance(style, int):
            level = style
        else:
            if style not in style_levels:
                style_levels[style] = next_level
                next_level += 1
            level = style_levels[style]
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        first = _NON_SPACE.search(text, block_start)
        pos = first.start() if first else block_start
        starts.append(pos)
        ends[pos] = block_end
        paths.append(tuple(t for _, t in stack))
        last_end = block_end
    tables = _add_table_breaks(text, starts, paths, fenced)
    return _Outline(
        starts, ends, paths, fence_starts, fence_ends, tables, [t.start for t in tables]
    )


def _add_table_breaks(
    text: str, starts: list[int], paths: list[tuple[str, ...]], fenced: Callable[[int], bool]
) -> list[_Table]:
    """Make every pipe table a chunk of its own: a cut before it (and its caption) and after.

    A cut is an entry of ``starts`` with no heading block (it is absent from ``ends``) and the
    heading path in force there. A table's caption is the short paragraph glued on top of its
    header row (no blank line between), as the loaders write ``Table 2: Results`` above a table.
    Returns the tables found.
    """
    cuts: list[int] = []
    tables: list[_Table] = []
    for m in _TABLE_DELIMITER.finditer(text):
        header_end = m.start() - 1
        if header_end <= 0 or fenced(m.start()):
            continue
        header_start = text.rfind("\n", 0, header_end) + 1
        if "|" not in text[header_start:header_end] or not text[header_start:header_end].strip():
            continue
        if cuts and header_start < cuts[-1]:
            continue  # a delimiter-looking row inside a table already found
        block_start = header_start
        above = text.rfind("\n\n", 0, header_start)
        caption = text[above + 2 if above >= 0 else 0 : header_start]
        if caption.strip() and len(caption) <= _MAX_CAPTION and caption.count("\n") <= 3:
            block_start = above + 2 if above >= 0 else 0
        else:
            caption = ""
        end = m.end()
        row_ends = [end]
        while end < len(text):
            line_end = text.find("\n", end + 1)
            line = text[end + 1 : line_end if line_end >= 0 else len(text)]
            if not line.strip() or "|" not in line:
                break
            end = line_end if line_end >= 0 else len(text)
            row_ends.append(end)
        first = _NON_SPACE.search(text, block_start)
        cuts.append(first.start() if first else block_start)
        tables.append(
            _Table(
                start=cuts[-1],
                end=end,
                caption=" ".join(caption.split()),
                header=text[header_start:header_end].strip(),
                row_ends=row_ends,
            )
        )
        after = _NON_SPACE.search(text, end)
        if after is not None:
            cuts.append(after.start())
    if not cuts:
        return tables
    taken = set(starts)
    for cut in cuts:
        if cut in taken:
            continue
        i = bisect_right(starts, cut)
        starts.insert(i, cut)
        paths.insert(i, paths[i - 1] if i > 0 else ())
        taken.add(cut)
    return tables


def _atx_title(rest: str) -> str:
    """An ATX heading's title: ``rest`` without its closing ``#`` sequence and outer spaces."""
    title = rest.strip(" \t")
    if title.endswith("#"):
        bare = title.rstrip("#")
        if bare and bare[-1] in " \t":
            title = bare.rstrip(" \t")
    return title.strip()
