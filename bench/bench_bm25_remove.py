"""BM25 removal and search on a loaded index, this tree against another checkout, alternating.

Usage::

    RAGKIT_SCIFACT=../shared/data/scifact PYTHONPATH=$PWD .venv/bin/python \
        bench/bench_bm25_remove.py --n 300000 --baseline ../../main [--rounds 3]

Builds a ``BM25Index`` of ``n`` bench/corpus.py passages once (saved under bench/data as its
``state()`` arrays and ``config()``), then runs each version in a fresh process, alternating
``rounds`` times: load the state with ``from_state``; time the first removal of one key
(a loaded index has no forward index: main derives it here) and 20 more one-key removals
without tokens; then the median of 100 SciFact claims searched three times (top 10). The
versions read the same arrays, so their search results are the same; the output prints each
process's figures and the load average.
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
DATA = HERE / "data"


def state_files(n: int) -> tuple[Path, Path]:
    arrays, config = DATA / f"bm25_state_{n}.npz", DATA / f"bm25_state_{n}.json"
    if not arrays.exists():
        sys.path.insert(0, str(HERE))
        import corpus

        from ragkit.bm25 import BM25Index

        index = BM25Index()
        for start in range(0, n, 20_000):
            texts = corpus.passages(min(20_000, n - start), seed=start)
            index.add(np.arange(start, start + len(texts)), texts)
        DATA.mkdir(parents=True, exist_ok=True)
        np.savez(arrays, **index.state())  # type: ignore[arg-type]
        config.write_text(json.dumps(index.config()), encoding="utf-8")
    return arrays, config


def worker(n: int) -> dict[str, object]:
    sys.path.insert(0, str(HERE))
    import corpus

    import ragkit
    from ragkit.bm25 import BM25Index

    arrays, config = state_files(n)
    index = BM25Index.from_state(json.loads(config.read_text(encoding="utf-8")), np.load(arrays))
    claims = corpus.queries(100)
    times = []
    for key in [n // 2 + 997 * j for j in range(21)]:
        t = time.perf_counter()
        index.remove([key])
        times.append(time.perf_counter() - t)
    for claim in claims[:5]:
        index.search(claim, 10)
    search = []
    for _ in range(3):
        for claim in claims:
            t = time.perf_counter()
            index.search(claim, 10)
            search.append(time.perf_counter() - t)
    return {
        "ragkit": ragkit.__file__,
        "first_remove_ms": round(times[0] * 1000, 1),
        "remove_p50_ms": round(float(np.median(times[1:])) * 1000, 3),
        "search_p50_ms": round(float(np.median(search)) * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, required=False)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.n)))
        return
    state_files(args.n)
    roots = [HERE.parent] + ([args.baseline.resolve()] if args.baseline else [])
    for _ in range(args.rounds):
        for root in roots:
            load = open("/proc/loadavg", encoding="ascii").read().split()[:3]
            env = {**os.environ, "PYTHONPATH": str(root)}
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--n", str(args.n)]
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            print(json.dumps({"load": " ".join(load), **json.loads(out.splitlines()[-1])}))


if __name__ == "__main__":
    main()
