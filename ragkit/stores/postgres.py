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
  scan per query term.

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

This module leaves out chunking, embedding, fusion and answering (the Index does them for every
store), and sharding: docs/postgres.md says how the schema distributes (by document ID).
"""

from __future__ import annotations

import functools
import json
import math
import re
import shlex
import threading
import warnings
import weakref
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, NamedTuple
from urllib.parse import urlencode

import numpy as np

from ..base import DocumentEntry, IndexSettings, StoreStats
from ..bm25 import Analyzer, BM25Index, okapi_idf
from ..errors import (
    ExtensionError,
    IndexLockedError,
    MissingDependencyError,
    ReadOnlyStoreError,
    SchemaError,
    SettingsMismatchError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from ..filters import AllOf, AnyOf, Field, Filter, Not, glob_to_regex
from ..types import Chunk, ScoredChunk
from .redaction import MASK, redact, redact_message, url_secrets

try:
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg import errors as pg_errors
    from psycopg import sql
    from psycopg.abc import AdaptContext, Params, Query, QueryNoTemplate
    from psycopg.types.json import Jsonb
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "the Postgres store needs the 'pg' extra: pip install 'ragkit-claude[pg]'"
    ) from exc

__all__ = [
    "SCHEMA_VERSION",
    "PostgresStore",
    "ReplicaLag",
    "check_schema_name",
    "compile_filter",
    "migrate",
    "redact_url",
]

SCHEMA_VERSION: Final = 3
"""The schema version this module creates and reads (1: up to ragkit 0.x; 2: terms carry the
bounds keyword search prunes with; 3: postings indexed by chunk, terms updated in place)."""

# HNSW build parameters (pgvector's defaults) and the per-query candidate list: at least
# _EF_SEARCH_MIN, 1.25k for larger k, and one per _CHUNKS_PER_EF chunks stored, capped at
# pgvector's maximum. pgvector's default ef_search of 40 loses neighbours at k=10, and a fixed
# ef_search loses more as the graph grows (both measured in bench/RESULTS.md).
_HNSW_M = 16
_HNSW_EF_CONSTRUCTION = 64
_EF_SEARCH_MIN = 100
_EF_SEARCH_MAX = 1000
_CHUNKS_PER_EF = 750
# A filtered vector search scans the matching chunks exactly when the planner expects at most
# _EXACT_ROWS of them; else the graph is scanned iteratively for _FILTERED_CANDIDATES (or 4k)
# matching rows, re-ranked exactly.
_EXACT_ROWS = 5_000
_FILTERED_CANDIDATES = 40
# pgvector indexes up to this many dimensions with HNSW; above it vector search scans exactly.
_HNSW_MAX_DIM = 2000
# pgvector releases: 0.8.0 brought iterative index scans (filtered vector search needs them);
# 0.8.3 fixed "possible index corruption with HNSW vacuuming" (pgvector's CHANGELOG).
_PGVECTOR_REQUIRED = (0, 8, 0)
_PGVECTOR_ADVISED = (0, 8, 3)
_warned_pgvector: set[str] = set()
# Keyword search prunes (MaxScore) when the query terms have at least this many postings, and
# seeds its threshold from the rarest terms' postings up to _SEED_POSTINGS.
_PRUNE_POSTINGS = 20_000
_SEED_POSTINGS = 20_000
# From this k on (hybrid search's depth), the pruned query joins the non-essential terms'
# postings instead of looking each candidate up (measured in bench/RESULTS.md, "Issue 13").
_JOIN_K = 100
# A write adding at least _BULK_MIN_CHUNKS chunks and _BULK_FRACTION of the stored ones is a bulk
# load: indexes are dropped and rebuilt in its transaction (docs/postgres.md, "Bulk loads"), with
# up to _BULK_MAX_MEMORY_KB of maintenance_work_mem and _BULK_PARALLEL_WORKERS workers.
_BULK_MIN_CHUNKS = 5_000
_BULK_FRACTION = 0.5
_BULK_MAX_MEMORY_KB = 2 * 1024 * 1024
_BULK_PARALLEL_WORKERS = 2
_PAGE = 1000  # chunks() fetches this many rows per round trip
_CHUNK_COLUMNS = (
    "c.chunk_id, c.text, c.document_id, c.start_offset, c.end_offset, c.headings, c.metadata"
)

# Version 1 -> 2: each term's highest tf and shortest chunk, the bound of its BM25 contribution.
# Deleting chunks leaves them as they are (still upper bounds, only looser).
_UPGRADE_1_TO_2: Final = """
ALTER TABLE {s}.terms ADD COLUMN max_tf integer NOT NULL DEFAULT 0,
    ADD COLUMN min_length integer NOT NULL DEFAULT 2147483647;
UPDATE {s}.terms t SET max_tf = x.max_tf, min_length = x.min_length
    FROM (SELECT term_id, max(tf) AS max_tf, min(length) AS min_length
          FROM {s}.postings GROUP BY term_id) x
    WHERE t.term_id = x.term_id;
UPDATE {s}.meta SET schema_version = 2;
"""

# Version 2 -> 3: a replaced chunk's postings are found by their chunk key (a few leaf pages)
# instead of one primary-key lookup per term; terms keep free space for in-place (HOT) updates
# of their statistics.
_UPGRADE_2_TO_3: Final = """
CREATE INDEX IF NOT EXISTS postings_chunk ON {s}.postings (chunk_key);
ALTER TABLE {s}.terms SET (fillfactor = 70);
UPDATE {s}.meta SET schema_version = 3;
"""

_DDL: Final = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE {s}.meta (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    schema_version integer NOT NULL,
    settings jsonb
);
CREATE TABLE {s}.stats (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    documents bigint NOT NULL DEFAULT 0,
    chunks bigint NOT NULL DEFAULT 0,
    characters bigint NOT NULL DEFAULT 0,
    total_length bigint NOT NULL DEFAULT 0
);
INSERT INTO {s}.stats DEFAULT VALUES;
CREATE TABLE {s}.documents (
    document_id text COLLATE "C" PRIMARY KEY,
    content_hash text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{{}}'
);
CREATE SEQUENCE {s}.chunk_keys AS bigint;
CREATE TABLE {s}.chunks (
    chunk_key bigint PRIMARY KEY,
    chunk_id text COLLATE "C" NOT NULL UNIQUE,
    document_id text COLLATE "C" NOT NULL
        REFERENCES {s}.documents (document_id) ON DELETE CASCADE,
    ordinal integer NOT NULL,
    text text NOT NULL,
    start_offset integer NOT NULL,
    end_offset integer NOT NULL,
    headings text[] NOT NULL,
    metadata jsonb NOT NULL,
    length integer NOT NULL,
    term_ids integer[] NOT NULL,
    term_tfs integer[] NOT NULL,
    embedding vector
);
CREATE INDEX chunks_document ON {s}.chunks (document_id, ordinal);
CREATE INDEX chunks_metadata ON {s}.chunks USING gin (metadata jsonb_path_ops);
CREATE TABLE {s}.terms (
    term_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    term text COLLATE "C" NOT NULL UNIQUE,
    df integer NOT NULL,
    max_tf integer NOT NULL DEFAULT 0,
    min_length integer NOT NULL DEFAULT 2147483647
) WITH (fillfactor = 70);
CREATE TABLE {s}.postings (
    term_id integer NOT NULL,
    chunk_key bigint NOT NULL,
    tf integer NOT NULL,
    length integer NOT NULL,
    PRIMARY KEY (term_id, chunk_key) INCLUDE (tf, length)
);
CREATE INDEX postings_chunk ON {s}.postings (chunk_key);
"""


# -- URLs and passwords ---------------------------------------------------------------------------


def _close_later(pool: ConnectionPool[Any]) -> None:
    if not pool.closed:
        threading.Thread(target=pool.close, name="ragkit-pool-close", daemon=True).start()


def redact_url(url: str) -> str:
    """``url`` (a ``postgresql://`` URL or a ``key=value`` string) with its password masked;
    the URL is not parsed, so one that does not parse is masked too
    (:func:`ragkit.stores.redaction.redact`).

    Example:
        >>> redact_url("postgresql://app:s3cret@db.example:5432/rag")
        'postgresql://app:***@db.example:5432/rag'
    """
    return redact(url)


