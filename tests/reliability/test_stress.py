"""Every public read against every public write, from threads, for a fixed time, on both stores.

The contract (docs/concurrency.md): any number of threads read while others write. Readers run
searches in each mode (bm25, vector, hybrid) with and without filters, list ``chunks``, read
``stats``, plan answers (``retrieve_context``, no API call) and reopen the index from where it
lives; writers add, replace, remove, save and reload (swap in a freshly opened index, as the
MCP server's holder does). Every operation is checked:

- no exception, of any kind;
- every hit, chunk and planned passage is a chunk some write produced (id and text together);
- a single ranking (bm25 or vector), a ``chunks`` listing and a document's chunks in a plan
  never mix two versions of one document;
- a filtered result satisfies its filter; ``stats`` add up (documents <= chunks <= characters).

The short run (a few seconds per store) is part of ``make test``; the long one
(``RAGKIT_STRESS_SECONDS``, default 60 s per store) runs under ``make test-slow``. Each run
prints the operations and errors it counted (``pytest -s`` shows them).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ragkit.base import Query
from ragkit.chunking import chunk_document
from ragkit.filters import matches, parse_filter
from ragkit.index import Index
from ragkit.plan import AnswerOptions, retrieve_context
from ragkit.stores.memory import _RWLock
from ragkit.types import Chunk, Document

from ..conftest import FakeEmbedder

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron sigma tau".split()
CHUNK = 24
N_DOCS = 40
SHORT_SECONDS = 2.5
LONG_SECONDS = float(os.environ.get("RAGKIT_STRESS_SECONDS", "60"))
FILTERS = [
    {"group": "a"},
    {"v": {"$lt": 3}},
    {"path": {"$glob": "d0*.md"}},
    {"$or": [{"group": "b"}, {"path": {"$glob": "**/d01?.md"}}]},
    {"$not": {"group": {"$in": ["a", "c"]}}},
]


def _doc(i: int, version: int) -> Document:
    rng = random.Random(i * 7919 + version)
    body = " ".join(rng.choice(WORDS) for _ in range(90))
    return Document(
        f"d{i:03d}.md",
        f"doc {i} version {version}. {body}",
        {"v": version, "group": "abc"[i % 3], "path": f"d{i:03d}.md"},
    )


@dataclass
class Ledger:
    """What the writers produced: (chunk id, text) -> the versions that hold it."""

    written: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, docs: list[Document]) -> None:
        with self.lock:
            for d in docs:
                for c in chunk_document(d, size=CHUNK, overlap=0):
                    self.written.setdefault((c.id, c.text), set()).add(int(d.metadata["v"]))

    def versions(self, chunk: Chunk) -> set[int]:
        with self.lock:
            found = self.written.get((chunk.id, chunk.text))
            assert found is not None, f"{chunk.id} was never written with that text"
            return set(found)


def _one_version(ledger: Ledger, chunks: list[Chunk], what: str) -> None:
    """Each document's chunks among ``chunks`` come from one version of it."""
    by_doc: dict[str, set[int]] = {}
    for c in chunks:
        have = ledger.versions(c)
        seen = by_doc.get(c.document_id)
        by_doc[c.document_id] = have if seen is None else seen & have
        assert by_doc[c.document_id], f"{what} mixed two versions of {c.document_id}"
        assert c.metadata.get("v") in have, f"{what}: {c.id} carries another version's metadata"


@dataclass
class Target:
    """One store under test: the shared index slot, how to reopen it, what a save does."""

    name: str
    holder: list[Index]
    reopen: Callable[[], Index]
    save: Callable[[Index], object]
    opened: list[Index] = field(default_factory=list)


