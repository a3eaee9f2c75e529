"""Tests for ragkit.evaluation: metrics by hand and against ir_measures, BEIR loading, eval."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import ir_measures
import pytest
from ir_measures import RR, R, nDCG

from ragkit.errors import LoadError
from ragkit.evaluation import (
    BeirDataset,
    EvalReport,
    chunk_hits_to_documents,
    evaluate,
    evaluate_run,
    load_beir,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)

from .conftest import REPORT_KEYS, SCIFACT


def log2(x: float) -> float:
    return math.log2(x)


# --------------------------------------------------------------------------- metrics by hand


def test_ndcg_graded_gain_is_linear_and_ideal_comes_from_qrels() -> None:
    # ranks: x (0), a (2), b (1); the ideal order is a (2), b (1).
    relevant = {"a": 2, "b": 1}
    dcg = 2 / log2(3) + 1 / log2(4)
    idcg = 2 / log2(2) + 1 / log2(3)
    assert ndcg_at_k(["x", "a", "b"], relevant, k=10) == pytest.approx(dcg / idcg)


def test_ndcg_perfect_ranking_is_one_and_no_relevant_retrieved_is_zero() -> None:
    relevant = {"a": 3, "b": 1}
    assert ndcg_at_k(["a", "b", "x"], relevant) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "y", "z"], relevant) == 0.0
    assert ndcg_at_k([], relevant) == 0.0


def test_ndcg_ignores_relevant_beyond_k_and_ideal_is_cut_at_k() -> None:
    relevant = {"a": 1, "b": 1, "c": 1}
    # k=2: only "a" (rank 2) counts; the ideal has two relevant documents in two ranks.
    expected = (1 / log2(3)) / (1 / log2(2) + 1 / log2(3))
    assert ndcg_at_k(["x", "a", "b"], relevant, k=2) == pytest.approx(expected)


def test_ndcg_with_fewer_results_than_k() -> None:
    relevant = {"a": 1, "b": 1}
    expected = (1 / log2(2)) / (1 / log2(2) + 1 / log2(3))
    assert ndcg_at_k(["a"], relevant, k=10) == pytest.approx(expected)


def test_ndcg_ignores_non_positive_grades() -> None:
    assert ndcg_at_k(["n", "a"], {"a": 1, "n": 0, "m": -1}) == pytest.approx(1 / log2(3))


def test_recall_counts_relevant_in_top_k() -> None:
    relevant = {"a": 2, "b": 1, "c": 1, "d": 1}
    ranked = ["a", "x", "b", "y", "c"]
    assert recall_at_k(ranked, relevant, k=1) == pytest.approx(1 / 4)
    assert recall_at_k(ranked, relevant, k=3) == pytest.approx(2 / 4)
    assert recall_at_k(ranked, relevant, k=100) == pytest.approx(3 / 4)  # fewer than k results
    assert recall_at_k(["x", "y"], relevant, k=10) == 0.0


def test_mrr_is_reciprocal_rank_of_first_relevant_within_k() -> None:
    relevant = {"a": 1, "b": 2}
    assert mrr_at_k(["x", "y", "b", "a"], relevant, k=10) == pytest.approx(1 / 3)
    assert mrr_at_k(["a"], relevant) == 1.0
    assert mrr_at_k(["x", "y", "b"], relevant, k=2) == 0.0  # relevant beyond k
    assert mrr_at_k([], relevant) == 0.0


@pytest.mark.parametrize("metric", [ndcg_at_k, recall_at_k, mrr_at_k])
def test_metrics_with_nothing_relevant_score_zero(metric) -> None:
    assert metric(["a", "b"], {}, 10) == 0.0
    assert metric(["a", "b"], {"a": 0}, 10) == 0.0


@pytest.mark.parametrize("metric", [ndcg_at_k, recall_at_k, mrr_at_k])
def test_metrics_reject_bad_k_and_duplicate_documents(metric) -> None:
    with pytest.raises(ValueError, match="k"):
        metric(["a"], {"a": 1}, 0)
    with pytest.raises(ValueError, match="'a'"):
        metric(["a", "b", "a"], {"a": 1}, 10)
    # A duplicate beyond the cut-off is not looked at.
    assert metric(["a", "b", "a"], {"a": 1}, 2) == pytest.approx(1.0)


def test_evaluate_run_means_over_qrels_and_missing_query_scores_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}, "q3": {"d": 1}}
    run = {
        "q1": [("a", 3.0), ("x", 2.0)],
        "q2": [("x", 5.0), ("c", 4.0)],
        # q3 missing from the run; q9 has no judgments and is ignored.
        "q9": [("a", 1.0)],
    }
    out = evaluate_run(run, qrels)
    assert set(out) == {"ndcg@10", "recall@10", "recall@100", "mrr@10", "n_queries"}
    assert out["n_queries"] == 3
    q2_ndcg = (1 / log2(3)) / (1 + 1 / log2(3))
    assert out["ndcg@10"] == pytest.approx((1.0 + q2_ndcg + 0.0) / 3)
    assert out["recall@10"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert out["recall@100"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert out["mrr@10"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)


def test_evaluate_run_uses_the_given_order_not_the_scores() -> None:
    # Ties (and even an unsorted list) are taken in the order given: the retriever's order.
    qrels = {"q": {"b": 1}}
    assert evaluate_run({"q": [("a", 1.0), ("b", 1.0)]}, qrels)["mrr@10"] == 0.5
    assert evaluate_run({"q": [("b", 1.0), ("a", 1.0)]}, qrels)["mrr@10"] == 1.0


def test_evaluate_run_custom_ks_and_validation() -> None:
    qrels = {"q": {"a": 1, "b": 1}}
    run = {"q": [("x", 3.0), ("a", 2.0), ("b", 1.0)]}
    out = evaluate_run(run, qrels, ks={"recall": (1, 2, 3), "mrr": (1,)})
    assert out == {
        "recall@1": 0.0,
        "recall@2": 0.5,
        "recall@3": 1.0,
        "mrr@1": 0.0,
        "n_queries": 1,
    }
    assert evaluate_run(run, {})["ndcg@10"] == 0.0
    with pytest.raises(ValueError, match="unknown metric 'map'"):
        evaluate_run(run, qrels, ks={"map": (10,)})
    with pytest.raises(ValueError, match="cut-off 0"):
        evaluate_run(run, qrels, ks={"ndcg": (0,)})


# --------------------------------------------------------------------------- ir_measures oracle


def _random_case(rng: random.Random) -> tuple[dict[str, dict[str, int]], dict[str, list]]:
    docs = [f"d{i}" for i in range(300)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, list[tuple[str, float]]] = {}
    for q in range(40):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 15))
        qrels[qid] = {d: rng.choice([1, 1, 2, 3]) for d in judged}
        # Distinct scores, so ir_measures' sort-by-score order equals our given order.
        n = rng.choice([0, 3, 9, 10, 11, 50, 150])
        ranked = rng.sample(docs, n)
        if n and rng.random() < 0.5:  # plant some relevant documents near the top
            for d in judged[: rng.randint(1, len(judged))]:
                if d in ranked:
                    ranked.remove(d)
                ranked.insert(rng.randint(0, min(len(ranked), 20)), d)
        run[qid] = [(d, float(len(ranked) - i) + 0.5) for i, d in enumerate(ranked)]
    return qrels, run


@pytest.mark.parametrize("seed", range(5))
def test_evaluate_run_agrees_with_ir_measures(seed: int) -> None:
    qrels, run = _random_case(random.Random(seed))
    # ir_measures (pytrec_eval) averages over queries in the run only; ours averages over the
    # qrels. Give every judged query at least one retrieved document so the two means coincide.
    for ranked in run.values():
        if not ranked:
            ranked.append(("not-judged", 1.0))
    ours = evaluate_run(run, qrels)
    ref_run = {q: dict(ranked) for q, ranked in run.items()}
    ref = ir_measures.calc_aggregate([nDCG @ 10, R @ 10, R @ 100, RR @ 10], qrels, ref_run)
    assert ours["ndcg@10"] == pytest.approx(ref[nDCG @ 10], abs=1e-6)
    assert ours["recall@10"] == pytest.approx(ref[R @ 10], abs=1e-6)
    assert ours["recall@100"] == pytest.approx(ref[R @ 100], abs=1e-6)
    assert ours["mrr@10"] == pytest.approx(ref[RR @ 10], abs=1e-6)
    assert ours["n_queries"] == len(qrels)


# --------------------------------------------------------------------------- load_beir


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    """A tiny BEIR folder: 4 documents, 4 queries, qrels.tsv with a score-0 row."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    _write_jsonl(
        folder / "corpus.jsonl",
        [
            {"_id": "d2", "title": "Cats", "text": "Cats sleep a lot."},
            {"_id": "d1", "title": "", "text": "Dogs are loyal."},
            {"_id": "d#3", "title": "Rust", "text": "Rust has a borrow checker."},
            {"_id": "d4", "text": "Python uses pip."},
        ],
    )
    _write_jsonl(
        folder / "queries.jsonl",
        [
            {"_id": "q3", "text": "which language has a borrow checker?"},
            {"_id": "q1", "text": "do cats sleep?"},
            {"_id": "q2", "text": "are dogs loyal?"},
            {"_id": "q4", "text": "unjudged query"},
        ],
    )
    (folder / "qrels.tsv").write_text(
        "query-id\tcorpus-id\tscore\n"
        "q1\td2\t1\n"
        "q1\td1\t0\n"  # judged not relevant: dropped
        "q2\td4\t0\n"  # q2 has no relevant document: dropped
        "q3\td#3\t2\n"
        "q3\td2\t1\n",
        encoding="utf-8",
    )
    return folder


