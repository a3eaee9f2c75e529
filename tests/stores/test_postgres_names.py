"""Hostile schema names against the Postgres store's whole statement set, the rules a schema name
must follow, and a lint that keeps formatted values out of the store's SQL.

A schema name reaches SQL only as a quoted identifier (``psycopg.sql``) or a parameter: an
injection attempt becomes an odd but harmless name, and a name Postgres would truncate, or one of
its own schemas, is refused before any statement runs.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from ragkit.filters import parse_filter

from .conftest import SETTINGS, entry, unit_vectors

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("pgvector")
from ragkit.stores import open_store  # noqa: E402
from ragkit.stores.postgres import PostgresStore, check_schema_name, migrate  # noqa: E402

# The store and its parts (ragkit/stores/_pg_*.py), read as one module.
_STORES = Path(__file__).resolve().parents[2] / "ragkit" / "stores"
SOURCES = [_STORES / "postgres.py", *sorted(_STORES.glob("_pg_*.py"))]

# Each would have run SQL of its own, or broken a statement, when the name was formatted into a
# string literal or a %-parsed query (issue 14, item 1).
HOSTILE = [
    "x' || (select nextval('public.ragkit_canary'))::text || '",
    "x'); DROP TABLE public.ragkit_canary_table; --",
    'x"; DROP TABLE public.ragkit_canary_table; --',
    "%s",
    "a%b",
    "%(s)s",
    "100%",
    "semi;colon",
    "{s}",
    "back\\slash $1",
    "ünïcødé 名前",
    "a" * 63,
    "é" * 31 + "a",  # 63 bytes in UTF-8
]


@pytest.fixture
def canary(pg_url: str) -> Any:
    """A sequence an injected nextval() would advance and a table an injected DROP would drop."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP SEQUENCE IF EXISTS public.ragkit_canary")
        conn.execute("CREATE SEQUENCE public.ragkit_canary")
        conn.execute("CREATE TABLE IF NOT EXISTS public.ragkit_canary_table (x int)")
    yield
    with psycopg.connect(pg_url, autocommit=True) as conn:
        called = conn.execute("SELECT is_called FROM public.ragkit_canary").fetchone()
        table = conn.execute("SELECT to_regclass('public.ragkit_canary_table')").fetchone()
    assert called == (False,), "an injected nextval() ran"
    assert table is not None
    assert table[0] is not None, "an injected DROP TABLE ran"


def _drop(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                psycopg.sql.Identifier(schema)
            )
        )


def _schemas(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace").fetchall()
    return {row[0] for row in rows}


@pytest.mark.parametrize("name", HOSTILE)
def test_the_whole_statement_set_works_under_a_hostile_schema_name(
    pg_url: str, canary: None, name: str
) -> None:
    before = _schemas(pg_url)
    store = PostgresStore(pg_url, schema=name)
    try:
        assert store.migrate() is True
        assert store.migrate() is False
        store.configure(SETTINGS)
        store.write(
            [
                entry("a.md", ["alpha beta", "gamma delta"], {"lang": "en", "n": 1}),
                entry("b.md", ["alpha kappa"], {"lang": "de", "n": 2}),
                entry("c.md", ["zeta eta"], {"lang": "en", "n": 3}),
            ]
        )
        store.write([entry("a.md", ["alpha omega"], {"lang": "en", "n": 1})])  # replace
        store.write([], delete=["c.md"])
        where = parse_filter({"lang": "en", "n": {"$gte": 1}, "missing": {"$exists": False}})
        hits = store.keyword_search("alpha", 5, where)
        assert [h.chunk.id for h in hits] == ["a.md#0"]
        assert [h.chunk.id for h in store.keyword_search("alpha kappa", 5)] == [
            "b.md#0",
            "a.md#0",
        ]
        near = store.vector_search(unit_vectors(["alpha kappa"])[0], 1, parse_filter({"n": 2}))
        assert [h.chunk.id for h in near] == ["b.md#0"]
        assert [c.id for c in store.chunks()] == ["a.md#0", "b.md#0"]
        assert [c.id for c in store.chunks(parse_filter({"lang": "de"}))] == ["b.md#0"]
        assert store.stats().chunks == 2
        assert store.stats(parse_filter({"lang": "en"})).documents == 1
        assert set(store.document_hashes()) == {"a.md", "b.md"}
        assert store.get_chunk("b.md#0").text == "alpha kappa"
        assert store.document_frequencies(["alpha", "zeta"]) == (2, [2, 0])
        store.close()
        reopened = PostgresStore(pg_url, schema=name)
        try:
            assert reopened.settings == SETTINGS
            assert reopened.stats().documents == 2
        finally:
            reopened.close()
        # Exactly one new schema, named exactly as asked.
        assert _schemas(pg_url) - before == {name}
    finally:
        store.close()
        _drop(pg_url, name)


def test_a_hostile_name_from_the_url_opens_its_own_schema(pg_url: str, canary: None) -> None:
    from urllib.parse import quote

    name = HOSTILE[0]
    sep = "&" if "?" in pg_url else "?"
    store = open_store(f"{pg_url}{sep}ragkit_schema={quote(name)}", migrate=True)
    try:
        assert store.schema == name  # type: ignore[attr-defined]
        assert name in _schemas(pg_url)
    finally:
        store.close()
        _drop(pg_url, name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "non-empty string"),
        ("a\x00b", "NUL character"),
        ("\x00", "NUL character"),
        ("a" * 64, "64 bytes in UTF-8, more than the 63"),
        ("é" * 32, "64 bytes in UTF-8, more than the 63"),
        ("a" * 63 + "1", "64 bytes"),
        ("pg_catalog", "starts with pg_"),
        ("pg_docs", "starts with pg_"),
        ("PG_Docs", "starts with pg_"),
        ("information_schema", "is information_schema"),
        ("public", "allow_public=True"),
        ("Public", "allow_public=True"),
    ],
)
def test_bad_schema_names_are_refused_before_any_statement(
    pg_url: str, name: str, message: str
) -> None:
    before = _schemas(pg_url)
    with pytest.raises(ValueError, match=message):
        check_schema_name(name)
    with pytest.raises(ValueError, match=message):
        PostgresStore(pg_url, schema=name)
    with pytest.raises(ValueError, match=message):
        migrate(pg_url, schema=name)
    assert _schemas(pg_url) == before


