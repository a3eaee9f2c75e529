"""What the hosted embedders share: one HTTP client, request batching, retries, cost estimates.

:class:`HostedEmbedder` sends texts to a provider's embeddings endpoint over plain HTTP
(``httpx2``, the client the anthropic SDK already installs; inject one with ``client=`` to add
a proxy, or a mock transport in tests). Requests are cut within the provider's limits on texts
and on tokens per request; tokens are counted with tiktoken's cl100k (OpenAI's own encoding;
an estimate for Voyage, so its budget keeps a margin). 429 and 5xx answers and transport
errors are retried with exponential backoff and jitter, honouring ``Retry-After``. Every
failure reaches the caller as an :class:`~ragkit.errors.EmbeddingError`, at index time and at
query time alike; a missing key is an :class:`EmbedderKeyError` raised before any request.

This module leaves out the providers' request and response shapes (``voyage.py``,
``openai.py``) and any concurrency: requests go one at a time.
"""

from __future__ import annotations

import importlib.util
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ragkit.errors import EmbeddingError, MissingDependencyError

from ._common import check_embeddings, check_query, check_texts, unit_rows

__all__ = [
    "EmbedderKeyError",
    "EmbeddingCost",
    "HostedEmbedder",
    "PostFailure",
    "post_json",
    "token_batches",
]

_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 529})