def _reads(target: Target, ledger: Ledger) -> dict[str, Callable[[], None]]:
    def index() -> Index:
        return target.holder[0]

    def query() -> str:
        return " ".join(random.sample(WORDS, 2))

    def search(mode: str, filtered: bool) -> Callable[[], None]:
        def run() -> None:
            spec = random.choice(FILTERS) if filtered else None
            hits = index().search(query(), k=12, mode=mode, where=spec)  # type: ignore[arg-type]
            where = parse_filter(spec)
            for hit in hits:
                ledger.versions(hit.chunk)
                assert matches(where, hit.chunk.metadata), f"{hit.chunk.id} fails {spec}"
            scores = [h.score for h in hits]
            assert scores == sorted(scores, reverse=True)
            if mode != "hybrid":  # hybrid fuses two snapshots: it may straddle a write
                _one_version(ledger, [h.chunk for h in hits], f"a {mode} search")

        return run

    def chunks() -> None:
        listed = list(index().chunks)
        _one_version(ledger, listed, "chunks")
        by_doc: dict[str, list[int]] = {}
        for c in listed:
            by_doc.setdefault(c.document_id, []).append(int(c.id.rpartition("#")[2]))
        for doc_id, ordinals in by_doc.items():
            assert ordinals == list(range(len(ordinals))), f"{doc_id}: chunks {ordinals}"

    def stats() -> None:
        spec = random.choice([None, *FILTERS])
        s = index().store.stats(parse_filter(spec))
        assert 0 <= s.documents <= s.chunks <= s.characters, (spec, s)

    def plan() -> None:
        spec = random.choice([None, *FILTERS])
        strategy = random.choice(["retrieve", "auto"])
        options = AnswerOptions(strategy=strategy, gate=False)  # type: ignore[arg-type]
        p = retrieve_context(Query(query(), 6, where=spec), index(), options)
        where = parse_filter(spec)
        planned = [sc.chunk for sc in p.chunks]
        for c in planned:
            ledger.versions(c)
            assert matches(where, c.metadata)
        if p.strategy == "full":  # the whole corpus is one listing: one version per document
            _one_version(ledger, planned, "a whole-corpus plan")

    def reopen() -> None:
        fresh = target.reopen()
        try:
            for hit in fresh.search(query(), k=5, mode="hybrid"):
                ledger.versions(hit.chunk)
            assert fresh.store.stats().documents >= 1
        finally:
            fresh.close()

    reads: dict[str, Callable[[], None]] = {}
    for mode in ("bm25", "vector", "hybrid"):
        reads[f"search {mode}"] = search(mode, False)
        reads[f"search {mode} filtered"] = search(mode, True)
    reads |= {"chunks": chunks, "stats": stats, "plan": plan, "reopen": reopen}
    return reads


def _writes(
    target: Target, ledger: Ledger, lo: int, hi: int, turns: _RWLock, *, churn: bool = False
) -> Callable[[Counter[str]], None]:
    """One writer's step over documents ``lo..hi-1`` (writers own disjoint ranges).

    Writers write concurrently (``turns`` shared); a reload takes ``turns`` alone, since the
    index it opens replaces the one the other writer is changing (as the MCP server's watcher,
    the only writer of its index, does). A ``churn`` writer only replaces, removes, adds and
    saves, as fast as it can (the pattern of ``ragkit mcp --watch`` on a busy folder).
    """
    versions = dict.fromkeys(range(lo, hi), 0)
    step = [0]

    def write(counts: Counter[str]) -> None:
        step[0] += 1
        if churn:
            kind = ("replace", "save", "remove", "save", "add", "save")[step[0] % 6]
        elif step[0] <= 5:  # every kind once first, so even a short run covers them all
            kind = ("add", "replace", "remove", "save", "reload")[step[0] - 1]
        elif step[0] % 25 == 0:
            kind = "reload"
        else:
            kind = ("add", "replace", "save", "remove", "replace", "save")[step[0] % 6]
        with turns.write() if kind == "reload" else turns.read():
            counts[_write_step(target, ledger, versions, lo, hi, kind)] += 1

    return write


def _write_step(
    target: Target, ledger: Ledger, versions: dict[int, int], lo: int, hi: int, kind: str
) -> str:
    index = target.holder[0]
    present = index.documents
    absent = [j for j in range(lo, hi) if f"d{j:03d}.md" not in present]
    i = random.choice(absent) if kind == "add" and absent else random.randrange(lo, hi)
    doc_id = f"d{i:03d}.md"
    if kind == "remove" and doc_id in present and len(present) > 4:
        index.remove([doc_id])
    elif kind in ("add", "replace", "remove"):
        versions[i] += 1
        docs = [_doc(i, versions[i])]
        ledger.record(docs)
        kind = "add" if doc_id not in present else "replace"
        index.add(docs)
    elif kind == "save":
        target.save(index)
    else:  # reload: save, open afresh, swap it in (what the MCP holder does)
        target.save(index)
        fresh = target.reopen()
        target.opened.append(fresh)
        target.holder[0] = fresh
        # Indexes swapped out three reloads ago serve no reader any more: close them, or a long
        # run on Postgres holds a pool per reload and reaches the server's max_connections.
        while len(target.opened) > 3:
            target.opened.pop(0).close()
    return kind


