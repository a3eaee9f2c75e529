"""Index: add/remove equal a rebuild, incremental folder updates, atomic save/load, corruption."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from ragkit.errors import EmbeddingError, IndexFormatError, RagkitError, SettingsMismatchError
from ragkit.index import Index
from ragkit.ingest import index_folder
from ragkit.types import Document

from .conftest import SMALL_CORPUS, FakeEmbedder, write_corpus

DOCS = [
    Document("a.md", "# Alpha\n\nCats purr in the warm sun. They sleep all afternoon.\n"),
    Document("b.md", "# Beta\n\nDogs bark at strangers and fetch sticks in the park.\n"),
    Document("c.txt", "Rust guarantees memory safety through ownership and borrowing.\n"),
    Document("d.txt", "Python has a large standard library and a friendly community.\n"),
    Document("e.md", "# Epsilon\n\nThe stock market fell as interest rates rose sharply.\n"),
]
QUERIES = ["cats sleep", "memory safety", "interest rates", "fetch sticks park", "library"]


def _results(index: Index, mode: str | None = None) -> list[list[tuple[str, float]]]:
    return [[(r.chunk.id, r.score) for r in index.search(q, 5, mode=mode)] for q in QUERIES]  # type: ignore[arg-type]


@pytest.fixture
def emb() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((5, "text"), ValueError, r"Document.id must be a non-empty string, got 5"),
        ((("a",), "text"), ValueError, r"got \('a',\)"),
        (("a.md", b"bytes"), TypeError, r"Document.text must be a str, got bytes \(decode"),
        (("a.md", None), TypeError, r"Document.text must be a str, got NoneType"),
    ],
)
def test_a_document_of_the_wrong_types_is_refused_when_made(
    args: tuple, error: type[Exception], message: str
) -> None:
    # Found by an outside probe: Document(5, ...) was indexed under the ID 5 and broke the
    # next sort with "'<' not supported between int and str"; bytes text failed deep inside
    # the hashing with AttributeError.
    with pytest.raises(error, match=message):
        Document(*args)


def test_search_finds_the_right_document(emb: FakeEmbedder) -> None:
    index = Index(embedder=emb)
    update = index.add(DOCS)
    assert update.added == tuple(d.id for d in DOCS)
    assert update.chunks_embedded == len(index)
    for mode in ("hybrid", "bm25", "vector"):
        assert index.search("memory safety ownership", 1, mode=mode)[0].chunk.document_id == "c.txt"  # type: ignore[arg-type]
    hit = index.search("cats purr", 1)[0]
    assert hit.chunk.id == "a.md#0"
    assert hit.chunk.headings == ("Alpha",)
    assert set(hit.scores) == {"bm25", "vector"}


def test_add_remove_equals_rebuild(emb: FakeEmbedder) -> None:
    index = Index(embedder=emb)
    index.add(DOCS[:3])
    index.add([Document("b.md", "Dogs now herd sheep on the hills."), *DOCS[3:]])
    index.remove(["a.md"])
    fresh = Index(embedder=emb)
    fresh.add([Document("b.md", "Dogs now herd sheep on the hills."), *DOCS[2:]])
    assert index.document_ids == fresh.document_ids
    assert [c.id for c in index.chunks] == [c.id for c in fresh.chunks]
    for mode in ("hybrid", "bm25", "vector"):
        assert _results(index, mode) == _results(fresh, mode)


def test_unchanged_documents_are_not_re_embedded(emb: FakeEmbedder) -> None:
    index = Index(embedder=emb)
    index.add(DOCS)
    calls = len(emb.calls)
    update = index.add(DOCS)
    assert update.unchanged == tuple(d.id for d in DOCS)
    assert not update.changed
    assert len(emb.calls) == calls
    update = index.add([Document("a.md", "Cats changed their mind.")])
    assert update.replaced == ("a.md",)
    assert update.chunks_embedded == 1


def test_embedding_failure_leaves_index_unchanged(emb: FakeEmbedder) -> None:
    index = Index(embedder=emb)
    index.add(DOCS[:3])
    before = _results(index)

    class Broken(FakeEmbedder):
        def embed(self, texts: object) -> np.ndarray:
            raise RuntimeError("model crashed")

    index.embedder = Broken(name=emb.name)
    with pytest.raises(EmbeddingError, match="model crashed"):
        index.add([Document("a.md", "replacement text"), DOCS[4]])
    index.embedder = emb
    assert _results(index) == before
    assert index.document_ids == ("a.md", "b.md", "c.txt")


def test_wrong_dimension_is_an_embedding_error(emb: FakeEmbedder) -> None:
    index = Index(embedder=emb)
    index.add(DOCS[:3])
    index.embedder = FakeEmbedder(dim=32, name=emb.name)
    with pytest.raises(EmbeddingError, match="expected embeddings of dimension 64, got 32"):
        index.add([DOCS[3]])
    assert len(index.document_ids) == 3


def test_remove_unknown_document_removes_nothing(emb: FakeEmbedder) -> None:
    index = Index(embedder=emb)
    index.add(DOCS)
    with pytest.raises(KeyError, match="nope.md"):
        index.remove(["a.md", "nope.md"])
    assert "a.md" in index.document_ids


def test_keyword_only_index(caplog: pytest.LogCaptureFixture) -> None:
    index = Index(embedder=None)
    index.add(DOCS)
    assert not index.has_vectors
    assert index.search("interest rates", 1)[0].chunk.document_id == "e.md"
    with pytest.raises(ValueError, match="keyword-only"):
        index.search("interest rates", 1, mode="vector")


def test_k_larger_than_index_and_empty_index(emb: FakeEmbedder) -> None:
    index = Index(embedder=emb)
    assert index.search("anything", 3) == []
    index.add(DOCS[:3])
    assert len(index.search("cats dogs rust", 100, mode="bm25")) <= 3
    assert len(index.search("cats dogs rust", 100, mode="vector")) == 3


def test_chunk_lookup(emb: FakeEmbedder) -> None:
    index = Index(embedder=emb)
    index.add(DOCS)
    assert index.chunk("c.txt#0").document_id == "c.txt"
    with pytest.raises(KeyError, match="no chunk 'c.txt#9' in this index"):
        index.chunk("c.txt#9")


def test_save_load_round_trip(tmp_path: Path, emb: FakeEmbedder) -> None:
    index = Index(embedder=emb, chunk_size=64, chunk_overlap=8)
    index.add(DOCS)
    index.save(tmp_path / "idx")
    loaded = Index.load(tmp_path / "idx", embedder=emb)
    assert loaded.chunks == index.chunks
    assert loaded.documents == index.documents
    for mode in ("hybrid", "bm25", "vector"):
        assert _results(loaded, mode) == _results(index, mode)
    # the loaded index keeps working incrementally and equals a rebuild
    loaded.remove(["b.md"])
    loaded.add([Document("f.md", "Fish swim in schools near the reef.")])
    fresh = Index(embedder=emb, chunk_size=64, chunk_overlap=8)
    fresh.add(
        [d for d in DOCS if d.id != "b.md"]
        + [Document("f.md", "Fish swim in schools near the reef.")]
    )
    assert _results(loaded) == _results(fresh)


def test_save_replaces_previous_generation(tmp_path: Path, emb: FakeEmbedder) -> None:
    index = Index(embedder=emb)
    index.add(DOCS[:2])
    index.save(tmp_path / "idx")
    index.add(DOCS[2:])
    index.save(tmp_path / "idx")
    index.remove(["a.md"])
    index.save(tmp_path / "idx")
    # The live generation and the one before it (a reader may still be opening it) remain.
    gens = [p for p in (tmp_path / "idx").iterdir() if p.name.startswith("gen-")]
    assert len(gens) == 2
    live = (tmp_path / "idx" / "CURRENT").read_text().split()[0]
    assert live in {g.name for g in gens}
    assert Index.load(tmp_path / "idx", embedder=emb).document_ids == index.document_ids


def test_refuses_to_save_over_a_foreign_directory(tmp_path: Path, emb: FakeEmbedder) -> None:
    (tmp_path / "mydocs").mkdir()
    (tmp_path / "mydocs" / "precious.txt").write_text("do not delete")
    index = Index(embedder=emb)
    index.add(DOCS[:3])
    with pytest.raises(RagkitError, match="not a ragkit index"):
        index.save(tmp_path / "mydocs")
    assert (tmp_path / "mydocs" / "precious.txt").read_text() == "do not delete"


@pytest.mark.parametrize(
    "damage",
    [
        "truncate_chunks",
        "truncate_bm25",
        "truncate_vectors",
        "garbage_manifest",
        "version",
        "missing_vectors",
        "current",
        "binary_current",
    ],
)
def test_corrupt_index_raises_index_format_error(
    tmp_path: Path, emb: FakeEmbedder, damage: str
) -> None:
    index = Index(embedder=emb)
    index.add(DOCS)
    root = index.save(tmp_path / "idx")
    gen = root / (root / "CURRENT").read_text().split()[0]
    if damage.startswith("truncate_"):
        name = {"chunks": "chunks.npz", "bm25": "bm25.npz", "vectors": "vectors.npz"}[damage[9:]]
        data = (gen / name).read_bytes()
        (gen / name).write_bytes(data[: len(data) // 2])
    elif damage == "garbage_manifest":
        (gen / "manifest.json").write_bytes(b"\x00\x01 not json")
    elif damage == "version":
        manifest = json.loads((gen / "manifest.json").read_text())
        manifest["version"] = 999
        (gen / "manifest.json").write_text(json.dumps(manifest))
    elif damage == "missing_vectors":
        os.remove(gen / "vectors.npz")
    elif damage == "current":
        (root / "CURRENT").write_text("gen-does-not-exist\n")
    elif damage == "binary_current":
        (root / "CURRENT").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(IndexFormatError, match="idx"):
        Index.load(root, embedder=emb)


def test_load_missing_or_foreign_path(tmp_path: Path) -> None:
    with pytest.raises(IndexFormatError, match="no index at"):
        Index.load(tmp_path / "nothing")
    with pytest.raises(IndexFormatError, match="not a ragkit index"):
        Index.load(tmp_path)


def test_load_with_another_embedder_is_refused(tmp_path: Path, emb: FakeEmbedder) -> None:
    index = Index(embedder=emb)
    index.add(DOCS)
    index.save(tmp_path / "idx")
    with pytest.raises(SettingsMismatchError, match="built with embedder 'fake-hash-64'"):
        Index.load(tmp_path / "idx", embedder=FakeEmbedder(name="other-model"))


def test_index_folder_is_incremental(tmp_path: Path, emb: FakeEmbedder) -> None:
    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    path = tmp_path / "idx"
    first = index_folder(folder, path, embedder=emb)
    assert set(first.document_ids) == set(SMALL_CORPUS)
    embedded = sum(emb.calls)
    again = index_folder(folder, path, embedder=emb)
    assert sum(emb.calls) == embedded, "nothing changed, nothing re-embedded"
    assert again.chunks == first.chunks
    (folder / "cats.md").write_text("# Cats\n\nCats now read books.\n")
    os.remove(folder / "rust.txt")
    (folder / "new.md").write_text("# New\n\nA new document about gardening.\n")
    updated = index_folder(folder, path, embedder=emb)
    assert "rust.txt" not in updated.document_ids
    assert "new.md" in updated.document_ids
    assert updated.search("gardening", 1)[0].chunk.document_id == "new.md"
    assert any("read books" in c.text for c in updated.chunks if c.document_id == "cats.md")
    fresh = index_folder(folder, None, embedder=emb)
    assert _results(updated) == _results(fresh)


def test_index_folder_keeps_unreadable_files_indexed(tmp_path: Path, emb: FakeEmbedder) -> None:
    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    path = tmp_path / "idx"
    index_folder(folder, path, embedder=emb)
    (folder / "dogs.md").write_bytes(b"\xff\xfe\x00binary\x00now")
    updated = index_folder(folder, path, embedder=emb)
    assert "dogs.md" in updated.document_ids, (
        "a file that became unreadable is not dropped silently"
    )


def test_index_folder_keeps_the_index_settings_and_refuses_others(
    tmp_path: Path, emb: FakeEmbedder
) -> None:
    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    index_folder(folder, tmp_path / "idx", embedder=emb, chunk_size=64, chunk_overlap=8)
    # A re-run that does not name the settings reuses the index's own.
    again = index_folder(folder, tmp_path / "idx", embedder=emb)
    assert (again.chunk_size, again.chunk_overlap) == (64, 8)
    with pytest.raises(SettingsMismatchError, match="chunk size 16 \\(index: 64\\)"):
        index_folder(folder, tmp_path / "idx", embedder=emb, chunk_size=16, chunk_overlap=4)
    assert Index.load(tmp_path / "idx", embedder=emb).chunk_size == 64


def test_index_folder_refuses_to_drop_vectors(tmp_path: Path, emb: FakeEmbedder) -> None:
    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    index_folder(folder, tmp_path / "idx", embedder=emb)
    with pytest.raises(SettingsMismatchError, match="keyword-only would drop them"):
        index_folder(folder, tmp_path / "idx", embedder=None)


def test_missing_folder_is_a_load_error(tmp_path: Path, emb: FakeEmbedder) -> None:
    with pytest.raises(RagkitError, match="missing: no such folder"):
        index_folder(tmp_path / "missing", tmp_path / "idx", embedder=emb)
    assert not (tmp_path / "idx" / "CURRENT").exists()


def test_copied_index_directory_loads(tmp_path: Path, emb: FakeEmbedder) -> None:
    index = Index(embedder=emb)
    index.add(DOCS)
    index.save(tmp_path / "idx")
    shutil.copytree(tmp_path / "idx", tmp_path / "copy")
    assert Index.load(tmp_path / "copy", embedder=emb).document_ids == index.document_ids


def test_no_embedder_installed_means_keyword_only_said_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("ragkit.index.default_embedder", lambda: None)
    monkeypatch.setattr("ragkit.index._warned_keyword_only", False)
    with caplog.at_level(logging.WARNING, logger="ragkit"):
        first, second = Index(), Index()
    assert not first.has_vectors
    assert not second.has_vectors
    assert caplog.text.count("keyword-only") == 1
    first.add(DOCS)
    assert first.search("memory safety", 1)[0].chunk.document_id == "c.txt"


@pytest.mark.parametrize(
    ("failure", "raised", "message"),
    [
        (KeyboardInterrupt(), KeyboardInterrupt, None),  # killed mid-save
        (OSError(28, "No space left on device"), RagkitError, "No space left on device"),
    ],
)
def test_failed_save_keeps_the_previous_index_loadable(
    tmp_path: Path,
    emb: FakeEmbedder,
    monkeypatch: pytest.MonkeyPatch,
    failure: BaseException,
    raised: type[BaseException],
    message: str | None,
) -> None:
    index = Index(embedder=emb)
    index.add(DOCS[:2])
    index.save(tmp_path / "idx")
    index.add(DOCS[2:])

    def fail(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr("ragkit.stores.memory.np.savez", fail)
    with pytest.raises(raised, match=message):
        index.save(tmp_path / "idx")
    monkeypatch.undo()
    assert Index.load(tmp_path / "idx", embedder=emb).document_ids == ("a.md", "b.md")
    assert not [p for p in (tmp_path / "idx").iterdir() if p.name.endswith(".tmp")]


class _RecordingEmbedder(FakeEmbedder):
    """Records every text it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += list(texts)
        return super().embed(texts)


