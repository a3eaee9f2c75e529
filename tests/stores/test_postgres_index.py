"""The Python API and the CLI against a postgresql:// location, exactly as against a folder path,
and parity of the two stores on a small real corpus (the repository's docs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import ragkit
from ragkit.cli import cli
from ragkit.errors import SettingsMismatchError

from ..conftest import FakeEmbedder, write_corpus

pytest.importorskip("ragkit.stores.postgres")

DOCS = Path(__file__).resolve().parents[2] / "docs"
QUERIES = [
    "how are rankings fused",
    "evidence gate abstain",
    "postgres schema migration",
    "token budget for context",
    "chunk overlap and heading path",
    "metadata filter glob",
]


def test_index_folder_open_index_and_incremental_sync(tmp_path: Path, pg_index_url: str) -> None:
    folder = write_corpus(
        tmp_path / "docs",
        {"a.md": "# Cats\n\nCats purr.", "b.md": "# Dogs\n\nDogs bark.", "c.md": "Fish swim."},
    )
    emb = FakeEmbedder(dim=16)
    first = ragkit.index_folder(folder, pg_index_url, embedder=emb)
    assert first.document_ids == ("a.md", "b.md", "c.md")
    assert "***" not in repr(first)
    assert "postgresql://" in first.store.location
    (folder / "b.md").write_text("# Dogs\n\nDogs bark at the mail carrier.")
    (folder / "c.md").unlink()
    emb.calls.clear()
    again = ragkit.index_folder(folder, pg_index_url, embedder=emb)
    assert again.document_ids == ("a.md", "b.md")
    assert sum(emb.calls) == 1  # only b.md's one chunk was re-embedded
    reopened = ragkit.Index.load(pg_index_url, embedder=emb)
    assert reopened.search("mail carrier", 1, mode="bm25")[0].chunk.document_id == "b.md"
    assert reopened.search("cats", 1, where={"path": {"$glob": "a*"}})[0].id == "a.md#0"
    with pytest.raises(SettingsMismatchError, match="chunk size 64"):
        ragkit.index_folder(folder, pg_index_url, embedder=emb, chunk_size=64)
    for index in (first, again, reopened):
        index.close()


def test_a_postgres_index_records_its_folder_source(tmp_path: Path, pg_index_url: str) -> None:
    from ragkit.ingest import FolderSource, recorded_source

    folder = write_corpus(
        tmp_path / "src",
        {"a.md": "# Cats\n\nCats purr.", "b.md": "Dogs bark.", "tool.py": "def okapi(): pass\n"},
    )
    wide = FolderSource(folder, include=["**/*.md", "**/*.py"])
    ragkit.index_folder(wide, pg_index_url, embedder=None).close()
    reopened = ragkit.Index.load(pg_index_url, embedder=None)
    assert recorded_source(reopened) == wide
    reopened.close()
    narrow = FolderSource(folder, include=["**/*.md"])
    with pytest.raises(ragkit.RagkitError, match="would remove 1 document .*'tool.py'"):
        ragkit.index_folder(narrow, pg_index_url, embedder=None)
    ragkit.index_folder(narrow, pg_index_url, embedder=None, replace_source=True).close()
    again = ragkit.Index.load(pg_index_url, embedder=None)
    assert recorded_source(again) == narrow  # the new source replaced the old in the database
    assert again.document_ids == ("a.md", "b.md")
    again.close()


def test_cli_index_search_ask_against_a_url(pg_index_url: str) -> None:
    runner = CliRunner()
    built = runner.invoke(
        cli, ["index", str(DOCS), "--index", pg_index_url, "--keyword-only", "--json"]
    )
    assert built.exit_code == 0, built.output
    summary = json.loads(built.stdout)
    assert summary["documents"] > 3
    assert "ragkit_schema" in summary["index"]
    found = runner.invoke(cli, ["search", "evidence gate", "--index", pg_index_url, "--json"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)["results"]
    assert hits
    assert hits[0]["score"] > 0
    asked = runner.invoke(
        cli, ["ask", "How does the evidence gate work?", "--index", pg_index_url, "--json"]
    )
    assert asked.exit_code == 0, asked.output
    assert json.loads(asked.stdout)["chunks"]


def test_stores_rank_alike_on_real_documents(pg_index_url: str) -> None:
    emb = FakeEmbedder(dim=32)
    memory = ragkit.index_folder(DOCS, None, embedder=emb)
    pg = ragkit.index_folder(DOCS, pg_index_url, embedder=emb)
    assert memory.document_ids == pg.document_ids
    for q in QUERIES:
        mem_bm25 = memory.search(q, 10, mode="bm25")
        pg_bm25 = pg.search(q, 10, mode="bm25")
        assert [r.id for r in pg_bm25] == [r.id for r in mem_bm25], q
        for a, b in zip(mem_bm25, pg_bm25, strict=True):
            assert abs(a.score - b.score) <= 1e-4
        exact = {r.id for r in memory.search(q, 10, mode="vector")}
        approx = {r.id for r in pg.search(q, 10, mode="vector")}
        assert len(exact & approx) >= 9, q  # HNSW recall@10 against the exact scan
        mem_hybrid = [r.id for r in memory.search(q, 5)]
        pg_hybrid = [r.id for r in pg.search(q, 5)]
        assert len(set(mem_hybrid) & set(pg_hybrid)) >= 4, q
    pg.close()


def test_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://app:hunter2@/ragkit?host={tmp_path}&connect_timeout=1"
    result = CliRunner().invoke(cli, ["search", "x", "--index", url])
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    assert "cannot connect to Postgres" in result.output
    assert "Check that the server" in result.output
    assert len(result.output.strip().splitlines()) == 1
