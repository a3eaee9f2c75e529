"""Concurrent use: threads searching while another writes, writers in threads and processes.

The contract (docs/concurrency.md): any number of threads search while one writes; each
ranking sees the store before or after a write, never half of one. One writer at a time per
index across threads and processes; a load → change → save cycle under ``writing(path)`` (what
``index_folder`` and ``ragkit index`` do) never loses another writer's update, and an unlocked
cycle that would is refused. Loading while another process saves always gets a whole
generation. Each scenario runs for a bounded time (a few seconds).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ragkit.base import Store
from ragkit.chunking import chunk_document
from ragkit.errors import IndexConflictError, IndexLockedError
from ragkit.index import Index, open_index, writing
from ragkit.stores.disk import writer_lock
from ragkit.stores.memory import MemoryStore
from ragkit.types import Document

from ..conftest import FakeEmbedder

ROOT = Path(__file__).resolve().parents[2]
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron sigma tau".split()


def _doc(i: int, version: int) -> Document:
    rng = random.Random(i * 7919 + version)
    body = " ".join(rng.choice(WORDS) for _ in range(120))
    return Document(f"d{i:03d}.md", f"doc {i} version {version}. {body}", {"v": version})


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[Callable[[], Store]]:
    """A factory of empty stores of each kind (Postgres: the bundled test server)."""
    if request.param == "memory":
        yield MemoryStore
        return
    pytest.importorskip("ragkit.stores.postgres")
    from ragkit.stores import open_store

    url = request.getfixturevalue("pg_index_url")
    yield lambda: open_store(url, migrate=True)


def _run_for(seconds: float, readers: list[Callable[[], None]], writer: Callable[[], None]) -> None:
    stop = time.monotonic() + seconds
    errors: list[BaseException] = []

    def loop(step: Callable[[], None]) -> None:
        while time.monotonic() < stop:
            try:
                step()
            except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(exc)
                return

    threads = [threading.Thread(target=loop, args=(r,)) for r in [*readers, writer]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 30)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert errors == [], f"{len(errors)} errors, first: {errors[0]!r}"


@pytest.mark.parametrize("mode", ["bm25", "hybrid", "vector"])
def test_searches_during_adds_removes_and_replaces_see_whole_writes(
    store: Callable[[], Store], mode: str
) -> None:
    index = Index(store(), embedder=FakeEmbedder(), chunk_size=24, chunk_overlap=0)
    written: dict[tuple[str, str], set[int]] = {}  # (chunk id, text) -> versions holding it
    guard = threading.Lock()

    def add(docs: list[Document]) -> None:
        # Chunked exactly as the index does, and recorded before a search can see them.
        with guard:
            for d in docs:
                for c in chunk_document(d, size=24, overlap=0):
                    written.setdefault((c.id, c.text), set()).add(int(d.metadata["v"]))
        index.add(docs)

    add([_doc(i, 0) for i in range(60)])
    versions = {i: 0 for i in range(60)}
    searches = [0]

    def search() -> None:
        query = " ".join(random.sample(WORDS, 2))
        hits = index.search(query, k=20, mode=mode)  # type: ignore[arg-type]
        by_doc: dict[str, set[int] | None] = {}
        for hit in hits:
            key = (hit.chunk.id, hit.chunk.text)
            with guard:
                assert key in written, f"{hit.chunk.id} was never written"
                have = set(written[key])
            if mode == "hybrid":
                continue  # two rankings, each a snapshot; fused they may straddle a write
            seen = by_doc.get(hit.chunk.document_id)
            by_doc[hit.chunk.document_id] = have if seen is None else seen & have
            assert by_doc[hit.chunk.document_id], "one search mixed two versions of a document"
        searches[0] += 1

    def write() -> None:
        i = random.randrange(60)
        doc_id = f"d{i:03d}.md"
        if random.random() < 0.3 and doc_id in index.documents:
            index.remove([doc_id])
        else:
            versions[i] += 1
            add([_doc(i, versions[i]), _doc((i + 1) % 60, versions[i] + 1000)])

    _run_for(3.0, [search] * 4, write)
    assert searches[0] > 0
    stats = index.store.stats()
    assert stats.chunks == len(index.chunks) == sum(1 for _ in index.store.chunks())


def test_two_threads_writing_one_index_take_turns(store: Callable[[], Store]) -> None:
    index = Index(store(), embedder=FakeEmbedder(), chunk_size=24, chunk_overlap=0)
    rounds = 25

    def writer(offset: int) -> None:
        for version in range(rounds):
            index.add([_doc(offset + j, version) for j in range(5)])
            if version % 5 == 4:
                index.remove([f"d{offset:03d}.md"])
                index.add([_doc(offset, version)])

    threads = [threading.Thread(target=writer, args=(o,)) for o in (0, 100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert set(index.document_ids) == {f"d{o + j:03d}.md" for o in (0, 100) for j in range(5)}
    for doc_id in index.document_ids:
        chunks = [c for c in index.chunks if c.document_id == doc_id]
        assert chunks[0].text.startswith(f"doc {int(doc_id[1:4])} version {rounds - 1}.")
    assert len(index.chunks) == index.store.stats().chunks
    hits = index.search("alpha", k=500, mode="vector")
    assert len(hits) == len(index.chunks)  # every chunk has exactly one vector


def test_an_unlocked_load_change_save_cycle_cannot_lose_another_writers_update(
    tmp_path: Path,
) -> None:
    path = tmp_path / "idx"
    seed = Index(embedder=None)
    seed.add([_doc(0, 0)])
    seed.save(path)
    first, second = Index.load(path, embedder=None), Index.load(path, embedder=None)
    first.add([_doc(1, 0)])
    first.save()
    second.add([_doc(2, 0)])
    with pytest.raises(IndexConflictError, match="saved by another writer"):
        second.save()
    assert set(Index.load(path, embedder=None).document_ids) == {"d000.md", "d001.md"}


def test_a_second_writer_waits_then_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with writer_lock(path):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        with pytest.raises(IndexLockedError, match="another process is writing"):
            with writer_lock(path, timeout=0.3):
                pass
    finally:
        release.set()
        holder.join()
    with writer_lock(path, timeout=0.3):  # free again
        assert (path / ".lock").exists()


CYCLE = textwrap.dedent(
    """
    import sys
    from ragkit.index import open_index, writing
    from ragkit.types import Document
    path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for i in range(n):
        with writing(path):
            index = open_index(path, embedder=None, chunk_size=32, chunk_overlap=0)
            index.add([Document(f"{name}-{i}.md", f"{name} wrote number {i}")])
            index.save(path)
    print("done")
    """
)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_two_processes_updating_one_index_never_lose_an_update(tmp_path: Path) -> None:
    path = tmp_path / "idx"  # new: both race to create it too
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CYCLE, str(path), name, "15"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ids = set(Index.load(path, embedder=None).document_ids)
    assert ids == {f"{n}-{i}.md" for n in "ab" for i in range(15)}


def test_two_ragkit_index_runs_on_one_new_path_both_succeed(tmp_path: Path) -> None:
    folders = []
    for name in ("x", "y"):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(40):
            (folder / f"{name}{i}.md").write_text(f"# {name} {i}\n\nnotes about {name} {i}\n")
        folders.append(folder)
    path = tmp_path / "idx"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ragkit", "index", str(f), "--index", str(path)]
            # the second run replaces the first's folder on purpose (it would refuse otherwise)
            + ["--keyword-only", "--json", "--replace-source"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in folders
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ids = set(Index.load(path, embedder=None).document_ids)
    # The runs took turns: the index is exactly the folder of the one that ran last.
    assert ids in ({f"x{i}.md" for i in range(40)}, {f"y{i}.md" for i in range(40)})


SAVER = textwrap.dedent(
    """
    import sys, time
    from ragkit.index import Index
    from ragkit.types import Document
    path, seconds = sys.argv[1], float(sys.argv[2])
    index = Index.load(path, embedder=None)
    stop = time.monotonic() + seconds
    n = 0
    while time.monotonic() < stop:
        n += 1
        index.add([Document(f"extra{n % 7}.md", f"save number {n} " + "filler " * 2000)])
        index.save(path)
    print(n)
    """
)


def test_loading_while_another_process_saves_always_gets_a_whole_generation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "idx"
    index = Index(embedder=None)
    index.add([_doc(i, 0) for i in range(300)])
    index.save(path)
    saver = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(path), "4"],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    loads = 0
    try:
        while saver.poll() is None:
            loaded = MemoryStore.load(path)
            documents = loaded.stats().documents
            assert 300 <= documents <= 307
            assert loaded.stats().chunks == sum(1 for _ in loaded.chunks())
            loads += 1
    finally:
        out, err = saver.communicate(timeout=60)
    assert saver.returncode == 0, err
    assert int(out) > 1
    assert loads > 1


def test_a_writer_in_one_thread_holds_the_lock_across_its_cycle(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    order: list[str] = []
    inside = threading.Event()

    def long_cycle() -> None:
        with writing(path):
            index = open_index(path, embedder=None)
            inside.set()
            time.sleep(0.3)
            index.add([Document("slow.md", "slow writer")])
            index.save(path)
            order.append("slow")

    t = threading.Thread(target=long_cycle)
    t.start()
    assert inside.wait(10)
    with writing(path):
        index = open_index(path, embedder=None)  # sees the slow writer's save
        order.append("fast")
        index.add([Document("fast.md", "fast writer")])
        index.save(path)
    t.join()
    assert order == ["slow", "fast"]
    assert set(Index.load(path, embedder=None).document_ids) == {"slow.md", "fast.md"}


def test_keyword_searches_while_another_thread_adds_removes_and_saves(tmp_path: Path) -> None:
    # Issue 14 item 4: a save compacted the BM25 arrays under the *read* lock, so searches
    # running beside it indexed arrays that had just shrunk (IndexError in search_tokens).
    index = Index(embedder=None, chunk_size=24, chunk_overlap=0)
    index.add([_doc(i, 0) for i in range(60)])
    path = tmp_path / "idx"
    rounds = [0]

    def search() -> None:
        hits = index.search(" ".join(random.sample(WORDS, 2)), k=10, mode="bm25")
        assert all(hit.chunk.document_id.startswith("d") for hit in hits)

    def write() -> None:
        rounds[0] += 1
        index.add([_doc(100 + rounds[0] % 5, rounds[0])])
        index.remove([f"d{100 + rounds[0] % 5:03d}.md"])
        index.save(path)

    _run_for(3.0, [search] * 3, write)
    assert rounds[0] > 3
    assert set(Index.load(path, embedder=None).document_ids) == {f"d{i:03d}.md" for i in range(60)}
