"""Answer a question from an index with one Claude call: context blocks in, cited Answer out.

The path of one question:

1. :func:`ragkit.plan.retrieve_context` picks the context (whole corpus or retrieved chunks),
   runs the evidence gate and packs to the token budget. A gate stop returns an abstaining
   :class:`~ragkit.types.Answer` here, with no call and no tokens spent.
2. Each passage becomes a ``search_result`` content block (``source`` = its first chunk's ID,
   ``title`` = document ID and heading path, one text block per chunk) inside the single user
   message, followed by the question. Documents never enter the system prompt.
3. One Messages API call through the official SDK (``create``, or ``stream`` for
   :func:`answer_stream`, or ``AsyncAnthropic`` for :func:`aanswer`).
4. Text blocks are picked by type (a thinking block may come first); every
   ``search_result_location`` citation maps back, through the block range it cites, to the chunk
   IDs that were sent; anything else is dropped and counted. Usage and an estimated cost come
   from the response and ``ragkit.pricing``.

Every failure of the call is an :class:`~ragkit.errors.AnswerError`: an error status, an
``error`` event inside a stream, no response within ``timeout``, a dropped connection, a reply
that is not JSON or not a complete message, and a stream that ends before ``message_stop``.
Nothing raised by the SDK, ``httpx2`` or a JSON decoder escapes, and no message holds the key.
An answer the model cut short (``max_tokens``, ...) is returned with ``Answer.complete=False``.

This module is the orchestration: plan, gate, count, call, parse, audit, in that order, for the
four entry points (which share one signature). The request and the reply's parsing are
:mod:`ragkit.messages`, the call itself (clients, streaming, errors) :mod:`ragkit.claude`; these
three are the only ragkit modules that import ``anthropic``. It leaves out retrieval, packing
and the gate (``plan.py``, ``gate.py``), prices (``pricing.py``) and the audit file format
(``audit.py``); retries are the SDK's (408/409/429/5xx, connection errors and timeouts), ragkit
only passes ``max_retries`` through.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import anthropic

from ragkit.audit import AuditLog
from ragkit.base import Query
from ragkit.claude import (
    _acreate,
    _astream,
    _async_client,
    _Call,
    _create,
    _is_count,
    _stream,
    _sync_client,
)
from ragkit.messages import ABSTAIN_SENTINEL, SYSTEM_PROMPT, build_request, parse_message
from ragkit.plan import (
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
    AnswerOptions,
    ContextPlan,
    resolve_request,
    retrieve_context,
)
from ragkit.types import Answer

if TYPE_CHECKING:
    from ragkit.base import Retriever
    from ragkit.index import Index

__all__ = [
    "ABSTAIN_SENTINEL",
    "DEFAULT_MODEL",
    "DEFAULT_TIMEOUT",
    "SYSTEM_PROMPT",
    "AnswerOptions",
    "aanswer",
    "aanswer_stream",
    "answer",
    "answer_stream",
    "build_request",
    "parse_message",
]


AnyIndex: TypeAlias = "Index | Retriever"

logger = logging.getLogger("ragkit")


GATE_HINT = "Pass gate=False to ask anyway."
"""What the Python API appends to a gate stop's reason (the CLI words its own: ``--no-gate``)."""


def _gated(plan: ContextPlan) -> Answer:
    verdict = plan.gate
    reason = verdict.reason if verdict is not None else "No context to send."
    if verdict is not None and (verdict.top_cosine is not None or verdict.coverage is not None):
        reason = f"{reason} {GATE_HINT}"  # the gate judged (an empty index is not its doing)
    return Answer(text=reason, chunks=plan.chunks, abstained=True, strategy="none")


# -- orchestration -------------------------------------------------------------------------


def _audit_log(audit: str | Path | AuditLog | None) -> AuditLog | None:
    return audit if isinstance(audit, AuditLog) or audit is None else AuditLog(audit)


def _plan(query: Query, index: AnyIndex, o: AnswerOptions, plan: ContextPlan | None) -> ContextPlan:
    if plan is None:
        return retrieve_context(query, index, o)
    if not isinstance(plan, ContextPlan):
        raise TypeError(
            f"plan must be a ContextPlan from retrieve_context, got {type(plan).__name__}"
        )
    if plan.question != query.text:
        raise ValueError(f"plan was made for the question {plan.question!r}, not {query.text!r}")
    return plan


