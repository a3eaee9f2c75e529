"""Tests of ragkit.vectors.VectorStore: exact search, the compressed path, updates, state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ragkit import vectors as vectors_module
from ragkit.errors import EmbeddingError, IndexFormatError
from ragkit.vectors import VectorStore


def unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def brute_force(data: np.ndarray, keys: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    scores = unit(data.astype(np.float64)) @ unit(q.astype(np.float64))
    order = np.lexsort((keys, -scores))[:k]
    return keys[order]


@pytest.fixture(params=["numba", "numpy"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a compressed-path test with the numba kernel (when installed) and the numpy scan."""
    if request.param == "numba":
        pytest.importorskip("numba")
        monkeypatch.setattr(vectors_module, "_kernel", None)
        kernel = vectors_module._candidate_kernel()
        assert kernel is not vectors_module._hamming_candidates_numpy
    else:
        monkeypatch.setattr(vectors_module, "_use_numba", False)
    return str(request.param)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    keys = rng.choice(10**9, size=500, replace=False).astype(np.int64)
    return keys, rng.standard_normal((500, 24)).astype(np.float32)


def test_exact_search_equals_brute_force(data: tuple[np.ndarray, np.ndarray]) -> None:
    keys, vecs = data
    store = VectorStore(24)
    store.add(keys, vecs)
    rng = np.random.default_rng(1)
    for q in rng.standard_normal((20, 24)):
        found, scores = store.search(q, 10)
        np.testing.assert_array_equal(found, brute_force(vecs, keys, q, 10))
        np.testing.assert_allclose(scores, unit(store.get(found)) @ unit(q), atol=1e-5)
        assert found.dtype == np.int64
        assert np.all(np.diff(scores) <= 0)


def test_search_batch_equals_single_searches(data: tuple[np.ndarray, np.ndarray]) -> None:
    keys, vecs = data
    store = VectorStore(24)
    store.add(keys, vecs)
    queries = np.random.default_rng(2).standard_normal((7, 24)).astype(np.float32)
    batch = store.search_batch(queries, 5)
    for q, (found, scores) in zip(queries, batch, strict=True):
        single = store.search(q, 5)
        np.testing.assert_array_equal(found, single[0])
        np.testing.assert_allclose(scores, single[1], atol=1e-6)


def test_ties_break_by_key_ascending() -> None:
    store = VectorStore(3)
    same = np.array([[1.0, 1.0, 0.0]] * 5)
    store.add([40, 10, 30, 20, 50], same)
    store.add([5], np.array([[0.0, 0.0, 1.0]]))
    found, scores = store.search(np.array([1.0, 1.0, 0.0]), 3)
    assert found.tolist() == [10, 20, 30]
    assert scores[0] == scores[2]


