"""The one Messages API call, over the official ``anthropic`` SDK: the client, the request sent
(``create``, ``stream``, ``AsyncAnthropic``), the server-sent events of a stream, and every way
the call can fail, mapped to :class:`~ragkit.errors.AnswerError`.

Nothing raised by the SDK, ``httpx2`` or a JSON decoder escapes, and no message holds the key;
retries are the SDK's (408/409/429/5xx, connection errors and timeouts), ragkit only passes
``max_retries`` through. This module leaves out what the request holds and how the reply becomes
an Answer (``ragkit.messages``), and the order of the steps (``ragkit.answering``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anthropic
import httpx2
from anthropic.types import Message

from ragkit.audit import redact_secrets
from ragkit.errors import AnswerError, MissingAPIKeyError
from ragkit.plan import (
    AnswerOptions,
    has_credentials,
)

if TYPE_CHECKING:
    pass

logger = logging.getLogger("ragkit")


# -- client --------------------------------------------------------------------------------


def _need_key() -> None:
    if not has_credentials():
        raise MissingAPIKeyError(
            "ANTHROPIC_API_KEY is not set: export ANTHROPIC_API_KEY=... (or pass client=) to ask "
            "Claude; retrieval alone (ragkit search, ragkit.retrieve_context) needs no key"
        )


def _sync_client(
    client: anthropic.Anthropic | None, max_retries: int | None
) -> anthropic.Anthropic:
    if client is None:
        _need_key()  # the SDK itself would only fail at the first request, with a TypeError
        client = anthropic.Anthropic()
    if max_retries is not None:
        client = client.with_options(max_retries=max_retries)
    return client


def _async_client(
    client: anthropic.AsyncAnthropic | None, max_retries: int | None
) -> anthropic.AsyncAnthropic:
    if client is None:
        _need_key()
        client = anthropic.AsyncAnthropic()
    if max_retries is not None:
        client = client.with_options(max_retries=max_retries)
    return client


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _error_fields(body: object) -> tuple[str | None, str | None, str | None]:
    """The error type, message and request id of an API error body, where it has them."""
    if not isinstance(body, Mapping):
        return None, None, None
    rid = body.get("request_id")
    err = body.get("error")
    etype = err.get("type") if isinstance(err, Mapping) else None
    emsg = err.get("message") if isinstance(err, Mapping) else None
    return (
        etype if isinstance(etype, str) else None,
        emsg if isinstance(emsg, str) else None,
        rid if isinstance(rid, str) else None,
    )


def _next_step(status: int | None, etype: str | None) -> str:
    """What the user can do about an API error, from its status or error type."""
    if etype == "overloaded_error" or status == 529:
        return "Claude is overloaded; retry in a little while"
    if etype == "rate_limit_error" or status == 429:
        return "rate limited; retry later"
    if etype == "authentication_error" or status == 401:
        return "check ANTHROPIC_API_KEY"
    if etype == "permission_error" or status == 403:
        return "this key may not use this model or feature"
    if etype == "not_found_error" or status == 404:
        return "check the model id and ANTHROPIC_BASE_URL"
    if etype == "request_too_large" or status == 413:
        return "send less context (lower k or the token budget)"
    if etype in ("api_error", "timeout_error") or (status is not None and status >= 500):
        return "a failure on the API's side; retry later"
    return ""


@dataclass
class _Call:
    """One request in flight: turns whatever fails into an AnswerError with what is known.

    Mutable on purpose, and private to one call: it learns the request id and whether the
    stream has started as the call goes on.
    """

    secrets: tuple[str | None, ...]
    timeout: float | None
    request_id: str | None = None
    streaming: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def to(cls, client: Any, timeout: float | None) -> _Call:
        secrets = (getattr(client, "api_key", None), getattr(client, "auth_token", None))
        kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        return cls(secrets=secrets, timeout=timeout, kwargs=kwargs)

    def fail(
        self,
        what: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
    ) -> AnswerError:
        rid = request_id or self.request_id
        text = f"{what} (request-id {rid})" if rid else what
        return AnswerError(
            redact_secrets(text, self.secrets),
            status_code=status_code,
            request_id=rid,
            error_type=error_type,
        )

    def error(self, exc: BaseException) -> AnswerError:
        """The AnswerError for ``exc``, raised by the SDK or its transport during the call."""
        if isinstance(exc, AnswerError):
            return exc
        if isinstance(exc, anthropic.APIStatusError):
            etype, emsg, body_rid = _error_fields(exc.body)
            rid = exc.request_id or body_rid
            if exc.status_code < 400:  # an `error` event inside a 200 stream
                what = f"Claude API error during the answer: {etype or 'error'}"
                what += f": {_one_line(emsg)}" if emsg else ""
                status = None
            else:
                detail = emsg or _one_line(exc.response.text if exc.body is not None else "")
                what = f"Claude API error {exc.status_code}" + (f" {etype}" if etype else "")
                what += f": {detail}" if detail else ""
                status = exc.status_code
            step = _next_step(status, etype)
            return self.fail(
                f"{what}; {step}" if step else what,
                status_code=status,
                error_type=etype,
                request_id=rid,
            )
        if isinstance(exc, (anthropic.APITimeoutError, httpx2.TimeoutException)):
            within = f" within {self.timeout:g} s" if self.timeout is not None else ""
            return self.fail(
                f"no response from the Claude API{within}; raise the timeout, or check the "
                "network and ANTHROPIC_BASE_URL"
            )
        if isinstance(exc, (anthropic.APIConnectionError, httpx2.TransportError)):
            cause = exc.__cause__ if isinstance(exc, anthropic.APIConnectionError) else exc
            why = f": {_one_line(str(cause))}" if cause is not None and str(cause) else ""
            where = "before the answer was complete" if self.streaming else "during the call"
            return self.fail(
                f"the connection to the Claude API failed {where}{why}; check the network, "
                "a proxy or ANTHROPIC_BASE_URL, and retry"
            )
        if isinstance(exc, json.JSONDecodeError):
            return self.fail(
                f"the Claude API's reply is not valid JSON, cut off or altered in transit "
                f"({exc.msg}, character {exc.pos}); retry"
            )
        return self.fail(
            "the Claude API's reply is not a Messages API response ragkit can read "
            f"({type(exc).__name__}: {_one_line(str(exc), 120)}); a proxy or gateway in "
            "between may have altered it; retry"
        )

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Translate what the SDK raises while it sends, reads and decodes the reply.

        Inside a guard only the SDK works on the server's bytes, so any exception there is
        a fault of the reply or of the connection: the SDK's parser and stream accumulator
        raise whatever a malformed reply provokes (KeyError, AssertionError, TypeError...).
        """
        try:
            yield
        except AnswerError:
            raise
        except Exception as exc:
            raise self.error(exc) from exc

    def wrong_content(self, response: httpx2.Response, want: str, body: str = "") -> AnswerError:
        ctype = response.headers.get("content-type", "").split(";")[0] or "no content type"
        sample = _one_line(body, 80)
        return self.fail(
            f"the Claude API replied {response.status_code} with {ctype} instead of {want}"
            + (f" ({sample})" if sample else "")
            + "; a proxy or gateway in between? check ANTHROPIC_BASE_URL and retry"
        )

    def check_message(self, message: object) -> Message:
        """``message`` when it holds every field ragkit reads, else an AnswerError."""
        problem = _problem(message)
        if problem is not None or not isinstance(message, Message):
            raise self.fail(f"the Claude API's reply is not a complete message ({problem}); retry")
        return message


