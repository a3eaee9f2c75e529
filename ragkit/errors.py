"""The errors ragkit raises at run time, all under one base class.

Programmer errors (a bad argument) raise plain ``ValueError`` or ``TypeError`` naming the
parameter, its value and the rule. Everything that can go wrong at run time with good arguments
(a file, an index on disk, a model, the Claude API) raises a subclass of :class:`RagkitError`::

    RagkitError
    ├── LoadError               a document cannot be read (path attribute)
    ├── IndexFormatError        an index on disk is corrupt, truncated or of another version
    ├── EmbeddingError          an embedder failed or returned vectors of the wrong shape
    ├── MissingDependencyError  an optional extra is not installed (also an ImportError)
    ├── AnswerError             the Claude call failed (status_code, request_id attributes)
    │   └── MissingAPIKeyError  no ANTHROPIC_API_KEY and no client was given
    └── StoreError              a store (a database) cannot serve the request
        ├── StoreUnavailableError  the server cannot be reached, or the connection was lost
        ├── SchemaError            the store's schema is missing (run the migration) or newer
        ├── SettingsMismatchError  the store was built with another embedder or settings
        └── StoreBusyError         another writer held the store's write lock too long

This module leaves out retries: the anthropic SDK already retries 408/409/429/5xx, and ragkit
only passes ``max_retries`` through.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AnswerError",
    "EmbeddingError",
    "IndexFormatError",
    "LoadError",
    "MissingAPIKeyError",
    "MissingDependencyError",
    "RagkitError",
    "SchemaError",
    "SettingsMismatchError",
    "StoreBusyError",
    "StoreError",
    "StoreUnavailableError",
]


class RagkitError(Exception):
    """Base class of every run-time error ragkit raises."""


class LoadError(RagkitError):
    """A document could not be read: unreadable, binary, not UTF-8, empty or too large.

    Attributes:
        path: the file that failed.
        reason: a short phrase saying why (``"binary"``, ``"not UTF-8"``, ...).
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class IndexFormatError(RagkitError):
    """An index on disk is corrupt, truncated, missing a file or written by another version."""


class EmbeddingError(RagkitError):
    """An embedder failed, or returned vectors whose shape does not fit the index."""


class MissingDependencyError(RagkitError, ImportError):
    """An optional extra is needed; the message gives the ``pip install`` command."""


class AnswerError(RagkitError):
    """The Claude call failed.

    Attributes:
        status_code: the HTTP status, or ``None`` when no response came back.
        request_id: Anthropic's ``request-id`` header, for support tickets, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.request_id = request_id
        super().__init__(message)


class MissingAPIKeyError(AnswerError):
    """``ANTHROPIC_API_KEY`` is not set and no client was passed in."""


class StoreError(RagkitError):
    """A store cannot serve the request; the subclasses say why and what to do."""


class StoreUnavailableError(StoreError):
    """The store's server cannot be reached, or the connection to it was lost.

    The message names the server without its password and says what to check.
    """


class SchemaError(StoreError):
    """The store's schema is missing (run the migration) or from a newer ragkit version."""


class SettingsMismatchError(StoreError):
    """The store was built with another embedder, dimension or index settings than asked for."""


class StoreBusyError(StoreError):
    """Another writer held the store's write lock for longer than the lock timeout."""