def test_public_only_when_asked(pg_url: str) -> None:
    assert check_schema_name("public", allow_public=True) == "public"
    with pytest.raises(ValueError, match="allow_public=True"):
        check_schema_name("Public", allow_public=True)  # another schema than public
    store = PostgresStore(pg_url, schema="public", allow_public=True)
    try:
        assert store.schema == "public"
        assert store.settings is None  # public holds no ragkit tables
    finally:
        store.close()


def test_names_past_63_bytes_no_longer_share_a_schema(pg_url: str) -> None:
    # Postgres keeps 63 bytes: these two were one schema, the second index overwrote the first.
    for name in ("a" * 63 + "1", "a" * 63 + "2"):
        with pytest.raises(ValueError, match="more than the 63 Postgres keeps"):
            PostgresStore(pg_url, schema=name)
    sep = "&" if "?" in pg_url else "?"
    with pytest.raises(ValueError, match="more than the 63 Postgres keeps"):
        open_store(f"{pg_url}{sep}ragkit_schema={'a' * 63}1", migrate=True)
    # At 63 bytes, two names differing in the last byte are two schemas.
    names = ("b" * 62 + "1", "b" * 62 + "2")
    stores = [PostgresStore(pg_url, schema=n) for n in names]
    try:
        for store, doc in zip(stores, ("one.md", "two.md"), strict=True):
            store.migrate()
            store.configure(SETTINGS)
            store.write([entry(doc, ["alpha beta"])])
        assert [set(s.document_hashes()) for s in stores] == [{"one.md"}, {"two.md"}]
    finally:
        for store, name in zip(stores, names, strict=True):
            store.close()
            _drop(pg_url, name)


def test_the_cli_reports_a_bad_schema_name_as_a_usage_error(pg_url: str) -> None:
    from click.testing import CliRunner

    from ragkit.cli import cli

    sep = "&" if "?" in pg_url else "?"
    result = CliRunner().invoke(cli, ["migrate", "--index", f"{pg_url}{sep}ragkit_schema=pg_mine"])
    assert result.exit_code == 2
    assert "starts with pg_, which Postgres reserves" in result.output


# -- the lint: no formatted values in the store's SQL --------------------------------------------

# Calls whose first argument is SQL text.
_SINKS = {"execute", "executemany", "copy", "stream", "SQL", "_q"}
# Functions whose result is SQL text ragkit wrote, with every value in a parameter (the
# store's own query builders are linted like any other function).
_SQL_BUILDERS = {"compile_filter", "_keyword_query"}
# The store's helpers that take pieces of SQL (a compiled filter, a column list) as arguments:
# those arguments are checked at every call, and trusted inside.
_SQL_ARGUMENTS = {
    "_keyword_rows": ("columns",),
    "_vector_rows": ("columns",),
    "_keyword_query": ("condition", "columns"),
    "_seed_threshold": ("condition",),
    "_estimate": ("condition",),
}
# Functions that forward the SQL they are given (checked where they are called): the store's
# template binder and its cursor's execute/copy.
_FORWARDERS = {"_q", "execute", "copy"}