def _problem(message: object) -> str | None:
    """What a parsed reply lacks of the fields :func:`parse_message` reads, or ``None``."""
    if not isinstance(message, Message):
        return f"a {type(message).__name__} instead of a message"
    content = getattr(message, "content", None)
    if not isinstance(content, list):
        return "no content"
    for i, block in enumerate(content):
        kind = getattr(block, "type", None)
        if not isinstance(kind, str):
            return f"content block {i} has no type"
        if kind == "text" and not isinstance(getattr(block, "text", None), str):
            return f"text block {i} has no text"
        if kind == "text" and not isinstance(getattr(block, "citations", None), (list, type(None))):
            return f"text block {i} has malformed citations"
    if not isinstance(getattr(message, "stop_reason", None), str):
        return "no stop_reason"
    # The one check of the token counts the API reports (every cost and log reads these).
    usage = getattr(message, "usage", None)
    for name in ("input_tokens", "output_tokens"):
        if not _is_count(getattr(usage, name, None)):
            return f"usage.{name} is {getattr(usage, name, None)!r}, not a token count"
    for name in ("cache_read_input_tokens", "cache_creation_input_tokens"):
        value = getattr(usage, name, None)
        if value is not None and not _is_count(value):
            return f"usage.{name} is {value!r}, not a token count"
    return None


