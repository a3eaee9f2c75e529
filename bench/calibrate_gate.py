"""Calibrate the evidence gate: how many real questions pass, how many unrelated ones stop.

Builds (or reuses) the SciFact hybrid index, retrieves k chunks for every judged *train* query
(qrels-train.tsv: tuning data, never the test split) and for every question in
bench/questions/unrelated.txt (questions a corpus of scientific abstracts cannot answer), records
the gate's two signals (best vector cosine, keyword coverage) and reports, for a grid of
thresholds, the share of train queries that pass and the share of unrelated questions stopped.

    .venv/bin/python bench/calibrate_gate.py [--k 5] [--keyword-only] [--out bench/out/gate.json]

The index is cached under .cache/scifact (shared with tune_fusion.py and `ragkit eval --cache`),
so only the first run embeds the corpus.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import SCIFACT  # noqa: E402

from ragkit.context import MIN_COSINE, MIN_COVERAGE, EvidenceGate  # noqa: E402
from ragkit.evaluation import build_dataset_index, load_beir  # noqa: E402

COSINES = [0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50]
COVERAGES = [0.2, 0.25, 0.3, 0.34, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7]


def signals(index, questions: list[str], k: int) -> list[tuple[float | None, float | None]]:
    probe = EvidenceGate(min_cosine=None, min_coverage=None)
    retriever = index.retriever()
    out = []
    for q in questions:
        verdict = probe.check(
            q, retriever.retrieve(q, k), retriever_name=retriever.name, idf=index.keyword_idf
        )
        out.append((verdict.top_cosine, verdict.coverage))
    return out


def rate(sig, gate: EvidenceGate) -> float:
    """Share passing ``gate``, replaying its rule on recorded signals."""
    passed = 0
    for cos, cov in sig:
        verdict = gate.passes(cos, cov)
        passed += verdict is None or verdict
    return passed / len(sig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--keyword-only", action="store_true", help="no embedder: coverage only")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "gate.json")
    ap.add_argument("--cache", type=Path, default=HERE.parent / ".cache" / "scifact")
    args = ap.parse_args()

    ds = load_beir(SCIFACT, qrels="qrels-train.tsv")
    train = list(ds.queries.values())
    unrelated = [
        line.strip()
        for line in (HERE / "questions" / "unrelated.txt").read_text().splitlines()
        if line.strip()
    ]
    t0 = time.perf_counter()
    index = build_dataset_index(ds.corpus, keyword_only=args.keyword_only, cache=args.cache)
    print(
        f"index: {len(index)} chunks, vectors={index.has_vectors}, {time.perf_counter() - t0:.0f}s",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    sig_train = signals(index, train, args.k)
    sig_unrel = signals(index, unrelated, args.k)
    print(
        f"signals for {len(train)} + {len(unrelated)} questions in {time.perf_counter() - t0:.0f}s",
        file=sys.stderr,
    )

    rows = []
    grid: list[EvidenceGate] = [EvidenceGate(min_cosine=c, min_coverage=None) for c in COSINES]
    grid += [EvidenceGate(min_cosine=None, min_coverage=v) for v in COVERAGES]
    for combine in ("fallback", "any", "all"):
        grid += [
            EvidenceGate(min_cosine=c, min_coverage=v, combine=combine)
            for c in COSINES
            for v in COVERAGES
        ]
    for gate in grid:
        rows.append(
            {
                "min_cosine": gate.min_cosine,
                "min_coverage": gate.min_coverage,
                "combine": gate.combine,
                "train_pass": round(rate(sig_train, gate), 4),
                "unrelated_stopped": round(1 - rate(sig_unrel, gate), 4),
            }
        )
    default = EvidenceGate()
    summary = {
        "k": args.k,
        "keyword_only": args.keyword_only,
        "train_queries": len(train),
        "unrelated_questions": len(unrelated),
        "default": {
            "min_cosine": MIN_COSINE,
            "min_coverage": MIN_COVERAGE,
            "combine": default.combine,
            "train_pass": round(rate(sig_train, default), 4),
            "unrelated_stopped": round(1 - rate(sig_unrel, default), 4),
        },
        "signals": {
            "train": [list(s) for s in sig_train],
            "unrelated": [list(s) for s in sig_unrel],
        },
        "grid": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))

    print(f"{'cosine':>7} {'cover':>6} {'rule':>4}  {'train pass':>10}  {'unrelated stopped':>17}")
    for r in rows:
        # Only the useful frontier: most real questions pass.
        if r["train_pass"] >= 0.9:
            print(
                f"{str(r['min_cosine']):>7} {str(r['min_coverage']):>6} {r['combine']:>4}  "
                f"{r['train_pass']:>10.1%}  {r['unrelated_stopped']:>17.1%}"
            )
    d = summary["default"]
    print(
        f"default gate (cosine {MIN_COSINE}, coverage {MIN_COVERAGE}, {d['combine']}): "
        f"train pass {d['train_pass']:.1%}, unrelated stopped {d['unrelated_stopped']:.1%}"
    )


if __name__ == "__main__":
    main()
