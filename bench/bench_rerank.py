"""Measure a reranker on SciFact: nDCG@10 gain and added latency per query.

Usage::

    PYTHONPATH=. .venv/bin/python bench/bench_rerank.py [--split train|test|both]
        [--top-n 20] [--train-queries 150] [--reranker embedder] [--index keyword|hybrid]

Builds (in memory) a keyword-only SciFact index (seconds), or a hybrid one with the default
embedder (minutes), then for each query, interleaved so CPU noise hits both alike: the base
search (top 10) and the same search reranked (top ``top_n`` candidates re-scored, top 10
kept). Reports nDCG@10 of both (documents ranked MaxP from chunks), the gain, and per-query
latency medians and p90 of both and of the difference. Train is for choices (a sample of
``--train-queries`` queries, seeded), test for the table (all, or a seeded sample of
``--test-queries``). Writes bench/out/rerank-<split>.json.

The only offline reranker that ships weights here is ``embedder`` (the default MiniLM
bi-encoder, re-scoring candidates by cosine at query time); no PyPI package ships
cross-encoder weights for offline use (docs/reranking.md). Hosted rerankers (Voyage) cannot be
measured without the network.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ragkit.evaluation import (  # noqa: E402
    build_dataset_index,
    chunk_hits_to_documents,
    load_beir,
    ndcg_at_k,
)
from ragkit.rerankers import RerankRetriever, get_reranker  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data" / "scifact"
K = 10


def run_split(index, reranker, dataset, qids, top_n):  # type: ignore[no-untyped-def]
    base = index.retriever()
    reranked = RerankRetriever(base, reranker, top_n=top_n)
    base_scores, rr_scores, base_ms, rr_ms = [], [], [], []
    for qid in qids:
        text = dataset.queries[qid]
        t0 = time.perf_counter()
        b = base.retrieve(text, K * 3)
        t1 = time.perf_counter()
        r = reranked.retrieve(text, K * 3 if top_n >= K * 3 else top_n)
        t2 = time.perf_counter()
        base_ms.append((t1 - t0) * 1000)
        rr_ms.append((t2 - t1) * 1000)
        for hits, out in ((b, base_scores), (r, rr_scores)):
            docs = chunk_hits_to_documents([(h.chunk.id, h.score) for h in hits], K)
            out.append(ndcg_at_k([d for d, _ in docs], dataset.qrels[qid], K))
    added = [r - b for r, b in zip(rr_ms, base_ms, strict=True)]

    def p90(xs):  # type: ignore[no-untyped-def]
        return sorted(xs)[int(0.9 * (len(xs) - 1))]

    return {
        "queries": len(qids),
        "ndcg10_base": round(statistics.fmean(base_scores), 4),
        "ndcg10_reranked": round(statistics.fmean(rr_scores), 4),
        "gain": round(statistics.fmean(rr_scores) - statistics.fmean(base_scores), 4),
        "base_ms_median": round(statistics.median(base_ms), 1),
        "reranked_ms_median": round(statistics.median(rr_ms), 1),
        "added_ms_median": round(statistics.median(added), 1),
        "added_ms_p90": round(p90(added), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", choices=["train", "test", "both"], default="both")
    parser.add_argument("--top-n", type=int, default=20)
    parser.add_argument("--train-queries", type=int, default=150)
    parser.add_argument("--test-queries", type=int, default=0, help="0: all")
    parser.add_argument("--reranker", default="embedder")
    parser.add_argument("--index", choices=["keyword", "hybrid"], default="keyword")
    args = parser.parse_args()

    test = load_beir(DATA, split="test")
    t0 = time.perf_counter()
    index = build_dataset_index(test.corpus, keyword_only=args.index == "keyword")
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    reranker = get_reranker(args.reranker)
    reranker.rerank("warm up", index.search("warm up", k=2))
    load_s = time.perf_counter() - t0
    result = {
        "reranker": reranker.name,
        "index": args.index,
        "top_n": args.top_n,
        "index_build_s": round(build_s, 1),
        "reranker_load_s": round(load_s, 1),
    }
    if args.split in ("train", "both"):
        train = load_beir(DATA, qrels="qrels-train.tsv")
        qids = sorted(train.queries)
        random.Random(0).shuffle(qids)
        qids = qids[: args.train_queries]
        result["train"] = run_split(index, reranker, train, qids, args.top_n)
        print("train", result["train"], flush=True)
    if args.split in ("test", "both"):
        qids = sorted(test.queries)
        if args.test_queries:
            random.Random(0).shuffle(qids)
            qids = qids[: args.test_queries]
        result["test"] = run_split(index, reranker, test, qids, args.top_n)
        print("test", result["test"], flush=True)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / f"rerank-{args.split}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