def test_k_larger_than_store_returns_everything_sorted() -> None:
    store = VectorStore(2)
    store.add([1, 2, 3], np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    found, scores = store.search(np.array([1.0, 0.0]), 10)
    assert found.tolist() == [1, 3, 2]
    assert len(scores) == 3


def test_empty_store_returns_empty_arrays() -> None:
    found, scores = VectorStore(4).search(np.ones(4), 3)
    assert found.shape == (0,)
    assert scores.shape == (0,)


def test_zero_vectors_score_zero() -> None:
    store = VectorStore(2)
    store.add([1, 2], np.array([[0.0, 0.0], [0.0, -1.0]]))
    found, scores = store.search(np.array([1.0, 1.0]), 2)
    assert found.tolist() == [1, 2]
    assert scores[0] == 0.0
    found, scores = store.search(np.zeros(2), 2)  # a zero query scores 0 against everything
    assert scores.tolist() == [0.0, 0.0]
    assert found.tolist() == [1, 2]


def test_add_normalises_a_copy() -> None:
    store = VectorStore(2)
    original = np.array([[3.0, 4.0]], dtype=np.float32)
    store.add([1], original)
    np.testing.assert_allclose(store.get([1]), [[0.6, 0.8]], rtol=1e-6)
    assert original.tolist() == [[3.0, 4.0]]


def test_remove_then_add_equals_fresh_store(data: tuple[np.ndarray, np.ndarray]) -> None:
    keys, vecs = data
    store = VectorStore(24)
    store.add(keys[:300], vecs[:300])
    store.remove(keys[:100].tolist())
    store.add(keys[300:], vecs[300:])
    store.remove(keys[250:350])
    survivors = np.r_[100:250, 350:500]
    fresh = VectorStore(24)
    fresh.add(keys[survivors], vecs[survivors])
    assert len(store) == len(fresh) == survivors.size
    assert set(store.keys().tolist()) == set(keys[survivors].tolist())
    assert keys[0] not in store
    assert keys[120] in store
    for q in np.random.default_rng(3).standard_normal((10, 24)):
        got, fresh_result = store.search(q, 15), fresh.search(q, 15)
        np.testing.assert_array_equal(got[0], fresh_result[0])
        np.testing.assert_array_equal(got[1], fresh_result[1])


def test_remove_everything_then_reuse() -> None:
    store = VectorStore(2)
    store.add(range(2000), np.ones((2000, 2)))
    store.remove(range(2000))
    assert len(store) == 0
    assert store.search(np.ones(2), 1)[0].size == 0
    store.add([7], np.array([[1.0, 0.0]]))
    assert store.search(np.ones(2), 5)[0].tolist() == [7]


def test_remove_unknown_key_names_it_and_changes_nothing() -> None:
    store = VectorStore(2)
    store.add([1, 2], np.eye(2))
    with pytest.raises(KeyError, match="99"):
        store.remove([1, 99])
    assert len(store) == 2
    assert 1 in store


def test_add_rejects_bad_keys() -> None:
    store = VectorStore(2)
    store.add([1], np.eye(2)[:1])
    with pytest.raises(ValueError, match="already stored"):
        store.add([1], np.eye(2)[:1])
    with pytest.raises(ValueError, match="twice"):
        store.add([2, 2], np.eye(2))
    with pytest.raises(ValueError, match="non-negative"):
        store.add([-1], np.eye(2)[:1])
    with pytest.raises(TypeError, match="integers"):
        store.add([1.5], np.eye(2)[:1])
    assert len(store) == 1


def test_dimension_mismatch_and_non_finite_raise_embedding_error() -> None:
    store = VectorStore(3)
    with pytest.raises(EmbeddingError, match="dimension 3"):
        store.add([1], np.ones((1, 4)))
    with pytest.raises(EmbeddingError, match="expected 2"):
        store.add([1, 2], np.ones((3, 3)))
    with pytest.raises(EmbeddingError, match="NaN"):
        store.add([1], np.array([[1.0, np.nan, 0.0]]))
    store.add([1], np.ones((1, 3)))
    with pytest.raises(EmbeddingError, match="dimension 3"):
        store.search(np.ones(4), 1)
    with pytest.raises(ValueError, match="k"):
        store.search(np.ones(3), 0)
    with pytest.raises(ValueError, match="1-D"):
        store.search(np.ones((2, 3)), 1)


def test_get_returns_normalised_vectors_and_rejects_unknown_keys() -> None:
    store = VectorStore(2)
    store.add([5, 6], np.array([[2.0, 0.0], [0.0, -3.0]]))
    np.testing.assert_allclose(store.get([6, 5]), [[0.0, -1.0], [1.0, 0.0]])
    with pytest.raises(KeyError, match="7"):
        store.get([7])


def test_compressed_path_returns_exact_scores_and_finds_copies(backend: str) -> None:
    rng = np.random.default_rng(4)
    # Clustered data, like real embeddings: 40 centres plus noise.
    centres = rng.standard_normal((40, 64))
    vecs = (centres[rng.integers(0, 40, 3000)] + 0.5 * rng.standard_normal((3000, 64))).astype(
        np.float32
    )
    keys = np.arange(3000, dtype=np.int64) * 7 + 3
    store = VectorStore(64, rerank=100)
    store.add(keys, vecs)
    for row in rng.choice(3000, size=20, replace=False):
        found, scores = store.search(vecs[row], 10, exact=False)
        assert found[0] == keys[row]
        assert len(found) == 10
        assert len(set(found.tolist())) == 10
        np.testing.assert_allclose(scores, store.get(found) @ unit(vecs[row]), atol=1e-5)
        assert np.all(np.diff(scores) <= 0)
    exact = store.search(vecs[0] + 0.1, 5)
    assert store.search(vecs[0] + 0.1, 5, exact=True)[0].tolist() == exact[0].tolist()


def test_compressed_path_with_all_candidates_equals_exact(backend: str) -> None:
    rng = np.random.default_rng(5)
    vecs = rng.standard_normal((300, 16)).astype(np.float32)
    store = VectorStore(16, rerank=300)
    store.add(np.arange(300), vecs)
    q = rng.standard_normal(16)
    np.testing.assert_array_equal(store.search(q, 8, exact=False)[0], store.search(q, 8)[0])


def test_threshold_switches_to_compressed_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = vectors_module._candidate_kernel()

    def spy(
        blocks: np.ndarray, ones: np.ndarray, n: int, query: np.ndarray, count: int
    ) -> np.ndarray:
        calls.append(count)
        return real(blocks, ones, n, query, count)

    monkeypatch.setattr(vectors_module, "_candidate_kernel", lambda: spy)
    rng = np.random.default_rng(6)
    store = VectorStore(8, binary_threshold=50, rerank=20)
    store.add(np.arange(40), rng.standard_normal((40, 8)))
    store.search(np.ones(8), 3)
    assert calls == []
    store.add(np.arange(40, 60), rng.standard_normal((20, 8)))
    store.search(np.ones(8), 3)
    assert calls == [20]
    store.search(np.ones(8), 3, exact=True)
    assert calls == [20]


def codes_of(vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The blocked sign codes and set-bit counts the store keeps for these vectors."""
    codes = vectors_module._sign_bytes(vecs)
    return vectors_module._to_blocks(codes), vectors_module._ones(codes)


def asymmetric_scores(vecs: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The numba kernel's score, computed the plain way: the sum of the 4-bit quantised query's
    levels over each code's set bits, plus the offset times the number of set bits (float32)."""
    levels, offset = vectors_module._quantise_query(query)
    bits = vecs > 0
    acc = bits.astype(np.int64) @ levels.astype(np.int64)
    return np.float32(acc) + offset * bits.sum(axis=1).astype(np.float32)


def assert_best_by(score: np.ndarray, got: np.ndarray, count: int) -> None:
    """``got`` is ``count`` distinct rows: every row scoring above the cut-off, then rows at it."""
    assert len(got) == len(set(got.tolist())) == count
    cutoff = np.sort(score)[::-1][count - 1]
    assert score[got].min() == cutoff
    assert set(np.flatnonzero(score > cutoff).tolist()) <= set(got.tolist())


def test_candidate_kernel_picks_the_best_by_its_score(backend: str) -> None:
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((5000, 100)).astype(np.float32)
    blocks, ones = codes_of(vecs)
    query = unit(rng.standard_normal(100)).astype(np.float32)
    got = vectors_module._candidate_kernel()(blocks, ones, 5000, query, 250)
    if backend == "numpy":  # Hamming distance between sign codes; ties go to lower rows
        dist = ((vecs > 0) != (query > 0)).sum(axis=1)
        expected = np.lexsort((np.arange(5000), dist))[:250]
        np.testing.assert_array_equal(np.sort(got), np.sort(expected))
    else:  # asymmetric, the query quantised to 16 levels: the best by that score, and nearly
        # the best by the float one
        assert_best_by(asymmetric_scores(vecs, query), got, 250)
        exact = (vecs > 0).astype(np.float64) @ query
        assert len(set(got.tolist()) & set(np.argsort(-exact)[:250].tolist())) >= 0.9 * 250


def _widths() -> list[int]:
    pytest.importorskip("numba")
    best = vectors_module._pshufb_width()
    return [0] + [w for w in (16, 32, 64) if w <= best]


@pytest.mark.parametrize("dim", [384, 100, 8, 1000])
def test_every_scan_width_returns_the_same_rows(dim: int) -> None:
    # The PSHUFB scans this CPU can run (16, 32, 64 bytes) and the portable build agree row for
    # row, on a row count that leaves the last block partly filled.
    rng = np.random.default_rng(dim)
    n = 64 * 37 + 23
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    blocks, ones = codes_of(vecs)
    queries = unit(rng.standard_normal((5, dim))).astype(np.float32)
    results = {}
    for width in _widths():
        kernel = vectors_module._build_numba_kernel(width)
        assert kernel is not None
        results[width] = [np.sort(kernel(blocks, ones, n, q, 100)) for q in queries]
    for q, got in zip(queries, results[0], strict=True):
        assert_best_by(asymmetric_scores(vecs, q), got, 100)
    for width, rows in results.items():
        for got, expected in zip(rows, results[0], strict=True):
            np.testing.assert_array_equal(got, expected, err_msg=f"width {width}")


def test_scan_width_follows_numba_cpu_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    numba = pytest.importorskip("numba")
    monkeypatch.setattr(numba.config, "CPU_NAME", "generic", raising=False)
    monkeypatch.setattr(numba.config, "CPU_FEATURES", "", raising=False)
    assert vectors_module._pshufb_width() == 0  # a named CPU without features: portable
    monkeypatch.setattr(numba.config, "CPU_FEATURES", "+sse2,+ssse3,-avx2", raising=False)
    assert vectors_module._pshufb_width() == 16
    monkeypatch.setattr(numba.config, "CPU_FEATURES", "+avx2,+ssse3", raising=False)
    assert vectors_module._pshufb_width() == 32


def first_pass() -> tuple[vectors_module.Kernel, int]:
    """The kernel in use and the candidates it hands on for ``rerank=60`` and ``k <= 15``."""
    kernel = vectors_module._candidate_kernel()
    numpy = kernel is vectors_module._hamming_candidates_numpy
    return kernel, 60 * (vectors_module._NUMPY_CANDIDATE_FACTOR if numpy else 1)


def test_codes_stay_in_step_with_adds_removes_and_shrinking(backend: str) -> None:
    # The blocked codes are kept in place on every write: after adds, removals (rows moved into
    # holes, across block boundaries), a shrink and more adds, the first pass returns what it
    # returns for codes built afresh from the stored vectors, and so does a store loaded back.
    rng = np.random.default_rng(11)
    dim = 72
    store = VectorStore(dim, binary_threshold=0, rerank=60)
    store.add(np.arange(3000), rng.standard_normal((3000, dim)))
    store.remove(rng.choice(3000, size=2500, replace=False).tolist())  # shrinks the arrays
    store.add(np.arange(5000, 5100), rng.standard_normal((100, dim)))
    store.remove(store.keys()[::7].tolist())
    store.add(np.arange(7000, 7013), rng.standard_normal((13, dim)))
    n = len(store)
    keys, stored = store.state()["keys"].copy(), store.state()["vectors"].copy()
    blocks, ones = codes_of(stored)
    np.testing.assert_array_equal(store._ones[:n], ones)
    np.testing.assert_array_equal(
        vectors_module._block_rows(store._blocks, np.arange(n)), vectors_module._sign_bytes(stored)
    )
    loaded = VectorStore.from_state(
        {"keys": keys, "vectors": stored}, binary_threshold=0, rerank=60
    )
    kernel, count = first_pass()
    for q in unit(rng.standard_normal((10, dim))).astype(np.float32):
        rows = kernel(blocks, ones, n, q, count)
        expected = keys[rows[np.argsort(-(stored[rows] @ q))[:15]]]
        for s in (store, loaded):
            assert set(s.search(q, 15)[0].tolist()) == set(expected.tolist())


def test_filtered_first_pass_scores_only_allowed_rows(backend: str) -> None:
    rng = np.random.default_rng(12)
    vecs = rng.standard_normal((4000, 48)).astype(np.float32)
    store = VectorStore(48, binary_threshold=0, rerank=60)
    store.add(np.arange(4000), vecs)
    store.remove(np.arange(0, 4000, 3).tolist())
    allowed = np.zeros(4000, dtype=bool)
    allowed[rng.choice(4000, size=2500, replace=False)] = True
    kernel, count = first_pass()
    ok = store.keys()[allowed[store.keys()]]  # in storage order, which ties at the cut-off follow
    stored = store.get(ok)
    blocks, ones = codes_of(stored)
    for q in unit(rng.standard_normal((5, 48))).astype(np.float32):
        rows = kernel(blocks, ones, len(ok), q, count)
        expected = ok[rows[np.argsort(-(stored[rows] @ q))[:12]]]
        assert set(store.search(q, 12, allowed=allowed)[0].tolist()) == set(expected.tolist())


def test_popcount_fallback_for_old_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(8).integers(0, 256, size=(50, 3), dtype=np.uint8)
    expected = np.array([[bin(int(v)).count("1") for v in row] for row in x])
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    out = np.empty(x.shape, dtype=np.uint8)
    vectors_module._popcount8(x, out)
    np.testing.assert_array_equal(out, expected)
    vectors_module._popcount8(x, x)  # in place
    np.testing.assert_array_equal(x, expected)


def test_state_round_trip(data: tuple[np.ndarray, np.ndarray], tmp_path: object) -> None:
    keys, vecs = data
    store = VectorStore(24)
    store.add(keys, vecs)
    store.remove(keys[:50])
    path = f"{tmp_path}/vectors.npz"
    np.savez(path, **store.state())
    with np.load(path, allow_pickle=False) as saved:
        loaded = VectorStore.from_state(dict(saved), rerank=50)
    assert loaded.rerank == 50
    assert len(loaded) == len(store)
    np.testing.assert_array_equal(loaded.keys(), store.keys())
    for q in np.random.default_rng(9).standard_normal((5, 24)):
        a, b = store.search(q, 10), loaded.search(q, 10)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_state_is_read_only() -> None:
    store = VectorStore(2)
    store.add([1], np.ones((1, 2)))
    state = store.state()
    assert state["keys"].dtype == np.int64
    assert state["vectors"].dtype == np.float32
    with pytest.raises(ValueError, match="read-only"):
        state["vectors"][0, 0] = 5.0


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"keys": np.arange(2)}, "vectors"),
        ({"keys": np.arange(2), "vectors": np.zeros((3, 4), np.float32)}, "2 vector keys but 3"),
        ({"keys": np.arange(2.0), "vectors": np.zeros((2, 4), np.float32)}, "integer"),
        ({"keys": np.arange(2), "vectors": np.zeros((2, 4), np.int32)}, "float"),
        ({"keys": np.arange(2), "vectors": np.zeros(8, np.float32)}, "2-D"),
        ({"keys": np.array([1, 1]), "vectors": np.zeros((2, 4), np.float32)}, "unique"),
        ({"keys": np.array([-1, 1]), "vectors": np.zeros((2, 4), np.float32)}, "negative"),
        ({"keys": np.arange(1), "vectors": np.full((1, 4), np.nan, np.float32)}, "NaN"),
        ({"keys": np.arange(1), "vectors": np.full((1, 4), 3.0, np.float32)}, "unit length"),
    ],
)
def test_bad_state_raises_index_format_error(state: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(IndexFormatError, match=message):
        VectorStore.from_state(state)


def test_memory_grows_with_content() -> None:
    store = VectorStore(32)
    empty = store.memory_bytes()
    store.add(range(1000), np.ones((1000, 32)))
    assert store.memory_bytes() >= empty + 1000 * 32 * 4


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="dim"):
        VectorStore(0)
    with pytest.raises(ValueError, match="rerank"):
        VectorStore(4, rerank=0)
    with pytest.raises(ValueError, match="binary_threshold"):
        VectorStore(4, binary_threshold=-1)


