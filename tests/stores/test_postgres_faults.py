"""Postgres under faults: a restart, killed backends, a crash (recovery mode), a stopped server,
statement timeouts, a full disk and a read-only server. Each is a ragkit error that says what to
do next, never a raw driver error; the first search after a restart works; an interrupted write
leaves the store as it was.

The shared session server (``pg_url``) only sees its backends terminated; stopping, restarting
and crashing happen on a server of this module's own (tests/stores/pg_servers.py).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ragkit.errors import (
    ReadOnlyStoreError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)

from .conftest import SETTINGS, entry

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("pgvector")
from psycopg_pool import ConnectionPool  # noqa: E402

from ragkit.stores.postgres import PostgresStore  # noqa: E402

from .pg_servers import Cluster, own_cluster  # noqa: E402
from .test_postgres import consistency  # noqa: E402

DOCS = [
    entry("a.md", ["alpha beta gamma"], {"lang": "en"}),
    entry("b.md", ["beta delta"], {"lang": "de"}),
    entry("c.md", ["gamma epsilon"], {"lang": "en"}),
]


def _filled(url: str, schema: str, **options: Any) -> PostgresStore:
    store = PostgresStore(url, schema=schema, **options)
    store.migrate()
    store.configure(SETTINGS)
    store.write(DOCS)
    return store


def _backends(url: str) -> list[int]:
    """Every other client backend of this database (the stores' pooled connections)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [row[0] for row in rows]


def _terminate(url: str, pids: list[int]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    deadline = time.monotonic() + 10
    while set(pids) & set(_backends(url)) and time.monotonic() < deadline:
        time.sleep(0.05)


def _fill_pool(store: PostgresStore, n: int) -> None:
    """Make the store's pool open ``n`` connections (n searches at once)."""
    barrier = threading.Barrier(n)

    def search() -> None:
        barrier.wait()
        store.keyword_search("alpha", 2)

    threads = [threading.Thread(target=search) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# -- the shared server: killed backends ---------------------------------------------------------


def test_searches_after_every_pooled_connection_was_killed_succeed(
    pg_url: str, pg_schema: str
) -> None:
    # Before: each stale pooled connection failed one caller with StoreUnavailableError (an MCP
    # server on Postgres returned an error after every database restart).
    store = _filled(pg_url, pg_schema, pool_size=3)
    try:
        _fill_pool(store, 3)
        killed = _backends(pg_url)
        assert len(killed) >= 2
        _terminate(pg_url, killed)
        for _ in range(6):
            assert [h.chunk.id for h in store.keyword_search("alpha", 2)] == ["a.md#0"]
        assert store.stats().documents == 3
        store.write([entry("d.md", ["zeta"])])  # writes get live connections too
        assert store.stats().documents == 4
    finally:
        store.close()


def test_a_backend_killed_during_a_write_leaves_the_store_as_it_was(
    pg_url: str, pg_schema: str
) -> None:
    store = _filled(pg_url, pg_schema)
    try:
        before = (store.stats(), dict(store.document_hashes()))
        holder = psycopg.connect(pg_url)
        holder.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('ragkit:' || %s::text, 0))",
            (pg_schema,),
        )
        errors: list[BaseException] = []

        def write() -> None:
            try:
                store.write([entry("a.md", ["replaced text"]), entry("e.md", ["new"])], ["b.md"])
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        thread = threading.Thread(target=write)
        thread.start()
        # The writer has removed nothing yet: it waits for the lock, then would do it all.
        deadline = time.monotonic() + 10
        waiting: list[int] = []
        while not waiting and time.monotonic() < deadline:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                waiting = [
                    row[0]
                    for row in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%%pg_advisory_xact_lock%%' AND pid <> %s",
                        (holder.info.backend_pid,),
                    ).fetchall()
                ]
            time.sleep(0.05)
        assert waiting, "the writer never waited for the lock"
        _terminate(pg_url, waiting)
        thread.join(30)
        holder.close()
        assert len(errors) == 1
        error = errors[0]
        assert isinstance(error, StoreUnavailableError)
        assert "lost the connection" in str(error)
        assert "all-or-nothing" in str(error)
        assert error.__cause__ is None
        assert (store.stats(), dict(store.document_hashes())) == before
        consistency(pg_url, pg_schema)
        store.write([entry("a.md", ["replaced text"]), entry("e.md", ["new"])], ["b.md"])
        assert set(store.document_hashes()) == {"a.md", "c.md", "e.md"}
        consistency(pg_url, pg_schema)
    finally:
        store.close()


# -- statement timeouts, a full disk, a read-only server -----------------------------------------


def _hold_write_lock(url: str, schema: str) -> Any:
    conn = psycopg.connect(url)
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('ragkit:' || %s::text, 0))", (schema,)
    )
    return conn


def test_the_store_statement_timeout_cancels_a_statement_clearly(
    pg_url: str, pg_schema: str
) -> None:
    store = _filled(pg_url, pg_schema, statement_timeout=0.3)
    holder = _hold_write_lock(pg_url, pg_schema)
    try:
        with pytest.raises(StoreTimeoutError, match=r"statement_timeout \(0.3 s\)") as err:
            store.write([entry("d.md", ["zeta"])])
        assert "Nothing it did was kept" in str(err.value)
        assert err.value.__cause__ is None
    finally:
        holder.close()
    assert store.stats().documents == 3
    store.write([entry("d.md", ["zeta"])])  # the connection is fine afterwards
    assert store.stats().documents == 4
    store.close()


