"""Everything before the Claude call: retrieve, gate on evidence, pack to a token budget, merge.

:func:`retrieve_context` turns a question and an index (or any retriever) into a
:class:`ContextPlan`: the chunks chosen, how they merge into :class:`Passage` objects (one
``search_result`` block each), the strategy (``"retrieve"``, ``"full"`` for the whole corpus,
``"none"`` when the evidence gate stopped the call), the gate's verdict and an *estimated* token
count. It needs no API key, so ``ragkit search`` and ``ragkit ask`` without a key can show
exactly what would be sent. :class:`AnswerOptions` is how to answer, built once and passed as
one value.

Token counts here are estimates (``ragkit.tokens``); exact counts come only from the Messages
API's ``count_tokens`` endpoint (``AnswerOptions(count_tokens_with_api=True)``).

Merging chunks into passages and packing them to the budget is :mod:`ragkit.passages` (its
names are re-exported here). This module leaves out the evidence gate (``ragkit.gate``), the
API call, prompts and response parsing (``ragkit.answering``, ``ragkit.messages``,
``ragkit.claude``); it never imports ``anthropic``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, cast

from ragkit.base import Corpus, Query, Reranker, Retriever
from ragkit.filters import parse_filter
from ragkit.gate import _NOTHING_RETRIEVED, EvidenceGate, GateVerdict, default_gate
from ragkit.passages import (
    BLOCK_OVERHEAD_TOKENS,
    MERGE_GAP_CHARS,
    Passage,
    Segment,
    _title,
    chunk_label,
    corpus_passages,
    estimate_passage_tokens,
    merge_passages,
    pack,
)
from ragkit.tokens import count_tokens
from ragkit.types import Chunk, ScoredChunk, Strategy

__all__ = [
    "BLOCK_OVERHEAD_TOKENS",
    "CREDENTIAL_VARIABLES",
    "DEFAULT_BUDGET_TOKENS",
    "DEFAULT_MODEL",
    "DEFAULT_TIMEOUT",
    "MERGE_GAP_CHARS",
    "AnswerOptions",
    "ContextPlan",
    "Passage",
    "Segment",
    "chunk_label",
    "corpus_passages",
    "estimate_passage_tokens",
    "has_credentials",
    "merge_passages",
    "pack",
    "resolve_request",
    "retrieve_context",
]

DEFAULT_MODEL = "claude-haiku-4-5"
"""The model ragkit asks by default: fast and cheap ($1/$5 per million tokens, see pricing)."""

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for the connection and for each read of the reply (the SDK's default is 10
minutes). It applies to every attempt: the SDK retries a timeout (2 retries by default), so a
server that never answers fails after about three times this. ``timeout=None`` keeps the
client's own setting."""

CREDENTIAL_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
"""The environment variables the anthropic SDK reads a credential from (either is enough)."""


def has_credentials() -> bool:
    """Whether a Claude credential is in the environment: the one rule the library, the CLI and
    the MCP server use to decide whether a call can be made."""
    return any(os.environ.get(name) for name in CREDENTIAL_VARIABLES)


DEFAULT_BUDGET_TOKENS = 20_000
"""Context budget in (estimated) tokens. At Haiku 4.5's $1/M input a full budget costs about
$0.02 per question uncached and $0.002 read from the prompt cache; 5 retrieved chunks of ~500
tokens use an eighth of it, and a corpus of up to ~15,000 words goes in whole."""

Mode = Literal["auto", "retrieve", "full"]


# -- planning ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContextPlan:
    """What would be sent to Claude for one question, decided with no API call.

    Attributes:
        question: the question.
        strategy: ``"retrieve"``, ``"full"`` (whole corpus) or ``"none"`` (gate stopped it).
        retrieved: everything retrieval returned, best first (empty in whole-corpus mode).
        chunks: the chunks to send (score 0.0 for whole-corpus chunks).
        passages: the search_result blocks to send, in order.
        estimated_tokens: estimated context tokens (passages plus the question; tiktoken).
        gate: the gate's verdict, or ``None`` when no gate ran (gate off, whole corpus).
        budget_tokens: the budget the plan was packed to.
        exact_tokens: the Messages API's ``count_tokens`` figure for the whole request, when
            it was asked for (``answer(..., count_tokens_with_api=True)``).
    """

    question: str
    strategy: Strategy
    retrieved: tuple[ScoredChunk, ...]
    chunks: tuple[ScoredChunk, ...]
    passages: tuple[Passage, ...]
    estimated_tokens: int
    gate: GateVerdict | None
    budget_tokens: int
    exact_tokens: int | None = None

    @property
    def sources(self) -> dict[str, Passage]:
        """Passage by ``source``: how citations are mapped back."""
        return {p.source: p for p in self.passages}


