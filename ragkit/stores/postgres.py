"""A :class:`~ragkit.base.Store` in PostgreSQL: pgvector for vectors, BM25 computed in SQL.

One store lives in one Postgres schema (``ragkit`` by default), created by an explicit,
idempotent migration (:func:`migrate`, :meth:`PostgresStore.migrate`, ``ragkit migrate URL``);
nothing on the query path runs DDL. Tables:

- ``meta``: one row, the schema version and the :class:`~ragkit.base.IndexSettings` (JSON).
- ``stats``: one row, the collection statistics (documents, chunks, characters, total
  analysed length), updated in the same transaction as the chunks.
- ``documents``: ID, content hash, metadata (jsonb).
- ``chunks``: one row per chunk: IDs, text, offsets, headings, metadata (jsonb, what filters
  match), the analysed length, the chunk's distinct term IDs and their frequencies (a forward
  index, so a replaced chunk's postings can be found), and the embedding (``vector(dim)`` with an
  HNSW cosine index, created by :meth:`PostgresStore.configure` once the dimension is known).
- ``terms``: term → ID, document frequency and the bound of its BM25 contribution (highest tf,
  shortest chunk); ``postings``: (term ID, chunk, tf, chunk length), keyed for an index-only
  scan per query term and indexed by chunk, so a replace finds a chunk's postings at once.

Keyword search is real BM25 (Lucene or Okapi variant, ``k1``, ``b`` from the settings) over
these tables, analysed by :class:`ragkit.bm25.Analyzer` in Python, so it ranks as
:class:`ragkit.bm25.BM25Index` does: the idf and the collection statistics are read in the same
snapshot as the postings, and each term's contribution is computed with the same floating-point
operations. Queries with many postings are pruned with MaxScore (only the essential terms'
postings are read in full; the ranking is the exhaustive one). Hybrid search can ask for
``(chunk ID, score)`` rankings and fetch only the fused top k's rows. Vector search uses the
HNSW index with a candidate list that grows with the store; a filtered query scans the
matching chunks exactly when the planner expects few of them, else the graph iteratively
(``hnsw.iterative_scan``) for a few times ``k`` matching candidates re-ranked exactly, and
exactly again when the graph returns fewer than ``k`` rows, so a filtered search returns
``min(k, matching chunks)`` results. Filters (:mod:`ragkit.filters`) compile to parameterised
SQL over the chunk metadata with exactly the semantics of :func:`ragkit.filters.matches`.

Writes take a transaction-scoped advisory lock per schema, so two writers are serialised, never
interleaved; a writer waiting longer than ``lock_timeout`` gets :class:`IndexLockedError`. A
large write (a bulk load) drops the indexes and rebuilds them in its own transaction.

The store's parts live beside it: :mod:`._pg_schema` (DDL, upgrades, migration and
settings), :mod:`._pg_sql` (schema names, the filter compiler, row conversions),
:mod:`._pg_bm25` (keyword search), :mod:`._pg_vector` (vector search), :mod:`._pg_write`
(writes and bulk loads) and :mod:`._pg_read` (chunks and statistics); this module holds the
connections, the error mapping, replicas and the public names.

This module leaves out chunking, embedding, fusion and answering (the Index does them for every
store), and sharding: docs/postgres.md says how the schema distributes (by document ID).
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from ..base import IndexSettings
from ..bm25 import Analyzer, BM25Index
from ..errors import (
    IndexLockedError,
    MissingDependencyError,
    ReadOnlyStoreError,
    SchemaError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from .redaction import redact, redact_message, url_secrets

try:
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg import errors as pg_errors
    from psycopg import sql
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "the Postgres store needs the 'pg' extra: pip install 'ragkit-claude[pg]'"
    ) from exc

from ._pg_bm25 import _KeywordSearch
from ._pg_read import _Reads
from ._pg_schema import (
    SCHEMA_VERSION,
    _pgvector_version,
    _Schema,
    check_pgvector_version,
)
from ._pg_sql import (
    _Cursor,
    _migrate_hint,
    _Name,
    check_schema_name,
    compile_filter,
    redact_url,
)
from ._pg_vector import _VectorSearch
from ._pg_write import _Writes

__all__ = [
    "SCHEMA_VERSION",
    "PostgresStore",
    "ReplicaLag",
    "check_schema_name",
    "compile_filter",
    "migrate",
    "redact_url",
]


# -- URLs and passwords ---------------------------------------------------------------------------


def _close_later(pool: ConnectionPool[Any]) -> None:
    if not pool.closed:
        threading.Thread(target=pool.close, name="ragkit-pool-close", daemon=True).start()


# -- the store ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplicaLag:
    """How far a read replica is behind its primary (:meth:`PostgresStore.replica_lag`).

    Attributes:
        in_recovery: the read server is a standby replaying the primary's WAL (``False``: it is
            a primary itself, and nothing lags).
        seconds: ``0.0`` when the replica has replayed all the WAL the primary has written;
            else the time since the commit of the last transaction it replayed
            (``now() - pg_last_xact_replay_timestamp()``); ``None`` before it replayed any.
        bytes_behind: WAL the primary has written that the replica has not replayed;
            ``None`` when the primary cannot be asked (it is down).
        replayed_at: when the last replayed transaction committed on the primary.
    """

    in_recovery: bool
    seconds: float | None
    bytes_behind: int | None
    replayed_at: datetime | None


def _configure_new(conn: psycopg.Connection[Any], *, statement_timeout_ms: int | None) -> None:
    """Set up a connection the store's pool just opened: its statement timeout, pgvector."""
    if statement_timeout_ms is not None:
        conn.execute(
            "SELECT set_config('statement_timeout', %s, false)", (f"{statement_timeout_ms}ms",)
        )
        if not conn.autocommit:
            conn.commit()
    _configure_connection(conn)


