"""Walk a folder and read its files safely: which files, opened how, and what was left out.

The walk is iterative (any depth, no recursion) and sorted, so a result is the same on every
run. Every file is opened relative to its folder's descriptor with ``O_NOFOLLOW | O_NONBLOCK``
and checked with ``fstat`` on the open descriptor: only regular files are read, so a FIFO
cannot block the walk and a file swapped for a symlink after it was listed is not followed.
Folders are opened the same way, one path component at a time. Symlinks are followed only when
their target, fully resolved, lies inside the folder, and then opened by that resolved path
without following links again; links leaving the folder and link loops are skipped.

Everything that is not read is accounted for in the :class:`LoadResult`: files that matched but
failed (``skipped``, with a reason), files of types not included (``not_indexed``, counted by
suffix) and hidden or tool entries (``hidden``). Every warning quotes file names with
:func:`repr`, so a name holding a newline or escape sequence cannot forge a log line.

This module leaves out the formats themselves (the loaders), chunking and indexing.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from ..base import Loader
from ..errors import LoadError
from ..types import Document
from .defaults import DEFAULT_EXCLUDE_DIRS, DEFAULT_INCLUDE, DEFAULT_MAX_BYTES
from .isolation import can_isolate, run_isolated
from .limits import LoadLimits, budget_for, limit_reason
from .registry import loader_for, registered_suffixes
from .text import RESERVED_KEYS, TextLoader

__all__ = [
    "DEFAULT_EXCLUDE_DIRS",
    "DEFAULT_INCLUDE",
    "DEFAULT_MAX_BYTES",
    "LoadResult",
    "NoDocumentsError",
    "Skipped",
    "load_file",
    "load_folder",
]

logger = logging.getLogger("ragkit")

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_FILE_FLAGS = (
    os.O_RDONLY
    | _O_NOFOLLOW
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
    | _O_CLOEXEC
)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_NOFOLLOW | _O_CLOEXEC
# Descriptors below the root are opened one component at a time, never through a symlink.
_FD_WALK = os.open in os.supports_dir_fd and os.scandir in os.supports_fd and _O_NOFOLLOW != 0
# Folder descriptors kept open along the current branch; deeper folders are reopened as needed.
_MAX_HELD_DIRS = 128
_FALLBACK_LOADER = TextLoader()


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file :func:`load_folder` did not load, and why.

    Attributes:
        path: the file's path relative to the folder, ``/`` separated. A name that is not valid
            UTF-8 is shown with its bad bytes escaped (``bad\\xff.md``), so it can be printed.
        reason: a short phrase (``"binary"``, ``"not UTF-8 ..."``, ``"symlink loop"``, ...).
    """

    path: str
    reason: str


