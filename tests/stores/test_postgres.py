"""Postgres-only behaviour: migration, errors and passwords, the write lock, the SQL filter
compiler against ragkit.filters, and ranking parity with the in-memory BM25 and exact search."""

from __future__ import annotations

import logging
import random
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from ragkit.base import DocumentEntry, IndexSettings
from ragkit.bm25 import BM25Index
from ragkit.chunking import chunk_document
from ragkit.errors import IndexLockedError, SchemaError, StoreError, StoreUnavailableError
from ragkit.filters import AllOf, AnyOf, Filter, Not, matches, parse_filter
from ragkit.types import Document, freeze_metadata

from .conftest import SETTINGS, entry, unit_vectors
from .test_store_contract import FILTERS, KEYS

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("pgvector")
from ragkit.stores._pg_sql import _Params  # noqa: E402
from ragkit.stores.postgres import (  # noqa: E402
    SCHEMA_VERSION,
    PostgresStore,
    compile_filter,
    migrate,
    redact_url,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def store(pg_url: str, pg_schema: str) -> Any:
    s = PostgresStore(pg_url, schema=pg_schema)
    s.migrate()
    s.configure(SETTINGS)
    yield s
    s.close()


def consistency(url: str, schema: str) -> None:
    """The keyword statistics agree with the chunks they were derived from."""
    with psycopg.connect(url) as conn:
        bad_df = conn.execute(
            f'SELECT count(*) FROM "{schema}".terms t LEFT JOIN (SELECT term_id, count(*) n '
            f'FROM "{schema}".postings GROUP BY term_id) p USING (term_id) '
            "WHERE t.df <> coalesce(p.n, 0) OR t.df <= 0"
        ).fetchone()
        assert bad_df == (0,)
        stats = conn.execute(
            f'SELECT documents, chunks, characters, total_length FROM "{schema}".stats'
        ).fetchone()
        actual = conn.execute(
            f'SELECT (SELECT count(*) FROM "{schema}".documents), count(*), '
            "coalesce(sum(char_length(text)), 0), coalesce(sum(length), 0) "
            f'FROM "{schema}".chunks'
        ).fetchone()
        assert stats == actual
        postings = conn.execute(
            f'SELECT (SELECT count(*) FROM "{schema}".postings), '
            f'coalesce(sum(cardinality(term_ids)), 0) FROM "{schema}".chunks'
        ).fetchone()
        assert postings[0] == postings[1]


# -- migration ----------------------------------------------------------------------------------


def test_migration_is_explicit_and_idempotent(pg_url: str, pg_schema: str) -> None:
    store = PostgresStore(pg_url, schema=pg_schema)
    assert store.settings is None
    with pytest.raises(SchemaError, match="run the migration first"):
        store.configure(SETTINGS)
    with pytest.raises(SchemaError, match="run the migration first"):
        store.keyword_search("anything", 3)
    assert migrate(pg_url, schema=pg_schema) is True
    assert migrate(pg_url, schema=pg_schema) is False
    assert store.migrate() is False
    store.configure(SETTINGS)
    store.write([entry("a.md", ["kept across migrations"])])
    assert store.migrate() is False
    assert store.stats().chunks == 1
    store.close()


def test_configure_creates_the_hnsw_index_and_queries_use_it(store: PostgresStore) -> None:
    store.write([entry(f"d{i}.md", [f"text {i}"]) for i in range(30)])
    with psycopg.connect(store._pool.conninfo) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = conn.execute(
            f'EXPLAIN SELECT chunk_id FROM "{store.schema}".chunks '
            "ORDER BY embedding <=> %s::vector LIMIT 5",
            (str(unit_vectors(["q"])[0].tolist()),),
        ).fetchall()
    assert "chunks_embedding" in " ".join(r[0] for r in plan)


def test_a_newer_schema_is_refused(pg_url: str, pg_schema: str, store: PostgresStore) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'UPDATE "{pg_schema}".meta SET schema_version = %s', (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaError, match="newer than this ragkit reads"):
        PostgresStore(pg_url, schema=pg_schema)
    with pytest.raises(SchemaError, match="upgrade ragkit"):
        migrate(pg_url, schema=pg_schema)


def test_a_dropped_schema_says_to_migrate(
    pg_url: str, pg_schema: str, store: PostgresStore
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{pg_schema}" CASCADE')
    with pytest.raises(SchemaError, match="run the migration first"):
        store.stats()


def test_a_closed_store_refuses_work(store: PostgresStore) -> None:
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="is closed"):
        store.stats()


# -- passwords and unreachable servers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://app:s3cret-pw@db.example:5432/rag",
            "postgresql://app:***@db.example:5432/rag",
        ),
        (
            "postgres://app:s3cret-pw@db/rag?sslmode=require",
            "postgres://app:***@db/rag?sslmode=require",
        ),
        (
            "postgresql://db/rag?user=app&password=s3cret-pw",
            "postgresql://db/rag?user=app&password=***",
        ),
        (
            "host=db user=app password=s3cret-pw dbname=rag",
            "host=db user=app password=*** dbname=rag",
        ),
        ("host=db password = 's3cret pw' dbname=rag", "host=db password = *** dbname=rag"),
        # URLs no parser reads: a bad escape, an unquoted @ or / in the password.
        ("postgresql://u:Sup3r%zzSecr3t@host/db", "postgresql://u:***@host/db"),
        ("postgresql://u:s3cret@pw/x@host/db", "postgresql://u:***@host/db"),
        ("postgresql://db/rag?pass%77ord=s3cret-pw", "postgresql://db/rag?pass%77ord=***"),
        ("postgresql://app@db/rag", "postgresql://app@db/rag"),
    ],
)
def test_redact_url_masks_the_password_without_parsing(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_password_never_shown(
    pg_url: str, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The bundled server trusts local connections, so the password is accepted and ignored.
    url = pg_url.replace("postgres:@", "postgres:s3cret-pw@")
    assert "s3cret-pw" in url
    caplog.set_level(logging.DEBUG)
    store = PostgresStore(url, schema=pg_schema)
    texts = [repr(store), store.location, str(store.__dict__.get("location"))]
    with pytest.raises(SchemaError, match="run the migration first") as missing:
        store.stats()
    texts.append(str(missing.value))
    store.migrate()
    store.configure(SETTINGS)
    store.write([entry("a.md", ["hello"])])
    other = IndexSettings(embedder="other/4", dim=4, chunk_size=256, chunk_overlap=32)
    with pytest.raises(StoreError, match="was built with embedder") as mismatch:
        store.configure(other)
    texts.append(str(mismatch.value))
    store.close()
    texts += [r.getMessage() for r in caplog.records]
    assert all("s3cret-pw" not in t for t in texts)
    assert "postgres:***@" in store.location


def test_unreachable_server_is_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = "postgresql://app:s3cret-pw@127.0.0.1:1/rag"
    with pytest.raises(StoreUnavailableError, match="cannot connect to Postgres at") as err:
        PostgresStore(url, connect_timeout=2)
    assert "s3cret-pw" not in str(err.value)
    assert "postgresql://app:***@127.0.0.1:1/rag" in str(err.value)
    assert err.value.__cause__ is None
    assert err.value.__suppress_context__
    assert all("s3cret-pw" not in r.getMessage() for r in caplog.records)


# -- the write lock -----------------------------------------------------------------------------


def _hold_lock(url: str, schema: str) -> Any:
    conn = psycopg.connect(url)
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('ragkit:' || %s::text, 0))", (schema,)
    )
    return conn