def _long_document(paragraphs: int) -> str:
    sections = []
    for s in range(paragraphs // 5):
        body = "\n\n".join(
            f"Paragraph {s}.{p} says that release {s} changed part {p} of the parser, "
            f"the cache and the command line in ways worth a sentence or two of notes."
            for p in range(5)
        )
        sections.append(f"## Release {s}\n\n{body}")
    return "# Release notes\n\n" + "\n\n".join(sections) + "\n"


def test_an_edit_re_embeds_only_the_chunks_whose_text_changed() -> None:
    emb = _RecordingEmbedder()
    index = Index(embedder=emb, chunk_size=64, chunk_overlap=8)
    text = _long_document(200)
    index.add([Document("notes.md", text)])
    total = len(index)
    assert total > 100
    emb.texts.clear()
    appended = text + "\nOne more paragraph about the new flag for the parser.\n"
    update = index.add([Document("notes.md", appended)])
    assert update.replaced == ("notes.md",)
    assert 1 <= update.chunks_embedded <= 3
    assert update.chunks_embedded + update.chunks_reused == len(index)
    assert len(emb.texts) == update.chunks_embedded
    assert any("new flag" in t for t in emb.texts)
    # The same vectors, and so the same rankings, as a build from scratch.
    fresh = Index(embedder=FakeEmbedder(), chunk_size=64, chunk_overlap=8)
    fresh.add([Document("notes.md", appended)])
    for query in ("new flag for the parser", "release 17 changed part 3", "cache"):
        got = index.search(query, 5, mode="vector")
        want = fresh.search(query, 5, mode="vector")
        assert [r.chunk.id for r in got] == [r.chunk.id for r in want]
        assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-5)