def _is_count(value: object) -> bool:
    """A token count: an int (not a bool) from 0 to 10**12 (far above any context window)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10**12


def _create(api: anthropic.Anthropic, request: dict[str, Any], o: AnswerOptions) -> Message:
    call = _Call.to(api, o.timeout)
    with call.guard():
        raw = api.messages.with_raw_response.create(**request, **call.kwargs)
        call.request_id = raw.request_id
        if "json" not in raw.headers.get("content-type", "").lower():
            raise call.wrong_content(raw.http_response, "JSON", raw.http_response.text)
        parsed = raw.parse()
    return call.check_message(parsed)


async def _acreate(
    api: anthropic.AsyncAnthropic, request: dict[str, Any], o: AnswerOptions
) -> Message:
    call = _Call.to(api, o.timeout)
    with call.guard():
        raw = await api.messages.with_raw_response.create(**request, **call.kwargs)
        call.request_id = raw.request_id
        if "json" not in raw.headers.get("content-type", "").lower():
            raise call.wrong_content(raw.http_response, "JSON", raw.http_response.text)
        parsed = await raw.parse()
    return call.check_message(parsed)


def _stream_ended(call: _Call, response: httpx2.Response, started: bool, stopped: bool) -> None:
    """Raise unless the stream ran to ``message_stop``; name a reply that was no stream at all.

    The content type is only looked at here, after the fact: the SDK reads any content type
    as server-sent events, and so does ragkit while events arrive.
    """
    if stopped:
        return
    if not started and "text/event-stream" not in response.headers.get("content-type", ""):
        raise call.wrong_content(response, "an event stream")
    raise call.fail(
        "the answer stream ended before message_stop, so the answer is incomplete "
        "(the connection may have been cut); retry"
    )


def _stream(
    api: anthropic.Anthropic, request: dict[str, Any], o: AnswerOptions
) -> Iterator[str | Message]:
    """Text deltas, then the final Message; every fault is an AnswerError."""
    call = _Call.to(api, o.timeout)
    manager = api.messages.stream(**request, **call.kwargs)
    with call.guard():
        stream = manager.__enter__()
    try:
        call.request_id = stream.request_id
        call.streaming = True
        events = iter(stream)
        started = stopped = False
        while True:
            with call.guard():
                event = next(events, None)
            if event is None:
                break
            if event.type == "text" and isinstance(event.text, str) and event.text:
                yield event.text  # outside the guard: the consumer's errors stay its own
            elif event.type == "message_start":
                started = True
            elif event.type == "message_stop":
                stopped = True
        _stream_ended(call, stream.response, started, stopped)
        with call.guard():
            final: object = stream.get_final_message()
        yield call.check_message(final)
    finally:
        with call.guard():
            manager.__exit__(None, None, None)


async def _astream(
    api: anthropic.AsyncAnthropic, request: dict[str, Any], o: AnswerOptions
) -> AsyncIterator[str | Message]:
    """:func:`_stream` for asyncio."""
    call = _Call.to(api, o.timeout)
    manager = api.messages.stream(**request, **call.kwargs)
    with call.guard():
        stream = await manager.__aenter__()
    try:
        call.request_id = stream.request_id
        call.streaming = True
        events = stream.__aiter__()
        started = stopped = False
        while True:
            with call.guard():
                try:
                    event = await events.__anext__()
                except StopAsyncIteration:
                    break
            if event.type == "text" and isinstance(event.text, str) and event.text:
                yield event.text
            elif event.type == "message_start":
                started = True
            elif event.type == "message_stop":
                stopped = True
        _stream_ended(call, stream.response, started, stopped)
        with call.guard():
            final: object = await stream.get_final_message()
        yield call.check_message(final)
    finally:
        with call.guard():
            await manager.__aexit__(None, None, None)
