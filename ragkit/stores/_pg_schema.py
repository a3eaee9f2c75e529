"""The Postgres store's schema: its DDL, the in-place upgrades from older versions, the HNSW
build parameters, and the pgvector versions it accepts.

It leaves out running the migration (:meth:`ragkit.stores.postgres.PostgresStore.migrate`
does, under the write lock). docs/postgres.md describes the tables and what each version
changed.
"""

from __future__ import annotations

import json
import warnings
from typing import Any, Final

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.types.json import Jsonb

from ..base import IndexSettings
from ..bm25 import Analyzer, BM25Index
from ..errors import (
    ExtensionError,
    SchemaError,
    SettingsMismatchError,
)
from ._pg_sql import _StoreCore

SCHEMA_VERSION: Final = 3
"""The schema version this module creates and reads (1: up to ragkit 0.x; 2: terms carry the
bounds keyword search prunes with; 3: postings indexed by chunk, terms updated in place)."""

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


# HNSW build parameters (pgvector's defaults).
_HNSW_M = 16
_HNSW_EF_CONSTRUCTION = 64
# pgvector indexes up to this many dimensions with HNSW; above it vector search scans exactly.
_HNSW_MAX_DIM = 2000
# pgvector releases: 0.8.0 brought iterative index scans (filtered vector search needs them);
# 0.8.3 fixed "possible index corruption with HNSW vacuuming" (pgvector's CHANGELOG).
_PGVECTOR_REQUIRED = (0, 8, 0)
_PGVECTOR_ADVISED = (0, 8, 3)


_warned_pgvector: set[str] = set()


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


def _normal(settings: IndexSettings) -> dict[str, Any]:
    """Settings as plain JSON values, so stored and requested settings compare equal."""
    data: dict[str, Any] = json.loads(json.dumps(settings.as_dict()))
    return data


class _Schema(_StoreCore):
    """The store's migration and settings."""

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
        except (KeyError, TypeError, ValueError) as exc:
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