_NO_COUNTS: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What :func:`load_folder` returns: the documents read and everything left out.

    Attributes:
        documents: one document per file read, ordered by ID.
        skipped: files that matched the patterns but could not be read, in walk order.
        not_indexed: files that matched no ``include`` pattern, counted by lower-case suffix
            (``""`` for names without one), most frequent first.
        hidden: hidden (dot-named) files that matched ``include`` and hidden or tool folders
            that were not entered (``".github/"``, ``"node_modules/"``), when ``skip_hidden``.
    """

    documents: tuple[Document, ...]
    skipped: tuple[Skipped, ...]
    not_indexed: Mapping[str, int] = field(default_factory=lambda: _NO_COUNTS)
    hidden: tuple[str, ...] = ()

    def describe_not_indexed(self, limit: int = 5) -> str:
        """A one-line summary of :attr:`not_indexed`, ``""`` when nothing was left out.

        Example:
            >>> LoadResult((), (), {".png": 248, ".svg": 40, "": 2}).describe_not_indexed(2)
            '290 files not indexed: 248 .png, 40 .svg, 2 more'
        """
        total = sum(self.not_indexed.values())
        if not total:
            return ""
        items = list(self.not_indexed.items())
        shown = [f"{n} {suffix or '(no suffix)'}" for suffix, n in items[:limit]]
        rest = sum(n for _, n in items[limit:])
        if rest:
            shown.append(f"{rest} more")
        noun = "file" if total == 1 else "files"
        return f"{total} {noun} not indexed: {', '.join(shown)}"


class NoDocumentsError(LoadError):
    """A folder held no document to load; ``result`` says what was found instead.

    Attributes:
        result: the (empty) :class:`LoadResult`, with the skipped, not-indexed and hidden files.
    """

    def __init__(self, path: str | Path, result: LoadResult) -> None:
        self.result = result
        found = [
            part
            for part in (
                result.describe_not_indexed(),
                f"{len(result.skipped)} skipped" if result.skipped else "",
                f"{len(result.hidden)} hidden left out" if result.hidden else "",
            )
            if part
        ]
        detail = f" ({'; '.join(found)})" if found else ""
        super().__init__(
            path,
            f"no documents to load{detail}; add include patterns for the files you want "
            "(e.g. '**/*.csv'), or check the folder",
        )


# --------------------------------------------------------------------------- globs


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob pattern (see :func:`load_folder` for the syntax) to a regex."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"glob patterns must be non-empty strings, got {pattern!r}")
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


def _suffix(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    """Whether ``rel`` matches a pattern; its suffix matches case-insensitively."""
    if any(_glob_regex(p).fullmatch(rel) is not None for p in patterns):
        return True
    suffix = os.path.splitext(rel)[1]
    if suffix and suffix != suffix.lower():
        lowered = rel[: -len(suffix)] + suffix.lower()
        return any(_glob_regex(p).fullmatch(lowered) is not None for p in patterns)
    return False


# --------------------------------------------------------------------------- one file


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return name
    return "not a file"


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "vanished during the walk"
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return "became a symlink during the walk (not followed)"
    if exc.errno == errno.ENOTDIR:
        return "changed during the walk"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "unreadable (permission denied)"
    return f"unreadable ({exc.strerror or exc})"


def _mtime(st: os.stat_result) -> str:
    moment = datetime.fromtimestamp(st.st_mtime, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _read(fd: int, limit: int, display: str) -> tuple[bytes, os.stat_result]:
    """Read an open descriptor that must be a regular file of at most ``limit`` bytes."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise LoadError(display, f"not a regular file ({_kind(st.st_mode)})")
    if st.st_size > limit:
        raise LoadError(display, f"too large ({st.st_size} bytes > max_bytes {limit})")
    with open(fd, "rb", closefd=False) as fh:
        data = fh.read(limit + 1)  # the file may have grown since fstat
    if len(data) > limit:
        raise LoadError(display, f"too large (> max_bytes {limit})")
    return data, st


class _Loaders:
    """Per-call loader choice: suffix → loader, with the call's fallback encoding applied."""

    def __init__(
        self, fallback_encoding: str | None, max_bytes: int | None, limits: LoadLimits | None
    ) -> None:
        self.fallback_encoding = fallback_encoding
        self.max_bytes = max_bytes
        self.limits = limits if limits is not None else LoadLimits.from_env()
        self.cache: dict[str, Loader] = {}

    def get(self, suffix: str) -> Loader:
        cached = self.cache.get(suffix)
        if cached is not None:
            return cached
        found = loader_for(suffix) if suffix else None
        loader: Loader = found if found is not None else cast(Loader, _FALLBACK_LOADER)
        configure = getattr(loader, "with_fallback_encoding", None)
        if self.fallback_encoding is not None and callable(configure):
            loader = cast(Loader, configure(self.fallback_encoding))
        self.cache[suffix] = loader
        return loader

    def limit(self, loader: Loader) -> int:
        if self.max_bytes is not None:
            return self.max_bytes
        own = getattr(loader, "max_bytes", None)
        return own if isinstance(own, int) and own > 0 else DEFAULT_MAX_BYTES


