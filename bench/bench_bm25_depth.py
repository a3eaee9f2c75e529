"""Where pruning stops paying: the BM25 kernel's pruned and exhaustive searches by k and size.

Usage::

    .venv/bin/python bench/bench_bm25_depth.py [--sizes 20000 100000] [--ks 10 100 200 500]

``BM25Index.search_tokens`` picks block-max pruning (``_bm25_numba.top_candidates``) or reading
every posting of the query's terms (``all_candidates``) by ``k * _EXHAUSTIVE_RATIO >= live
documents``. For each size and k this times both kernels on the same SciFact claims, turn about
per query (numba compiled first), checks they return the same keys and scores, and prints the
medians and the paired median ratio exhaustive / pruned: below 1 the exhaustive read wins.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from corpus import passages, queries  # noqa: E402

import ragkit.bm25 as bm25_module  # noqa: E402
from ragkit.bm25 import BM25Index  # noqa: E402


def run(index: BM25Index, tokens: list[str], k: int, ratio: int) -> tuple[Any, float]:
    bm25_module._EXHAUSTIVE_RATIO = ratio
    t = time.perf_counter()
    got = index.search_tokens(tokens, k, with_ties=True)
    return got, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 50, 100, 200, 300, 500])
    parser.add_argument("--queries", type=int, default=80)
    args = parser.parse_args()
    with open("/proc/loadavg") as f:
        print("load average:", f.read().split()[:3])
    claims = queries(args.queries + 3, seed=7)
    for n in args.sizes:
        index = BM25Index()
        index.add(list(range(n)), passages(n))
        tokens = [index.analyzer(q) for q in claims]
        for t in tokens[:3]:  # compile both kernels, build the block bounds
            run(index, t, 500, 0)
            run(index, t, 500, 10**9)
        for k in args.ks:
            pruned, exhaustive = [], []
            for t in tokens[3:]:
                a, ta = run(index, t, k, 0)
                b, tb = run(index, t, k, 10**9)
                assert np.array_equal(a[0], b[0]), (n, k)
                assert np.array_equal(a[1], b[1]), (n, k)
                pruned.append(ta)
                exhaustive.append(tb)
            paired = statistics.median(b / a for a, b in zip(pruned, exhaustive, strict=True))
            print(
                f"n={n:>8} k={k:>4} pruned {1000 * statistics.median(pruned):7.3f} ms  "
                f"exhaustive {1000 * statistics.median(exhaustive):7.3f} ms  "
                f"paired ratio {paired:.2f}  default: "
                f"{'exhaustive' if k * 400 >= n else 'pruned'}",
                flush=True,
            )


if __name__ == "__main__":
    main()
