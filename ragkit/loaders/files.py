"""Read one file safely into a :class:`~ragkit.types.Document`: opened without following a
symlink or blocking, checked to be a regular file within its size limit, run through the loader
for its suffix under the time, text and memory limits, and given the file facts (``path``,
``suffix``, ``size``, ``mtime``) as metadata.

This module leaves out which files a folder holds (``folder.py``) and the formats themselves.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

from ..base import Loader
from ..errors import LoadError
from ..types import Document
from .defaults import DEFAULT_MAX_BYTES
from .globs import _suffix
from .isolation import can_isolate, run_isolated
from .limits import LoadLimits, budget_for, limit_reason
from .registry import loader_for
from .text import RESERVED_KEYS, TextLoader

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
_FALLBACK_LOADER = TextLoader()


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
        try:  # bytes.decode refuses the codecs that are not text encodings (rot13, base64...)
            b"a".decode(fallback_encoding)
        except LookupError:
            raise ValueError(
                f"fallback_encoding ({fallback_encoding!r}) is a codec but not a text "
                "encoding; name one that reads bytes as text, e.g. 'latin-1' or 'cp1252'"
            ) from None
        except UnicodeError:
            pass  # a text encoding that cannot read this one byte (utf-16): fine


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
