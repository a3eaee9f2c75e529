"""Fusion against hand-built rankings with hand-computed scores."""

from __future__ import annotations

import math

import pytest

from ragkit.fusion import fuse, minmax_fusion, reciprocal_rank_fusion, zscore_fusion

BM25 = [("a", 12.0), ("b", 8.0), ("c", 2.0)]
DENSE = [("c", 0.9), ("a", 0.5), ("d", 0.1)]


def test_rrf_hand_computed() -> None:
    fused = dict(reciprocal_rank_fusion([BM25, DENSE], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["d"] == pytest.approx(1 / 63)
    assert [i for i, _ in reciprocal_rank_fusion([BM25, DENSE], k=60)] == ["a", "c", "b", "d"]


def test_rrf_ignores_score_scale_and_honours_weights() -> None:
    scaled = [(i, s * 1000) for i, s in BM25]
    assert reciprocal_rank_fusion([BM25, DENSE]) == reciprocal_rank_fusion([scaled, DENSE])
    only_dense = reciprocal_rank_fusion([BM25, DENSE], weights=[0.0, 1.0])
    assert [i for i, _ in only_dense][:3] == ["c", "a", "d"]


def test_minmax_hand_computed() -> None:
    fused = dict(minmax_fusion([BM25, DENSE], weights=[0.5, 0.5]))
    # bm25 normalised: a 1, b 0.6, c 0; dense: c 1, a 0.5, d 0; unlisted gets 0.
    assert fused["a"] == pytest.approx(0.5 * 1 + 0.5 * 0.5)
    assert fused["b"] == pytest.approx(0.5 * 0.6)
    assert fused["c"] == pytest.approx(0.5 * 0 + 0.5 * 1)
    assert fused["d"] == pytest.approx(0.0)


def test_zscore_hand_computed() -> None:
    fused = dict(zscore_fusion([BM25, DENSE]))
    m1, s1 = 22 / 3, math.sqrt(((12 - 22 / 3) ** 2 + (8 - 22 / 3) ** 2 + (2 - 22 / 3) ** 2) / 3)
    m2, s2 = 0.5, math.sqrt((0.4**2 + 0 + 0.4**2) / 3)
    z = {
        ("1", "a"): (12 - m1) / s1,
        ("1", "b"): (8 - m1) / s1,
        ("1", "c"): (2 - m1) / s1,
        ("2", "c"): (0.9 - m2) / s2,
        ("2", "a"): 0.0,
        ("2", "d"): (0.1 - m2) / s2,
    }
    floor1, floor2 = z[("1", "c")], z[("2", "d")]
    assert fused["a"] == pytest.approx(z[("1", "a")] + z[("2", "a")])
    assert fused["b"] == pytest.approx(z[("1", "b")] + floor2)
    assert fused["d"] == pytest.approx(floor1 + z[("2", "d")])


def test_ties_break_by_id_and_degenerate_lists() -> None:
    assert fuse([[("b", 1.0)], [("a", 1.0)]], "rrf") == [("a", 1 / 61), ("b", 1 / 61)]
    assert minmax_fusion([[("x", 3.0), ("y", 3.0)]]) == [("x", 1.0), ("y", 1.0)]
    assert zscore_fusion([[("x", 3.0)]]) == [("x", 1.0)]
    # a lone hit in one ranking counts as the top of that ranking (+1), not its middle: the
    # only keyword match ties with the best vector match it lost to on the vector side
    lone = dict(zscore_fusion([[("x", 3.0)], [("y", 0.9), ("x", 0.1)]]))
    assert lone["x"] == pytest.approx(1.0 + -1.0)
    assert lone["y"] == pytest.approx(-1.0 + 1.0)
    both = zscore_fusion([[("x", 3.0)], [("y", 0.9), ("x", 0.5), ("z", 0.4)]])
    assert both[0][0] == "x"  # a middling cosine plus the lone keyword hit wins
    assert fuse([[], []], "minmax") == []


@pytest.mark.parametrize("method", ["rrf", "minmax", "zscore"])
def test_every_method_keeps_every_id_once(method: str) -> None:
    fused = fuse([BM25, DENSE], method)  # type: ignore[arg-type]
    assert sorted(i for i, _ in fused) == ["a", "b", "c", "d"]
    scores = [s for _, s in fused]
    assert scores == sorted(scores, reverse=True)


def test_bad_arguments_name_the_rule() -> None:
    with pytest.raises(ValueError, match="one weight per ranking"):
        fuse([BM25, DENSE], "rrf", weights=[1.0])
    with pytest.raises(ValueError, match="non-negative"):
        minmax_fusion([BM25], weights=[-1.0])
    with pytest.raises(ValueError, match="not one of rrf, minmax, zscore"):
        fuse([BM25], "borda")  # type: ignore[arg-type]