# -- float16 storage (half_from) -----------------------------------------------------------------


@pytest.mark.parametrize("exact", [True, False])
def test_float16_store_ranks_like_float32(backend: str, exact: bool) -> None:
    rng = np.random.default_rng(7)
    keys = np.arange(3000, dtype=np.int64)
    vecs = rng.standard_normal((3000, 48)).astype(np.float32)
    full = VectorStore(48, rerank=300)
    half = VectorStore(48, rerank=300, half_from=1000)
    full.add(keys, vecs)
    for start in range(0, 3000, 500):  # crosses half_from inside an add
        half.add(keys[start : start + 500], vecs[start : start + 500])
    assert full.dtype == np.float32
    assert half.dtype == np.float16
    assert half.memory_bytes() < full.memory_bytes()
    for q in rng.standard_normal((20, 48)).astype(np.float32):
        want_keys, want_scores = full.search(q, 10, exact=exact)
        got_keys, got_scores = half.search(q, 10, exact=exact)
        # Scores are cosines of the float16-rounded vectors: within 1e-3 of float32's.
        np.testing.assert_allclose(got_scores, full.get(got_keys) @ unit(q), atol=1e-3)
        assert len(set(got_keys.tolist()) & set(want_keys.tolist())) >= 9
        assert np.all(np.diff(got_scores) <= 0)
        if exact:
            np.testing.assert_allclose(got_scores, want_scores, atol=1e-3)


