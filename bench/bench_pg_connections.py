"""What the Postgres store's connection layer costs: the per-checkout connection check, reads from
a streaming replica, and how soon a write on the primary is searchable on the replica.

Usage::

    .venv/bin/python bench/bench_pg_connections.py [--chunks 2000] [--queries 300]

Starts a bundled primary and a streaming replica of it (``pg_basebackup -R``, unix sockets, the
helpers of tests/stores/pg_servers.py) in a temporary directory, loads ``chunks`` short chunks
(8-d vectors, as in the store tests), then, interleaved per query so machine load hits each alike:

- keyword search through the store's own pool (connections checked at checkout: one empty round
  trip) against the same search through a pool without the check (a pool passed in), and the
  check alone (1,000 calls of ``ConnectionPool.check_connection``);
- keyword search read from the replica (``read_url=``) against the primary.

Then replication delay: ``writes`` one-document writes on the primary, each timed until a search
on the replica finds it (polled every 1 ms). Reports medians and ratios to the baseline of the same
run, plus the load average; writes bench/out/pg_connections.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from psycopg_pool import ConnectionPool  # noqa: E402

from ragkit.stores import local_postgres  # noqa: E402
from ragkit.stores.postgres import PostgresStore  # noqa: E402
from tests.stores.conftest import SETTINGS, entry  # noqa: E402
from tests.stores.pg_servers import own_cluster, start_replica, wait_for_replay  # noqa: E402

WORDS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega"
).split()


def _text(i: int) -> str:
    return " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(12)) + f" doc{i}"


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--writes", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ragkit-bench-conn-") as tmp:
        server = local_postgres.start(Path(tmp) / "primary", delete=True)
        primary = own_cluster(server)
        replica = None
        try:
            import psycopg

            with psycopg.connect(primary.url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            replica = start_replica(primary, Path(tmp) / "standby")
            results = _run(primary, replica, args)
        finally:
            if replica is not None:
                replica.stop("immediate")
            server.stop()
    results["load_average"] = os.getloadavg()
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "pg_connections.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def _run(primary: Any, replica: Any, args: argparse.Namespace) -> dict[str, Any]:
    store = PostgresStore(primary.url, schema="bench", read_url=replica.url)
    store.migrate()
    store.configure(SETTINGS)
    batch = [entry(f"d{i}.md", [_text(i)]) for i in range(args.chunks)]
    for start in range(0, len(batch), 500):
        store.write(batch[start : start + 500])
    wait_for_replay(primary, replica)

    plain_pool: ConnectionPool[Any] = ConnectionPool(primary.url, min_size=1, max_size=4)
    unchecked = PostgresStore(plain_pool, schema="bench")
    checked = PostgresStore(primary.url, schema="bench")
    kinds = {"checked (default)": checked, "unchecked pool": unchecked, "replica": store}
    times: dict[str, list[float]] = {name: [] for name in kinds}
    for q in range(args.queries):
        query = f"{WORDS[q % len(WORDS)]} {WORDS[(q * 5) % len(WORDS)]}"
        for name, target in kinds.items():
            t0 = time.perf_counter()
            target.keyword_search(query, 10)
            times[name].append(time.perf_counter() - t0)
    medians = {name: _median_ms(values) for name, values in times.items()}
    # The check alone: what each checkout adds (one empty query round trip).
    with plain_pool.connection() as conn:
        checks = []
        for _ in range(1000):
            t0 = time.perf_counter()
            ConnectionPool.check_connection(conn)
            checks.append(time.perf_counter() - t0)

    delays = []
    for i in range(args.writes):
        marker = f"fresh{i}"
        store.write([entry(f"new{i}.md", [f"{marker} arrives"])])
        written = time.perf_counter()  # committed on the primary
        while not store.keyword_search(marker, 1):
            time.sleep(0.001)
        delays.append(time.perf_counter() - written)
    lag = store.replica_lag()
    for s in (store, checked, unchecked):
        s.close()
    plain_pool.close()
    base = medians["unchecked pool"]
    return {
        "chunks": args.chunks,
        "queries": args.queries,
        "keyword_search_p50_ms": medians,
        "ratio_checked_to_unchecked": round(medians["checked (default)"] / base, 3),
        "ratio_replica_to_primary": round(medians["replica"] / medians["checked (default)"], 3),
        "check_connection_p50_ms": _median_ms(checks),
        "write_to_searchable_on_replica_p50_ms": _median_ms(delays),
        "write_to_searchable_on_replica_max_ms": round(max(delays) * 1000, 3),
        "replica_lag_after": None if lag is None else [lag.seconds, lag.bytes_behind],
    }


if __name__ == "__main__":
    main()
