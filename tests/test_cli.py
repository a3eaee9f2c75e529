"""The command line, run in-process with click's CliRunner and a fake embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ragkit import __version__
from ragkit.cli import cli
from ragkit.index import Index

from .conftest import REPORT_KEYS, SMALL_CORPUS, FakeEmbedder, write_corpus


@pytest.fixture(autouse=True)
def fake_default_embedder(monkeypatch: pytest.MonkeyPatch) -> FakeEmbedder:
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


def test_index_reports_counts_and_is_incremental(
    tmp_path: Path, runner: CliRunner, corpus_dir: Path, fake_default_embedder: FakeEmbedder
) -> None:
    path = tmp_path / "idx"
    first = runner.invoke(cli, ["index", str(corpus_dir), "--index", str(path), "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["documents"] == len(SMALL_CORPUS)
    assert sorted(summary["added"]) == sorted(SMALL_CORPUS)
    embedded = sum(fake_default_embedder.calls)
    (corpus_dir / "dogs.md").write_text("# Dogs\n\nDogs herd sheep.\n")
    second = json.loads(
        runner.invoke(cli, ["index", str(corpus_dir), "--index", str(path), "--json"]).stdout
    )
    assert second["replaced"] == ["dogs.md"]
    assert second["unchanged"] == len(SMALL_CORPUS) - 1
    assert sum(fake_default_embedder.calls) == embedded + second["chunks_embedded"]


def test_index_reports_skipped_files(tmp_path: Path, runner: CliRunner) -> None:
    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    (folder / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    (folder / "empty.md").write_text("")
    result = runner.invoke(cli, ["index", str(folder), "--index", str(tmp_path / "idx")])
    assert result.exit_code == 0, result.output
    assert "4 documents" in result.stdout
    assert "2 skipped" in result.stdout
    again = runner.invoke(cli, ["index", str(folder), "--index", str(tmp_path / "idx"), "--json"])
    skipped = {s["path"]: s["reason"] for s in json.loads(again.stdout)["skipped"]}
    assert skipped == {"blob.txt": "binary", "empty.md": "empty"}


def test_search_prints_chunk_ids(runner: CliRunner, indexed: Path) -> None:
    result = runner.invoke(
        cli, ["search", "borrow checker ownership", "--index", str(indexed), "-k", "2"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("[1] rust.txt#0")


def test_search_prints_control_characters_in_names_escaped(
    runner: CliRunner, tmp_path: Path
) -> None:
    """A file name with a newline or an escape sequence cannot forge result lines or recolour
    the terminal; --json keeps the name as it is."""
    folder = write_corpus(
        tmp_path / "docs",
        {"a\nb.md": "# One\n\nOkapis graze.\n", "c\x1b[31md.md": "# Two\n\nOkapis sleep.\n"},
    )
    location = str(tmp_path / "idx")
    assert (
        runner.invoke(cli, ["index", str(folder), "--index", location, "--keyword-only"]).exit_code
        == 0
    )
    result = runner.invoke(cli, ["search", "okapis", "--index", location])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout
    lines = result.stdout.splitlines()
    assert {line.split()[1] for line in lines if line.startswith("[")} == {
        "a\\nb.md#0",
        "c\\x1b[31md.md#0",
    }
    data = json.loads(
        runner.invoke(cli, ["search", "okapis", "--index", location, "--json"]).stdout
    )
    assert {r["id"] for r in data["results"]} == {"a\nb.md#0", "c\x1b[31md.md#0"}


def test_search_json(runner: CliRunner, indexed: Path) -> None:
    result = runner.invoke(
        cli, ["search", "pip installs packages", "--index", str(indexed), "--json", "-k", "50"]
    )
    data = json.loads(result.stdout)
    assert data["results"][0]["id"] == "python.rst#0"
    assert {"bm25", "vector"} & set(data["results"][0]["scores"])
    assert len(data["results"]) <= 50
    bm25 = json.loads(
        runner.invoke(
            cli, ["search", "pip", "--index", str(indexed), "--json", "--mode", "bm25"]
        ).stdout
    )
    assert all(set(r["scores"]) == set() for r in bm25["results"])


def test_index_from_environment_variable(
    runner: CliRunner, indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAGKIT_INDEX", str(indexed))
    result = runner.invoke(cli, ["search", "wolves"])
    assert result.exit_code == 0
    assert "dogs.md#" in result.stdout


def test_ask_without_key_shows_passages(runner: CliRunner, indexed: Path) -> None:
    result = runner.invoke(cli, ["ask", "What do cats eat?", "--index", str(indexed), "-k", "2"])
    assert result.exit_code == 0, result.output
    assert "cats.md#" in result.stdout
    assert "ANTHROPIC_API_KEY is not set" in result.output


def test_ask_without_key_json(runner: CliRunner, indexed: Path) -> None:
    result = runner.invoke(cli, ["ask", "What do cats eat?", "--index", str(indexed), "--json"])
    data = json.loads(result.stdout)
    assert data["answer"] is None
    assert data["api_key"] is False
    assert data["chunks"]
    assert "ANTHROPIC_API_KEY" in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "", "--index", "x"],
        ["ask", "  ", "--index", "x"],
        ["search", "cats", "-k", "0"],
        ["index"],
        ["bogus"],
    ],
)
def test_usage_errors_exit_2(runner: CliRunner, argv: list[str]) -> None:
    assert runner.invoke(cli, argv).exit_code == 2


def test_missing_index_is_a_one_line_error(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["search", "cats", "--index", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "Error: no index at" in result.stderr
    assert "Traceback" not in result.output


def test_corrupt_index_is_a_one_line_error(runner: CliRunner, indexed: Path) -> None:
    gen = indexed / (indexed / "CURRENT").read_text().split()[0]
    (gen / "chunks.npz").write_text("{broken")
    result = runner.invoke(cli, ["search", "cats", "--index", str(indexed)])
    assert result.exit_code == 1
    assert "corrupt" in result.stderr


def test_index_missing_folder(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["index", str(tmp_path / "nope"), "--index", str(tmp_path / "idx")])
    assert result.exit_code == 1
    assert "not a directory" in result.stderr


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_folder_argument_is_a_usage_error_not_the_current_folder(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, empty: str
) -> None:
    # Found by an outside probe: `ragkit index ""` (a script's unset "$DOCS") indexed the
    # current folder, since Path("") is ".".
    write_corpus(tmp_path, {"private.md": "# Private\n\nNot meant to be indexed.\n"})
    monkeypatch.chdir(tmp_path)
    for argv in (
        ["index", empty, "--index", str(tmp_path / "idx")],
        ["eval", empty],
        ["eval", str(tmp_path), "--cache", empty],
    ):
        result = runner.invoke(cli, argv)
        assert result.exit_code == 2, argv
        assert "must not be empty (write . for the current folder)" in result.stderr
    assert not (tmp_path / "idx").exists()


def test_index_refuses_foreign_directory(
    tmp_path: Path, runner: CliRunner, corpus_dir: Path
) -> None:
    result = runner.invoke(cli, ["index", str(corpus_dir), "--index", str(corpus_dir)])
    assert result.exit_code == 1
    assert "not a ragkit index" in result.stderr
    assert sorted(p.name for p in corpus_dir.iterdir()) == sorted(SMALL_CORPUS)


def test_an_index_path_that_cannot_be_created_is_one_line(
    tmp_path: Path, runner: CliRunner, corpus_dir: Path
) -> None:
    # Found by an outside probe (--index /proc/xyz): mkdir's OSError escaped as a traceback.
    (tmp_path / "a-file").write_text("not a folder")
    result = runner.invoke(cli, ["index", str(corpus_dir), "--index", str(tmp_path / "a-file/idx")])
    assert result.exit_code == 1
    assert "cannot create the index directory" in result.stderr
    assert "a folder you can write to" in result.stderr
    assert not isinstance(result.exception, OSError)


def test_an_index_path_too_long_for_the_filesystem_is_one_line(
    tmp_path: Path, runner: CliRunner, corpus_dir: Path
) -> None:
    # Found by an outside probe: Path.exists() raised ENAMETOOLONG as a traceback.
    long = str(tmp_path / ("x" * 300))
    for argv, message in (
        (["search", "cats", "--index", long], "cannot read an index at"),
        (["ask", "cats?", "--index", long], "cannot read an index at"),
        (["index", str(corpus_dir), "--index", long], "cannot use"),
        (["index", long, "--index", str(tmp_path / "idx")], "File name too long"),
        (["eval", long], "cannot be read"),
        (["eval", str(corpus_dir), "--qrels", "q" * 300], "cannot be read"),
    ):
        result = runner.invoke(cli, argv)
        assert result.exit_code == 1, argv
        assert message in result.stderr
        assert "File name too long" in result.stderr
        assert not isinstance(result.exception, OSError)


def test_an_index_on_a_read_only_filesystem_says_so(
    tmp_path: Path, runner: CliRunner, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    path = tmp_path / "idx"
    assert runner.invoke(cli, ["index", str(corpus_dir), "--index", str(path)]).exit_code == 0
    real_open = os.open

    def read_only(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(name).endswith(".lock"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    (corpus_dir / "new.md").write_text("# New\n\nA new document.\n")
    result = runner.invoke(cli, ["index", str(corpus_dir), "--index", str(path)])
    assert result.exit_code == 1
    assert "cannot write the index at" in result.stderr
    assert "copy the index somewhere writable, or only search it" in result.stderr
    assert "remove it if it is not a plain file" not in result.stderr  # the old, wrong advice


def test_keyword_only_index_and_vector_mode(
    tmp_path: Path, runner: CliRunner, corpus_dir: Path
) -> None:
    path = tmp_path / "kw"
    assert (
        runner.invoke(
            cli, ["index", str(corpus_dir), "--index", str(path), "--keyword-only"]
        ).exit_code
        == 0
    )
    ok = runner.invoke(cli, ["search", "wolves", "--index", str(path)])
    assert ok.exit_code == 0
    assert "dogs.md#" in ok.stdout
    bad = runner.invoke(cli, ["search", "wolves", "--index", str(path), "--mode", "vector"])
    assert bad.exit_code == 2
    assert "keyword-only" in bad.output


def _tiny_beir(folder: Path) -> Path:
    folder.mkdir()
    docs = {
        "d1": ("Cats", "Cats purr and sleep."),
        "d2": ("Dogs", "Dogs bark loudly."),
        "d3": ("Rust", "Rust has a borrow checker."),
        "d4": ("", "Python uses pip."),
    }
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
    assert set(REPORT_KEYS) <= report.keys()
    assert report["n_queries"] == 2
    assert report["recall@10"] == 1.0


def test_eval_cache_reuses_the_index(
    tmp_path: Path, runner: CliRunner, fake_default_embedder: FakeEmbedder
) -> None:
    data_dir = _tiny_beir(tmp_path / "beir")
    args = ["eval", str(data_dir), "--cache", str(tmp_path / "cache"), "--json"]
    first = json.loads(runner.invoke(cli, args).stdout)
    calls = sum(fake_default_embedder.calls)
    second = json.loads(runner.invoke(cli, args).stdout)
    assert sum(fake_default_embedder.calls) - calls == 2, "only the 2 queries are embedded"
    assert first["ndcg@10"] == second["ndcg@10"]


def test_eval_bad_dataset(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["eval", str(tmp_path)])
    assert result.exit_code == 1
    assert "Error:" in result.stderr


@pytest.fixture
def with_claude(monkeypatch: pytest.MonkeyPatch, claude):  # type: ignore[no-untyped-def]
    """Set a key and make the SDK client the CLI creates talk to a mock transport."""

    def install(responses):  # type: ignore[no-untyped-def]
        client, rec = claude(responses)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setattr("ragkit.answering.anthropic.Anthropic", lambda *a, **kw: client)
        return rec

    return install


def _sse(name: str):  # type: ignore[no-untyped-def]
    import httpx2

    body = (Path(__file__).parent / "fixtures" / "sse" / name).read_bytes()
    return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})


HOSTILE_TEXT = "Seals \x1b]0;PWNED\x07 bask\x1b[2J on rocks \u200d\u05d0 here."


def test_search_prints_document_text_without_its_escape_sequences(
    tmp_path: Path, runner: CliRunner
) -> None:
    # Found by an outside probe: chunk IDs were escaped but the text preview was printed raw,
    # so a document could retitle or clear the terminal of whoever searched it.
    folder = write_corpus(tmp_path / "docs", {"seals.md": HOSTILE_TEXT + "\n"})
    idx = tmp_path / "idx"
    assert runner.invoke(cli, ["index", str(folder), "--index", str(idx)]).exit_code == 0
    for argv in (["search", "seals"], ["ask", "Where do seals bask?"]):  # ask: no key, passages
        result = runner.invoke(cli, [*argv, "--index", str(idx)])
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.stdout
        assert "\x07" not in result.stdout
        assert "Seals \\x1b]0;PWNED\\x07 bask\\x1b[2J on rocks \u200d\u05d0 here." in result.stdout
    data = json.loads(runner.invoke(cli, ["search", "seals", "--index", str(idx), "--json"]).stdout)
    assert data["results"][0]["text"] == HOSTILE_TEXT  # --json keeps the text as it is


def test_an_error_naming_a_hostile_path_is_still_one_escaped_line(
    tmp_path: Path, runner: CliRunner
) -> None:
    # Found by an outside probe: the name went into "Error: ..." raw, newline and all.
    hostile = str(tmp_path / "no\x1b]0;PWNED\x07pe\nsecond line")
    for argv in (
        ["index", hostile, "--index", str(tmp_path / "idx")],
        ["search", "x", "--index", hostile],
    ):
        result = runner.invoke(cli, argv)
        assert result.exit_code == 1
        assert "\x1b" not in result.stderr
        assert "no\\x1b]0;PWNED\\x07pe\\nsecond line" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("stream", [True, False])
def test_ask_prints_the_answer_without_escape_sequences(  # type: ignore[no-untyped-def]
    runner: CliRunner, indexed: Path, with_claude, stream: bool
) -> None:
    from .conftest import load_message

    reply = load_message("success")
    reply["content"][0]["text"] = "Dogs \x1b]0;PWNED\x07learn\n"
    if stream:
        sse = (Path(__file__).parent / "fixtures" / "sse" / "success.sse").read_text()
        body = sse.replace("Dogs learn commands ", "Dogs \\u001b]0;PWNED\\u0007learn ")
        assert body != sse
        import httpx2

        with_claude(
            [httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})]
        )
    else:
        with_claude([reply])
    argv = ["ask", "How do dogs learn?", "--index", str(indexed), "--no-gate"]
    result = runner.invoke(cli, argv if stream else [*argv, "--no-stream"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout
    assert "\x07" not in result.stdout
    assert "Dogs \\x1b]0;PWNED\\x07learn" in result.stdout


def test_ask_json_with_key(runner: CliRunner, indexed: Path, with_claude) -> None:  # type: ignore[no-untyped-def]
    rec = with_claude(["success"])
    result = runner.invoke(
        cli,
        [
            "ask",
            "How do dogs learn?",
            "--index",
            str(indexed),
            "--json",
            "--audit",
            str(indexed.parent / "audit.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["answer"].startswith("Dogs learn commands")
    assert data["citations"]
    assert all(c["chunk_id"].startswith("dogs.md#") for c in data["citations"])
    assert data["usage"]["input_tokens"] > 0
    assert data["cost_usd"] is not None
    assert rec.last["model"] == "claude-haiku-4-5"
    sent = [b for b in rec.last["messages"][0]["content"] if b["type"] == "search_result"]
    assert sent, "context goes in search_result blocks"
    audit = [json.loads(line) for line in (indexed.parent / "audit.jsonl").read_text().splitlines()]
    assert len(audit) == 1
    assert audit[0]["question"] == "How do dogs learn?"
    assert "test-key" not in (indexed.parent / "audit.jsonl").read_text()


def test_ask_streams_by_default(
    runner: CliRunner,
    indexed: Path,
    with_claude,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = with_claude([_sse("success.sse")])
    monkeypatch.setenv("RAGKIT_MODEL", "claude-haiku-4-5-20251001")
    result = runner.invoke(cli, ["ask", "How do dogs learn?", "--index", str(indexed)])
    assert result.exit_code == 0, result.output
    assert "Dogs learn commands through repetition and rewards" in result.stdout
    assert "Sources: dogs.md#" in result.stdout
    assert rec.last["stream"] is True
    assert rec.last["model"] == "claude-haiku-4-5-20251001"


def test_ask_api_error_is_one_line(runner: CliRunner, indexed: Path, with_claude) -> None:  # type: ignore[no-untyped-def]
    from .conftest import load_message

    with_claude([(529, load_message("error_529"), {"request-id": "req_abc"})])
    result = runner.invoke(
        cli, ["ask", "How do dogs learn?", "--index", str(indexed), "--no-stream"]
    )
    assert result.exit_code == 1
    assert "529" in result.stderr
    assert "Traceback" not in result.output


def test_ask_without_key_reports_plan(runner: CliRunner, indexed: Path) -> None:
    result = runner.invoke(
        cli, ["ask", "What do cats eat?", "--index", str(indexed), "--strategy", "retrieve"]
    )
    assert result.exit_code == 0, result.output
    assert "Would send" in result.stdout


def test_cost_reproduces_the_design_arithmetic(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["cost", "--model", "claude-3-5-haiku", "--json"])
    data = json.loads(result.stdout)
    assert data["context_tokens"] == 1500
    assert data["per_query_usd"] == pytest.approx(0.0012)
    assert data["per_day_usd"] == pytest.approx(1.2)
    bad = runner.invoke(cli, ["cost", "--model", "no-such-model"])
    assert bad.exit_code == 2
    assert "has no price" in bad.output


def test_index_fallback_encoding_reads_legacy_files(tmp_path: Path, runner: CliRunner) -> None:
    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    (folder / "legacy.txt").write_bytes("Le café crème est servi chaud.".encode("cp1252"))
    path = str(tmp_path / "idx")
    first = json.loads(runner.invoke(cli, ["index", str(folder), "--index", path, "--json"]).stdout)
    assert [s["path"] for s in first["skipped"]] == ["legacy.txt"]
    second = runner.invoke(
        cli, ["index", str(folder), "--index", path, "--json", "--fallback-encoding", "cp1252"]
    )
    assert json.loads(second.stdout)["added"] == ["legacy.txt"]
    hit = json.loads(runner.invoke(cli, ["search", "café crème", "--index", path, "--json"]).stdout)
    assert hit["results"][0]["id"] == "legacy.txt#0"
    assert "café" in hit["results"][0]["text"]


def test_bad_option_value_is_a_usage_error(
    tmp_path: Path, runner: CliRunner, corpus_dir: Path
) -> None:
    result = runner.invoke(
        cli,
        ["index", str(corpus_dir), "--index", str(tmp_path / "idx"), "--fallback-encoding", "nope"],
    )
    assert result.exit_code == 2
    assert "not a known codec" in result.output
    assert "Traceback" not in result.output


def test_overlap_not_smaller_than_chunk_size_is_a_usage_error(
    tmp_path: Path, runner: CliRunner, corpus_dir: Path
) -> None:
    for argv in (
        ["index", str(corpus_dir), "--index", str(tmp_path / "idx")],
        ["eval", str(tmp_path)],
    ):
        result = runner.invoke(cli, [*argv, "--chunk-size", "32", "--overlap", "32"])
        assert result.exit_code == 2
        assert "must be smaller than --chunk-size (32)" in result.output
    assert not (tmp_path / "idx").exists()


def test_project_defaults_from_pyproject(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "keep.md").write_text("# Keep\n\nCats purr when content.\n")
    (docs / "drafts").mkdir()
    (docs / "drafts" / "wip.md").write_text("# WIP\n\nUnfinished cats.\n")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.ragkit]\nindex = "idx-from-config"\n\n'
        '[tool.ragkit.commands.index]\nexclude = ["drafts/**"]\nkeyword-only = true\n'
    )
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["index", "docs", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["index"] == "idx-from-config"
    assert summary["documents"] == 1
    # An explicit option still wins over the file.
    other = runner.invoke(cli, ["search", "cats", "--index", "idx-from-config", "--json"])
    assert [r["document_id"] for r in json.loads(other.stdout)["results"]] == ["keep.md"]


def test_unknown_project_setting_is_a_usage_error(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ragkit.toml").write_text("chunk_sise = 128\n")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["search", "x"])
    assert result.exit_code == 2
    assert "unknown ragkit settings: chunk_sise" in result.stderr


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        # Found by an outside probe: click turned these into the text "5" and "(1, 2)" and
        # `ragkit index` built an index in a folder of that name; a non-table
        # [commands] entry was silently ignored.
        ("index = 5\n", "index must be text (in quotes), got 5"),
        ("index = [1, 2]\n", "index takes one value, not a list"),
        ("[commands.index]\nexclude = [1]\n", "exclude must be text (in quotes), got 1"),
        ("[commands.index]\ninclude = {a = 1}\n", "include must be a value, not a table"),
        ("[commands]\nindex = 5\n", "'commands.index' must be a table"),
    ],
)
def test_a_project_setting_of_the_wrong_type_is_a_usage_error(
    runner: CliRunner,
    tmp_path: Path,
    corpus_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    toml: str,
    message: str,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "ragkit.toml").write_text(toml)
    monkeypatch.chdir(work)
    result = runner.invoke(cli, ["index", str(corpus_dir), "--keyword-only"])
    assert result.exit_code == 2
    assert message in result.stderr
    assert sorted(p.name for p in work.iterdir()) == ["ragkit.toml"]  # nothing was written


def test_search_and_ask_filter_by_metadata_and_path(runner: CliRunner, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "billing").mkdir(parents=True)
    (docs / "infra").mkdir()
    (docs / "billing" / "refunds.md").write_text(
        "---\nteam: billing\n---\n# Refunds\n\nRefunds take five days.\n"
    )
    (docs / "infra" / "outages.md").write_text(
        "---\nteam: infra\n---\n# Outages\n\nRefunds are not our job; outages are.\n"
    )
    (docs / "other.md").write_text("# Other\n\nNothing about money here at all.\n")
    idx = tmp_path / "idx"
    assert (
        runner.invoke(cli, ["index", str(docs), "--index", str(idx), "--keyword-only"]).exit_code
        == 0
    )
    by_path = runner.invoke(
        cli, ["search", "refunds", "--index", str(idx), "--path", "infra/**", "--json"]
    )
    assert [r["document_id"] for r in json.loads(by_path.stdout)["results"]] == ["infra/outages.md"]
    ask = runner.invoke(
        cli,
        ["ask", "How long do refunds take?", "--index", str(idx), "--path", "billing/**", "--json"],
    )
    assert ask.exit_code == 0, ask.output
    sent = json.loads(ask.stdout)["chunks"]
    assert sent
    assert {c["document_id"] for c in sent} == {"billing/refunds.md"}
    bad = runner.invoke(cli, ["search", "refunds", "--index", str(idx), "--where", "=x"])
    assert bad.exit_code == 2
    assert "is not KEY=VALUE" in bad.stderr


def test_ask_without_a_question_reads_questions_until_end_of_input(
    runner: CliRunner, indexed: Path
) -> None:
    result = runner.invoke(
        cli,
        ["ask", "--index", str(indexed), "--json", "--strategy", "retrieve"],
        input="What do cats eat?\n\nWhich dogs bark?\n",
    )
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [a["question"] for a in answers] == ["What do cats eat?", "Which dogs bark?"]


def test_calibrate_separates_a_folders_own_questions(runner: CliRunner, tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    idx = tmp_path / "idx"
    assert (
        runner.invoke(cli, ["index", str(folder), "--index", str(idx), "--keyword-only"]).exit_code
        == 0
    )
    questions = tmp_path / "q.txt"
    questions.write_text(
        "# examples\n+ What do cats eat?\n+ How do dogs learn tricks?\n"
        "- Who painted the Sistine Chapel ceiling?\n- What is the boiling point of mercury?\n"
    )
    result = runner.invoke(cli, ["calibrate", str(questions), "--index", str(idx), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["signal"] == "coverage"
    good = [r["score"] for r in report["answerable"]]
    bad = [r["score"] for r in report["unanswerable"]]
    assert max(bad) < report["threshold"] <= min(good)
    assert (report["passed"], report["stopped"]) == (2, 2)
    wrong = tmp_path / "bad.txt"
    wrong.write_text("What do cats eat?\n")
    usage = runner.invoke(cli, ["calibrate", str(wrong), "--index", str(idx)])
    assert usage.exit_code == 2
    assert "start the line with '+ '" in usage.stderr


def test_calibrate_refuses_a_questions_file_it_cannot_read(
    tmp_path: Path, runner: CliRunner
) -> None:
    # Found by an outside probe: a file that is not UTF-8 was a UnicodeDecodeError traceback,
    # and a FIFO blocked the command forever.
    import os

    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    idx = tmp_path / "idx"
    assert runner.invoke(cli, ["index", str(folder), "--index", str(idx)]).exit_code == 0
    latin = tmp_path / "latin.txt"
    latin.write_bytes("+ Qu'est-ce qu'un caf\xe9 ?\n".encode("latin-1"))
    result = runner.invoke(cli, ["calibrate", str(latin), "--index", str(idx)])
    assert result.exit_code == 1
    assert "is not UTF-8 text (byte 21); save it as UTF-8" in result.stderr
    fifo = tmp_path / "questions.fifo"
    os.mkfifo(fifo)
    result = runner.invoke(cli, ["calibrate", str(fifo), "--index", str(idx)])
    assert result.exit_code == 1
    assert "is not a regular file; pass a text file" in result.stderr


def test_ctrl_c_during_a_first_index_keeps_every_batch_already_embedded(
    tmp_path: Path,
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    fake_default_embedder: FakeEmbedder,
) -> None:
    folder = write_corpus(
        tmp_path / "docs", {f"doc{i:02}.md": f"# Doc {i}\n\nTopic number {i}.\n" for i in range(12)}
    )
    monkeypatch.setattr("ragkit.ingest._BATCH_CHARS", 60)  # about two documents per batch
    real_embed = fake_default_embedder.embed

    def interrupted(texts: list[str]) -> object:
        if len(fake_default_embedder.calls) == 4:  # the fifth batch: Ctrl-C
            raise KeyboardInterrupt
        return real_embed(texts)

    monkeypatch.setattr(fake_default_embedder, "embed", interrupted)
    path = tmp_path / "idx"
    result = runner.invoke(cli, ["index", str(folder), "--index", str(path)])
    assert result.exit_code == 130
    assert "Interrupted: kept what was indexed so far" in result.stderr
    assert "run the same command again" in result.stderr
    kept = len(Index.load(path, embedder=fake_default_embedder).document_ids)
    assert 0 < kept < 12
    monkeypatch.setattr(fake_default_embedder, "embed", real_embed)
    again = runner.invoke(cli, ["index", str(folder), "--index", str(path), "--json"])
    summary = json.loads(again.stdout)
    assert summary["documents"] == 12
    assert summary["unchanged"] == kept
    assert len(summary["added"]) == 12 - kept


def test_an_edit_says_how_many_chunks_were_re_embedded(
    tmp_path: Path, runner: CliRunner, fake_default_embedder: FakeEmbedder
) -> None:
    sections = "\n\n".join(f"## Part {i}\n\nPart {i} covers topic {i} in depth." for i in range(30))
    folder = write_corpus(tmp_path / "docs", {"long.md": f"# Long\n\n{sections}\n"})
    path = tmp_path / "idx"
    args = ["index", str(folder), "--index", str(path), "--chunk-size", "32", "--overlap", "0"]
    assert runner.invoke(cli, args).exit_code == 0
    (folder / "long.md").write_text(f"# Long\n\n{sections}\n\nOne more line.\n", encoding="utf-8")
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    total = len(Index.load(path, embedder=fake_default_embedder))
    assert total > 20
    assert f"1 of {total} chunks re-embedded" in result.stdout


def test_search_says_what_is_wrong_with_a_filter_that_matches_nothing(tmp_path: Path) -> None:
    """main printed only "No matching chunks." for a misspelt key, a value nobody has or a
    path glob outside the folder."""
    import ragkit

    index = ragkit.Index(embedder=None)
    index.add(
        [
            ragkit.Document("faq/refunds.md", "Refunds take five days.", {"team": "billing"}),
            ragkit.Document("faq/dogs.md", "Dogs learn commands.", {"team": "pets"}),
            ragkit.Document("guide/cats.md", "Cats purr.", {"team": "pets"}),
        ]
    )
    location = str(index.save(tmp_path / "idx"))
    runner = CliRunner()

    def search(*options: str) -> str:
        result = runner.invoke(cli, ["search", "refunds", "--index", location, *options])
        assert result.exit_code == 0, result.output
        assert result.output.startswith("No matching chunks.")
        return result.output

    assert "--where Team=billing: no chunk has the key 'Team' (keys in this index: path, team)" in (
        search("--where", "Team=billing")
    )
    assert "--where team=sales: 3 chunks have 'team', none matches" in search(
        "--where", "team=sales"
    )
    assert "--path 'docs/**': no document path matches" in search("--path", "docs/**")
    both = search("--where", "team=pets", "--path", "faq/refunds.md")
    assert "each condition matches some chunks, but no chunk matches all of them" in both


def test_a_search_process_writes_all_its_output_and_its_exit_code(
    tmp_path: Path, runner: CliRunner, corpus_dir: Path
) -> None:
    """`ragkit search` as its own process (it ends without the interpreter's teardown): the
    output is complete when redirected to a file, errors keep their message and exit code."""
    import subprocess
    import sys

    index = tmp_path / "idx"
    built = runner.invoke(cli, ["index", str(corpus_dir), "--index", str(index), "--keyword-only"])
    assert built.exit_code == 0, built.output
    expected = runner.invoke(cli, ["search", "cats", "--index", str(index), "--json"]).stdout

    def run(*args: str) -> tuple[int, str, str]:
        out, err = tmp_path / "out.txt", tmp_path / "err.txt"
        with out.open("w") as stdout, err.open("w") as stderr:  # files: block-buffered output
            code = subprocess.run(
                [sys.executable, "-m", "ragkit", "search", *args],
                stdout=stdout,
                stderr=stderr,
                cwd=tmp_path,
                check=False,
            ).returncode
        return code, out.read_text(), err.read_text()

    code, out, err = run("cats", "--index", str(index), "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == json.loads(expected)
    assert run("cats", "--index", str(index), "-k", "1")[1].startswith("[1] ")
    code, out, err = run("cats", "--index", str(tmp_path / "missing"))
    assert (code, out) == (1, "")
    assert "no index at" in err
    code, _, err = run("", "--index", str(index))
    assert code == 2
    assert "QUERY must not be empty" in err


@pytest.mark.parametrize(
    "settings",
    [
        '[tool.ragkit]\nindex = "idx-from-config"\n',
        '[ tool . "ragkit" ]\nindex = "idx-from-config"\n',
        '[tool]\nragkit = { index = "idx-from-config" }\n',
        'tool.ragkit.index = "idx-from-config"\n',
        'tool = { ragkit = { index = "idx-from-config" } }\n',
    ],
)
def test_project_defaults_in_every_toml_spelling_of_tool_ragkit(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: str
) -> None:
    (tmp_path / "pyproject.toml").write_text(settings + '\n[project]\nname = "demo"\n')
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["search", "cats"])
    assert result.exit_code == 1
    assert "idx-from-config" in result.stderr  # the configured index was looked for


def test_a_pyproject_without_ragkit_settings_is_not_read_as_settings(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not valid TOML, but nothing in it can be a ragkit setting: the search goes on.
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\nbroken = [\n')
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["search", "cats"])
    assert result.exit_code == 1
    assert "no index at .ragkit/index" in result.stderr
    (tmp_path / "pyproject.toml").write_text("[tool.ragkit]\nindex = [\n")
    result = runner.invoke(cli, ["search", "cats"])
    assert result.exit_code == 2
    assert "is not valid TOML" in result.stderr
