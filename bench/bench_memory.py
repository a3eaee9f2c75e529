"""Resident and peak memory of a memory-store build with given vectors, and its search.

Usage::

    PYTHONPATH=$PWD .venv/bin/python bench/bench_memory.py --n 1000000 [--baseline ../../main]

Each version (this tree, and ``--baseline`` another checkout's root) runs in a fresh process,
one after the other: it builds a ``MemoryStore`` of ``n`` one-chunk documents (bench/corpus.py
passages, metadata ``{"bucket": i % 100}``, written 20,000 documents at a time, as
``Index.write`` hands them over) with bench_vectors.py's MiniLM-like vectors read from a .npy
file batch by batch (no memory map, so the file's pages are not counted), then reports:

- ``rss_base_mb``: resident set before the build (interpreter, numpy, ragkit imported);
- ``rss_built_mb``: resident set after the build (the bench's own texts and vectors released,
  ``gc.collect()`` run); ``built - base`` is what the store holds;
- ``peak_mb``: the process's high-water mark (``VmHWM``), build included;
- vector-only, keyword and hybrid search p50 over SciFact claims (the default mode at this size:
  the compressed first pass and re-scoring above 200,000 chunks), Recall@10 of the vector
  search against an exact float32 top 10 computed with numpy from the vector file, and
  Recall@10 of ``exact=True`` search against the same;
- the vector store's search at re-scoring depths 1,000 and 2,000, query by query in turn (p50
  and Recall@10 of each: the depth the float16 default re-scores);
- one-document removal after the build: ``remove_p50_ms`` through ``MemoryStore.write(delete=)``
  (20 documents, one write each) and ``bm25_remove_p50_ms`` of the BM25 index alone given only
  the key (20 other documents; what a removal costs without the chunk's tokens).

Versions run one after the other (not interleaved: each needs the whole machine's memory), so the
load average is printed before each. No embedding model runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT / "bench" / "data"
STEP = 20_000
K = 10


def status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(field)


def vector_file(n: int) -> Path:
    """bench_vectors.synthesize(real, n) saved once as .npy (shared with bench_stores.py)."""
    path = DATA / f"stores_vectors_{n}.npy"
    if not path.exists():
        sys.path.insert(0, str(HERE))
        from bench_vectors import PASSAGES_FILE, synthesize

        DATA.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, synthesize(np.load(PASSAGES_FILE), n))
        tmp.replace(path)
    return path


def read_rows(path: Path, start: int, stop: int, dim: int) -> np.ndarray:
    """Rows ``start:stop`` of a float32 .npy matrix, read with plain file reads."""
    with path.open("rb") as fh:
        major, _ = np.lib.format.read_magic(fh)
        if major == 1:
            np.lib.format.read_array_header_1_0(fh)
        else:
            np.lib.format.read_array_header_2_0(fh)
        fh.seek(fh.tell() + start * dim * 4)
        data = fh.read((stop - start) * dim * 4)
    return np.frombuffer(data, dtype=np.float32).reshape(stop - start, dim).copy()


def exact_top(path: Path, n: int, dim: int, queries: np.ndarray) -> list[set[int]]:
    """The exact float32 top 10 of every query, one block of rows at a time."""
    best_scores = np.full((len(queries), K), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), K), dtype=np.int64)
    block = 100_000
    for start in range(0, n, block):
        stop = min(n, start + block)
        scores = queries @ read_rows(path, start, stop, dim).T
        both_s = np.concatenate([best_scores, scores], axis=1)
        both_r = np.concatenate(
            [best_rows, np.broadcast_to(np.arange(start, stop), scores.shape)], axis=1
        )
        top = np.argsort(-both_s, axis=1, kind="stable")[:, :K]
        best_scores = np.take_along_axis(both_s, top, axis=1)
        best_rows = np.take_along_axis(both_r, top, axis=1)
    return [set(r.tolist()) for r in best_rows]


def worker(n: int, n_queries: int) -> dict[str, object]:
    import gc

    sys.path.insert(0, str(HERE))
    import corpus

    import ragkit
    from ragkit.base import DocumentEntry, IndexSettings
    from ragkit.stores.memory import MemoryStore
    from ragkit.types import Chunk

    path = vector_file(n)
    dim = 384
    claims = corpus.queries(n_queries)
    all_claims = list(corpus._all_queries())
    qvecs = np.load(DATA / "scifact_queries_minilm.npy").astype(np.float32)
    qtable = dict(zip(all_claims, qvecs, strict=True))
    queries = np.stack([qtable[c] for c in claims])
    truth = exact_top(path, n, dim, queries)
    gc.collect()
    base = status_mb("VmRSS")

    store = MemoryStore()
    store.configure(IndexSettings(embedder="bench/384", dim=dim, chunk_size=512, chunk_overlap=0))
    t0 = time.perf_counter()
    for start in range(0, n, STEP):
        stop = min(n, start + STEP)
        texts = corpus.passages(stop - start, seed=start)
        vectors = read_rows(path, start, stop, dim)
        entries = []
        for i, text in enumerate(texts):
            doc_id = f"p{start + i}"
            chunk = Chunk(f"{doc_id}#0", text, doc_id, 0, len(text), (), {"bucket": i % 100})
            entries.append(
                DocumentEntry(
                    doc_id,
                    f"{start + i:064x}",
                    {"bucket": (start + i) % 100},
                    (chunk,),
                    (text,),
                    vectors[i : i + 1],
                )
            )
        store.write(entries)
        del entries, texts, vectors
    build_s = time.perf_counter() - t0
    gc.collect()
    built = status_mb("VmRSS")

    def timed(fn: object) -> tuple[float, list[list[str]]]:
        times, out = [], []
        for c in claims:
            t = time.perf_counter()
            out.append(fn(c))  # type: ignore[operator]
            times.append(time.perf_counter() - t)
        return float(np.median(times) * 1000), out

    vec_ms, vec_ids = timed(lambda c: [i for i, _ in store.vector_ranking(qtable[c], K)])
    bm25_ms, _ = timed(lambda c: [i for i, _ in store.keyword_ranking(c, K)])
    from ragkit.retrievers import BM25Retriever, HybridRetriever, VectorRetriever

    hybrid = HybridRetriever(
        [BM25Retriever(store=store), VectorRetriever(store=store, embedder=_Lookup(qtable))]
    )
    hyb_ms, _ = timed(lambda c: hybrid.retrieve(c, K))
    vecs = store._vectors
    assert vecs is not None
    exact_ids = [vecs.search(q, K, exact=True)[0].tolist() for q in queries]

    def rec(found: list[list[int]]) -> float:
        return float(np.mean([len(set(f) & t) / K for f, t in zip(found, truth, strict=True)]))

    vec_rows = [[int(i.split("#")[0][1:]) for i in ids] for ids in vec_ids]

    default_rerank = vecs.rerank
    depth_times: dict[int, list[float]] = {1000: [], 2000: []}
    depth_rows: dict[int, list[list[int]]] = {1000: [], 2000: []}
    for q in queries:
        for depth in (1000, 2000):
            vecs.rerank = depth
            t = time.perf_counter()
            found_keys, _ = vecs.search(q, K)
            depth_times[depth].append(time.perf_counter() - t)
            depth_rows[depth].append(found_keys.tolist())  # key i is passage i
    vecs.rerank = default_rerank
    depth_ratio = np.array(depth_times[2000]) / np.array(depth_times[1000])

    picked = [n // 2 + 997 * j for j in range(40)]
    remove_times = []
    for i in picked[:20]:
        t = time.perf_counter()
        store.write([], delete=[f"p{i}"])
        remove_times.append(time.perf_counter() - t)
    bm25_times = []
    for i in picked[20:]:
        t = time.perf_counter()
        store._bm25.remove([i])  # the store's other parts keep the chunk: the bench ends here
        bm25_times.append(time.perf_counter() - t)
    return {
        "ragkit": ragkit.__file__,
        "n": n,
        "build_s": round(build_s, 1),
        "rss_base_mb": round(base),
        "rss_built_mb": round(built),
        "store_mb": round(built - base),
        "peak_mb": round(status_mb("VmHWM")),
        "vector_p50_ms": round(vec_ms, 2),
        "bm25_p50_ms": round(bm25_ms, 2),
        "hybrid_p50_ms": round(hyb_ms, 2),
        "recall10_vector": round(rec(vec_rows), 4),
        "recall10_exact_mode": round(rec(exact_ids), 4),
        "rerank1000_p50_ms": round(float(np.median(depth_times[1000])) * 1000, 2),
        "rerank2000_p50_ms": round(float(np.median(depth_times[2000])) * 1000, 2),
        "rerank2000_paired_ratio_p50": round(float(np.median(depth_ratio)), 3),
        "recall10_rerank1000": round(rec(depth_rows[1000]), 4),
        "recall10_rerank2000": round(rec(depth_rows[2000]), 4),
        "remove_p50_ms": round(float(np.median(remove_times)) * 1000, 2),
        "bm25_remove_p50_ms": round(float(np.median(bm25_times)) * 1000, 2),
        "vector_bytes_per_chunk": round(vecs.memory_bytes() / n),
        "chunk_bytes_per_chunk": round(store._chunks.memory_bytes() / n),
        "bm25_bytes_per_chunk": round(store._bm25.memory_bytes() / n),
    }


class _Lookup:
    name = "bench/384"
    dim = 384

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def embed_query(self, text: str) -> np.ndarray:
        return self.table[text]

    def embed_documents(self, texts: object) -> np.ndarray:
        raise NotImplementedError


def paired_vectors(n: int, n_queries: int, baseline: Path) -> dict[str, object]:
    """The vector store alone, this tree's against ``baseline``'s ``ragkit/vectors.py`` in one
    process, query by query in turn (the same rows; this tree's store as the memory store
    makes it, float16 from 200,000 rows)."""
    import importlib.util

    from ragkit.vectors import VectorStore

    spec = importlib.util.spec_from_file_location("base_vectors", baseline / "ragkit/vectors.py")
    assert spec is not None
    assert spec.loader is not None
    base_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(base_module)
    x = read_rows(vector_file(n), 0, n, 384)
    queries = np.load(DATA / "scifact_queries_minilm.npy")[:n_queries].astype(np.float32)
    old = base_module.VectorStore(384)
    old.add(np.arange(n), x)
    new = VectorStore(384, half_from=200_000)
    new.add(np.arange(n), x)
    del x
    for q in queries[:3]:  # compile / warm both
        old.search(q, K)
        new.search(q, K)
    t_old, t_new, same = [], [], 0
    for q in queries:
        t = time.perf_counter()
        a, _ = old.search(q, K, with_ties=True)
        t_old.append(time.perf_counter() - t)
        t = time.perf_counter()
        b, _ = new.search(q, K, with_ties=True)
        t_new.append(time.perf_counter() - t)
        same += a[:K].tolist() == b[:K].tolist()
    return {
        "n": n,
        "dtype": str(new.dtype),
        "baseline_p50_ms": round(float(np.median(t_old)) * 1000, 2),
        "this_p50_ms": round(float(np.median(t_new)) * 1000, 2),
        "paired_ratio_p50": round(float(np.median(np.array(t_new) / np.array(t_old))), 3),
        "identical_top10": f"{same}/{len(queries)}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--baseline", type=Path, help="root of another checkout (e.g. main)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--paired-vectors",
        action="store_true",
        help="only time the vector store against --baseline's, query by query in one process",
    )
    args = parser.parse_args()
    if args.paired_vectors:
        print(f"load average: {open('/proc/loadavg', encoding='ascii').read().split()[:3]}")
        print(json.dumps(paired_vectors(args.n, args.queries, args.baseline.resolve())))
        return
    if args.worker:
        print(json.dumps(worker(args.n, args.queries)))
        return
    vector_file(args.n)
    runs = [("this tree", ROOT)]
    if args.baseline is not None:
        runs.append(("baseline", args.baseline.resolve()))
    rows = []
    for label, root in runs:
        load = open("/proc/loadavg", encoding="ascii").read().split()[:3]
        env = {**os.environ, "PYTHONPATH": str(root)}
        cmd = [sys.executable, str(HERE / "bench_memory.py"), "--worker", "--n", str(args.n)]
        cmd += ["--queries", str(args.queries)]
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        row = {"version": label, "load": " ".join(load), **json.loads(out.splitlines()[-1])}
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"load average after: {open('/proc/loadavg', encoding='ascii').read().split()[:3]}")


if __name__ == "__main__":
    main()
