"""One contract for every Store: what the Index relies on, checked against brute force.

Each test runs once per store kind (``stores`` fixture: memory, postgres). Expected results are
computed independently: BM25 with :class:`ragkit.bm25.BM25Index` over all chunks, cosine with
numpy, filters with :func:`ragkit.filters.matches`, and then restricted to the matching subset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragkit.base import DocumentEntry, IndexSettings, Store, TextAnalyzer
from ragkit.bm25 import BM25Index
from ragkit.errors import SettingsMismatchError
from ragkit.filters import (
    MAX_GLOB_LENGTH,
    MAX_GLOB_STARS,
    AllOf,
    AnyOf,
    Field,
    Filter,
    Not,
    matches,
    parse_filter,
)
from ragkit.types import Chunk

from .conftest import DIM, SETTINGS, StoreFactory, entry, unit_vectors

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()


def corpus() -> list[DocumentEntry]:
    return [
        entry(
            "guide/a.md", ["alpha beta gamma", "beta beta delta"], {"team": "billing", "year": 2021}
        ),
        entry("guide/b.md", ["gamma delta epsilon", "alpha alpha alpha zeta"], {"team": "search"}),
        entry(
            "notes/c.txt",
            ["eta theta", "alpha iota kappa"],
            {"team": "billing", "tags": ["x", "y"]},
        ),
        entry("notes/d.txt", ["kappa kappa", "beta"], {"year": 2023.5, "draft": True}),
    ]


def configured(stores: StoreFactory, settings: IndexSettings = SETTINGS) -> Store:
    store = stores.make()
    store.configure(settings)
    return store


def all_chunks(entries: Sequence[DocumentEntry]) -> list[tuple[Chunk, str, np.ndarray | None]]:
    out = []
    for e in entries:
        for i, chunk in enumerate(e.chunks):
            out.append((chunk, e.keyword_texts[i], None if e.vectors is None else e.vectors[i]))
    return sorted(out, key=lambda t: t[0].id)


def expected_bm25(
    store: Store, entries: Sequence[DocumentEntry], query: str, k: int, where: Filter | None
) -> list[tuple[str, float]]:
    """BM25Index over every chunk, then the matching ones containing a query term, top k."""
    rows = all_chunks(entries)
    index = BM25Index(analyzer=store.analyzer)
    index.add(list(range(len(rows))), [text for _, text, _ in rows])
    tokens = store.analyzer(query)
    if not rows or not tokens:
        return []
    scores = index.get_scores(tokens, list(range(len(rows))))
    terms = set(tokens)
    hits = [
        (chunk.id, float(score))
        for (chunk, text, _), score in zip(rows, scores, strict=True)
        if matches(where, chunk.metadata) and terms & set(store.analyzer(text))
    ]
    hits.sort(key=lambda t: (-t[1], t[0]))
    return hits[:k]


def expected_cosine(
    entries: Sequence[DocumentEntry], vector: np.ndarray, k: int, where: Filter | None
) -> list[tuple[str, float]]:
    hits = [
        (chunk.id, float(np.dot(v.astype(np.float64), vector)))
        for chunk, _, v in all_chunks(entries)
        if v is not None and matches(where, chunk.metadata)
    ]
    hits.sort(key=lambda t: (-t[1], t[0]))
    return hits[:k]


def assert_ranking(got: list[Any], expected: list[tuple[str, float]], tol: float) -> None:
    """Same length; position by position the same score, and each returned ID really scores
    that (so only near-ties within ``tol`` may swap places)."""
    truth = dict(expected)
    assert len(got) == len(expected), ([g.id for g in got], expected)
    assert len({g.id for g in got}) == len(got)
    for g, (_, score) in zip(got, expected, strict=True):
        assert g.score == pytest.approx(score, abs=tol), (g.id, g.score, expected)
    for g in got:
        if g.id not in truth:  # a near-tie at the boundary; the expected list cut it off
            assert abs(g.score - expected[-1][1]) <= tol
    scores = [g.score for g in got]
    assert scores == sorted(scores, reverse=True)


# -- settings -----------------------------------------------------------------------------------


def test_new_store_has_no_settings_and_records_them(stores: StoreFactory) -> None:
    store = stores.make()
    assert store.settings is None
    store.configure(SETTINGS)
    assert store.settings == SETTINGS
    store.configure(SETTINGS)  # the same settings again are fine
    assert store.stats() == store.stats(None)
    assert store.stats().chunks == 0


def test_the_analyzer_is_a_text_analyzer_with_a_config(stores: StoreFactory) -> None:
    store = stores.make()
    store.configure(SETTINGS)
    assert isinstance(store.analyzer, TextAnalyzer)  # the protocol, not the BM25 class
    assert store.analyzer("Dogs are running") == ["dog", "run"]
    assert "stemmer" in store.analyzer.config()  # what IndexSettings.analyzer records


def test_configure_refuses_another_embedder(stores: StoreFactory) -> None:
    store = configured(stores)
    other = IndexSettings(embedder="other/16", dim=16, chunk_size=256, chunk_overlap=32)
    with pytest.raises(SettingsMismatchError, match="embedder 'test-hash/8'"):
        store.configure(other)
    reopened = stores.reopen(store)
    with pytest.raises(SettingsMismatchError, match="embedder 'test-hash/8'"):
        reopened.configure(other)
    assert reopened.settings == SETTINGS


def test_configure_refuses_other_chunking(stores: StoreFactory) -> None:
    store = configured(stores)
    other = IndexSettings(embedder="test-hash/8", dim=DIM, chunk_size=512, chunk_overlap=32)
    with pytest.raises(SettingsMismatchError, match="chunk_size"):
        store.configure(other)


def test_a_changed_folder_source_is_recorded_and_survives_a_reopen(stores: StoreFactory) -> None:
    from dataclasses import replace

    store = configured(stores)
    source = {"folder": "/srv/docs", "include": ["**/*.py"], "exclude": [], "skip_hidden": False}
    store.configure(replace(SETTINGS, source=source))  # only the source differs: recorded
    assert store.settings is not None
    assert store.settings.source == source
    reopened = stores.reopen(store)
    assert reopened.settings is not None
    assert reopened.settings.source == source
    with pytest.raises(SettingsMismatchError, match="chunk_size"):  # the rest is still checked
        reopened.configure(replace(SETTINGS, chunk_size=512, source=None))


def test_save_makes_writes_durable_and_version_follows_saves(
    stores: StoreFactory, tmp_path: Path
) -> None:
    from ragkit.stores import current_version, local_path

    store = configured(stores)
    store.write(corpus()[:1])
    where = store.save(tmp_path / "saved-here")
    root = local_path(where)
    if root is None:  # a database: durable after each write, always current
        assert store.version is None
        assert where == store.location
        return
    assert store.version == current_version(root)
    first = store.version
    store.write(corpus()[1:2])
    store.save()  # where it was first saved
    assert store.version != first
    assert store.version == current_version(root)


# -- writes -------------------------------------------------------------------------------------


def test_add_then_read_back(stores: StoreFactory) -> None:
    store = configured(stores)
    entries = corpus()
    store.write(entries)
    assert dict(store.document_hashes()) == {e.document_id: e.content_hash for e in entries}
    first = entries[0]
    asked = store.document_hashes([first.document_id, "not/there.md"])
    assert dict(asked) == {first.document_id: first.content_hash}
    chunks = list(store.chunks())
    assert chunks == [c for e in sorted(entries, key=lambda e: e.document_id) for c in e.chunks]
    assert store.get_chunk("notes/c.txt#1") == entries[2].chunks[1]
    assert store.get_chunk("notes/c.txt#1").metadata["tags"] == ("x", "y")
    with pytest.raises(KeyError, match="missing#0"):
        store.get_chunk("missing#0")
    stats = store.stats()
    assert stats.documents == 4
    assert stats.chunks == 8
    assert stats.characters == sum(len(c.text) for c in chunks)


def test_replace_drops_old_chunks_and_their_terms(stores: StoreFactory) -> None:
    store = configured(stores)
    store.write(corpus())
    assert store.document_frequencies(["zeta"]) == (8, [1])
    new = entry("guide/b.md", ["omega"], {"team": "search"})
    store.write([new])
    assert [c.id for c in store.chunks() if c.document_id == "guide/b.md"] == ["guide/b.md#0"]
    assert store.document_frequencies(["zeta", "omega"]) == (7, [0, 1])
    assert store.keyword_search("zeta", 5) == []
    assert [r.id for r in store.keyword_search("omega", 5)] == ["guide/b.md#0"]
    assert store.document_hashes()["guide/b.md"] == new.content_hash
    assert store.stats().documents == 4


def test_delete_and_write_in_one_call(stores: StoreFactory) -> None:
    store = configured(stores)
    entries = corpus()
    store.write(entries)
    store.write([entry("new.md", ["theta theta"])], delete=["guide/a.md", "notes/d.txt"])
    assert sorted(store.document_hashes()) == ["guide/b.md", "new.md", "notes/c.txt"]
    assert store.stats().chunks == 5
    remaining = [e for e in entries if e.document_id in ("guide/b.md", "notes/c.txt")]
    remaining.append(entry("new.md", ["theta theta"]))
    got = store.keyword_search("beta theta", 10)
    assert_ranking(got, expected_bm25(store, remaining, "beta theta", 10, None), 1e-9)


def test_delete_unknown_document_is_a_no_op(stores: StoreFactory) -> None:
    store = configured(stores)
    store.write(corpus())
    store.write([], delete=["nope.md"])
    assert store.stats().documents == 4


def test_a_document_with_no_chunks_is_kept_for_sync(stores: StoreFactory) -> None:
    store = configured(stores)
    empty = DocumentEntry("empty.md", "e3b0", {}, (), (), None)
    store.write([empty])
    assert store.document_hashes() == {"empty.md": "e3b0"}
    assert store.stats().chunks == 0


# -- keyword search -----------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["alpha", "beta gamma", "alpha alpha kappa", "kappa zeta eta"])
def test_keyword_search_equals_bm25_over_all_chunks(stores: StoreFactory, query: str) -> None:
    store = configured(stores)
    entries = corpus()
    store.write(entries)
    for k in (1, 3, 10):
        assert_ranking(
            store.keyword_search(query, k), expected_bm25(store, entries, query, k, None), 1e-9
        )


def test_keyword_search_breaks_ties_by_chunk_id(stores: StoreFactory) -> None:
    store = configured(stores)
    store.write([entry(d, ["same words here", "other"]) for d in ("c.md", "a.md", "b.md")])
    got = store.keyword_search("same words", 2)
    assert [r.id for r in got] == ["a.md#0", "b.md#0"]
    assert got[0].score == got[1].score


def test_keyword_search_without_known_terms_is_empty(stores: StoreFactory) -> None:
    store = configured(stores)
    assert store.keyword_search("alpha", 3) == []
    store.write(corpus())
    assert store.keyword_search("unheard of", 3) == []
    assert store.keyword_search("the and of", 3) == []  # stopwords only


# -- vector search ------------------------------------------------------------------------------


def test_vector_search_equals_exact_cosine(stores: StoreFactory) -> None:
    store = configured(stores)
    entries = corpus()
    store.write(entries)
    query = unit_vectors(["a question"])[0]
    for k in (1, 4, 20):
        got = store.vector_search(query, k)
        assert_ranking(got, expected_cosine(entries, query, k, None), 1e-5)


def test_vector_search_with_filter_returns_k_matching(stores: StoreFactory) -> None:
    store = configured(stores)
    entries = corpus()
    store.write(entries)
    where = parse_filter({"team": "billing"})
    query = unit_vectors(["another question"])[0]
    got = store.vector_search(query, 3, where)
    assert_ranking(got, expected_cosine(entries, query, 3, where), 1e-5)
    assert all(r.chunk.metadata["team"] == "billing" for r in got)


# -- filters: property test ---------------------------------------------------------------------

KEYS = ["team", "year", "tags", "path"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0, 1e20]),
    st.sampled_from(["billing", "", "Billing", "docs/a.md", "docs/api/b.md", "é", "a.md\n"]),
    # Control characters other than NUL are legal in values: both stores compare them alike.
    st.sampled_from(["a\tb", "x\x01y", "docs/\x1b[0m.md", "line\r\n", "\x7f", "aaaaaaaab"]),
    st.sampled_from(["2021-01-05", "2023-12-31T10:00:00"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3))
METADATA = st.dictionaries(st.sampled_from(KEYS), VALUES, min_size=1, max_size=4)
GLOBS = st.sampled_from(
    ["docs/**", "docs/*.md", "**/*.md", "?", "*", "docs/api/**/b.md", "é*"]
    # Hostile but legal (issue 14 item 9): control characters, many stars (the automaton),
    # the longest and starriest patterns the limits allow, regex metacharacters.
    + ["x\x01*", "*\t*", "line*\n", "*a*a*a*a*a*a*b", "**/**/**/*", "*" * MAX_GLOB_STARS]
    + ["a" * MAX_GLOB_LENGTH, "(.*)+[x]{2}$^\\", "\x1b[*"]
)


def _range_value() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(-3, 3), st.sampled_from([0.5, 2.0, 1e19]), st.sampled_from(["a", "c", "2022"])
    )


FIELDS = st.one_of(
    st.builds(Field, st.sampled_from(KEYS), st.sampled_from(["eq", "ne"]), SCALARS),
    st.builds(
        Field, st.sampled_from(KEYS), st.sampled_from(["in", "nin"]), st.lists(SCALARS, max_size=3)
    ),
    st.builds(
        Field, st.sampled_from(KEYS), st.sampled_from(["gt", "gte", "lt", "lte"]), _range_value()
    ),
    st.builds(Field, st.sampled_from(KEYS), st.just("exists"), st.booleans()),
    st.builds(Field, st.sampled_from(KEYS), st.just("glob"), GLOBS),
)
FILTERS: st.SearchStrategy[Filter] = st.recursive(
    FIELDS,
    lambda inner: st.one_of(
        st.builds(lambda ps: AllOf(tuple(ps)), st.lists(inner, max_size=3)),
        st.builds(lambda ps: AnyOf(tuple(ps)), st.lists(inner, max_size=3)),
        st.builds(Not, inner),
    ),
    max_leaves=5,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    metas=st.lists(METADATA, min_size=1, max_size=12),
    texts=st.lists(
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=6), min_size=12, max_size=12
    ),
    where=FILTERS,
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
    k=st.integers(1, 8),
)
def test_filtered_search_equals_brute_force_over_matching_subset(
    stores: StoreFactory,
    metas: list[dict[str, Any]],
    texts: list[list[str]],
    where: Filter,
    query: list[str],
    k: int,
) -> None:
    store = _property_store(stores)
    old = list(store.document_hashes())
    entries = [
        entry(
            f"d{i:02d}",
            [" ".join(texts[i]), " ".join(texts[-1 - i])],
            chunk_metadata=[meta, {"part": 2}],
        )
        for i, meta in enumerate(metas)
    ]
    store.write(entries, delete=[d for d in old if d not in {e.document_id for e in entries}])
    chunks = [c for c, _, _ in all_chunks(entries)]
    matching = [c for c in chunks if matches(where, c.metadata)]

    assert list(store.chunks(where)) == matching
    stats = store.stats(where)
    assert (stats.chunks, stats.characters) == (len(matching), sum(len(c.text) for c in matching))
    assert stats.documents == len({c.document_id for c in matching})

    text = " ".join(query)
    expected = expected_bm25(store, entries, text, k, where)
    assert_ranking(store.keyword_search(text, k, where), expected, 1e-9)
    vector = unit_vectors([text])[0]
    got = store.vector_search(vector, k, where)
    assert len(got) == min(k, len(matching))
    assert_ranking(got, expected_cosine(entries, vector, k, where), 1e-5)


_STORES: dict[int, Store] = {}


def _property_store(stores: StoreFactory) -> Store:
    """One store per test run and factory (hypothesis calls the test many times)."""
    store = _STORES.get(id(stores))
    if store is None:
        _STORES.clear()
        store = configured(stores)
        _STORES[id(stores)] = store
    return store


# -- reopening ----------------------------------------------------------------------------------


def test_reopen_keeps_everything(stores: StoreFactory) -> None:
    store = configured(stores)
    entries = corpus()
    store.write(entries)
    query = unit_vectors(["q"])[0]
    before = (
        store.keyword_search("alpha beta", 5),
        store.vector_search(query, 5),
        list(store.chunks()),
        store.stats(),
        dict(store.document_hashes()),
    )
    again = stores.reopen(store)
    assert again.settings == SETTINGS
    assert again.analyzer == store.analyzer
    after = (
        again.keyword_search("alpha beta", 5),
        again.vector_search(query, 5),
        list(again.chunks()),
        again.stats(),
        dict(again.document_hashes()),
    )
    assert [r.id for r in after[0]] == [r.id for r in before[0]]
    assert [r.score for r in after[0]] == pytest.approx([r.score for r in before[0]], abs=1e-12)
    assert [r.id for r in after[1]] == [r.id for r in before[1]]
    assert after[2:] == before[2:]
    # and writes continue where they left off
    again.write([entry("guide/a.md", ["omega"])])
    assert again.document_frequencies(["omega", "alpha"]) == (7, [1, 2])


def test_keyword_only_store(stores: StoreFactory) -> None:
    store = stores.make()
    store.configure(IndexSettings(embedder=None, dim=None, chunk_size=256, chunk_overlap=32))
    entries = [entry(e.document_id, [c.text for c in e.chunks], vectors=False) for e in corpus()]
    store.write(entries)
    assert_ranking(
        store.keyword_search("alpha", 3), expected_bm25(store, entries, "alpha", 3, None), 1e-9
    )


def test_okapi_variant_ranks_like_bm25index(stores: StoreFactory) -> None:
    settings = IndexSettings(
        embedder="test-hash/8", dim=DIM, chunk_size=256, chunk_overlap=32,
        bm25={"variant": "okapi", "k1": 1.5, "b": 0.75, "epsilon": 0.25},
    )  # fmt: skip
    store = configured(stores, settings)
    entries = corpus()
    store.write(entries)
    rows = all_chunks(entries)
    index = BM25Index(variant="okapi", k1=1.5, b=0.75, epsilon=0.25, analyzer=store.analyzer)
    index.add(list(range(len(rows))), [t for _, t, _ in rows])
    for query in ("beta", "alpha kappa", "gamma delta"):
        keys, scores = index.search(query, 5)
        got = store.keyword_search(query, 5)
        assert [r.id for r in got] == [rows[i][0].id for i in keys.tolist()]
        assert [r.score for r in got] == pytest.approx(scores.tolist(), abs=1e-9)
        assert not any(math.isnan(r.score) for r in got)


def test_document_vectors_give_back_the_written_chunks_and_rows(stores: StoreFactory) -> None:
    store = configured(stores)
    entries = corpus()
    store.write(entries)
    for e in entries:
        found = store.document_vectors(e.document_id)
        assert found is not None
        chunks, rows = found
        assert [c.id for c in chunks] == [c.id for c in e.chunks]
        assert [c.text for c in chunks] == [c.text for c in e.chunks]
        assert e.vectors is not None
        np.testing.assert_allclose(rows, e.vectors, atol=1e-6)
    assert store.document_vectors("no/such.md") is None
    store = stores.reopen(store)
    found = store.document_vectors("guide/b.md")
    assert found is not None
    np.testing.assert_allclose(found[1], entries[1].vectors, atol=1e-6)  # type: ignore[arg-type]


def test_document_vectors_of_a_keyword_only_store_are_none(stores: StoreFactory) -> None:
    keyword_only = IndexSettings(embedder=None, dim=None, chunk_size=256, chunk_overlap=32)
    store = configured(stores, keyword_only)
    store.write([entry("a.md", ["alpha beta"], vectors=False)])
    assert store.document_vectors("a.md") is None


# -- rankings without chunks (hybrid search's narrow fetch) ---------------------------------------


def test_rankings_equal_searches_and_narrow_hybrid_equals_full_fetch(
    stores: StoreFactory,
) -> None:
    from ragkit.base import Query, RankingStore
    from ragkit.retrievers import BM25Retriever, HybridRetriever, VectorRetriever

    store = configured(stores)
    entries = corpus()
    store.write(entries)
    assert isinstance(store, RankingStore)
    where = parse_filter({"team": "billing"})
    query = unit_vectors(["a question"])[0]
    for flt in (None, where):
        kw = store.keyword_search("alpha beta kappa", 5, flt)
        assert store.keyword_ranking("alpha beta kappa", 5, flt) == [(r.id, r.score) for r in kw]
        vs = store.vector_search(query, 5, flt)
        assert store.vector_ranking(query, 5, flt) == [(r.id, r.score) for r in vs]
    assert [c.id for c in store.get_chunks(["notes/d.txt#1", "guide/a.md#0"])] == [
        "notes/d.txt#1",
        "guide/a.md#0",
    ]
    with pytest.raises(KeyError, match="nope"):
        store.get_chunks(["guide/a.md#0", "nope#0"])

    class Fixed:  # embeds every query as the same vector
        dim = DIM
        name = "fixed"
        batch_size = None

        def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
            return unit_vectors(list(texts))

        def embed_query(self, text: str) -> np.ndarray:
            return query

    hybrid = HybridRetriever(
        [BM25Retriever(store=store), VectorRetriever(store=store, embedder=Fixed())], depth=6
    )
    q = Query("alpha beta kappa", 3)
    narrow = hybrid.retrieve(q)
    full = hybrid.fuse_rankings(hybrid._rankings(q.with_k(6)), limit=3)
    assert [(r.id, r.score, dict(r.scores)) for r in narrow] == [
        (r.id, r.score, dict(r.scores)) for r in full
    ]
    assert all(r.chunk == store.get_chunk(r.id) for r in narrow)
