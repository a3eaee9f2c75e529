"""Stores: where an index's chunks, vectors and keyword statistics live.

- ``ragkit.stores.memory.MemoryStore``: in this process, saved to a directory
  (``ragkit.stores.disk`` is the file format).
- ``ragkit.stores.postgres.PostgresStore``: Postgres with pgvector (extra ``pg``).

:func:`open_store` picks one from a location by its URL scheme, through the :mod:`ragkit.plugins`
registry :data:`STORES` like the other extension points: ``postgresql://`` (or ``postgres://``)
opens Postgres, a scheme a plugin registers (entry-point group ``ragkit.stores``, or
:func:`register_store`) opens its store, and a path without a scheme is the ``file`` store's
directory. The protocol they implement is ``ragkit.base.Store``. What differs by
location lives here too, so nothing above asks which kind a location is: :func:`load_store`
(an existing index), :func:`writer` (the writer lock of a load → change → save cycle),
:func:`current_version` (has another writer saved?) and :func:`local_path`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..base import Store
from ..errors import MissingDependencyError, StoreError
from ..plugins import Registry
from .disk import check_target, current_generation, writer_lock
from .memory import MemoryStore
from .redaction import redact

__all__ = [
    "ENTRY_POINT_GROUP",
    "STORES",
    "MemoryStore",
    "StoreFactory",
    "available_stores",
    "current_version",
    "is_database_url",
    "load_store",
    "local_path",
    "open_store",
    "redact",
    "register_store",
    "scheme_of",
    "split_schema",
    "writer",
]


ENTRY_POINT_GROUP = "ragkit.stores"
"""The entry-point group third-party stores register their URL scheme under."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


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


class StoreFactory(Protocol):
    """Opens the store at a location of one URL scheme (a ``ragkit.stores`` entry point)."""

    def __call__(self, location: str, *, migrate: bool, read_url: str | None) -> Store:
        """The store at ``location``; ``migrate`` creates or upgrades its schema first, and
        ``read_url`` is a replica to search (refuse it when the store has none)."""
        ...


def _factory(obj: object) -> StoreFactory:
    if not callable(obj):
        raise TypeError(
            f"a store entry point must name a factory(location, *, migrate, read_url), got {obj!r}"
        )
    return cast(StoreFactory, obj)


STORES: Registry[StoreFactory] = Registry(
    "store",
    ENTRY_POINT_GROUP,
    {
        "file": "ragkit.stores:_open_directory",
        "postgresql": "ragkit.stores:_open_postgres",
        "postgres": "ragkit.stores:_open_postgres",
    },
    accept=_factory,
    normalise=lambda scheme: scheme.strip().lower(),
    hint=(
        "a location is a directory path or a URL whose scheme a store registers, under the "
        f"entry-point group {ENTRY_POINT_GROUP!r} or with register_store()"
    ),
)
"""URL scheme → store factory (``ragkit.plugins`` precedence: registered > built-in > entry
point). A location without a scheme is the ``file`` store's directory."""


def scheme_of(location: str | Path) -> str:
    """The registry key of ``location``: its URL scheme, or ``"file"`` for a directory path.

    Example:
        >>> scheme_of("postgresql://db/app"), scheme_of("/var/index")
        ('postgresql', 'file')
    """
    if isinstance(location, str):
        found = _SCHEME.match(location)
        if found:
            return found.group(1).lower()
    return "file"


def register_store(scheme: str, factory: StoreFactory, *, replace: bool = False) -> None:
    """Make :func:`open_store` open ``scheme://...`` locations with ``factory`` in this process.

    Raises:
        ValueError: the scheme is taken (built-in or plugin) and ``replace`` is false.
    """
    STORES.register(scheme, _factory(factory), replace=replace)


def available_stores() -> list[str]:
    """Every URL scheme :func:`open_store` opens (``file`` is a directory path), sorted."""
    return STORES.names()


def open_store(
    location: str | Path, *, migrate: bool = False, read_url: str | None = None
) -> Store:
    """The store at ``location``, by its URL scheme: Postgres for ``postgresql://``, a
    plugin's for its scheme, else the directory (empty if new).

    ``migrate=True`` (the writer's path: ``index_folder``, ``ragkit index``) first creates or
    upgrades a database's schema; searches never run DDL. ``read_url`` (Postgres only) is a
    read replica of ``location``: searches go there, writes and locks to ``location``.

    Raises:
        UnknownNameError: a URL whose scheme no store registers (the message lists the known
            ones).
        MissingDependencyError: a Postgres URL without the ``pg`` extra installed.
        IndexFormatError: the directory holds a damaged index.
    """
    factory = STORES.get(scheme_of(location), shown=str(redact(str(location))))
    return factory(_path_of(location), migrate=migrate, read_url=read_url)


def _path_of(location: str | Path) -> str:
    text = str(location)
    return text[len("file://") :] if text.lower().startswith("file://") else text


def _open_postgres(location: str, *, migrate: bool, read_url: str | None) -> Store:
    try:
        from . import postgres  # type: ignore[attr-defined, unused-ignore]
    except ImportError as exc:
        raise MissingDependencyError(
            "a postgresql:// index needs the 'pg' extra: pip install 'ragkit-claude[pg]'"
        ) from exc
    url, schema = split_schema(location)
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


def _open_directory(location: str, *, migrate: bool, read_url: str | None) -> Store:  # noqa: ARG001
    if read_url is not None:
        raise ValueError(f"read_url is for a postgresql:// index, not the directory {location!r}")
    root = Path(location)
    try:
        existing = (root / "CURRENT").exists() or (root / "CURRENT").is_symlink()
    except OSError as exc:  # a name too long, a path through a file...
        raise StoreError(
            f"cannot use {root} as an index: {exc.strerror or exc}; choose another --index path"
        ) from exc
    if existing:
        return MemoryStore.load(root)
    check_target(root)
    return MemoryStore(location=str(root))


def load_store(location: str | Path) -> Store:
    """The store of the existing index at ``location`` (a directory must hold one).

    Raises:
        IndexFormatError: no index in the directory, or a damaged one.
        MissingDependencyError: a Postgres URL without the ``pg`` extra installed.
        UnknownNameError: a URL whose scheme no store registers.
    """
    root = local_path(location)
    if root is None:
        return open_store(location)
    return MemoryStore.load(root)


def local_path(location: str | Path | None) -> Path | None:
    """The directory of a directory location; ``None`` for a URL (or ``None``)."""
    if location is None or scheme_of(location) != "file":
        return None
    return Path(_path_of(location))


def current_version(location: str | Path) -> str | None:
    """The saved version at ``location`` without opening it (compare with ``Store.version``):
    a directory's live generation, ``None`` for a database (always current) or no index."""
    root = local_path(location)
    return None if root is None else current_generation(root)


@contextmanager
def writer(location: str | Path | None) -> Iterator[None]:
    """Hold the writer lock of the index at ``location`` across a load → change → save cycle.

    A directory's lock (``ragkit.stores.disk.writer_lock``) is held by this thread; the saves
    inside take it again without waiting. Nothing for ``None`` (an unsaved index) or a
    database URL (a database store writes each change in its own transaction).

    Raises:
        IndexLockedError: another writer held the lock for longer than the wait allowed.
        RagkitError: ``location`` is a file, not a directory.
    """
    root = local_path(location)
    if root is None:
        yield
        return
    check_target(root)
    with writer_lock(root):
        yield
