"""The memory store's on-disk format: generations swapped atomically, every file checksummed.

An index directory::

    PATH/CURRENT              "<generation> <sha256 of its manifest.json>", replaced atomically
    PATH/gen-…/manifest.json  format, version, settings, documents, counts, each file's sha256
    PATH/gen-…/chunks.npz     the chunk table in columns (version 3; see ragkit.stores.memory)
    PATH/gen-…/chunks.jsonl   one chunk per line (version 2, still read)
    PATH/gen-…/bm25.npz       BM25 postings (numpy arrays, no pickle)
    PATH/gen-…/vectors.npz    keys and float32 vectors (absent for a keyword-only index)
    PATH/.lock                held (flock) by a writer for the whole save

A save writes a new generation beside the live one, fsyncs it, then swaps ``CURRENT``; a crash
at any point leaves the previous generation live. The generation before the live one is kept
(a reader that read the old ``CURRENT`` a moment ago can still open it); older ones and debris
of crashed saves are removed by the next save. Reading opens every file without following
links and without blocking (a FIFO or device fails at once), checks each file's size and
SHA-256 against the manifest, and never unpickles.

Versions: a save writes :data:`FORMAT_VERSION`; a load reads every version in
:data:`READABLE_VERSIONS` (the manifest's ``version`` says which files to expect) and refuses
others with a message saying to rebuild. An index is upgraded by the next save, never in place.

This module leaves out what the files mean (``ragkit.stores.memory``).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import math
import os
import stat
import struct
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import IndexFormatError, IndexLockedError, RagkitError, StoreError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "Generation",
    "current_generation",
    "is_index_dir",
    "only_debris",
    "read_generation",
    "rebuild_advice",
    "write_generation",
    "writer_lock",
]

FORMAT_NAME = "ragkit-index"
FORMAT_VERSION = 3
"""Written by every save. 3: the chunk table in columns (``chunks.npz``)."""
READABLE_VERSIONS = (2, 3)
"""Loaded. 2: the chunk table as JSON lines (``chunks.jsonl``)."""
_MAX_MANIFEST_BYTES = 1 << 30
_LOCK_TIMEOUT = 30.0
# A reader retries while saves keep replacing the generation it is reading, for this long.
_READ_PATIENCE = 30.0

Writer = Callable[[IO[bytes]], object]


class Generation:
    """One generation read back: its manifest and its files' verified bytes.

    ``deferred`` lists files left unread (name: manifest entry): :meth:`npz` reads and verifies
    one when it is first asked for.
    """

    def __init__(
        self,
        folder: Path,
        manifest: dict[str, Any],
        files: dict[str, bytes],
        deferred: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.folder = folder
        self.manifest = manifest
        self.files = files
        self.deferred = deferred or {}

    def npz(self, name: str) -> dict[str, np.ndarray]:
        """The arrays of an ``.npz`` file of this generation (no pickle; may be read-only)."""
        if name not in self.files and name in self.deferred:
            self.files[name] = _verified(self.folder, name, self.deferred.pop(name))
        try:
            raw = self.files[name]
        except KeyError as exc:
            raise IndexFormatError(f"{self.folder / name} is missing") from exc
        try:
            arrays = _stored_arrays(raw)
            if arrays is not None:
                return arrays
            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        except Exception as exc:  # ValueError, zipfile.BadZipFile, EOFError from damage
            raise IndexFormatError(
                f"{self.folder / name} is corrupt: {type(exc).__name__}: {exc}"
            ) from exc


_END = struct.Struct("<4s4H2LH")  # end of central directory
_ENTRY = struct.Struct("<4s6H3L5H2L")  # central directory entry
_LOCAL = struct.Struct("<4s5H3L2H")  # local file header
_NPY_HEADER_MAX = 12 + 10_000  # magic, length and numpy's own limit on a header's size


def _stored_arrays(raw: bytes) -> dict[str, np.ndarray] | None:
    """The arrays of an ``.npz`` archive whose members are stored uncompressed, as ``np.savez``
    writes them (and every save here), as read-only views of the archive's bytes; ``None``
    for any other archive (compressed members, zip64 records, a comment), which ``np.load``
    reads. The stores copy what they keep (into their own buffers, or as other dtypes).

    ``np.load`` would import ``zipfile`` (with ``bz2`` and ``lzma``) and check each member's
    CRC-32, a second pass over bytes whose SHA-256 the manifest has already verified: together
    a noticeable part of a search process's start. Damage raises ``ValueError`` or
    ``struct.error``.
    """
    view = memoryview(raw)
    if len(raw) < _END.size or raw[-_END.size : -_END.size + 4] != b"PK\x05\x06":
        return None
    _, disk, cd_disk, here, count, cd_size, cd_offset, comment = _END.unpack_from(
        raw, len(raw) - _END.size
    )
    if disk or cd_disk or here != count or comment or 0xFFFFFFFF in (cd_size, cd_offset):
        return None
    arrays: dict[str, np.ndarray] = {}
    at = cd_offset
    for _ in range(count):
        entry = _ENTRY.unpack_from(raw, at)
        sig, method, csize, usize = entry[0], entry[4], entry[8], entry[9]
        name_len, extra_len, note_len, offset = entry[10], entry[11], entry[12], entry[16]
        if sig != b"PK\x01\x02" or method != 0 or csize != usize or 0xFFFFFFFF in entry[8:10]:
            return None
        name = bytes(view[at + _ENTRY.size : at + _ENTRY.size + name_len]).decode("utf-8")
        at += _ENTRY.size + name_len + extra_len + note_len
        local = _LOCAL.unpack_from(raw, offset)
        if local[0] != b"PK\x03\x04":
            raise ValueError(f"member {name!r} has no local header")
        start = offset + _LOCAL.size + local[9] + local[10]
        if start + csize > cd_offset:
            raise ValueError(f"member {name!r} runs past the archive's directory")
        arrays[name.removesuffix(".npy")] = _npy_array(view[start : start + csize])
    if at != cd_offset + cd_size:
        raise ValueError("the archive's directory has another size than its end record says")
    return arrays


def _npy_array(member: memoryview) -> np.ndarray:
    """One ``.npy`` member as a read-only view of its bytes (no copy; never unpickles)."""
    fh = io.BytesIO(member[:_NPY_HEADER_MAX])  # the header only: BytesIO copies what it gets
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    if dtype.hasobject:
        raise ValueError("an array holds Python objects (pickles are never loaded)")
    count = math.prod(shape)
    flat = np.frombuffer(member, dtype=dtype, count=count, offset=fh.tell())
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


def is_index_dir(root: Path) -> bool:
    """True when ``root`` holds a ragkit index (a ``CURRENT`` pointer)."""
    return (root / "CURRENT").is_file()


def rebuild_advice(root: Path) -> str:
    """What to do about a damaged index at ``root``: its documents are still in their folder."""
    return (
        f"rebuild it: move {root} aside (or delete it), then `ragkit index FOLDER --index {root}`"
    )


def only_debris(root: Path) -> bool:
    """True when ``root`` holds nothing but what an interrupted first save leaves."""
    for entry in root.iterdir():
        name = entry.name
        if name in (".lock", ".CURRENT.tmp") or name.startswith((".gen-", "gen-")):
            continue
        return False
    return True


_held: dict[tuple[int, int, int], int] = {}
_held_guard = threading.Lock()


def check_target(root: Path) -> None:
    """Refuse a path that can never hold an index: a file, or a non-empty directory that is
    neither a ragkit index nor what an interrupted save leaves (so a mistyped ``--index``
    cannot clobber the user's files). Called before any embedding is paid for, and by a save.

    Raises:
        StoreError: ``root`` is a file, or a foreign non-empty directory.
    """
    try:
        is_file, is_dir = root.exists() and not root.is_dir(), root.is_dir()
    except OSError as exc:  # a name too long, a path through a file...
        raise StoreError(
            f"cannot use {root} as an index: {exc.strerror or exc}; choose another --index path"
        ) from exc
    if is_file:
        raise StoreError(f"cannot use {root} as an index: it is a file, not a directory")
    if is_dir and not is_index_dir(root) and not only_debris(root):
        raise StoreError(
            f"cannot use {root} as an index: the directory is not empty and is not a ragkit "
            "index; choose another --index path"
        )


@contextmanager
def writer_lock(root: Path, *, timeout: float | None = None) -> Iterator[None]:
    """Hold the index directory's writer lock (flock on ``.lock``), waiting up to ``timeout``.

    One writer at a time per directory, across threads and processes: each holder opens its own
    descriptor, and flock locks on separate descriptors exclude each other even within one
    process. The thread holding the lock may take it again (nested: ``index_folder`` holds it
    across load, update and every save). The lock is the kernel's: it is released when its
    holder exits or is killed, so a crashed writer never leaves a stale lock (a leftover
    ``.lock`` file is harmless). ``timeout`` defaults to ``RAGKIT_LOCK_TIMEOUT`` seconds from the
    environment, else 30.

    Raises:
        IndexLockedError: another writer held the lock for ``timeout`` seconds.
    """
    wait = _lock_timeout() if timeout is None else timeout
    try:
        root.mkdir(parents=True, exist_ok=True)
        info = os.stat(root)
    except OSError as exc:
        raise StoreError(
            f"cannot create the index directory {root}: {exc.strerror or exc}; choose an "
            "--index path in a folder you can write to"
        ) from exc
    me = (info.st_dev, info.st_ino, threading.get_ident())
    with _held_guard:
        depth = _held.get(me, 0)
        if depth:
            _held[me] = depth + 1
    if depth:
        try:
            yield
        finally:
            with _held_guard:
                _held[me] -= 1
        return
    try:
        fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise StoreError(
                f"cannot write the index at {root} ({exc.strerror}): a writer needs to create "
                f"{root / '.lock'} there; copy the index somewhere writable, or only search it"
            ) from exc
        raise RagkitError(
            f"cannot lock the index at {root}: {root / '.lock'} cannot be opened ({exc.strerror}); "
            "remove it if it is not a plain file"
        ) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RagkitError(f"cannot lock the index at {root}: {root / '.lock'} is not a file")
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexLockedError(
                        f"another process is writing the index at {root} (waited {wait:.0f} s); "
                        "try again when it has finished"
                    ) from None
                time.sleep(0.02)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # the pid is informational
        with _held_guard:
            _held[me] = 1
        try:
            yield
        finally:
            with _held_guard:
                del _held[me]
    finally:
        os.close(fd)  # closing releases the flock


def _lock_timeout() -> float:
    raw = os.environ.get("RAGKIT_LOCK_TIMEOUT")
    if raw is None:
        return _LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise RagkitError(f"RAGKIT_LOCK_TIMEOUT ({raw!r}) must be a number of seconds") from None
    return max(0.0, value)


def current_generation(root: Path) -> str | None:
    """The generation ``CURRENT`` names, or ``None`` when there is none (or it is unreadable)."""
    return _current_name(root)


def write_generation(root: Path, files: Mapping[str, Writer], manifest: dict[str, Any]) -> str:
    """Write a new generation with ``files`` and ``manifest`` and make it live; hold the lock.

    Each writer is given a binary file to write; the file's SHA-256 and size go into the
    manifest's ``files`` entry. Returns the generation's name.

    Raises:
        RagkitError: ``root`` is a file, or a non-empty directory that is not a ragkit index.
        OSError: the disk is full or not writable (the previous generation stays live).
    """
    check_target(root)
    import shutil
    import uuid

    gen = f"gen-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    tmp = root / f".{gen}.tmp"
    pointer = root / ".CURRENT.tmp"
    tmp.mkdir(parents=True)
    previous: str | None = None
    try:
        _unlink_debris(pointer)  # a crashed save's pointer (the caller holds the writer lock)
        listing: dict[str, dict[str, Any]] = {}
        for name, write in files.items():
            listing[name] = _write_file(tmp / name, write)
        full = dict(manifest)
        full["format"] = FORMAT_NAME
        full["version"] = FORMAT_VERSION
        full["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        full["files"] = listing
        body = json.dumps(full, indent=1, ensure_ascii=False).encode("utf-8")
        _write_file(tmp / "manifest.json", lambda fh: fh.write(body))
        _fsync_dir(tmp)
        os.rename(tmp, root / gen)
        text = f"{gen} {hashlib.sha256(body).hexdigest()}\n".encode()
        _write_file(pointer, lambda fh: fh.write(text))
        previous = _current_name(root)
        os.replace(pointer, root / "CURRENT")
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if _current_name(root) != gen:
            shutil.rmtree(root / gen, ignore_errors=True)
            try:
                _unlink_debris(pointer)
            except OSError:
                pass  # the next save removes it
        raise
    for old in root.iterdir():
        if old.name in (gen, previous) or not old.name.startswith(("gen-", ".gen-")):
            continue
        shutil.rmtree(old, ignore_errors=True)
    return gen


def _unlink_debris(path: Path) -> None:
    """Remove a leftover file or directory of a crashed save; nothing when it is absent."""
    import shutil

    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def _current_name(root: Path) -> str | None:
    try:
        return read_regular(root / "CURRENT", limit=4096).decode("utf-8").split()[0]
    except (IndexFormatError, UnicodeDecodeError, IndexError):
        return None


def _write_file(path: Path, write: Writer) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0

    class _Hashing(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            nonlocal size
            view = memoryview(data).cast("B")
            digest.update(view)
            size += view.nbytes
            return raw.write(view)

    with open(path, "xb") as raw:
        sink = io.BufferedWriter(_Hashing(), buffer_size=1 << 20)
        write(sink)
        sink.flush()
        raw.flush()
        os.fsync(raw.fileno())
    return {"sha256": digest.hexdigest(), "bytes": size}


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_regular(path: Path, *, limit: int | None = None) -> bytes:
    """The bytes of a regular file, opened without following links or blocking.

    Raises:
        IndexFormatError: the path is missing, a link, a FIFO, a device or a directory, or
            larger than ``limit``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise IndexFormatError(f"{path} is missing") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IndexFormatError(f"{path} is a symbolic link, not an index file") from exc
        raise IndexFormatError(f"{path} cannot be opened: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IndexFormatError(f"{path} is not a regular file")
        if limit is not None and info.st_size > limit:
            raise IndexFormatError(f"{path} is too large ({info.st_size} bytes)")
        try:
            with os.fdopen(fd, "rb", closefd=False) as fh:
                return fh.read()
        except OSError as exc:
            raise IndexFormatError(f"{path} cannot be read: {exc.strerror}") from exc
    finally:
        os.close(fd)


def read_generation(root: Path, *, defer: Collection[str] = ()) -> Generation:
    """The live generation of the index at ``root``, every file verified against the manifest.

    A save that swaps ``CURRENT`` while this reads is survived: the read is retried on the new
    generation (for up to 30 s of saves in a row). Files named in ``defer`` are read and
    verified when :meth:`Generation.npz` first asks for them (a save keeps the generation
    before the live one, so they are there until the second save after this read).

    Raises:
        IndexFormatError: no index, a damaged or missing file, a checksum or size mismatch, or
            another format version; the message names the file.
    """
    deadline = time.monotonic() + _READ_PATIENCE
    attempt = 0
    while True:
        try:
            return _read_once(root, defer)
        except _Vanished:
            attempt += 1
            if time.monotonic() >= deadline:
                break
            time.sleep(min(0.2, 0.005 * attempt))
    raise IndexFormatError(f"{root}: the index kept changing while it was read; try again")


class _Vanished(Exception):
    """The generation named by CURRENT disappeared: a save replaced it while we read."""


def _read_once(root: Path, defer: Collection[str]) -> Generation:
    pointer_path = root / "CURRENT"
    try:
        found, pointed = root.exists(), pointer_path.exists() or pointer_path.is_symlink()
    except OSError as exc:  # a name too long, a path through a file...
        raise IndexFormatError(
            f"cannot read an index at {root}: {exc.strerror or exc}; check the --index path"
        ) from exc
    if not found:
        raise IndexFormatError(
            f"no index at {root}; build one with `ragkit index DIR --index {root}`"
        )
    if not pointed:
        raise IndexFormatError(f"{root} is not a ragkit index (no CURRENT file)")
    raw = read_regular(pointer_path, limit=4096)
    try:
        parts = raw.decode("utf-8").split()
    except UnicodeDecodeError as exc:
        raise IndexFormatError(f"{pointer_path} is unreadable: {exc}") from exc
    if len(parts) == 1 and parts[0].startswith("gen-") and "/" not in parts[0]:
        # Format version 1 wrote the generation's name alone.
        raise IndexFormatError(
            f"{root} was written by an older ragkit (format version 1); rebuild it with "
            f"`ragkit index DIR --index {root}`"
        )
    if len(parts) != 2 or not parts[0].startswith("gen-") or "/" in parts[0]:
        raise IndexFormatError(f"{pointer_path} is corrupt: {raw[:80]!r}; {rebuild_advice(root)}")
    gen, manifest_sha = parts
    folder = root / gen
    try:
        body = read_regular(folder / "manifest.json", limit=_MAX_MANIFEST_BYTES)
    except IndexFormatError:
        if _current_name(root) != gen:
            raise _Vanished() from None
        raise
    if hashlib.sha256(body).hexdigest() != manifest_sha:
        raise IndexFormatError(
            f"{folder / 'manifest.json'} does not match the checksum in CURRENT: it was changed "
            f"or damaged; {rebuild_advice(root)}"
        )
    try:
        manifest = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexFormatError(f"{folder / 'manifest.json'} is corrupt: {exc}") from exc
    except RecursionError as exc:  # the decoder recurses once per nested array or object
        raise IndexFormatError(
            f"{folder / 'manifest.json'} is corrupt: nested too deeply to read; "
            f"{rebuild_advice(root)}"
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise IndexFormatError(f"{folder / 'manifest.json'} is not a ragkit index manifest")
    version = manifest.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        readable = " and ".join(map(str, READABLE_VERSIONS))
        raise IndexFormatError(
            f"{root} has index format version {version!r}; this ragkit reads versions "
            f"{readable}. Rebuild it with `ragkit index`."
        )
    listing = manifest.get("files")
    if not isinstance(listing, dict):
        raise IndexFormatError(f"{folder / 'manifest.json'}: 'files' must be an object")
    files: dict[str, bytes] = {}
    deferred: dict[str, dict[str, Any]] = {}
    for name, info in listing.items():
        if (
            not isinstance(name, str)
            or "/" in name
            or name.startswith(".")
            or not isinstance(info, dict)
            or not isinstance(info.get("sha256"), str)
            or not isinstance(info.get("bytes"), int)
        ):
            raise IndexFormatError(f"{folder / 'manifest.json'}: bad file entry {name!r}")
        if name in defer:
            deferred[name] = info
            continue
        try:
            files[name] = _verified(folder, name, info)
        except IndexFormatError:
            if _current_name(root) != gen:
                raise _Vanished() from None
            raise
    return Generation(folder, manifest, files, deferred)


def _verified(folder: Path, name: str, info: Mapping[str, Any]) -> bytes:
    """The bytes of one file of a generation, checked against its manifest entry."""
    data = read_regular(folder / name, limit=int(info["bytes"]))
    if len(data) != info["bytes"] or hashlib.sha256(data).hexdigest() != info["sha256"]:
        raise IndexFormatError(
            f"{folder / name} does not match its checksum in the manifest: it was changed "
            f"or damaged; {rebuild_advice(folder.parent)}"
        )
    return data
