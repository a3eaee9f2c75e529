"""The exhaustive BM25 kernel (a hybrid search's depth) against another version of it, paired.

Usage::

    git show REV:ragkit/_bm25_numba.py > /tmp/old_bm25_numba.py
    PYTHONPATH=$PWD .venv/bin/python bench/bench_bm25_exhaustive.py /tmp/old_bm25_numba.py [N] [K]

Builds a ``BM25Index`` of N bench/corpus.py passages (default 100,000), then runs 200 SciFact
claims at depth K (default 500) through this checkout's kernel and the given file's, turn about
per query (which goes first alternates), checks the results are equal bit for bit, and prints
p50 / p95 and the paired median ratio. The other file must take the same arguments.
"""

import importlib.util
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from corpus import passages, queries  # noqa: E402

import ragkit.bm25 as bm  # noqa: E402
from ragkit.analyzer import Analyzer  # noqa: E402

spec = importlib.util.spec_from_file_location("old_bm25_numba", sys.argv[1])
assert spec is not None
assert spec.loader is not None
old = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = old  # numba's cache finds the module by name
spec.loader.exec_module(old)
n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
k = int(sys.argv[3]) if len(sys.argv) > 3 else 500
an = Analyzer()
texts = passages(n)
idx = bm.BM25Index()
for s in range(0, n, 20000):
    idx.add_tokens(list(range(s, min(n, s + 20000))), [an(t) for t in texts[s : s + 20000]])
qs = [an(q) for q in queries(203, seed=11)]
new_k = bm._numba_kernel()
oldk = old


def run(kern: Any, q: list[str]) -> tuple[float, Any]:
    bm._kernel = kern
    t = time.perf_counter()
    r = idx.search_tokens(q, k)
    return time.perf_counter() - t, r


for q in qs[:3]:
    run(oldk, q)
    run(new_k, q)
T: dict[str, list[float]] = {"old": [], "new": []}
for i, q in enumerate(qs[3:]):
    order = [("old", oldk), ("new", new_k)] if i % 2 else [("new", new_k), ("old", oldk)]
    got = {}
    for name, kern in order:
        t, got[name] = run(kern, q)
        T[name].append(t)
    assert got["old"][0].tolist() == got["new"][0].tolist()
    assert got["old"][1].tolist() == got["new"][1].tolist()
print("n", n, "k", k, "load", Path("/proc/loadavg").read_text().split()[:3])
for name, x in T.items():
    p50, p95 = statistics.median(x) * 1e3, np.percentile(x, 95) * 1e3
    print(f"{name} p50 {p50:.3f} ms p95 {p95:.3f}")
ratios = [a / b for a, b in zip(T["new"], T["old"], strict=True)]
print(f"new/old paired p50 {statistics.median(ratios):.3f}")
