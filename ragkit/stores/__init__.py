"""Stores: where an index's chunks, vectors and keyword statistics live.

- ``ragkit.stores.memory.MemoryStore``: in this process, saved to a directory
  (``ragkit.stores.disk`` is the file format).
- ``ragkit.stores.postgres.PostgresStore``: Postgres with pgvector (extra ``pg``).

:func:`open_store` picks one from a location: a ``postgresql://`` URL opens Postgres, anything
else is a directory path. The protocol they implement is ``ragkit.base.Store``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..base import Store
from ..errors import MissingDependencyError
from .disk import check_target
from .memory import MemoryStore
from .redaction import redact

__all__ = ["MemoryStore", "is_database_url", "open_store", "redact", "split_schema"]


def is_database_url(location: object) -> bool:
    """True for a ``postgresql://`` or ``postgres://`` URL."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def split_schema(url: str) -> tuple[str, str]:
    """A database URL without ragkit's own ``ragkit_schema`` parameter, and that schema.

    One database can hold several indexes, one per schema: ``postgresql://db/app?ragkit_schema=
    docs``. The default schema is ``ragkit``.

    Example:
        >>> split_schema("postgresql://db/app?sslmode=require&ragkit_schema=docs")
        ('postgresql://db/app?sslmode=require', 'docs')
    """
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in pairs if k == "ragkit_schema"]
    if not schemas:
        return url, "ragkit"
    kept = [(k, v) for k, v in pairs if k != "ragkit_schema"]
    query = urlencode(kept, safe="/")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment)), schemas[-1]


def open_store(
    location: str | Path, *, migrate: bool = False, read_url: str | None = None
) -> Store:
    """The store at ``location``: Postgres for a URL, else the directory (empty if new).

    ``migrate=True`` (the writer's path: ``index_folder``, ``ragkit index``) first creates or
    upgrades a database's schema; searches never run DDL. ``read_url`` (Postgres only) is a
    read replica of ``location``: searches go there, writes and locks to ``location``.

    Raises:
        MissingDependencyError: a Postgres URL without the ``pg`` extra installed.
        IndexFormatError: the directory holds a damaged index.
    """
    if is_database_url(location):
        try:
            from . import postgres  # type: ignore[attr-defined, unused-ignore]
        except ImportError as exc:
            raise MissingDependencyError(
                "a postgresql:// index needs the 'pg' extra: pip install 'ragkit-claude[pg]'"
            ) from exc
        url, schema = split_schema(str(location))
        replica = None
        if read_url is not None:
            replica, read_schema = split_schema(str(read_url))
            if "ragkit_schema=" in str(read_url) and read_schema != schema:
                raise ValueError(
                    f"read_url names schema {read_schema!r}, the index is schema {schema!r}: a "
                    "replica serves the primary's schema (drop ragkit_schema= from read_url)"
                )
        pg = postgres.PostgresStore(url, schema=schema, read_url=replica)
        if migrate:
            pg.migrate()
        store: Store = pg
        return store
    if read_url is not None:
        raise ValueError(f"read_url is for a postgresql:// index, not the directory {location!r}")
    root = Path(location)
    if (root / "CURRENT").exists() or (root / "CURRENT").is_symlink():
        return MemoryStore.load(root)
    check_target(root)
    return MemoryStore(location=str(root))
