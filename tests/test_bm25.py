"""BM25Index and Analyzer: rank_bm25 as the okapi oracle, hand-computed lucene scores,
incremental add/remove equal to a fresh build, search contract, state round trip."""

from __future__ import annotations

import json
import math
import pickle
import random

import numpy as np
import pytest
import rank_bm25
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ragkit.bm25 as bm25_module
from ragkit.bm25 import ENGLISH_STOPWORDS, Analyzer, BM25Index
from ragkit.errors import IndexFormatError


@pytest.fixture(autouse=True, params=["numpy", "numba"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on the numpy path and on the numba kernel (at any index size)."""
    if request.param == "numba":
        pytest.importorskip("numba")
        monkeypatch.setattr(bm25_module, "_NUMBA_MIN_SLOTS", 0)
        assert bm25_module._numba_kernel() is not None
    else:
        monkeypatch.setattr(bm25_module, "_use_numba", False)
    return str(request.param)


CORPORA = [
    # "a" is in 4 of 5 documents (negative idf -> epsilon * mean idf); "b" in 3 of 5.
    [["a", "b", "c"], ["a", "b"], ["a", "d", "d", "e"], ["f"], ["a", "b", "a"]],
    # idf exactly 0 for "x" (2 of 4 documents) and an empty document.
    [["x", "y"], ["x"], ["z", "z", "z"], []],
    # Three documents, one term everywhere.
    [["common", "rare"], ["common"], ["common", "other", "other"]],
]

QUERIES = [
    ["a"],
    ["a", "a", "d"],  # a repeated query term counts twice
    ["zz", "b"],  # an unknown term scores 0
    ["b", "e", "f", "x", "y", "z"],
    ["common", "rare", "other", "other"],
    ["x", "z", "y", "y"],
]


def build(
    token_lists: list[list[str]], keys: list[int] | None = None, **kwargs: object
) -> BM25Index:
    index = BM25Index(**kwargs)  # type: ignore[arg-type]
    index.add_tokens(list(range(len(token_lists))) if keys is None else keys, token_lists)
    return index


# ---------------------------------------------------------------------- okapi == rank_bm25


@pytest.mark.parametrize("corpus", CORPORA)
@pytest.mark.parametrize("query", QUERIES)
def test_okapi_equals_rank_bm25(corpus: list[list[str]], query: list[str]) -> None:
    index = build(corpus, variant="okapi")
    oracle = rank_bm25.BM25Okapi(corpus)
    got = index.get_scores(query, list(range(len(corpus))))
    np.testing.assert_allclose(got, oracle.get_scores(query), rtol=1e-9, atol=0)


def test_okapi_epsilon_path_is_exercised() -> None:
    # Guard that the corpus above really has a negative-idf term and a floor > 0.
    oracle = rank_bm25.BM25Okapi(CORPORA[0])
    assert oracle.idf["a"] == pytest.approx(0.25 * oracle.average_idf)
    assert oracle.average_idf > 0
    assert build(CORPORA[0], variant="okapi").get_scores(["a"], [0])[0] > 0


@pytest.mark.parametrize(
    ("k1", "b", "epsilon"), [(1.2, 0.5, 0.1), (0.5, 0.0, 0.0), (2.0, 1.0, 0.5)]
)
def test_okapi_parameters_match_rank_bm25(k1: float, b: float, epsilon: float) -> None:
    corpus = CORPORA[0]
    index = build(corpus, variant="okapi", k1=k1, b=b, epsilon=epsilon)
    oracle = rank_bm25.BM25Okapi(corpus, k1=k1, b=b, epsilon=epsilon)
    for query in QUERIES:
        got = index.get_scores(query, list(range(len(corpus))))
        np.testing.assert_allclose(got, oracle.get_scores(query), rtol=1e-9, atol=0)


WORDS = st.sampled_from([f"w{i}" for i in range(12)])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    corpus=st.lists(st.lists(WORDS, min_size=1, max_size=12), min_size=3, max_size=15),
    query=st.lists(WORDS, min_size=1, max_size=6),
)
def test_okapi_equals_rank_bm25_property(corpus: list[list[str]], query: list[str]) -> None:
    index = build(corpus, variant="okapi")
    oracle = rank_bm25.BM25Okapi(corpus)
    got = index.get_scores(query, list(range(len(corpus))))
    np.testing.assert_allclose(got, oracle.get_scores(query), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------- lucene by hand


def test_lucene_matches_hand_computed_scores() -> None:
    corpus = [["cat", "sat", "mat"], ["cat", "cat", "dog"], ["bird"]]
    index = build(corpus, keys=[7, 8, 9], variant="lucene", k1=1.2, b=0.75)
    n, avgdl = 3, 7 / 3
    idf_cat = math.log(1 + (n - 2 + 0.5) / (2 + 0.5))
    idf_dog = math.log(1 + (n - 1 + 0.5) / (1 + 0.5))

    def tf_part(tf: int, dl: int) -> float:
        return tf / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / avgdl))

    expected = {
        7: idf_cat * tf_part(1, 3),
        8: idf_cat * tf_part(2, 3) + idf_dog * tf_part(1, 3),
    }
    keys, scores = index.search_tokens(["cat", "dog"], 10)
    assert keys.tolist() == [8, 7]
    np.testing.assert_allclose(scores, [expected[8], expected[7]], rtol=1e-12)
    np.testing.assert_allclose(
        index.get_scores(["cat", "dog"], [9, 7]), [0.0, expected[7]], rtol=1e-12
    )


def test_lucene_idf_is_positive_even_for_a_term_in_every_document() -> None:
    index = build([["x", "y"], ["x"], ["x", "z"]])
    keys, scores = index.search_tokens(["x"], 5)
    assert keys.tolist() == [1, 0, 2]  # the shortest document first; 0 and 2 tie, by key
    assert (scores > 0).all()


def test_default_parameters() -> None:
    okapi = BM25Index(variant="okapi")
    assert (okapi.k1, okapi.b, okapi.epsilon) == (1.5, 0.75, 0.25)
    lucene = BM25Index()
    assert lucene.variant == "lucene"
    assert 0 < lucene.k1
    assert 0 <= lucene.b <= 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variant": "bm25l"}, "variant .* must be one of"),
        ({"k1": -1.0}, "k1 .* must be a finite number"),
        ({"b": 1.5}, "b .* must be between 0 and 1"),
        ({"epsilon": float("nan")}, "epsilon .* must be finite"),
    ],
)
def test_invalid_parameters_raise(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BM25Index(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- incremental


def random_docs(rng: random.Random, n: int, vocab: int = 30) -> list[list[str]]:
    return [
        [f"t{min(int(rng.expovariate(0.15)), vocab)}" for _ in range(rng.randint(0, 15))]
        for _ in range(n)
    ]


@pytest.mark.parametrize("variant", ["lucene", "okapi"])
@pytest.mark.parametrize("seed", range(6))
def test_incremental_equals_fresh_build(
    variant: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ragkit._bm25_postings as mod

    # Small thresholds so merges and compactions happen inside a small test.
    monkeypatch.setattr(mod, "_MIN_MERGE", 20)
    monkeypatch.setattr(mod, "_MIN_COMPACT", 3)
    rng = random.Random(seed)
    index = BM25Index(variant=variant)  # type: ignore[arg-type]
    docs: dict[int, list[str]] = {}
    next_key = 0
    queries = [["t0"], ["t1", "t3", "t3"], ["t2", "t9", "t20", "unknown"], ["t5", "t0", "t1"]]
    for step in range(40):
        if docs and rng.random() < 0.4:
            gone = rng.sample(sorted(docs), rng.randint(1, min(4, len(docs))))
            index.remove(gone)
            for key in gone:
                del docs[key]
        else:
            batch = random_docs(rng, rng.choice([1, 1, 2, 5, 30]))
            keys = list(range(next_key, next_key + len(batch)))
            next_key += len(batch) + rng.randint(0, 3)  # keys need not be dense
            index.add_tokens(keys, batch)
            docs.update(zip(keys, batch, strict=True))
        if step % 5 == 4 or step == 39:
            survivors = sorted(docs)
            fresh = BM25Index(variant=variant)  # type: ignore[arg-type]
            order = survivors[:]
            rng.shuffle(order)  # insertion order must not matter
            fresh.add_tokens(order, [docs[k] for k in order])
            assert len(index) == len(fresh) == len(docs)
            for query in queries:
                got = index.get_scores(query, survivors)
                want = fresh.get_scores(query, survivors)
                assert np.array_equal(got, want)
                for k in (1, 3, 100):
                    a, b = index.search_tokens(query, k), fresh.search_tokens(query, k)
                    assert np.array_equal(a[0], b[0])
                    assert np.array_equal(a[1], b[1])


def test_remove_everything_then_add_again() -> None:
    index = build([["a"], ["b"], ["a", "b"]])
    index.remove([0, 1, 2])
    assert len(index) == 0
    assert index.search_tokens(["a"], 3)[0].size == 0
    index.add_tokens([5, 6, 7], [["a"], ["c"], ["c"]])
    assert index.search_tokens(["a"], 3)[0].tolist() == [5]


def test_remove_unknown_key_raises_and_changes_nothing() -> None:
    index = build(CORPORA[0])
    with pytest.raises(KeyError, match="42"):
        index.remove([0, 42])
    assert len(index) == 5
    assert 0 in index
    index.remove([])
    assert len(index) == 5


def test_add_existing_or_repeated_key_raises() -> None:
    index = build(CORPORA[0])
    with pytest.raises(ValueError, match="already"):
        index.add_tokens([3], [["q"]])
    with pytest.raises(ValueError, match="repeated"):
        index.add_tokens([10, 10], [["q"], ["r"]])
    with pytest.raises(ValueError, match="non-negative"):
        index.add_tokens([-1], [["q"]])
    with pytest.raises(ValueError, match="equal length"):
        index.add_tokens([11, 12], [["q"]])
    with pytest.raises(TypeError, match="not a string"):
        index.add_tokens([11], ["not a token list"])
    with pytest.raises(TypeError, match="tokens must be strings"):
        index.add_tokens([11], [["fine", 3]])  # type: ignore[list-item]
    assert len(index) == 5
    assert 10 not in index
    assert index.search_tokens(["q"], 5)[0].size == 0


def test_contains_and_len() -> None:
    index = build([["a"], ["b"], ["c"]], keys=[3, 1, 2])
    assert len(index) == 3
    assert 1 in index
    assert 0 not in index
    assert "1" not in index
    index.remove([1])
    assert 1 not in index
    assert len(index) == 2


# ---------------------------------------------------------------------- search contract


@pytest.fixture
def text_index() -> BM25Index:
    index = BM25Index()
    index.add(
        [30, 10, 20, 40],
        [
            "Cats are small carnivorous mammals that sleep most of the day.",
            "Dogs were domesticated from wolves; dogs are loyal.",
            "A cat eats fish and chicken.",
            "Rust is a systems programming language.",
        ],
    )
    return index


def test_search_contract(text_index: BM25Index) -> None:
    for query in ["cat", "dogs and cats", "fish wolves language", "sleeping cat eating fish"]:
        for k in (1, 2, 10):
            keys, scores = text_index.search(query, k)
            assert keys.dtype == np.int64
            assert scores.dtype == np.float64
            assert len(keys) == len(scores) <= k
            assert all(key in text_index for key in keys.tolist())
            assert len(set(keys.tolist())) == len(keys)
            pairs = list(zip((-scores).tolist(), keys.tolist(), strict=True))
            assert pairs == sorted(pairs)  # score descending, then key ascending
            assert (scores > 0).all()


def test_search_returns_only_matching_documents(text_index: BM25Index) -> None:
    keys, _ = text_index.search("cat", 10)
    assert sorted(keys.tolist()) == [20, 30]  # "cats" stems to "cat"; 10 and 40 do not match


def test_ties_are_broken_by_key() -> None:
    index = build([["x"], ["x"], ["x"], ["y"]], keys=[9, 3, 5, 1])
    keys, scores = index.search_tokens(["x"], 2)
    assert keys.tolist() == [3, 5]
    assert scores[0] == scores[1]


@pytest.mark.parametrize("exhaustive_ratio", [0, 10**9])
@pytest.mark.parametrize("delta", [False, True])
def test_ties_are_broken_by_key_not_by_insertion_order(
    exhaustive_ratio: int, delta: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keys fall as documents are added, so insertion order is the reverse of key order; a
    # hundred documents tie, spread over many of the kernel's windows (pruned and exhaustive
    # kernels alike), some in the delta of single-document adds.
    monkeypatch.setattr(bm25_module, "_WINDOW", 64)
    monkeypatch.setattr(bm25_module, "_EXHAUSTIVE_RATIO", exhaustive_ratio)
    keys = [10_000 - 7 * i for i in range(300)]
    docs = [["x", "y"] if i % 3 == 0 else ["y", f"z{i}"] for i in range(300)]
    split = 250 if delta else 300
    index = build(docs[:split], keys=keys[:split])
    for key, doc in zip(keys[split:], docs[split:], strict=True):
        index.add_tokens([key], [doc])
    tied = sorted(key for key, doc in zip(keys, docs, strict=True) if doc == ["x", "y"])
    got_keys, got_scores = index.search_tokens(["x"], 5)
    assert got_keys.tolist() == tied[:5]
    assert len(set(got_scores.tolist())) == 1
    got_keys, got_scores = index.search_tokens(["y", "x"], 3, with_ties=True)
    assert got_keys.tolist() == tied  # every document tied with the third, by key
    assert len(set(got_scores.tolist())) == 1


def test_empty_query_after_analysis(text_index: BM25Index) -> None:
    keys, scores = text_index.search("the and of", 5)  # only stopwords
    assert keys.size == 0
    assert scores.size == 0
    assert text_index.search("", 5)[0].size == 0
    assert text_index.search("zebra", 5)[0].size == 0
    np.testing.assert_array_equal(text_index.get_scores([], [10, 20]), [0.0, 0.0])


def test_empty_index_and_bad_k() -> None:
    index = BM25Index()
    assert index.search("anything", 3)[0].size == 0
    with pytest.raises(ValueError, match="k"):
        index.search("anything", 0)


def test_get_scores_agrees_with_search(text_index: BM25Index) -> None:
    keys, scores = text_index.search("dogs cats fish", 10)
    np.testing.assert_array_equal(
        text_index.get_scores(text_index.analyzer("dogs cats fish"), keys), scores
    )
    with pytest.raises(KeyError, match="999"):
        text_index.get_scores(["cat"], [999])


def test_okapi_search_keeps_matches_with_non_positive_scores() -> None:
    # "x" is in 2 of 4 documents: okapi idf is exactly 0, yet those documents match.
    index = build(CORPORA[1], variant="okapi")
    keys, scores = index.search_tokens(["x"], 10)
    assert keys.tolist() == [0, 1]
    assert (scores == 0).all()


# ---------------------------------------------------------------------- state


def test_state_round_trip(text_index: BM25Index) -> None:
    text_index.add([50], ["Dogs chase cats."])
    text_index.remove([30])
    config = json.loads(json.dumps(text_index.config()))
    state = text_index.state()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    loaded = BM25Index.from_state(config, state)
    assert len(loaded) == len(text_index)
    assert 50 in loaded
    assert 30 not in loaded
    for query in ["cat", "dogs chase", "rust fish wolves"]:
        a, b = text_index.search(query, 10), loaded.search(query, 10)
        assert np.array_equal(a[0], b[0])
        assert np.array_equal(a[1], b[1])
    # The loaded index stays incremental.
    loaded.remove([50])
    loaded.add([60], ["A cat."])
    assert loaded.search("cat", 1)[0].tolist() == [60]
    # Add then remove on a freshly loaded index (removal data derived from the postings).
    again = BM25Index.from_state(config, state)
    again.add([70], ["A cat sat."])
    again.remove([70, 20])
    assert 70 not in again
    assert again.search("cat", 5)[0].tolist() == [50]


def corrupt(state: dict[str, np.ndarray], name: str, value: np.ndarray) -> dict[str, np.ndarray]:
    out = dict(state)
    out[name] = value
    return out


def test_corrupt_state_raises_index_format_error(text_index: BM25Index) -> None:
    config, state = text_index.config(), text_index.state()
    bad_states = [
        {k: v for k, v in state.items() if k != "post_tf"},
        corrupt(state, "post_tf", state["post_tf"][:-1]),
        corrupt(state, "post_docs", state["post_docs"] + 100),
        corrupt(state, "doc_len", state["doc_len"] + 1),
        corrupt(state, "keys", np.zeros_like(state["keys"])),
        corrupt(state, "indptr", state["indptr"][::-1].copy()),
        corrupt(state, "vocab", np.full_like(state["vocab"], 0xFF)),
        corrupt(state, "vocab_offsets", state["vocab_offsets"][:-1]),
        corrupt(state, "keys", state["keys"].astype(np.float64)),
    ]
    for bad in bad_states:
        with pytest.raises(IndexFormatError, match="BM25 (state|vocabulary)"):
            BM25Index.from_state(config, bad)
    bad_configs: list[dict[str, object]] = [
        {**config, "format": 99},
        {**config, "variant": "nope"},
        {"format": 1},
    ]
    for bad_config in bad_configs:
        with pytest.raises(IndexFormatError, match="BM25 (config|format)"):
            BM25Index.from_state(bad_config, state)


def test_memory_bytes_grows_with_content() -> None:
    small, large = build(CORPORA[0]), build(CORPORA[0] * 20)
    assert 0 < small.memory_bytes() < large.memory_bytes()


# ---------------------------------------------------------------------- analyzer


def test_analyzer_stems_and_drops_stopwords() -> None:
    analyze = Analyzer()
    assert analyze("running") == analyze("runs") == analyze("Run")
    assert analyze("The cat and the hat") == ["cat", "hat"]
    assert analyze("COVID-19 in 2020") == ["covid", "19", "2020"]
    assert "the" in ENGLISH_STOPWORDS


def test_analyzer_options() -> None:
    assert Analyzer(stemmer=None, stopwords=None)("The Runs") == ["the", "runs"]
    assert Analyzer(lowercase=False, stemmer=None, stopwords=None)("The Runs") == ["The", "Runs"]
    assert Analyzer(stopwords=["Cat"], stemmer=None)("cat dog") == ["dog"]
    assert Analyzer(min_token_len=3, stemmer=None)("a an ox cow") == ["cow"]
    with pytest.raises(ValueError, match="stemmer"):
        Analyzer(stemmer="klingon")
    with pytest.raises(ValueError, match="stopwords"):
        Analyzer(stopwords="french")
    with pytest.raises(ValueError, match="min_token_len"):
        Analyzer(min_token_len=0)


@pytest.mark.parametrize(
    "analyzer",
    [
        Analyzer(),
        Analyzer(stopwords=["b", "a"], stemmer="porter", min_token_len=2),
        Analyzer(lowercase=False, stopwords=None, stemmer=None),
    ],
)
def test_analyzer_config_round_trip(analyzer: Analyzer) -> None:
    config = json.loads(json.dumps(analyzer.config()))
    again = Analyzer.from_config(config)
    assert again == analyzer
    assert again.config() == analyzer.config()
    text = "The Runners ran a long Race, racing b A"
    assert again(text) == analyzer(text)
    assert pickle.loads(pickle.dumps(analyzer)) == analyzer


def test_index_uses_its_analyzer_for_queries() -> None:
    index = BM25Index(analyzer=Analyzer(stemmer=None))
    index.add([1, 2, 3], ["running fast", "runs", "walks"])
    assert index.search("running", 5)[0].tolist() == [1]
    assert index.search("runs", 5)[0].tolist() == [2]


def test_term_frequencies_beyond_uint16_stay_exact() -> None:
    corpus = [["x"] * 70_000 + ["y"], ["y", "z"], ["x", "z", "w"]]
    index = build(corpus, variant="okapi")
    oracle = rank_bm25.BM25Okapi(corpus)
    for query in (["x"], ["x", "y", "z"]):
        np.testing.assert_allclose(
            index.get_scores(query, [0, 1, 2]), oracle.get_scores(query), rtol=1e-9, atol=0
        )
    loaded = BM25Index.from_state(index.config(), index.state())
    assert np.array_equal(loaded.get_scores(["x"], [0, 1, 2]), index.get_scores(["x"], [0, 1, 2]))


@pytest.mark.parametrize("variant", ["lucene", "okapi"])
def test_search_equals_brute_force_on_a_larger_index(variant: str) -> None:
    # Enough documents for the block-maximum pruning in search to engage, with tombstones.
    rng = random.Random(7)
    docs = random_docs(rng, 3000, vocab=60)
    keys = rng.sample(range(10**6), len(docs))
    index = BM25Index(variant=variant)  # type: ignore[arg-type]
    index.add_tokens(keys, docs)
    index.remove(keys[::7])
    alive = [k for i, k in enumerate(keys) if i % 7]
    for query in (["t0"], ["t3", "t8"], ["t1", "t2", "t40", "t40"], ["t59", "t60"]):
        scores = index.get_scores(query, alive)
        matches = {k for k, d in zip(keys, docs, strict=True) if set(d) & set(query)}
        expected = sorted(
            (-s, k) for s, k in zip(scores.tolist(), alive, strict=True) if k in matches
        )
        for k in (1, 10, 50, 5000):
            got_keys, got_scores = index.search_tokens(query, k)
            assert got_keys.tolist() == [key for _, key in expected[:k]]
            assert got_scores.tolist() == [-s for s, _ in expected[:k]]


def test_state_is_a_pure_read_even_with_tombstones_and_a_delta() -> None:
    # Stores call state() under their read lock while searches run (issue 14 item 4): it must
    # not compact the live index, whose slot numbers a concurrent search is using.
    index = BM25Index()
    index.add(range(8), [f"cat {i} dog" if i % 2 else f"fish {i}" for i in range(8)])
    index.remove([1, 2])
    index.add([20], ["cat bird"])  # a small add lands in the delta postings
    slots_before = len(index._keys)
    before = index.search("cat", 10)
    state = index.state()
    assert len(index._keys) == slots_before  # tombstones still in place: nothing renumbered
    assert index._n_dead == 2
    assert index._delta
    assert state["keys"].tolist() == [0, 3, 4, 5, 6, 7, 20]
    after = index.search("cat", 10)
    assert before[0].tolist() == after[0].tolist()
    assert before[1].tolist() == after[1].tolist()
    loaded = BM25Index.from_state(index.config(), state)
    assert loaded.search("cat", 10)[0].tolist() == before[0].tolist()
    assert np.allclose(loaded.search("cat", 10)[1], before[1])


def assert_kernel_matches_numpy(
    index: BM25Index,
    queries: list[list[str]],
    ks: tuple[int, ...],
    monkeypatch: pytest.MonkeyPatch,
    options: tuple[dict[str, object], ...] = ({},),
) -> None:
    """The numba kernel's keys and scores equal the numpy path's, bit for bit, per query."""
    for query in queries:
        for k in ks:
            for kwargs in options:
                monkeypatch.setattr(bm25_module, "_use_numba", True)
                got = index.search_tokens(query, k, **kwargs)  # type: ignore[arg-type]
                monkeypatch.setattr(bm25_module, "_use_numba", False)
                want = index.search_tokens(query, k, **kwargs)  # type: ignore[arg-type]
                assert got[0].tolist() == want[0].tolist(), (query, k, kwargs)
                assert got[1].tolist() == want[1].tolist(), (query, k, kwargs)


def zipf_docs(rng: np.random.Generator, n: int, vocab: int = 2000) -> list[list[str]]:
    """Documents of 5-60 terms drawn from a Zipf law: long and short posting lists, as in text."""
    ranks = np.minimum(rng.zipf(1.3, size=n * 60), vocab)
    lengths = rng.integers(5, 61, size=n)
    words = [f"w{r}" for r in ranks.tolist()]
    out, pos = [], 0
    for length in lengths.tolist():
        out.append(words[pos : pos + length])
        pos += length
    return out


@pytest.mark.parametrize("variant", ["lucene", "okapi"])
@pytest.mark.parametrize(
    ("window", "lookup_cost", "exhaustive_ratio"),
    [(4096, 16, 0), (64, 16, 0), (256, 0, 0), (256, 10**6, 0), (4096, 16, 10**9), (4096, 16, 400)],
)
def test_pruned_search_equals_the_full_scan(
    variant: str,
    window: int,
    lookup_cost: int,
    exhaustive_ratio: int,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The numba kernel skips blocks of postings it proves cannot change the top k: its keys
    # and scores must be bit-for-bit the full numpy scan's, with single-document adds in the
    # delta, tombstones, a filter, ties and repeated query terms; with one window or many,
    # with candidates always looked up or never. For a large k it reads every posting instead
    # (exhaustive_ratio 10**9: always; 0: never; 400, the default: by k against the corpus),
    # and must give the same.
    if backend == "numpy":
        pytest.skip("compares the numba kernel against the numpy path")
    monkeypatch.setattr(bm25_module, "_WINDOW", window)
    monkeypatch.setattr(bm25_module, "_LOOKUP_COST", lookup_cost)
    monkeypatch.setattr(bm25_module, "_EXHAUSTIVE_RATIO", exhaustive_ratio)
    rng = np.random.default_rng(3)
    docs = zipf_docs(rng, 4000)
    index = BM25Index(variant=variant)  # type: ignore[arg-type]
    index.add_tokens(list(range(3000)), docs[:3000])
    for key in range(3000, 3300):  # below the merge threshold: these stay in the delta
        index.add_tokens([key], [docs[key]])
    index.add_tokens([5000, 5001], [docs[0], docs[0]])  # exact ties with key 0
    index.remove(range(0, 3300, 11))
    allowed = rng.random(6000) < 0.4
    queries = [docs[i][:n] for i in rng.integers(0, 3300, size=40).tolist() for n in (3, 8)]
    queries += [["w1", "w2"], ["w1", "w1", "w500"], ["w3", "w1999", "w7", "w7"], ["nope"]]
    queries += [docs[0][:6]]  # the tied documents
    options = ({}, {"allowed": allowed}, {"with_ties": True})
    assert_kernel_matches_numpy(index, queries, (1, 10, 100), monkeypatch, options)


def test_exhaustive_search_when_every_document_matches(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A term in every document touches every slot, the case where the kernel's list of
    # touched slots is full: all of them must come back, ranked as the numpy path ranks them.
    if backend == "numpy":
        pytest.skip("compares the numba kernel against the numpy path")
    monkeypatch.setattr(bm25_module, "_EXHAUSTIVE_RATIO", 10**9)  # always read every posting
    rng = np.random.default_rng(5)
    docs = [["common", *doc] for doc in zipf_docs(rng, 300)]
    index = BM25Index()
    index.add_tokens(list(range(250)), docs[:250])
    for key in range(250, 300):  # in the delta
        index.add_tokens([key], [docs[key]])
    for query in (["common"], ["common", "w1"], ["common", "common", "w2"]):
        for k in (299, 300, 1000):
            monkeypatch.setattr(bm25_module, "_use_numba", True)
            got = index.search_tokens(query, k)
            monkeypatch.setattr(bm25_module, "_use_numba", False)
            want = index.search_tokens(query, k)
            assert len(got[0]) == min(k, 300)
            assert got[0].tolist() == want[0].tolist(), (query, k)
            assert got[1].tolist() == want[1].tolist(), (query, k)


@pytest.mark.parametrize("variant", ["lucene", "okapi"])
def test_pruned_search_stays_exact_as_the_average_length_changes(
    variant: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernel's per-block bounds are taken once per merge, at that moment's average document
    # length; long documents added since (in the delta) and short ones removed raise it, which
    # must not let the kernel drop a document of the top k.
    if backend == "numpy":
        pytest.skip("compares the numba kernel against the numpy path")
    monkeypatch.setattr(bm25_module, "_WINDOW", 64)
    monkeypatch.setattr(bm25_module, "_EXHAUSTIVE_RATIO", 0)  # always the pruned kernel
    rng = np.random.default_rng(7)
    docs = zipf_docs(rng, 6600, vocab=300)
    index = BM25Index(variant=variant)  # type: ignore[arg-type]
    index.add_tokens(list(range(6000)), docs[:6000])
    assert not index._delta  # in the base postings, which have blocks
    queries = [[f"w{i}"] for i in range(1, 40)]
    queries += [docs[i][:n] for i in rng.integers(0, 6000, size=30).tolist() for n in (2, 6)]

    def same() -> None:
        assert_kernel_matches_numpy(index, queries, (1, 10), monkeypatch)

    same()  # builds the block bounds
    for key in range(6000, 6200):  # long documents: the average length grows by about a third
        index.add_tokens([key], [docs[key] * 8])
    index.remove([key for key in range(6000) if len(docs[key]) < 20][:900])
    assert index._delta
    same()


@pytest.mark.parametrize("variant", ["lucene", "okapi"])
def test_pruned_search_is_exact_with_long_documents(
    variant: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernel picks candidates with one-byte length codes, exact below 160 terms and
    # approximate (a lower bound of the length) above: documents of up to ~3,600 terms, in the
    # base and in the delta, must still get the numpy path's keys and scores bit for bit.
    if backend == "numpy":
        pytest.skip("compares the numba kernel against the numpy path")
    monkeypatch.setattr(bm25_module, "_WINDOW", 256)
    monkeypatch.setattr(bm25_module, "_EXHAUSTIVE_RATIO", 0)  # always the pruned kernel
    rng = np.random.default_rng(5)
    docs = [doc * int(rng.integers(1, 60)) for doc in zipf_docs(rng, 3200, vocab=500)]
    index = BM25Index(variant=variant)  # type: ignore[arg-type]
    index.add_tokens(list(range(3000)), docs[:3000])
    for key in range(3000, 3200):
        index.add_tokens([key], [docs[key]])
    index.remove(range(0, 3000, 13))
    assert max(map(len, docs)) > 2000
    queries = [docs[i][:n] for i in rng.integers(0, 3200, size=40).tolist() for n in (2, 5)]
    assert_kernel_matches_numpy(index, queries, (1, 10), monkeypatch)


def test_concurrent_searches_get_the_answers_of_serial_ones(backend: str) -> None:
    # Searches may run in threads at once (the kernel releases the GIL): each thread has its
    # own scratch buffers, and the block bounds and length codes built by the first searches
    # (and extended after adds) are shared safely.
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(11)
    docs = zipf_docs(rng, 4000)
    queries = [docs[i][:n] for i in rng.integers(0, 4000, size=60).tolist() for n in (2, 5)]
    serial = build(docs)
    want = [serial.search_tokens(q, 10) for q in queries]
    fresh = build(docs)  # nothing built yet: the threads race to build the block bounds

    def run(offset: int) -> list[tuple[list[int], list[float]]]:
        out = []
        for i in range(len(queries)):
            keys, scores = fresh.search_tokens(queries[(i + offset) % len(queries)], 10)
            out.append((keys.tolist(), scores.tolist()))
        return out

    def check() -> None:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(run, range(0, 120, 30)))
        for offset, got in zip(range(0, 120, 30), results, strict=True):
            for i, (keys, scores) in enumerate(got):
                expected = want[(i + offset) % len(queries)]
                assert keys == expected[0].tolist()
                assert scores == expected[1].tolist()

    check()
    # Documents added since: the threads race to extend the kernel's per-document length codes.
    for key, doc in enumerate(zipf_docs(rng, 300), start=4000):
        serial.add_tokens([key], [doc * 3])
        fresh.add_tokens([key], [doc * 3])
    want = [serial.search_tokens(q, 10) for q in queries]
    check()


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80), lowercase=st.booleans(), min_len=st.integers(1, 3))
def test_tokens_then_terms_is_the_analysis(text: str, lowercase: bool, min_len: int) -> None:
    """Analyzer.tokens + Analyzer.terms (the Postgres store's large writes analyse with them)
    give exactly what calling the analyzer gives."""
    analyzer = Analyzer(lowercase=lowercase, min_token_len=min_len)
    tokens = analyzer.tokens(text)
    terms = analyzer.terms(tokens)
    assert [terms[t] for t in tokens if terms[t]] == analyzer(text)
    fresh = Analyzer(lowercase=lowercase, min_token_len=min_len)  # empty cache
    assert fresh.terms(set(tokens)) == terms


def test_merge_in_small_blocks_equals_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """The base merge moves postings block by block; block boundaries change nothing."""
    from ragkit import _bm25_postings

    texts = [f"alpha beta{i % 7} gamma{i % 13} delta {'eps ' * (i % 3)}" for i in range(300)]

    def build() -> dict[str, np.ndarray]:
        index = BM25Index()
        for start in range(0, 300, 50):
            index.add(range(start, start + 50), texts[start : start + 50])
            index._merge_delta()
        return index.state()

    whole = build()
    monkeypatch.setattr(_bm25_postings, "_MERGE_BLOCK", 7)
    blocked = build()
    assert whole.keys() == blocked.keys()
    for name in whole:
        np.testing.assert_array_equal(whole[name], blocked[name], err_msg=name)


# ---------------------------------------------------------------------- removal (no forward index)


@pytest.mark.parametrize("tokens", ["none", "right", "wrong"])
@pytest.mark.parametrize("search_slots", [0, 32])
def test_removal_finds_the_terms_with_or_without_tokens(
    tokens: str, search_slots: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The index keeps no forward index: a removed document's terms come from tokens the caller
    # gives (checked against the postings) or from a search of the postings (per document, or
    # in one pass for many). Wrong tokens must not corrupt the statistics.
    import ragkit._bm25_postings as mod

    monkeypatch.setattr(mod, "_MIN_MERGE", 20)
    monkeypatch.setattr(mod, "_MIN_COMPACT", 10_000)
    monkeypatch.setattr(mod, "_SEARCH_SLOTS", search_slots)
    rng = random.Random(7)
    docs = dict(enumerate(random_docs(rng, 120)))
    index = BM25Index()
    index.add_tokens(list(range(100)), [docs[k] for k in range(100)])  # a bulk add: the base
    for key in range(100, 120):  # small adds: the delta
        index.add_tokens([key], [docs[key]])
    gone = [3, 50, 99, 101, 119, 0, 64]

    def given(key: int) -> list[str] | None:
        if tokens == "right":
            return docs[key]
        if tokens == "wrong":  # one token too many, one token swapped, or none at all
            return [docs[key] + ["t1"], ["t0"] + docs[key][1:], []][key % 3]
        return None

    index.remove(gone[:2], [given(k) for k in gone[:2]])
    index.remove(gone[2:], [given(k) for k in gone[2:]])
    survivors = [k for k in docs if k not in gone]
    fresh = build([docs[k] for k in survivors], survivors)
    assert index.document_frequencies([f"t{i}" for i in range(30)]) == fresh.document_frequencies(
        [f"t{i}" for i in range(30)]
    )
    for query in (["t0"], ["t1", "t3", "t3"], ["t2", "t9", "t20"]):
        got, want = index.get_scores(query, survivors), fresh.get_scores(query, survivors)
        assert np.array_equal(got, want)
        a, b = index.search_tokens(query, 10), fresh.search_tokens(query, 10)
        assert np.array_equal(a[0], b[0])
        assert np.array_equal(a[1], b[1])


def test_removal_tokens_must_match_the_keys() -> None:
    index = build([["a"], ["b"], ["c"]])
    with pytest.raises(ValueError, match=r"token_lists \(1\) must match keys \(2\)"):
        index.remove([0, 1], [["a"]])
    assert len(index) == 3


def test_kept_terms_survive_merges_and_compaction(monkeypatch: pytest.MonkeyPatch) -> None:
    # Documents added with keep_terms are removed from their kept term ids (no search of the
    # postings), also after merges and a compaction renumbered slots and terms.
    import ragkit._bm25_postings as mod

    monkeypatch.setattr(mod, "_MIN_MERGE", 20)
    monkeypatch.setattr(mod, "_MIN_COMPACT", 5)
    rng = random.Random(11)
    docs = dict(enumerate(random_docs(rng, 90)))
    index = BM25Index()
    index.add_tokens(
        list(range(60)), [docs[k] for k in range(60)], keep_terms=[k % 3 == 0 for k in range(60)]
    )
    for key in range(60, 90):
        index.add_tokens([key], [docs[key]], keep_terms=[key % 3 == 0])
    index.remove([k for k in range(90) if k % 3 == 1])  # a compaction: 30 of 90 slots dead
    assert index._n_dead == 0

    def no_search(*args: object) -> None:
        raise AssertionError("the postings were searched for a document with kept terms")

    monkeypatch.setattr(mod._Postings, "_base_terms", no_search)
    monkeypatch.setattr(mod._Postings, "_base_terms_pass", no_search)
    gone = [k for k in range(90) if k % 3 == 0]
    index.remove(gone[:4])
    index.remove(gone[4:])
    survivors = [k for k in range(90) if k % 3 == 2]
    fresh = build([docs[k] for k in survivors], survivors)
    terms = [f"t{i}" for i in range(31)]
    assert index.document_frequencies(terms) == fresh.document_frequencies(terms)
    for query in (["t0"], ["t1", "t3", "t3"], ["t2", "t9", "t20"]):
        a, b = index.search_tokens(query, 10), fresh.search_tokens(query, 10)
        assert np.array_equal(a[0], b[0])
        assert np.array_equal(a[1], b[1])
    with pytest.raises(ValueError, match=r"keep_terms \(1\) must match keys \(2\)"):
        index.add_tokens([100, 101], [["a"], ["b"]], keep_terms=[True])
