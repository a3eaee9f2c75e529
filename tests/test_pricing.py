"""ragkit.pricing: the dated table, cost of a call's usage, and the deployment arithmetic."""

from __future__ import annotations

import pytest

from ragkit.pricing import (
    PRICES,
    PRICES_AS_OF,
    ModelPrice,
    estimate_query_cost,
    price_for,
    register_price,
    usage_cost,
)


def test_design_example_three_chunks_of_500_tokens_on_haiku_3_5() -> None:
    # The design brief: 3 chunks x 500 tokens x $0.80 per million input tokens ~ $0.0012.
    est = estimate_query_cost(3 * 500, model="claude-3-5-haiku", queries_per_day=10_000)
    assert est.per_query == pytest.approx(0.0012)
    assert est.per_day == pytest.approx(12.0)
    assert est.per_month == pytest.approx(360.0)


def test_haiku_4_5_prices_and_cache_multipliers() -> None:
    p = price_for("claude-haiku-4-5")
    assert p is not None
    assert (p.input, p.output) == (1.0, 5.0)
    assert p.cache_write == pytest.approx(1.25 * p.input)
    assert p.cache_read == pytest.approx(0.1 * p.input)
    assert PRICES_AS_OF.count("-") == 2


def test_current_rows_follow_the_cache_multipliers() -> None:
    # Claude 3 Haiku's published cache write ($0.30) is rounded, so it is left out here.
    for model, p in PRICES.items():
        if model == "claude-3-haiku":
            continue
        assert p.cache_read == pytest.approx(0.1 * p.input), model
        assert p.cache_write == pytest.approx(1.25 * p.input), model


def test_dated_snapshot_ids_share_their_alias_price() -> None:
    assert price_for("claude-haiku-4-5-20251001") == price_for("claude-haiku-4-5")


def test_usage_cost_prices_each_token_kind() -> None:
    cost = usage_cost(
        "claude-haiku-4-5",
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_read_input_tokens=1_000_000,
        cache_creation_input_tokens=1_000_000,
    )
    assert cost == pytest.approx(1.0 + 5.0 + 0.10 + 1.25)


def test_unknown_model_costs_none_and_estimate_refuses() -> None:
    assert usage_cost("no-such-model", input_tokens=10) is None
    with pytest.raises(ValueError, match="register_price"):
        estimate_query_cost(100, model="no-such-model")


def test_prices_are_overridable_per_call_and_globally() -> None:
    table = {"my-model": ModelPrice.from_input_output(2.0, 8.0)}
    assert usage_cost("my-model", input_tokens=500_000, prices=table) == pytest.approx(1.0)
    assert usage_cost("my-model", input_tokens=1) is None
    register_price("ragkit-test-model", ModelPrice(0.5, 1.0, 0.625, 0.05))
    assert usage_cost("ragkit-test-model", input_tokens=2_000_000) == pytest.approx(1.0)


def test_cached_fraction_lowers_the_cost() -> None:
    cold = estimate_query_cost(10_000, model="claude-haiku-4-5")
    warm = estimate_query_cost(10_000, model="claude-haiku-4-5", cached_fraction=0.9)
    assert warm.per_query == pytest.approx(cold.per_query * (0.1 + 0.9 * 0.1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"context_tokens": -1}, "must be >= 0, got -1"),
        ({"context_tokens": 1, "cached_fraction": 1.5}, "cached_fraction .* between 0 and 1"),
    ],
)
def test_bad_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        estimate_query_cost(**kwargs)


def test_negative_prices_are_rejected() -> None:
    with pytest.raises(ValueError, match="input"):
        ModelPrice(-1.0, 1.0, 1.0, 1.0)