def _run_loader(
    loader: Loader, data: bytes, document_id: str, limits: LoadLimits
) -> tuple[str, Mapping[str, Any]]:
    """Run ``loader`` under ``limits``: in the worker process when it is a built-in loader."""
    if limits.isolate and can_isolate(loader):
        isolated = run_isolated(loader, data, document_id=document_id, limits=limits)
        if isolated is not None:
            return isolated
    with budget_for(limits, document_id) as budget:
        try:
            loaded = loader.load(data, document_id=document_id)
        except LoadError:
            raise
        except MemoryError:
            what = "ran out of memory while reading"
            raise LoadError(document_id, limit_reason("max_memory", what)) from None
        except RecursionError:
            raise LoadError(document_id, "nested too deeply to read") from None
        except Exception as exc:  # noqa: BLE001 - one loader's bug must not stop a whole folder
            raise LoadError(
                document_id, f"loader {type(loader).__name__} failed ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(loaded, Document):
            raise LoadError(
                document_id, f"loader {type(loader).__name__} returned {type(loaded).__name__}"
            )
        # A loader of yours is not interrupted: its time and text are checked when it returns.
        budget.check_time()
        if len(loaded.text) > limits.max_chars:
            raise budget.chars_error()
        return loaded.text, loaded.metadata


def _document(
    loader: Loader,
    data: bytes,
    st: os.stat_result,
    document_id: str,
    suffix: str,
    limits: LoadLimits,
) -> Document:
    """Run ``loader`` and add the file facts to the document's metadata."""
    if not data:
        raise LoadError(document_id, "empty")
    text, loaded_metadata = _run_loader(loader, data, document_id, limits)
    metadata: dict[str, Any] = {k: v for k, v in loaded_metadata.items() if k not in RESERVED_KEYS}
    metadata.update(path=document_id, suffix=suffix, size=len(data), mtime=_mtime(st))
    return Document(document_id, text, metadata)


def _check_arguments(
    max_bytes: int | None, fallback_encoding: str | None, limits: LoadLimits | None = None
) -> None:
    import codecs

    if limits is not None and not isinstance(limits, LoadLimits):
        raise TypeError(f"limits must be a ragkit.loaders.LoadLimits, got {type(limits).__name__}")
    if max_bytes is not None and (
        isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1
    ):
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
    max_bytes: int | None = None,
    fallback_encoding: str | None = None,
    limits: LoadLimits | None = None,
) -> Document:
    """Read one file into a :class:`~ragkit.types.Document` with the loader for its suffix.

    The loader is chosen by the file's suffix, case-insensitively (:func:`loader_for`); a file
    whose suffix no loader reads is read as plain text. The file is opened without blocking and
    read only if it is a regular file (a symlink named here is followed). The metadata holds
    ``path`` (the document ID), ``suffix``, ``size`` (bytes), ``mtime`` (ISO 8601 UTC) and what
    the loader found (``title``, front matter, ``pages``/``page_starts``).

    Args:
        path: the file.
        document_id: the ID to give the document; defaults to ``path`` with ``/`` separators.
        max_bytes: larger files are refused (checked before reading); ``None`` for the
            format's own limit (:data:`DEFAULT_MAX_BYTES` for text).
        fallback_encoding: codec for text files that are not UTF-8, e.g. ``"cp1252"``.
        limits: the time, text, inflated-bytes and memory budget of the file
            (:class:`LoadLimits`); ``None`` for the defaults and ``RAGKIT_LOAD_MAX_*``.

    Raises:
        LoadError: the file is missing, unreadable, not a regular file, too large, over a
            limit, or its loader refused it (binary, not decodable, no text, ...). ``reason``
            says which.
        ValueError: ``max_bytes`` < 1 or ``fallback_encoding`` is not a codec.
    """
    _check_arguments(max_bytes, fallback_encoding, limits)
    path = Path(path)
    doc_id = document_id if document_id is not None else path.as_posix()
    suffix = _suffix(path.name)
    loaders = _Loaders(fallback_encoding, max_bytes, limits)
    loader = loaders.get(suffix)
    try:
        fd = os.open(path, _FILE_FLAGS & ~_O_NOFOLLOW)
    except FileNotFoundError:
        raise LoadError(path, "not found") from None
    except PermissionError:
        raise LoadError(path, "unreadable (permission denied)") from None
    except OSError as exc:
        raise LoadError(path, f"unreadable ({exc.strerror or exc})") from None
    try:
        data, st = _read(fd, loaders.limit(loader), str(path))
    except OSError as exc:
        raise LoadError(path, _os_reason(exc)) from None
    finally:
        os.close(fd)
    try:
        return _document(loader, data, st, doc_id, suffix, loaders.limits)
    except LoadError as exc:
        raise LoadError(path, exc.reason) from None


# --------------------------------------------------------------------------- a folder


