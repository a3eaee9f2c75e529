"""What the safety costs: search latency with the store's reader-writer lock vs without, and
load time with checksum verification vs without it.

Run: ``.venv/bin/python bench/bench_locking.py [--n 100000] [--queries 200]``

Search: a MemoryStore of ``n`` one-chunk documents (``bench/corpus.py`` passages, random unit
vectors of dimension 384), queried through ``keyword_search`` and ``vector_search`` with the
lock, then with the lock replaced by a no-op, interleaved query by query. Load: the SciFact
corpus indexed keyword-only (``build_dataset_index``), saved, then loaded; the checksum share is
the time to SHA-256 the same bytes, measured in the same run. Medians and ratios are printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # noqa: E402

from ragkit.base import DocumentEntry, IndexSettings  # noqa: E402
from ragkit.stores import disk  # noqa: E402
from ragkit.stores.memory import MemoryStore  # noqa: E402
from ragkit.types import Chunk  # noqa: E402


class _NoLock:
    @contextmanager
    def read(self) -> Iterator[None]:
        yield

    @contextmanager
    def write(self) -> Iterator[None]:
        yield


def build_store(n: int, dim: int) -> MemoryStore:
    store = MemoryStore()
    store.configure(IndexSettings("random", dim, 512, 0, {}, store.analyzer.config()))
    rng = np.random.default_rng(0)
    texts = corpus.passages(n)
    for start in range(0, n, 10_000):
        entries = []
        vecs = rng.standard_normal((min(n, start + 10_000) - start, dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        for j, text in enumerate(texts[start : start + 10_000]):
            doc_id = f"p{start + j}"
            chunk = Chunk(f"{doc_id}#0", text, doc_id, 0, len(text), (), {})
            entries.append(DocumentEntry(doc_id, doc_id, {}, (chunk,), (text,), vecs[j : j + 1]))
        store.write(entries)
    return store


def bench_search(n: int, queries: int, dim: int) -> dict[str, float]:
    store = build_store(n, dim)
    texts = corpus.queries(queries)
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((queries, dim)).astype(np.float32)
    locked = store._lock
    times: dict[str, list[float]] = {
        k: [] for k in ("bm25_lock", "bm25_free", "vec_lock", "vec_free")
    }
    for text, vec in zip(texts, vectors, strict=True):
        for name, lock in (("lock", locked), ("free", _NoLock())):
            store._lock = lock  # type: ignore[assignment]
            t = time.perf_counter()
            store.keyword_search(text, 10)
            times[f"bm25_{name}"].append(time.perf_counter() - t)
            t = time.perf_counter()
            store.vector_search(vec, 10)
            times[f"vec_{name}"].append(time.perf_counter() - t)
    store._lock = locked
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    return {
        **{f"{k}_ms": round(v, 4) for k, v in med.items()},
        "bm25_ratio": round(med["bm25_lock"] / med["bm25_free"], 4),
        "vec_ratio": round(med["vec_lock"] / med["vec_free"], 4),
    }


def bench_load(repeats: int) -> dict[str, float]:
    from ragkit.evaluation import build_dataset_index

    records = {}
    with open(corpus.SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            records[r["_id"]] = (r["title"], r["text"])
    index = build_dataset_index(records, keyword_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "idx"
        index.save(path)
        gen = disk.read_generation(path)
        blobs = list(gen.files.values())
        loads, hashes = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            MemoryStore.load(path)
            loads.append(time.perf_counter() - t)
            t = time.perf_counter()
            for blob in blobs:
                hashlib.sha256(blob).hexdigest()
            hashes.append(time.perf_counter() - t)
    load, sha = statistics.median(loads), statistics.median(hashes)
    return {
        "chunks": len(index),
        "bytes": sum(len(b) for b in blobs),
        "load_ms": round(load * 1e3, 2),
        "sha256_ms": round(sha * 1e3, 2),
        "ratio_vs_unverified": round(load / (load - sha), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps({"load": bench_load(args.repeats)}, indent=1), flush=True)
    print(json.dumps({"search": bench_search(args.n, args.queries, args.dim)}, indent=1))


if __name__ == "__main__":
    main()
