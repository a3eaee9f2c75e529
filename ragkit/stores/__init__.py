"""Stores: where an index's chunks, vectors and keyword statistics live.

- ``ragkit.stores.memory.MemoryStore``: in this process, saved to a directory
  (``ragkit.stores.disk`` is the file format).
- ``ragkit.stores.postgres.PostgresStore``: Postgres with pgvector (extra ``pg``).

:func:`open_store` picks one from a location: a ``postgresql://`` URL opens Postgres, anything
else is a directory path. The protocol they implement is ``ragkit.base.Store``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..base import Store
from ..errors import MissingDependencyError, StoreError
from .disk import only_debris
from .memory import MemoryStore

__all__ = ["MemoryStore", "is_database_url", "open_store", "redact"]


def is_database_url(location: object) -> bool:
    """True for a ``postgresql://`` or ``postgres://`` URL."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def redact(location: str | Path) -> str:
    """``location`` safe to print: a database URL's password replaced by ``***``.

    Example:
        >>> redact("postgresql://app:s3cret@db/ragkit")
        'postgresql://app:***@db/ragkit'
    """
    text = str(location)
    if not is_database_url(text):
        return text
    scheme, _, rest = text.partition("://")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    masked = f"{scheme}://{userinfo}{at}{host}{slash}{tail}"
    # A password can also travel as a query parameter.
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", masked)


def open_store(location: str | Path) -> Store:
    """The store at ``location``: Postgres for a URL, else the directory (empty if new).

    Raises:
        MissingDependencyError: a Postgres URL without the ``pg`` extra installed.
        IndexFormatError: the directory holds a damaged index.
    """
    if is_database_url(location):
        try:
            from . import postgres  # type: ignore[attr-defined, unused-ignore]
        except ImportError as exc:
            raise MissingDependencyError(
                "a postgresql:// index needs the 'pg' extra: pip install 'ragkit[pg]'"
            ) from exc
        store: Store = postgres.PostgresStore(str(location))
        return store
    root = Path(location)
    if (root / "CURRENT").exists() or (root / "CURRENT").is_symlink():
        return MemoryStore.load(root)
    if root.exists() and not root.is_dir():
        raise StoreError(f"cannot use {root} as an index: it is a file, not a directory")
    if root.is_dir() and not only_debris(root):
        raise StoreError(
            f"cannot use {root} as an index: the directory is not empty and is not a ragkit "
            "index; choose another --index path"
        )
    return MemoryStore(location=str(root))