def _printable(name: str) -> str | None:
    """``None`` for a valid UTF-8 name, else the name with its bad bytes escaped."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return None


class _Opener:
    """Opens folders below the root one component at a time, never following a symlink.

    Keeps descriptors for the folders of the last branch opened, so a sorted depth-first walk
    opens each folder about once. At most ``_MAX_HELD_DIRS`` are held: the deepest ones (held
    descriptors are always a contiguous tail ``chain[lo:]``); shallower ones are reopened when
    the walk comes back up to them.
    """

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.chain: list[tuple[str, int | None]] = []
        self.lo = 0  # chain[lo:] hold descriptors

    def _push(self, name: str, parent: int) -> int:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        self.chain.append((name, fd))
        if len(self.chain) - self.lo > _MAX_HELD_DIRS:
            old_name, old_fd = self.chain[self.lo]
            os.close(old_fd)  # type: ignore[arg-type]
            self.chain[self.lo] = (old_name, None)
            self.lo += 1
        return fd

    def open_dir(self, parts: Sequence[str]) -> int:
        """A descriptor for the folder ``parts`` below the root, valid until the next call."""
        keep = 0
        while keep < min(len(self.chain), len(parts)) and self.chain[keep][0] == parts[keep]:
            keep += 1
        for _, fd in self.chain[max(keep, self.lo) :]:
            os.close(fd)  # type: ignore[arg-type]
        del self.chain[keep:]
        if self.chain and self.lo >= len(self.chain):  # nothing held: reopen from the root
            names = [name for name, _ in self.chain]
            self.chain.clear()
            self.lo = 0
            current = self.root_fd
            for name in names:
                current = self._push(name, current)
        self.lo = min(self.lo, len(self.chain))
        current = self.chain[-1][1] if self.chain else self.root_fd  # type: ignore[assignment]
        for name in parts[len(self.chain) :]:
            current = self._push(name, current)
        return current

    def close(self) -> None:
        for _, fd in self.chain[self.lo :]:
            os.close(fd)  # type: ignore[arg-type]
        self.chain.clear()
        self.lo = 0


@dataclass
class _Walk:
    """The state of one :func:`load_folder` call."""

    root: Path
    real_root: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    skip_hidden: bool
    loaders: _Loaders
    documents: list[Document] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    not_indexed: dict[str, int] = field(default_factory=dict)
    hidden: list[str] = field(default_factory=list)

    def skip(self, rel: str, reason: str) -> None:
        logger.warning("skipped %r: %s", rel, reason)
        self.skipped.append(Skipped(rel, reason))

    def left_out(self, name: str) -> None:
        suffix = _suffix(name)
        self.not_indexed[suffix] = self.not_indexed.get(suffix, 0) + 1

    def read(self, rel: str, name: str, dir_handle: int | str, entry_name: str) -> None:
        """Open ``entry_name`` in a folder without following links, and load it as ``rel``."""
        suffix = _suffix(name)
        loader = self.loaders.get(suffix)
        try:
            if isinstance(dir_handle, int):
                fd = os.open(entry_name, _FILE_FLAGS, dir_fd=dir_handle)
            else:
                fd = os.open(os.path.join(dir_handle, entry_name), _FILE_FLAGS)
        except OSError as exc:
            self.skip(rel, _os_reason(exc))
            return
        try:
            data, st = _read(fd, self.loaders.limit(loader), rel)
            self.documents.append(_document(loader, data, st, rel, suffix, self.loaders.limits))
        except LoadError as exc:
            self.skip(rel, exc.reason)
        except OSError as exc:
            self.skip(rel, _os_reason(exc))
        finally:
            os.close(fd)


def _ancestor(chain: tuple[Any, ...] | None, parts: tuple[str, ...]) -> bool:
    while chain is not None:
        if chain[0] == parts:
            return True
        chain = chain[1]
    return False


def load_folder(
    folder: str | Path,
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    max_bytes: int | None = None,
    fallback_encoding: str | None = None,
    skip_hidden: bool = True,
    allow_empty: bool = False,
    limits: LoadLimits | None = None,
) -> LoadResult:
    """Read every matching file under ``folder`` with the loader for its suffix.

    The walk is sorted, so the result is the same on every run. A document's ID is its path
    relative to ``folder`` with ``/`` separators (``"guide/intro.md"``); its metadata holds
    ``path``, ``suffix``, ``size``, ``mtime`` and what the format's loader found (see
    :func:`load_file`).

    Glob patterns match that relative path: ``*`` and ``?`` match within one path segment,
    ``[abc]``/``[!abc]`` match one character, and ``**/`` matches zero or more folders, so
    ``**/*.md`` matches both ``a.md`` and ``x/y/a.md``; a trailing ``/**`` matches everything
    below a folder. A pattern without ``/`` matches the file name at any depth, as in
    ``.gitignore`` (``"*.min.html"``). Matching is case-sensitive except for the file's suffix
    (``*.md`` matches ``README.MD``). A folder whose relative path matches an ``exclude``
    pattern is not entered.

    Files that match ``include`` but cannot be read are skipped with a warning on the
    ``"ragkit"`` logger and listed in :attr:`LoadResult.skipped` with a reason: the loader's
    (``"binary"``, ``"not UTF-8 ..."``, ``"empty"``, ``"no text layer ..."``, ...), or
    ``"symlink outside the folder"`` (never followed), ``"symlink loop"``, ``"broken
    symlink"``, ``"not a regular file (a FIFO)"``, ``"vanished during the walk"``, ``"became a
    symlink during the walk (not followed)"``, ``"name is not valid UTF-8"``. Symlinks whose
    target lies inside ``folder`` are followed.

    Args:
        folder: the folder to read.
        include: glob patterns of files to read; ``None`` for every suffix a loader reads
            (:data:`DEFAULT_INCLUDE` and registered loaders).
        exclude: glob patterns of files and folders to leave out (applied after ``include``).
        max_bytes: larger files are skipped without being read; ``None`` for each format's
            own limit (:data:`DEFAULT_MAX_BYTES` for text).
        fallback_encoding: codec for text files that are not UTF-8, e.g. ``"cp1252"``.
        skip_hidden: leave out names starting with ``.`` and folders such as ``node_modules``
            and ``__pycache__`` (:data:`DEFAULT_EXCLUDE_DIRS`); they are listed in
            :attr:`LoadResult.hidden`.
        allow_empty: return an empty result instead of raising :class:`NoDocumentsError`.
        limits: the budget of each file (:class:`LoadLimits`: time, characters, inflated
            bytes, memory); a file past one is skipped with a reason naming the limit and its
            setting. ``None`` for the defaults and ``RAGKIT_LOAD_MAX_*`` variables.

    Returns:
        The documents (sorted by ID) and what was left out.

    Raises:
        NoDocumentsError: no document was loaded (and ``allow_empty`` is false); its
            ``result`` holds what was found instead.
        LoadError: ``folder`` does not exist or is not a folder.
        ValueError: a bad argument (``max_bytes`` < 1, an empty pattern, an unknown codec).

    Example:
        ``load_folder("docs", include=["**/*.md"], exclude=["drafts/**"]).documents``
    """
    _check_arguments(max_bytes, fallback_encoding, limits)
    if include is None:
        include = tuple(f"**/*{s}" for s in registered_suffixes())
    include = (include,) if isinstance(include, str) else tuple(include)
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    for pattern in (*include, *exclude):
        _glob_regex(pattern)  # raises ValueError early for a bad pattern
    root = Path(folder)
    if not root.exists():
        raise LoadError(root, "no such folder")
    if not root.is_dir():
        raise LoadError(root, "not a folder")
    walk = _Walk(
        root,
        os.path.realpath(root),
        include,
        exclude,
        skip_hidden,
        _Loaders(fallback_encoding, max_bytes, limits),
    )
    if _FD_WALK:
        try:
            root_fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC)
        except OSError as exc:
            raise LoadError(root, f"unreadable folder ({exc.strerror or exc})") from None
        openers = (_Opener(root_fd), _Opener(root_fd))
        try:
            _walk(walk, openers)
        finally:
            for opener in openers:
                opener.close()
            os.close(root_fd)
    else:
        _walk(walk, None)
    walk.documents.sort(key=lambda d: d.id)
    counts = sorted(walk.not_indexed.items(), key=lambda kv: (-kv[1], kv[0]))
    result = LoadResult(
        tuple(walk.documents),
        tuple(walk.skipped),
        MappingProxyType(dict(counts)),
        tuple(walk.hidden),
    )
    if not result.documents and not allow_empty:
        raise NoDocumentsError(root, result)
    return result