def stress(target: Target, seconds: float, *, readers: int = 3) -> Counter[str]:
    """Run the readers and two writers for ``seconds``; the counts of operations and errors."""
    ledger = Ledger()
    docs = [_doc(i, 0) for i in range(N_DOCS)]
    ledger.record(docs)
    target.holder[0].add(docs)
    target.save(target.holder[0])
    reads = _reads(target, ledger)
    turns = _RWLock()
    half = N_DOCS // 2
    writers = [
        _writes(target, ledger, 0, half, turns),
        _writes(target, ledger, half, N_DOCS, turns, churn=True),
    ]
    counts: Counter[str] = Counter()
    errors: list[tuple[str, BaseException]] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def read_loop(seed: int) -> None:
        # Each reader runs every read in turn, searches (the cheapest reads) three times as
        # often; the fast readers (negative seeds) run only searches and stats, back to back.
        names = sorted(reads)
        if seed < 0:
            names = [n for n in names if n.startswith("search") or n == "stats"]
        else:
            names = names[seed:] + names[:seed] + [n for n in names if n.startswith("search")] * 2
        mine: Counter[str] = Counter()
        turn = 0
        while time.monotonic() < stop or (turn < len(names) and time.monotonic() < stop + 60):
            name = names[turn % len(names)]
            turn += 1
            if name == "reopen" and turn > len(names) and turn % (4 * len(names)) >= len(names):
                continue  # reopening costs a full load: after the first, one round in four
            try:
                reads[name]()
                mine[name] += 1
            except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                mine["errors"] += 1
                with lock:
                    errors.append((name, exc))
        with lock:
            counts.update(mine)

    def write_loop(write: Callable[[Counter[str]], None]) -> None:
        mine: Counter[str] = Counter()
        steps = 0
        while time.monotonic() < stop or (steps < 5 and time.monotonic() < stop + 60):
            steps += 1
            try:
                write(mine)
            except BaseException as exc:  # noqa: BLE001
                mine["errors"] += 1
                with lock:
                    errors.append(("write", exc))
        with lock:
            counts.update(mine)

    seeds = [*range(readers), -1, -2]
    threads = [threading.Thread(target=read_loop, args=(s,)) for s in seeds]
    threads += [threading.Thread(target=write_loop, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    total = sum(v for k, v in counts.items() if k != "errors")
    print(  # noqa: T201 - the report (pytest -s)
        f"\nstress {target.name} {seconds:.0f}s: {total} operations, {counts['errors']} errors: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "errors")
    )
    if errors:
        name, first = errors[0]
        raise AssertionError(f"{len(errors)} errors; first in {name}: {first!r}") from first
    # Every kind of read and write ran.
    assert set(reads) <= set(counts), sorted(set(reads) - set(counts))
    assert {"add", "replace", "save", "reload"} <= set(counts)
    # The final state is whole: what the store lists agrees with itself, saved and reopened.
    final = target.holder[0]
    target.save(final)
    listed = list(final.chunks)
    assert final.store.stats().chunks == len(listed)
    reopened = target.reopen()
    try:
        assert set(reopened.document_ids) == set(final.document_ids)
        assert len(reopened.chunks) == len(listed)
    finally:
        reopened.close()
    return counts


@pytest.fixture(params=["memory", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    embedder = FakeEmbedder()
    if request.param == "memory":
        path = tmp_path / "idx"
        index = Index(embedder=embedder, chunk_size=CHUNK, chunk_overlap=0)
        made = Target(
            "memory",
            [index],
            reopen=lambda: Index.load(path, embedder=embedder),
            save=lambda ix: ix.save(path),
        )
    else:
        pytest.importorskip("ragkit.stores.postgres")
        from ragkit.stores import open_store

        url: str = request.getfixturevalue("pg_index_url")
        index = Index(
            open_store(url, migrate=True), embedder=embedder, chunk_size=CHUNK, chunk_overlap=0
        )
        made = Target(
            "postgres",
            [index],
            reopen=lambda: Index.load(url, embedder=embedder),
            save=lambda ix: ix.save(),
        )
    made.opened.append(index)
    yield made
    for opened in made.opened:
        opened.close()


def test_every_read_against_every_write_briefly(target: Target) -> None:
    counts = stress(target, SHORT_SECONDS)
    assert counts["errors"] == 0


@pytest.mark.slow
def test_every_read_against_every_write_for_a_long_time(target: Target) -> None:
    counts = stress(target, LONG_SECONDS, readers=4)
    assert counts["errors"] == 0
