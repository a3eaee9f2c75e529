"""Benchmark ragkit's PostgresStore on the bundled server (ragkit.stores.local_postgres).

Usage::

    .venv/bin/python bench/bench_postgres.py [--n 100000] [--queries 50] [--url URL]

Without ``--url`` a fresh bundled server is started in a temporary directory (default settings:
128 MB shared_buffers) and stopped at the end.

Corpus: ``n`` chunks of text from bench/corpus.py (SciFact sentences recombined), four chunks per
document, with chunk metadata ``p1 = document % 100`` and ``p10 = document % 10`` (filters of
1 % and 10 % selectivity). Vectors are given, not embedded: 384-d unit vectors made as
bench_vectors.py makes them, but from 2,000 random Gaussian anchors instead of real MiniLM
vectors (mixtures of 2-3 anchors plus noise), so neighbourhoods have structure; queries are fresh
mixtures. Pure Gaussian vectors would make every neighbour a near-tie.

Measured: bulk load (write() calls of 1,000 chunks, HNSW index maintained during the load),
BM25 / vector / hybrid query latency p50 and p95 (hybrid = keyword and vector search of the top
500 each, fused with ragkit.fusion z-score, as the Index does; query embedding excluded),
Recall@10 of the vector search against exact search in numpy, one-document update latency
(replace a 4-chunk document; median of 20), filtered query latency and recall at 1 % and 10 %
selectivity, table sizes. Queries are interleaved (one of each kind per query text) so machine
load hits every kind alike. Writes bench/out/postgres.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpus import passages, queries  # noqa: E402
from ragkit.base import DocumentEntry, IndexSettings  # noqa: E402
from ragkit.filters import parse_filter  # noqa: E402
from ragkit.fusion import fuse  # noqa: E402
from ragkit.stores.postgres import PostgresStore  # noqa: E402
from ragkit.types import Chunk  # noqa: E402

DIM = 384
PER_DOC = 4
BATCH = 1000  # chunks per write()
K = 10
DEPTH = 500


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


def document(d: int, texts: list[str], vecs: np.ndarray) -> DocumentEntry:
    doc_id = f"doc{d:07d}.md"
    meta = {"p1": d % 100, "p10": d % 10}
    chunks, pos = [], 0
    for i, text in enumerate(texts):
        chunks.append(Chunk(f"{doc_id}#{i}", text, doc_id, pos, pos + len(text), (), meta))
        pos += len(text) + 1
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    return DocumentEntry(doc_id, digest, meta, tuple(chunks), tuple(texts), vecs)


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values) * 1000, q)), 2)


def run(url: str, n: int, n_queries: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    anchors = rng.standard_normal((2000, DIM)).astype(np.float32)
    texts = passages(n, seed=0)
    vecs = vectors(n, 1, anchors)
    store = PostgresStore(url, schema="bench")
    with store._connection() as conn:  # a clean slate
        conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")
    store.close()
    store = PostgresStore(url, schema="bench")
    store.migrate()
    store.configure(IndexSettings("bench-random/384", DIM, 256, 32))

    n_docs = n // PER_DOC
    t0 = time.perf_counter()
    per_batch = BATCH // PER_DOC
    for start in range(0, n_docs, per_batch):
        batch = [
            document(
                d, texts[d * PER_DOC : (d + 1) * PER_DOC], vecs[d * PER_DOC : (d + 1) * PER_DOC]
            )
            for d in range(start, min(n_docs, start + per_batch))
        ]
        store.write(batch)
        done = min(n_docs, start + per_batch) * PER_DOC
        if done % (BATCH * 20) == 0:
            rate = done / (time.perf_counter() - t0)
            print(f"  loaded {done} chunks, {rate:.0f} chunks/s", flush=True)
    load_s = time.perf_counter() - t0
    with store._connection() as conn:
        conn.execute("ANALYZE bench.chunks; ANALYZE bench.postings; ANALYZE bench.terms")
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM bench.postings")
        sizes = {
            name: conn.execute("SELECT pg_total_relation_size(%s)", (f"bench.{name}",)).fetchone()[
                0
            ]
            for name in ("chunks", "postings", "terms", "documents")
        }
        n_postings = conn.execute("SELECT count(*) FROM bench.postings").fetchone()[0]
    print(f"loaded {n} chunks in {load_s:.1f} s", flush=True)

    qtexts = queries(n_queries, seed=1)
    qvecs = vectors(n_queries, 2, anchors)
    filters = {"1%": parse_filter({"p1": 42}), "10%": parse_filter({"p10": 3})}
    masks = {
        "1%": (np.arange(n) // PER_DOC) % 100 == 42,
        "10%": (np.arange(n) // PER_DOC) % 10 == 3,
    }
    ids = np.array([f"doc{i // PER_DOC:07d}.md#{i % PER_DOC}" for i in range(n)])
    times: dict[str, list[float]] = {
        k: []
        for k in (
            "bm25",
            "vector",
            "hybrid",
            "hybrid_depth100",
            "bm25_1%",
            "vector_1%",
            "bm25_10%",
            "vector_10%",
        )
    }
    recall: dict[str, list[float]] = {"vector": [], "vector_1%": [], "vector_10%": []}
    # warm-up: the first queries load the HNSW graph and postings into the page cache
    for text, q in zip(qtexts[:5], qvecs[:5], strict=True):
        store.keyword_search(text, DEPTH)
        store.vector_search(q, DEPTH)
    for text, q in zip(qtexts, qvecs, strict=True):
        t = time.perf_counter()
        store.keyword_search(text, K)
        times["bm25"].append(time.perf_counter() - t)

        t = time.perf_counter()
        got = store.vector_search(q, K)
        times["vector"].append(time.perf_counter() - t)
        exact = set(ids[np.argsort(-(vecs @ q))[:K]])
        recall["vector"].append(len(exact & {r.id for r in got}) / K)

        t = time.perf_counter()
        kw = store.keyword_search(text, DEPTH)
        vs = store.vector_search(q, DEPTH)
        fuse([[(r.id, r.score) for r in kw], [(r.id, r.score) for r in vs]], "zscore")[:K]
        times["hybrid"].append(time.perf_counter() - t)

        t = time.perf_counter()
        kw = store.keyword_search(text, 100)
        vs = store.vector_search(q, 100)
        fuse([[(r.id, r.score) for r in kw], [(r.id, r.score) for r in vs]], "zscore")[:K]
        times["hybrid_depth100"].append(time.perf_counter() - t)

        for name, where in filters.items():
            t = time.perf_counter()
            store.keyword_search(text, K, where)
            times[f"bm25_{name}"].append(time.perf_counter() - t)
            t = time.perf_counter()
            got = store.vector_search(q, K, where)
            times[f"vector_{name}"].append(time.perf_counter() - t)
            sub = np.flatnonzero(masks[name])
            exact = set(ids[sub[np.argsort(-(vecs[sub] @ q))[:K]]])
            recall[f"vector_{name}"].append(len(exact & {r.id for r in got}) / K)

    # one-document updates: replace a 4-chunk document with new text and vectors
    updates = []
    for i in range(20):
        d = (i * 7919) % n_docs
        new_texts = passages(PER_DOC, seed=100 + i)
        t = time.perf_counter()
        store.write([document(d, new_texts, vectors(PER_DOC, 100 + i, anchors))])
        updates.append(time.perf_counter() - t)
    store.close()
    return {
        "n": n,
        "queries": n_queries,
        "load_s": round(load_s, 1),
        "load_chunks_per_s": round(n / load_s),
        "postings": n_postings,
        "bytes": sizes,
        "p50_ms": {k: pct(v, 50) for k, v in times.items()},
        "p95_ms": {k: pct(v, 95) for k, v in times.items()},
        "recall@10": {k: round(float(np.mean(v)), 4) for k, v in recall.items()},
        "update_one_document_ms": {
            "p50": pct(updates, 50),
            "max": round(max(updates) * 1000, 2),
        },
        "median_update_ms": round(statistics.median(updates) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--url", help="an existing server (default: start the bundled one)")
    args = parser.parse_args()
    if args.url:
        result = run(args.url, args.n, args.queries)
    else:
        from ragkit.stores import local_postgres

        with tempfile.TemporaryDirectory() as tmp:
            server = local_postgres.start(tmp)
            try:
                result = run(server.url, args.n, args.queries)
            finally:
                server.stop()
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "postgres.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
