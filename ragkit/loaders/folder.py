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

Reading one file (``load_file``, the opening rules and limits) is ``files.py``, the glob syntax
``globs.py``; ``load_file`` and :data:`DEFAULT_MAX_BYTES` are re-exported here. This module
leaves out the formats themselves (the loaders), chunking and indexing.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import LoadError
from ..types import Document
from .defaults import DEFAULT_EXCLUDE_DIRS, DEFAULT_INCLUDE, DEFAULT_MAX_BYTES
from .files import (
    _FILE_FLAGS,
    _O_CLOEXEC,
    _O_NOFOLLOW,
    _check_arguments,
    _document,
    _kind,
    _Loaders,
    _os_reason,
    _read,
    load_file,
)
from .globs import _glob_regex, _matches, _suffix
from .limits import LoadLimits
from .registry import available_loaders

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

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_NOFOLLOW | _O_CLOEXEC
# Descriptors below the root are opened one component at a time, never through a symlink.
_FD_WALK = os.open in os.supports_dir_fd and os.scandir in os.supports_fd and _O_NOFOLLOW != 0
# Folder descriptors kept open along the current branch; deeper folders are reopened as needed.
_MAX_HELD_DIRS = 128


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
        include = tuple(f"**/*{s}" for s in available_loaders())
    include = (include,) if isinstance(include, str) else tuple(include)
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    for pattern in (*include, *exclude):
        _glob_regex(pattern)  # raises ValueError early for a bad pattern
    root = Path(folder)
    try:
        exists, is_dir = root.exists(), root.is_dir()
    except OSError as exc:  # a name too long, a path through a file...
        raise LoadError(root, f"cannot be read as a folder ({exc.strerror or exc})") from exc
    if not exists:
        raise LoadError(root, "no such folder")
    if not is_dir:
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
