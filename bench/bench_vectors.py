"""Benchmark ragkit.vectors.VectorStore on MiniLM-like vectors: speed, recall, memory.

Usage::

    .venv/bin/python bench/bench_vectors.py [--n 100000 1000000] [--queries 100] [--sweep]

Vectors. Random Gaussian vectors are not realistic: in 384 dimensions all their pairwise cosines
are ~0 and the nearest neighbour is barely nearer than the rest, so recall of a compressed first
pass behaves unlike on real embeddings. Instead:

1. The first 4,000 SciFact passages (title + text) and all 1,109 SciFact claims are embedded once
   with ragkit's LocalEmbedder (all-MiniLM-L6-v2) and cached in bench/data/ (gitignored).
2. N stored vectors = the real passage vectors, then synthetic ones: each a random convex
   combination (Dirichlet(1) weights) of 2 or 3 random real passage vectors, plus Gaussian noise
   of norm 0.2 x the mixture's norm, renormalised. They stay on the real vectors' manifold
   (same anisotropy, same per-axis means), with a density that grows with N like a real corpus.
3. Queries = real SciFact claim vectors (not part of the stored set).

Measured per N, interleaved query by query so a shared CPU slows every method alike: plain numpy
exact scan (``matrix @ q`` + argpartition, the baseline), the store's exact search, the store's
compressed search (Hamming first pass + exact re-scoring), Recall@10 of compressed vs exact, bulk
build time, single add and remove latency (median of 20), bytes per chunk. ``--sweep`` also
prints Recall@10 against the number of re-scored candidates; ``--numpy`` forces the numpy
first pass (Hamming, 4x candidates) instead of numba's. Writes bench/out/vectors.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ragkit import vectors as vectors_module  # noqa: E402
from ragkit.vectors import VectorStore  # noqa: E402

DATA = ROOT / "bench" / "data"
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT / "bench"))
from corpus import SCIFACT  # noqa: E402  (honours RAGKIT_SCIFACT)

PASSAGES_FILE = DATA / "scifact_passages_minilm.npy"
QUERIES_FILE = DATA / "scifact_queries_minilm.npy"
REAL_PASSAGES = 4000
K = 10


def real_vectors() -> tuple[np.ndarray, np.ndarray]:
    """Real MiniLM vectors of SciFact passages and claims, embedded once and cached."""
    if PASSAGES_FILE.exists() and QUERIES_FILE.exists():
        return np.load(PASSAGES_FILE), np.load(QUERIES_FILE)
    from ragkit.embedders import LocalEmbedder

    DATA.mkdir(parents=True, exist_ok=True)
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as f:
        docs = [json.loads(line) for line in f][:REAL_PASSAGES]
    with (SCIFACT / "queries.jsonl").open(encoding="utf-8") as f:
        claims = [json.loads(line)["text"] for line in f]
    embedder = LocalEmbedder()
    print(f"embedding {len(docs)} passages and {len(claims)} claims once (minutes)...")
    passages = embedder.embed([f"{d['title']}\n{d['text']}".strip() for d in docs])
    queries = embedder.embed(claims)
    np.save(PASSAGES_FILE, passages)
    np.save(QUERIES_FILE, queries)
    return passages, queries


def synthesize(real: np.ndarray, n: int, seed: int = 0, block: int = 100_000) -> np.ndarray:
    """``n`` MiniLM-like unit vectors: the real ones, then mixtures of 2-3 of them plus noise."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    head = min(n, real.shape[0])
    out[:head] = real[:head]
    for start in range(head, n, block):
        stop = min(n, start + block)
        size = stop - start
        parts = rng.integers(2, 4, size=size)  # 2 or 3 parents
        weights = rng.dirichlet(np.ones(3), size=size).astype(np.float32)
        weights[parts == 2, 2] = 0.0
        weights /= weights.sum(axis=1, keepdims=True)
        parents = rng.integers(0, real.shape[0], size=(size, 3))
        mix = np.einsum("bp,bpd->bd", weights, real[parents])
        scale = 0.2 * np.linalg.norm(mix, axis=1, keepdims=True) / np.sqrt(real.shape[1])
        mix += scale * rng.standard_normal(mix.shape, dtype=np.float32)
        mix /= np.linalg.norm(mix, axis=1, keepdims=True)
        out[start:stop] = mix
    return out


def numpy_exact(matrix: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """The baseline: one BLAS matrix-vector product and argpartition, no tie handling."""
    scores = matrix @ q
    top = np.argpartition(scores, scores.shape[0] - k)[-k:]
    return top[np.argsort(-scores[top])]


def ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.array(seconds) * 1000.0, q))


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    hits = [
        len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits))


