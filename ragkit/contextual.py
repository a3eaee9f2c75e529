"""Contextual retrieval (Anthropic's method): Claude situates each chunk in its document.

At index time, for every chunk, Claude (Haiku by default) writes one or two sentences that
place the chunk in its whole document ("This section of the 2023 refund policy covers ...").
The indexed text, both keyword and vector, becomes that context followed by the chunk; the
chunk itself, the text sent for answering and cited, is unchanged.

- The document goes first in the request with ``cache_control``, so every chunk of one
  document after the first reads it from the prompt cache (Haiku 4.5 caches nothing below
  4,096 tokens: short documents are simply re-sent, which the estimate assumes).
- Jobs of at least ``batch_threshold`` requests go through the Message Batches API (50 %
  cheaper, results within 24 h); the batch is polled until ``processing_status`` is
  ``"ended"``. Requests that errored or expired are retried once one by one; a chunk whose
  context still fails is indexed without context (logged), never dropped.
- Results are cached in a JSON Lines file keyed by (document hash, chunk ordinal, chunk text
  hash, model), so re-indexing unchanged files makes no request.
- :meth:`Contextualizer.estimate` prices a job before it runs, from the pricing table and
  tiktoken counts: an *estimate* (Claude's tokenizer differs; the bill is the authority).

This module leaves out chunking and indexing (``ragkit.index`` calls it through
``Index.add(..., contextualizer=)``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .errors import MissingAPIKeyError, RagkitError
from .pricing import price_for
from .tokens import count_tokens
from .types import Chunk, Document

__all__ = [
    "CHUNK_PROMPT",
    "DEFAULT_CONTEXT_MODEL",
    "ContextCost",
    "ContextualizeError",
    "Contextualizer",
    "SupportsContextualize",
    "cache_path_for",
    "contextualized_texts",
]

logger = logging.getLogger("ragkit")

DEFAULT_CONTEXT_MODEL = "claude-haiku-4-5"

DOCUMENT_PROMPT = "<document>\n{document}\n</document>"
CHUNK_PROMPT = """Here is the chunk we want to situate within the whole document
<chunk>
{chunk}
</chunk>

Please give a short succinct context to situate this chunk within the overall document for \
the purposes of improving search retrieval of the chunk. Answer only with the succinct context \
and nothing else."""
"""Anthropic's contextual retrieval prompt (from its published cookbook)."""

BATCH_DISCOUNT = 0.5
"""Message Batches bill every token at half price."""


class ContextualizeError(RagkitError):
    """Claude could not write chunk contexts: the API failed or the batch did not finish."""


@runtime_checkable
class SupportsContextualize(Protocol):
    """Anything that writes one context string per chunk of a document."""

    def contextualize(self, document: Document, chunks: Sequence[Chunk]) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class ContextCost:
    """What a contextualization job would cost, estimated before it runs.

    Attributes:
        model: the model priced.
        requests: chunk contexts to write (cache hits excluded).
        cached: chunk contexts already in the cache (free).
        document_tokens: estimated tokens of the documents involved (each counted once).
        input_tokens: estimated input tokens over all requests, before prompt caching.
        output_tokens: estimated output tokens (``max_tokens`` x requests: an upper bound).
        batch: whether the Message Batches API will be used.
        usd: the estimated cost in USD (``None`` for a model with no price).
    """

    model: str
    requests: int
    cached: int
    document_tokens: int
    input_tokens: int
    output_tokens: int
    batch: bool
    usd: float | None

    def describe(self) -> str:
        """One line for a confirmation prompt."""
        how = "Message Batches (50% off)" if self.batch else "one request per chunk"
        cost = f"~${self.usd:.4f}" if self.usd is not None else "an unknown price"
        return (
            f"{self.requests} chunk contexts to write with {self.model} via {how} "
            f"({self.cached} cached): ~{self.input_tokens:,} input and <= {self.output_tokens:,} "
            f"output tokens, {cost} (estimate)"
        )


