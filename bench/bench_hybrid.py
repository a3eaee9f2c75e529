"""Benchmark hybrid search (BM25 + vectors, fused) at 100k and 1M chunks, and index updates.

Usage::

    .venv/bin/python bench/bench_hybrid.py [--n 100000 1000000] [--queries 100]

Corpus: ``bench/corpus.py`` passages (SciFact sentences recombined into 100-250 word passages)
for BM25, and MiniLM-like vectors from ``bench/bench_vectors.py`` (real SciFact embeddings plus
mixtures of them) for the dense side; one chunk per passage. Queries: real SciFact claims; their
embeddings are computed once before timing, so the latencies exclude the query's embedding
(reported separately). For each N, interleaved query by query so CPU noise hits all alike:

- BM25 alone, vector exact, vector compressed (1-bit first pass + exact re-scoring),
- hybrid (ragkit's defaults: z-score fusion over the top 500 of each) with the exact vector
  scan and with the store's default (compressed above 200k chunks), sequential and with the two
  retrievers in parallel threads,
- Recall@10 of the compressed vector search and of the hybrid top 10 against their exact
  versions.

At 100k it also builds a real ``ragkit.Index`` (chunking, BM25, vectors from a fast hashing
embedder) and times adding and removing one document (median of 20): the index-side cost, which
the embedding model's own time (~30 ms per chunk with MiniLM on 2 cores) adds to. Memory is
reported as bytes per chunk for the vectors (float32 + codes) and the BM25 postings. Writes
bench/out/hybrid.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_vectors import real_vectors, synthesize  # noqa: E402
from corpus import passages, queries  # noqa: E402

from ragkit.base import DocumentEntry, IndexSettings  # noqa: E402
from ragkit.embedders import LocalEmbedder  # noqa: E402
from ragkit.index import Index  # noqa: E402
from ragkit.retrievers import BM25Retriever, HybridRetriever, VectorRetriever  # noqa: E402
from ragkit.stores.memory import MemoryStore  # noqa: E402
from ragkit.types import Chunk, Document  # noqa: E402

K = 10


class LookupEmbedder:
    """Returns precomputed query vectors: the timed path does no model inference."""

    name = "lookup/384"
    dim = 384
    batch_size = 256
    max_input_tokens = 256

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self.table[text]

    embed = embed_documents


class HashEmbedder:
    """Fast deterministic text → unit vector (for timing index updates, not for quality)."""

    name = "hash/384"
    dim = 384
    batch_size = 256
    max_input_tokens = 10_000

    def embed_query(self, text: str) -> np.ndarray:
        row: np.ndarray = self.embed_documents([text])[0]
        return row

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_documents(texts)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), 384), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
            out[i] = np.random.default_rng(seed).standard_normal(384, dtype=np.float32)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def bench_n(
    n: int, n_queries: int, qvecs: dict[str, np.ndarray], qtexts: list[str]
) -> dict[str, object]:
    t0 = time.perf_counter()
    texts = passages(n)
    t_corpus = time.perf_counter() - t0
    real, _ = real_vectors()
    vectors = synthesize(real, n)
    embedder = LookupEmbedder(qvecs)
    store = MemoryStore()
    store.configure(IndexSettings(embedder=embedder.name, dim=384, chunk_size=256, chunk_overlap=0))
    t0 = time.perf_counter()
    step = 20_000
    for start in range(0, n, step):
        entries = []
        for i in range(start, min(n, start + step)):
            t = texts[i]
            chunk = Chunk(f"p{i}#0", t, f"p{i}", 0, len(t))
            entries.append(
                DocumentEntry(f"p{i}", f"{i:064x}", {}, (chunk,), (t,), vectors[i : i + 1])
            )
        store.write(entries)
    t_build = time.perf_counter() - t0
    del texts, vectors
    vec_store = store._vectors
    assert vec_store is not None
    default_threshold = vec_store.binary_threshold
    bm25_r = BM25Retriever(store=store)
    vec_r = VectorRetriever(store=store, embedder=embedder)
    # ragkit's defaults: z-score fusion over the top 500 of each retriever.
    hybrid = HybridRetriever([bm25_r, vec_r])
    hybrid_par = HybridRetriever([bm25_r, vec_r], parallel=True)

    def exact(run: Any) -> Any:
        """``run`` with the vector side exact whatever the size (the store's threshold raised)."""

        def wrapped(q: str) -> Any:
            vec_store.binary_threshold = n + 1
            try:
                return run(q)
            finally:
                vec_store.binary_threshold = default_threshold

        return wrapped

    timers: dict[str, list[float]] = {
        name: []
        for name in (
            "bm25",
            "vector_exact",
            "vector_default",
            "hybrid_exact",
            "hybrid",
            "hybrid_parallel",
        )
    }
    recall_vec, recall_hyb = [], []
    runs = {
        "bm25": lambda q: bm25_r.retrieve(q, K),
        "vector_exact": exact(lambda q: vec_r.retrieve(q, K)),
        "vector_default": lambda q: vec_r.retrieve(q, K),
        "hybrid_exact": exact(lambda q: hybrid.retrieve(q, K)),
        "hybrid": lambda q: hybrid.retrieve(q, K),
        "hybrid_parallel": lambda q: hybrid_par.retrieve(q, K),
    }
    for q in qtexts[:3]:  # warm-up: numba compile, caches
        for fn in runs.values():
            fn(q)
    for q in qtexts[:n_queries]:
        got = {}
        for name, fn in runs.items():
            t = time.perf_counter()
            got[name] = [r.chunk.id for r in fn(q)]
            timers[name].append(time.perf_counter() - t)
        recall_vec.append(len(set(got["vector_default"]) & set(got["vector_exact"])) / K)
        recall_hyb.append(len(set(got["hybrid"]) & set(got["hybrid_exact"])) / K)
    result: dict[str, object] = {
        "n": n,
        "queries": n_queries,
        "build_s": {"corpus": round(t_corpus, 1), "store": round(t_build, 1)},
        "p50_ms": {name: round(pct(v, 50), 2) for name, v in timers.items()},
        "p95_ms": {name: round(pct(v, 95), 2) for name, v in timers.items()},
        "recall@10_vector_default_vs_exact": round(float(np.mean(recall_vec)), 4),
        "recall@10_hybrid_vs_hybrid_exact": round(float(np.mean(recall_hyb)), 4),
        "bytes_per_chunk": {
            "vectors": round(vec_store.memory_bytes() / n),
            "bm25": round(store._bm25.memory_bytes() / n),
        },
    }
    return result


def bench_updates(n: int) -> dict[str, object]:
    texts = passages(n + 20, seed=1)
    index = Index(embedder=HashEmbedder())
    t0 = time.perf_counter()
    step = 20_000
    for start in range(0, n, step):
        index.add(Document(f"p{i}", texts[i]) for i in range(start, min(n, start + step)))
    build = time.perf_counter() - t0
    index.search("warm up the caches", 10)
    adds, removes = [], []
    for j in range(20):
        doc = Document(f"new{j}", texts[n + j])
        t = time.perf_counter()
        index.add([doc])
        adds.append(time.perf_counter() - t)
        index.search("protein expression in cells", 10)  # a query between updates, as in use
        t = time.perf_counter()
        index.remove([f"p{j}"])
        removes.append(time.perf_counter() - t)
    return {
        "n": n,
        "chunks": len(index),
        "build_s": round(build, 1),
        "add_one_p50_ms": round(statistics.median(adds) * 1000, 2),
        "add_one_max_ms": round(max(adds) * 1000, 2),
        "remove_one_p50_ms": round(statistics.median(removes) * 1000, 2),
        "remove_one_max_ms": round(max(removes) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--no-updates", action="store_true")
    args = parser.parse_args()
    qtexts = queries(args.queries + 3, seed=7)
    emb = LocalEmbedder()
    t = time.perf_counter()
    qmat = emb.embed(qtexts)
    t_embed = time.perf_counter() - t
    emb.embed(qtexts[:20])
    single = []
    for q in qtexts[:20]:
        t = time.perf_counter()
        emb.embed([q])
        single.append(time.perf_counter() - t)
    qvecs = dict(zip(qtexts, qmat, strict=False))
    report: dict[str, object] = {
        "query_embedding_p50_ms": round(pct(single, 50), 2),
        "query_embedding_batch_s": round(t_embed, 2),
        "sizes": [],
    }
    for n in args.n:
        r = bench_n(n, args.queries, qvecs, qtexts[3:] + qtexts[:3])
        print(json.dumps(r), flush=True)
        report["sizes"].append(r)  # type: ignore[union-attr]
    if not args.no_updates:
        report["updates"] = bench_updates(100_000)
        print(json.dumps(report["updates"]), flush=True)
    out = HERE / "out" / "hybrid.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"query embedding (MiniLM, one query) p50 {report['query_embedding_p50_ms']} ms")
    print(
        "| N | BM25 p50 | vector exact p50 | vector default p50 | hybrid exact p50 | hybrid p50 "
        "| hybrid parallel p50 | hybrid p95 | R@10 vector | R@10 hybrid |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in report["sizes"]:  # type: ignore[union-attr]
        p, p95 = r["p50_ms"], r["p95_ms"]
        print(
            f"| {r['n']:,} | {p['bm25']} | {p['vector_exact']} | {p['vector_default']} "
            f"| {p['hybrid_exact']} | {p['hybrid']} | {p['hybrid_parallel']} | {p95['hybrid']} "
            f"| {r['recall@10_vector_default_vs_exact']} "
            f"| {r['recall@10_hybrid_vs_hybrid_exact']} |"
        )


if __name__ == "__main__":
    main()
