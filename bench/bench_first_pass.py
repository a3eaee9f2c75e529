"""The 1-bit first pass of ``VectorStore`` against one sequential read of its codes, in one run.

Usage::

    .venv/bin/python bench/bench_first_pass.py [--n 1000000] [--queries 100] [--baseline PATH]

Vectors are bench_vectors.py's MiniLM-like set (real SciFact passage vectors, then mixtures of
them plus noise) and its real SciFact claim vectors as queries. Per query, interleaved so that a
shared CPU slows each alike: the floor (one sequential pass over the codes: a numba XOR of every
64-bit word, which reads them as fast as memory and the core allow), the first pass of this
checkout (candidates only), and with ``--baseline`` the first pass of another checkout's
``ragkit/vectors.py`` (e.g. main's). Recall@10 of the two-stage search (first pass, then exact
re-scoring of ``rerank`` candidates) against exact search, for each kernel. Reports medians,
ratios to the floor, the load average. Writes bench/out/first_pass.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_vectors import real_vectors, synthesize  # noqa: E402

from ragkit import vectors  # noqa: E402

OUT = HERE / "out" / "first_pass.json"
K = 10


@numba.njit(cache=True, nogil=True)
def read_floor(words: Any) -> Any:  # pragma: no cover
    acc = np.uint64(0)
    for i in range(words.shape[0]):
        acc ^= words[i]
    return acc


def load_kernel(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("baseline_vectors", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._build_numba_kernel()


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rerank", type=int, default=1000)
    parser.add_argument("--baseline", type=Path, help="another checkout's ragkit/vectors.py")
    args = parser.parse_args()
    real, claims = real_vectors()
    vecs = synthesize(real, args.n)
    codes = vectors._sign_codes(vecs, -(-vecs.shape[1] // 64))
    flat = codes.reshape(-1)
    queries = claims[: args.queries]
    kernels = {"this checkout": vectors._build_numba_kernel()}
    if args.baseline:
        kernels["baseline"] = load_kernel(args.baseline)
    read_floor(flat[:8])
    for kernel in kernels.values():
        kernel(codes[:100], queries[0], 10)
    times: dict[str, list[float]] = {"floor": [], **{name: [] for name in kernels}}
    recall: dict[str, list[float]] = {name: [] for name in kernels}
    load_before = load_average()
    for q in queries:
        exact = set(np.argsort(-(vecs @ q))[:K].tolist())
        t = time.perf_counter()
        read_floor(flat)
        times["floor"].append(time.perf_counter() - t)
        for name, kernel in kernels.items():
            t = time.perf_counter()
            rows = kernel(codes, q, args.rerank)
            times[name].append(time.perf_counter() - t)
            top = rows[np.argsort(-(vecs[rows] @ q))[:K]]
            recall[name].append(len(exact & set(top.tolist())) / K)
    medians = {name: statistics.median(v) for name, v in times.items()}
    floor = medians["floor"]
    result = {
        "n": args.n,
        "queries": len(queries),
        "rerank": args.rerank,
        "codes_mb": round(codes.nbytes / 1e6, 1),
        "median_ms": {name: round(m * 1000, 2) for name, m in medians.items()},
        "ratio_to_floor": {name: round(m / floor, 2) for name, m in medians.items()},
        "recall_at_10": {name: round(float(np.mean(v)), 4) for name, v in recall.items()},
        "load_average": [load_before, load_average()],
    }
    print(
        f"\n### 1-bit first pass, {args.n:,} vectors ({result['codes_mb']} MB of codes), "
        f"{len(queries)} queries, rerank {args.rerank}\n"
    )
    print("| pass | median ms | ratio to the read floor | Recall@10 after re-scoring |")
    print("|---|---:|---:|---:|")
    for name, m in medians.items():
        r = result["recall_at_10"].get(name, "")
        print(f"| {name} | {m * 1000:.2f} | {m / floor:.2f} | {r} |")
    print(f"\nload average before / after: {load_before} / {load_average()}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