def test_float16_scores_agree_between_scan_and_rescoring(backend: str) -> None:
    """A row scores the same whether the exact scan or the re-scoring of candidates reads it."""
    rng = np.random.default_rng(8)
    store = VectorStore(64, rerank=2000, half_from=0)
    store.add(np.arange(2000), rng.standard_normal((2000, 64)).astype(np.float32))
    q = rng.standard_normal(64).astype(np.float32)
    exact_keys, exact_scores = store.search(q, 10, exact=True)
    # rerank >= n: the compressed path re-scores every row.
    keys, scores = store.search(q, 10, exact=False)
    np.testing.assert_array_equal(keys, exact_keys)
    np.testing.assert_array_equal(scores, exact_scores)


def test_float16_store_updates_and_state_round_trip(tmp_path: object) -> None:
    rng = np.random.default_rng(9)
    vecs = rng.standard_normal((600, 32)).astype(np.float32)
    store = VectorStore(32, half_from=100)
    store.add(np.arange(600), vecs)
    store.remove(range(0, 600, 3))
    store.add([1000], vecs[:1])
    state = store.state()
    assert state["vectors"].dtype == np.float16
    np.testing.assert_array_equal(store.get([1000])[0], state["vectors"][-1].astype(np.float32))
    assert store.get([1000]).dtype == np.float32
    loaded = VectorStore.from_state(state, half_from=100)
    assert loaded.dtype == np.float16
    np.testing.assert_array_equal(loaded.state()["vectors"], state["vectors"])
    for q in rng.standard_normal((5, 32)):
        for exact in (True, False):
            a, sa = store.search(q, 10, exact=exact)
            b, sb = loaded.search(q, 10, exact=exact)
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(sa, sb)
    # The same state read without half_from (as an older ragkit reads it) is float32.
    as_float32 = VectorStore.from_state(state)
    assert as_float32.dtype == np.float32
    np.testing.assert_array_equal(as_float32.get([1000]), store.get([1000]))


