"""The budget every file is read under: wall time, extracted characters, inflated bytes, memory.

A hostile or broken file (a zip bomb in a ``.docx``, a PDF whose pages inflate to gigabytes, an
HTML page that sends a parser quadratic) must cost a bounded amount of work and then be skipped
with a reason that names the limit and the setting that raises it; the rest of the folder is
still read. :class:`LoadLimits` holds the limits as one value. Its defaults come from
:data:`DEFAULTS` and can be changed for every command at once through environment variables
(``RAGKIT_LOAD_MAX_SECONDS``, ``RAGKIT_LOAD_MAX_CHARS``, ``RAGKIT_LOAD_MAX_INFLATED_BYTES``,
``RAGKIT_LOAD_MAX_MEMORY``), or per call with ``load_folder(limits=LoadLimits(...))``.

How each limit is enforced:

- the built-in loaders run in a worker process (``isolation.py``) that is killed when a file
  takes longer than ``max_seconds`` or its resident memory passes ``max_memory``;
- inside a loader, :func:`current_budget` gives the file's :class:`Budget`; the built-in loaders
  count the characters they extract and the bytes they inflate against it as they go, and check
  the clock between pages and XML elements, so they stop early instead of finishing the work;
- after any loader (yours too) returns, the folder walk checks the text's length and the time
  taken.

This module leaves out the loaders themselves and the worker process.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields

from ..errors import LoadError

__all__ = ["DEFAULTS", "Budget", "LoadLimits", "current_budget", "limit_reason"]

_MiB = 1024 * 1024

_ENV = {
    "max_seconds": "RAGKIT_LOAD_MAX_SECONDS",
    "max_chars": "RAGKIT_LOAD_MAX_CHARS",
    "max_inflated_bytes": "RAGKIT_LOAD_MAX_INFLATED_BYTES",
    "max_memory": "RAGKIT_LOAD_MAX_MEMORY",
}


@dataclass(frozen=True, slots=True)
class LoadLimits:
    """How much work one file may cost before it is skipped.

    Attributes:
        max_seconds: wall time to read one file (the worker is killed past it).
        max_chars: characters of text one file may give (about 5,000 dense PDF pages by
            default); more and the file is skipped, not truncated.
        max_inflated_bytes: bytes one file's compressed parts may inflate to (the XML inside a
            ``.docx``); checked against the sizes the archive declares before inflating, and
            counted while streaming.
        max_memory: resident memory of the worker process reading one file (PDF pages are
            inflated and laid out there); the worker is killed past it (Linux only).
        isolate: read files of the built-in formats in the worker process; ``False`` reads them
            in this process, where time and characters are checked between pages and
            elements only and memory is not bounded.
    """

    max_seconds: float = 60.0
    max_chars: int = 10_000_000
    max_inflated_bytes: int = 128 * _MiB
    max_memory: int = 512 * _MiB
    isolate: bool = True

    def __post_init__(self) -> None:
        for name in ("max_seconds", "max_chars", "max_inflated_bytes", "max_memory"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} ({value!r}) must be a number > 0")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LoadLimits:
        """The defaults, with any ``RAGKIT_LOAD_MAX_*`` environment variable applied.

        Raises:
            ValueError: a variable is not a positive number.

        Example:
            >>> LoadLimits.from_env({"RAGKIT_LOAD_MAX_SECONDS": "5"}).max_seconds
            5.0
        """
        env = os.environ if environ is None else environ
        values: dict[str, float | int] = {}
        for name, var in _ENV.items():
            raw = env.get(var)
            if raw is None or not raw.strip():
                continue
            try:
                values[name] = float(raw) if name == "max_seconds" else int(float(raw))
            except ValueError:
                raise ValueError(f"{var} ({raw!r}) must be a number > 0") from None
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(f"{exc} (from the environment)") from None


DEFAULTS = LoadLimits()
"""The limits when nothing is set: 60 s, 10 million characters, 128 MiB inflated, 512 MiB."""

_FIELD_NAMES = frozenset(f.name for f in fields(LoadLimits))


def _size(n: float) -> str:
    if n >= _MiB:
        return f"{n / _MiB:,.0f} MiB"
    return f"{n:,.0f} bytes"


def limit_reason(name: str, what: str) -> str:
    """A skip reason naming the limit passed and how to raise it.

    Example:
        >>> limit_reason("max_seconds", "took longer than 2 s")
        'took longer than 2 s (max_seconds; raise it with RAGKIT_LOAD_MAX_SECONDS or LoadLimits(max_seconds=...))'
    """  # noqa: E501
    if name not in _FIELD_NAMES:
        raise ValueError(f"unknown limit {name!r}")
    return f"{what} ({name}; raise it with {_ENV[name]} or LoadLimits({name}=...))"


class Budget:
    """What one file has used of its :class:`LoadLimits`; loaders report to it as they go."""

    __slots__ = ("chars", "deadline", "document_id", "inflated", "limits", "started")

    def __init__(self, limits: LoadLimits, document_id: str = "") -> None:
        self.limits = limits
        self.document_id = document_id
        self.started = time.monotonic()
        self.deadline = self.started + limits.max_seconds
        self.chars = 0
        self.inflated = 0

    def check_time(self) -> None:
        """Raise :class:`LoadError` when the file's time is up."""
        if time.monotonic() > self.deadline:
            raise self.time_error()

    def time_error(self) -> LoadError:
        """The error for a file whose time is up."""
        seconds = f"{self.limits.max_seconds:g}"
        what = f"took longer than {seconds} s"
        return LoadError(self.document_id, limit_reason("max_seconds", what))

    def add_chars(self, n: int) -> None:
        """Count ``n`` extracted characters; raise when the file has given too many."""
        self.chars += n
        if self.chars > self.limits.max_chars:
            raise self.chars_error()

    def chars_error(self) -> LoadError:
        """The error for a file that gives too much text."""
        what = f"more than {self.limits.max_chars:,} characters of text"
        return LoadError(self.document_id, limit_reason("max_chars", what))

    def check_declared(self, part: str, size: int) -> None:
        """Refuse a part whose declared inflated size would pass the budget, before reading."""
        if self.inflated + size > self.limits.max_inflated_bytes:
            what = (
                f"{part} inflates to {_size(size)}, more than the "
                f"{_size(self.limits.max_inflated_bytes)} allowed (a zip bomb?)"
            )
            raise LoadError(self.document_id, limit_reason("max_inflated_bytes", what))

    def add_inflated(self, part: str, n: int) -> None:
        """Count ``n`` bytes inflated from ``part``; raise when the budget is passed."""
        self.inflated += n
        if self.inflated > self.limits.max_inflated_bytes:
            what = f"{part} inflates to more than {_size(self.limits.max_inflated_bytes)}"
            raise LoadError(self.document_id, limit_reason("max_inflated_bytes", what))


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "ragkit_load_budget", default=None
)


def current_budget(document_id: str = "") -> Budget:
    """The budget of the file being read; a fresh one from the environment outside a walk.

    A loader calls this once at the start of ``load`` and reports to it as it goes.
    """
    budget = _current.get()
    return budget if budget is not None else Budget(LoadLimits.from_env(), document_id)


@contextmanager
def budget_for(limits: LoadLimits, document_id: str) -> Iterator[Budget]:
    """Run the block as the reading of one file under ``limits``."""
    budget = Budget(limits, document_id)
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)
