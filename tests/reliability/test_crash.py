"""Crashes: a writer killed at any point, a full disk, leftovers of both.

A save is killed (SIGKILL) at every step of the on-disk protocol (each file written, each
fsync, the rename of the generation, the swap of ``CURRENT``, the clean-up), on a first save
and on a later one. Whatever is left, ragkit never refuses the path afterwards: it loads the
old or the new generation (or, after a first save, is a fresh path again), and the next save
succeeds and cleans the debris. A killed ``index_folder`` keeps its checkpoints: the re-run
embeds only what was not saved. A full disk (injected ``ENOSPC``, and a real small tmpfs where
mounting is allowed) fails the save with a message and leaves the previous index intact.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ragkit.cli import cli
from ragkit.errors import RagkitError
from ragkit.index import Index
from ragkit.ingest import index_folder
from ragkit.stores import disk
from ragkit.stores.disk import writer_lock
from ragkit.stores.memory import MemoryStore
from ragkit.types import Document

from ..conftest import FakeEmbedder

ROOT = Path(__file__).resolve().parents[2]

SAVE_CHILD = textwrap.dedent(
    """
    import os, shutil, sys, time
    from ragkit.stores import disk
    from ragkit.index import Index
    from ragkit.types import Document
    path, stop_at, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    count = [0]
    def hook(name, fn):
        def wrapped(*args, **kwargs):
            count[0] += 1
            if count[0] == stop_at:
                print(f"at {count[0]} {name}", flush=True)
                time.sleep(60)
            return fn(*args, **kwargs)
        return wrapped
    if mode == "first":
        index = Index(embedder=None, chunk_size=32, chunk_overlap=0)
        index.add([Document(f"n{i}.md", f"new document {i} " * 40) for i in range(30)])
    else:
        index = Index.load(path, embedder=None)
        index.remove(["o0.md"])
        index.add([Document(f"n{i}.md", f"new document {i} " * 40) for i in range(30)])
    disk._write_file = hook("write_file", disk._write_file)
    disk._fsync_dir = hook("fsync_dir", disk._fsync_dir)
    os.mkdir = hook("mkdir", os.mkdir)
    os.rename = hook("rename", os.rename)
    os.replace = hook("replace", os.replace)
    shutil.rmtree = hook("rmtree", shutil.rmtree)
    index.save(path)
    print(f"done {count[0]}", flush=True)
    """
)

OLD = {f"o{i}.md" for i in range(5)}
NEW_FIRST = {f"n{i}.md" for i in range(30)}
NEW_LATER = (OLD - {"o0.md"}) | NEW_FIRST


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _old_index(path: Path, embedder: Any = None) -> None:
    index = Index(embedder=embedder, chunk_size=32, chunk_overlap=0)
    index.add([Document(f"o{i}.md", f"old document {i} " * 40) for i in range(5)])
    index.save(path)


def _run_save(path: Path, stop_at: int, mode: str) -> str:
    child = subprocess.Popen(
        [sys.executable, "-c", SAVE_CHILD, str(path), str(stop_at), mode],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.startswith("at "):
        child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    return line.strip()


def _points(tmp_path: Path, mode: str) -> int:
    path = tmp_path / "count"
    if mode == "later":
        _old_index(path)
    line = _run_save(path, 10**9, mode)
    assert line.startswith("done "), line
    return int(line.split()[1])


def _check_after_kill(path: Path, mode: str) -> None:
    """The path is usable: it loads the old or new index (or is fresh), and saves again."""
    if mode == "first" and not (path / "CURRENT").exists():
        assert not path.exists() or disk.only_debris(path)
    else:
        ids = set(MemoryStore.load(path).document_hashes())
        assert ids in ((OLD, NEW_LATER) if mode == "later" else (NEW_FIRST,))
    # ragkit accepts the path for the next write, and that write clears the debris.
    store = MemoryStore.load(path) if (path / "CURRENT").exists() else None
    fresh = Index(store, embedder=None, chunk_size=32, chunk_overlap=0)
    fresh.add([Document("after.md", "written after the crash")])
    fresh.save(path)
    names = sorted(p.name for p in path.iterdir())
    assert not [n for n in names if n.startswith(".gen-") or n == ".CURRENT.tmp"], names
    assert "after.md" in MemoryStore.load(path).document_hashes()


def _kill_at(tmp_path: Path, mode: str, points: list[int]) -> list[str]:
    seen = []
    for n in points:
        path = tmp_path / f"{mode}-{n}"
        if mode == "later":
            _old_index(path)
        line = _run_save(path, n, mode)
        seen.append(line)
        _check_after_kill(path, mode)
    return seen


@pytest.mark.parametrize("mode", ["first", "later"])
def test_a_save_killed_at_sampled_points_leaves_a_usable_path(tmp_path: Path, mode: str) -> None:
    total = _points(tmp_path, mode)
    assert total >= 8
    sample = [1, 2, total // 2, total - 2]  # the lock's directory, a file, mid-way, the swap
    seen = _kill_at(tmp_path, mode, sample)
    assert all(line.startswith("at ") for line in seen), seen


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["first", "later"])
def test_a_save_killed_at_every_point_leaves_a_usable_path(tmp_path: Path, mode: str) -> None:
    total = _points(tmp_path, mode)
    seen = _kill_at(tmp_path, mode, list(range(1, total + 1)))
    names = {line.split()[2] for line in seen}
    assert {"write_file", "fsync_dir", "rename", "replace"} <= names, names


EMBEDDER = textwrap.dedent(
    """
    import numpy as np

    class HashEmbedder:
        name, dim, batch_size, max_input_tokens = "hash-16", 16, 64, 512

        def __init__(self):
            self.calls = []

        def embed_documents(self, texts):
            self.calls.append(len(texts))
            out = np.zeros((len(texts), 16), dtype=np.float32)
            for row, text in enumerate(texts):
                for word in text.split():
                    out[row, sum(word.encode()) % 16] += 1.0
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
            return out

        def embed_query(self, text):
            return self.embed_documents([text])[0]
    """
)
_names: dict[str, Any] = {}
exec(EMBEDDER, _names)  # the parent uses the very embedder the child runs
HashEmbedder = _names["HashEmbedder"]

FOLDER_CHILD = EMBEDDER + textwrap.dedent(
    """
    import sys
    import ragkit.ingest
    from ragkit.ingest import index_folder
    ragkit.ingest._BATCH_CHARS = 400  # a batch (and a checkpoint) every document or two
    class Announcing(HashEmbedder):
        def embed_documents(self, texts):
            out = super().embed_documents(texts)
            print("embedded", len(texts), flush=True)
            return out
    index_folder(sys.argv[1], sys.argv[2], embedder=Announcing(), chunk_size=32,
                 chunk_overlap=0, checkpoint_every=0)
    print("finished", flush=True)
    """
)


def _folder(tmp_path: Path, n: int = 24) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(n):
        (folder / f"f{i:02d}.md").write_text(
            f"# File {i}\n\n" + f"sentence {i} about things. " * 12
        )
    return folder


def _kill_folder_run(folder: Path, path: Path, after_batches: int) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", FOLDER_CHILD, str(folder), str(path)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    for _ in range(after_batches):
        assert child.stdout.readline().startswith("embedded")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)


@pytest.mark.parametrize("after_batches", [1, 6])
def test_a_killed_index_folder_keeps_its_checkpoints(tmp_path: Path, after_batches: int) -> None:
    folder = _folder(tmp_path)
    reference = index_folder(folder, None, embedder=HashEmbedder(), chunk_size=32, chunk_overlap=0)
    path = tmp_path / "idx"
    _kill_folder_run(folder, path, after_batches)
    saved = len(MemoryStore.load(path).document_hashes()) if (path / "CURRENT").exists() else 0
    saved_chunks = MemoryStore.load(path).stats().chunks if saved else 0
    if after_batches > 2:
        assert saved > 0  # checkpoints happened before the kill
    rerun = HashEmbedder()
    index = index_folder(folder, path, embedder=rerun, chunk_size=32, chunk_overlap=0)
    assert sum(rerun.calls) == len(reference) - saved_chunks  # only the unsaved work
    assert index.document_ids == reference.document_ids
    assert [c.text for c in index.chunks] == [c.text for c in reference.chunks]


@pytest.mark.slow
def test_index_folder_killed_at_random_moments_always_resumes(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 40)
    reference = index_folder(folder, None, embedder=HashEmbedder(), chunk_size=32, chunk_overlap=0)
    rng = random.Random(8)
    for attempt in range(12):
        path = tmp_path / f"idx{attempt}"
        _kill_folder_run(folder, path, rng.randrange(1, 30))
        rerun = HashEmbedder()
        index = index_folder(folder, path, embedder=rerun, chunk_size=32, chunk_overlap=0)
        assert index.document_ids == reference.document_ids
        assert sum(rerun.calls) <= len(reference)


def test_a_writer_killed_while_holding_the_lock_does_not_block_the_next(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    code = (
        "import sys, time; from pathlib import Path; from ragkit.stores.disk import writer_lock\n"
        "with writer_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], env=_env(), stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    with writer_lock(path, timeout=2):  # the kernel released the dead holder's lock
        pass
    assert disk.only_debris(path)


def test_debris_of_crashed_saves_is_ignored_and_cleaned(tmp_path: Path, corpus_dir: Path) -> None:
    for existing in (False, True):
        path = tmp_path / f"idx-{existing}"
        if existing:
            index = Index(embedder=None)
            index.add([Document("old.md", "an old document")])
            index.save(path)
        path.mkdir(exist_ok=True)
        (path / ".lock").write_text("12345\n")
        (path / ".gen-20200101T000000-deadbeef.tmp").mkdir()
        (path / ".gen-20200101T000000-deadbeef.tmp" / "chunks.jsonl").write_text("{")
        (path / "gen-20200101T000000-orphaned").mkdir()
        (path / ".CURRENT.tmp").write_text("gen-20200101T000000-orphaned 00\n")
        if existing:
            assert set(MemoryStore.load(path).document_hashes()) == {"old.md"}
        args = ["index", str(corpus_dir), "--index", str(path), "--keyword-only"]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        names = sorted(p.name for p in path.iterdir())
        assert names[0] == ".lock"
        assert "CURRENT" in names
        assert not [n for n in names if n.endswith((".tmp", "orphaned"))], names
        assert len(MemoryStore.load(path).document_hashes()) == 4


# -- full disk ----------------------------------------------------------------------------------


def _enospc_on(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    real = disk._write_file
    count = [0]

    def failing(path: Path, write: Any) -> dict[str, Any]:
        count[0] += 1
        if count[0] == call:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, write)

    monkeypatch.setattr(disk, "_write_file", failing)


@pytest.mark.parametrize("call", [1, 2, 3, 4, 5])  # chunks, bm25, vectors, manifest, CURRENT
@pytest.mark.parametrize("mode", ["first", "later"])
def test_a_full_disk_fails_the_save_and_keeps_the_previous_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: int, mode: str
) -> None:
    path = tmp_path / "idx"
    if mode == "later":
        _old_index(path, FakeEmbedder())
        index = Index.load(path, embedder=FakeEmbedder())
    else:
        index = Index(embedder=FakeEmbedder(), chunk_size=32, chunk_overlap=0)
    index.add([Document("more.md", "more text " * 50)])
    _enospc_on(monkeypatch, call)
    with pytest.raises(RagkitError, match="No space left on device.*previous index"):
        index.save(path)
    if mode == "later":
        assert set(MemoryStore.load(path).document_hashes()) == OLD
    else:
        assert disk.only_debris(path)
    names = [p.name for p in path.iterdir()]
    assert not [n for n in names if n.endswith(".tmp")], names
    monkeypatch.undo()
    index.save(path)  # space again: the same index saves
    assert "more.md" in MemoryStore.load(path).document_hashes()


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Any:
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected ENOSPC tests cover it")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.parametrize("mode", ["first", "later"])
def test_a_really_full_disk_fails_the_save_and_keeps_the_previous_index(
    small_tmpfs: Path, mode: str
) -> None:
    path = small_tmpfs / "idx"
    index = Index(embedder=None, chunk_size=64, chunk_overlap=0)
    index.add([Document("small.md", "a small document")])
    if mode == "later":
        index.save(path)
    index.add([Document(f"big{i}.md", f"word{i} " * 5000) for i in range(30)])
    with pytest.raises(RagkitError, match="No space left on device"):
        index.save(path)
    if mode == "later":
        assert set(MemoryStore.load(path).document_hashes()) == {"small.md"}
    else:
        assert not path.exists() or disk.only_debris(path)
    index.remove([f"big{i}.md" for i in range(30)])
    index.save(path)  # the failed generation was removed: there is room again
    assert set(MemoryStore.load(path).document_hashes()) == {"small.md"}
