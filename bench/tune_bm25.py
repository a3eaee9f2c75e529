"""Tune the lucene BM25 defaults (k1, b) on SciFact train; report the chosen pair on test.

Run: ``.venv/bin/python bench/tune_bm25.py``

Each SciFact abstract is one document (title + " " + text), analysed once with the default
Analyzer; every (k1, b) pair reuses the same postings via ``BM25Index.from_state``. nDCG@10
uses linear gains, as pytrec_eval's ``ndcg_cut_10`` (BEIR). The pair is picked on train only
(ties: the first in grid order); test is evaluated once, for the chosen pair. Writes
bench/out/tune_bm25.json.
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import SCIFACT  # noqa: E402

from ragkit.bm25 import Analyzer, BM25Index  # noqa: E402

K1S = (0.6, 0.9, 1.2, 1.5)
BS = (0.3, 0.4, 0.5, 0.6, 0.75)
OUT = Path(__file__).resolve().parent / "out" / "tune_bm25.json"


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with path.open(encoding="utf-8") as fh:
        next(fh)  # header
        for line in fh:
            qid, did, score = line.split("\t")
            qrels[qid][did] = int(score)
    return dict(qrels)


def ndcg_at_10(ranked: list[str], rels: dict[str, int]) -> float:
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(rels.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def evaluate(
    index: BM25Index,
    doc_ids: list[str],
    queries: dict[str, list[str]],
    qrels: dict[str, dict[str, int]],
) -> float:
    scores = []
    for qid, rels in qrels.items():
        keys, _ = index.search_tokens(queries[qid], 10)
        scores.append(ndcg_at_10([doc_ids[k] for k in keys.tolist()], rels))
    return float(np.mean(scores))


def main() -> None:
    analyzer = Analyzer()
    doc_ids, docs = [], []
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            doc_ids.append(d["_id"])
            docs.append(analyzer(d["title"] + " " + d["text"]))
    queries = {}
    with (SCIFACT / "queries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            queries[q["_id"]] = analyzer(q["text"])
    train = read_qrels(SCIFACT / "qrels-train.tsv")
    test = read_qrels(SCIFACT / "qrels.tsv")

    base = BM25Index(variant="lucene")
    base.add_tokens(np.arange(len(docs)), docs)
    config, state = base.config(), base.state()

    grid: dict[str, float] = {}
    best = (-1.0, 0.0, 0.0)
    print("| k1 \\ b | " + " | ".join(str(b) for b in BS) + " |")
    print("|---|" + "---:|" * len(BS))
    for k1 in K1S:
        row = []
        for b in BS:
            index = BM25Index.from_state({**config, "k1": k1, "b": b}, state)
            score = evaluate(index, doc_ids, queries, train)
            grid[f"k1={k1},b={b}"] = round(score, 4)
            row.append(f"{score:.4f}")
            if score > best[0]:
                best = (score, k1, b)
        print(f"| {k1} | " + " | ".join(row) + " |")
    train_best, k1, b = best
    chosen = BM25Index.from_state({**config, "k1": k1, "b": b}, state)
    test_score = evaluate(chosen, doc_ids, queries, test)
    current = evaluate(base, doc_ids, queries, test)
    print(f"\nbest on train ({len(train)} queries): k1={k1}, b={b}, nDCG@10 {train_best:.4f}")
    print(f"test ({len(test)} queries) nDCG@10 with k1={k1}, b={b}: {test_score:.4f}")
    print(f"(current defaults k1={base.k1}, b={base.b} on test: {current:.4f})")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "grid_train_ndcg10": grid,
                "chosen": {
                    "k1": k1,
                    "b": b,
                    "train_ndcg10": round(train_best, 4),
                    "test_ndcg10": round(test_score, 4),
                },
                "analyzer": analyzer.config(),
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
