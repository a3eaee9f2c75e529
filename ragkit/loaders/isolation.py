"""Read a file with a built-in loader in a worker process that is killed past its budget.

A parser that hangs or balloons inside C code (PDFium on a page that inflates to gigabytes) or
inside the standard library (``html.parser`` goes quadratic on some malformed pages) cannot be
stopped from Python in the same process. So the PDF, Word and HTML loaders run in a worker: a Python
process started once (about a second to import ragkit) and reused for the following files. The
parent sends the file's bytes, waits at most ``max_seconds`` while polling the worker's resident
memory (``/proc``, Linux), and kills it past either limit; the next file starts a fresh worker.
Only JSON comes back (text, metadata and the log lines the loader wrote), never pickles, so a
worker subverted by a hostile file cannot run code in the parent.

Loaders registered by users and plugins run in the calling process (their classes may not be
importable in the worker). Where a worker cannot be started (no ``select`` on pipes, as on
Windows, or no Python executable), the built-in loaders run in process too, and say so once.

This module leaves out the limits themselves (``limits.py``) and the formats.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import IO, Any

from ..errors import LoadError
from .limits import LoadLimits, budget_for, limit_reason

__all__ = ["can_isolate", "run_isolated", "serve", "shutdown"]

logger = logging.getLogger("ragkit")

_FRAME = struct.Struct(">Q")
_READY = b"ragkit-loader-worker-1"
# Starting the worker imports ragkit (numpy and all); this is not charged to the first file.
_START_TIMEOUT = 120.0
_POLL = 0.05  # seconds between memory checks while a file is read
_KEEP_IDLE = 2
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _builtin_loaders() -> dict[str, Callable[[], Any]]:
    from .docx import DocxLoader
    from .html import HtmlLoader
    from .notebook import NotebookLoader
    from .pdf import PdfLoader
    from .text import MarkdownLoader, TextLoader

    return {
        cls.__name__: cls
        for cls in (DocxLoader, HtmlLoader, NotebookLoader, PdfLoader, MarkdownLoader, TextLoader)
    }


def can_isolate(loader: object) -> bool:
    """Whether ``loader`` is a built-in loader the worker can run."""
    return (
        _SUPPORTED
        and type(loader).__module__.startswith(__package__ or "ragkit.loaders")
        and type(loader).__name__ in _BUILTIN_NAMES
    )


# The loaders whose parsers cannot be interrupted from Python: PDFium (C++), libxml2 through lxml
# (C), and html.parser (quadratic on some malformed pages). Markdown, text and notebooks are
# ragkit's own linear code plus json/yaml, bounded by max_bytes; they stay in process, where a
# file costs no round trip (1.5 ms each, 3x the reading of a 500-word markdown file).
_BUILTIN_NAMES = frozenset({"DocxLoader", "HtmlLoader", "PdfLoader"})
_SUPPORTED = os.name == "posix" and bool(sys.executable)


# --------------------------------------------------------------------------- frames


def _write_frame(out: IO[bytes], payload: bytes) -> None:
    out.write(_FRAME.pack(len(payload)))
    out.write(payload)


def _read_exact(inp: IO[bytes], n: int) -> bytes | None:
    parts: list[bytes] = []
    while n:
        piece = inp.read(n)
        if not piece:
            return None
        parts.append(piece)
        n -= len(piece)
    return b"".join(parts)


def _read_frame(inp: IO[bytes]) -> bytes | None:
    head = _read_exact(inp, _FRAME.size)
    if head is None:
        return None
    return _read_exact(inp, _FRAME.unpack(head)[0])


# --------------------------------------------------------------------------- the parent side


def _rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f} MiB"


class _WorkerDied(Exception):
    pass


class _Worker:
    """One worker process and its pipes."""

    def __init__(self) -> None:
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from ragkit.loaders.isolation import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        ready = self._read(time.monotonic() + _START_TIMEOUT, None)
        if ready != _READY:
            self.kill()
            raise _WorkerDied("the loader worker did not start")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # the worker exits at end of input
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def _read(self, deadline: float, on_poll: Callable[[], None] | None) -> bytes:
        """One frame from the worker, or raise at the deadline (the caller kills it)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = bytearray()
        need: int | None = None
        while need is None or len(buf) < need:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], min(remaining, _POLL))
            if on_poll is not None:
                on_poll()
            if not ready:
                continue
            piece = os.read(fd, 1 << 20)
            if not piece:
                raise _WorkerDied(f"the loader worker stopped (exit code {self.proc.wait()})")
            buf += piece
            if need is None and len(buf) >= _FRAME.size:
                need = _FRAME.size + _FRAME.unpack_from(buf)[0]
        return bytes(buf[_FRAME.size : need])

    def run(self, request: dict[str, Any], data: bytes, limits: LoadLimits) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            _write_frame(self.proc.stdin, json.dumps(request).encode())
            _write_frame(self.proc.stdin, data)
            self.proc.stdin.flush()
        except OSError as exc:
            raise _WorkerDied(f"the loader worker stopped ({exc})") from None
        pid = self.proc.pid

        def check_memory() -> None:
            global peak_rss
            rss = _rss(pid)
            if rss is None:
                return
            peak_rss = max(peak_rss, rss)
            if rss > limits.max_memory:
                raise MemoryError(rss)

        reply = self._read(time.monotonic() + limits.max_seconds, check_memory)
        result: dict[str, Any] = json.loads(reply)
        return result


