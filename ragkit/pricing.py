"""What a Claude call costs: a dated per-model price table and the arithmetic on top of it.

Prices are USD per million tokens, copied from Anthropic's pricing page
(https://docs.anthropic.com/en/docs/about-claude/pricing) on :data:`PRICES_AS_OF`. Every cost
ragkit reports is an *estimate* from this table: the bill is the authority, prices change, and
ragkit's token counts before a call come from tiktoken's cl100k, not Claude's tokenizer.

Prompt caching bills a 5-minute cache write at 1.25x the input price and a cache read at 0.1x
(the pricing page's multipliers); the table stores both explicitly so a model with other rates
can be registered as it is.

This module leaves out token counting, the API call and any network access.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "EMBEDDING_PRICES",
    "EMBEDDING_PRICES_AS_OF",
    "PRICES",
    "PRICES_AS_OF",
    "CostEstimate",
    "ModelPrice",
    "embedding_cost",
    "estimate_query_cost",
    "price_for",
    "register_price",
    "usage_cost",
]

PRICES_AS_OF = "2025-11-01"
"""The date the built-in table was checked against Anthropic's pricing page."""

CACHE_WRITE_MULTIPLIER = 1.25
"""5-minute cache writes cost 1.25x the base input price (Anthropic pricing page)."""