def _fit_exactly(
    client: anthropic.Anthropic, plan: ContextPlan, query: Query, index: AnyIndex, o: AnswerOptions
) -> ContextPlan:
    """Count the request with the API; trim (or fall back from whole corpus) to the budget."""

    def exact(p: ContextPlan) -> int:
        kw = build_request(
            p, model=o.model, max_tokens=o.max_tokens, system=o.system, cache=o.cache
        )
        kw.pop("max_tokens")
        call = _Call.to(client, o.timeout)
        with call.guard():
            tokens = client.messages.count_tokens(**kw, **call.kwargs).input_tokens
        if not _is_count(tokens):
            raise call.fail(
                f"the Claude API's token count has input_tokens {tokens!r}, not a count; retry"
            )
        return int(tokens)

    tokens = exact(plan)
    if tokens > o.budget_tokens and plan.strategy == "full" and o.strategy == "auto":
        plan = retrieve_context(query, index, replace(o, strategy="retrieve"))
        if plan.strategy == "none":
            return plan
        tokens = exact(plan)
    while tokens > o.budget_tokens and plan.strategy == "retrieve" and len(plan.passages) > 1:
        passages = plan.passages[:-1]
        keep = {cid for p in passages for cid in p.chunk_ids}
        plan = replace(
            plan, passages=passages, chunks=tuple(c for c in plan.chunks if c.chunk.id in keep)
        )
        tokens = exact(plan)
    return replace(plan, exact_tokens=tokens)


def _finish(answer: Answer, question: str, audit: AuditLog | None) -> Answer:
    """Audit ``answer`` and return it; a failed audit write is a warning, never a lost answer."""
    if audit is not None:
        try:
            audit.log_answer(question, answer)
        except OSError as exc:
            # The call is already paid for: losing the answer over its log line helps no one.
            logger.warning(
                "could not append to the audit log %r (%s); the answer was not recorded",
                str(audit.path),
                exc.strerror or exc,
            )
    return answer


def _request(plan: ContextPlan, o: AnswerOptions) -> dict[str, Any]:
    return build_request(
        plan, model=o.model, max_tokens=o.max_tokens, system=o.system, cache=o.cache
    )


def answer(
    question: str | Query,
    index: AnyIndex,
    options: AnswerOptions | None = None,
    *,
    client: anthropic.Anthropic | None = None,
    plan: ContextPlan | None = None,
    audit: str | Path | AuditLog | None = None,
    **keywords: Any,
) -> Answer:
    """Answer ``question`` from ``index`` with one Claude call, citing the chunk IDs used.

    The four entry points (``answer``, ``answer_stream``, ``aanswer``, ``aanswer_stream``) take
    exactly these arguments.

    Args:
        question: the question, or a :class:`~ragkit.base.Query` carrying ``k``, a metadata
            filter (``where``, applied inside the store before the top ``k``; whole-corpus mode
            sends only matching chunks) and search options.
        index: a :class:`ragkit.Index`, or any :class:`ragkit.retrievers.Retriever` (then
            ``strategy="auto"`` always retrieves and ``"full"`` is refused).
        options: how to answer (:class:`~ragkit.plan.AnswerOptions`: model, max_tokens,
            strategy, budget, gate, rerank, cache, exact token counting, retries, system
            prompt, timeout); the defaults when ``None``. A ``max_tokens`` stop keeps the
            partial answer and sets ``Answer.complete=False``; a gate stop returns
            ``abstained=True``, ``strategy="none"``, no call and no tokens.
        client: an ``anthropic.Anthropic``; by default one is made from ``ANTHROPIC_API_KEY``
            (or ``ANTHROPIC_AUTH_TOKEN``).
        plan: a :class:`~ragkit.plan.ContextPlan` from
            :func:`~ragkit.plan.retrieve_context` for this question, answered as it is (the
            query's ``k`` and the options' strategy, budget and gate are then not used).
        audit: a JSON Lines file (path or :class:`~ragkit.audit.AuditLog`) to append a record
            to; a failed write is logged as a warning and the answer still returned.
        keywords: deprecated, kept for one release: the fields of ``Query`` (``k``, ``where``)
            and of ``AnswerOptions`` as keyword arguments, applied over ``question`` and
            ``options``.

    Raises:
        MissingAPIKeyError: no ``client`` and no credential in the environment, before any
            request.
        AnswerError: the call failed: an error status or stream error event (``status_code``,
            ``error_type``), no response within the timeout, a dropped connection, or a reply
            that is not a complete Messages API response; ``request_id`` when one was sent.
        ValueError: a bad argument (empty question, ``k < 1``, unknown strategy, ...).

    Example:
        >>> ragkit.answer(Query("How do dogs learn?", k=3), index).cited_chunk_ids  # doctest: +SKIP
        ('dogs.md#1',)
    """
    query, o = resolve_request(question, options, keywords, "answer")
    log = _audit_log(audit)
    plan = _plan(query, index, o, plan)
    if plan.strategy == "none":
        return _finish(_gated(plan), query.text, log)
    api = _sync_client(client, o.max_retries)
    if o.count_tokens_with_api:
        plan = _fit_exactly(api, plan, query, index, o)
        if plan.strategy == "none":
            return _finish(_gated(plan), query.text, log)
    message = _create(api, _request(plan, o), o)
    return _finish(parse_message(message, plan, model=o.model), query.text, log)


