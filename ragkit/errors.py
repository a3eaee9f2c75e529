"""The errors ragkit raises at run time, all under one base class.

Programmer errors (a bad argument) raise plain ``ValueError`` or ``TypeError`` naming the
parameter, its value and the rule. Everything that can go wrong at run time with good arguments
(a file, an index on disk, a model, the Claude API) raises a subclass of :class:`RagkitError`::

    RagkitError
    ├── LoadError               a document cannot be read (path attribute)
    ├── IndexFormatError        an index on disk is corrupt, truncated or of another version
    ├── SourceChangeError       a sync with another folder or options would remove documents
    ├── StoreError              a store cannot do what was asked
    │   ├── IndexLockedError        another writer holds the index (waited, then gave up)
    │   ├── IndexConflictError      another writer saved the index since it was loaded
    │   ├── SettingsMismatchError   the index was built with another embedder or chunking
    │   ├── StoreUnavailableError   the database cannot be reached, or went away mid-statement
    │   ├── StoreTimeoutError       a statement ran past its statement_timeout and was cancelled
    │   ├── ReadOnlyStoreError      a write reached a read-only server (a replica)
    │   ├── SchemaError             the database schema is missing or from a newer ragkit
    │   └── ExtensionError          the server's pgvector is missing, too old or cannot run
    ├── EmbeddingError          an embedder failed or returned vectors of the wrong shape
    ├── FilterError             a metadata filter is malformed or over a limit (also a ValueError)
    ├── UnknownNameError        no embedder, reranker or store of that name (also a ValueError)
    ├── MissingDependencyError  an optional extra is not installed (also an ImportError)
    ├── PortInUseError          ``ragkit mcp --http`` cannot listen on its port
    └── AnswerError             the Claude call failed (status_code, request_id, error_type)
        └── MissingAPIKeyError  no ANTHROPIC_API_KEY and no client was given

This module leaves out retries: the anthropic SDK already retries 408/409/429/5xx, and ragkit
only passes ``max_retries`` through.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AnswerError",
    "EmbeddingError",
    "ExtensionError",
    "FilterError",
    "IndexConflictError",
    "IndexFormatError",
    "IndexLockedError",
    "LoadError",
    "MissingAPIKeyError",
    "MissingDependencyError",
    "PortInUseError",
    "RagkitError",
    "SchemaError",
    "ReadOnlyStoreError",
    "SettingsMismatchError",
    "SourceChangeError",
    "StoreError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "UnknownNameError",
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


class SourceChangeError(RagkitError):
    """Syncing with another folder, or other folder options than the index recorded, would
    remove documents; nothing was changed.

    Attributes:
        removals: the IDs of the documents the new source would remove, sorted.
    """

    def __init__(self, message: str, removals: tuple[str, ...]) -> None:
        super().__init__(message)
        self.removals = removals


class StoreError(RagkitError):
    """A store (in memory, on disk or in Postgres) cannot do what was asked."""


class IndexLockedError(StoreError):
    """Another writer kept the index (a directory or a database) locked for longer than the
    wait allowed; try again when it has finished."""


class IndexConflictError(StoreError):
    """Another writer saved the index after this process loaded it; saving would lose its work."""


class SettingsMismatchError(StoreError):
    """A write or an open uses settings (embedder, dimension, chunking) other than the index's."""


class StoreUnavailableError(StoreError):
    """The store's server cannot be reached, or closed the connection during a statement
    (restarted, crashed, in recovery); the message says where (never the password)."""


class StoreTimeoutError(StoreError):
    """A statement ran longer than its ``statement_timeout`` (or was cancelled on the server);
    nothing it did was kept."""


class ReadOnlyStoreError(StoreError):
    """A write (or a migration) reached a server that only reads, such as a streaming replica;
    point writes at the primary."""


class SchemaError(StoreError):
    """The database has no ragkit schema (run the migration) or one from a newer ragkit."""


class ExtensionError(StoreError):
    """The server's pgvector extension is missing, older than ragkit needs, or cannot run on the
    server's CPU; the message says which, and what to install."""


class EmbeddingError(RagkitError):
    """An embedder failed, or returned vectors whose shape does not fit the index."""


class FilterError(RagkitError, ValueError):
    """A metadata filter (``where=``, ``--where``, ``--path``, the MCP ``where`` argument) is
    malformed or over a limit of ``ragkit.filters``; the message names the key and the rule.

    Raised while the filter is parsed, before any store sees it, so every store gives the same
    error for the same filter. Also a ``ValueError``, as before this class existed.
    """


class UnknownNameError(RagkitError, ValueError):
    """No embedder, reranker, loader or store is registered under a name (``ragkit.plugins``);
    the message lists the known names. Also a ``ValueError``, as before this class existed.

    Attributes:
        kind: ``"embedder"``, ``"reranker"``, ``"loader"`` or ``"store"``.
        name: the name asked for.
        known: the names that are registered, sorted.
    """

    def __init__(self, kind: str, name: str, known: tuple[str, ...], hint: str = "") -> None:
        self.kind = kind
        self.name = name
        self.known = known
        message = f"unknown {kind} {name!r}; known: {', '.join(known) or '(none)'}"
        super().__init__(f"{message} ({hint})" if hint else message)


class MissingDependencyError(RagkitError, ImportError):
    """An optional extra is needed; the message gives the ``pip install`` command."""


class PortInUseError(RagkitError):
    """The MCP server cannot listen on its HTTP port (another program holds it, or the port
    is not allowed); the message says to pick another with ``--port``."""


class AnswerError(RagkitError):
    """The Claude call failed: an error status, an error inside a stream, no response in time,
    a dropped connection, or a reply that is not a complete Messages API response.

    Attributes:
        status_code: the HTTP status of an error response, or ``None`` when none came back
            (no connection, timeout) or the error arrived inside a 200 stream.
        request_id: Anthropic's request id (the ``request-id`` header, else the error body's
            ``request_id``), for support tickets, when known.
        error_type: the API's error type (``"overloaded_error"``, ``"rate_limit_error"``, ...)
            when the API named one, also for an ``error`` event inside a stream.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        error_type: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.request_id = request_id
        self.error_type = error_type
        super().__init__(message)


class MissingAPIKeyError(AnswerError):
    """``ANTHROPIC_API_KEY`` is not set and no client was passed in."""
