"""Read a folder of text files into :class:`~ragkit.types.Document` values.

This module owns every check on raw files: which files to read (glob patterns, hidden folders,
symlinks), and whether a file is text at all (size, binary content, encoding, emptiness). A file
that fails a check is skipped with a warning on the ``"ragkit"`` logger and recorded in
:attr:`LoadResult.skipped`; one bad file never stops a load. HTML is turned into plain text with
markdown-style headings, using only the standard library's :mod:`html.parser`.

It leaves out chunking (``chunking.py``), PDFs and other binary formats, and any network access.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path

from .errors import LoadError
from .types import Document

__all__ = [
    "DEFAULT_EXCLUDE_DIRS",
    "DEFAULT_INCLUDE",
    "DEFAULT_MAX_BYTES",
    "LoadResult",
    "Skipped",
    "html_to_text",
    "load_file",
    "load_folder",
]

logger = logging.getLogger("ragkit")

DEFAULT_INCLUDE: tuple[str, ...] = (
    "**/*.md",
    "**/*.markdown",
    "**/*.txt",
    "**/*.rst",
    "**/*.html",
    "**/*.htm",
)
"""Glob patterns of the files :func:`load_folder` reads by default."""

DEFAULT_MAX_BYTES: int = 10 * 1024 * 1024
"""Files larger than this (10 MiB) are skipped: they are almost never prose."""

DEFAULT_EXCLUDE_DIRS: frozenset[str] = frozenset({"node_modules", "__pycache__", "site-packages"})
"""Folder names not entered unless ``skip_hidden=False``, besides hidden folders and virtualenvs."""

_HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
# How much of a file the binary sniff looks at; NUL bytes are searched in the whole file.
_SNIFF_BYTES = 8192
# Share of control bytes (other than tab, newlines, form feed, escape) above which a file is
# treated as binary. Text in any 8-bit or UTF-8 encoding has almost none.
_MAX_CONTROL_RATIO = 0.10
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 27))
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file :func:`load_folder` did not load, and why.

    Attributes:
        path: the file's path relative to the folder, ``/`` separated.
        reason: a short phrase (``"binary"``, ``"not UTF-8"``, ``"empty"``, ...).
    """

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What :func:`load_folder` returns: the documents read and the files skipped.

    Attributes:
        documents: one document per file read, ordered by ID.
        skipped: the files that matched the patterns but could not be read, in walk order.
    """

    documents: tuple[Document, ...]
    skipped: tuple[Skipped, ...]


# --------------------------------------------------------------------------- globs


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob pattern (see :func:`load_folder` for the syntax) to a regex."""
    if not pattern:
        raise ValueError("glob patterns must be non-empty strings")
    pat = pattern.replace("\\", "/").lstrip("/")
    while pat.startswith("./"):
        pat = pat[2:]
    if "/" not in pat:
        # Like .gitignore: a bare name pattern matches the file name at any depth.
        pat = "**/" + pat
    out: list[str] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if pat.startswith("**", i):
            j = i + 2
            at_start = i == 0 or pat[i - 1] == "/"
            if at_start and pat.startswith("/", j):
                out.append("(?:.*/)?")  # '**/' : zero or more whole folders
                i = j + 1
            elif at_start and j == n:
                out.append(".*")  # trailing '**' : everything below
                i = j
            else:
                out.append("[^/]*")  # '**' inside a name acts like '*'
                i = j
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pat.find(
                "]", i + 2 if pat.startswith("[!", i) or pat.startswith("[]", i) else i + 1
            )
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pat[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out), re.S)


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    return any(_glob_regex(p).fullmatch(rel) is not None for p in patterns)


# --------------------------------------------------------------------------- one file


def _decode_error(path: str | Path) -> LoadError:
    return LoadError(path, "not UTF-8 (pass fallback_encoding to read other encodings)")


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


def _decode(data: bytes, *, is_html: bool, fallback_encoding: str | None) -> str | None:
    """Decode ``data``: BOMs first, then UTF-8, an HTML meta charset, then the fallback."""
    if data.startswith(codecs.BOM_UTF8):
        return _try_decode(data[len(codecs.BOM_UTF8) :], "utf-8")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _try_decode(data, "utf-16")  # the codec reads and drops the BOM
    text = _try_decode(data, "utf-8")
    if text is not None:
        return text
    if is_html:
        declared = _META_CHARSET.search(data[:4096])
        if declared is not None:
            text = _try_decode(data, declared.group(1).decode("ascii"))
            if text is not None:
                return text
    if fallback_encoding is not None:
        return _try_decode(data, fallback_encoding)
    return None