Item = tuple[Document, Sequence[Chunk]]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Contextualizer:
    """Writes chunk contexts with Claude, cached, batched for large jobs.

    Args:
        client: an ``anthropic.Anthropic``; by default one is made from ``ANTHROPIC_API_KEY``.
        model: the model id (Haiku 4.5 by default).
        cache_path: the JSON Lines cache file (``None``: no cache).
        batch: ``"auto"`` (batches from ``batch_threshold`` requests), ``True`` or ``False``.
        batch_threshold: the job size from which ``"auto"`` uses the Message Batches API.
        max_tokens: the most output tokens per context.
        poll_interval: seconds between batch status polls.
        timeout: seconds to wait for a batch before giving up (the batch is cancelled).
        sleep: how to wait between polls (tests pass a recorder).
        confirm: called with the job's :class:`ContextCost` before any request; returning
            ``False`` cancels (``ContextualizeError``, nothing indexed). The CLI asks here.

    Raises:
        MissingAPIKeyError: no ``client`` and no ``ANTHROPIC_API_KEY``.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        model: str = DEFAULT_CONTEXT_MODEL,
        cache_path: str | Path | None = None,
        batch: bool | str = "auto",
        batch_threshold: int = 200,
        max_tokens: int = 200,
        poll_interval: float = 30.0,
        timeout: float = 24 * 3600.0,
        sleep: Callable[[float], None] = time.sleep,
        confirm: Callable[[ContextCost], bool] | None = None,
    ) -> None:
        if batch not in ("auto", True, False):
            raise ValueError(f"batch ({batch!r}) must be 'auto', True or False")
        if not isinstance(model, str) or not model:
            raise ValueError(f"model ({model!r}) must be a model id such as 'claude-haiku-4-5'")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens ({max_tokens!r}) must be an integer >= 1")
        if client is None:
            if not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
                raise MissingAPIKeyError(
                    "contextual retrieval asks Claude to situate each chunk: export "
                    "ANTHROPIC_API_KEY=... (or pass client=), or index without --contextualize"
                )
            import anthropic

            client = anthropic.Anthropic()
        self.client = client
        self.model = model
        self.batch = batch
        self.batch_threshold = batch_threshold
        self.max_tokens = max_tokens
        self.poll_interval = poll_interval
        self.timeout = timeout
        self._sleep = sleep
        self.confirm = confirm
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self._cache: dict[str, str] = {}
        self._lock = threading.Lock()
        self.requests_made = 0
        """Messages requests (single or in batches) sent by this contextualizer."""
        if self.cache_path is not None and self.cache_path.exists():
            self._load_cache(self.cache_path)

    # -- cache ---------------------------------------------------------------------------------

    def _key(self, document: Document, ordinal: int, chunk: Chunk) -> str:
        return _sha(f"{document.content_hash}\0{ordinal}\0{_sha(chunk.text)}\0{self.model}")

    def _load_cache(self, path: Path) -> None:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                row = json.loads(line)
                self._cache[str(row["key"])] = str(row["context"])
            except (ValueError, KeyError, TypeError):
                logger.warning("%s:%d: unreadable cache line skipped", path, lineno)

    def _store(self, found: dict[str, str]) -> None:
        with self._lock:
            self._cache.update(found)
            if self.cache_path is None or not found:
                return
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with self.cache_path.open("a", encoding="utf-8") as f:
                for key, context in found.items():
                    f.write(json.dumps({"key": key, "context": context}) + "\n")

    # -- requests ------------------------------------------------------------------------------

    def _params(self, document: Document, chunk: Chunk) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": DOCUMENT_PROMPT.format(document=document.text),
                            "cache_control": {"type": "ephemeral"},
                        },
                        {"type": "text", "text": CHUNK_PROMPT.format(chunk=chunk.text)},
                    ],
                }
            ],
        }

    def _pending(self, items: Sequence[Item]) -> tuple[dict[str, tuple[Document, Chunk]], int]:
        todo: dict[str, tuple[Document, Chunk]] = {}
        cached = 0
        for document, chunks in items:
            for ordinal, chunk in enumerate(chunks):
                key = self._key(document, ordinal, chunk)
                if key in self._cache:
                    cached += 1
                else:
                    todo.setdefault(key, (document, chunk))
        return todo, cached

    def _use_batch(self, n: int) -> bool:
        return self.batch is True or (self.batch == "auto" and n >= self.batch_threshold)

    def estimate(self, items: Sequence[Item]) -> ContextCost:
        """The estimated cost of contextualizing ``items`` (``(document, chunks)`` pairs).

        Every request sends its document and chunk; the first request of a document writes the
        document to the prompt cache (1.25x) when it is long enough to cache, later ones read it
        (0.1x). Output is counted at ``max_tokens`` per context, an upper bound.
        """

        todo, cached = self._pending(items)
        per_doc: dict[str, list[Chunk]] = {}
        docs: dict[str, Document] = {}
        for document, chunk in todo.values():
            per_doc.setdefault(document.id, []).append(chunk)
            docs[document.id] = document
        prompt = count_tokens(CHUNK_PROMPT.format(chunk=""))
        doc_tokens = plain = write = read = 0
        for doc_id, chunks in per_doc.items():
            d = count_tokens(DOCUMENT_PROMPT.format(document=docs[doc_id].text))
            doc_tokens += d
            plain += sum(prompt + count_tokens(c.text) for c in chunks)
            if d >= 4096:  # below Haiku's minimum the document is simply re-sent
                write += d
                read += d * (len(chunks) - 1)
            else:
                plain += d * len(chunks)
        batch = self._use_batch(len(todo))
        output = self.max_tokens * len(todo)
        price = price_for(self.model)
        usd: float | None = None
        if price is not None:
            usd = (
                plain * price.input
                + write * price.cache_write
                + read * price.cache_read
                + output * price.output
            ) / 1_000_000
            if batch:
                usd *= BATCH_DISCOUNT
        return ContextCost(
            model=self.model,
            requests=len(todo),
            cached=cached,
            document_tokens=doc_tokens,
            input_tokens=plain + write + read,
            output_tokens=output,
            batch=batch,
            usd=usd,
        )

    def contextualize(self, document: Document, chunks: Sequence[Chunk]) -> list[str]:
        """One context per chunk of ``document``, in order (``""`` where Claude failed)."""
        return self.contextualize_many([(document, chunks)])[0]

    def contextualize_many(self, items: Sequence[Item]) -> list[list[str]]:
        """Contexts for every chunk of every ``(document, chunks)`` pair, cache first.

        Raises:
            ContextualizeError: the API refused the job (a key, quota or request error), or a
                batch did not end within ``timeout``.
        """
        todo, _ = self._pending(items)
        if todo and self.confirm is not None and not self.confirm(self.estimate(items)):
            raise ContextualizeError("contextualization cancelled: nothing was indexed")
        if todo:
            if self._use_batch(len(todo)):
                found = self._run_batch(todo)
                missing = {k: v for k, v in todo.items() if k not in found}
                if missing:
                    logger.warning(
                        "%d of %d batch requests failed; retrying them one by one",
                        len(missing),
                        len(todo),
                    )
                    found.update(self._run_single(missing))
            else:
                found = self._run_single(todo)
            self._store(found)
            failed = len(todo) - len(found)
            if failed:
                logger.warning(
                    "%d chunk contexts could not be written; those chunks are indexed without one",
                    failed,
                )
        return [
            [self._cache.get(self._key(d, i, c), "") for i, c in enumerate(chunks)]
            for d, chunks in items
        ]

    def _run_single(self, todo: dict[str, tuple[Document, Chunk]]) -> dict[str, str]:
        import anthropic

        found: dict[str, str] = {}
        for key, (document, chunk) in todo.items():
            params = self._params(document, chunk)
            try:
                message = self.client.messages.create(**params)
            except anthropic.APIStatusError as exc:
                if exc.status_code in (400, 401, 403, 404):
                    raise ContextualizeError(
                        f"Claude refused the contextualization request ({exc.status_code}: "
                        f"{exc.message})"
                    ) from exc
                logger.warning("context for %s failed: %s", chunk.id, exc.message)
                continue
            except anthropic.APIError as exc:
                logger.warning("context for %s failed: %s", chunk.id, exc.message)
                continue
            except Exception as exc:  # noqa: BLE001 - only the SDK's call is in this try
                # A reply the SDK could not read (JSON cut off in transit, a proxy's page):
                # this chunk's failure, like a 5xx, not a usage error nor a traceback.
                logger.warning(
                    "context for %s failed: the reply could not be read (%s)",
                    chunk.id,
                    type(exc).__name__,
                )
                continue
            finally:
                self.requests_made += 1
            text = _text_of(message)
            if text:
                found[key] = text
        return found

    def _run_batch(self, todo: dict[str, tuple[Document, Chunk]]) -> dict[str, str]:
        import anthropic

        ids = {f"c{i}": key for i, key in enumerate(todo)}  # custom_id: 1-64 chars
        requests = [
            {"custom_id": cid, "params": self._params(*todo[key])} for cid, key in ids.items()
        ]
        try:
            batch = self.client.messages.batches.create(requests=requests)
            self.requests_made += len(requests)
            waited = 0.0
            while batch.processing_status != "ended":
                if waited >= self.timeout:
                    self.client.messages.batches.cancel(batch.id)
                    raise ContextualizeError(
                        f"batch {batch.id} did not end within {self.timeout:.0f}s; it was "
                        "cancelled. Run the indexing again (finished contexts are not lost "
                        "when the batch ends: re-run after it does)"
                    )
                self._sleep(self.poll_interval)
                waited += self.poll_interval
                batch = self.client.messages.batches.retrieve(batch.id)
            found: dict[str, str] = {}
            for row in self.client.messages.batches.results(batch.id):
                key = ids.get(row.custom_id)
                if key is None or row.result.type != "succeeded":
                    continue
                text = _text_of(row.result.message)
                if text:
                    found[key] = text
            return found
        except anthropic.APIError as exc:
            raise ContextualizeError(f"the Message Batches request failed: {exc.message}") from exc


def _text_of(message: Any) -> str:
    """The context in a reply: its text blocks joined, stripped ('' on a refusal)."""
    if getattr(message, "stop_reason", None) == "refusal":
        return ""
    content = getattr(message, "content", None)
    if not isinstance(content, list):  # not a Message: a proxy's HTML page, read as text
        return ""
    return " ".join(
        b.text.strip()
        for b in content
        if getattr(b, "type", "") == "text" and isinstance(getattr(b, "text", None), str)
    ).strip()


def cache_path_for(index_location: str | Path | None) -> Path | None:
    """Where the context cache of the index at ``index_location`` lives: a file beside an
    index directory (``.ragkit/index`` -> ``.ragkit/index.contextual.jsonl``), ``None`` for an
    unsaved index or a database URL (pass ``cache_path=`` yourself there)."""
    if index_location is None or str(index_location).startswith(("postgres://", "postgresql://")):
        return None
    path = Path(index_location)
    return path.with_name(path.name + ".contextual.jsonl")


def contextualized_texts(
    contextualizer: SupportsContextualize, items: Sequence[Item], texts: Sequence[str]
) -> list[str]:
    """``texts`` (one per chunk of ``items``, in order) each preceded by its chunk's context.

    Uses ``contextualize_many`` when the contextualizer has it (one batch for the whole job),
    else ``contextualize`` per document. A chunk with no context keeps its text.
    """
    many = getattr(contextualizer, "contextualize_many", None)
    if callable(many):
        contexts: list[list[str]] = many(items)
    else:
        contexts = [contextualizer.contextualize(d, c) for d, c in items]
    flat = [ctx for per_doc in contexts for ctx in per_doc]
    if len(flat) != len(texts):
        raise ContextualizeError(
            f"the contextualizer returned {len(flat)} contexts for {len(texts)} chunks"
        )
    return [f"{ctx}\n\n{text}" if ctx else text for ctx, text in zip(flat, texts, strict=True)]