def test_load_beir_tiny(beir_dir: Path) -> None:
    ds = load_beir(beir_dir)
    assert list(ds.corpus) == ["d2", "d1", "d#3", "d4"]  # file order
    assert ds.corpus["d2"] == ("Cats", "Cats sleep a lot.")
    assert ds.corpus["d4"] == ("", "Python uses pip.")
    assert list(ds.queries) == ["q3", "q1"]  # judged only, queries-file order
    assert ds.queries["q1"] == "do cats sleep?"
    assert {q: dict(r) for q, r in ds.qrels.items()} == {
        "q1": {"d2": 1},
        "q3": {"d#3": 2, "d2": 1},
    }
    assert ds.document_text("d2") == "Cats\n\nCats sleep a lot."
    assert ds.document_text("d1") == "Dogs are loyal."
    with pytest.raises(TypeError, match="does not support item assignment"):
        ds.qrels["q1"]["d1"] = 1  # type: ignore[index]
    with pytest.raises(TypeError, match="does not support item assignment"):
        ds.corpus["new"] = ("", "x")  # type: ignore[index]


def test_load_beir_split_layout_and_qrels_override(beir_dir: Path, monkeypatch) -> None:
    (beir_dir / "qrels.tsv").unlink()
    (beir_dir / "qrels").mkdir()
    (beir_dir / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq2\td1\t1\n", encoding="utf-8"
    )
    (beir_dir / "qrels" / "dev.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td2\t1\nq4\td4\t1\n", encoding="utf-8"
    )
    assert list(load_beir(beir_dir).queries) == ["q2"]
    assert list(load_beir(beir_dir, split="dev").queries) == ["q1", "q4"]
    # An override relative to the folder, then relative to the current directory.
    assert list(load_beir(beir_dir, qrels="qrels/dev.tsv").queries) == ["q1", "q4"]
    elsewhere = beir_dir.parent / "mine.tsv"
    elsewhere.write_text("q3\td1\t1\n", encoding="utf-8")  # no header is fine too
    monkeypatch.chdir(beir_dir.parent)
    assert list(load_beir(beir_dir, qrels="mine.tsv").queries) == ["q3"]
    assert list(load_beir(str(beir_dir), qrels=elsewhere).queries) == ["q3"]
    with pytest.raises(LoadError, match="not found"):
        load_beir(beir_dir, qrels="nope.tsv")
    with pytest.raises(LoadError, match=r"qrels/train\.tsv"):
        load_beir(beir_dir, split="train")