class _Function:
    """One function's view for the lint: its parameters and what each local name is assigned."""

    def __init__(self, func: ast.FunctionDef, constants: set[str]) -> None:
        self.func = func
        self.constants = constants
        self.params = {a.arg for a in func.args.args + func.args.kwonlyargs}
        self.assigned: dict[str, list[ast.expr]] = {}
        for node in ast.walk(func):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.assigned.setdefault(target.id, []).append(node.value)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                self.assigned.setdefault(node.target.id, []).append(node.value)

    def why(self, expr: ast.expr, seen: frozenset[str] = frozenset()) -> str | None:
        """None when ``expr`` is safe SQL text, else why not."""
        if isinstance(expr, ast.Constant):
            return None
        if isinstance(expr, ast.JoinedStr):
            if any(isinstance(v, ast.FormattedValue) for v in expr.values):
                return "an f-string with a value"
            return None
        if isinstance(expr, ast.BinOp):
            if isinstance(expr.op, ast.Mod):
                return "%-formatting"
            if isinstance(expr.op, ast.Add):
                return self.why(expr.left, seen) or self.why(expr.right, seen)
            return f"a {type(expr.op).__name__} expression"
        if isinstance(expr, ast.IfExp):
            return self.why(expr.body, seen) or self.why(expr.orelse, seen)
        if isinstance(expr, ast.Call):
            return self._call(expr, seen)
        if isinstance(expr, ast.Name):
            return self._name(expr.id, seen)
        return f"a {type(expr).__name__}"

    def _call(self, expr: ast.Call, seen: frozenset[str]) -> str | None:
        callee = expr.func
        if isinstance(callee, ast.Attribute) and callee.attr == "format":
            if isinstance(callee.value, ast.Constant):
                return "str.format"
            return None  # sql.SQL(...).format(...): composition
        if isinstance(callee, ast.Attribute) and callee.attr == "replace":
            return self.why(callee.value, seen)  # brace escaping of compiled SQL
        name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
        if name in _SQL_BUILDERS or name in {"SQL", "_q", "Identifier", "Literal"}:
            return None
        return f"the result of {name}()"

    def _name(self, name: str, seen: frozenset[str]) -> str | None:
        if name in self.constants:
            return None
        if name in self.params and self.func.name in _FORWARDERS:
            return None  # checked at each call of the forwarder
        if name in self.params and name in _SQL_ARGUMENTS.get(self.func.name, ()):
            return None  # checked at each call of the helper
        if name in seen or name not in self.assigned:
            return f"the variable {name!r}"
        for value in self.assigned[name]:
            why = self.why(value, seen | {name})
            if why:
                return f"{name!r} from {why}"
        return None


def _problems(tree: ast.Module) -> list[str]:
    """Where a SQL string is built from a value by an f-string, ``%`` or ``.format``, or from a
    variable that is not itself built from constants (or a filter compiled to parameters)."""
    constants = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name) and target.id.lstrip("_").isupper()
    }
    signatures = {
        func.name: [a.arg for a in func.args.args if a.arg != "self"]
        for func in ast.walk(tree)
        if isinstance(func, ast.FunctionDef) and func.name in _SQL_ARGUMENTS
    }
    found: list[str] = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef):
            continue
        view = _Function(func, constants)
        for node in ast.walk(func):
            if not isinstance(node, ast.Call):
                continue
            callee = node.func
            name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
            if name in signatures:
                given = dict(zip(signatures[name], node.args, strict=False))
                given.update((k.arg, k.value) for k in node.keywords if k.arg)
                for arg in _SQL_ARGUMENTS[name]:
                    why = view.why(given[arg]) if arg in given else None
                    if why:
                        found.append(f"line {node.lineno}: {name}({arg}=) gets SQL from {why}")
                continue
            if name not in _SINKS or not node.args:
                continue
            why = view.why(node.args[0])
            if why:
                found.append(f"line {node.lineno}: {name}() gets SQL built with {why}")
    return found


def test_no_sql_in_the_postgres_store_is_built_by_formatting_values() -> None:
    assert {p.name for p in SOURCES} >= {"postgres.py", "_pg_bm25.py", "_pg_write.py"}
    trees = [ast.parse(p.read_text(encoding="utf-8")) for p in SOURCES]
    assert _problems(ast.Module(body=[n for t in trees for n in t.body], type_ignores=[])) == []


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("def f(conn, s):\n    conn.execute(f\"SELECT nextval('{s}.keys')\")\n", "f-string"),
        ('def f(conn, s):\n    conn.execute("SET x = %s" % s)\n', "%-formatting"),
        ('def f(conn, s):\n    conn.execute("SET x = {}".format(s))\n', "str.format"),
        ("def f(self, s):\n    q = 'SELECT ' + s\n    self._q(q)\n", "variable 's'"),
        ("def f(s):\n    sql.SQL(f'SELECT {s}')\n", "f-string"),
        (
            "def _vector_rows(self, v, k, where, columns): pass\n"
            "def f(self, s):\n    self._vector_rows(1, 2, None, f'c.{s}')\n",
            "f-string",
        ),
        (
            "def _keyword_query(self, condition, filtered, columns, *, pruned): pass\n"
            "def f(self, c):\n    self._keyword_query(c, True, 'c.chunk_id', pruned=True)\n",
            "variable 'c'",
        ),
    ],
)
def test_the_lint_catches_formatted_sql(code: str, why: str) -> None:
    problems = _problems(ast.parse(code))
    assert len(problems) == 1
    assert why in problems[0]
