"""Plain text and markdown: bytes → text, with the checks every text format shares.

:class:`TextLoader` reads ``.txt``, ``.rst`` and included files of unknown suffix;
:class:`MarkdownLoader` reads ``.md``, ``.markdown`` and ``.mdx`` and parses YAML front matter.
The helpers here (binary sniffing, decoding, newline normalisation, first-heading titles) are
shared by the HTML and notebook loaders.

Front matter (a ``---`` block at the very top, parsed with PyYAML's safe loader) is taken out of
the document's text and its fields go into the metadata; when it has a ``title`` and the body does
not open with a level-1 heading, the text starts with ``# {title}`` so that chunks carry the title
in their heading path. Chunk offsets always refer to :attr:`Document.text` as returned here.

Markdown is read the way MkDocs, Docusaurus and MDX sites show it (:func:`render_dialects`):
attribute lists (``{ #id }``) are dropped from headings and titles, admonitions (``!!! note``,
``:::tip``) become a ``Note: ...`` line and their body, and in ``.mdx`` files ``import``/``export``
lines and lines that are only a JSX tag are removed. Front matter may be YAML (``---``) or TOML
(``+++``, as Hugo writes it).

This module leaves out file access (``folder.py``), JSX expressions inside text (``{props.x}``)
and rendering markdown itself.
"""

from __future__ import annotations

import codecs
import logging
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import yaml

from ..errors import LoadError
from ..types import Document

__all__ = [
    "MarkdownLoader",
    "TextLoader",
    "decode_text",
    "escape_markup",
    "first_heading",
    "parse_front_matter",
    "render_dialects",
    "strip_attribute_list",
]

logger = logging.getLogger("ragkit")

# How much of a file the binary sniff looks at; NUL bytes are searched in the whole file.
_SNIFF_BYTES = 8192
# Share of control bytes (other than tab, newlines, form feed, escape) above which a file is
# treated as binary. Text in any 8-bit or UTF-8 encoding has almost none.
_MAX_CONTROL_RATIO = 0.10
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 27))
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_TOML_FRONT_MATTER = re.compile(r"\A\+\+\+[ \t]*\n(.*?\n)?\+\+\+[ \t]*(?:\n|\Z)", re.S)
_H1 = re.compile(r"\A\s*# ")
# Front matter is metadata, not a data dump: more values than this and it is ignored (this also
# bounds YAML alias expansion, the "billion laughs").
_MAX_FRONT_MATTER_VALUES = 1000
# How much of a text is searched for its title before searching all of it.
_TITLE_PREFIX = 4096
# File facts the folder loader sets; front matter cannot override them.
RESERVED_KEYS = frozenset({"path", "suffix", "size", "mtime"})


def _looks_binary(data: bytes) -> bool:
    if b"\x00" in data:
        return True
    head = data[:_SNIFF_BYTES]
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return controls > _MAX_CONTROL_RATIO * len(head)


