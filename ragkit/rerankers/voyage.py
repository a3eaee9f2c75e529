"""Voyage AI's hosted rerankers (``rerank-2.5``, ``rerank-2.5-lite``) over plain HTTP.

One ``POST /v1/rerank`` per query (up to 1,000 documents a request; more are split), through
``httpx2`` (already installed with ``anthropic``), so tests inject a mock transport and no
provider SDK is needed. 429 and 5xx replies and connection errors are retried with
exponential backoff (``Retry-After`` is honoured); other errors raise
:class:`~ragkit.rerankers.RerankError` with the provider's message.

Voyage bills rerankers by tokens: (query tokens x documents) + document tokens per request;
:data:`VOYAGE_RERANK_PRICES` holds the list prices, and :meth:`VoyageReranker.estimate_cost`
turns a query and candidates into an estimate (tiktoken counts, not Voyage's tokenizer).

This module leaves out the embedding side of Voyage (``ragkit.embedders``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx2

from ..embedders._http import PostFailure, post_json
from ..tokens import count_tokens
from ..types import ScoredChunk
from ._common import RerankError, passage_text

__all__ = [
    "DEFAULT_VOYAGE_MODEL",
    "VOYAGE_RERANK_PRICES",
    "VOYAGE_URL",
    "VoyageReranker",
]

DEFAULT_VOYAGE_MODEL = "rerank-2.5"
VOYAGE_URL = "https://api.voyageai.com/v1"
MAX_DOCUMENTS = 1000
"""Voyage's limit on documents per rerank request."""

VOYAGE_RERANK_PRICES: dict[str, float] = {"rerank-2.5": 0.05, "rerank-2.5-lite": 0.02}
"""USD per million tokens, from Voyage's pricing page (an estimate; the bill is the authority)."""


class VoyageReranker:
    """Voyage AI's reranker as a :class:`ragkit.base.Reranker`.

    Args:
        model: ``"rerank-2.5"`` (default) or ``"rerank-2.5-lite"`` (any model id is passed on).
        api_key: defaults to ``VOYAGE_API_KEY``.
        base_url: the API root.
        transport: an ``httpx2`` transport (tests pass ``httpx2.MockTransport``).
        max_retries: retries after a 429/5xx reply or a connection error.
        backoff: the first retry's wait in seconds, doubled each retry (with jitter).
        timeout: seconds per request.
        truncation: let Voyage truncate over-long documents instead of refusing them.
        sleep: how to wait between retries (tests pass a recorder).

    Raises:
        RerankError: no API key.
    """

    def __init__(
        self,
        model: str = DEFAULT_VOYAGE_MODEL,
        *,
        api_key: str | None = None,
        base_url: str = VOYAGE_URL,
        transport: httpx2.BaseTransport | None = None,
        max_retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 30.0,
        truncation: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model ({model!r}) must be a Voyage rerank model id")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries ({max_retries!r}) must be an integer >= 0")
        key = api_key or os.environ.get("VOYAGE_API_KEY")
        if not key:
            raise RerankError(
                "VOYAGE_API_KEY is not set: export VOYAGE_API_KEY=... (a key from "
                "dash.voyageai.com) or pass api_key=, or rerank with another reranker"
            )
        self.model = model
        self.name = f"voyage-{model}"
        self.max_retries = max_retries
        self.backoff = backoff
        self.truncation = truncation
        self._sleep = sleep
        self._client = httpx2.Client(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        self.total_tokens = 0
        """Tokens Voyage reported billing, summed over this reranker's requests."""

    def __repr__(self) -> str:
        return f"VoyageReranker(model={self.model!r})"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def rerank(self, query: str, candidates: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        """The candidates re-scored by Voyage's ``relevance_score`` (0..1), best first."""
        if not candidates:
            return []
        scored: list[ScoredChunk] = []
        for start in range(0, len(candidates), MAX_DOCUMENTS):
            part = candidates[start : start + MAX_DOCUMENTS]
            body = {
                "query": query,
                "documents": [passage_text(sc.chunk) for sc in part],
                "model": self.model,
                "truncation": self.truncation,
            }
            data = self._post("/rerank", body)
            usage = data.get("usage") if isinstance(data, dict) else None
            tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
            if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
                self.total_tokens += tokens  # a count, never a bool or a negative number
            for index, score in _parse(data, len(part)):
                sc = part[index]
                scored.append(ScoredChunk(sc.chunk, score, sc.scores))
        scored.sort(key=lambda sc: (-sc.score, sc.chunk.id))
        return scored

    def estimate_cost(self, query: str, candidates: Sequence[ScoredChunk]) -> float | None:
        """Estimated USD to rerank ``candidates`` for ``query`` (``None`` for an unpriced model).

        Tokens are counted with tiktoken's cl100k (Voyage's tokenizer differs: an estimate).
        """
        price = VOYAGE_RERANK_PRICES.get(self.model)
        if price is None:
            return None

        q = count_tokens(query)
        tokens = sum(q + count_tokens(passage_text(sc.chunk)) for sc in candidates)
        return tokens * price / 1_000_000

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            return post_json(
                self._client,
                path,
                body,
                max_retries=self.max_retries,
                backoff=self.backoff,
                sleep=self._sleep,
            )
        except PostFailure as failure:
            if failure.status is None:
                raise RerankError(
                    f"could not reach Voyage ({failure.detail}) after {failure.attempts} "
                    "attempts; check the network, or search without --rerank"
                ) from failure
            if failure.status == 200:
                raise RerankError("Voyage replied with a body that is not JSON") from failure
            raise _status_error(failure.status, failure.detail, failure.attempts) from None


def _status_error(code: int, detail: str, attempts: int) -> RerankError:
    if code in (401, 403):
        return RerankError(f"Voyage refused the API key ({code}: {detail}); check VOYAGE_API_KEY")
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    return RerankError(f"Voyage rerank failed with {code}{tried}: {detail}")


def _parse(data: Any, n: int) -> list[tuple[int, float]]:
    """``(candidate index, relevance score)`` pairs from a rerank reply, checked."""
    rows = data.get("data") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise RerankError("Voyage's rerank reply has no 'data' list")
    out: list[tuple[int, float]] = []
    for row in rows:
        index = row.get("index") if isinstance(row, dict) else None
        score = row.get("relevance_score") if isinstance(row, dict) else None
        if (
            isinstance(index, bool)
            or not isinstance(index, int)
            or not 0 <= index < n
            or not isinstance(score, (int, float))
        ):
            raise RerankError(f"Voyage's rerank reply has a malformed row: {row!r}")
        out.append((index, float(score)))
    if len({i for i, _ in out}) != n:
        raise RerankError(
            f"Voyage's rerank reply scored {len(out)} of {n} documents; expected all of them"
        )
    return out