def answer_stream(
    question: str | Query,
    index: AnyIndex,
    options: AnswerOptions | None = None,
    *,
    client: anthropic.Anthropic | None = None,
    plan: ContextPlan | None = None,
    audit: str | Path | AuditLog | None = None,
    **keywords: Any,
) -> Iterator[str | Answer]:
    """Like :func:`answer`, but yield the answer's text as it arrives, then the ``Answer``.

    Every item but the last is a ``str`` (a text delta, in order); the last is the complete
    :class:`~ragkit.types.Answer` with citations, usage and stop reason. When the gate stops
    the call, the items are the explanation (one ``str``) and the abstaining ``Answer``. Takes
    the same arguments as :func:`answer`; errors (a missing key included) are raised when the
    iteration starts, not when the generator is created. A stream that fails or ends before
    ``message_stop`` raises :class:`~ragkit.errors.AnswerError` after the text already
    yielded: no final ``Answer`` comes, so partial text is never mistaken for an answer.

    Example:
        >>> for item in ragkit.answer_stream("How do dogs learn?", index):  # doctest: +SKIP
        ...     print(item, end="") if isinstance(item, str) else print(item.cited_chunk_ids)
    """
    query, o = resolve_request(question, options, keywords, "answer_stream")
    log = _audit_log(audit)
    plan = _plan(query, index, o, plan)
    if plan.strategy == "none":
        gated = _finish(_gated(plan), query.text, log)
        yield gated.text  # so a consumer that prints the text shows why no call was made
        yield gated
        return
    api = _sync_client(client, o.max_retries)
    if o.count_tokens_with_api:
        plan = _fit_exactly(api, plan, query, index, o)
        if plan.strategy == "none":
            gated = _finish(_gated(plan), query.text, log)
            yield gated.text
            yield gated
            return
    for item in _stream(api, _request(plan, o), o):
        if isinstance(item, str):
            yield item
        else:
            yield _finish(parse_message(item, plan, model=o.model), query.text, log)


async def aanswer(
    question: str | Query,
    index: AnyIndex,
    options: AnswerOptions | None = None,
    *,
    client: anthropic.AsyncAnthropic | None = None,
    plan: ContextPlan | None = None,
    audit: str | Path | AuditLog | None = None,
    **keywords: Any,
) -> Answer:
    """:func:`answer` for asyncio: the same arguments, an ``AsyncAnthropic`` client.

    Retrieval and packing run in the calling thread (they are CPU-bound and fast); only the
    API call is awaited. ``count_tokens_with_api`` is not supported here (ValueError).
    """
    query, o = resolve_request(question, options, keywords, "aanswer")
    if o.count_tokens_with_api:
        raise ValueError("count_tokens_with_api is not supported by aanswer(); use answer()")
    log = _audit_log(audit)
    plan = _plan(query, index, o, plan)
    if plan.strategy == "none":
        return _finish(_gated(plan), query.text, log)
    api = _async_client(client, o.max_retries)
    message = await _acreate(api, _request(plan, o), o)
    return _finish(parse_message(message, plan, model=o.model), query.text, log)


async def aanswer_stream(
    question: str | Query,
    index: AnyIndex,
    options: AnswerOptions | None = None,
    *,
    client: anthropic.AsyncAnthropic | None = None,
    plan: ContextPlan | None = None,
    audit: str | Path | AuditLog | None = None,
    **keywords: Any,
) -> AsyncIterator[str | Answer]:
    """:func:`answer_stream` for asyncio: text deltas, then the final ``Answer``."""
    query, o = resolve_request(question, options, keywords, "aanswer_stream")
    log = _audit_log(audit)
    plan = _plan(query, index, o, plan)
    if plan.strategy == "none":
        gated = _finish(_gated(plan), query.text, log)
        yield gated.text  # so a consumer that prints the text shows why no call was made
        yield gated
        return
    api = _async_client(client, o.max_retries)
    async for item in _astream(api, _request(plan, o), o):
        if isinstance(item, str):
            yield item
        else:
            yield _finish(parse_message(item, plan, model=o.model), query.text, log)