def _try_decode(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _decode(data: bytes, *, html: bool, fallback_encoding: str | None) -> str | None:
    """Decode ``data``: BOMs first, then UTF-8, an HTML meta charset, then the fallback."""
    if data.startswith(codecs.BOM_UTF8):
        return _try_decode(data[len(codecs.BOM_UTF8) :], "utf-8")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _try_decode(data, "utf-16")  # the codec reads and drops the BOM
    text = _try_decode(data, "utf-8")
    if text is not None:
        return text
    if html:
        declared = _META_CHARSET.search(data[:4096])
        if declared is not None:
            text = _try_decode(data, declared.group(1).decode("ascii"))
            if text is not None:
                return text
    if fallback_encoding is not None:
        return _try_decode(data, fallback_encoding)
    return None


def decode_text(
    data: bytes, *, document_id: str, fallback_encoding: str | None = None, html: bool = False
) -> str:
    """Decode a text file's bytes, normalise newlines to ``\\n`` and check there is text.

    UTF-8 (with or without a BOM) and UTF-16 with a BOM are read as such; other bytes are decoded
    with an HTML file's own ``<meta charset>`` (when ``html``), then ``fallback_encoding``.

    Raises:
        LoadError: ``"empty"``, ``"binary"``, ``"not UTF-8 ..."`` or ``"whitespace only"``.
    """
    if not data:
        raise LoadError(document_id, "empty")
    is_utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if not is_utf16 and _looks_binary(data):
        raise LoadError(document_id, "binary")
    text = _decode(data, html=html, fallback_encoding=fallback_encoding)
    if text is None:
        raise LoadError(document_id, "not UTF-8 (pass fallback_encoding to read other encodings)")
    if is_utf16 and "\x00" in text:
        raise LoadError(document_id, "binary")
    # One newline convention, so character offsets mean the same on every platform.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise LoadError(document_id, "whitespace only")
    return text


def first_heading(text: str) -> str | None:
    """The first markdown or reStructuredText heading of ``text``, as the chunker reads it.

    Example:
        >>> first_heading("intro\\n\\n## Setup\\n\\n# Later")
        'Setup'
    """
    from ..outline import _outline  # one heading grammar for titles and heading paths

    # Most titles are near the top: outline a prefix (cut at a line end) first, and trust a
    # heading found well inside it; otherwise outline the whole text.
    cut = text.rfind("\n", 0, _TITLE_PREFIX) if len(text) > _TITLE_PREFIX else -1
    if cut > 0:
        outline = _outline(text[:cut])
        # starts also holds cuts around tables, which are not headings (absent from ends)
        first = next((s for s in outline.starts if s in outline.ends), None)
        if first is not None and outline.ends[first] < cut - 1:
            return outline.path_at(first)[-1]
    outline = _outline(text)
    first = next((s for s in outline.starts if s in outline.ends), None)
    return outline.path_at(first)[-1] if first is not None else None


# Lines the chunker would read as markdown structure: an ATX heading, a setext or
# reStructuredText underline, a code fence, a table's delimiter row.
_MARKUP_LINE = re.compile(
    r"^(?: {0,3}#{1,6}(?:[ \t]|$)"
    r"|([=\-~^\"'`*+#:._])\1*[ \t]*$"
    r"| {0,3}(?:`{3,}|~{3,})"
    r"| {0,3}\|?[ \t]*:?-+:?[ \t]*\|)"
)


def escape_markup(text: str) -> str:
    """Indent by four spaces every line the chunker would read as markdown structure.

    Text extracted from a PDF or a Word file is not markdown: an R comment (``# fit``), a shell
    line or a row of ``=`` must not become a heading, nor a line of backticks a code fence.
    Indented four spaces, such a line is plain text to the chunker (and code to a markdown
    renderer); every other line is kept as it is.

    Example:
        >>> escape_markup("# fit the model\\nfit <- lm(y ~ x)\\n=====")
        '    # fit the model\\nfit <- lm(y ~ x)\\n    ====='
    """
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line and _MARKUP_LINE.match(line):
            lines[i] = "    " + line
    return "\n".join(lines)


# --------------------------------------------------------------------------- front matter


class _TooLarge(Exception):
    pass


def _scalar(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # .nan / .inf have no JSON form
    if isinstance(value, bytes):  # !!binary
        raise TypeError("binary")
    return value


def _flatten(prefix: str, value: Any, out: dict[str, Any], budget: list[int]) -> None:
    """JSON-like values: nested mappings become dotted keys, lists of scalars tuples."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out, budget)
        return
    if isinstance(value, (list, tuple)):
        items = []
        for item in value:
            budget[0] -= 1
            if budget[0] < 0:
                raise _TooLarge
            if isinstance(item, (Mapping, list, tuple, set)):
                raise TypeError("nested list")
            items.append(_scalar(item))
        out[prefix] = tuple(items)
        return
    if isinstance(value, set):
        raise TypeError("set")
    out[prefix] = _scalar(value)


def parse_front_matter(text: str, *, document_id: str = "") -> tuple[dict[str, Any], int]:
    """Split YAML front matter off ``text``: ``(fields, length of the front-matter block)``.

    Nested mappings become dotted keys (``author.name``), lists of scalars tuples, dates ISO text
    (in :func:`~ragkit.types.freeze_metadata`). A value that has no such form (a list of
    mappings) is left out with a warning. Text without front matter, or whose block is not a YAML
    mapping, gives ``({}, 0)`` and keeps the block as text (with a warning when it is invalid
    YAML).

    Example:
        >>> parse_front_matter("---\\ntitle: Hi\\ntags: [a, b]\\n---\\nBody")
        ({'title': 'Hi', 'tags': ('a', 'b')}, 31)
    """
    match = _FRONT_MATTER.match(text)
    toml = match is None and text.startswith("+++")
    if toml:
        match = _TOML_FRONT_MATTER.match(text)
    if match is None:
        return {}, 0
    if toml:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        try:
            data: Any = tomllib.loads(match.group(1) or "")
        except RecursionError:  # tomllib recurses on nested arrays and tables
            logger.warning("%r: front matter nested too deeply; kept as text", document_id)
            return {}, 0
        except tomllib.TOMLDecodeError as exc:
            logger.warning(
                "%r: front matter is not valid TOML (%s); kept as text", document_id, exc
            )
            return {}, 0
    else:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            data = yaml.load(match.group(1) or "", Loader=loader)  # noqa: S506 (a safe loader)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or type(exc).__name__
            logger.warning(
                "%r: front matter is not valid YAML (%s); kept as text", document_id, problem
            )
            return {}, 0
    if data is None:
        return {}, match.end()
    if not isinstance(data, Mapping):
        return {}, 0  # a '---' rule or a list, not front matter
    fields: dict[str, Any] = {}
    budget = [_MAX_FRONT_MATTER_VALUES]
    for key, value in data.items():
        name = str(key)
        try:
            _flatten(name, value, fields, budget)
        except _TooLarge:
            logger.warning(
                "%r: front matter has more than %d values; its fields are ignored",
                document_id,
                _MAX_FRONT_MATTER_VALUES,
            )
            return {}, match.end()
        except TypeError as exc:
            logger.warning(
                "%r: front-matter field %r left out (%s values are not supported)",
                document_id,
                name,
                exc,
            )
    for key in RESERVED_KEYS & fields.keys():
        logger.warning("%r: front-matter field %r left out (a file fact)", document_id, key)
        del fields[key]
    return fields, match.end()


# --------------------------------------------------------------------------- dialects

_FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATTR_ITEM = r"(?:[#.][\w:-]+|[\w-]+=(?:\"[^\"]*\"|'[^']*'|[^\s{}]+))"
# An attribute list (attr_list, MkDocs and Python-Markdown): "{ #id .class key=value }". Matched
# from its last "{" (found with rfind), so a long line costs one pass.
_ATTR_BODY = re.compile(r"\{:?[ \t]*" + _ATTR_ITEM + r"(?:[ \t]+" + _ATTR_ITEM + r")*[ \t]*\}")
# "!!! note "Title"", "??? tip", "???+ warning": MkDocs/pymdownx admonitions and details.
_ADMONITION = re.compile(r"( *)(?:!!!|\?\?\?\+?)[ \t]+([\w-]+)([^\n]*)")
# ":::tip Title" ... ":::" (Docusaurus, VitePress).
_CONTAINER = re.compile(r" {0,3}:{3,}[ \t]*([\w-]*)([^\n]*)")
_MDX_ESM = re.compile(r"^(?:import|export)[ \t{*]")
_JSX_LINE = re.compile(r"[ \t]*</?[A-Z][\w.]*(?:[ \t][^<>\n]*)?>[ \t]*")


def strip_attribute_list(text: str) -> str:
    """``text`` without a trailing attribute list such as ``{ #response-cookies }``.

    Example:
        >>> strip_attribute_list("Response Cookies { #response-cookies }")
        'Response Cookies'
    """
    stripped = text.rstrip()
    if not stripped.endswith("}"):
        return text
    at = stripped.rfind("{")
    if at < 0 or _ATTR_BODY.fullmatch(stripped, at) is None:
        return text
    return stripped[:at].rstrip()


def render_dialects(body: str, *, mdx: bool = False) -> str:
    """Markdown as MkDocs, Docusaurus and MDX sites show it, for chunking.

    - attribute lists are removed from headings and as lines of their own
      (``## Response Cookies { #response-cookies }`` → ``## Response Cookies``);
    - an admonition (``!!! note "Title"``, ``??? tip``) becomes a ``Note: Title`` line and its
      four-space-indented body is dedented; ``:::tip Title`` ... ``:::`` containers become a
      ``Tip: Title`` line and their body;
    - with ``mdx``, ``import``/``export`` lines and lines that are only a JSX tag
      (``<Tabs>``, ``<TabItem value="a">``, ``</Tabs>``) are removed, keeping the text between.

    Code fences are left as they are.

    Example:
        >>> render_dialects('!!! note "Heads up"\\n    Read this.')
        'Note: Heads up\\n\\nRead this.'
    """
    lines = body.split("\n")
    out: list[str] = []
    fence: str | None = None
    admonition_indent: int | None = None
    for line in lines:
        if fence is not None:
            out.append(line)
            m = _FENCE_LINE.match(line)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                if not line[m.end() :].strip():
                    fence = None
            continue
        if admonition_indent is not None:
            if not line.strip():
                out.append("")
                continue
            if line.startswith(" " * admonition_indent):
                line = line[admonition_indent:]
            else:
                admonition_indent = None
        m = _FENCE_LINE.match(line)
        if m:
            fence = m.group(1)
            out.append(line)
            continue
        stripped = line.lstrip(" ")
        if stripped.startswith("#"):
            out.append(strip_attribute_list(line))
            continue
        if stripped.startswith("{:") and _ATTR_BODY.fullmatch(stripped.rstrip()):
            continue
        if stripped.startswith(("!!!", "???")):
            a = _ADMONITION.fullmatch(line)
            if a:
                kind = a.group(2).replace("-", " ").capitalize()
                rest = a.group(3).strip()
                quoted = rest.endswith('"') and rest.find('"') < len(rest) - 1
                title = rest[rest.find('"') + 1 : -1].strip() if quoted else ""
                heading = f"{kind}: {title}" if title else kind
                out.extend([a.group(1) + heading, ""])
                admonition_indent = len(a.group(1)) + 4
                continue
        if stripped.startswith(":::"):
            c = _CONTAINER.fullmatch(line)
            if c:
                if c.group(1):
                    kind = c.group(1).replace("-", " ").capitalize()
                    title = c.group(2).strip()
                    out.extend([f"{kind}: {title}" if title else kind, ""])
                continue  # a closing ':::'
        if mdx and (_MDX_ESM.match(line) or _JSX_LINE.fullmatch(line)):
            continue
        out.append(line)
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") if text != body else body


# --------------------------------------------------------------------------- loaders


@dataclass(frozen=True, slots=True)
class TextLoader:
    """Plain text (``.txt``, ``.rst``): decoded and newline-normalised, otherwise kept as read.

    ``title`` is the first heading (reStructuredText or markdown style), when there is one.

    Attributes:
        suffixes: the suffixes it reads.
        fallback_encoding: codec for files that are not UTF-8, e.g. ``"cp1252"``.
    """

    suffixes: tuple[str, ...] = (".txt", ".rst")
    fallback_encoding: str | None = None

    def with_fallback_encoding(self, encoding: str | None) -> TextLoader:
        """The same loader decoding non-UTF-8 files with ``encoding``."""
        return replace(self, fallback_encoding=encoding)

    def load(self, data: bytes, *, document_id: str) -> Document:
        """Decode ``data``; see :func:`decode_text` for the checks."""
        text = decode_text(data, document_id=document_id, fallback_encoding=self.fallback_encoding)
        title = first_heading(text)
        return Document(document_id, text, {"title": title} if title else {})


@dataclass(frozen=True, slots=True)
class MarkdownLoader:
    """Markdown (``.md``, ``.markdown``, ``.mdx``): front matter to metadata, the rest as text.

    ``title`` is the front matter's ``title``, else the first heading.

    Attributes:
        suffixes: the suffixes it reads.
        fallback_encoding: codec for files that are not UTF-8, e.g. ``"cp1252"``.
    """

    suffixes: tuple[str, ...] = (".md", ".markdown", ".mdx")
    fallback_encoding: str | None = None

    def with_fallback_encoding(self, encoding: str | None) -> MarkdownLoader:
        """The same loader decoding non-UTF-8 files with ``encoding``."""
        return replace(self, fallback_encoding=encoding)

    def load(self, data: bytes, *, document_id: str) -> Document:
        """Decode ``data``, split off front matter and find the title."""
        text = decode_text(data, document_id=document_id, fallback_encoding=self.fallback_encoding)
        fields, length = parse_front_matter(text, document_id=document_id)
        body = text[length:].lstrip("\n") if length else text
        body = render_dialects(body, mdx=document_id.lower().endswith(".mdx"))
        title = fields.get("title")
        if title is not None and not isinstance(title, str):
            title = str(title)
        if title is not None:
            title = strip_attribute_list(" ".join(title.split()))
            fields["title"] = title
        if title and not _H1.match(body):
            body = f"# {title}\n\n{body}" if body.strip() else f"# {title}"
        if not body.strip():
            raise LoadError(document_id, "whitespace only")
        if not title:
            heading = first_heading(body)
            if heading:
                fields["title"] = heading
            else:
                fields.pop("title", None)
        return Document(document_id, body, fields)