def test_a_second_writer_waits_then_gives_up_clearly(
    pg_url: str, pg_schema: str, store: PostgresStore
) -> None:
    impatient = PostgresStore(pg_url, schema=pg_schema, lock_timeout=0.2)
    holder = _hold_lock(pg_url, pg_schema)
    try:
        with pytest.raises(IndexLockedError, match="another writer held the write lock"):
            impatient.write([entry("a.md", ["blocked"])])
    finally:
        holder.rollback()
        holder.close()
    impatient.write([entry("a.md", ["after the lock"])])
    assert impatient.stats().chunks == 1
    impatient.close()


def test_writers_are_serialised_not_interleaved(
    pg_url: str, pg_schema: str, store: PostgresStore
) -> None:
    holder = _hold_lock(pg_url, pg_schema)
    done = threading.Event()

    def write() -> None:
        store.write([entry("waiting.md", ["written after the holder"])])
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        with psycopg.connect(pg_url, autocommit=True) as watch:
            for _ in range(500):  # until the writer is queued on the advisory lock
                waiting = watch.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()
                if waiting and waiting[0] == 1:
                    break
                time.sleep(0.01)
            assert waiting == (1,)
        assert not done.is_set()
        assert store.stats().chunks == 0
    finally:
        holder.rollback()
        holder.close()
    thread.join(timeout=30)
    assert done.is_set()
    assert store.stats().chunks == 1