def _walk(walk: _Walk, openers: tuple[_Opener, _Opener] | None) -> None:
    """Visit every folder depth-first in name order, without recursion."""
    # (relative prefix, real path parts below the root, chain of the branch's real parts)
    Frame = tuple[str, tuple[str, ...], Any]
    stack: list[Frame] = [("", (), None)]
    while stack:
        prefix, parts, ancestors = stack.pop()
        handle: int | str
        try:
            if openers is not None:
                handle = openers[0].open_dir(parts)
            else:
                handle = os.path.join(walk.real_root, *parts)
            entries = sorted(os.scandir(handle), key=lambda e: e.name)
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.EMLINK):
                reason = "folder was replaced during the walk (not followed)"
            else:
                reason = f"folder {_os_reason(exc)}"
            walk.skip(prefix.rstrip("/") or ".", reason)
            continue
        chain = (parts, ancestors)
        subfolders: list[Frame] = []
        for entry in entries:  # openers[0] is not used meanwhile, so `handle` stays open
            frame = _visit(walk, openers, entry, prefix, parts, chain, handle)
            if frame is not None:
                subfolders.append(frame)
        stack.extend(reversed(subfolders))


def _visit(
    walk: _Walk,
    openers: tuple[_Opener, _Opener] | None,
    entry: os.DirEntry[str],
    prefix: str,
    parts: tuple[str, ...],
    chain: tuple[Any, ...],
    handle: int | str,
) -> tuple[str, tuple[str, ...], Any] | None:
    """Handle one folder entry; return the frame of a folder to enter, if it is one."""
    name = entry.name
    bad = _printable(name)
    rel = prefix + (bad if bad is not None else name)
    if bad is not None:
        walk.skip(rel, "name is not valid UTF-8 (rename the file to index it)")
        return None
    hidden = walk.skip_hidden and name.startswith(".")
    try:
        is_link = entry.is_symlink()
        is_dir = not is_link and entry.is_dir(follow_symlinks=False)
    except OSError as exc:
        walk.skip(rel, _os_reason(exc))
        return None

    if is_link:
        return _visit_link(walk, openers, name, rel, chain, hidden)
    if is_dir:
        if hidden or (walk.skip_hidden and _tool_folder(name, handle)):
            walk.hidden.append(rel + "/")
            return None
        if _matches(rel, walk.exclude):
            return None
        return (rel + "/", (*parts, name), chain)
    if _matches(rel, walk.exclude):
        return None
    if not _matches(rel, walk.include):
        if not hidden:
            walk.left_out(name)
        return None
    if hidden:
        walk.hidden.append(rel)
        return None
    try:
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError as exc:
        walk.skip(rel, _os_reason(exc))
        return None
    if not stat.S_ISREG(mode):  # FIFOs and devices are not even opened
        walk.skip(rel, f"not a regular file ({_kind(mode)})")
        return None
    walk.read(rel, name, handle, name)
    return None


