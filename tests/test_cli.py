"""The command line, run in-process with click's CliRunner and a fake embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ragkit import __version__
from ragkit.cli import cli

from .conftest import SMALL_CORPUS, FakeEmbedder, write_corpus


@pytest.fixture(autouse=True)
def _fake_default_embedder(monkeypatch: pytest.MonkeyPatch) -> FakeEmbedder:
    emb = FakeEmbedder()
    monkeypatch.setattr("ragkit.index.default_embedder", lambda: emb)
    return emb


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def indexed(tmp_path: Path, runner: CliRunner, corpus_dir: Path) -> Path:
    path = tmp_path / "idx"
    result = runner.invoke(cli, ["index", str(corpus_dir), "--index", str(path)])
    assert result.exit_code == 0, result.output
    return path


def test_version_and_help(runner: CliRunner) -> None:
    assert __version__ in runner.invoke(cli, ["--version"]).output
    out = runner.invoke(cli, ["-h"]).output
    for command in ("index", "search", "ask", "eval"):
        assert command in out


def test_index_reports_counts_and_is_incremental(tmp_path: Path, runner: CliRunner, corpus_dir: Path,
                                                 _fake_default_embedder: FakeEmbedder) -> None:
    path = tmp_path / "idx"
    first = runner.invoke(cli, ["index", str(corpus_dir), "--index", str(path), "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["documents"] == len(SMALL_CORPUS) and sorted(summary["added"]) == sorted(SMALL_CORPUS)
    embedded = sum(_fake_default_embedder.calls)
    (corpus_dir / "dogs.md").write_text("# Dogs\n\nDogs herd sheep.\n")
    second = json.loads(runner.invoke(cli, ["index", str(corpus_dir), "--index", str(path), "--json"]).stdout)
    assert second["replaced"] == ["dogs.md"] and second["unchanged"] == len(SMALL_CORPUS) - 1
    assert sum(_fake_default_embedder.calls) == embedded + second["chunks_embedded"]


def test_index_human_output_names_skipped_files(tmp_path: Path, runner: CliRunner) -> None:
    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    (folder / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    (folder / "empty.md").write_text("")
    result = runner.invoke(cli, ["index", str(folder), "--index", str(tmp_path / "idx")])
    assert result.exit_code == 0, result.output
    assert "4 documents" in result.stdout and "2 skipped" in result.stdout
    assert "blob.txt" in result.stderr and "empty.md" in result.stderr


def test_search_prints_chunk_ids(runner: CliRunner, indexed: Path) -> None:
    result = runner.invoke(cli, ["search", "borrow checker ownership", "--index", str(indexed), "-k", "2"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("[1] rust.txt#0")


def test_search_json(runner: CliRunner, indexed: Path) -> None:
    result = runner.invoke(cli, ["search", "pip installs packages", "--index", str(indexed), "--json", "-k", "50"])
    data = json.loads(result.stdout)
    assert data["results"][0]["id"] == "python.rst#0"
    assert {"bm25", "vector"} & set(data["results"][0]["scores"])
    assert len(data["results"]) <= 50
    bm25 = json.loads(runner.invoke(cli, ["search", "pip", "--index", str(indexed), "--json", "--mode", "bm25"]).stdout)
    assert all(set(r["scores"]) == set() for r in bm25["results"])


def test_index_from_environment_variable(runner: CliRunner, indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGKIT_INDEX", str(indexed))
    result = runner.invoke(cli, ["search", "wolves"])
    assert result.exit_code == 0 and "dogs.md#" in result.stdout


def test_ask_without_key_shows_passages(runner: CliRunner, indexed: Path) -> None:
    result = runner.invoke(cli, ["ask", "What do cats eat?", "--index", str(indexed), "-k", "2"])
    assert result.exit_code == 0, result.output
    assert "cats.md#" in result.stdout
    assert "ANTHROPIC_API_KEY is not set" in result.output


def test_ask_without_key_json(runner: CliRunner, indexed: Path) -> None:
    result = runner.invoke(cli, ["ask", "What do cats eat?", "--index", str(indexed), "--json"])
    data = json.loads(result.stdout)
    assert data["answer"] is None and data["api_key"] is False and data["chunks"]
    assert "ANTHROPIC_API_KEY" in result.stderr


@pytest.mark.parametrize("argv", [["search", "", "--index", "x"], ["ask", "  ", "--index", "x"],
                                  ["search", "cats", "-k", "0"], ["index"], ["bogus"]])
def test_usage_errors_exit_2(runner: CliRunner, argv: list[str]) -> None:
    assert runner.invoke(cli, argv).exit_code == 2


def test_missing_index_is_a_one_line_error(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["search", "cats", "--index", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "Error: no index at" in result.stderr and "Traceback" not in result.output


def test_corrupt_index_is_a_one_line_error(runner: CliRunner, indexed: Path) -> None:
    gen = indexed / (indexed / "CURRENT").read_text().strip()
    (gen / "chunks.jsonl").write_text("{broken")
    result = runner.invoke(cli, ["search", "cats", "--index", str(indexed)])
    assert result.exit_code == 1 and "corrupt" in result.stderr


def test_index_missing_folder(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["index", str(tmp_path / "nope"), "--index", str(tmp_path / "idx")])
    assert result.exit_code == 1 and "not a directory" in result.stderr


def test_index_refuses_foreign_directory(tmp_path: Path, runner: CliRunner, corpus_dir: Path) -> None:
    result = runner.invoke(cli, ["index", str(corpus_dir), "--index", str(corpus_dir)])
    assert result.exit_code == 1 and "not a ragkit index" in result.stderr
    assert sorted(p.name for p in corpus_dir.iterdir()) == sorted(SMALL_CORPUS)


def test_keyword_only_index_and_vector_mode(tmp_path: Path, runner: CliRunner, corpus_dir: Path) -> None:
    path = tmp_path / "kw"
    assert runner.invoke(cli, ["index", str(corpus_dir), "--index", str(path), "--keyword-only"]).exit_code == 0
    ok = runner.invoke(cli, ["search", "wolves", "--index", str(path)])
    assert ok.exit_code == 0 and "dogs.md#" in ok.stdout
    bad = runner.invoke(cli, ["search", "wolves", "--index", str(path), "--mode", "vector"])
    assert bad.exit_code == 2 and "keyword-only" in bad.output


def _tiny_beir(folder: Path) -> Path:
    folder.mkdir()
    docs = {"d1": ("Cats", "Cats purr and sleep."), "d2": ("Dogs", "Dogs bark loudly."),
            "d3": ("Rust", "Rust has a borrow checker."), "d4": ("", "Python uses pip.")}
    with open(folder / "corpus.jsonl", "w") as fh:
        for doc_id, (title, text) in docs.items():
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w") as fh:
        fh.write(json.dumps({"_id": "q1", "text": "which animal purrs"}) + "\n")
        fh.write(json.dumps({"_id": "q2", "text": "borrow checker"}) + "\n")
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n")
    return folder


@pytest.mark.parametrize("mode", ["bm25", "hybrid", "vector"])
def test_eval_json(tmp_path: Path, runner: CliRunner, mode: str) -> None:
    data_dir = _tiny_beir(tmp_path / "beir")
    result = runner.invoke(cli, ["eval", str(data_dir), "--retriever", mode, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10", "index_s", "query_p50_ms",
                "query_p95_ms", "n_queries"):
        assert key in report
    assert report["n_queries"] == 2 and report["recall@10"] == 1.0


def test_eval_cache_reuses_the_index(tmp_path: Path, runner: CliRunner,
                                     _fake_default_embedder: FakeEmbedder) -> None:
    data_dir = _tiny_beir(tmp_path / "beir")
    args = ["eval", str(data_dir), "--cache", str(tmp_path / "cache"), "--json"]
    first = json.loads(runner.invoke(cli, args).stdout)
    calls = sum(_fake_default_embedder.calls)
    second = json.loads(runner.invoke(cli, args).stdout)
    assert sum(_fake_default_embedder.calls) - calls == 2, "only the 2 queries are embedded"
    assert first["ndcg@10"] == second["ndcg@10"]


def test_eval_bad_dataset(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["eval", str(tmp_path)])
    assert result.exit_code == 1 and "Error:" in result.stderr
