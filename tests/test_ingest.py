"""Folder sync: the source an index records, one sync for every entry point, no silent removals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import ragkit
import ragkit.chunking
import ragkit.entries
import ragkit.index
from ragkit import ingest
from ragkit.cli import cli
from ragkit.errors import SourceChangeError
from ragkit.ingest import FolderSource, recorded_source, source_for, sync

from .conftest import SMALL_CORPUS, FakeEmbedder, write_corpus

WITH_CODE = {**SMALL_CORPUS, "tool.py": "def okapi():\n    return 'forest giraffe'\n"}


def test_folder_source_is_validated_once_when_built(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="glob patterns must be non-empty strings"):
        FolderSource(tmp_path, include=[""])
    with pytest.raises(ValueError, match=r"max_bytes \(0\) must be >= 1"):
        FolderSource(tmp_path, max_bytes=0)
    with pytest.raises(ValueError, match="fallback_encoding \\('nope'\\) is not a known codec"):
        FolderSource(tmp_path, fallback_encoding="nope")
    with pytest.raises(TypeError, match="skip_hidden must be True or False"):
        FolderSource(tmp_path, skip_hidden="no")  # type: ignore[arg-type]
    assert FolderSource(tmp_path, fallback_encoding="utf-16").fallback_encoding == "utf-16"


def test_a_folder_name_too_long_is_a_load_error(tmp_path: Path) -> None:
    from ragkit.errors import LoadError
    from ragkit.loaders import load_folder

    with pytest.raises(LoadError, match=r"cannot be read as a folder \(File name too long\)"):
        load_folder(tmp_path / ("x" * 300))


@pytest.mark.parametrize("codec", ["rot13", "base64", "hex", "zlib"])
def test_a_codec_that_is_not_a_text_encoding_is_refused_up_front(
    tmp_path: Path, codec: str
) -> None:
    # Found by an outside probe: --fallback-encoding rot13 was accepted, then every file that
    # needed it was skipped as "not UTF-8 (pass fallback_encoding ...)", the one already passed.
    with pytest.raises(ValueError, match=f"\\('{codec}'\\) is a codec but not a text encoding"):
        FolderSource(tmp_path, fallback_encoding=codec)
    source = FolderSource(tmp_path / "docs" / ".." / "docs", include="*.md")
    assert source.folder == str((tmp_path / "docs").resolve())
    assert source.include == ("*.md",)
    assert FolderSource.from_dict(json.loads(json.dumps(source.as_dict()))) == source
    with pytest.raises(ValueError, match=r"max_bytes \(-1\) must be >= 1"):
        source.with_options(max_bytes=-1)


def test_the_index_records_its_source_and_a_sync_without_one_uses_it(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "src", WITH_CODE)
    index = ragkit.Index(embedder=None)
    with pytest.raises(ragkit.RagkitError, match="records no folder to sync: pass one"):
        sync(index)
    source = FolderSource(folder, include=["**/*.py", "**/*.md"])
    first = sync(index, source)
    assert first.source_changed
    assert sorted(first.update.added) == ["cats.md", "dogs.md", "tool.py"]
    index.save(tmp_path / "idx")

    reopened = ragkit.Index.load(tmp_path / "idx", embedder=None)
    assert recorded_source(reopened) == source
    (folder / "more.md").write_text("# More\n\nThe okapi eats leaves.\n", encoding="utf-8")
    again = sync(reopened)
    assert not again.source_changed
    assert again.update.added == ("more.md",)
    assert again.update.removed == ()
    assert "tool.py" in reopened.document_ids
    # a caller naming only the folder gets the recorded options back
    assert source_for(reopened, folder) == source
    assert source_for(reopened, folder, skip_hidden=False).include == source.include


def test_a_changed_source_says_what_it_would_remove_and_changes_nothing(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "src", WITH_CODE)
    index = ragkit.Index(embedder=None)
    sync(index, FolderSource(folder, include=["**/*.py", "**/*.md"]))
    before = index.document_ids
    with pytest.raises(
        SourceChangeError,
        match=r"would remove 1 document whose files are still "
        r"there: 'tool.py'\. Nothing was changed",
    ) as caught:
        sync(index, FolderSource(folder, include=["**/*.md"]))
    assert caught.value.removals == ("tool.py",)
    assert index.document_ids == before
    assert recorded_source(index) == FolderSource(folder, include=["**/*.py", "**/*.md"])

    done = sync(index, FolderSource(folder, include=["**/*.md"]), replace_source=True)
    assert done.update.removed == ("tool.py",)
    assert recorded_source(index) == FolderSource(folder, include=["**/*.md"])


def test_a_changed_source_removes_deleted_files_and_adds_without_asking(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "src", WITH_CODE)
    index = ragkit.Index(embedder=None)
    sync(index, FolderSource(folder, include=["**/*.md"]))
    (folder / "cats.md").unlink()
    done = sync(index, FolderSource(folder, include=["**/*.md", "**/*.py"]))
    assert done.update.removed == ("cats.md",)
    assert done.update.added == ("tool.py",)


def test_an_index_with_no_recorded_source_is_protected_too(tmp_path: Path) -> None:
    """An index built before sources were recorded: a sync that would drop files still on
    disk asks first (the `ragkit mcp --watch` case on an old index)."""
    folder = write_corpus(tmp_path / "src", WITH_CODE)
    index = ragkit.Index(embedder=None)
    index.add(FolderSource(folder, include=["**/*.py", "**/*.md"]).load().documents)
    with pytest.raises(SourceChangeError, match="records no folder source"):
        sync(index, source_for(index, folder))
    assert "tool.py" in index.document_ids


def test_each_document_is_hashed_and_chunked_once_per_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 changed documents in several batches, with a progress bar: 30 chunkings (main: 60)."""
    files = {f"d{i:02}.md": f"# Doc {i}\n\n" + "word " * 400 + f"unique{i}\n" for i in range(30)}
    folder = write_corpus(tmp_path / "src", files)
    counts = {"chunk": 0, "hash": 0}
    real_chunk, real_hash = ragkit.chunking.chunk_document, ragkit.entries.document_hash

    def chunk(*args, **kwargs):  # type: ignore[no-untyped-def]
        counts["chunk"] += 1
        return real_chunk(*args, **kwargs)

    def digest(doc):  # type: ignore[no-untyped-def]
        counts["hash"] += 1
        return real_hash(doc)

    monkeypatch.setattr(ragkit.chunking, "chunk_document", chunk)
    monkeypatch.setattr(ragkit.entries, "document_hash", digest)
    monkeypatch.setattr(ingest, "_BATCH_CHARS", 5_000)  # several batches
    seen: list[tuple[int, int]] = []
    index = ragkit.Index(embedder=FakeEmbedder())
    done = sync(index, FolderSource(folder), progress=lambda d, t: seen.append((d, t)))
    assert len(done.update.added) == 30
    assert counts == {"chunk": 30, "hash": 30}
    total = len(index)
    assert {t for _, t in seen} == {total}  # one bar over every batch
    assert seen[-1] == (total, total)


