"""The 1-bit first pass of ``VectorStore`` against one sequential read of its codes, in one run.

Usage::

    .venv/bin/python bench/bench_first_pass.py [--n 1000000] [--queries 100] [--baseline PATH]

Vectors are bench_vectors.py's MiniLM-like set (real SciFact passage vectors, then mixtures of
them plus noise) and its real SciFact claim vectors as queries. Per query, interleaved in a
rotating order, each after a 1 ms sleep, so that a shared CPU slows each alike: the floor (one
sequential pass over the codes: a numba XOR of every 64-bit word, which reads them as fast as
memory and the core allow), the first pass of this checkout (candidates only), and with
``--baseline`` the first pass of another checkout's
``ragkit/vectors.py`` (e.g. main's). Recall@10 of the two-stage search (first pass, then exact
re-scoring of ``rerank`` candidates) against exact search, for each kernel, and how many
queries got exactly the baseline's candidate set. Then one-document adds and removes on a
store of ``n`` vectors, for this checkout and the baseline (one store at a time). Reports
medians of wall time and of the thread's CPU time (on a shared machine a pass of a few ms is
often descheduled for a whole time slice, ~8 ms here; CPU time leaves those out), ratios to the
floor, the load average. Writes bench/out/first_pass.json.
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


def timed(call: Any) -> tuple[Any, float, float]:
    """``call()``'s result, wall seconds and this thread's CPU seconds."""
    wall, cpu = time.perf_counter(), time.thread_time()
    result = call()
    return result, time.perf_counter() - wall, time.thread_time() - cpu


def load_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("baseline_vectors", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def first_pass(module: Any, vecs: np.ndarray, width: int | None = None) -> Any:
    """``query, count -> rows``: the module's numba first pass over its own code layout
    (blocked codes since this branch, row-major uint64 words before); ``width`` forces a
    PSHUFB width (bytes; 0: the portable build) where the module has that choice."""
    kernel = module._build_numba_kernel() if width is None else module._build_numba_kernel(width)
    if hasattr(module, "_to_blocks"):
        codes = module._sign_bytes(vecs)
        blocks, ones, n = module._to_blocks(codes), module._ones(codes), vecs.shape[0]
        return lambda q, count: kernel(blocks, ones, n, q, count)
    words = module._sign_codes(vecs, -(-vecs.shape[1] // 64))
    return lambda q, count: kernel(words, q, count)


def updates(module: Any, vecs: np.ndarray, rounds: int = 50) -> dict[str, float]:
    """Median ms of one-document adds and removes (a random stored key: the last row moves
    into its place) on a store of ``vecs``."""
    store = module.VectorStore(vecs.shape[1])
    store.add(np.arange(vecs.shape[0]), vecs)
    n = vecs.shape[0]
    rng = np.random.default_rng(1)
    add_t, remove_t = [], []
    for i in range(rounds):
        v = rng.standard_normal((1, vecs.shape[1])).astype(np.float32)
        t = time.perf_counter()
        store.add([n + i], v)
        add_t.append(time.perf_counter() - t)
    for key in rng.choice(n, size=rounds, replace=False).tolist():
        t = time.perf_counter()
        store.remove([key])
        remove_t.append(time.perf_counter() - t)
    return {
        "add_one_ms": round(statistics.median(add_t) * 1000, 3),
        "remove_one_ms": round(statistics.median(remove_t) * 1000, 3),
    }


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rerank", type=int, default=1000)
    parser.add_argument("--baseline", type=Path, help="another checkout's ragkit/vectors.py")
    parser.add_argument(
        "--widths",
        default="",
        help="extra PSHUFB widths of this checkout to time, e.g. 32,0 (AVX2, portable build)",
    )
    args = parser.parse_args()
    real, claims = real_vectors()
    vecs = synthesize(real, args.n)
    codes = vectors._sign_bytes(vecs)
    flat = np.ascontiguousarray(codes).view(np.uint64).reshape(-1)  # 384 bits: whole words
    queries = claims[: args.queries]
    baseline = load_module(args.baseline) if args.baseline else None
    kernels = {"this checkout": first_pass(vectors, vecs)}
    for width in filter(None, args.widths.split(",")):
        kernels[f"this checkout, width {int(width)}"] = first_pass(vectors, vecs, int(width))
    if baseline is not None:
        kernels["baseline"] = first_pass(baseline, vecs)
    read_floor(flat[:8])
    for kernel in kernels.values():
        kernel(queries[0], 10)
    same = 0
    times: dict[str, list[float]] = {"floor": [], **{name: [] for name in kernels}}
    cpu: dict[str, list[float]] = {name: [] for name in times}
    recall: dict[str, list[float]] = {name: [] for name in kernels}
    load_before = load_average()
    passes: dict[str, Any] = {"floor": lambda _q: read_floor(flat)}
    passes.update({name: lambda q, k=kernel: k(q, args.rerank) for name, kernel in kernels.items()})
    names = list(passes)
    for i, q in enumerate(queries):
        exact = set(np.argsort(-(vecs @ q))[:K].tolist())
        found = {}
        # Each query starts with another pass, and each pass runs after a 1 ms sleep, so that
        # none is always the one measured late in the scheduler's time slice.
        for name in names[i % len(names) :] + names[: i % len(names)]:
            time.sleep(0.001)
            rows, wall, used = timed(lambda name=name, q=q: passes[name](q))
            times[name].append(wall)
            cpu[name].append(used)
            if name != "floor":
                found[name] = set(rows.tolist())
                top = rows[np.argsort(-(vecs[rows] @ q))[:K]]
                recall[name].append(len(exact & set(top.tolist())) / K)
        same += found.get("baseline") == found["this checkout"]
        mine = [rows for name, rows in found.items() if name.startswith("this checkout")]
        assert all(rows == mine[0] for rows in mine), "the widths' candidates differ"
    medians = {name: statistics.median(v) for name, v in times.items()}
    floor = medians["floor"]
    cpu_medians = {name: statistics.median(v) for name, v in cpu.items()}
    cpu_floor = cpu_medians["floor"]
    result = {
        "n": args.n,
        "queries": len(queries),
        "rerank": args.rerank,
        "codes_mb": round(codes.nbytes / 1e6, 1),
        "median_ms": {name: round(m * 1000, 2) for name, m in medians.items()},
        "ratio_to_floor": {name: round(m / floor, 2) for name, m in medians.items()},
        "cpu_median_ms": {name: round(m * 1000, 2) for name, m in cpu_medians.items()},
        "cpu_ratio_to_floor": {name: round(m / cpu_floor, 2) for name, m in cpu_medians.items()},
        "recall_at_10": {name: round(float(np.mean(v)), 4) for name, v in recall.items()},
        "same_candidates_as_baseline": same if baseline is not None else None,
        "pshufb_width": vectors._pshufb_width(),
        "load_average": [load_before, load_average()],
    }
    del kernels
    result["updates"] = {"this checkout": updates(vectors, vecs)}
    if baseline is not None:
        result["updates"]["baseline"] = updates(baseline, vecs)
    print(
        f"\n### 1-bit first pass, {args.n:,} vectors ({result['codes_mb']} MB of codes), "
        f"{len(queries)} queries, rerank {args.rerank}\n"
    )
    print(
        "| pass | median ms (wall) | ratio to the read floor | median CPU ms | CPU ratio "
        "| Recall@10 after re-scoring |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, m in medians.items():
        r = result["recall_at_10"].get(name)
        c = cpu_medians[name]
        print(
            f"| {name} | {m * 1000:.2f} | **{m / floor:.2f}** | {c * 1000:.2f} | "
            f"**{c / cpu_floor:.2f}** | {'' if r is None else f'{r:.3f}'} |"
        )
    if baseline is not None:
        print(f"\nqueries with the baseline's exact candidate set: {same} / {len(queries)}")
    print(f"PSHUFB width: {result['pshufb_width']} bytes")
    print("\n| store | one-document add, median ms | one-document remove, median ms |")
    print("|---|---:|---:|")
    for name, u in result["updates"].items():
        print(f"| {name} | {u['add_one_ms']} | {u['remove_one_ms']} |")
    print(f"\nload average before / after: {load_before} / {load_average()}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
