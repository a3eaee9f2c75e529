"""Passwords never leave the Postgres store: masked without parsing the URL, in every error the
store raises, in the CLI's one-line error, and in the migration hint (a command that works)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from hypothesis import assume, given
from hypothesis import strategies as st

from ragkit.errors import RagkitError, SchemaError, StoreError, StoreUnavailableError
from ragkit.stores.redaction import redact, redact_message, url_secrets

from .conftest import SETTINGS, entry

_PASSWORD = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=("Cs",)),
    min_size=6,
    max_size=40,
).filter(lambda p: p.strip() == p and not any(c.isspace() for c in p))


@given(_PASSWORD)
def test_a_url_password_is_masked_whatever_it_holds(password: str) -> None:
    for url in (
        f"postgresql://app:{password}@db.example/rag",  # as typed, parseable or not
        f"postgresql://app:{quote(password, safe='')}@db.example/rag",
        f"postgresql://db.example/rag?sslmode=require&password={quote(password, safe='')}",
    ):
        shown = redact(url)
        assume(password not in "postgresql://app:***@db.example/rag?sslmode=require&password=")
        assert password not in shown
        assert quote(password, safe="") not in shown
        # A driver message quoting any token of the URL loses the password too.
        message = f'invalid percent-encoded token: "{password}"\n{url}'
        assert password not in redact_message(message, url_secrets(url))


@given(_PASSWORD)
def test_a_libpq_string_password_is_masked(password: str) -> None:
    escaped = password.replace("\\", "\\\\").replace("'", "\\'")
    conninfo = f"host=db user=app password='{escaped}' dbname=rag"
    assume(password not in "host=db user=app password=*** dbname=rag")
    assert password not in redact(conninfo)
    assert password not in redact_message(f"bad: {password}", url_secrets(conninfo))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragkit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_cli_hides_a_password_the_url_parser_rejects() -> None:
    # libpq cannot decode %zz: the old message ended in a traceback quoting the password.
    result = _cli("search", "x", "--index", "postgresql://u:Sup3r%zzSecr3t@host/db")
    assert result.returncode == 1
    assert "Sup3r" not in result.stdout + result.stderr
    assert "Secr3t" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: cannot use the Postgres URL postgresql://u:***@host/db")
    assert "percent-encode" in lines[0]


def test_the_cli_hides_the_password_of_a_reachable_server(pg_url: str) -> None:
    url = pg_url.replace("postgres:@", "postgres:s3cret-pw@")
    sep = "&" if "?" in url else "?"
    result = _cli("search", "x", "--index", f"{url}{sep}ragkit_schema=nothing_here")
    assert result.returncode == 1
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_migration_hint_is_a_command_that_works_and_shows_no_password(
    pg_url: str, pg_schema: str
) -> None:
    pytest.importorskip("psycopg")
    from ragkit.cli import cli
    from ragkit.stores.postgres import PostgresStore

    # The bundled server trusts local connections: a password is accepted and ignored.
    url = pg_url.replace("postgres:@", "postgres:s3cret-pw@")
    store = PostgresStore(url, schema=pg_schema)
    try:
        with pytest.raises(SchemaError, match="run the migration first") as missing:
            store.stats()
    finally:
        store.close()
    message = str(missing.value)
    assert "s3cret-pw" not in message
    command = re.search(r"`(ragkit migrate --index [^`]+)`", message)
    assert command is not None, message
    argv = shlex.split(command.group(1))
    assert argv[:3] == ["ragkit", "migrate", "--index"]
    result = CliRunner().invoke(cli, argv[1:], env={"PGPASSWORD": "s3cret-pw"})
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.output
    again = PostgresStore(url, schema=pg_schema)
    try:
        again.configure(SETTINGS)
        again.write([entry("a.md", ["alpha"])])
        assert again.stats().documents == 1
    finally:
        again.close()


def test_every_driver_error_leaves_as_a_store_error(pg_url: str, pg_schema: str) -> None:
    pytest.importorskip("psycopg")
    from ragkit.stores.postgres import PostgresStore

    url = pg_url.replace("postgres:@", "postgres:s3cret-pw@")
    store = PostgresStore(url, schema=pg_schema)
    try:
        store.migrate()
        store.configure(SETTINGS)
        # A NUL in a parameter: psycopg refuses it (a DataError, not an OperationalError).
        with pytest.raises(StoreError, match="refused a statement") as refused:
            store.get_chunk("a\x00b")
        assert isinstance(refused.value, RagkitError)
        assert refused.value.__cause__ is None
        assert refused.value.__suppress_context__
        assert "s3cret-pw" not in str(refused.value)
    finally:
        store.close()


def test_an_unparsable_url_is_a_store_error_without_its_password() -> None:
    pytest.importorskip("psycopg")
    from ragkit.stores.postgres import PostgresStore

    with pytest.raises(StoreUnavailableError, match="cannot use the Postgres URL") as err:
        PostgresStore("postgresql://u:Sup3r%zzSecr3t@host/db")
    assert "Secr3t" not in str(err.value)
    assert err.value.__cause__ is None
    assert err.value.__suppress_context__