def test_reused_vectors_survive_save_and_load(tmp_path: Path) -> None:
    emb = _RecordingEmbedder()
    index = Index(embedder=emb, chunk_size=64, chunk_overlap=8)
    text = _long_document(40)
    index.add([Document("notes.md", text)])
    index.save(tmp_path / "ix")
    again = Index.load(tmp_path / "ix", embedder=emb)
    emb.texts.clear()
    update = again.add([Document("notes.md", text.replace("Paragraph 3.2", "Paragraph 3.two"))])
    assert update.chunks_embedded <= 3
    assert all("3.two" in t for t in emb.texts)


def test_repeated_chunk_texts_are_embedded_once() -> None:
    emb = _RecordingEmbedder()
    index = Index(embedder=emb)
    update = index.add(
        [Document(f"d{i}.md", "# Licence\n\nThe same boilerplate paragraph.\n") for i in range(4)]
    )
    assert len(index) == 4
    assert update.chunks_embedded == 1
    assert update.chunks_reused == 3
    assert len(emb.texts) == 1


@pytest.mark.parametrize("location", [5, b"/tmp/index", ["ix"]])
def test_open_index_refuses_a_location_that_is_not_a_path_or_url(location: object) -> None:
    # It used to return an empty in-memory index, so a caller's wrong argument lost every
    # write silently.
    import ragkit

    with pytest.raises(TypeError, match="location must be a directory path or a postgresql://"):
        ragkit.open_index(location)  # type: ignore[arg-type]


def test_open_index_none_is_an_in_memory_index() -> None:
    import ragkit

    index = ragkit.open_index(None)
    assert len(index) == 0


def test_open_index_takes_any_path_like(tmp_path: Path) -> None:
    import ragkit

    class Where:
        def __fspath__(self) -> str:
            return str(tmp_path / "ix")

    index = ragkit.open_index(Where(), embedder=None)
    index.add([Document("a.md", "the caracal hunts at dusk")])
    index.save()
    assert (tmp_path / "ix").is_dir()
