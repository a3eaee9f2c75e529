"""Calibrate the evidence gate: how many real questions pass, how many unrelated ones stop.

Per embedder (``--embedder NAME``, default: ragkit's default embedder), since every model
spreads cosines differently. Builds (or reuses) the SciFact hybrid index, retrieves k chunks for
every judged *train* query
(qrels-train.tsv: tuning data, never the test split) and for every question in
bench/questions/unrelated.txt (questions a corpus of scientific abstracts cannot answer), records
the gate's two signals (best vector cosine, keyword coverage) and reports, for a grid of
thresholds, the share of train queries that pass and the share of unrelated questions stopped.
The recommended cosine threshold is the highest (in steps of 0.01) that still lets
``--target-pass`` of the train queries through; it goes into
``ragkit.embedders.registry.GATE_THRESHOLDS`` for that embedder's name.

    .venv/bin/python bench/calibrate_gate.py [--embedder NAME] [--k 5] [--keyword-only]

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

from ragkit.embedders import default_embedder, gate_threshold, get_embedder  # noqa: E402
from ragkit.evaluation import build_dataset_index, load_beir  # noqa: E402
from ragkit.gate import MIN_COSINE, MIN_COVERAGE, EvidenceGate  # noqa: E402

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
    ap.add_argument("--embedder", help="embedder name (default: ragkit's default embedder)")
    ap.add_argument("--target-pass", type=float, default=0.985, help="train queries to let pass")
    ap.add_argument("--out", type=Path, help="default: bench/out/gate-<embedder>.json")
    ap.add_argument("--cache", type=Path, default=HERE.parent / ".cache" / "scifact")
    args = ap.parse_args()

    ds = load_beir(SCIFACT, qrels="qrels-train.tsv")
    train = list(ds.queries.values())
    unrelated = [
        line.strip()
        for line in (HERE / "questions" / "unrelated.txt").read_text().splitlines()
        if line.strip()
    ]
    embedder = None
    if not args.keyword_only:
        embedder = get_embedder(args.embedder) if args.embedder else default_embedder()
        if embedder is None:
            raise SystemExit(
                "no embedder installed: pip install 'ragkit-claude[local]' or --keyword-only"
            )
    label = "keyword-only" if embedder is None else embedder.name.replace("/", "__")
    out = args.out or HERE / "out" / f"gate-{label}.json"
    t0 = time.perf_counter()
    index = build_dataset_index(
        ds.corpus, keyword_only=args.keyword_only, embedder=embedder, cache=args.cache
    )
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
    # The recommendation: the highest cosine (0.01 steps) letting target-pass of train through.
    recommended = None
    if embedder is not None:
        for step in range(101):
            c = round(step / 100, 2)
            if rate(sig_train, EvidenceGate(min_cosine=c, min_coverage=None)) >= args.target_pass:
                recommended = c
    current = gate_threshold(embedder) if embedder is not None else None
    default = EvidenceGate(min_cosine=current if current is not None else MIN_COSINE)
    summary = {
        "embedder": None if embedder is None else embedder.name,
        "k": args.k,
        "keyword_only": args.keyword_only,
        "target_pass": args.target_pass,
        "recommended_min_cosine": recommended,
        "train_queries": len(train),
        "unrelated_questions": len(unrelated),
        "default": {
            "min_cosine": default.min_cosine,
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
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))

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
        f"current gate (cosine {default.min_cosine}, coverage {MIN_COVERAGE}, {d['combine']}): "
        f"train pass {d['train_pass']:.1%}, unrelated stopped {d['unrelated_stopped']:.1%}"
    )
    if recommended is not None:
        gate = EvidenceGate(min_cosine=recommended, min_coverage=None)
        print(
            f"recommended min_cosine for {embedder.name}: {recommended} (train pass "
            f"{rate(sig_train, gate):.1%}, unrelated stopped {1 - rate(sig_unrel, gate):.1%})"
        )


if __name__ == "__main__":
    main()