_lock = threading.Lock()
_idle: list[_Worker] = []
_warned = False
peak_rss = 0
"""The highest resident memory (bytes) seen in a worker: polled while it reads, and the peak
it reports after each file."""


def shutdown() -> None:
    """Stop the idle workers (also done at exit)."""
    with _lock:
        workers = list(_idle)
        _idle.clear()
    for worker in workers:
        worker.close()


atexit.register(shutdown)


def run_isolated(
    loader: object, data: bytes, *, document_id: str, limits: LoadLimits
) -> tuple[str, dict[str, Any]] | None:
    """Run a built-in ``loader`` on ``data`` in a worker: the document's text and metadata.

    Returns ``None`` when no worker can be started (the caller then reads in process).

    Raises:
        LoadError: the loader refused the file, or the file passed ``max_seconds`` or
            ``max_memory`` (the reason names the limit).
    """
    global _warned, peak_rss
    request = {
        "loader": type(loader).__name__,
        "fallback_encoding": getattr(loader, "fallback_encoding", None),
        "tables": getattr(loader, "tables", None),  # PdfLoader(tables=False)
        "document_id": document_id,
        "limits": {k: v for k, v in asdict(limits).items() if k != "isolate"},
    }
    with _lock:
        worker = _idle.pop() if _idle else None
    try:
        if worker is None:
            worker = _Worker()
    except (OSError, _WorkerDied) as exc:
        if not _warned:
            _warned = True
            logger.warning("files are read in process, without time and memory limits: %s", exc)
        return None
    try:
        reply = worker.run(request, data, limits)
    except TimeoutError:
        worker.kill()
        seconds = f"{limits.max_seconds:g}"
        what = f"took longer than {seconds} s"
        raise LoadError(document_id, limit_reason("max_seconds", what)) from None
    except MemoryError:
        worker.kill()
        what = f"needed more than {_size(limits.max_memory)} of memory to read"
        raise LoadError(document_id, limit_reason("max_memory", what)) from None
    except _WorkerDied as exc:
        worker.kill()
        raise LoadError(document_id, f"the reader crashed on this file ({exc})") from None
    except BaseException:
        worker.kill()
        raise
    with _lock:
        if len(_idle) < _KEEP_IDLE:
            _idle.append(worker)
            worker = None
    if worker is not None:
        worker.close()
    peak_rss = max(peak_rss, int(reply.get("peak_rss", 0)))
    for level, message in reply.get("logs", ()):
        logger.log(int(level), "%s", message)
    if not reply.get("ok"):
        raise LoadError(document_id, str(reply.get("reason", "unreadable")))
    return str(reply["text"]), dict(reply["metadata"])


# --------------------------------------------------------------------------- the worker side


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append((record.levelno, record.getMessage()))
        except Exception:  # noqa: BLE001 - a bad log call must not fail the file
            pass


def _handle(request: dict[str, Any], data: bytes, loaders: dict[str, Any]) -> dict[str, Any]:
    document_id = str(request["document_id"])
    limits = LoadLimits(**request["limits"], isolate=False)
    loader = loaders[request["loader"]]()
    encoding = request.get("fallback_encoding")
    if encoding is not None:
        loader = loader.with_fallback_encoding(encoding)
    if request.get("tables") is False:
        loader = replace(loader, tables=False)
    collect = _Collect()
    ragkit_logger = logging.getLogger("ragkit")
    ragkit_logger.addHandler(collect)
    try:
        with budget_for(limits, document_id) as budget:
            document = loader.load(data, document_id=document_id)
            if len(document.text) > limits.max_chars:
                raise budget.chars_error()
        return {
            "ok": True,
            "text": document.text,
            "metadata": dict(document.metadata),
            "logs": collect.lines,
        }
    except LoadError as exc:
        return {"ok": False, "reason": exc.reason, "logs": collect.lines}
    except MemoryError:
        what = "ran out of memory while reading"
        return {"ok": False, "reason": limit_reason("max_memory", what), "logs": []}
    except RecursionError:
        return {"ok": False, "reason": "nested too deeply to read", "logs": collect.lines}
    except Exception as exc:  # noqa: BLE001 - one loader's bug must not stop a whole folder
        reason = f"loader {type(loader).__name__} failed ({type(exc).__name__}: {exc})"
        return {"ok": False, "reason": reason, "logs": collect.lines}
    finally:
        ragkit_logger.removeHandler(collect)


def _peak_rss() -> int:
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def serve() -> None:
    """The worker's loop: read a request and a file from stdin, answer on stdout, until EOF."""
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints (C libraries included) go to stderr, never into a frame
    logging.getLogger("ragkit").propagate = False
    loaders = _builtin_loaders()
    _write_frame(out, _READY)
    out.flush()
    while True:
        header = _read_frame(inp)
        data = _read_frame(inp) if header is not None else None
        if header is None or data is None:
            return
        reply = _handle(json.loads(header), data, loaders)
        reply["peak_rss"] = _peak_rss()
        _write_frame(out, json.dumps(reply).encode())
        out.flush()
