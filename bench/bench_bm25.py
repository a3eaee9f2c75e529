"""Benchmark ragkit's BM25Index against rank_bm25 and bm25s on a synthetic SciFact corpus.

Run: ``.venv/bin/python bench/bench_bm25.py [--n 100000] [--queries 50] [--rank-queries 5]``

Peer mode (issue 17): ``.venv/bin/python bench/bench_bm25.py --sizes 100000 1000000`` times
ragkit's numba kernel, ragkit's numpy path and bm25s's numba backend (same tokens, k1, b) per
query, interleaved, at each size in one run (the smaller corpora are prefixes of the largest), and
reports p50/p95, paired ratios, top-10 agreement and the growth from the first size to the last.
Writes bench/out/bm25_peer.json.

All systems get the same token lists (ragkit's default analyzer), so only indexing and scoring
are compared. Per-query latencies are measured interleaved (each query runs on every system in
turn) so that load from other processes hits all of them alike; medians and ratios are reported.
Prints a markdown table and writes bench/out/bm25.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # noqa: E402

from ragkit.bm25 import Analyzer, BM25Index  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "bm25.json"


def ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="passages in the corpus")
    parser.add_argument("--queries", type=int, default=50, help="queries for fast systems")
    parser.add_argument("--rank-queries", type=int, default=5, help="queries for rank_bm25")
    parser.add_argument("--updates", type=int, default=20, help="single-doc adds/removes timed")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--no-rank-bm25", action="store_true", help="skip the slow baseline")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="peer mode: these corpus sizes against bm25s-numba"
    )
    args = parser.parse_args()
    if args.sizes:
        peer(sorted(args.sizes), max(args.queries, 200), args.k, args.updates)
        return
    k = args.k
    result: dict[str, object] = {"n": args.n, "queries": args.queries, "k": k}

    t = time.perf_counter()
    texts = corpus.passages(args.n + args.updates, seed=0)
    query_texts = corpus.queries(args.queries, seed=1)
    print(f"corpus: {args.n} passages in {time.perf_counter() - t:.1f}s", file=sys.stderr)

    analyzer = Analyzer()
    t = time.perf_counter()
    tokens = [analyzer(x) for x in texts]
    analyze_s = time.perf_counter() - t
    spare, tokens = tokens[args.n :], tokens[: args.n]
    qtokens = [analyzer(q) for q in query_texts]
    n_tokens = sum(map(len, tokens))
    result["analyze_s"] = round(analyze_s, 2)
    result["tokens_per_doc"] = round(n_tokens / args.n, 1)
    print(f"analyzed {n_tokens} tokens in {analyze_s:.1f}s", file=sys.stderr)

    keys = np.arange(args.n, dtype=np.int64)
    build: dict[str, float] = {}
    systems: dict[str, object] = {}
    variants: tuple[Literal["lucene", "okapi"], ...] = ("lucene", "okapi")
    for variant in variants:
        index = BM25Index(variant=variant)
        t = time.perf_counter()
        index.add_tokens(keys, tokens)
        build[f"ragkit-{variant}"] = time.perf_counter() - t
        systems[f"ragkit-{variant}"] = index
    lucene: BM25Index = systems["ragkit-lucene"]  # type: ignore[assignment]
    okapi: BM25Index = systems["ragkit-okapi"]  # type: ignore[assignment]

    import bm25s

    bm = bm25s.BM25(method="lucene", k1=lucene.k1, b=lucene.b, backend="numpy")
    t = time.perf_counter()
    bm.index(tokens, show_progress=False)
    build["bm25s"] = time.perf_counter() - t

    rank = None
    if not args.no_rank_bm25:
        import rank_bm25

        t = time.perf_counter()
        rank = rank_bm25.BM25Okapi(tokens)
        build["rank_bm25"] = time.perf_counter() - t
    print("built:", {name: round(s, 1) for name, s in build.items()}, file=sys.stderr)

    def ragkit_query(index: BM25Index, q: list[str]) -> None:
        index.search_tokens(q, k)

    def bm25s_query(q: list[str]) -> None:
        bm.retrieve([q], k=k, show_progress=False, n_threads=0)

    # Warm-up (first-query caches: length norms, okapi's mean idf).
    for q in qtokens[:2]:
        ragkit_query(lucene, q)
        ragkit_query(okapi, q)
        bm25s_query(q)

    # Twins of both indexes whose per-term cache is emptied before every query: the cost of a
    # query sharing no term with any earlier one (separate objects, so the twins' clearing
    # does not cool the main indexes, and vice versa).
    lucene_cold = BM25Index.from_state(lucene.config(), lucene.state())
    okapi_cold = BM25Index.from_state(okapi.config(), okapi.state())
    for q in qtokens[:2]:
        ragkit_query(lucene_cold, q)
        ragkit_query(okapi_cold, q)

    def ragkit_cold(index: BM25Index, q: list[str]) -> None:
        index._contrib_cache.clear()  # as if no earlier query shared a term with this one
        index._contrib_size = 0
        index.search_tokens(q, k)

    lat: dict[str, list[float]] = {
        "ragkit-lucene": [],
        "ragkit-lucene (no term cache)": [],
        "ragkit-okapi": [],
        "ragkit-okapi (no term cache)": [],
        "bm25s": [],
    }
    for q in qtokens:
        runs: tuple[tuple[str, Callable[[], None]], ...] = (
            ("ragkit-lucene", partial(ragkit_query, lucene, q)),
            ("ragkit-lucene (no term cache)", partial(ragkit_cold, lucene_cold, q)),
            ("ragkit-okapi", partial(ragkit_query, okapi, q)),
            ("ragkit-okapi (no term cache)", partial(ragkit_cold, okapi_cold, q)),
            ("bm25s", partial(bm25s_query, q)),
        )
        for name, fn in runs:
            t = time.perf_counter()
            fn()
            lat[name].append(time.perf_counter() - t)

    overlap: list[float] = []
    max_rel_err = 0.0
    if rank is not None:
        lat["rank_bm25"] = []
        for q in qtokens[: args.rank_queries]:
            t = time.perf_counter()
            scores = rank.get_scores(q)
            top = np.argsort(-scores, kind="stable")[:k]
            lat["rank_bm25"].append(time.perf_counter() - t)
            got_keys, got_scores = okapi.search_tokens(q, k)
            overlap.append(len(set(top.tolist()) & set(got_keys.tolist())) / k)
            want = scores[got_keys]
            max_rel_err = max(max_rel_err, float(np.max(np.abs(got_scores - want) / want)))

    # Single-document updates on the 100k index: add a new passage, remove an old one.
    add_s: list[float] = []
    remove_s: list[float] = []
    query_after_s: list[float] = []
    rng = np.random.default_rng(0)
    victims = rng.choice(args.n, size=args.updates, replace=False).tolist()
    for i in range(args.updates):
        t = time.perf_counter()
        lucene.add_tokens([args.n + i], [spare[i]])
        add_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        lucene.remove([victims[i]])
        remove_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        ragkit_query(lucene, qtokens[i % len(qtokens)])
        query_after_s.append(time.perf_counter() - t)

    postings = len(lucene._pslots) + lucene._delta_size
    mem = {
        "ragkit_bytes_per_chunk": round(lucene.memory_bytes() / len(lucene), 1),
        "ragkit_postings_per_chunk": round(postings / len(lucene), 1),
        "bm25s_bytes_per_chunk": round(
            sum(np.asarray(v).nbytes for v in bm.scores.values() if hasattr(v, "nbytes")) / args.n,
            1,
        ),
    }

    summary = {
        name: {"p50_ms": ms(statistics.median(v)), "p95_ms": ms(pct(v, 95)), "runs": len(v)}
        for name, v in lat.items()
    }
    p50 = {name: statistics.median(v) for name, v in lat.items()}
    ratios = {
        "ragkit_lucene_p50_over_bm25s_p50": round(p50["ragkit-lucene"] / p50["bm25s"], 2),
        "ragkit_lucene_no_cache_p50_over_bm25s_p50": round(
            p50["ragkit-lucene (no term cache)"] / p50["bm25s"], 2
        ),
    }
    if rank is not None:
        ratios["rank_bm25_p50_over_ragkit_okapi_p50"] = round(
            p50["rank_bm25"] / p50["ragkit-okapi"], 1
        )
        ratios["rank_bm25_p50_over_ragkit_okapi_no_cache_p50"] = round(
            p50["rank_bm25"] / p50["ragkit-okapi (no term cache)"], 1
        )
    updates = {
        "add_one_p50_ms": ms(statistics.median(add_s)),
        "add_one_max_ms": ms(max(add_s)),
        "remove_one_p50_ms": ms(statistics.median(remove_s)),
        "remove_one_max_ms": ms(max(remove_s)),
        "query_after_update_p50_ms": ms(statistics.median(query_after_s)),
    }
    result.update(
        {
            "build_s": {name: round(s, 2) for name, s in build.items()},
            "latency": summary,
            "ratios": ratios,
            "updates": updates,
            "memory": mem,
            "okapi_vs_rank_bm25": {
                "top10_overlap_mean": round(float(np.mean(overlap)), 3) if overlap else None,
                "max_rel_score_err": max_rel_err if overlap else None,
            },
            "python": platform.python_version(),
            "numpy": np.__version__,
            "bm25s": bm25s.__version__,
        }
    )

    print(f"\n### BM25 at {args.n:,} passages ({result['tokens_per_doc']} terms/passage), k={k}\n")
    print("| system | build s | p50 ms | p95 ms | queries |")
    print("|---|---:|---:|---:|---:|")
    for name, row in summary.items():
        b = build.get(name)
        b_text = f"{b:.1f}" if b is not None else ""
        print(f"| {name} | {b_text} | {row['p50_ms']} | {row['p95_ms']} | {row['runs']} |")
    print()
    for name, value in ratios.items():
        print(f"- {name}: {value}")
    for name, value in updates.items():
        print(f"- {name}: {value}")
    for name, value in mem.items():
        print(f"- {name}: {value}")
    if overlap:
        print(
            f"- okapi vs rank_bm25: top-{k} overlap {np.mean(overlap):.3f}, "
            f"max relative score error {max_rel_err:.2e}"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {OUT}", file=sys.stderr)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def peer(sizes: list[int], n_queries: int, k: int, n_updates: int) -> None:
    """Issue 17's comparison: ragkit (numba kernel, numpy path) vs bm25s-numba at each size."""
    import bm25s

    import ragkit.bm25 as bm25_module

    largest = sizes[-1]
    t = time.perf_counter()
    analyzer = Analyzer()
    tokens: list[list[str]] = []
    step = 100_000
    for start in range(0, largest + n_updates, step):  # generate and analyse in slices
        count = min(step, largest + n_updates - start)
        tokens.extend(analyzer(x) for x in corpus.passages(count, seed=start))
    spare = tokens[largest:]
    del tokens[largest:]
    qtokens = [analyzer(q) for q in corpus.queries(n_queries, seed=1)]
    print(f"analysed {largest:,} passages in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    result: dict[str, object] = {"sizes": sizes, "queries": n_queries, "k": k, "runs": {}}
    rows = []
    for n in sizes:
        # bm25s first: its build peaks higher, and ragkit's index does not exist yet then.
        index = BM25Index()
        bm = bm25s.BM25(method="lucene", k1=index.k1, b=index.b, backend="numba")
        t = time.perf_counter()
        bm.index(tokens[:n], show_progress=False)
        build_bm25s = time.perf_counter() - t
        t = time.perf_counter()
        for start in range(0, n, step):  # in slices: a lower peak than one add of everything
            stop = min(n, start + step)
            index.add_tokens(np.arange(start, stop, dtype=np.int64), tokens[start:stop])
        build_ragkit = time.perf_counter() - t

        def bm25s_numba(q: list[str], bm: bm25s.BM25 = bm) -> list[int]:
            docs, _ = bm.retrieve(
                [q], k=k, show_progress=False, n_threads=0, backend_selection="numba"
            )
            return [int(d) for d in docs[0]]

        def ragkit(q: list[str], numba: bool, index: BM25Index = index) -> list[int]:
            bm25_module._use_numba = numba
            return index.search_tokens(q, k)[0].tolist()

        for q in qtokens[:3]:  # warm-up: compile or load both numba caches, norms
            ragkit(q, True)
            ragkit(q, False)
            bm25s_numba(q)
        names = ("ragkit (numba kernel)", "ragkit (numpy path)", "bm25s (numba)")
        lat: dict[str, list[float]] = {name: [] for name in names}
        same_as_numpy = 0
        same_as_bm25s = 0
        load = load_average()
        for q in qtokens:
            got = {}
            fns = (partial(ragkit, q, True), partial(ragkit, q, False), partial(bm25s_numba, q))
            for name, fn in zip(names, fns, strict=True):
                t = time.perf_counter()
                got[name] = fn()
                lat[name].append(time.perf_counter() - t)
            same_as_numpy += got[names[0]] == got[names[1]]
            same_as_bm25s += got[names[0]] == got[names[2]]
        bm25_module._use_numba = True
        add_s, remove_s = [], []
        for i in range(n_updates):
            t = time.perf_counter()
            index.add_tokens([largest + i], [spare[i]])
            add_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            index.remove([i])
            remove_s.append(time.perf_counter() - t)
        a, b = np.array(lat[names[0]]), np.array(lat[names[2]])
        run = {
            "latency": {
                name: {"p50_ms": ms(statistics.median(v)), "p95_ms": ms(pct(v, 95))}
                for name, v in lat.items()
            },
            "paired_median_ratio_vs_bm25s_numba": round(float(np.median(a / b)), 3),
            "p50_ratio_vs_bm25s_numba": round(float(np.median(a) / np.median(b)), 3),
            "p95_ratio_vs_bm25s_numba": round(pct(list(a), 95) / pct(list(b), 95), 3),
            "paired_median_ratio_vs_numpy_path": round(
                float(np.median(a / np.array(lat[names[1]]))), 3
            ),
            "top10_identical_to_numpy_path": f"{same_as_numpy}/{len(qtokens)}",
            "top10_identical_to_bm25s": f"{same_as_bm25s}/{len(qtokens)}",
            "build_s": {"ragkit": round(build_ragkit, 1), "bm25s": round(build_bm25s, 1)},
            "add_one_p50_ms": ms(statistics.median(add_s)),
            "add_one_max_ms": ms(max(add_s)),
            "remove_one_p50_ms": ms(statistics.median(remove_s)),
            "remove_one_max_ms": ms(max(remove_s)),
            "load_average_before_queries": load,
        }
        result["runs"][str(n)] = run  # type: ignore[index]
        rows.append((n, run, {name: statistics.median(v) for name, v in lat.items()}))
        print(json.dumps({n: run}, indent=1), file=sys.stderr)
        del index, bm
    load = load_average()
    print(f"\n### BM25 against bm25s-numba, k={k}, {n_queries} SciFact claims (load {load})\n")
    print(
        "| chunks | ragkit p50 / p95 ms | ragkit numpy path p50 / p95 ms "
        "| bm25s-numba p50 / p95 ms "
        "| paired ratio | p50 ratio | p95 ratio | top-10 = numpy path | top-10 = bm25s "
        "| add / remove one p50 ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, run, _ in rows:
        lt = run["latency"]
        cells = [f"{lt[name]['p50_ms']} / {lt[name]['p95_ms']}" for name in lt]
        print(
            f"| {n:,} | {' | '.join(cells)} | {run['paired_median_ratio_vs_bm25s_numba']} "
            f"| {run['p50_ratio_vs_bm25s_numba']} | {run['p95_ratio_vs_bm25s_numba']} "
            f"| {run['top10_identical_to_numpy_path']} | {run['top10_identical_to_bm25s']} "
            f"| {run['add_one_p50_ms']} / {run['remove_one_p50_ms']} |"
        )
    if len(rows) > 1:
        (n0, _, p0), (n1, _, p1) = rows[0], rows[-1]
        growth = {name: round(p1[name] / p0[name], 2) for name in p0}
        result["growth_p50"] = growth
        text = ", ".join(f"{name}: {v}x" for name, v in growth.items())
        print(f"\n- p50 growth {n0:,} -> {n1:,}: {text}")
    out = OUT.parent / "bm25_peer.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
