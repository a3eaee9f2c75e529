"""Choose the hybrid defaults on SciFact train, then report every method on SciFact test.

Run: ``.venv/bin/python bench/tune_fusion.py [--cache .cache/scifact]``

The SciFact index (default chunking, default embedder) is built once through ragkit's own
``build_dataset_index`` and cached. For each judged query the BM25 and vector rankings (top 500
chunks each) are computed once; every fusion setting then re-fuses those rankings with
``ragkit.fusion`` and is scored at the document level (a document's rank is that of its best
chunk) with ``ragkit.evaluation``. Settings are chosen on qrels-train.tsv only; the test split
(qrels.tsv) is evaluated once per method with the chosen setting. Writes bench/out/fusion.json
and prints the README table.
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

from ragkit.evaluation import chunk_hits_to_documents, evaluate_run, load_beir  # noqa: E402
from ragkit.fusion import fuse  # noqa: E402
from ragkit.index import build_dataset_index  # noqa: E402

SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
DEPTH = 500
DEPTHS = [25, 50, 100, 200, 500]  # candidates per retriever before fusion
WEIGHTS = [round(0.1 * i, 1) for i in range(11)]  # weight of the vector side; bm25 gets 1 - w
RRF_KS = [10, 30, 60, 100]


def rankings(index, queries):  # type: ignore[no-untyped-def]
    bm25, vector = index.retriever("bm25"), index.retriever("vector")
    out = {}
    for qid, text in queries.items():
        out[qid] = (
            [(h.chunk.id, h.score) for h in bm25.retrieve(text, DEPTH)],
            [(h.chunk.id, h.score) for h in vector.retrieve(text, DEPTH)],
        )
    return out


def score(runs, qrels, method, weight, rrf_k, depth=100):  # type: ignore[no-untyped-def]
    run = {}
    for qid, (b, v) in runs.items():
        b, v = b[:depth], v[:depth]
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
    train_runs, test_runs = rankings(index, train.queries), rankings(index, test.queries)

    grid: dict[str, list[tuple[float, int, int]]] = {
        "rrf": [(w, k, d) for w in WEIGHTS[1:-1] for k in RRF_KS for d in DEPTHS],
        "minmax": [(w, 60, d) for w in WEIGHTS[1:-1] for d in DEPTHS],
        "zscore": [(w, 60, d) for w in WEIGHTS[1:-1] for d in DEPTHS],
    }
    report: dict[str, dict[str, object]] = {}
    for method in ("bm25", "vector"):
        report[method] = {
            "test": score(test_runs, test.qrels, method, 0, 60),
            "train": score(train_runs, train.qrels, method, 0, 60),
        }
    for method, settings in grid.items():
        tried = [
            (score(train_runs, train.qrels, method, w, k, d)["ndcg@10"], w, k, d)
            for w, k, d in settings
        ]
        best_train, w, k, d = max(tried, key=lambda t: (t[0], -abs(t[1] - 0.5)))
        equal = score(train_runs, train.qrels, method, 0.5, 60)["ndcg@10"]
        report[method] = {
            "weight_vector": w,
            "rrf_k": k,
            "depth": d,
            "train_ndcg@10": best_train,
            "train_ndcg@10_equal_weights": equal,
            "test": score(test_runs, test.qrels, method, w, k, d),
            "test_equal_weights": score(test_runs, test.qrels, method, 0.5, 60),
            "grid": [
                {"ndcg@10": n, "weight_vector": ww, "rrf_k": kk, "depth": dd}
                for n, ww, kk, dd in tried
            ],
        }
    out = HERE / "out" / "fusion.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print("| retriever | setting (chosen on train) | nDCG@10 | Recall@10 | Recall@100 | MRR@10 |")
    print("|---|---|---|---|---|---|")
    for method, r in report.items():
        t = r["test"]
        setting = (
            ""
            if method in ("bm25", "vector")
            else (
                f"vector weight {r['weight_vector']}, depth {r['depth']}"
                + (f", k={r['rrf_k']}" if method == "rrf" else "")
            )
        )
        print(
            f"| {method} | {setting} | {t['ndcg@10']:.4f} | {t['recall@10']:.4f} | "  # type: ignore[index]
            f"{t['recall@100']:.4f} | {t['mrr@10']:.4f} |"
        )  # type: ignore[index]
        if method not in ("bm25", "vector"):
            e = r["test_equal_weights"]
            print(
                f"| {method} | equal weights, depth 100 "  # type: ignore[index]
                f"| {e['ndcg@10']:.4f} | {e['recall@10']:.4f} | "  # type: ignore[index]
                f"{e['recall@100']:.4f} | {e['mrr@10']:.4f} |"
            )  # type: ignore[index]


if __name__ == "__main__":
    main()