def _migrate_hint(location: str, schema: str) -> str:
    """A command that creates ``schema`` at ``location`` (a redacted location), with no password
    in it: the CLI reads the password from PGPASSWORD or ~/.pgpass, or the whole URL from
    RAGKIT_INDEX.

    Example:
        >>> _migrate_hint("postgresql://app:***@db/rag?sslmode=require", "docs")
        "`ragkit migrate --index 'postgresql://app@db/rag?sslmode=require&ragkit_schema=docs'` \
(give the password in PGPASSWORD or ~/.pgpass, or set RAGKIT_INDEX to the full URL and run \
`ragkit migrate`), or PostgresStore(...).migrate() in Python"
    """
    python = "PostgresStore(...).migrate() in Python"
    if "://" not in location:
        return python
    url = location.replace(f":{MASK}@", "@")
    url = re.sub(rf"([?&])[^=&#\s]*={re.escape(MASK)}(&|$)", r"\1", url).rstrip("?&")
    if schema != "ragkit":
        url += ("&" if "?" in url else "?") + urlencode({"ragkit_schema": schema})
    return (
        f"`ragkit migrate --index {shlex.quote(url)}` (give the password in PGPASSWORD or "
        "~/.pgpass, or set RAGKIT_INDEX to the full URL and run `ragkit migrate`), or "
        f"{python}"
    )


# -- filters --------------------------------------------------------------------------------------


class _Params:
    """Collects named parameters for a compiled filter (``%(f0)s``, ``%(f1)s``, ...)."""

    def __init__(self, prefix: str = "f") -> None:
        self.values: dict[str, Any] = {}
        self._prefix = prefix

    def add(self, value: Any) -> str:
        name = f"{self._prefix}{len(self.values)}"
        self.values[name] = value
        return f"%({name})s"


