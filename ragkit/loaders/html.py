"""HTML: visible text with headings kept as markdown ``#`` lines, using only :mod:`html.parser`.

:class:`HtmlLoader` decodes the bytes (BOM, UTF-8, the page's ``<meta charset>``, then a fallback
codec) and reduces the page with :func:`html_to_text`. ``title`` is the page's ``<title>``, else
its first heading.

This module leaves out scripts, styles and anything a browser would need to run to show the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from html.parser import HTMLParser

from ..errors import LoadError
from ..types import Document
from .text import decode_text, first_heading

__all__ = ["HtmlLoader", "html_to_text", "html_to_text_and_title"]

_DROP_TAGS = frozenset(
    {"script", "style", "noscript", "template", "head", "svg", "iframe", "object"}
)
_HEAD_TAGS = frozenset(
    {"head", "title", "meta", "link", "style", "script", "noscript", "base", "template"}
)
_HEADING_TAGS = {f"h{i}": i for i in range(1, 7)}
_PARAGRAPH_TAGS = frozenset(
    {
        "p", "pre", "blockquote", "section", "article", "aside", "header", "footer", "nav",
        "main", "figure", "figcaption", "table", "ul", "ol", "dl", "form", "fieldset",
        "details", "summary", "address", "hr", "body",
    }
)  # fmt: skip
_LINE_TAGS = frozenset({"br", "div", "li", "tr", "dt", "dd", "caption", "option", "legend"})
_CELL_TAGS = frozenset({"td", "th"})
_SPACE = re.compile(r"\s+")
_SPACES = re.compile(r" {2,}")
_LINE_EDGES = re.compile(r"[ \t]*\n[ \t]*")
_BLANK_RUNS = re.compile(r"\n{3,}")


class _TextExtractor(HTMLParser):
    """Collects visible text; see :func:`html_to_text` for the rules."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.runs: list[tuple[bool, list[str]]] = [(False, [])]  # (inside <pre>, parts)
        self.drop: dict[str, int] = {}
        self.pending = 0  # newlines owed before the next text; breaks do not stack
        self.pre = 0
        self.heading = 0
        self.in_title = False
        self.title: list[str] = []

    def _emit(self, text: str, *, literal: bool = False) -> None:
        if self.pending:
            if not literal and not text.strip():
                return  # whitespace between blocks
            self._append("\n" * self.pending, in_pre=False)
            self.pending = 0
            if not literal:
                text = text.lstrip()
        self._append(text, in_pre=literal)

    def _append(self, text: str, *, in_pre: bool) -> None:
        if self.runs[-1][0] != in_pre:
            self.runs.append((in_pre, []))
        self.runs[-1][1].append(text)

    def _break(self, newlines: int) -> None:
        self.pending = max(self.pending, newlines)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002
        if tag not in _HEAD_TAGS:
            self.drop.pop("head", None)  # body content ends the head, </head> or not
        if tag == "title":
            self.in_title = True
        if tag in _DROP_TAGS:
            self.drop[tag] = self.drop.get(tag, 0) + 1
            return
        if self.heading and tag not in _HEADING_TAGS:
            if tag in _LINE_TAGS or tag in _PARAGRAPH_TAGS or tag in _CELL_TAGS:
                self._emit(" ")  # a heading stays on one line
            return
        if tag in _HEADING_TAGS:
            self._break(2)
            self.heading = _HEADING_TAGS[tag]
            self._emit("#" * self.heading + " ")
        elif tag in _PARAGRAPH_TAGS:
            self._break(2)
        elif tag in _LINE_TAGS:
            self._break(1)
            if tag == "li":
                self._emit("- ")
        elif tag in _CELL_TAGS:
            self._emit(" ")
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in _DROP_TAGS:
            if self.drop.get(tag, 0) > 0:
                self.drop[tag] -= 1
            return
        if tag == "pre" and self.pre > 0:
            self.pre -= 1
        if self.heading and tag not in _HEADING_TAGS:
            return
        if tag in _HEADING_TAGS:
            self.heading = 0
            self._break(2)
        elif tag in _PARAGRAPH_TAGS:
            self._break(2)
        elif tag in _LINE_TAGS and tag != "br":
            self._break(1)

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
            return
        if any(self.drop.values()):
            return
        if self.pre > 0 and self.heading == 0:
            self._emit(data, literal=True)
        else:
            self._emit(_SPACE.sub(" ", data))

    def page_title(self) -> str:
        return _SPACE.sub(" ", "".join(self.title)).strip()

    def text(self) -> str:
        pieces = []
        for in_pre, parts in self.runs:
            joined = "".join(parts)
            if not in_pre:
                joined = _LINE_EDGES.sub("\n", _SPACES.sub(" ", joined))
            pieces.append(joined)
        body = _BLANK_RUNS.sub("\n\n", "".join(pieces)).strip("\n")
        body = "\n".join(line.rstrip() for line in body.split("\n")).strip()
        title = self.page_title()
        if title:
            heading = f"# {title}"
            if not body.startswith(heading + "\n") and body != heading:
                body = f"{heading}\n\n{body}" if body else heading
        return body


def html_to_text(html: str) -> str:
    """Extract readable text from HTML, with headings as markdown ``#`` lines.

    The contents of ``script``, ``style``, ``noscript``, ``template``, ``svg`` and ``head``
    (except ``<title>``) are dropped. Block elements (``p``, ``div``, ``li``, ``tr``, ``br``,
    ``section``, ``pre``, ...) become line breaks, ``h1``-``h6`` become ``#``..``######`` lines,
    list items start with ``- ``, whitespace outside ``<pre>`` is collapsed, entities are
    unescaped and runs of blank lines are reduced to one. The ``<title>`` becomes a first
    ``#`` heading unless the page already starts with it.

    Example:
        >>> html_to_text("<h2>Install</h2><p>Run <code>pip</code> &amp; go.</p>")
        '## Install\\n\\nRun pip & go.'
    """
    return html_to_text_and_title(html)[0]


def html_to_text_and_title(html: str) -> tuple[str, str | None]:
    """:func:`html_to_text` and the page's ``<title>`` (``None`` when it has none)."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return parser.text(), parser.page_title() or None


@dataclass(frozen=True, slots=True)
class HtmlLoader:
    """HTML pages (``.html``, ``.htm``, ``.xhtml``) reduced to text by :func:`html_to_text`.

    Attributes:
        suffixes: the suffixes it reads.
        fallback_encoding: codec for pages that are not UTF-8 and declare no charset.
    """

    suffixes: tuple[str, ...] = (".html", ".htm", ".xhtml")
    fallback_encoding: str | None = None

    def with_fallback_encoding(self, encoding: str | None) -> HtmlLoader:
        """The same loader decoding non-UTF-8 pages with ``encoding``."""
        return replace(self, fallback_encoding=encoding)

    def load(self, data: bytes, *, document_id: str) -> Document:
        """Decode the page and extract its text; ``LoadError("no text in HTML")`` if none."""
        html = decode_text(
            data, document_id=document_id, fallback_encoding=self.fallback_encoding, html=True
        )
        text, title = html_to_text_and_title(html)
        if not text:
            raise LoadError(document_id, "no text in HTML")
        title = title or first_heading(text)
        return Document(document_id, text, {"title": title} if title else {})