def _tool_folder(name: str, handle: int | str) -> bool:
    if name in DEFAULT_EXCLUDE_DIRS:
        return True
    try:  # a virtualenv, whatever its name
        if isinstance(handle, int):
            os.stat(f"{name}/pyvenv.cfg", dir_fd=handle, follow_symlinks=False)
        else:
            os.stat(os.path.join(handle, name, "pyvenv.cfg"), follow_symlinks=False)
    except OSError:
        return False
    return True


def _visit_link(
    walk: _Walk,
    openers: tuple[_Opener, _Opener] | None,
    name: str,
    rel: str,
    chain: tuple[Any, ...],
    hidden: bool,
) -> tuple[str, tuple[str, ...], Any] | None:
    """A symlink: followed only to a target inside the root, opened by its resolved path."""
    if hidden:
        if _matches(rel, walk.include):
            walk.hidden.append(rel)
        return None
    if _matches(rel, walk.exclude):
        return None
    here = os.path.join(walk.real_root, *chain[0], name)
    try:
        target = os.path.realpath(here, strict=True)
        st = os.stat(target)
    except OSError as exc:
        if not _matches(rel, walk.include):
            walk.left_out(name)
        elif exc.errno == errno.ELOOP:
            walk.skip(rel, "symlink loop")
        elif exc.errno == errno.ENOENT:
            walk.skip(rel, "broken symlink")
        else:
            walk.skip(rel, _os_reason(exc))
        return None
    inside = target == walk.real_root or target.startswith(walk.real_root.rstrip(os.sep) + os.sep)
    is_dir = stat.S_ISDIR(st.st_mode)
    if not is_dir and not _matches(rel, walk.include):
        walk.left_out(name)
        return None
    if not inside:
        walk.skip(rel, "symlink outside the folder")
        return None
    target_parts = tuple(Path(os.path.relpath(target, walk.real_root)).parts)
    if target_parts == (".",):
        target_parts = ()
    if is_dir:
        if _ancestor(chain, target_parts):
            walk.skip(rel, "symlink loop")
            return None
        return (rel + "/", target_parts, chain)
    if not stat.S_ISREG(st.st_mode):
        walk.skip(rel, f"not a regular file ({_kind(st.st_mode)})")
        return None
    if openers is None:
        walk.read(rel, name, walk.real_root, os.path.join(*target_parts))
        return None
    try:
        handle = openers[1].open_dir(target_parts[:-1])
    except OSError as exc:
        walk.skip(rel, _os_reason(exc))
        return None
    walk.read(rel, name, handle, target_parts[-1])
    return None