def test_statement_timeout_applies_to_a_pool_passed_in(pg_url: str, pg_schema: str) -> None:
    _filled(pg_url, pg_schema).close()
    with ConnectionPool(pg_url, min_size=1, max_size=2, open=True) as pool:
        store = PostgresStore(pool, schema=pg_schema, statement_timeout=0.3)
        holder = _hold_write_lock(pg_url, pg_schema)
        try:
            with pytest.raises(StoreTimeoutError, match="statement_timeout"):
                store.write([entry("d.md", ["zeta"])])
        finally:
            holder.close()
            store.close()
        with pool.connection() as conn:  # the pool's own connections keep their settings
            row = conn.execute("SHOW statement_timeout").fetchone()
        assert row == ("0",)


def test_a_server_side_statement_timeout_is_named(pg_url: str, pg_schema: str) -> None:
    _filled(pg_url, pg_schema).close()
    url = f"{pg_url}&options=-c%20statement_timeout%3D300"
    store = PostgresStore(url, schema=pg_schema)
    holder = _hold_write_lock(pg_url, pg_schema)
    try:
        with pytest.raises(StoreTimeoutError, match="cancelled by the server"):
            store.write([entry("d.md", ["zeta"])])
    finally:
        holder.close()
        store.close()


def test_a_full_disk_is_a_store_error_and_the_write_is_rolled_back(
    pg_url: str, pg_schema: str
) -> None:
    store = _filled(pg_url, pg_schema)
    try:
        # The server's own error for a full disk, raised where a write puts its rows.
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                "CREATE FUNCTION public.ragkit_disk_full() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' "
                "USING ERRCODE = 'disk_full'; END $$"
            )
            conn.execute(
                psycopg.sql.SQL(
                    "CREATE TRIGGER disk_full BEFORE INSERT ON {}.chunks "
                    "FOR EACH ROW EXECUTE FUNCTION public.ragkit_disk_full()"
                ).format(psycopg.sql.Identifier(pg_schema))
            )
        before = store.stats()
        with pytest.raises(StoreError, match="out of disk space") as err:
            store.write([entry("a.md", ["replaced"]), entry("d.md", ["zeta"])], ["b.md"])
        assert "free space on the server's data volume, then retry" in str(err.value)
        assert "SQLSTATE 53100" in str(err.value)
        assert store.stats() == before
        consistency(pg_url, pg_schema)
    finally:
        store.close()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP FUNCTION IF EXISTS public.ragkit_disk_full() CASCADE")


def test_a_read_only_server_refuses_writes_with_a_ragkit_error(pg_url: str, pg_schema: str) -> None:
    _filled(pg_url, pg_schema).close()
    url = f"{pg_url}&options=-c%20default_transaction_read_only%3Don"
    store = PostgresStore(url, schema=pg_schema)
    try:
        assert [h.chunk.id for h in store.keyword_search("delta", 1)] == ["b.md#0"]
        with pytest.raises(ReadOnlyStoreError, match="Writes and migrations go to the primary"):
            store.write([entry("d.md", ["zeta"])])
        with pytest.raises(ReadOnlyStoreError, match="only reads"):
            store.migrate()
    finally:
        store.close()


# -- a server of this module's own: restart, stop, crash -----------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from ragkit.errors import MissingDependencyError
    from ragkit.stores import local_postgres

    try:
        server = local_postgres.start(tmp_path_factory.mktemp("faults"), delete=True)
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    cluster = own_cluster(server)
    try:
        yield cluster
    finally:
        # A server this module restarted is no longer the one the package started: stop it here.
        if (cluster.data_dir / "postmaster.pid").exists():
            cluster.stop()
        server.stop()


def _wait_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_the_first_search_after_a_server_restart_works(cluster: Cluster) -> None:
    store = _filled(cluster.url, "restart", pool_size=2)
    try:
        _fill_pool(store, 2)
        cluster.restart()
        for _ in range(4):
            assert [h.chunk.id for h in store.keyword_search("delta", 1)] == ["b.md#0"]
    finally:
        store.close()


def test_a_stopped_server_is_unavailable_then_comes_back(cluster: Cluster) -> None:
    store = _filled(cluster.url, "stopped", connect_timeout=2)
    try:
        cluster.stop()
        try:
            with pytest.raises(StoreUnavailableError, match="within 2 s") as err:
                store.keyword_search("delta", 1)
            assert "check that the server is running" in str(err.value)
            assert err.value.__cause__ is None
        finally:
            cluster.start()
        _wait_up(cluster.url)
        assert [h.chunk.id for h in store.keyword_search("delta", 1)] == ["b.md#0"]
    finally:
        store.close()


def test_a_crashed_backend_recovery_mode_is_a_clear_error_and_passes(cluster: Cluster) -> None:
    store = _filled(cluster.url, "crash", connect_timeout=1)
    try:
        victim = psycopg.connect(cluster.url)
        pid = victim.info.backend_pid
        os.kill(pid, signal.SIGKILL)  # Postgres ends every backend and replays its WAL
        victim.close()
        seen: list[str] = []
        deadline = time.monotonic() + 60
        hits = None
        while hits is None:
            try:
                hits = store.keyword_search("delta", 1)
            except StoreUnavailableError as exc:  # the only error allowed meanwhile
                seen.append(str(exc))
            assert time.monotonic() < deadline, seen
        assert all("retry" in message for message in seen), seen
        assert [h.chunk.id for h in hits] == ["b.md#0"]
        assert store.stats().documents == 3
    finally:
        store.close()


def test_a_password_never_shows_in_fault_errors(cluster: Cluster) -> None:
    url = cluster.url.replace("postgres:@", "postgres:s3cret-pw@")
    store = _filled(url, "secret", connect_timeout=2)
    try:
        cluster.stop()
        try:
            with pytest.raises(StoreUnavailableError, match="no connection to Postgres") as err:
                store.stats()
        finally:
            cluster.start()
        assert "s3cret-pw" not in str(err.value)
    finally:
        store.close()
        _wait_up(cluster.url)