# A corpus with more characters than this many per budget token is taken not to fit without
# counting: English runs about 4 characters per cl100k token, rarely over 6.
_MAX_CHARS_PER_TOKEN = 8


def _corpus_fit(chunks: Sequence[Chunk], budget: int) -> list[Passage] | None:
    """The whole-corpus passages when their estimated tokens fit ``budget``, else ``None``."""
    if not chunks:
        return None
    if sum(len(c.text) for c in chunks) > budget * _MAX_CHARS_PER_TOKEN * 2:
        return None  # overlap can at most double the raw text; a cheap early "no"
    passages = corpus_passages(chunks)
    if sum(len(p.text) for p in passages) > budget * _MAX_CHARS_PER_TOKEN:
        return None
    used = 0
    for passage in passages:
        used += estimate_passage_tokens(passage)
        if used > budget:
            return None
    return passages


@dataclass(frozen=True, slots=True)
class AnswerOptions:
    """How to answer: built and validated once, then passed as one value to
    :func:`retrieve_context` and the four answer entry points (``ragkit.answer`` and friends).

    What to ask (the text, ``k``, the filter and search options) is a
    :class:`~ragkit.base.Query`; how to answer it is this.

    Attributes:
        model: the model id, a plain string.
        max_tokens: the most output tokens.
        strategy: ``"auto"`` (whole corpus when it fits ``budget_tokens``, else retrieve),
            ``"retrieve"`` or ``"full"``.
        budget_tokens: the most (estimated) context tokens to send.
        gate: the evidence gate: ``True`` (calibrated default), ``False``, or an
            :class:`EvidenceGate`.
        rerank: a reranker, or its name (resolved here, so a missing key fails before any
            retrieval); ``None`` for none.
        cache: prompt-caching breakpoints on the system prompt (and the whole corpus).
        count_tokens_with_api: count the request with the API and trim to the budget exactly.
        max_retries: the SDK's retry count for the call (``None``: the client's).
        system: a system prompt replacing ``ragkit.answering.SYSTEM_PROMPT``.
        timeout: seconds to wait to connect and for each read, per attempt; ``None`` keeps the
            client's own.

    Raises:
        TypeError, ValueError: a field of the wrong type or value, naming it.

    Example:
        >>> AnswerOptions(max_tokens=300, strategy="retrieve").budget_tokens
        20000
    """

    model: str = DEFAULT_MODEL
    max_tokens: int = 1024
    strategy: Mode = "auto"
    budget_tokens: int = DEFAULT_BUDGET_TOKENS
    gate: bool | EvidenceGate = True
    rerank: str | Reranker | None = None
    cache: bool = True
    count_tokens_with_api: bool = False
    max_retries: int | None = None
    system: str | None = None
    timeout: float | None = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model ({self.model!r}) must be a model id such as {DEFAULT_MODEL!r}")
        for name in ("max_tokens", "budget_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} ({value!r}) must be an integer >= 1")
        if not isinstance(self.strategy, str) or self.strategy not in ("auto", "retrieve", "full"):
            raise ValueError(
                f"strategy ({self.strategy!r}) must be one of 'auto', 'retrieve', 'full'"
            )
        if not isinstance(self.gate, (bool, EvidenceGate)):
            raise TypeError(
                f"gate must be True, False or an EvidenceGate, got {type(self.gate).__name__}"
            )
        for name in ("cache", "count_tokens_with_api"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        retries = self.max_retries
        if retries is not None and (
            isinstance(retries, bool) or not isinstance(retries, int) or retries < 0
        ):
            raise ValueError(f"max_retries ({retries!r}) must be an integer >= 0, or None")
        if self.system is not None and not isinstance(self.system, str):
            raise TypeError(f"system must be a str or None, got {type(self.system).__name__}")
        timeout = self.timeout
        if timeout is not None:
            if (
                isinstance(timeout, bool)
                or not isinstance(timeout, (int, float))
                or not math.isfinite(timeout)
                or timeout <= 0
            ):
                raise ValueError(
                    f"timeout ({timeout!r}) must be a number of seconds > 0, or None for the "
                    "client's own"
                )
            object.__setattr__(self, "timeout", float(timeout))
        if self.rerank is not None and not isinstance(self.rerank, Reranker):
            from ragkit.rerankers import resolve_reranker

            object.__setattr__(self, "rerank", resolve_reranker(self.rerank))


_QUERY_KEYWORDS = frozenset({"k", "where"})
_OPTION_KEYWORDS = frozenset(f.name for f in fields(AnswerOptions))


def resolve_request(
    question: str | Query,
    options: AnswerOptions | None,
    keywords: Mapping[str, Any],
    caller: str,
    allowed: frozenset[str] = _QUERY_KEYWORDS | _OPTION_KEYWORDS,
) -> tuple[Query, AnswerOptions]:
    """The :class:`~ragkit.base.Query` and :class:`AnswerOptions` of one call.

    ``keywords`` are the per-field keyword arguments the entry points took before
    ``AnswerOptions`` (kept for one release): ``k`` and ``where`` replace the query's (also a
    :class:`~ragkit.base.Query`'s: they are never silently ignored), the others the options'.
    Each value is validated by the class that owns its field.

    Raises:
        TypeError: an unknown keyword, or ``question``/``options`` of the wrong type.
    """
    unknown = sorted(set(keywords) - allowed)
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
    if keywords:
        warnings.warn(
            f"{caller}(): the keyword arguments {', '.join(sorted(keywords))} are deprecated: "
            "pass a ragkit.Query (k, where) and ragkit.AnswerOptions (the rest)",
            DeprecationWarning,
            stacklevel=3,
        )
    if options is None:
        options = AnswerOptions()
    elif not isinstance(options, AnswerOptions):
        raise TypeError(f"options must be an AnswerOptions, got {type(options).__name__}")
    changes = {name: value for name, value in keywords.items() if name in _OPTION_KEYWORDS}
    if changes:
        options = replace(options, **changes)
    k, where = keywords.get("k"), keywords.get("where")
    if isinstance(question, Query):
        query = question
        if k is not None or where is not None:
            query = Query(
                query.text,
                query.k if k is None else k,
                where=query.where if where is None else parse_filter(where),
                mode=query.mode,
                fusion=query.fusion,
                weights=query.weights,
                depth=query.depth,
            )
    elif isinstance(question, str):
        query = Query(question, 5 if k is None else k, where=where)
    else:
        raise TypeError(f"question must be a str or ragkit.Query, got {type(question).__name__}")
    return query, options


def retrieve_context(
    question: str | Query,
    index: Corpus | Retriever,
    options: AnswerOptions | None = None,
    **keywords: Any,
) -> ContextPlan:
    """Decide what to send for ``question``: whole corpus or retrieved chunks, gated and packed.

    Args:
        question: the question, or a :class:`~ragkit.base.Query` (its ``k``, filter and search
            options are used).
        index: a :class:`ragkit.Index`, or any :class:`ragkit.Retriever`.
        options: the strategy, budget, gate and reranker (:class:`AnswerOptions`); ``"auto"``
            sends the whole corpus when its estimated tokens fit the budget and retrieves
            otherwise, ``"retrieve"`` always retrieves, ``"full"`` always sends the whole corpus
            (the filter applies; the whole corpus is not reranked).
        keywords: deprecated, kept for one release: ``k``, ``where`` (they replace the query's)
            and ``strategy``, ``budget_tokens``, ``gate``, ``rerank`` (the options').

    Raises:
        TypeError: ``index`` is neither an Index nor a Retriever, or an option of the wrong type.
        ValueError: an empty question, a bad option value, ``strategy="full"`` with a bare
            retriever, or a budget smaller than the best chunk.
    """
    query, options = resolve_request(
        question,
        options,
        keywords,
        "retrieve_context",
        _QUERY_KEYWORDS | {"strategy", "budget_tokens", "gate", "rerank"},
    )
    strategy, budget_tokens, gate, rerank = (
        options.strategy,
        options.budget_tokens,
        options.gate,
        options.rerank,
    )
    corpus = index if isinstance(index, Corpus) else None
    if corpus is None and not isinstance(index, Retriever):
        raise TypeError(f"index must be a ragkit Index or Retriever, got {type(index).__name__}")
    text = query.text
    if strategy == "full" and corpus is None:
        raise ValueError(
            f"strategy='full' needs an Index (it sends every chunk); {type(index).__name__} "
            "is a retriever with no list of chunks. Pass the Index, or use strategy='retrieve'."
        )
    question_tokens = count_tokens(text)
    if corpus is not None and strategy in ("auto", "full"):
        # For "auto" a large index says "too big" from its character count, without listing a
        # million chunks on every question.
        chars = corpus.store.stats(query.where).characters
        if strategy == "full" or chars <= budget_tokens * _MAX_CHARS_PER_TOKEN * 2:
            chunks = tuple(corpus.store.chunks(query.where))
            passages = (
                _corpus_fit(chunks, budget_tokens)
                if strategy == "auto"
                else corpus_passages(chunks)
            )
            if passages:
                return ContextPlan(
                    question=text,
                    strategy="full",
                    retrieved=(),
                    chunks=tuple(ScoredChunk(c, 0.0) for c in chunks),
                    passages=tuple(passages),
                    estimated_tokens=sum(estimate_passage_tokens(p) for p in passages)
                    + question_tokens,
                    gate=None,
                    budget_tokens=budget_tokens,
                )

    retriever: Retriever
    if corpus is not None:
        # rerank passed only when given: Index subclasses may override retriever_for(query)
        retriever = (
            corpus.retriever_for(query)
            if rerank is None
            else corpus.retriever_for(query, rerank=rerank)
        )
    elif rerank is not None:
        from ragkit.rerankers import with_reranker

        retriever = with_reranker(cast(Retriever, index), rerank)
    else:
        retriever = cast(Retriever, index)
    retrieved = tuple(retriever.retrieve(query))
    if not retrieved:
        reason = (
            "Retrieval returned nothing: no chunk matches the filter."
            if query.where is not None
            else _NOTHING_RETRIEVED
        )
        return ContextPlan(
            question=text,
            strategy="none",
            retrieved=(),
            chunks=(),
            passages=(),
            estimated_tokens=0,
            gate=GateVerdict(False, reason),
            budget_tokens=budget_tokens,
        )
    verdict: GateVerdict | None = None
    the_gate = default_gate(index) if gate is True else gate or None
    if the_gate is not None:
        verdict = the_gate.check(
            text,
            retrieved,
            retriever=retriever,
            idf=corpus.keyword_idf if corpus is not None else None,
            analyzer=corpus.store.analyzer if corpus is not None else None,
        )
        if not verdict.passed:
            return ContextPlan(
                question=text,
                strategy="none",
                retrieved=retrieved,
                chunks=retrieved,
                passages=(),
                estimated_tokens=0,
                gate=verdict,
                budget_tokens=budget_tokens,
            )
    kept, _ = pack(retrieved, max(budget_tokens - question_tokens, 1))
    if not kept:
        best = retrieved[0].chunk
        need = count_tokens(best.text) + count_tokens(_title(best)) + BLOCK_OVERHEAD_TOKENS
        raise ValueError(
            f"budget_tokens ({budget_tokens}) is smaller than the best chunk plus the question "
            f"(~{need + question_tokens} tokens, estimated); raise budget_tokens"
        )
    passages = merge_passages(kept)
    return ContextPlan(
        question=text,
        strategy="retrieve",
        retrieved=retrieved,
        chunks=tuple(kept),
        passages=tuple(passages),
        estimated_tokens=sum(estimate_passage_tokens(p) for p in passages) + question_tokens,
        gate=verdict,
        budget_tokens=budget_tokens,
    )
