"""Reads from a streaming replica, for real: a primary and a hot standby from the bundled
binaries (``pg_basebackup -R``), both on unix sockets. Searches go to the replica, writes and the
write lock to the primary; the replica reports its lag, refuses writes with a ragkit error, and
keeps answering when the primary stops."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ragkit
from ragkit.errors import ReadOnlyStoreError, StoreUnavailableError

from ..conftest import FakeEmbedder, write_corpus
from .conftest import SETTINGS, entry

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("pgvector")
from ragkit.stores.postgres import PostgresStore, ReplicaLag  # noqa: E402

from .pg_servers import Cluster, own_cluster, start_replica, wait_for_replay  # noqa: E402

# Two servers and a base backup (~12 s to set up) make the replica tests slow ones.
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Cluster]]:
    """A primary and its streaming replica."""
    from ragkit.errors import MissingDependencyError
    from ragkit.stores import local_postgres

    root = tmp_path_factory.mktemp("replication")
    try:
        server = local_postgres.start(root / "primary", delete=True)
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    primary = own_cluster(server)
    replica = None
    try:
        # pgvector on the primary first: the replica gets the extension with the base backup.
        with psycopg.connect(primary.url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        replica = start_replica(primary, root / "standby")
        yield primary, replica
    finally:
        if replica is not None and (replica.data_dir / "postmaster.pid").exists():
            replica.stop("immediate")
        if (primary.data_dir / "postmaster.pid").exists():
            primary.stop()
        server.stop()


def _ids(hits: Any) -> list[str]:
    return [h.chunk.id for h in hits]


@slow
def test_searches_read_the_replica_and_writes_go_to_the_primary(
    pair: tuple[Cluster, Cluster],
) -> None:
    primary, replica = pair
    store = PostgresStore(primary.url, schema="docs", read_url=replica.url)
    try:
        store.migrate()
        store.configure(SETTINGS)
        store.write([entry("a.md", ["alpha beta"]), entry("b.md", ["gamma delta"])])
        wait_for_replay(primary, replica)
        assert _ids(store.keyword_search("gamma", 2)) == ["b.md#0"]
        lag = store.replica_lag()
        assert lag == ReplicaLag(True, 0.0, 0, lag.replayed_at if lag else None)

        # Replay paused: a write on the primary is not searchable yet, and the lag says so.
        with psycopg.connect(replica.url, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
        try:
            store.write([entry("c.md", ["epsilon zeta"])])
            assert store.keyword_search("epsilon", 2) == []  # read from the replica
            assert set(store.document_hashes()) == {"a.md", "b.md", "c.md"}  # the primary's
            behind = store.replica_lag()
            assert behind is not None
            assert behind.in_recovery
            assert behind.bytes_behind is not None
            assert behind.bytes_behind > 0
        finally:
            with psycopg.connect(replica.url, autocommit=True) as conn:
                conn.execute("SELECT pg_wal_replay_resume()")
        wait_for_replay(primary, replica)
        assert _ids(store.keyword_search("epsilon", 2)) == ["c.md#0"]
        assert store.stats().documents == 3
        caught_up = store.replica_lag()
        assert caught_up is not None
        assert caught_up.bytes_behind == 0
    finally:
        store.close()


@slow
def test_the_replica_refuses_writes_with_a_ragkit_error(pair: tuple[Cluster, Cluster]) -> None:
    primary, replica = pair
    writer = PostgresStore(primary.url, schema="refuse")
    writer.migrate()
    writer.configure(SETTINGS)
    writer.close()
    wait_for_replay(primary, replica)
    on_replica = PostgresStore(replica.url, schema="refuse")
    try:
        with pytest.raises(ReadOnlyStoreError, match="Writes and migrations go to the primary"):
            on_replica.write([entry("a.md", ["alpha"])])
        with pytest.raises(ReadOnlyStoreError, match="only reads"):
            on_replica.migrate()
        assert on_replica.stats().documents == 0
    finally:
        on_replica.close()


@slow
def test_reads_keep_working_when_the_primary_stops(
    pair: tuple[Cluster, Cluster], tmp_path: Path
) -> None:
    primary, replica = pair
    folder = write_corpus(
        tmp_path / "docs",
        {"a.md": "# Cats\n\nCats purr.", "b.md": "# Dogs\n\nDogs bark.", "c.md": "Fish swim."},
    )
    emb = FakeEmbedder(dim=16)
    location = f"{primary.url}&ragkit_schema=failover"
    ragkit.index_folder(folder, location, embedder=emb).close()
    wait_for_replay(primary, replica)
    index = ragkit.open_index(location, embedder=emb, read_url=replica.url)
    writer = PostgresStore(primary.url, schema="failover", connect_timeout=1)
    try:
        assert index.search("dogs bark", 1)[0].chunk.document_id == "b.md"
        primary.stop()
        try:
            for _ in range(3):
                assert index.search("cats purr", 1)[0].chunk.document_id == "a.md"
            lag = index.store.replica_lag()  # type: ignore[attr-defined]
            assert lag.in_recovery
            assert lag.bytes_behind is None  # the primary cannot be asked
            with pytest.raises(StoreUnavailableError, match="no connection to Postgres"):
                writer.write([], delete=["a.md"])
        finally:
            primary.start()
        deadline = time.monotonic() + 30
        while True:  # the replica reconnects to the restarted primary
            try:
                wait_for_replay(primary, replica, timeout=5)
                break
            except (TimeoutError, psycopg.OperationalError):
                assert time.monotonic() < deadline
        assert index.search("fish", 1)[0].chunk.document_id == "c.md"
    finally:
        writer.close()
        index.close()


def test_read_url_is_refused_where_it_cannot_apply(tmp_path: Path) -> None:
    # Both refusals come before any connection: no server is needed.
    url = "postgresql://app@db.invalid/rag"
    with pytest.raises(ValueError, match="read_url is for a postgresql:// index"):
        ragkit.open_index(tmp_path / "ix", read_url=url)
    with pytest.raises(ValueError, match="a replica serves the primary's schema"):
        ragkit.open_index(f"{url}?ragkit_schema=one", read_url=f"{url}?ragkit_schema=two")