CACHE_READ_MULTIPLIER = 0.1
"""Cache hits cost 0.1x the base input price (Anthropic pricing page)."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens for one model.

    Attributes:
        input: base input tokens.
        output: output tokens.
        cache_write: 5-minute cache writes (``cache_creation_input_tokens``).
        cache_read: cache hits (``cache_read_input_tokens``).
    """

    input: float
    output: float
    cache_write: float
    cache_read: float

    def __post_init__(self) -> None:
        # Prices come from users and config files: NaN would pass "< 0" and poison every cost.
        for name in ("input", "output", "cache_write", "cache_read"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(
                    f"ModelPrice.{name} ({value!r}) must be a finite number >= 0 (USD per "
                    "million tokens)"
                )

    @classmethod
    def from_input_output(cls, input_price: float, output_price: float) -> ModelPrice:
        """A price whose cache rates follow the standard 1.25x / 0.1x multipliers.

        Example:
            >>> ModelPrice.from_input_output(1.0, 5.0).cache_write
            1.25
        """
        return cls(
            input=input_price,
            output=output_price,
            cache_write=round(input_price * CACHE_WRITE_MULTIPLIER, 6),
            cache_read=round(input_price * CACHE_READ_MULTIPLIER, 6),
        )


def _p(inp: float, out: float, cache_write: float, cache_read: float) -> ModelPrice:
    return ModelPrice(input=inp, output=out, cache_write=cache_write, cache_read=cache_read)


# Aliases and dated snapshot ids map to the same row; lookups also strip a "-YYYYMMDD" suffix.
_BUILTIN: dict[str, ModelPrice] = {
    "claude-haiku-4-5": _p(1.00, 5.00, 1.25, 0.10),
    # Claude 3.5 Haiku: the "$0.80 per million input tokens" in ragkit's design brief.
    "claude-3-5-haiku": _p(0.80, 4.00, 1.00, 0.08),
    "claude-3-5-haiku-latest": _p(0.80, 4.00, 1.00, 0.08),
    "claude-3-haiku": _p(0.25, 1.25, 0.30, 0.03),
    "claude-sonnet-4-5": _p(3.00, 15.00, 3.75, 0.30),
    "claude-sonnet-4": _p(3.00, 15.00, 3.75, 0.30),
    "claude-3-7-sonnet": _p(3.00, 15.00, 3.75, 0.30),
    "claude-opus-4-5": _p(5.00, 25.00, 6.25, 0.50),
    "claude-opus-4-1": _p(15.00, 75.00, 18.75, 1.50),
    "claude-opus-4": _p(15.00, 75.00, 18.75, 1.50),
}

_lock = threading.Lock()
_registry: dict[str, ModelPrice] = dict(_BUILTIN)

PRICES: Mapping[str, ModelPrice] = _registry
"""The live table (read it; change it with :func:`register_price`)."""


def register_price(model: str, price: ModelPrice) -> None:
    """Add or replace the price of ``model`` for every later cost estimate in this process.

    Example:
        >>> register_price("my-proxy-model", ModelPrice.from_input_output(0.5, 2.0))
    """
    if not model:
        raise ValueError("model must be a non-empty string")
    with _lock:
        _registry[model] = price


def _strip_date(model: str) -> str:
    # "claude-haiku-4-5-20251001" -> "claude-haiku-4-5": snapshots share their alias's price.
    head, sep, tail = model.rpartition("-")
    if sep and len(tail) == 8 and tail.isdigit():
        return head
    return model


def price_for(model: str, prices: Mapping[str, ModelPrice] | None = None) -> ModelPrice | None:
    """The price of ``model`` (exact id, then without a ``-YYYYMMDD`` suffix), or ``None``.

    Args:
        model: the model id as sent to the API.
        prices: a table to use instead of the registry (for one call, without global state).

    Example:
        >>> price_for("claude-haiku-4-5-20251001").input
        1.0
    """
    table = _registry if prices is None else prices
    found = table.get(model)
    if found is None:
        found = table.get(_strip_date(model))
    return found


def usage_cost(
    model: str,
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    prices: Mapping[str, ModelPrice] | None = None,
) -> float | None:
    """Estimated USD for one call's usage, or ``None`` when the model has no price.

    ``input_tokens`` is the API's uncached input; cache reads and writes are billed separately
    at their own rates (the API reports them separately, and their sum is the total input).

    Example:
        >>> usage_cost("claude-haiku-4-5", input_tokens=1_000_000, output_tokens=200_000)
        2.0
    """
    price = price_for(model, prices)
    if price is None:
        return None
    total = (
        input_tokens * price.input
        + output_tokens * price.output
        + cache_read_input_tokens * price.cache_read
        + cache_creation_input_tokens * price.cache_write
    ) / 1_000_000
    return round(total, 10)


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """A deployment cost model: per query, per day and per 30-day month, in USD.

    Attributes:
        model: the model priced.
        context_tokens: input tokens per query (retrieved context plus prompt).
        output_tokens: output tokens per query.
        queries_per_day: queries per day.
        per_query: USD per query.
        per_day: USD per day.
        per_month: USD per 30 days.
    """

    model: str
    context_tokens: int
    output_tokens: int
    queries_per_day: int
    per_query: float
    per_day: float
    per_month: float


def estimate_query_cost(
    context_tokens: int,
    *,
    queries_per_day: int = 1,
    model: str = "claude-haiku-4-5",
    output_tokens: int = 0,
    cached_fraction: float = 0.0,
    prices: Mapping[str, ModelPrice] | None = None,
) -> CostEstimate:
    """Model a deployment: context tokens per query x queries per day x price.

    This is ragkit's design arithmetic: 3 chunks of 500 tokens on Claude 3.5 Haiku at
    $0.80 per million input tokens cost 1,500 x 0.80 / 1e6 = $0.0012 per query.

    Args:
        context_tokens: input tokens sent per query.
        queries_per_day: how many queries a day.
        model: a model in the price table.
        output_tokens: output tokens per query (0 to price the context alone, as the design does).
        cached_fraction: the share of context tokens read from the prompt cache (0..1).
        prices: a table to use instead of the registry.

    Raises:
        ValueError: negative counts, a fraction outside [0, 1], or a model with no price.

    Example:
        >>> round(estimate_query_cost(3 * 500, model="claude-3-5-haiku").per_query, 6)
        0.0012
    """
    if context_tokens < 0 or output_tokens < 0 or queries_per_day < 0:
        raise ValueError(
            "context_tokens, output_tokens and queries_per_day must be >= 0, got "
            f"{context_tokens}, {output_tokens}, {queries_per_day}"
        )
    if not 0.0 <= cached_fraction <= 1.0:
        raise ValueError(f"cached_fraction ({cached_fraction}) must be between 0 and 1")
    cached = round(context_tokens * cached_fraction)
    per_query = usage_cost(
        model,
        input_tokens=context_tokens - cached,
        cache_read_input_tokens=cached,
        output_tokens=output_tokens,
        prices=prices,
    )
    if per_query is None:
        known = ", ".join(sorted((_registry if prices is None else prices).keys()))
        raise ValueError(
            f"model {model!r} has no price; register one with ragkit.pricing.register_price() "
            f"or pick one of: {known}"
        )
    return CostEstimate(
        model=model,
        context_tokens=context_tokens,
        output_tokens=output_tokens,
        queries_per_day=queries_per_day,
        per_query=per_query,
        per_day=round(per_query * queries_per_day, 10),
        per_month=round(per_query * queries_per_day * 30, 10),
    )


# -- hosted embedders --------------------------------------------------------------------------

EMBEDDING_PRICES_AS_OF = "2026-11-25"
"""The date the embedding prices were copied from OpenAI's and Voyage AI's pricing pages."""

EMBEDDING_PRICES: Mapping[str, float] = {
    # OpenAI, USD per million input tokens.
    "text-embedding-3-small": 0.02,
    "text-embedding-3-large": 0.13,
    # Voyage AI's voyage-4 family (before its free-token allowance).
    "voyage-4-large": 0.12,
    "voyage-4": 0.06,
    "voyage-4-lite": 0.02,
}
"""USD per million tokens embedded, per hosted embedding model (estimates: the bill decides)."""


def embedding_cost(model: str, tokens: int) -> float | None:
    """Estimated USD to embed ``tokens`` tokens with ``model``, or ``None`` without a price.

    Example:
        >>> embedding_cost("text-embedding-3-small", 1_000_000)
        0.02
    """
    if tokens < 0:
        raise ValueError(f"tokens ({tokens}) must be >= 0")
    price = EMBEDDING_PRICES.get(model)
    return None if price is None else round(tokens * price / 1_000_000, 10)