def test_concurrent_writers_leave_consistent_statistics(
    pg_url: str, pg_schema: str, store: PostgresStore
) -> None:
    second = PostgresStore(pg_url, schema=pg_schema)
    errors: list[BaseException] = []

    def writer(s: PostgresStore, tag: str) -> None:
        try:
            for round_ in range(8):
                docs = [
                    entry(
                        f"shared{j}.md",
                        [f"{tag} round {round_} alpha", f"{tag} beta {j}"],
                        {"w": tag},
                    )
                    for j in range(5)
                ]
                s.write(docs, delete=[f"gone{round_}.md"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=writer, args=(s, t)) for s, t in ((store, "one"), (second, "two"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    consistency(pg_url, pg_schema)
    # every document's chunks come from one write: the same writer's tag throughout
    for doc in store.document_hashes():
        tags = {
            c.metadata["w"]
            for c in store.chunks(parse_filter({"path": {"$exists": False}}))
            if c.document_id == doc
        }
        assert len(tags) == 1
    assert store.stats().chunks == 10
    second.close()


# -- filters compile to SQL with Python's semantics ---------------------------------------------


def _metadata_rows(n: int = 300) -> list[dict[str, Any]]:
    rng = random.Random(7)
    values: list[Any] = [
        None, True, False, 0, 1, -2, 3, 0.5, -1.5, 2.0, 1e20, "billing", "", "Billing",
        "docs/a.md", "docs/api/b.md", "é", "a.md\n", "2021-01-05", "2023-12-31T10:00:00", "c",
    ]  # fmt: skip
    rows = []
    for _ in range(n):
        row: dict[str, Any] = {}
        for key in KEYS:
            roll = rng.random()
            if roll < 0.25:
                continue
            if roll < 0.45:
                row[key] = [rng.choice(values) for _ in range(rng.randint(0, 3))]
            else:
                row[key] = rng.choice(values)
        rows.append(dict(freeze_metadata(row)))
    return rows


@pytest.fixture
def metadata_table(pg_url: str, pg_schema: str) -> Any:
    rows = _metadata_rows()
    conn = psycopg.connect(pg_url, autocommit=True)
    conn.execute(f'CREATE SCHEMA "{pg_schema}"')
    conn.execute(f'CREATE TABLE "{pg_schema}".m (id int, metadata jsonb)')
    from psycopg.types.json import Jsonb

    with conn.cursor() as cur:
        cur.executemany(
            f'INSERT INTO "{pg_schema}".m VALUES (%s, %s)',
            [(i, Jsonb(r)) for i, r in enumerate(rows)],
        )
    yield conn, rows, pg_schema
    conn.close()


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(where=FILTERS)
def test_compiled_filters_match_exactly_what_python_matches(
    metadata_table: Any, where: Filter
) -> None:
    conn, rows, schema = metadata_table
    params = _Params()
    condition = compile_filter(where, params, column="c.metadata")
    got = [
        i
        for (i,) in conn.execute(
            f'SELECT id FROM "{schema}".m c WHERE {condition} ORDER BY id', params.values
        ).fetchall()
    ]
    assert got == [i for i, r in enumerate(rows) if matches(where, r)]


@pytest.mark.parametrize(
    "where",
    [
        # (NaN and NUL are refused while parsing since issue 14: tests/test_filters.py HOSTILE)
        parse_filter({"year": {"$ne": float("inf")}}),
        parse_filter({"year": {"$lt": float("inf")}}),
        parse_filter({"path": {"$glob": "a.md"}}),
        AnyOf(()),
        AllOf(()),
        Not(AllOf(())),
    ],
    ids=repr,
)
def test_edge_values_match_python(metadata_table: Any, where: Filter) -> None:
    conn, rows, schema = metadata_table
    params = _Params()
    condition = compile_filter(where, params)
    got = conn.execute(
        f'SELECT id FROM "{schema}".m c WHERE {condition} ORDER BY id', params.values
    ).fetchall()
    assert [i for (i,) in got] == [i for i, r in enumerate(rows) if matches(where, r)]


# -- parity with the in-memory rankings ---------------------------------------------------------

QUERIES = [
    "how are BM25 and vector rankings fused",
    "when does ragkit decide not to answer",
    "citations chunk ids",
    "token budget for the context",
    "install the offline embedder",
    "evaluation nDCG SciFact",
    "prompt caching cost",
    "the the the",
    "zscore rrf minmax weights",
    "chunk overlap headings",
]


def _docs_entries() -> list[DocumentEntry]:
    entries = []
    for path in sorted(DOCS.glob("*.md")):
        doc = Document(path.name, path.read_text(encoding="utf-8"), {"path": f"docs/{path.name}"})
        chunks = tuple(chunk_document(doc))
        keyword = tuple(
            (" > ".join(c.headings) + "\n" + c.text) if c.headings else c.text for c in chunks
        )
        entries.append(
            DocumentEntry(
                doc.id, doc.content_hash, doc.metadata, chunks, keyword, unit_vectors(keyword)
            )
        )
    return entries


@pytest.mark.parametrize(
    "bm25", [{"variant": "lucene", "k1": 0.9, "b": 0.4}, {"variant": "okapi", "k1": 1.5, "b": 0.75}]
)
def test_bm25_parity_with_bm25index_on_the_docs(
    pg_url: str, pg_schema: str, bm25: dict[str, Any]
) -> None:
    entries = _docs_entries()
    settings_ = IndexSettings(
        embedder=SETTINGS.embedder, dim=SETTINGS.dim, chunk_size=256, chunk_overlap=32, bm25=bm25
    )
    store = PostgresStore(pg_url, schema=pg_schema)
    store.migrate()
    store.configure(settings_)
    store.write(entries[: len(entries) // 2])
    store.write(entries[len(entries) // 2 :])
    rows = sorted(
        ((c, e.keyword_texts[i]) for e in entries for i, c in enumerate(e.chunks)),
        key=lambda r: r[0].id,
    )
    assert len(rows) >= 30
    index = BM25Index(variant=bm25["variant"], k1=bm25["k1"], b=bm25["b"], analyzer=store.analyzer)
    index.add(list(range(len(rows))), [t for _, t in rows])
    for query in QUERIES:
        keys, scores = index.search(query, 10)
        got = store.keyword_search(query, 10)
        assert [r.id for r in got] == [rows[i][0].id for i in keys.tolist()], query
        assert [r.score for r in got] == pytest.approx(scores.tolist(), abs=1e-4)
    consistency(pg_url, pg_schema)
    store.close()


@pytest.mark.parametrize(("exact_rows", "misjudged"), [(5_000, False), (0, False), (100, True)])
def test_vector_recall_and_filtered_k(
    pg_url: str,
    pg_schema: str,
    exact_rows: int,
    misjudged: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unfiltered, and filtered every way: an exact scan of few matching chunks (the default
    here), the graph scanned iteratively (exact_rows=0), re-ranked, and a planner that expects
    no match at all (the 20 % filter then finds more than exact_rows and goes to the graph)."""
    from ragkit.stores import _pg_vector

    monkeypatch.setattr(_pg_vector, "_EXACT_ROWS", exact_rows)
    if misjudged:
        monkeypatch.setattr(_pg_vector._VectorSearch, "_estimate", lambda *_: 0.0)
    rng = np.random.default_rng(3)
    n, dim = 3000, 32
    centres = rng.normal(size=(30, dim))
    vecs = centres[rng.integers(0, 30, n)] + 0.5 * rng.normal(size=(n, dim))
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    store = PostgresStore(pg_url, schema=pg_schema)
    store.migrate()
    store.configure(IndexSettings(embedder="random/32", dim=dim, chunk_size=256, chunk_overlap=32))
    batch = []
    for i in range(n):
        e = entry(f"d{i:05d}", [f"text {i}"], {"bucket": i % 100}, vectors=False)
        batch.append(
            DocumentEntry(
                e.document_id,
                e.content_hash,
                e.metadata,
                e.chunks,
                e.keyword_texts,
                vecs[i : i + 1],
            )
        )
    store.write(batch)
    # Queries near the data, as real questions are near their answers.
    queries = (vecs[rng.integers(0, n, 40)] + 0.3 * rng.normal(size=(40, dim))).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids = np.array([f"d{i:05d}#0" for i in range(n)])
    hits = 0
    for q in queries:
        exact = set(ids[np.argsort(-(vecs @ q), kind="stable")[:10]])
        hits += len(exact & {r.id for r in store.vector_search(q, 10)})
    assert hits / (10 * len(queries)) >= 0.98
    # A 1 % filter (30 rows) and a 20 % one still yield k rows, all matching, as exact search
    # does there.
    for where, subset in (
        (parse_filter({"bucket": 7}), np.array([i for i in range(n) if i % 100 == 7])),
        (
            parse_filter({"bucket": {"$lt": 20}}),
            np.array([i for i in range(n) if i % 100 < 20]),
        ),
    ):
        hits = 0
        for q in queries[:10]:
            got = store.vector_search(q, 10, where)
            assert len(got) == 10
            assert {r.id for r in got} <= set(ids[subset])
            expected = ids[subset[np.argsort(-(vecs[subset] @ q), kind="stable")[:10]]]
            hits += len(set(expected) & {r.id for r in got})
        assert hits / 100 >= 0.98
    where = parse_filter({"bucket": 7})
    # Fewer matching rows than k: all of them.
    assert len(store.vector_search(queries[0], 50, where)) == 30
    store.close()


# -- pruned keyword search (MaxScore) and the version-2 schema ----------------------------------


def _zipf_entries(n_docs: int, seed: int) -> list[DocumentEntry]:
    """Chunks over a Zipf-like vocabulary: a few common words, many rare ones."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(400)]
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    out = []
    for d in range(n_docs):
        texts = [" ".join(rng.choice(vocab, size=int(rng.integers(3, 40)), p=p)) for _ in range(2)]
        out.append(entry(f"z{d:04d}.md", texts, {"bucket": d % 7}, vectors=True))
    return out


@pytest.mark.parametrize("variant", ["lucene", "okapi"])
def test_pruned_keyword_search_ranks_exactly_like_bm25index(
    pg_url: str, pg_schema: str, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragkit.stores import _pg_bm25

    splits: list[Any] = []
    real_split = _pg_bm25._split

    def spy(terms: Any, theta: float) -> Any:
        out = real_split(terms, theta)
        splits.append(out)
        return out

    # Prune from the first posting on, seeding the threshold from very few postings.
    monkeypatch.setattr(_pg_bm25, "_PRUNE_POSTINGS", 0)
    monkeypatch.setattr(_pg_bm25, "_SEED_POSTINGS", 30)
    monkeypatch.setattr(_pg_bm25, "_split", spy)
    entries = _zipf_entries(300, 5)
    settings_ = IndexSettings(
        embedder=SETTINGS.embedder, dim=SETTINGS.dim, chunk_size=256, chunk_overlap=32,
        bm25={"variant": variant, "k1": 1.2, "b": 0.75},
    )  # fmt: skip
    store = PostgresStore(pg_url, schema=pg_schema)
    store.migrate()
    store.configure(settings_)
    store.write(entries[:150])
    store.write(entries[150:])
    # A replaced and a deleted document leave stale (looser) bounds behind.
    store.write(_zipf_entries(3, 99)[:1], delete=["z0001.md"])
    live = [e for e in entries if e.document_id not in ("z0000.md", "z0001.md")]
    live += _zipf_entries(3, 99)[:1]
    rows = sorted(
        ((c, e.keyword_texts[i]) for e in live for i, c in enumerate(e.chunks)),
        key=lambda r: r[0].id,
    )
    index = BM25Index(variant=variant, k1=1.2, b=0.75, analyzer=store.analyzer)
    index.add(list(range(len(rows))), [t for _, t in rows])
    rng = np.random.default_rng(8)
    where = parse_filter({"bucket": 3})
    allowed = np.array([matches(where, c.metadata) for c, _ in rows])
    for _ in range(25):
        query = " ".join(f"w{int(i)}" for i in rng.integers(0, 150, int(rng.integers(2, 9))))
        for k in (1, 10, 40, 150):  # 150: the joined (not looked-up) rest
            keys, scores = index.search(query, k)
            got = store.keyword_search(query, k)
            assert [r.id for r in got] == [rows[i][0].id for i in keys.tolist()], query
            assert [r.score for r in got] == pytest.approx(scores.tolist(), abs=1e-9)
            tokens = store.analyzer(query)
            every = index.get_scores(tokens, list(range(len(rows))))
            expected = sorted(
                (
                    (-float(every[i]), rows[i][0].id)
                    for i in range(len(rows))
                    if allowed[i] and set(tokens) & set(store.analyzer(rows[i][1]))
                ),
            )[:k]
            got = store.keyword_search(query, k, where)
            assert [r.id for r in got] == [cid for _, cid in expected], query
            assert [r.score for r in got] == pytest.approx([-s for s, _ in expected], abs=1e-9)
    assert sum(s is not None for s in splits) > 20  # the pruned plan ran, not only the fallback
    store.close()


@pytest.mark.parametrize("version", [1, 2])
def test_migrate_upgrades_an_older_schema_in_place(
    pg_url: str, pg_schema: str, version: int
) -> None:
    store = PostgresStore(pg_url, schema=pg_schema)
    store.migrate()
    store.configure(SETTINGS)
    store.write(_zipf_entries(60, 2))
    queries = ["w3 w50 w77", "w120 w1", "w9"]
    before = [[(r.id, r.score) for r in store.keyword_search(q, 10)] for q in queries]
    store.close()
    # Version 2's layout: no index of postings by chunk, terms filled to the brim; version 1's
    # also has terms without the bound columns.
    older = (
        f'DROP INDEX "{pg_schema}".postings_chunk; '
        f'ALTER TABLE "{pg_schema}".terms RESET (fillfactor); '
        f'UPDATE "{pg_schema}".meta SET schema_version = {version}; '
    )
    if version == 1:
        older += f'ALTER TABLE "{pg_schema}".terms DROP COLUMN max_tf, DROP COLUMN min_length; '
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(older)
    store = PostgresStore(pg_url, schema=pg_schema)
    with pytest.raises(
        SchemaError, match=f"has version {version}; run the migration to upgrade it"
    ):
        store.keyword_search("w3", 10)
    assert migrate(pg_url, schema=pg_schema) is False
    assert store.migrate() is False  # already upgraded: idempotent
    after = [[(r.id, r.score) for r in store.keyword_search(q, 10)] for q in queries]
    assert after == before
    assert "postings_chunk" in _indexes(pg_url, pg_schema)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute(f'SELECT schema_version FROM "{pg_schema}".meta').fetchone() == (3,)
        wrong = conn.execute(
            f'SELECT count(*) FROM "{pg_schema}".terms t JOIN (SELECT term_id, max(tf) m, '
            f'min(length) l FROM "{pg_schema}".postings GROUP BY term_id) p USING (term_id) '
            "WHERE t.max_tf <> p.m OR t.min_length <> p.l"
        ).fetchone()
        assert wrong == (0,)
    store.write(_zipf_entries(2, 7))  # and it writes (replacing two documents)
    consistency(pg_url, pg_schema)
    store.close()


# -- bulk loads ---------------------------------------------------------------------------------

_LOADER = """
import sys, time
sys.path.insert(0, {root!r})
from ragkit.stores import _pg_write, postgres
from tests.stores.conftest import SETTINGS, entry

_pg_write._BULK_MIN_CHUNKS = 50
real = postgres.PostgresStore.{method}

def hang_then_run(self, *args):
    print("loaded, indexes dropped", flush=True)
    time.sleep(120)  # killed here, inside the bulk write's transaction
    real(self, *args)

postgres.PostgresStore.{method} = hang_then_run
store = postgres.PostgresStore({url!r}, schema={schema!r})
store.write([entry(f"bulk{{i:03d}}.md", [f"gamma {{i}}", "delta epsilon"]) for i in range(100)])
"""


def _indexes(url: str, schema: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,))
        return {r[0] for r in rows.fetchall()}


def test_a_large_write_is_a_bulk_load_that_rebuilds_its_indexes(
    pg_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragkit.stores import _pg_write, postgres

    monkeypatch.setattr(_pg_write, "_BULK_MIN_CHUNKS", 50)
    bulk: list[bool] = []
    real_begin = postgres.PostgresStore._bulk_begin

    def spy(self: Any, conn: Any, n: int, dim: int | None) -> bool:
        bulk.append(real_begin(self, conn, n, dim))
        return bulk[-1]

    monkeypatch.setattr(postgres.PostgresStore, "_bulk_begin", spy)
    store = PostgresStore(pg_url, schema=pg_schema)
    store.migrate()
    store.configure(SETTINGS)
    indexes = _indexes(pg_url, pg_schema)
    assert {"chunks_embedding", "chunks_metadata", "postings_pkey", "postings_chunk"} <= indexes
    entries = _zipf_entries(60, 4)  # 120 chunks onto none: bulk
    store.write(entries)
    store.write(_zipf_entries(10, 5))  # replaces 10 documents (20 chunks): row by row
    store.write([entry(f"x{i}.md", ["w1 w2", "w3"]) for i in range(40)])  # 80 onto 140: bulk
    assert bulk == [True, False, True]
    assert _indexes(pg_url, pg_schema) == indexes
    consistency(pg_url, pg_schema)
    assert store.stats().chunks == 120 + 80
    query = unit_vectors(["q"])[0]
    assert len(store.vector_search(query, 5, parse_filter({"bucket": 3}))) == 5
    store.close()


@pytest.mark.parametrize(
    ("method", "first"),
    [("_bulk_end", False), ("_insert_postings", False), ("_insert_postings", True)],
)
def test_a_bulk_load_killed_midway_loses_nothing(
    pg_url: str, pg_schema: str, tmp_path: Path, method: str, first: bool
) -> None:
    """Killed before the indexes are rebuilt, or after the chunks' COPY (terms not yet written),
    on a first load or onto a store: the store is as it was, and the re-run completes it."""
    import subprocess
    import sys

    store = PostgresStore(pg_url, schema=pg_schema)
    store.migrate()
    store.configure(SETTINGS)
    kept = 0 if first else 10
    store.write([entry(f"kept{i}.md", [f"alpha {i}", "beta gamma"]) for i in range(kept)])
    before = [(r.id, r.score) for r in store.keyword_search("gamma alpha", 10)]
    indexes = _indexes(pg_url, pg_schema)
    script = tmp_path / "loader.py"
    root = str(Path(__file__).resolve().parents[2])
    script.write_text(_LOADER.format(root=root, url=pg_url, schema=pg_schema, method=method))
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "loaded, indexes dropped", proc.stderr.read() if proc.stderr else ""
    proc.kill()
    proc.communicate()
    # The server rolls the dead loader's transaction back: the store is as it was.
    assert [(r.id, r.score) for r in store.keyword_search("gamma alpha", 10)] == before
    assert store.stats().chunks == 2 * kept
    assert _indexes(pg_url, pg_schema) == indexes
    with psycopg.connect(pg_url) as conn:  # the postings are logged (crash-safe)
        persistence = conn.execute(
            "SELECT relpersistence FROM pg_class WHERE oid = %s::regclass",
            (f'"{pg_schema}".postings',),
        ).fetchone()
    assert persistence == ("p",)
    store.write([entry("after.md", ["zeta"])])  # and the write lock is free
    consistency(pg_url, pg_schema)
    # Resuming the load completes it.
    store.write([entry(f"bulk{i:03d}.md", [f"gamma {i}", "delta epsilon"]) for i in range(100)])
    assert store.stats().chunks == 2 * kept + 1 + 200
    assert len(store.keyword_search("gamma", 200)) == 100 + kept
    consistency(pg_url, pg_schema)
    store.close()


_WORDS = (
    "The cats are running and a cat runs; Running, RUN! ran runner's naïve café Straße "
    "İstanbul 42 x2 under_score of the to be dogs dog's studies studying studied"
).split()


def _tables(url: str, schema: str) -> tuple[list[Any], list[Any], list[Any]]:
    """A store's keyword tables by term and chunk names (IDs and keys are the store's own)."""
    with psycopg.connect(url) as conn:
        terms = conn.execute(
            f'SELECT term, df, max_tf, min_length FROM "{schema}".terms ORDER BY term'
        ).fetchall()
        postings = conn.execute(
            f'SELECT t.term, c.chunk_id, p.tf, p.length FROM "{schema}".postings p '
            f'JOIN "{schema}".terms t USING (term_id) JOIN "{schema}".chunks c USING (chunk_key) '
            "ORDER BY 1, 2"
        ).fetchall()
        chunks = conn.execute(
            "SELECT c.chunk_id, c.length, "
            "(SELECT array_agg(t.term || ':' || u.tf ORDER BY t.term) "
            f'FROM unnest(c.term_ids, c.term_tfs) AS u(term_id, tf) JOIN "{schema}".terms t '
            f'USING (term_id)) FROM "{schema}".chunks c ORDER BY 1'
        ).fetchall()
    return terms, postings, chunks


def test_a_large_write_analysed_while_copied_stores_what_a_small_write_stores(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The streamed path (term IDs given while copying, statistics summed in SQL) leaves the
    same terms, postings and chunks as the row path, and BM25 ranks as BM25Index does, through
    first loads, large replaces and deletes onto a store, and small writes after them."""
    from ragkit.stores import _pg_write

    rng = random.Random(7)

    def docs(prefix: str, n: int) -> list[DocumentEntry]:
        return [
            entry(
                f"{prefix}{d:03d}.md",
                [" ".join(rng.choices(_WORDS, k=rng.randint(1, 30))) for _ in range(3)],
                {"bucket": d % 5},
            )
            for d in range(n)
        ]

    first, replace, extra, small = docs("a", 40), docs("a", 15), docs("b", 30), docs("c", 2)
    more = docs("d", 20) + docs("b", 2)  # 66 chunks onto 255: large, not a bulk load
    schemas = ("stream_on", "stream_off")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    stores = []
    try:
        for schema, minimum in zip(schemas, (50, 10**9), strict=True):
            monkeypatch.setattr(_pg_write, "_BULK_MIN_CHUNKS", minimum)
            store = PostgresStore(pg_url, schema=schema)
            stores.append(store)
            store.migrate()
            store.configure(SETTINGS)
            store.write(first)  # 120 chunks onto none: a first load
            store.write(replace + extra, delete=["a020.md", "a021.md"])  # 135 onto 120
            store.write(more)
            store.write(small)  # 6 chunks: the row path on both
            consistency(pg_url, schema)
        assert _tables(pg_url, schemas[0]) == _tables(pg_url, schemas[1])
        kept = {e.document_id: e for e in first if e.document_id not in ("a020.md", "a021.md")}
        kept.update({e.document_id: e for e in replace + extra + more + small})
        rows = sorted(
            ((c.id, e.keyword_texts[i]) for e in kept.values() for i, c in enumerate(e.chunks))
        )
        memory = BM25Index(analyzer=stores[0].analyzer)
        memory.add(list(range(len(rows))), [t for _, t in rows])
        for query in ("cat running", "the studies of dogs", "naïve café 42", "İstanbul straße"):
            keys, scores = memory.search(query, 10)
            got = stores[0].keyword_search(query, 10)
            assert [r.id for r in got] == [rows[i][0] for i in keys.tolist()], query
            assert [r.score for r in got] == pytest.approx(scores.tolist(), abs=1e-4)
    finally:
        for store in stores:
            store.close()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