def test_float32_state_becomes_float16_at_half_from() -> None:
    rng = np.random.default_rng(10)
    full = VectorStore(16)
    full.add(np.arange(300), rng.standard_normal((300, 16)).astype(np.float32))
    assert VectorStore.from_state(full.state(), half_from=300).dtype == np.float16
    assert VectorStore.from_state(full.state(), half_from=301).dtype == np.float32


def test_half_from_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match=r"half_from \(-1\) must not be negative"):
        VectorStore(4, half_from=-1)


@pytest.mark.slow  # two processes compile or load numba kernels: 10-30 s here
def test_a_second_process_loads_the_kernels_from_numbas_cache(tmp_path: Path) -> None:
    # numba keys a kernel by its pickled closure; kernels closing over an intrinsic with a random
    # identity were compiled again (seconds) in every new process, adding a cache file each time.
    pytest.importorskip("numba")
    probe = (
        "from ragkit import vectors as v\n"
        "assert v._build_numba_kernel() is not None\n"
        "assert v._half_kernels() is not None\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "NUMBA_DEBUG_CACHE": "1"}

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
        )
        return done.stdout + done.stderr

    assert "data saved" in run()  # compiled once
    second = run()
    assert "data saved" not in second
    assert second.count("data loaded") == 3  # the first pass, the float16 scan and gather


