"""Choose the hybrid defaults on SciFact train, then report every method on SciFact test.

Run: ``.venv/bin/python bench/tune_fusion.py [--cache .cache/scifact]``

The SciFact index (default chunking, default embedder) is built once through ragkit's own
``build_dataset_index`` and cached. For each judged query the vector ranking and, for every BM25
(k1, b) in the grid, the BM25 ranking (top 500 chunks each) are computed once; every fusion
setting then re-fuses those rankings with ``ragkit.fusion`` and is scored at the document level
(a document's rank is that of its best chunk) with ``ragkit.evaluation``.

The selection is joint and on qrels-train.tsv only: BM25 (k1, b) x fusion method x vector weight
x depth (x RRF k). The hybrid default is the best train setting over everything; the best
setting of each method is also reported. The test split (qrels.tsv) is evaluated once per
reported setting. Writes bench/out/fusion.json and prints the README table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from ragkit.bm25 import BM25Index  # noqa: E402
from ragkit.evaluation import (  # noqa: E402
    build_dataset_index,  # noqa: E402
    chunk_hits_to_documents,
    evaluate_run,
    load_beir,
)
from ragkit.fusion import fuse  # noqa: E402
from ragkit.retrievers import BM25Retriever  # noqa: E402

SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
DEPTH = 500
DEPTHS = [100, 200, 500]  # candidates per retriever before fusion
WEIGHTS = [0.3, 0.4, 0.5, 0.6, 0.7]  # weight of the vector side; bm25 gets 1 - w
RRF_KS = [10, 60]
BM25_GRID = [(0.9, 0.4), (0.9, 0.75), (1.2, 0.4), (1.2, 0.5), (1.2, 0.75), (1.5, 0.75)]


def ranked(retriever, queries):  # type: ignore[no-untyped-def]
    return {
        qid: [(h.chunk.id, h.score) for h in retriever.retrieve(text, DEPTH)]
        for qid, text in queries.items()
    }


def score(bm25_run, vector_run, qrels, method, weight=0.5, rrf_k=60, depth=100):  # type: ignore[no-untyped-def]
    run = {}
    for qid in qrels:
        b, v = bm25_run[qid][:depth], vector_run[qid][:depth]
        if method == "bm25":
            fused = b
        elif method == "vector":
            fused = v
        else:
            fused = fuse([b, v], method, weights=[1 - weight, weight], rrf_k=rrf_k)
        run[qid] = chunk_hits_to_documents(fused, 100)
    return evaluate_run(run, qrels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=str(ROOT / ".cache" / "scifact"))
    args = parser.parse_args()
    train = load_beir(SCIFACT, qrels="qrels-train.tsv")
    test = load_beir(SCIFACT, qrels="qrels.tsv")
    started = time.perf_counter()
    index = build_dataset_index(train.corpus, cache=args.cache)
    print(f"index: {len(index)} chunks in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    queries = {**train.queries, **test.queries}
    vector_run = ranked(index.retriever("vector"), queries)
    base = index.retriever("bm25")
    assert isinstance(base, BM25Retriever)
    bm25_runs = {}
    for k1, b in BM25_GRID:
        config = {**base.bm25.config(), "k1": k1, "b": b}
        alt = BM25Retriever(
            bm25=BM25Index.from_state(config, base.bm25.state()), chunks=base.chunks
        )
        bm25_runs[(k1, b)] = ranked(alt, queries)

    settings = [("rrf", w, k, d) for w in WEIGHTS for k in RRF_KS for d in DEPTHS]
    settings += [(m, w, 60, d) for m in ("minmax", "zscore") for w in WEIGHTS for d in DEPTHS]
    tried = []
    for (k1, b), bm25_run in bm25_runs.items():
        for method, w, k, d in settings:
            n = score(bm25_run, vector_run, train.qrels, method, w, k, d)["ndcg@10"]
            tried.append(
                {
                    "ndcg@10": n,
                    "k1": k1,
                    "b": b,
                    "method": method,
                    "weight_vector": w,
                    "rrf_k": k,
                    "depth": d,
                }
            )
        print(f"bm25 k1={k1} b={b} done", file=sys.stderr)

    def best(rows):  # type: ignore[no-untyped-def]
        return max(rows, key=lambda r: (r["ndcg@10"], -abs(r["weight_vector"] - 0.5)))

    report: dict[str, object] = {"grid": tried}
    default = best(tried)
    chosen = (default["k1"], default["b"])
    rows = []
    for name in ("bm25", "vector"):
        rows.append(
            (
                name,
                f"k1={chosen[0]}, b={chosen[1]}" if name == "bm25" else "",
                score(bm25_runs[chosen], vector_run, train.qrels, name)["ndcg@10"],
                score(bm25_runs[chosen], vector_run, test.qrels, name),
            )
        )
    for method in ("zscore", "minmax", "rrf"):
        r = best([t for t in tried if t["method"] == method and (t["k1"], t["b"]) == chosen])
        setting = f"vector weight {r['weight_vector']}, depth {r['depth']}" + (
            f", k={r['rrf_k']}" if method == "rrf" else ""
        )
        rows.append(
            (
                f"hybrid {method}",
                setting,
                r["ndcg@10"],
                score(
                    bm25_runs[chosen],
                    vector_run,
                    test.qrels,
                    method,
                    r["weight_vector"],
                    r["rrf_k"],
                    r["depth"],
                ),
            )
        )
    rows.append(
        (
            "hybrid rrf",
            "equal weights, depth 100, k=60",
            score(bm25_runs[chosen], vector_run, train.qrels, "rrf", 0.5, 60, 100)["ndcg@10"],
            score(bm25_runs[chosen], vector_run, test.qrels, "rrf", 0.5, 60, 100),
        )
    )
    report["default"] = default
    report["rows"] = [
        {"retriever": a, "setting": s, "train_ndcg@10": t, "test": m} for a, s, t, m in rows
    ]
    out = HERE / "out" / "fusion.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"chosen on train: {json.dumps(default)}")
    print(
        "| retriever | setting (best on train) | train nDCG@10 | test nDCG@10 | Recall@10 "
        "| Recall@100 | MRR@10 |"
    )
    print("|---|---|---|---|---|---|---|")
    for a, s, t, m in rows:
        print(
            f"| {a} | {s} | {t:.4f} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | "
            f"{m['recall@100']:.4f} | {m['mrr@10']:.4f} |"
        )


if __name__ == "__main__":
    main()