def bench_n(n: int, real: np.ndarray, queries: np.ndarray, sweep: bool) -> dict[str, object]:
    x = synthesize(real, n)
    store = VectorStore(real.shape[1])
    t0 = time.perf_counter()
    store.add(np.arange(n, dtype=np.int64), x)
    build_s = time.perf_counter() - t0
    del x  # the store holds the only float32 copy from here on
    bytes_total = store.memory_bytes() / len(store)  # before add-one doubles the capacity
    matrix = store.state()["vectors"]
    kernel = vectors_module._candidate_kernel()
    backend = "numpy" if kernel is vectors_module._hamming_candidates_numpy else "numba"
    store.search(queries[0], K, exact=False)  # warm up (numba compile or cache load)

    base_t, exact_t, comp_t, exact_keys, comp_keys = [], [], [], [], []
    for q in queries:
        t = time.perf_counter()
        numpy_exact(matrix, q, K)
        base_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        keys, _ = store.search(q, K, exact=True)
        exact_t.append(time.perf_counter() - t)
        exact_keys.append(keys)
        t = time.perf_counter()
        keys, _ = store.search(q, K, exact=False)
        comp_t.append(time.perf_counter() - t)
        comp_keys.append(keys)

    t = time.perf_counter()
    batch = store.search_batch(queries, K, exact=True)
    batch_ms = (time.perf_counter() - t) * 1000.0 / len(queries)
    assert all((b[0] == e).all() for b, e in zip(batch, exact_keys, strict=True))

    sweep_rows: dict[str, float] = {}
    if sweep:
        saved = store.rerank
        for c in (250, 500, 1000, 2000, 4000):
            store.rerank = c
            found = [store.search(q, K, exact=False)[0] for q in queries]
            sweep_rows[str(c)] = recall(found, exact_keys)
        store.rerank = saved

    rng = np.random.default_rng(1)
    add_t, remove_t = [], []
    for i in range(20):
        v = rng.standard_normal((1, real.shape[1])).astype(np.float32)
        t = time.perf_counter()
        store.add([n + i], v)
        add_t.append(time.perf_counter() - t)
    for key in rng.choice(n, size=20, replace=False).tolist():
        t = time.perf_counter()
        store.remove([key])
        remove_t.append(time.perf_counter() - t)

    row = {
        "n": n,
        "dim": store.dim,
        "backend": backend,
        "rerank": store.rerank,
        "build_s": round(build_s, 2),
        "numpy_exact_p50_ms": round(ms(base_t, 50), 2),
        "numpy_exact_p95_ms": round(ms(base_t, 95), 2),
        "store_exact_p50_ms": round(ms(exact_t, 50), 2),
        "store_exact_batch_ms_per_query": round(batch_ms, 2),
        "store_compressed_p50_ms": round(ms(comp_t, 50), 2),
        "store_compressed_p95_ms": round(ms(comp_t, 95), 2),
        "recall_at_10": round(recall(comp_keys, exact_keys), 4),
        "add_one_median_ms": round(statistics.median(add_t) * 1000, 3),
        "add_one_max_ms": round(max(add_t) * 1000, 1),
        "remove_one_median_ms": round(statistics.median(remove_t) * 1000, 3),
        "bytes_per_chunk_vectors_codes": store.dim * 4 + store._words * 8,
        "bytes_per_chunk_total": round(bytes_total),
        "recall_vs_candidates": sweep_rows,
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--sweep", action="store_true", help="Recall@10 vs candidates")
    parser.add_argument("--numpy", action="store_true", help="force the numpy first pass")
    args = parser.parse_args()
    if args.numpy:
        vectors_module._use_numba = False

    real, claims = real_vectors()
    queries = claims[: args.queries].astype(np.float32)
    rows = []
    for n in args.n:
        row = bench_n(n, real, queries, args.sweep)
        rows.append(row)
        print(json.dumps(row), flush=True)

    print()
    print(
        "| N | build s | numpy exact p50/p95 ms | store exact p50 ms | batch exact ms/q "
        "| compressed p50/p95 ms | Recall@10 | add-one ms | remove-one ms | bytes/chunk |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['build_s']} | {r['numpy_exact_p50_ms']} / "
            f"{r['numpy_exact_p95_ms']} | {r['store_exact_p50_ms']} | "
            f"{r['store_exact_batch_ms_per_query']} | {r['store_compressed_p50_ms']} / "
            f"{r['store_compressed_p95_ms']} | {r['recall_at_10']} | {r['add_one_median_ms']} | "
            f"{r['remove_one_median_ms']} | {r['bytes_per_chunk_vectors_codes']} "
            f"({r['bytes_per_chunk_total']} with key map) |"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "queries": len(queries), "k": K}
    (OUT / "vectors.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