class PostFailure(Exception):
    """A POST that retries could not save; the caller words it as its own error.

    Attributes:
        detail: what went wrong (the transport error, or the provider's error text).
        status: the HTTP status, or ``None`` when no response came back.
        attempts: how many requests were sent.
    """

    def __init__(self, detail: str, *, status: int | None, attempts: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.attempts = attempts


def post_json(
    client: Any,
    url: str,
    body: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    max_retries: int,
    backoff: float,
    sleep: Callable[[float], None],
) -> Any:
    """POST ``body`` as JSON and return the decoded reply, retrying what a retry can fix.

    Connection errors, timeouts and 408/409/429/5xx replies are retried up to ``max_retries``
    times with exponential backoff and jitter (``backoff`` x 2^attempt x 0.5–1), at least the
    reply's ``Retry-After`` seconds, at most 60 s. Every hosted provider ragkit talks to
    (embedders, rerankers) goes through here.

    Raises:
        PostFailure: an error status that is not retried, retries exhausted, or a 200 whose
            body is not JSON.
    """
    attempt = 0
    while True:
        retry_after: float | None = None
        try:
            response = client.post(url, json=body, headers=headers)
        except Exception as exc:  # httpx2.TransportError and timeouts
            if attempt >= max_retries:
                raise PostFailure(
                    f"{type(exc).__name__}: {exc}", status=None, attempts=attempt + 1
                ) from exc
        else:
            if response.status_code == 200:
                try:
                    return response.json()
                except ValueError as exc:
                    raise PostFailure(
                        "the answer is not JSON",
                        status=200,
                        attempts=attempt + 1,
                    ) from exc
            if response.status_code not in _RETRY_STATUS or attempt >= max_retries:
                raise PostFailure(
                    _error_message(response),
                    status=response.status_code,
                    attempts=attempt + 1,
                )
            retry_after = _retry_after(response.headers.get("retry-after"))
        delay = backoff * (2**attempt) * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        sleep(min(delay, 60.0))
        attempt += 1


class EmbedderKeyError(EmbeddingError):
    """A hosted embedder's API key is not set; the message names the environment variable."""


@dataclass(frozen=True, slots=True)
class EmbeddingCost:
    """An estimate of what embedding some texts costs, before sending them.

    Attributes:
        model: the provider's model id.
        texts: how many texts.
        tokens: their tokens (cl100k: exact for OpenAI, an estimate for Voyage).
        usd: tokens x the model's price, or ``None`` when the model has no price in
            :mod:`ragkit.pricing`.
        requests: how many HTTP requests the texts need.
    """

    model: str
    texts: int
    tokens: int
    usd: float | None
    requests: int


def token_batches(counts: Sequence[int], *, max_items: int, max_tokens: int) -> list[range]:
    """Consecutive runs of texts with at most ``max_items`` texts and ``max_tokens`` tokens.

    A text over ``max_tokens`` on its own gets a run of its own (the provider truncates or
    refuses it). Order is kept: providers pad nothing, so sorting would gain nothing.

    Example:
        >>> token_batches([5, 5, 5, 20, 1], max_items=2, max_tokens=12)
        [range(0, 2), range(2, 3), range(3, 4), range(4, 5)]
    """
    runs: list[range] = []
    start, tokens = 0, 0
    for i, count in enumerate(counts):
        if i > start and (i - start >= max_items or tokens + count > max_tokens):
            runs.append(range(start, i))
            start, tokens = i, 0
        tokens += count
    if start < len(counts):
        runs.append(range(start, len(counts)))
    return runs


class HostedEmbedder:
    """Base of the hosted embedders: subclasses set the class attributes and two methods.

    Subclass attributes: ``family`` (registry family), ``env_key`` (API key variable),
    ``extra`` (pip extra), ``default_url``, ``max_items`` and ``max_request_tokens`` (per
    request), ``token_margin`` (share of ``max_request_tokens`` used, below 1 when tokens are
    estimated). Subclasses implement :meth:`_payload` and may override :meth:`_prepare`.
    """

    family = ""
    env_key = ""
    extra = ""
    default_url = ""
    max_items = 1
    max_request_tokens = 1
    token_margin = 1.0
    max_input_tokens = 8192

    def __init__(
        self,
        model: str,
        dim: int,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        client: Any = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim ({dim!r}) must be a positive integer")
        if max_retries < 0:
            raise ValueError(f"max_retries ({max_retries}) must be >= 0")
        self.model = model
        self.dim = dim
        self.name = f"{self.family}/{model}/{dim}"
        self.batch_size = self.max_items
        self.base_url = (base_url or self.default_url).rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._api_key = api_key
        self._client = client
        self._sleep = sleep
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model!r}, dim={self.dim})"

    # -- provider specifics (overridden) -------------------------------------------------------

    def _payload(self, texts: list[str], input_type: str) -> dict[str, Any]:
        """The JSON body embedding ``texts`` (``input_type`` is "document" or "query")."""
        raise NotImplementedError

    def _prepare(self, texts: list[str]) -> tuple[list[str], list[int]]:
        """The texts as sent and their token counts (OpenAI truncates here; Voyage server-side)."""
        from ragkit.tokens import count_tokens

        return texts, [count_tokens(t) for t in texts]

    # -- shared machinery ----------------------------------------------------------------------

    def _key(self) -> str:
        key = self._api_key or os.environ.get(self.env_key)
        if not key:
            raise EmbedderKeyError(
                f"{self.env_key} is not set: export {self.env_key}=... (or pass api_key=) to "
                f"use {self.name}"
            )
        return key

    def _http(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    import httpx2
                except ImportError as exc:
                    raise MissingDependencyError(
                        f"{self.family} embedders need the '{self.extra}' extra:\n"
                        f"    pip install 'ragkit-claude[{self.extra}]'"
                    ) from exc
                self._client = httpx2.Client(timeout=self.timeout)
            return self._client

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to the embeddings endpoint, retrying what a retry can fix."""
        headers = {"Authorization": f"Bearer {self._key()}", "Content-Type": "application/json"}
        url = f"{self.base_url}/embeddings"
        try:
            data: dict[str, Any] = post_json(
                self._http(),
                url,
                body,
                headers=headers,
                max_retries=self.max_retries,
                backoff=self.backoff,
                sleep=self._sleep,
            )
        except PostFailure as failure:
            if failure.status is None:
                raise EmbeddingError(
                    f"{self.name}: no answer from {url} after {failure.attempts} tries: "
                    f"{failure.detail}"
                ) from failure
            if failure.status == 200:
                raise EmbeddingError(f"{self.name}: {failure.detail}") from failure
            hint = f" (check {self.env_key})" if failure.status == 401 else ""
            tries = f" after {failure.attempts} tries" if failure.attempts > 1 else ""
            raise EmbeddingError(
                f"{self.name}: HTTP {failure.status}: {failure.detail}{hint}{tries}"
            ) from None
        return data

    def _embed(self, texts: list[str], input_type: str) -> np.ndarray:
        sent, counts = self._prepare(texts)
        budget = int(self.max_request_tokens * self.token_margin)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for run in token_batches(counts, max_items=self.max_items, max_tokens=budget):
            data = self._post(self._payload(sent[run.start : run.stop], input_type))
            out[run.start : run.stop] = self._vectors(data, len(run))
        return out

    def _vectors(self, data: dict[str, Any], n: int) -> np.ndarray:
        """The ``data[i].embedding`` rows of an answer, in ``index`` order, checked."""
        try:
            items = sorted(data["data"], key=lambda item: item["index"])
            rows = [item["embedding"] for item in items]
        except (KeyError, TypeError) as exc:
            raise EmbeddingError(f"{self.name}: unexpected answer shape ({exc!r})") from exc
        return unit_rows(check_embeddings(rows, n=n, dim=self.dim))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """A ``(len(texts), dim)`` float32 matrix of unit rows, embedded as documents.

        Raises:
            TypeError: ``texts`` is a single string or holds a non-string.
            EmbedderKeyError: the API key is not set.
            EmbeddingError: the provider refused, failed after the retries, or answered with
                vectors of the wrong shape.
        """
        batch = check_texts(texts)
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._embed(batch, "document")

    def embed_query(self, text: str) -> np.ndarray:
        """A ``(dim,)`` float32 unit vector for one query, embedded as a query."""
        row: np.ndarray = self._embed([check_query(text)], "query")[0]
        return row

    def estimate_cost(self, texts: Sequence[str]) -> EmbeddingCost:
        """What embedding ``texts`` as documents would cost, without sending anything.

        Example:
            >>> from ragkit.embedders.openai import OpenAIEmbedder
            >>> OpenAIEmbedder().estimate_cost(["hello world"] * 1000).usd
            4e-05
        """
        from ragkit.pricing import embedding_cost

        batch = check_texts(texts)
        _, counts = self._prepare(batch)
        budget = int(self.max_request_tokens * self.token_margin)
        runs = token_batches(counts, max_items=self.max_items, max_tokens=budget)
        tokens = sum(counts)
        usd = embedding_cost(self.model, tokens)
        return EmbeddingCost(self.model, len(batch), tokens, usd, len(runs))


def _error_message(response: Any) -> str:
    """The provider's error text (OpenAI: ``error.message``; Voyage: ``detail``), else raw."""
    try:
        body = response.json()
    except ValueError:
        return str(response.text)[:300]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if "detail" in body:
            return str(body["detail"])
    return str(body)[:300]


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds (dates are ignored)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def httpx_available() -> bool:
    """Whether ``httpx2`` is installed (looks for it without importing)."""
    return importlib.util.find_spec("httpx2") is not None