def test_load_beir_bad_json_line_names_the_line(beir_dir: Path) -> None:
    with (beir_dir / "corpus.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"_id": "d5", "text": broken\n')
    with pytest.raises(LoadError, match="line 5: invalid JSON") as info:
        load_beir(beir_dir)
    assert info.value.path == str(beir_dir / "corpus.jsonl")


@pytest.mark.parametrize(
    ("file", "line", "match"),
    [
        ("corpus.jsonl", '{"title": "t", "text": "x"}', "line 5: missing or empty '_id'"),
        ("corpus.jsonl", '{"_id": "d9", "title": "t"}', "line 5: field 'text' missing"),
        ("corpus.jsonl", '{"_id": "d9", "text": 3}', "line 5: field 'text' not a string"),
        ("corpus.jsonl", '{"_id": "d1", "text": "again"}', "line 5: duplicate _id 'd1'"),
        ("corpus.jsonl", "[1, 2]", "line 5: expected a JSON object"),
        ("queries.jsonl", '{"_id": "q7"}', "line 5: field 'text' missing"),
        ("qrels.tsv", "q1 d1 1", "line 7: expected 3 tab-separated fields"),
        ("qrels.tsv", "q1\td1\tyes", "line 7: score 'yes' is not an integer"),
    ],
)
def test_load_beir_malformed_rows(beir_dir: Path, file: str, line: str, match: str) -> None:
    with (beir_dir / file).open("a", encoding="utf-8") as f:
        f.write(line + "\n")
    with pytest.raises(LoadError, match=match) as info:
        load_beir(beir_dir)
    assert info.value.path == str(beir_dir / file)


@pytest.mark.parametrize(
    ("file", "content", "match"),
    [
        # Found by an outside probe: each of these escaped as a traceback, or as a usage error
        # (exit 2) about a parameter the user never gave.
        ("corpus.jsonl", "", r"no documents \(one JSON object per line"),
        ("corpus.jsonl", "\n\n", "no documents"),
        (
            "corpus.jsonl",
            '{"_id": "d9", "text": "x", "m": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
            "line 1: JSON nested too deeply to read",
        ),
        (
            "queries.jsonl",
            '{"_id": "q1", "text": "  "}\n{"_id": "q3", "text": "borrow checker"}\n',
            "line 1: query 'q1' is judged but its text is empty",
        ),
        (
            "qrels.tsv",
            "query-id\tcorpus-id\tscore\nq1\td2\t" + "9" * 400 + "\n",
            r"line 2: score 9{20}\.\.\. is too large for a relevance grade",
        ),
    ],
)
def test_load_beir_refuses_a_dataset_it_cannot_score(
    beir_dir: Path, file: str, content: str, match: str
) -> None:
    (beir_dir / file).write_text(content, encoding="utf-8")
    with pytest.raises(LoadError, match=match) as info:
        load_beir(beir_dir)
    assert info.value.path == str(beir_dir / file)


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl"])
def test_load_beir_refuses_a_fifo_instead_of_blocking(beir_dir: Path, name: str) -> None:
    # Found by an outside probe: a FIFO in place of corpus.jsonl blocked `ragkit eval` forever.
    import os

    (beir_dir / name).unlink()
    os.mkfifo(beir_dir / name)
    with pytest.raises(LoadError, match="not a regular file") as info:
        load_beir(beir_dir)
    assert info.value.path == str(beir_dir / name)


def test_load_beir_blank_lines_are_skipped(beir_dir: Path) -> None:
    with (beir_dir / "corpus.jsonl").open("a", encoding="utf-8") as f:
        f.write("\n   \n")
    assert len(load_beir(beir_dir).corpus) == 4


def test_load_beir_judged_query_missing_from_queries(beir_dir: Path) -> None:
    with (beir_dir / "qrels.tsv").open("a", encoding="utf-8") as f:
        f.write("q99\td1\t1\n")
    with pytest.raises(LoadError, match=r"'q99' \(line 7 of qrels.tsv\) is not in queries.jsonl"):
        load_beir(beir_dir)


def test_load_beir_missing_files(beir_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="not a directory"):
        load_beir(tmp_path / "absent")
    (beir_dir / "queries.jsonl").unlink()
    with pytest.raises(LoadError, match="missing") as info:
        load_beir(beir_dir)
    assert info.value.path == str(beir_dir / "queries.jsonl")
    (beir_dir / "qrels.tsv").unlink()
    with pytest.raises(LoadError, match=r"qrels/test\.tsv"):
        load_beir(beir_dir)


def test_load_beir_no_relevant_judgments(beir_dir: Path) -> None:
    (beir_dir / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t0\n", encoding="utf-8")
    with pytest.raises(LoadError, match="no query has a relevant document"):
        load_beir(beir_dir)


def test_load_beir_not_utf8(beir_dir: Path) -> None:
    (beir_dir / "queries.jsonl").write_bytes(b'{"_id": "q1", "text": "caf\xe9"}\n')
    with pytest.raises(LoadError, match="not UTF-8"):
        load_beir(beir_dir)


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="SciFact not present")
def test_load_beir_scifact() -> None:
    test = load_beir(SCIFACT)
    assert len(test.corpus) == 5183
    assert len(test.queries) == 300
    assert sum(len(judged) for judged in test.qrels.values()) == 339
    assert set(test.queries) == set(test.qrels)
    train = load_beir(SCIFACT, qrels="qrels-train.tsv")
    assert len(train.queries) == 809
    assert not set(train.queries) & set(test.queries)


# --------------------------------------------------------------------------- evaluate()


def _tiny_dataset() -> BeirDataset:
    return BeirDataset(
        corpus={f"d{i}": ("", f"doc {i}") for i in range(6)},
        queries={"q1": "one", "q2": "two"},
        qrels={"q1": {"d1": 2, "d2": 1}, "q2": {"d5": 1}},
    )


def test_evaluate_perfect_search_scores_one() -> None:
    ds = _tiny_dataset()
    by_text = {text: qid for qid, text in ds.queries.items()}
    calls: list[tuple[str, int]] = []

    def search(query: str, k: int) -> list[tuple[str, float]]:
        calls.append((query, k))
        judged = ds.qrels[by_text[query]]
        ranked = sorted(judged, key=lambda d: -judged[d]) + ["d0"]
        return [(d, float(len(ranked) - i)) for i, d in enumerate(ranked)][:k]

    seen: list[tuple[int, int]] = []
    report = evaluate(
        search, ds, k=7, index_s=1.5, retriever="fake", progress=lambda *a: seen.append(a)
    )
    assert calls == [("one", 7), ("two", 7)]
    assert seen == [(1, 2), (2, 2)]
    assert report.n_queries == 2
    assert dict(report.metrics) == pytest.approx(
        {"ndcg@10": 1.0, "recall@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}
    )
    out = report.as_dict()
    assert list(out) == REPORT_KEYS
    assert out["index_s"] == 1.5
    assert out["retriever"] == "fake"
    assert out["n_queries"] == 2
    assert 0.0 <= report.query_p50_ms <= report.query_p95_ms
    json.dumps(out)  # JSON-ready: plain floats, ints and strings


def test_evaluate_empty_search_scores_zero() -> None:
    report = evaluate(lambda query, k: [], _tiny_dataset())
    assert dict(report.metrics) == {
        "ndcg@10": 0.0,
        "recall@10": 0.0,
        "recall@100": 0.0,
        "mrr@10": 0.0,
    }
    assert report.query_p50_ms >= 0.0
    assert report.query_p95_ms >= 0.0
    assert report.n_queries == 2


def test_evaluate_rejects_bad_k_and_duplicate_documents() -> None:
    with pytest.raises(ValueError, match="k"):
        evaluate(lambda query, k: [], _tiny_dataset(), k=0)
    with pytest.raises(ValueError, match="'d1' more than once"):
        evaluate(lambda query, k: [("d1", 2.0), ("d1", 1.0)], _tiny_dataset())


def test_eval_report_needs_the_reported_metrics() -> None:
    with pytest.raises(ValueError, match="recall@100"):
        EvalReport(
            metrics={"ndcg@10": 1.0, "recall@10": 1.0, "mrr@10": 1.0},
            n_queries=1,
            index_s=0.0,
            query_p50_ms=0.0,
            query_p95_ms=0.0,
            retriever="x",
        )


# --------------------------------------------------------------------------- chunk → document


def test_chunk_hits_to_documents_dedups_keeping_best_first_score_and_order() -> None:
    hits = [("b.md#2", 0.9), ("a.md#0", 0.8), ("b.md#0", 0.7), ("c.md#1", 0.6), ("a.md#3", 0.5)]
    assert chunk_hits_to_documents(hits, k=10) == [("b.md", 0.9), ("a.md", 0.8), ("c.md", 0.6)]


def test_chunk_hits_to_documents_cuts_at_k() -> None:
    hits = [("b#0", 3.0), ("b#1", 2.5), ("a#0", 2.0), ("c#0", 1.0)]
    assert chunk_hits_to_documents(hits, k=2) == [("b", 3.0), ("a", 2.0)]
    assert chunk_hits_to_documents([], k=3) == []
    with pytest.raises(ValueError, match="k"):
        chunk_hits_to_documents(hits, k=0)


def test_chunk_hits_to_documents_hash_in_document_ids() -> None:
    hits = [("notes#v2.md#0", 2.0), ("notes#v2.md#1", 1.5), ("notes#1", 1.0), ("plain", 0.5)]
    assert chunk_hits_to_documents(hits, k=10) == [
        ("notes#v2.md", 2.0),
        ("notes", 1.0),
        ("plain", 0.5),
    ]
