"""SQL text for :mod:`ragkit.stores.postgres`: schema names, the filter compiler, the cursor that
parses every statement for placeholders, the migration hint without a password, and the
conversions between rows and ragkit values.

Everything here builds SQL with values as parameters, never formatted in (the lint in
tests/stores/test_postgres_names.py reads these modules). It leaves out running statements:
the store does that.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import numpy as np
import psycopg
from psycopg import sql
from psycopg.abc import AdaptContext, Params, Query, QueryNoTemplate
from psycopg.types.json import Jsonb

from ..base import IndexSettings
from ..bm25 import Analyzer, BM25Index
from ..filters import AllOf, AnyOf, Field, Filter, Not, glob_to_regex
from ..types import Chunk
from .redaction import MASK, redact

_CHUNK_COLUMNS = (
    "c.chunk_id, c.text, c.document_id, c.start_offset, c.end_offset, c.headings, c.metadata"
)


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
    rule = "choose another schema name (PostgresStore(schema=...) or ragkit_schema= in the URL)"
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


class _StoreCore:
    """What the store's parts (keyword search, vector search, writes) use of the store, for the
    type checker; :class:`ragkit.stores.postgres.PostgresStore` defines all of it."""

    if TYPE_CHECKING:
        schema: str
        location: str
        analyzer: Analyzer
        _bm25: BM25Index
        _ident: _Name
        _sequence: str
        _terms_table: str
        _settings: IndexSettings | None
        _schema_checked: bool
        _explicit_analyzer: bool
        _state_lock: threading.Lock

        def _q(self, template: str) -> sql.Composed: ...

        def _connection(
            self, *, read: bool = False
        ) -> AbstractContextManager[psycopg.Connection[Any]]: ...

        def _ready(self) -> None: ...

        def _check_version(self, version: int) -> None: ...

        def _create_hnsw(self, conn: psycopg.Connection[Any]) -> None: ...

        def _lock(self, conn: psycopg.Connection[Any]) -> None: ...

        @property
        def settings(self) -> IndexSettings | None: ...