def _check_arguments(max_bytes: int, fallback_encoding: str | None) -> None:
    if max_bytes < 1:
        raise ValueError(f"max_bytes ({max_bytes}) must be >= 1")
    if fallback_encoding is not None:
        try:
            codecs.lookup(fallback_encoding)
        except LookupError:
            raise ValueError(
                f"fallback_encoding ({fallback_encoding!r}) is not a known codec, "
                "e.g. 'latin-1' or 'cp1252'"
            ) from None


def load_file(
    path: str | Path,
    *,
    document_id: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    fallback_encoding: str | None = None,
) -> Document:
    """Read one text file into a :class:`~ragkit.types.Document`.

    UTF-8 (with or without a BOM) and UTF-16 with a BOM are read as such. Other bytes are decoded
    with an HTML file's own ``<meta charset>``, then with ``fallback_encoding`` if given. Newlines
    are normalised to ``\\n``; the text is otherwise kept exactly as read, except that HTML
    (``.html``/``.htm``) is converted with :func:`html_to_text`.

    Args:
        path: the file.
        document_id: the ID to give the document; defaults to ``path`` with ``/`` separators.
        max_bytes: larger files are refused (checked before reading).
        fallback_encoding: codec for files that are not UTF-8, e.g. ``"cp1252"``.

    Returns:
        The document.

    Raises:
        LoadError: the file is missing, unreadable, too large, binary, not decodable, or has no
            text. ``reason`` says which.
        ValueError: ``max_bytes`` < 1 or ``fallback_encoding`` is not a codec.
    """
    _check_arguments(max_bytes, fallback_encoding)
    path = Path(path)
    doc_id = document_id if document_id is not None else path.as_posix()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LoadError(path, "not found") from None
    except PermissionError:
        raise LoadError(path, "unreadable (permission denied)") from None
    except OSError as exc:
        raise LoadError(path, f"unreadable ({exc.strerror or exc})") from None
    if not path.is_file():
        raise LoadError(path, "not a regular file")
    if st.st_size > max_bytes:
        raise LoadError(path, f"too large ({st.st_size} bytes > max_bytes {max_bytes})")
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since stat()
    except PermissionError:
        raise LoadError(path, "unreadable (permission denied)") from None
    except OSError as exc:
        raise LoadError(path, f"unreadable ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise LoadError(path, f"too large (> max_bytes {max_bytes})")
    if not data:
        raise LoadError(path, "empty")
    is_utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if not is_utf16 and _looks_binary(data):
        raise LoadError(path, "binary")
    is_html = path.suffix.lower() in _HTML_SUFFIXES
    text = _decode(data, is_html=is_html, fallback_encoding=fallback_encoding)
    if text is None:
        raise _decode_error(path)
    if is_utf16 and "\x00" in text:
        raise LoadError(path, "binary")
    # One newline convention, so character offsets mean the same on every platform.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise LoadError(path, "whitespace only")
    if is_html:
        text = html_to_text(text)
        if not text:
            raise LoadError(path, "no text in HTML")
    return Document(doc_id, text)


# --------------------------------------------------------------------------- a folder


def _is_inside(target: Path, root: Path) -> bool:
    return target == root or root in target.parents


def load_folder(
    folder: str | Path,
    *,
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    fallback_encoding: str | None = None,
    skip_hidden: bool = True,
) -> LoadResult:
    """Read every matching text file under ``folder``.

    The walk is sorted, so the result is the same on every run. A document's ID is its path
    relative to ``folder`` with ``/`` separators (``"guide/intro.md"``).

    Glob patterns match that relative path, case-sensitively: ``*`` and ``?`` match within one
    path segment, ``[abc]``/``[!abc]`` match one character, and ``**/`` matches zero or more
    folders, so ``**/*.md`` matches both ``a.md`` and ``x/y/a.md``; a trailing ``/**`` matches
    everything below a folder. A pattern without ``/`` matches the file name at any depth, as in
    ``.gitignore`` (``"*.min.html"``). A folder whose relative path matches an ``exclude``
    pattern is not entered.

    Files that match ``include`` but cannot be read (see :func:`load_file`) are skipped with a
    warning on the ``"ragkit"`` logger and listed in :attr:`LoadResult.skipped`, as are
    symlinks that point outside ``folder`` (never followed) and symlinked folders that would
    loop. Symlinks that stay inside ``folder`` are followed.

    Args:
        folder: the folder to read.
        include: glob patterns of files to read.
        exclude: glob patterns of files and folders to leave out (applied after ``include``).
        max_bytes: larger files are skipped without being read.
        fallback_encoding: codec for files that are not UTF-8, e.g. ``"cp1252"``.
        skip_hidden: leave out names starting with ``.`` and folders such as ``node_modules``
            and ``__pycache__`` (:data:`DEFAULT_EXCLUDE_DIRS`).

    Returns:
        The documents (sorted by ID) and the skipped files.

    Raises:
        LoadError: ``folder`` does not exist or is not a folder.
        ValueError: a bad argument (``max_bytes`` < 1, an empty pattern, an unknown codec).

    Example:
        ``load_folder("docs", include=["**/*.md"], exclude=["drafts/**"]).documents``
    """
    _check_arguments(max_bytes, fallback_encoding)
    include = (include,) if isinstance(include, str) else tuple(include)
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    for pattern in (*include, *exclude):
        _glob_regex(pattern)  # raises ValueError early for a bad pattern
    root = Path(folder)
    if not root.exists():
        raise LoadError(root, "no such folder")
    if not root.is_dir():
        raise LoadError(root, "not a folder")
    real_root = root.resolve()

    documents: list[Document] = []
    skipped: list[Skipped] = []

    def skip(rel: str, reason: str) -> None:
        logger.warning("skipped %s: %s", rel, reason)
        skipped.append(Skipped(rel, reason))

    for rel, path in _walk(root, real_root, "", (real_root,), exclude, skip_hidden, skip):
        if not _matches(rel, include) or _matches(rel, exclude):
            continue
        if path.is_symlink():
            target = path.resolve()
            if not _is_inside(target, real_root):
                skip(rel, "symlink outside the folder")
                continue
        try:
            documents.append(
                load_file(
                    path,
                    document_id=rel,
                    max_bytes=max_bytes,
                    fallback_encoding=fallback_encoding,
                )
            )
        except LoadError as exc:
            skip(rel, exc.reason)
    documents.sort(key=lambda d: d.id)
    return LoadResult(tuple(documents), tuple(skipped))


def _walk(
    folder: Path,
    real_root: Path,
    prefix: str,
    ancestors: tuple[Path, ...],
    exclude: tuple[str, ...],
    skip_hidden: bool,
    skip: Callable[[str, str], None],
) -> Iterator[tuple[str, Path]]:
    """Yield ``(relative path, path)`` of every file below ``folder``, sorted by name.

    ``ancestors`` holds the real paths of the folders being walked, so a symlink back to one of
    them is reported instead of followed forever.
    """
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        skip(prefix.rstrip("/") or ".", f"unreadable folder ({exc.strerror or exc})")
        return
    for entry in entries:
        rel = prefix + entry.name
        if skip_hidden and entry.name.startswith("."):
            continue
        try:
            is_dir = entry.is_dir()  # follows symlinks
        except OSError:
            is_dir = False
        if not is_dir:
            yield rel, Path(entry.path)
            continue
        if skip_hidden and (
            entry.name in DEFAULT_EXCLUDE_DIRS
            or os.path.exists(os.path.join(entry.path, "pyvenv.cfg"))
        ):
            continue
        if _matches(rel, exclude):
            continue
        path = Path(entry.path)
        real = path.resolve()
        if entry.is_symlink():
            if not _is_inside(real, real_root):
                skip(rel, "symlink outside the folder")
                continue
            if real in ancestors:
                skip(rel, "symlink loop")
                continue
        yield from _walk(path, real_root, rel + "/", (*ancestors, real), exclude, skip_hidden, skip)


# --------------------------------------------------------------------------- HTML

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

    def text(self) -> str:
        pieces = []
        for in_pre, parts in self.runs:
            joined = "".join(parts)
            if not in_pre:
                joined = _LINE_EDGES.sub("\n", _SPACES.sub(" ", joined))
            pieces.append(joined)
        body = _BLANK_RUNS.sub("\n\n", "".join(pieces)).strip("\n")
        body = "\n".join(line.rstrip() for line in body.split("\n")).strip()
        title = _SPACE.sub(" ", "".join(self.title)).strip()
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
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return parser.text()