def test_cli_index_remembers_its_options_and_asks_before_removing(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "src", {**WITH_CODE, ".notes/b.md": "# Hidden\n\nOkapi.\n"})
    location = str(tmp_path / "idx")
    runner = CliRunner()
    base = ["index", str(folder), "--index", location, "--keyword-only"]
    first = runner.invoke(cli, [*base, "--include", "**/*.py", "--include", "**/*.md", "--hidden"])
    assert first.exit_code == 0, first.output
    built = ragkit.Index.load(location, embedder=None).document_ids
    assert built == (".notes/b.md", "cats.md", "dogs.md", "tool.py")

    again = runner.invoke(cli, [*base, "--json"])  # no options: the recorded ones
    assert again.exit_code == 0, again.output
    summary = json.loads(again.output)
    assert summary["removed"] == []
    assert summary["unchanged"] == 4

    narrower = runner.invoke(cli, [*base, "--no-hidden"])
    assert narrower.exit_code == 1
    assert "would remove 1 document whose files are still there: '.notes/b.md'" in narrower.output
    assert "--replace-source" in narrower.output
    assert ragkit.Index.load(location, embedder=None).document_ids == built

    confirmed = runner.invoke(cli, [*base, "--no-hidden", "--replace-source", "--json"])
    assert confirmed.exit_code == 0, confirmed.output
    assert json.loads(confirmed.output)["removed"] == [".notes/b.md"]


def test_index_help_names_every_default_file_type() -> None:
    result = CliRunner().invoke(cli, ["index", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for suffix in (".md", ".txt", ".rst", ".html", ".ipynb", ".pdf", ".docx"):
        assert suffix in text


def test_index_folder_inherits_the_recorded_include_patterns(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "src", WITH_CODE)
    location = tmp_path / "idx"
    ragkit.index_folder(folder, location, embedder=None, include=["**/*.py", "**/*.md"])
    again = ragkit.index_folder(folder, location, embedder=None)
    assert "tool.py" in again.document_ids
    with pytest.raises(ValueError, match="inside the FolderSource"):
        ragkit.index_folder(FolderSource(folder), location, embedder=None, include=["*.md"])


def test_update_from_folder_still_works_and_says_it_is_deprecated(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "src", WITH_CODE)
    index = ragkit.Index(embedder=None)
    with pytest.warns(DeprecationWarning, match="update_from_folder\\(\\) is deprecated"):
        update, loaded = ragkit.index.update_from_folder(index, folder, include=["**/*.py"])
    assert update.added == ("tool.py",)
    assert [d.id for d in loaded.documents] == ["tool.py"]


def test_index_folder_progress_true_reports_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The one progress helper: in a log (stderr not a terminal), a line per tenth of the work."""
    folder = write_corpus(tmp_path / "src", SMALL_CORPUS)
    index = ragkit.index_folder(folder, None, embedder=FakeEmbedder(), progress=True)
    err = capsys.readouterr().err
    assert f"ragkit: embedding: {len(index)}/{len(index)} chunks" in err