@pytest.mark.slow  # a process compiles numba kernels for another CPU: ~10 s here
def test_float16_search_works_when_numba_targets_a_cpu_without_f16c(tmp_path: Path) -> None:
    # Compiled for a CPU without F16C, the half -> float conversion became a runtime call the
    # JIT did not link, and the first float16 search killed the process (SIGSEGV). Such a CPU
    # gets the numpy float16 path instead, with the same results.
    pytest.importorskip("numba")
    probe = (
        "import numpy as np\n"
        "from ragkit import vectors as v\n"
        "assert v._half_kernels() is None\n"
        "rng = np.random.default_rng(1)\n"
        "x = rng.standard_normal((500, 16)).astype(np.float32)\n"
        "store = v.VectorStore(16, half_from=0)\n"
        "store.add(np.arange(500), x)\n"
        "assert store.dtype == np.float16\n"
        "keys, scores = store.search(x[7], 3, exact=True)\n"
        "assert keys.tolist()[0] == 7, keys\n"
        "print('ok', scores.tolist()[0])\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "NUMBA_CPU_NAME": "generic"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok 0.99")


@pytest.mark.parametrize(
    ("half_from", "rows", "rescored"),
    [(None, 3000, 10), (0, 500, 10), (0, 3000, 30), (0, 9000, 40)],
)
def test_default_rerank_grows_with_a_float16_store(
    half_from: int | None, rows: int, rescored: int, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scaled down: 10 candidates for float32; for float16 one row in 100, from 10 up to 40.
    monkeypatch.setattr(vectors_module, "_RERANK", 10)
    monkeypatch.setattr(vectors_module, "_RERANK_HALF", 40)
    monkeypatch.setattr(vectors_module, "_RERANK_HALF_ROWS", 100)
    factor = vectors_module._NUMPY_CANDIDATE_FACTOR if backend == "numpy" else 1
    rng = np.random.default_rng(10)
    store = VectorStore(32, binary_threshold=0, half_from=half_from)
    store.add(np.arange(rows), rng.standard_normal((rows, 32)).astype(np.float32))
    seen: list[int] = []
    gather = store._gather_scores

    def counted(r: np.ndarray, q: np.ndarray) -> np.ndarray:
        seen.append(len(r))
        return gather(r, q)

    monkeypatch.setattr(store, "_gather_scores", counted)
    store.search(rng.standard_normal(32).astype(np.float32), 1)
    assert store.rerank is None
    assert seen == [rescored * factor]
    store.rerank = 7  # an explicit depth wins
    seen.clear()
    store.search(rng.standard_normal(32).astype(np.float32), 1)
    assert seen == [7 * factor]