def _configure_connection(conn: psycopg.Connection[Any]) -> None:
    """Register pgvector's types when the extension exists; leave the connection idle."""
    if conn.adapters.types.get("vector") is not None:
        return
    try:
        register_vector(conn)
    except psycopg.ProgrammingError:
        pass  # no extension yet: migrate() creates it, the next checkout registers it
    finally:
        if not conn.autocommit:
            conn.rollback()


def migrate(
    url_or_pool: str | ConnectionPool[Any],
    *,
    schema: str = "ragkit",
    connect_timeout: int = 10,
    allow_public: bool = False,
) -> bool:
    """Create the store's schema if it is missing (idempotent); ``True`` when it created it.

    Raises:
        SchemaError: the schema is from a newer ragkit, or the vector extension cannot be
            created by this user (the message gives the statement an administrator runs).
        StoreUnavailableError: the server cannot be reached.
    """
    store = PostgresStore(
        url_or_pool, schema=schema, connect_timeout=connect_timeout, allow_public=allow_public
    )
    try:
        return store.migrate()
    finally:
        store.close()


class PostgresStore(_Schema, _KeywordSearch, _VectorSearch, _Writes, _Reads):
    """A store in one Postgres schema; see the module docstring for the tables and semantics.

    Args:
        url_or_pool: a ``postgresql://`` URL (or libpq ``key=value`` string), or a
            ``psycopg_pool.ConnectionPool`` you own (the store does not close it).
        schema: the Postgres schema holding this store's tables; one index per schema. Any
            name of 1 to 63 bytes (:func:`check_schema_name` gives the rules).
        allow_public: let ``schema`` be ``public``, the database's default schema (refused
            otherwise, so a store's tables never land beside an application's by accident).
        analyzer: the keyword analyzer for a new store; a configured store uses the one in its
            settings.
        pool_size: most connections the store's own pool opens.
        connect_timeout: seconds to wait for the server when connecting, and for a free pooled
            connection.
        lock_timeout: seconds a writer waits for another writer before :class:`IndexLockedError`.
        statement_timeout: seconds any one statement may run before the server cancels it
            (:class:`StoreTimeoutError`); ``None`` (the default) keeps the server's setting.
        read_url: a read replica (URL or pool) for searches and reads of chunks and
            statistics; writes, migrations, settings and the write lock stay on
            ``url_or_pool``, the primary. A replica lags: :meth:`replica_lag` says how far.

    Raises:
        StoreUnavailableError: the server cannot be reached (the message has no password).
        SchemaError: the schema was written by a newer ragkit.

    Example:
        >>> store = PostgresStore("postgresql://app@db/rag")  # doctest: +SKIP
        >>> store.migrate()  # once, explicitly                # doctest: +SKIP
    """

    def __init__(
        self,
        url_or_pool: str | ConnectionPool[Any],
        *,
        schema: str = "ragkit",
        analyzer: Analyzer | None = None,
        pool_size: int = 4,
        connect_timeout: int = 10,
        lock_timeout: float = 60.0,
        allow_public: bool = False,
        statement_timeout: float | None = None,
        read_url: str | ConnectionPool[Any] | None = None,
    ) -> None:
        if analyzer is not None and not isinstance(analyzer, Analyzer):
            raise TypeError(f"analyzer must be a ragkit.bm25.Analyzer, got {analyzer!r}")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size ({pool_size!r}) must be an integer >= 1")
        if not lock_timeout > 0:
            raise ValueError(f"lock_timeout ({lock_timeout!r}) must be > 0 seconds")
        if statement_timeout is not None and not statement_timeout > 0:
            raise ValueError(
                f"statement_timeout ({statement_timeout!r}) must be > 0 seconds, or None"
            )
        self._statement_timeout = statement_timeout
        self._connect_timeout = connect_timeout
        self.schema = check_schema_name(schema, allow_public=allow_public)
        self._ident = _Name(schema)
        # The key sequence's name as regclass input text (a parameter, never formatted in).
        self._sequence = sql.Identifier(schema, "chunk_keys").as_string()
        self._terms_table = sql.Identifier(schema, "terms").as_string()
        self._lock_timeout_ms = int(lock_timeout * 1000)
        self._secrets: tuple[str, ...] = ()
        self._queries: dict[str, sql.Composed] = {}
        self._settings: IndexSettings | None = None
        self._schema_checked = False
        self._closed = False
        self._state_lock = threading.Lock()
        if isinstance(url_or_pool, str):
            self._secrets = url_secrets(url_or_pool)
            self.location = redact(url_or_pool)
            self._check_reachable(url_or_pool, connect_timeout)
            self._pool: ConnectionPool[Any] = self._open_pool(url_or_pool, pool_size)
            self._own_pool = True
        elif isinstance(url_or_pool, ConnectionPool):
            self._pool = url_or_pool
            self._own_pool = False
            conninfo = url_or_pool.conninfo
            conninfo = conninfo if isinstance(conninfo, str) else conninfo()
            self._secrets = url_secrets(conninfo)
            self.location = redact(conninfo)
        else:
            raise TypeError(
                "url_or_pool must be a postgresql:// URL or a psycopg_pool.ConnectionPool, "
                f"got {type(url_or_pool).__name__}"
            )
        self._read_pool: ConnectionPool[Any] | None = None
        self._own_read_pool = False
        self.read_location: str | None = None
        try:
            self._open_reads(read_url, pool_size)
        except BaseException:
            self.close()
            raise
        self.analyzer: Analyzer = analyzer if analyzer is not None else Analyzer()
        self._explicit_analyzer = analyzer is not None
        self._bm25 = BM25Index(analyzer=self.analyzer)  # the scoring parameters only
        try:
            version = self._schema_version()
            # An older schema opens (so migrate() can upgrade it); using it says to migrate.
            if version is not None and version >= SCHEMA_VERSION:
                self._check_version(version)
                with self._connection() as conn:
                    installed = _pgvector_version(conn)
                if installed is not None:
                    check_pgvector_version(installed, self.location)
                self._schema_checked = True
                settings = self._read_settings()
                if settings is not None:
                    self._adopt(settings)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r}, schema={self.schema!r})"

    # -- plumbing ---------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        """``text`` (a driver's message) on one line, without the password."""
        return redact_message(text, self._secrets)

    def _check_reachable(self, url: str, timeout: int, location: str | None = None) -> None:
        location = self.location if location is None else location
        try:
            psycopg.connect(url, connect_timeout=timeout).close()
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(
                f"cannot connect to Postgres at {location}: "
                f"{self._redact(str(exc)).strip()}. Check that the server is running and "
                "reachable and that the URL's host, port, user and database are right."
            ) from None
        except psycopg.Error as exc:
            # libpq could not read the URL itself (a bad percent-escape, an unknown parameter):
            # its message may quote the password, so it goes through the redactor too.
            raise StoreUnavailableError(
                f"cannot use the Postgres URL {location}: {self._redact(str(exc))}. "
                "Check its syntax: percent-encode special characters in the user and password "
                "(% as %25, @ as %40, / as %2F) and use only libpq's parameters."
            ) from None

    def _open_reads(self, read_url: str | ConnectionPool[Any] | None, size: int) -> None:
        """Open the replica's pool (reads go there; everything else stays on the primary)."""
        if read_url is None:
            return
        if isinstance(read_url, str):
            self._secrets += url_secrets(read_url)
            self.read_location = redact(read_url)
            self._check_reachable(read_url, self._connect_timeout, self.read_location)
            self._read_pool = self._open_pool(read_url, size, name="read")
            self._own_read_pool = True
        elif isinstance(read_url, ConnectionPool):
            conninfo = read_url.conninfo
            conninfo = conninfo if isinstance(conninfo, str) else conninfo()
            self._secrets += url_secrets(conninfo)
            self.read_location = redact(conninfo)
            self._read_pool = read_url
        else:
            raise TypeError(
                "read_url must be a postgresql:// URL, a psycopg_pool.ConnectionPool or None, "
                f"got {type(read_url).__name__}"
            )

    def _open_pool(self, url: str, size: int, name: str = "") -> ConnectionPool[Any]:
        """The store's own pool for ``url``: each connection is checked as it is handed out, so
        connections a server restart left dead are replaced instead of failing a caller."""
        timeout_ms = (
            None if self._statement_timeout is None else int(self._statement_timeout * 1000)
        )
        pool: ConnectionPool[Any] = ConnectionPool(
            url,
            min_size=1,
            max_size=size,
            kwargs={"connect_timeout": self._connect_timeout},
            configure=functools.partial(_configure_new, statement_timeout_ms=timeout_ms),
            check=ConnectionPool.check_connection,
            timeout=float(self._connect_timeout),
            open=True,
            name=f"ragkit:{self.schema}" + (f":{name}" if name else ""),
        )
        # A store dropped without close() closes its pool from a thread of its own: the
        # collector may run in one of the pool's workers, which cannot join itself.
        weakref.finalize(self, _close_later, pool)
        return pool

    def _q(self, template: str) -> sql.Composed:
        """``template`` with ``{s}`` bound to this store's schema (cached)."""
        query = self._queries.get(template)
        if query is None:
            query = sql.SQL(template).format(s=self._ident)
            self._queries[template] = query
        return query

    @contextmanager
    def _connection(self, *, read: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection inside one transaction; database errors mapped to StoreErrors.

        ``read=True`` (searches, chunks, statistics) takes it from the replica when there is one.
        """
        if self._closed:
            raise StoreError(f"{self!r} is closed; open a new store")
        replica = read and self._read_pool is not None
        pool = self._read_pool if replica and self._read_pool is not None else self._pool
        location = self.read_location if replica and self.read_location else self.location
        own = self._own_read_pool if replica else self._own_pool
        try:
            with pool.connection() as conn:
                _configure_connection(conn)
                factory = conn.cursor_factory
                conn.cursor_factory = _Cursor  # a pool passed in gets its own factory back
                try:
                    with conn.transaction():
                        if self._statement_timeout is not None and not own:
                            conn.execute(
                                "SELECT set_config('statement_timeout', %s, true)",
                                (f"{int(self._statement_timeout * 1000)}ms",),
                            )
                        yield conn
                finally:
                    conn.cursor_factory = factory
        except PoolTimeout:
            raise StoreUnavailableError(
                f"no connection to Postgres at {location} within "
                f"{self._connect_timeout} s: {self._why_unreachable(pool)}"
            ) from None
        except pg_errors.LockNotAvailable:
            raise IndexLockedError(
                f"another writer held the write lock of schema {self.schema!r} at "
                f"{self.location} for more than {self._lock_timeout_ms / 1000:g} s; "
                "retry when it has finished (or raise lock_timeout)"
            ) from None
        except (pg_errors.UndefinedTable, pg_errors.InvalidSchemaName):
            raise self._missing_schema() from None
        except psycopg.Error as exc:
            # Every other driver error leaves as a StoreError, its text through the redactor.
            raise self._failure(exc, location, replica=replica) from None

    def _failure(self, exc: psycopg.Error, location: str, *, replica: bool) -> StoreError:
        """The ragkit error for a driver error, saying what to do next (never the password)."""
        where = f"Postgres at {location}"
        reason = self._redact(str(exc)) + _sqlstate(exc)
        state = exc.sqlstate or ""
        if isinstance(exc, pg_errors.QueryCanceled):
            limit = (
                f"the store's statement_timeout ({self._statement_timeout:g} s)"
                if self._statement_timeout is not None
                else "the server (its statement_timeout, or a cancel request)"
            )
            return StoreTimeoutError(
                f"a statement on schema {self.schema!r} at {location} was cancelled by "
                f"{limit}: {reason}. Nothing it did was kept; retry, or allow more time with "
                "PostgresStore(..., statement_timeout=SECONDS)"
            )
        if isinstance(exc, pg_errors.ReadOnlySqlTransaction) or "during recovery" in reason:
            return ReadOnlyStoreError(
                f"{where} only reads ({reason}): it is a replica (or in read-only mode). "
                "Writes and migrations go to the primary: open the index with the primary's "
                "URL, and give the replica as read_url="
            )
        if replica and state == "40001":
            return StoreError(
                f"the replica at {location} cancelled a read that conflicted with the WAL it "
                f"was replaying ({reason}); retry, or set hot_standby_feedback = on (or raise "
                "max_standby_streaming_delay) on the replica"
            )
        if state.startswith("53"):  # insufficient resources
            what, fix = _RESOURCES.get(state, ("out of a resource", "see the server's log"))
            return StoreError(
                f"{where} is {what} ({reason}); nothing this call did was kept (its "
                f"transaction was rolled back): {fix}, then retry"
            )
        if isinstance(exc, psycopg.OperationalError):
            if state == "57P03" or "recovery mode" in reason or "not yet accepting" in reason:
                cause = "the server is starting up or recovering from a crash: retry shortly"
            elif state in ("57P01", "57P02"):
                cause = (
                    "the server was shut down or restarted, or an administrator ended the "
                    "connection: retry once it is back"
                )
            else:
                cause = "check that the server is running and reachable, then retry"
            return StoreUnavailableError(
                f"lost the connection to {where} during a statement ({reason}); {cause}. A "
                "write is all-or-nothing: it either committed whole or left nothing, and "
                "repeating it is safe"
            )
        return StoreError(f"{where} refused a statement of schema {self.schema!r}: {reason}")

    def _why_unreachable(self, pool: ConnectionPool[Any]) -> str:
        """Why no pooled connection came: one direct attempt, its error redacted."""
        conninfo = pool.conninfo
        conninfo = conninfo if isinstance(conninfo, str) else conninfo()
        try:
            psycopg.connect(conninfo, connect_timeout=min(5, self._connect_timeout)).close()
        except psycopg.Error as exc:
            reason = self._redact(str(exc))
            if any(w in reason for w in ("recovery mode", "starting up", "not yet accepting")):
                return f"{reason}; the server is starting up or recovering: retry shortly"
            return f"{reason}; check that the server is running and reachable"
        return (
            "the server accepts connections, but every pooled connection stayed busy: "
            "raise pool_size, or retry"
        )

    def _missing_schema(self) -> SchemaError:
        return SchemaError(
            f"no ragkit schema {self.schema!r} at {self.location}: run the migration first: "
            f"{_migrate_hint(self.location, self.schema)}"
        )

    def _schema_version(self) -> int | None:
        with self._connection() as conn:
            found = conn.execute(
                "SELECT to_regclass(format('%%I.meta', %s::text)) IS NOT NULL", (self.schema,)
            ).fetchone()
            if not found or not found[0]:
                return None
            row = conn.execute(self._q("SELECT schema_version FROM {s}.meta")).fetchone()
        return int(row[0]) if row else None

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"schema {self.schema!r} at {self.location} has version {version}, newer than "
                f"this ragkit reads ({SCHEMA_VERSION}); upgrade ragkit"
            )
        if version < SCHEMA_VERSION:
            raise SchemaError(
                f"schema {self.schema!r} at {self.location} has version {version}; run the "
                "migration to upgrade it"
            )

    def _ready(self) -> None:
        if self._schema_checked:
            return
        version = self._schema_version()
        if version is None:
            raise self._missing_schema()
        self._check_version(version)
        self._schema_checked = True

    def _lock(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{self._lock_timeout_ms}ms",))
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('ragkit:' || %s::text, 0))",
            (self.schema,),
        )

    @property
    def version(self) -> str | None:
        """``None``: a database store is always current (every write is committed)."""
        return None

    def save(self, path: str | Path | None = None) -> str:  # noqa: ARG002 - Store's signature
        """Nothing to write: every write is durable when it returns. The store's location."""
        return self.location

    def replica_lag(self) -> ReplicaLag | None:
        """How far the read replica is behind the primary; ``None`` without a ``read_url``.

        Asks the replica what it has replayed, and the primary (when it answers) how much WAL
        it has written since; a primary that is down leaves ``bytes_behind`` unknown.

        Raises:
            StoreUnavailableError: the replica cannot be reached.
        """
        if self._read_pool is None:
            return None
        with self._connection(read=True) as conn:
            row = conn.execute(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
                "pg_last_xact_replay_timestamp(), clock_timestamp()"
            ).fetchone()
        assert row is not None
        in_recovery, replayed_lsn, replayed_at, now = row
        if not in_recovery:
            return ReplicaLag(False, 0.0, 0, None)
        behind: int | None = None
        try:
            with self._connection() as conn:
                diff = conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::bigint",
                    (replayed_lsn,),
                ).fetchone()
            behind = max(0, int(diff[0])) if diff and diff[0] is not None else None
        except StoreUnavailableError:
            behind = None  # the primary is down: the replica still answers reads
        if behind == 0:
            seconds: float | None = 0.0
        elif replayed_at is None:
            seconds = None
        else:
            seconds = max(0.0, (now - replayed_at).total_seconds())
        return ReplicaLag(True, seconds, behind, replayed_at)

    def close(self) -> None:
        """Close the store's own pool (a pool passed in is left open); idempotent."""
        if self._closed:
            return
        self._closed = True
        if getattr(self, "_own_pool", False):
            self._pool.close()
        if getattr(self, "_own_read_pool", False) and self._read_pool is not None:
            self._read_pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- helpers --------------------------------------------------------------------------------------


_RESOURCES: Final = {
    "53100": ("out of disk space", "free space on the server's data volume"),
    "53200": ("out of memory", "lower work_mem or the load on the server"),
    "53300": (
        "out of connections",
        "lower pool_size here, or raise max_connections on the server",
    ),
}


def _sqlstate(exc: psycopg.Error) -> str:
    """`` (SQLSTATE xxxxx)`` for an error the server sent, to look up; empty otherwise."""
    return f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