def _storable(value: Any) -> bool:
    """Whether a scalar can be stored in jsonb (NaN, infinities and NUL characters cannot)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return "\x00" not in value
    return True


def _elements(column: str, key: str) -> str:
    """SQL for the values of ``key``: its elements when it is an array, else the value alone."""
    v = f"{column} -> {key}"
    return (
        f"jsonb_array_elements(CASE WHEN jsonb_typeof({v}) = 'array' THEN {v} "
        f"ELSE jsonb_build_array({v}) END)"
    )


def _any_equal(column: str, key: str, wanted: Sequence[Any], params: _Params) -> str:
    values = [w for w in wanted if _storable(w)]
    if not values:
        return "false"
    # {"k": w} matches a scalar equal to w, {"k": [w]} a list holding w; jsonb compares numbers
    # by value (1 = 1.0) and keeps true apart from 1, as ragkit.filters does.
    docs = [Jsonb({key: w}) for w in values] + [Jsonb({key: [w]}) for w in values]
    return f"({column} @> ANY({params.add(docs)}::jsonb[]))"


def _range(op: str, bound: Any, params: _Params) -> str | None:
    """SQL comparing one jsonb element ``e.v`` with ``bound``; ``None`` when nothing can match."""
    sym = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    if isinstance(bound, str):
        if "\x00" in bound:
            # Stored text holds no NUL: comparing with "p\0..." is comparing with "p" (s = p is
            # below the bound, so >= becomes > and < becomes <=).
            bound = bound.split("\x00", 1)[0]
            sym = {">": ">", ">=": ">", "<": "<=", "<=": "<="}[sym]
        return (
            f"CASE WHEN jsonb_typeof(e.v) = 'string' "
            f"THEN (e.v #>> '{{}}') COLLATE \"C\" {sym} {params.add(bound)}::text "
            f"ELSE false END"
        )
    if isinstance(bound, float) and math.isnan(bound):
        return None
    if isinstance(bound, float) and math.isinf(bound):
        text = "Infinity" if bound > 0 else "-Infinity"
    else:
        text = repr(bound) if isinstance(bound, float) else str(int(bound))
    return (
        f"CASE WHEN jsonb_typeof(e.v) = 'number' "
        f"THEN (e.v)::numeric {sym} {params.add(text)}::numeric ELSE false END"
    )


def compile_filter(where: Filter | None, params: _Params, column: str = "c.metadata") -> str:
    """SQL (a boolean expression over the jsonb ``column``) true exactly when
    :func:`ragkit.filters.matches` is; values go into ``params``, never into the text.

    Never NULL: ``NOT`` of it is the complement, as in Python.
    """
    if where is None:
        return "true"
    if isinstance(where, AllOf):
        if not where.parts:
            return "true"
        return "(" + " AND ".join(compile_filter(p, params, column) for p in where.parts) + ")"
    if isinstance(where, AnyOf):
        if not where.parts:
            return "false"
        return "(" + " OR ".join(compile_filter(p, params, column) for p in where.parts) + ")"
    if isinstance(where, Not):
        return f"(NOT {compile_filter(where.part, params, column)})"
    if not isinstance(where, Field):
        raise TypeError(f"where must be a ragkit filter, got {type(where).__name__}")
    key = params.add(where.key) + "::text"
    has = f"({column} ? {key})"
    op = where.op
    if op == "exists":
        return has if where.value else f"(NOT {has})"
    if op in ("eq", "ne"):
        test = _any_equal(column, where.key, (where.value,), params)
        return test if op == "eq" else f"(NOT {test})"
    if op in ("in", "nin"):
        test = _any_equal(column, where.key, where.value, params)
        return test if op == "in" else f"(NOT {test})"
    if op == "glob":
        regex = params.add(glob_to_regex(where.value))
        # Python's ``$`` also matches before a final newline; Postgres' only at the end.
        s = "(e.v #>> '{}')"
        test = (
            f"jsonb_typeof(e.v) = 'string' AND ({s} ~ {regex} "
            f"OR (right({s}, 1) = E'\\n' AND left({s}, -1) ~ {regex}))"
        )
    else:
        found = _range(op, where.value, params)
        if found is None:
            return "false"
        test = found
    return f"({has} AND EXISTS (SELECT 1 FROM {_elements(column, key)} AS e(v) WHERE {test}))"


# -- the pgvector version ----------------------------------------------------------------------


def check_pgvector_version(version: str, location: str) -> None:
    """Refuse a pgvector older than 0.8.0; warn once per location below 0.8.3.

    Raises:
        ExtensionError: ``version`` is older than 0.8.0 (or unreadable).

    Example:
        >>> check_pgvector_version("0.8.6", "postgresql://db/rag")
        >>> check_pgvector_version("0.7.4", "postgresql://db/rag")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ragkit.errors.ExtensionError: pgvector 0.7.4 at postgresql://db/rag is older than 0.8.0, ...
    """
    parts = version.split("-")[0].split(".")
    try:
        number = tuple(int(part) for part in parts)
    except ValueError:
        number = ()
    upgrade = (
        "install pgvector 0.8.3 or newer on the server, then run "
        "ALTER EXTENSION vector UPDATE in this database"
    )
    if len(number) < 2 or number < _PGVECTOR_REQUIRED:
        raise ExtensionError(
            f"pgvector {version} at {location} is older than 0.8.0, which ragkit needs for "
            f"filtered vector search (iterative index scans): {upgrade}"
        )
    if number < _PGVECTOR_ADVISED and location not in _warned_pgvector:
        _warned_pgvector.add(location)
        warnings.warn(
            f"pgvector {version} at {location} can corrupt HNSW indexes when vacuuming (fixed in "
            f"0.8.3): {upgrade}",
            UserWarning,
            stacklevel=3,
        )


def _pgvector_version(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    return str(row[0]) if row else None


# -- the store ------------------------------------------------------------------------------------


# Postgres keeps the first NAMEDATALEN - 1 bytes of an identifier and drops the rest silently.
_NAME_BYTES = 63


def check_schema_name(schema: object, *, allow_public: bool = False) -> str:
    """``schema`` if it can name a store's own Postgres schema; else ``ValueError`` saying why.

    A name is any text of 1 to 63 bytes in UTF-8 (Postgres truncates longer identifiers, so two
    long names would share one schema), without a NUL character, outside Postgres' own schemas
    (``pg_*``, ``information_schema``), and not ``public`` unless ``allow_public=True``: the
    store creates tables named ``meta``, ``chunks``, ``documents`` ... in its schema. Quotes,
    ``%``, ``;`` and non-ASCII letters are fine: the name reaches SQL only as a quoted
    identifier or a parameter.

    Raises:
        ValueError: the name breaks one of these rules (a bad argument, also when it comes from
            a URL's ``ragkit_schema=``; the CLI reports it as a usage error).

    Example:
        >>> check_schema_name("docs")
        'docs'
        >>> check_schema_name("pg_docs")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: schema name 'pg_docs' starts with pg_, ...
    """
    if not isinstance(schema, str) or not schema:
        raise ValueError(f"schema must be a non-empty string, got {schema!r}")
    rule = (
        "choose another schema name (PostgresStore(schema=...) or ragkit_schema= in the URL)"
    )
    if "\x00" in schema:
        raise ValueError(f"schema name {schema!r} contains a NUL character: {rule}")
    size = len(schema.encode("utf-8", "surrogatepass"))
    if size > _NAME_BYTES:
        raise ValueError(
            f"schema name {schema!r} is {size} bytes in UTF-8, more than the {_NAME_BYTES} "
            f"Postgres keeps (a longer name would share a schema with every name of the same "
            f"first {_NAME_BYTES} bytes): {rule}"
        )
    folded = schema.lower()
    if folded.startswith("pg_") or folded == "information_schema":
        reserved = "starts with pg_" if folded.startswith("pg_") else "is information_schema"
        raise ValueError(
            f"schema name {schema!r} {reserved}, which Postgres reserves for its own "
            f"catalogs: {rule}"
        )
    if folded == "public" and not (allow_public and schema == "public"):
        raise ValueError(
            f"schema name {schema!r}: the store would put its tables (meta, chunks, "
            f"documents, ...) beside the database's own; {rule}, or pass "
            "PostgresStore(..., schema='public', allow_public=True) to mean it"
        )
    return schema


class _Name(sql.Composable):
    """A quoted identifier whose ``%`` are doubled: every statement the store runs is parsed for
    ``%s`` placeholders (:class:`_Cursor`), so a ``%`` in a schema name must be escaped."""

    def __init__(self, *names: str) -> None:
        super().__init__(names)
        self._ident = sql.Identifier(*names)

    def as_bytes(self, context: AdaptContext | None = None) -> bytes:
        return self._ident.as_bytes(context).replace(b"%", b"%%")


class _Cursor(psycopg.Cursor[Any]):
    """The store's cursor: a statement is parsed for placeholders even without parameters, so
    ``%%`` means ``%`` in every statement (psycopg parses only when parameters are given; a
    schema name holding ``%`` would otherwise mean one thing with parameters and another
    without)."""

    def execute(  # type: ignore[override]
        self,
        query: QueryNoTemplate,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> _Cursor:
        super().execute(query, () if params is None else params, prepare=prepare, binary=binary)
        return self

    @contextmanager
    def copy(
        self, statement: Query, params: Params | None = None, **kwargs: Any
    ) -> Iterator[psycopg.Copy]:
        if not params:
            # psycopg merges COPY's parameters only when there are some: unescape %% here.
            statement = psycopg.ClientCursor(self.connection).mogrify(statement, ())
            params = None
        with super().copy(statement, params, **kwargs) as copy:
            yield copy


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


class PostgresStore:
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
        return StoreError(
            f"{where} refused a statement of schema {self.schema!r}: {reason}"
        )

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
        conn.execute(
            "SELECT set_config('lock_timeout', %s, true)", (f"{self._lock_timeout_ms}ms",)
        )
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('ragkit:' || %s::text, 0))",
            (self.schema,),
        )

    # -- migration and settings -------------------------------------------------------------------

    def migrate(self) -> bool:
        """Create the schema if it is missing (idempotent); ``True`` when it created it.

        Raises:
            SchemaError: the schema is from a newer ragkit, or the vector extension is missing
                and this user may not create it.
        """
        with self._connection() as conn:
            self._lock(conn)
            try:
                with conn.transaction():
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except (pg_errors.InsufficientPrivilege, pg_errors.FeatureNotSupported) as exc:
                raise SchemaError(
                    f"the pgvector extension is not installed in the database at "
                    f"{self.location} and this user cannot create it ({exc.diag.message_primary}); "
                    "ask an administrator to run CREATE EXTENSION vector, then migrate again"
                ) from None
            check_pgvector_version(_pgvector_version(conn) or "unknown", self.location)
            exists = conn.execute(
                "SELECT to_regclass(format('%%I.meta', %s::text)) IS NOT NULL", (self.schema,)
            ).fetchone()
            if exists and exists[0]:
                row = conn.execute(self._q("SELECT schema_version FROM {s}.meta")).fetchone()
                version = int(row[0]) if row else SCHEMA_VERSION
                if version == 1:
                    conn.execute(self._q(_UPGRADE_1_TO_2))
                    version = 2
                if version == 2:
                    conn.execute(self._q(_UPGRADE_2_TO_3))
                    version = 3
                self._check_version(version)
                created = False
            else:
                conn.execute(self._q(_DDL))
                conn.execute(
                    self._q("INSERT INTO {s}.meta (schema_version) VALUES (%s)"),
                    (SCHEMA_VERSION,),
                )
                created = True
        self._schema_checked = True
        return created

    def _read_settings(self) -> IndexSettings | None:
        with self._connection() as conn:
            row = conn.execute(self._q("SELECT settings FROM {s}.meta")).fetchone()
        if row is None or row[0] is None:
            return None
        try:
            return IndexSettings.from_dict(row[0])
        except (KeyError, TypeError) as exc:
            raise SchemaError(
                f"the settings stored in schema {self.schema!r} at {self.location} are "
                f"unreadable ({exc}); the schema was not written by ragkit"
            ) from None

    def _adopt(self, settings: IndexSettings) -> None:
        """Use ``settings``' analyzer and BM25 parameters."""
        self.analyzer, self._bm25 = self._resolve(settings)
        self._settings = settings

    def _resolve(self, settings: IndexSettings) -> tuple[Analyzer, BM25Index]:
        """The analyzer and BM25 parameters ``settings`` describe."""
        analyzer = Analyzer.from_config(settings.analyzer) if settings.analyzer else Analyzer()
        if self._explicit_analyzer and analyzer != self.analyzer:
            raise SettingsMismatchError(
                f"schema {self.schema!r} at {self.location} was indexed with {analyzer!r}, not "
                f"the {self.analyzer!r} passed in; open it without an analyzer"
            )
        bm25 = dict(settings.bm25)
        return analyzer, BM25Index(
            variant=bm25.get("variant", "lucene"),
            k1=bm25.get("k1"),
            b=bm25.get("b"),
            epsilon=bm25.get("epsilon", 0.25),
            analyzer=analyzer,
        )

    @property
    def settings(self) -> IndexSettings | None:
        """What the index was built with; ``None`` for a new (or not yet migrated) store."""
        if self._settings is None and self._schema_checked:
            settings = self._read_settings()
            if settings is not None:
                with self._state_lock:
                    self._adopt(settings)
        return self._settings

    def configure(self, settings: IndexSettings) -> None:
        """Record ``settings`` on a new store (and create the HNSW index for its dimension); on a
        used store, only a different ``source`` is accepted (and recorded).

        Raises:
            SettingsMismatchError: the store was configured with different settings.
            SchemaError: the schema is missing (run the migration).
        """
        if not isinstance(settings, IndexSettings):
            raise TypeError(f"settings must be an IndexSettings, got {type(settings).__name__}")
        self._ready()
        wanted = _normal(settings)
        resolved = self._resolve(settings)  # bad analyzer or BM25 settings fail before writing
        with self._connection() as conn:
            self._lock(conn)
            row = conn.execute(self._q("SELECT settings FROM {s}.meta FOR UPDATE")).fetchone()
            current = row[0] if row else None
            if current is not None:
                if _normal(IndexSettings.from_dict(current)) != wanted:
                    IndexSettings.from_dict(current).require_same(
                        settings, f"schema {self.schema!r} at {self.location}"
                    )
                    # only the recorded folder source differs: record the new one
                    conn.execute(self._q("UPDATE {s}.meta SET settings = %s"), (Jsonb(wanted),))
            else:
                conn.execute(
                    self._q("UPDATE {s}.meta SET settings = %s"), (Jsonb(settings.as_dict()),)
                )
                if settings.dim is not None:
                    conn.execute(
                        sql.SQL(
                            "ALTER TABLE {s}.chunks ALTER COLUMN embedding TYPE vector({dim})"
                        ).format(s=self._ident, dim=sql.Literal(settings.dim))
                    )
                    if settings.dim <= _HNSW_MAX_DIM:
                        self._create_hnsw(conn)
        with self._state_lock:
            self.analyzer, self._bm25 = resolved
            self._settings = IndexSettings.from_dict(wanted)

    # -- writes -----------------------------------------------------------------------------------

    def document_hashes(self, ids: Sequence[str] | None = None) -> Mapping[str, str]:
        """Document ID → content hash of every stored document (only of ``ids`` when given)."""
        self._ready()
        with self._connection() as conn:
            if ids is None:
                rows = conn.execute(
                    self._q("SELECT document_id, content_hash FROM {s}.documents")
                ).fetchall()
            else:
                rows = conn.execute(
                    self._q(
                        "SELECT document_id, content_hash FROM {s}.documents "
                        "WHERE document_id = ANY(%s)"
                    ),
                    (list(ids),),
                ).fetchall()
        return {doc_id: digest for doc_id, digest in rows}

    def write(self, entries: Sequence[DocumentEntry], delete: Sequence[str] = ()) -> None:
        """Add or replace ``entries`` and delete the ``delete`` documents, in one transaction.

        A replaced document's old chunks, postings and statistics go in the same transaction;
        concurrent writers on the same schema wait for each other (advisory lock).

        Raises:
            ValueError: a document is written twice or both written and deleted, vectors are
                missing or of the wrong dimension, or a text contains a NUL character.
            IndexLockedError: another writer held the lock longer than ``lock_timeout``.
        """
        if isinstance(delete, str):
            raise TypeError("delete must be a sequence of document IDs, not one string")
        entries = list(entries)
        ids = [e.document_id for e in entries]
        if len(set(ids)) != len(ids):
            dup = next(i for i, n in Counter(ids).items() if n > 1)
            raise ValueError(f"document {dup!r} appears twice in one write")
        both = set(ids) & set(delete)
        if both:
            raise ValueError(f"document {sorted(both)[0]!r} is both written and deleted")
        self._ready()
        settings = self.settings
        dim = settings.dim if settings is not None else None
        rows = self._prepare(entries, dim)
        if not rows.chunks and not delete and not entries:
            return
        with self._connection() as conn:
            self._lock(conn)
            gone = list(delete) + ids
            removed = self._remove(conn, gone) if gone else _Removed()
            bulk = bool(entries) and self._bulk_begin(conn, len(rows.chunks), dim)
            term_ids = self._update_terms(conn, rows, removed)
            if entries:
                self._insert(conn, rows, term_ids)
            added = (len(entries), len(rows.chunks), rows.characters, rows.length)
            net = [a - r for a, r in zip(added, removed.totals(), strict=True)]
            if any(net):
                conn.execute(
                    self._q(
                        "UPDATE {s}.stats SET documents = documents + %s, chunks = chunks + %s, "
                        "characters = characters + %s, total_length = total_length + %s"
                    ),
                    net,
                )
            if bulk:
                self._bulk_end(conn, dim)

    # -- bulk loads -------------------------------------------------------------------------------

    def _create_hnsw(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS chunks_embedding ON {s}.chunks "
                "USING hnsw (embedding vector_cosine_ops) "
                "WITH (m = {m}, ef_construction = {ef})"
            ).format(
                s=self._ident,
                m=sql.Literal(_HNSW_M),
                ef=sql.Literal(_HNSW_EF_CONSTRUCTION),
            )
        )

    def _bulk_begin(self, conn: psycopg.Connection[Any], n: int, dim: int | None) -> bool:
        """Whether this write of ``n`` chunks is a bulk load; if so, drop the indexes that
        row-by-row maintenance makes slow (rebuilt by :meth:`_bulk_end`, same transaction).

        A write is a bulk load when it adds at least ``_BULK_MIN_CHUNKS`` chunks and at least
        ``_BULK_FRACTION`` of the chunks already stored: building an HNSW graph over every row
        then costs less than inserting the new rows into the old graph one by one.
        """
        if n < _BULK_MIN_CHUNKS:
            return False
        row = conn.execute(self._q("SELECT chunks FROM {s}.stats")).fetchone()
        stored = int(row[0]) if row else 0
        if n < _BULK_FRACTION * stored:
            return False
        total = stored + n
        # Enough memory for the graph (vectors + neighbour lists) and the postings' sort.
        need = total * ((dim or 0) * 4 + 400) + total * 120 * 48
        kb = max(65_536, min(_BULK_MAX_MEMORY_KB, need // 1024))
        for setting in ("maintenance_work_mem", "work_mem"):  # work_mem: the postings' sort
            conn.execute(
                sql.SQL("SET LOCAL {} = {}").format(
                    sql.Identifier(setting), sql.Literal(f"{kb}kB")
                )
            )
        conn.execute(
            sql.SQL("SET LOCAL max_parallel_maintenance_workers = {}").format(
                sql.Literal(_BULK_PARALLEL_WORKERS)
            )
        )
        # A loader killed mid-load: the server notices within a second and rolls back.
        conn.execute("SET LOCAL client_connection_check_interval = 1000")
        for name in ("chunks_embedding", "chunks_metadata", "postings_chunk"):
            conn.execute(
                sql.SQL("DROP INDEX IF EXISTS {s}.{name}").format(
                    s=self._ident, name=sql.Identifier(name)
                )
            )
        conn.execute(self._q("ALTER TABLE {s}.postings DROP CONSTRAINT IF EXISTS postings_pkey"))
        return True

    def _bulk_end(self, conn: psycopg.Connection[Any], dim: int | None) -> None:
        """Rebuild what :meth:`_bulk_begin` dropped, sorted and in parallel, then ANALYZE."""
        conn.execute(
            self._q(
                "ALTER TABLE {s}.postings ADD CONSTRAINT postings_pkey "
                "PRIMARY KEY (term_id, chunk_key) INCLUDE (tf, length)"
            )
        )
        conn.execute(self._q("CREATE INDEX postings_chunk ON {s}.postings (chunk_key)"))
        conn.execute(
            self._q(
                "CREATE INDEX chunks_metadata ON {s}.chunks USING gin (metadata jsonb_path_ops)"
            )
        )
        if dim is not None and dim <= _HNSW_MAX_DIM:
            self._create_hnsw(conn)
        conn.execute(self._q("ANALYZE {s}.chunks, {s}.postings, {s}.terms"))

    def _prepare(self, entries: Sequence[DocumentEntry], dim: int | None) -> _Rows:
        """Analyse every chunk and check the vectors (outside the transaction)."""
        rows = _Rows()
        analyzer = self.analyzer
        for entry in entries:
            if not isinstance(entry, DocumentEntry):
                raise TypeError(f"entries must be DocumentEntry values, got {type(entry).__name__}")
            vectors = entry.vectors
            if vectors is not None:
                vectors = np.asarray(vectors, dtype=np.float32)
                if dim is None or vectors.ndim != 2 or vectors.shape[1] != dim:
                    raise ValueError(
                        f"document {entry.document_id!r}: vectors of shape {vectors.shape} do "
                        f"not fit this store (dimension {dim}); configure it with the embedder"
                    )
                if not np.isfinite(vectors).all():
                    raise ValueError(f"document {entry.document_id!r}: vectors are not finite")
            elif dim is not None and entry.chunks:
                raise ValueError(
                    f"document {entry.document_id!r} has no vectors, but this store holds "
                    f"{dim}-dimensional vectors for every chunk"
                )
            _check_text(entry.document_id, "document ID")
            rows.documents.append(
                (entry.document_id, entry.content_hash, _json(entry.metadata, entry.document_id))
            )
            for i, (chunk, ktext) in enumerate(zip(entry.chunks, entry.keyword_texts, strict=True)):
                if chunk.document_id != entry.document_id:
                    raise ValueError(
                        f"chunk {chunk.id!r} belongs to {chunk.document_id!r}, "
                        f"not {entry.document_id!r}"
                    )
                _check_text(chunk.id, "chunk text", chunk.text)
                tokens = analyzer(ktext)
                counts = Counter(tokens)
                rows.chunks.append(
                    (
                        chunk.id,
                        chunk.document_id,
                        i,
                        chunk.text,
                        chunk.start,
                        chunk.end,
                        list(chunk.headings),
                        _json(chunk.metadata, chunk.id),
                        len(tokens),
                        counts,
                        None if vectors is None else vectors[i],
                    )
                )
                rows.characters += len(chunk.text)
                rows.length += len(tokens)
                n_tokens = len(tokens)
                df, max_tf, min_length = rows.df, rows.max_tf, rows.min_length
                for term, tf in counts.items():
                    if term in df:
                        df[term] += 1
                        if tf > max_tf[term]:
                            max_tf[term] = tf
                        if n_tokens < min_length[term]:
                            min_length[term] = n_tokens
                    else:
                        df[term], max_tf[term], min_length[term] = 1, tf, n_tokens
        return rows

    def _remove(self, conn: psycopg.Connection[Any], document_ids: list[str]) -> _Removed:
        """Delete documents, their chunks and postings; what was removed (the terms' document
        frequencies and the statistics are settled by the caller, with the write's additions)."""
        removed = _Removed()
        found = conn.execute(
            self._q(
                "SELECT chunk_key, length, char_length(text), term_ids "
                "FROM {s}.chunks WHERE document_id = ANY(%s)"
            ),
            (document_ids,),
        ).fetchall()
        if found:
            keys = [row[0] for row in found]
            removed.chunks = len(found)
            removed.length = sum(int(row[1]) for row in found)
            removed.characters = sum(int(row[2]) for row in found)
            for row in found:
                removed.df.update(row[3])
            # Found through postings_chunk: a few leaf pages, not one lookup per term.
            conn.execute(
                self._q("DELETE FROM {s}.postings WHERE chunk_key = ANY(%s)"), (keys,)
            )
        removed.documents = conn.execute(
            self._q("DELETE FROM {s}.documents WHERE document_id = ANY(%s)"), (document_ids,)
        ).rowcount
        return removed

    def _update_terms(
        self, conn: psycopg.Connection[Any], rows: _Rows, removed: _Removed
    ) -> dict[str, int]:
        """Term → ID for every term in ``rows``, adding new terms; in one statement, document
        frequencies raised by ``rows`` and lowered by ``removed``, contribution bounds (highest
        tf, shortest chunk) widened; terms left in no chunk deleted."""
        df, max_tf, min_length = rows.df, rows.max_tf, rows.min_length
        terms = sorted(df)
        if not terms and not removed.df:
            return {}

        def columns(names: list[str]) -> tuple[list[Any], ...]:
            """Per term: name, df added, highest tf and shortest length in this write."""
            return (
                names,
                [df[t] for t in names],
                [max_tf[t] for t in names],
                [min_length[t] for t in names],
            )

        gone = sorted(removed.df)
        found = conn.execute(
            self._q(
                "WITH x AS (SELECT * FROM unnest(%s::text[], %s::int[], %s::int[], %s::int[])"
                "   AS x(term, n, tf, len)),"
                " d AS (SELECT term_id, sum(n) AS n, max(tf) AS tf, min(len) AS len FROM ("
                "   SELECT t.term_id, x.n, x.tf, x.len FROM x JOIN {s}.terms t ON t.term = x.term"
                "   UNION ALL SELECT r.term_id, -r.n, 0, 2147483647"
                "   FROM unnest(%s::int[], %s::int[]) AS r(term_id, n)) u GROUP BY term_id)"
                " UPDATE {s}.terms t SET df = t.df + d.n, max_tf = greatest(t.max_tf, d.tf),"
                " min_length = least(t.min_length, d.len)"
                " FROM d WHERE t.term_id = d.term_id RETURNING t.term, t.term_id, t.df"
            ),
            (*columns(terms), gone, [removed.df[t] for t in gone]),
        ).fetchall()
        ids: dict[str, int] = {term: term_id for term, term_id, _ in found}
        dead = [term_id for _, term_id, n in found if n <= 0]
        if dead:
            conn.execute(self._q("DELETE FROM {s}.terms WHERE term_id = ANY(%s)"), (dead,))
        new = [t for t in terms if t not in ids]
        if new:
            added = conn.execute(
                self._q(
                    "INSERT INTO {s}.terms (term, df, max_tf, min_length) "
                    "SELECT * FROM unnest(%s::text[], %s::int[], %s::int[], %s::int[]) "
                    "RETURNING term, term_id"
                ),
                columns(new),
            ).fetchall()
            ids.update(added)
        return ids

    def _insert(self, conn: psycopg.Connection[Any], rows: _Rows, ids: Mapping[str, int]) -> None:
        """COPY the documents and chunks, then derive the chunks' postings in one statement."""
        with conn.cursor() as cur:
            with cur.copy(
                self._q(
                    "COPY {s}.documents (document_id, content_hash, metadata) "
                    "FROM STDIN (FORMAT BINARY)"
                )
            ) as copy:
                copy.set_types(["text", "text", "jsonb"])
                for doc in rows.documents:
                    copy.write_row(doc)
            n = len(rows.chunks)
            if not n:
                return
            keys = [
                k
                for (k,) in cur.execute(
                    "SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
                    (self._sequence, n),
                ).fetchall()
            ]
            has_vectors = rows.chunks[0][10] is not None
            columns = (
                "chunk_key, chunk_id, document_id, ordinal, text, start_offset, end_offset, "
                "headings, metadata, length, term_ids, term_tfs"
            )
            types = [
                "int8", "text", "text", "int4", "text", "int4", "int4", "text[]", "jsonb",
                "int4", "int4[]", "int4[]",
            ]  # fmt: skip
            if has_vectors:
                columns += ", embedding"
                types.append("vector")
            with cur.copy(
                self._q("COPY {s}.chunks (" + columns + ") FROM STDIN (FORMAT BINARY)")
            ) as copy:
                copy.set_types(types)
                for key, row in zip(keys, rows.chunks, strict=True):
                    counts: Counter[str] = row[9]
                    out = [
                        key, *row[:9],
                        [ids[t] for t in counts], list(counts.values()),
                    ]  # fmt: skip
                    if has_vectors:
                        out.append(row[10])
                    copy.write_row(out)
            # In chunk order: a chunk's postings share a few heap pages, which is what a later
            # replace of the chunk deletes (queries read the primary key's index-only scans).
            cur.execute(
                self._q(
                    "INSERT INTO {s}.postings (term_id, chunk_key, tf, length) "
                    "SELECT u.term_id, c.chunk_key, u.tf, c.length "
                    "FROM {s}.chunks c, unnest(c.term_ids, c.term_tfs) AS u(term_id, tf) "
                    "WHERE c.chunk_key BETWEEN %s AND %s ORDER BY c.chunk_key"
                ),
                (keys[0], keys[-1]),
            )

    # -- searches ---------------------------------------------------------------------------------

    def keyword_search(self, text: str, k: int, where: Filter | None = None) -> list[ScoredChunk]:
        """The ``k`` best chunks by BM25 for ``text`` among chunks matching ``where``.

        Ties are broken by chunk ID; only chunks containing a query term are returned.
        """
        rows = self._keyword_rows(text, k, where, _CHUNK_COLUMNS)
        return [ScoredChunk(_chunk(row), float(row[7])) for row in rows]

    def keyword_ranking(
        self, text: str, k: int, where: Filter | None = None
    ) -> list[tuple[str, float]]:
        """:meth:`keyword_search` as ``(chunk ID, score)`` pairs: no chunk row is read."""
        return [(row[0], float(row[1])) for row in self._keyword_rows(text, k, where, "c.chunk_id")]

    def _keyword_rows(
        self, text: str, k: int, where: Filter | None, columns: str
    ) -> list[tuple[Any, ...]]:
        """The best ``k`` rows (``columns``, then the score) for ``text``, best first."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        k = _check_k(k)
        self._ready()
        self.settings  # noqa: B018 - adopts the stored analyzer and BM25 parameters
        tokens = self.analyzer(text)
        if not tokens:
            return []
        counts = Counter(tokens)  # first-appearance order, as BM25Index accumulates
        bm25 = self._bm25
        params = _Params()
        condition = compile_filter(where, params)
        with self._connection(read=True) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            found = conn.execute(
                self._q(
                    "SELECT s.chunks, s.total_length, t.term, t.term_id, t.df, t.max_tf, "
                    "t.min_length FROM {s}.stats s "
                    "LEFT JOIN {s}.terms t ON t.term = ANY(%s) AND t.df > 0"
                ),
                (list(counts),),
            ).fetchall()
            if not found:
                return []
            n_docs, total = int(found[0][0]), int(found[0][1])
            by_term = {row[2]: row[3:] for row in found if row[2] is not None}
            if n_docs == 0 or total == 0 or not by_term:
                return []
            okapi = bm25.variant == "okapi"
            avgdl = total / n_docs
            values: dict[str, Any] = {
                "k1p1": bm25.k1 + 1 if okapi else 1.0,
                "k1": bm25.k1,
                "omb": 1 - bm25.b,
                "b": bm25.b,
                "avgdl": avgdl,
                "k": k,
                **params.values,
            }
            terms: list[_QueryTerm] = []
            average: list[float] = []  # okapi's mean idf, fetched once if a term needs it
            for term, count in counts.items():
                if term not in by_term:
                    continue
                term_id, df, max_tf, min_length = (int(v) for v in by_term[term])
                # A repeated query term counts again, as in BM25Index.
                w = self._idf(conn, df, n_docs, average) * count
                f_max = (max_tf * values["k1p1"]) / (
                    bm25.k1 * (values["omb"] + bm25.b * min_length / avgdl) + max_tf
                )
                terms.append(_QueryTerm(term_id, w, df, w * f_max))
            seed = _seed_terms(terms)
            plan = None
            if seed:
                theta = self._seed_threshold(conn, seed, condition, where is not None, values)
                plan = _split(terms, theta)
            if plan is None:
                return list(
                    conn.execute(
                        self._keyword_query(condition, where is not None, columns, pruned=False),
                        {
                            "ids": [t.term_id for t in terms],
                            "w": [t.weight for t in terms],
                            **values,
                        },
                    ).fetchall()
                )
            essential, bound, theta = plan
            join = k >= _JOIN_K
            return list(
                conn.execute(
                    self._keyword_query(
                        condition, where is not None, columns, pruned=True, join=join
                    ),
                    {
                        "ids": [t.term_id for t in terms],
                        "w": [t.weight for t in terms],
                        "ess": [t.term_id in essential for t in terms],
                        "ubn": bound,
                        "theta": theta,
                        "m": max(4 * k, 40),
                        "margin": 1 - 1e-9,
                        **values,
                    },
                ).fetchall()
            )

    def _keyword_query(
        self, condition: str, filtered: bool, columns: str, *, pruned: bool, join: bool = False
    ) -> sql.Composed:
        """BM25 over the postings of the query terms (all of them, or MaxScore-pruned).

        Pruned (MaxScore, Turtle & Flood 1995): the postings of the essential terms are read in
        full; a chunk among them whose partial score plus the non-essential terms' bound
        (``ubn``) reaches ``theta`` gets the non-essential contributions by index lookups. A
        chunk with no essential term scores at most ``ubn`` < ``theta``, below the k-th.
        """
        contrib = (
            "((p.tf * %(k1p1)s) / (%(k1)s * (%(omb)s + %(b)s * p.length / %(avgdl)s) + p.tf))"
            " * q.w"
        )
        if pruned:
            rest = (
                "coalesce((SELECT sum(" + contrib + ") FROM q JOIN {s}.postings p"
                " ON p.term_id = q.term_id AND p.chunk_key = {key} WHERE NOT q.ess), 0)"
            )
            matching = (
                " AND EXISTS (SELECT 1 FROM {s}.chunks c WHERE c.chunk_key = e.chunk_key AND "
                + condition.replace("{", "{{").replace("}", "}}") + ")"
                if filtered else ""
            )  # fmt: skip
            scored = (
                " q AS (SELECT * FROM unnest(%(ids)s::int[], %(w)s::float8[], %(ess)s::bool[])"
                "   AS q(term_id, w, ess)),"
                " e AS MATERIALIZED (SELECT p.chunk_key, sum(" + contrib + ") AS part"
                "   FROM q JOIN {s}.postings p ON p.term_id = q.term_id WHERE q.ess"
                "   GROUP BY p.chunk_key HAVING sum(" + contrib + ") + %(ubn)s >= %(theta)s),"
                # A better threshold: the k-th full score among the best partial scores.
                " probe AS (SELECT e.part + " + rest.replace("{key}", "e.chunk_key") + " AS score"
                "   FROM (SELECT * FROM e WHERE true" + matching + ""
                "         ORDER BY e.part DESC LIMIT %(m)s) e),"
                " th AS (SELECT greatest(%(theta)s, coalesce((SELECT score FROM probe"
                "   ORDER BY score DESC OFFSET %(k)s - 1 LIMIT 1), 0) * %(margin)s) AS t),"
            )  # fmt: skip
            if join:
                # Many candidates: read the other terms' postings once and join, instead of
                # one index lookup per candidate and term.
                scored += (
                    " c AS MATERIALIZED (SELECT e.chunk_key, e.part FROM e"
                    "   WHERE e.part + %(ubn)s >= (SELECT t FROM th)),"
                    " r AS (SELECT p.chunk_key, sum(" + contrib + ") AS part"
                    "   FROM q JOIN {s}.postings p ON p.term_id = q.term_id"
                    "   WHERE NOT q.ess AND p.chunk_key IN (SELECT chunk_key FROM c)"
                    "   GROUP BY p.chunk_key),"
                    " s AS (SELECT c.chunk_key, c.part + coalesce(r.part, 0) AS score"
                    "   FROM c LEFT JOIN r USING (chunk_key)),"
                )  # fmt: skip
            else:
                scored += (
                    " s AS (SELECT e.chunk_key, e.part + " + rest.replace("{key}", "e.chunk_key")
                    + "   AS score FROM e WHERE e.part + %(ubn)s >= (SELECT t FROM th)),"
                )  # fmt: skip
        else:
            scored = (
                " q AS (SELECT * FROM unnest(%(ids)s::int[], %(w)s::float8[]) AS q(term_id, w)),"
                " s AS (SELECT p.chunk_key, sum(" + contrib + ") AS score"
                "   FROM q JOIN {s}.postings p ON p.term_id = q.term_id GROUP BY p.chunk_key),"
            )
        if filtered:
            scored += (
                " f AS (SELECT s.chunk_key, s.score FROM s JOIN {s}.chunks c USING (chunk_key)"
                " WHERE " + condition.replace("{", "{{").replace("}", "}}") + "),"
            )
        else:
            scored += " f AS (SELECT chunk_key, score FROM s),"
        return self._q(
            "WITH" + scored +
            " top AS (SELECT score FROM f ORDER BY score DESC LIMIT %(k)s)"
            # The k best and the ties at the k-th score, each chunk fetched by its key.
            " SELECT " + columns + ", f.score"
            " FROM (SELECT * FROM f WHERE score >= (SELECT min(score) FROM top)) f"
            " CROSS JOIN LATERAL (SELECT * FROM {s}.chunks c"
            "   WHERE c.chunk_key = f.chunk_key) c"
            " ORDER BY f.score DESC, c.chunk_id LIMIT %(k)s"
        )  # fmt: skip

    def _seed_threshold(
        self,
        conn: psycopg.Connection[Any],
        seed: Sequence[_QueryTerm],
        condition: str,
        filtered: bool,
        values: Mapping[str, Any],
    ) -> float:
        """A lower bound of the k-th best score: the k-th best partial score over ``seed``'s
        postings (contributions are positive, so a partial score is at most the full one)."""
        query = (
            "WITH q AS (SELECT * FROM unnest(%(ids)s::int[], %(w)s::float8[]) AS q(term_id, w)),"
            " s AS (SELECT p.chunk_key, sum("
            "   ((p.tf * %(k1p1)s) / (%(k1)s * (%(omb)s + %(b)s * p.length / %(avgdl)s) + p.tf))"
            "   * q.w) AS score"
            "   FROM q JOIN {s}.postings p ON p.term_id = q.term_id GROUP BY p.chunk_key)"
        )
        if filtered:
            query += (
                " SELECT s.score FROM s JOIN {s}.chunks c USING (chunk_key) WHERE "
                + condition.replace("{", "{{").replace("}", "}}")
            )
        else:
            query += " SELECT s.score FROM s"
        query += " ORDER BY 1 DESC OFFSET %(k)s - 1 LIMIT 1"
        ids, weights = [t.term_id for t in seed], [t.weight for t in seed]
        row = conn.execute(self._q(query), {**values, "ids": ids, "w": weights}).fetchone()
        return float(row[0]) if row else 0.0

    def _idf(
        self, conn: psycopg.Connection[Any], df: int, n_docs: int, average: list[float]
    ) -> float:
        bm25 = self._bm25
        if bm25.variant != "okapi":
            return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
        idf = okapi_idf(df, n_docs)
        if idf >= 0:
            return idf
        if not average:
            # rank_bm25's floor: epsilon x the mean idf over the vocabulary, summed by df as
            # BM25Index does (math.fsum of count x idf per distinct df).
            hist = conn.execute(
                self._q("SELECT df, count(*) FROM {s}.terms WHERE df > 0 GROUP BY df")
            ).fetchall()
            values = np.array([h[0] for h in hist], dtype=np.int64)
            counts = np.array([h[1] for h in hist], dtype=np.int64)
            order = np.argsort(values)
            values, counts = values[order], counts[order]
            idfs = np.log(n_docs - values + 0.5) - np.log(values + 0.5)
            total = math.fsum((counts * idfs).tolist())
            average.append(total / max(1, int(counts.sum())))
        return bm25.epsilon * average[0]

    def vector_search(
        self, vector: np.ndarray, k: int, where: Filter | None = None
    ) -> list[ScoredChunk]:
        """The ``k`` nearest chunks by cosine among chunks matching ``where`` (HNSW).

        A filter expected to match few chunks is answered by an exact scan of them; else the
        HNSW graph is scanned iteratively for a few times ``k`` matching candidates, re-ranked
        exactly (and an exact scan answers if the graph yields fewer than ``k``). Scores are
        cosine similarities; ties are broken by chunk ID.
        """
        rows = self._vector_rows(vector, k, where, _CHUNK_COLUMNS)
        out = [ScoredChunk(_chunk(row), 1.0 - float(row[7])) for row in rows]
        out.sort(key=lambda sc: (-sc.score, sc.chunk.id))
        return out

    def vector_ranking(
        self, vector: np.ndarray, k: int, where: Filter | None = None
    ) -> list[tuple[str, float]]:
        """:meth:`vector_search` as ``(chunk ID, score)`` pairs: no text or metadata is read."""
        rows = self._vector_rows(vector, k, where, "c.chunk_id")
        out = [(str(row[0]), 1.0 - float(row[1])) for row in rows]
        out.sort(key=lambda p: (-p[1], p[0]))
        return out

    def _vector_rows(
        self, vector: np.ndarray, k: int, where: Filter | None, columns: str
    ) -> list[tuple[Any, ...]]:
        """The nearest ``k`` rows (``columns``, then the cosine distance)."""
        k = _check_k(k)
        self._ready()
        settings = self.settings
        if settings is None or settings.dim is None:
            return []
        query = np.asarray(vector, dtype=np.float32)
        if query.shape != (settings.dim,):
            raise ValueError(
                f"vector has shape {query.shape}, this store holds {settings.dim}-d vectors"
            )
        if not np.isfinite(query).all():
            raise ValueError("vector must be finite")
        params = _Params()
        condition = compile_filter(where, params).replace("{", "{{").replace("}", "}}")
        values = {"v": query, "k": k, **params.values}
        with self._connection(read=True) as conn:
            # The candidate list grows with the store: HNSW's recall falls as the graph grows
            # at a fixed ef_search (bench/RESULTS.md, "Vector recall").
            conn.execute(
                self._q(
                    "SELECT set_config('hnsw.ef_search', least(%s, greatest(%s, "
                    "(SELECT chunks FROM {s}.stats) / %s))::text, true)"
                ),
                (_EF_SEARCH_MAX, max(_EF_SEARCH_MIN, k + k // 4), _CHUNKS_PER_EF),
            )
            exact = (
                "SELECT " + columns + ", c.embedding <=> %(v)s::vector AS d "
                "FROM {s}.chunks c WHERE c.embedding IS NOT NULL AND " + condition + " "
                "ORDER BY (c.embedding <=> %(v)s::vector) + 0, c.chunk_id LIMIT %(k)s"
            )  # the + 0 keeps the planner off the index: an exact scan of the matching rows
            rows: list[tuple[Any, ...]] = []
            if where is None:
                # Unfiltered, the graph is always the faster path; the planner's estimate for a
                # large k over wide (TOASTed) rows can prefer a sequential scan and a sort.
                conn.execute("SET LOCAL enable_seqscan = off")
                rows = conn.execute(
                    self._q(
                        "SELECT " + columns + ", c.embedding <=> %(v)s::vector AS d "
                        "FROM {s}.chunks c WHERE c.embedding IS NOT NULL "
                        "ORDER BY c.embedding <=> %(v)s::vector LIMIT %(k)s"
                    ),
                    values,
                ).fetchall()
            elif self._estimate(conn, condition, values) > _EXACT_ROWS:
                # Iterative scan in relaxed order, a few times k candidates re-ranked exactly:
                # the first k found are not always the k nearest matching.
                conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                rows = conn.execute(
                    self._q(
                        "WITH r AS MATERIALIZED (SELECT " + columns + ", "
                        "c.embedding <=> %(v)s::vector AS d FROM {s}.chunks c "
                        "WHERE c.embedding IS NOT NULL AND " + condition + " "
                        "ORDER BY c.embedding <=> %(v)s::vector LIMIT %(m)s) "
                        "SELECT * FROM r ORDER BY r.d + 0, r.chunk_id LIMIT %(k)s"
                    ),
                    {**values, "m": max(_FILTERED_CANDIDATES, 4 * k)},
                ).fetchall()
            if len(rows) < k:
                # Few matching rows, or the graph returned too few: the matching rows exactly.
                rows = conn.execute(self._q(exact), values).fetchall()
        return rows

    def _estimate(
        self, conn: psycopg.Connection[Any], condition: str, values: Mapping[str, Any]
    ) -> float:
        """The planner's estimate of the chunks matching ``condition`` (no rows are read)."""
        row = conn.execute(
            self._q(
                "EXPLAIN (FORMAT JSON) SELECT 1 FROM {s}.chunks c "
                "WHERE c.embedding IS NOT NULL AND " + condition
            ),
            values,
        ).fetchone()
        return float(row[0][0]["Plan"]["Plan Rows"]) if row else math.inf

    # -- reading ----------------------------------------------------------------------------------

    def chunks(self, where: Filter | None = None) -> Iterator[Chunk]:
        """Every chunk (matching ``where``), by document ID, then position; fetched in pages."""
        self._ready()
        params = _Params()
        condition = compile_filter(where, params).replace("{", "{{").replace("}", "}}")
        query = self._q(
            "SELECT " + _CHUNK_COLUMNS + ", c.ordinal FROM {s}.chunks c "
            "WHERE (c.document_id, c.ordinal) > (%(doc)s, %(ord)s) AND " + condition + " "
            "ORDER BY c.document_id, c.ordinal LIMIT %(page)s"
        )
        last: tuple[str, int] = ("", -1)
        while True:
            with self._connection(read=True) as conn:
                rows = conn.execute(
                    query, {"doc": last[0], "ord": last[1], "page": _PAGE, **params.values}
                ).fetchall()
            for row in rows:
                yield _chunk(row)
            if len(rows) < _PAGE:
                return
            last = (rows[-1][2], int(rows[-1][7]))

    def get_chunk(self, chunk_id: str) -> Chunk:
        """The chunk with this ID; ``KeyError`` when there is none."""
        self._ready()
        with self._connection(read=True) as conn:
            row = conn.execute(
                self._q("SELECT " + _CHUNK_COLUMNS + " FROM {s}.chunks c WHERE c.chunk_id = %s"),
                (chunk_id,),
            ).fetchone()
        if row is None:
            raise KeyError(chunk_id)
        return _chunk(row)

    def document_vectors(self, document_id: str) -> tuple[tuple[Chunk, ...], np.ndarray] | None:
        """A stored document's chunks in order and their vectors; ``None`` without vectors."""
        self._ready()
        with self._connection() as conn:
            rows = conn.execute(
                self._q(
                    "SELECT " + _CHUNK_COLUMNS + ", c.embedding FROM {s}.chunks c "
                    "WHERE c.document_id = %s ORDER BY c.ordinal"
                ),
                (document_id,),
            ).fetchall()
        if not rows or any(row[-1] is None for row in rows):
            return None
        vectors = np.stack([_array(row[-1]) for row in rows])
        return tuple(_chunk(row) for row in rows), vectors

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these IDs, in that order (one query); ``KeyError`` for an unknown ID."""
        self._ready()
        ids = list(chunk_ids)
        if not ids:
            return []
        with self._connection(read=True) as conn:
            rows = conn.execute(
                self._q(
                    "SELECT " + _CHUNK_COLUMNS + " FROM {s}.chunks c WHERE c.chunk_id = ANY(%s)"
                ),
                (ids,),
            ).fetchall()
        found = {row[0]: _chunk(row) for row in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(missing[0])
        return [found[i] for i in ids]

    def stats(self, where: Filter | None = None) -> StoreStats:
        """Documents, chunks and characters (of chunks matching ``where``)."""
        self._ready()
        with self._connection(read=True) as conn:
            if where is None:
                row = conn.execute(
                    self._q("SELECT documents, chunks, characters FROM {s}.stats")
                ).fetchone()
            else:
                params = _Params()
                condition = compile_filter(where, params).replace("{", "{{").replace("}", "}}")
                row = conn.execute(
                    self._q(
                        "SELECT count(DISTINCT c.document_id), count(*), "
                        "coalesce(sum(char_length(c.text)), 0) FROM {s}.chunks c WHERE " + condition
                    ),
                    params.values,
                ).fetchone()
        documents, chunks, characters = row if row else (0, 0, 0)
        return StoreStats(int(documents), int(chunks), int(characters))

    def document_frequencies(self, terms: Sequence[str]) -> tuple[int, list[int]]:
        """The number of chunks and, per analysed term, how many chunks contain it."""
        self._ready()
        terms = list(terms)
        with self._connection(read=True) as conn:
            rows = conn.execute(
                self._q(
                    "SELECT s.chunks, t.term, t.df FROM {s}.stats s "
                    "LEFT JOIN {s}.terms t ON t.term = ANY(%s)"
                ),
                (terms,),
            ).fetchall()
        n = int(rows[0][0]) if rows else 0
        df = {row[1]: int(row[2]) for row in rows if row[1] is not None}
        return n, [df.get(t, 0) for t in terms]

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


class _Removed:
    """What a write removed: documents, chunks, their lengths and characters, and per term ID
    the number of removed chunks holding it."""

    __slots__ = ("characters", "chunks", "df", "documents", "length")

    def __init__(self) -> None:
        self.documents = 0
        self.chunks = 0
        self.characters = 0
        self.length = 0
        self.df: Counter[int] = Counter()

    def totals(self) -> tuple[int, int, int, int]:
        """Documents, chunks, characters, analysed length: the statistics' columns."""
        return (self.documents, self.chunks, self.characters, self.length)


class _Rows:
    """A write's rows, analysed before the transaction starts."""

    __slots__ = ("characters", "chunks", "df", "documents", "length", "max_tf", "min_length")

    def __init__(self) -> None:
        self.documents: list[tuple[str, str, Jsonb]] = []
        self.chunks: list[tuple[Any, ...]] = []
        self.df: dict[str, int] = {}
        self.max_tf: dict[str, int] = {}
        self.min_length: dict[str, int] = {}
        self.characters = 0
        self.length = 0


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

class _QueryTerm(NamedTuple):
    """A query term: its ID, weight (idf x repeats), df and upper bound of its contribution."""

    term_id: int
    weight: float
    df: int
    bound: float


def _seed_terms(terms: Sequence[_QueryTerm]) -> list[_QueryTerm]:
    """The terms whose postings seed the pruning threshold; none when pruning cannot pay.

    Pruning needs positive weights (okapi's floored idf can be 0) and at least two terms; below
    ``_PRUNE_POSTINGS`` postings one exhaustive statement is cheaper. The seed is the terms of
    highest bound (the rarest, mostly) up to ``_SEED_POSTINGS`` postings, at least one term.
    """
    if len(terms) < 2 or any(t.weight <= 0 for t in terms):
        return []
    if sum(t.df for t in terms) < _PRUNE_POSTINGS:
        return []
    order = sorted(terms, key=lambda t: -t.bound)
    seed, read = [order[0]], order[0].df
    for term in order[1:]:
        if read + term.df > _SEED_POSTINGS:
            break
        seed.append(term)
        read += term.df
    return seed


def _split(terms: Sequence[_QueryTerm], theta: float) -> tuple[set[int], float, float] | None:
    """MaxScore's split for a threshold: (essential term IDs, the other terms' summed bound,
    the threshold less a rounding margin); ``None`` when every term is essential."""
    if theta <= 0:
        return None
    theta *= 1 - 1e-9  # scores and bounds are rounded differently: never prune a tie
    bound, rest = 0.0, set()
    for term in sorted(terms, key=lambda t: t.bound):
        if bound + term.bound >= theta:
            break
        bound += term.bound
        rest.add(term.term_id)
    if not rest:
        return None
    return {t.term_id for t in terms} - rest, bound, theta


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k ({k}) must be >= 1")
    return int(k)


def _check_text(where: str, what: str, text: str | None = None) -> None:
    if "\x00" in where or (text is not None and "\x00" in text):
        raise ValueError(f"{where!r}: {what} contains a NUL character, which Postgres cannot store")


def _json(metadata: Mapping[str, Any], owner: str) -> Jsonb:
    def dumps(obj: Any) -> str:
        try:
            return json.dumps(obj, allow_nan=False, ensure_ascii=False)
        except ValueError:
            raise ValueError(
                f"{owner!r}: metadata holds NaN or an infinity, which JSON cannot store"
            ) from None

    data = dict(metadata)
    text = dumps(data)
    if "\\u0000" in text:
        raise ValueError(
            f"{owner!r}: metadata contains a NUL character, which Postgres cannot store"
        )
    return Jsonb(data, dumps=lambda _obj: text)


def _array(value: Any) -> np.ndarray:
    """A stored embedding as float32 (pgvector's adapter gives a ``Vector`` or an array)."""
    data = value.to_numpy() if hasattr(value, "to_numpy") else value
    return np.asarray(data, dtype=np.float32)


def _chunk(row: Sequence[Any]) -> Chunk:
    return Chunk(
        id=row[0],
        text=row[1],
        document_id=row[2],
        start=row[3],
        end=row[4],
        headings=tuple(row[5]),
        metadata=row[6],
    )


def _normal(settings: IndexSettings) -> dict[str, Any]:
    """Settings as plain JSON values, so stored and requested settings compare equal."""
    data: dict[str, Any] = json.loads(json.dumps(settings.as_dict()))
    return data
