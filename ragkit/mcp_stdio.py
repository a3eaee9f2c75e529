"""The stdio transport of ``ragkit mcp``, answering what the SDK's transport drops.

The ``mcp`` SDK's ``stdio_server`` reads one JSON-RPC message per line. A line that is not
JSON, or JSON that is not a JSON-RPC 2.0 message (``{"jsonrpc":"2.0","id":7,"method":5}``, a
request whose ``params`` is an array, a batch, a number, a request without ``"jsonrpc"``), is
only logged there at debug level: no reply is sent, and the host waits for the answer to its id
forever. It also reads a line of any length into memory.

:class:`GuardedStdin` is the stdin the SDK's ``stdio_server`` reads from (its ``stdin``
argument). It reads each line with a length limit, runs the SDK's own validation on it
(``jsonrpc_message_adapter``), and hands every valid line on to the SDK unchanged, so valid
messages are served byte for byte as before. For the rest it sends the JSON-RPC 2.0 error itself,
through the SDK's write stream and the SDK's ``JSONRPCError``/``ErrorData`` types:

- not JSON: ``-32700 Parse error``, id null;
- JSON but not a valid message: ``-32600 Invalid Request`` with the request's id when it is a
  string or an integer, null otherwise; a batch (MCP has none) gets one error per request id in
  it, or one with id null;
- a line longer than :data:`MAX_LINE` characters: ``-32600`` with id null (the id is not read);
- an object without an ``"id"`` (a notification, however malformed) and a malformed response
  (``result`` or ``error`` without ``method``) get no reply; blank lines are skipped.

Unknown methods are the SDK's own business (it answers ``-32601 Method not found``). This module
leaves out the tools (``ragkit.mcp_server``) and the HTTP transport, whose SDK code already
answers these inputs with HTTP 400 and a JSON-RPC error body (413 past its 4 MiB body limit).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from io import TextIOWrapper
from typing import IO, Any, BinaryIO, Protocol

from .errors import MissingDependencyError

try:
    import anyio
    import pydantic_core
    from anyio import to_thread
    from mcp.server.stdio import stdio_server
    from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
    from mcp.shared.message import SessionMessage
    from mcp.types import (
        INVALID_REQUEST,
        PARSE_ERROR,
        ErrorData,
        JSONRPCError,
        JSONRPCNotification,
        JSONRPCRequest,
        jsonrpc_message_adapter,
    )
    from pydantic import ValidationError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "the MCP server needs the 'mcp' extra: pip install 'ragkit-claude[mcp]'"
    ) from exc

__all__ = ["MAX_LINE", "GuardedStdin", "replies_to", "serve_stdio"]

logger = logging.getLogger("ragkit")

MAX_LINE: int = DEFAULT_MAX_REQUEST_BODY_SIZE
"""The longest line (in characters, newline excluded) read as a message: the SDK's own limit on
an HTTP request body, 4 MiB. A longer line is read to its end in pieces and dropped."""

_DISCARD_PIECE = 1 << 16
"""How much of an over-long line is read at a time while it is dropped."""

_REASON_CHARS = 200
"""The longest reason put in an error's ``data`` or in the log."""


class _Sender(Protocol):
    async def send(self, item: SessionMessage, /) -> None: ...


def _request_id(value: object) -> int | str | None:
    """The id to answer with: a JSON-RPC id MCP accepts (a string or an integer), else None."""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return None


def _error(code: int, message: str, request_id: int | str | None, reason: str) -> JSONRPCError:
    return JSONRPCError(
        jsonrpc="2.0",
        id=request_id,
        error=ErrorData(code=code, message=message, data=reason[:_REASON_CHARS]),
    )


def _first_problem(decoded: object) -> str:
    """The first reason ``decoded`` is not a JSON-RPC request, as ``field: what is wrong``."""
    try:
        JSONRPCRequest.model_validate(decoded)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    return "not a JSON-RPC 2.0 request"  # not reached: what fails as a message fails here too


def replies_to(line: str) -> list[JSONRPCError] | None:
    """What to answer for one line read from the host.

    Returns:
        ``None`` when the line is a valid JSON-RPC message for the SDK to serve; otherwise the
        errors to send back (an empty list: nothing, the line was a notification or a response).

    Example:
        ``replies_to('{"jsonrpc":"2.0","id":7,"method":5}')[0].id == 7``
    """
    try:
        message = jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValidationError:
        message = None
    if message is not None and not isinstance(message, JSONRPCNotification):
        return None
    try:
        decoded: Any = pydantic_core.from_json(line)
    except (ValueError, RecursionError) as exc:
        return [_error(PARSE_ERROR, "Parse error", None, f"not JSON: {exc}")]
    if isinstance(decoded, dict):
        if "id" not in decoded:
            return None if message is not None else []  # a notification: never answered
        if "method" not in decoded and ("result" in decoded or "error" in decoded):
            return []  # a malformed response to one of our requests: answering it is not allowed
        request_id = _request_id(decoded["id"])
        return [_error(INVALID_REQUEST, "Invalid Request", request_id, _first_problem(decoded))]
    if isinstance(decoded, list):
        reason = "batches are not supported: send one JSON-RPC message per line"
        ids = [
            _request_id(item["id"])
            for item in decoded
            if isinstance(item, dict) and "id" in item and "method" in item
        ]
        return [_error(INVALID_REQUEST, "Invalid Request", i, reason) for i in ids] or [
            _error(INVALID_REQUEST, "Invalid Request", None, reason)
        ]
    kind = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    what = "null" if decoded is None else kind.get(type(decoded), type(decoded).__name__)
    reason = f"a JSON-RPC message is an object, not {what}"
    return [_error(INVALID_REQUEST, "Invalid Request", None, reason)]


def _read_line(fp: IO[str], limit: int) -> str | None:
    """One line of at most ``limit`` characters (``""`` at the end of input); ``None`` for a
    longer line, which is read to its end in pieces of bounded size and dropped."""
    line = fp.readline(limit + 1)
    if len(line) <= limit or line.endswith("\n"):
        return line
    while True:
        piece = fp.readline(_DISCARD_PIECE)
        if not piece or piece.endswith("\n"):
            return None


class GuardedStdin(anyio.AsyncFile[str]):
    """The stdin for the SDK's ``stdio_server``: yields only valid messages, answers the rest.

    Args:
        fp: the text stream to read, decoded as the SDK decodes stdin (UTF-8, errors replaced).
        limit: the longest line read as a message (:data:`MAX_LINE`).

    The answers go out on the transport's write stream, given with :meth:`answer_on` once the
    transport has made it; until then the first invalid line waits for it.
    """

    def __init__(self, fp: IO[str], *, limit: int = MAX_LINE) -> None:
        super().__init__(fp)
        self._limit = limit
        self._out: _Sender | None = None
        self._ready = anyio.Event()

    def answer_on(self, write_stream: _Sender) -> None:
        """Send answers to invalid lines on ``write_stream`` (the one ``stdio_server`` yields)."""
        self._out = write_stream
        self._ready.set()

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            line = await to_thread.run_sync(_read_line, self._fp, self._limit)
            if line is None:
                reason = f"a message longer than {self._limit:,} characters, this server's limit"
                if not await self._answer(
                    [_error(INVALID_REQUEST, "Invalid Request", None, reason)]
                ):
                    return
                continue
            if not line:
                return
            if not line.strip():
                continue
            replies = replies_to(line)
            if replies is None:
                yield line
            elif not await self._answer(replies):
                return

    async def _answer(self, replies: list[JSONRPCError]) -> bool:
        """Log an invalid line and send its answers; ``False`` once the transport is closed."""
        logger.warning(
            "MCP: not a valid JSON-RPC message from the host (%s); %s",
            replies[0].error.data if replies else "it has no id",
            "answered with an error" if replies else "not answered",
        )
        if not replies:
            return True
        await self._ready.wait()
        assert self._out is not None
        try:
            for reply in replies:
                await self._out.send(SessionMessage(reply))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False  # the transport is shutting down
        return True


class _UnownedTextWrapper(TextIOWrapper):
    """Text over a buffer this transport does not own: closing it leaves the buffer open (as
    the SDK's own wrapper for stdin, which is private to it)."""

    def close(self) -> None:
        try:
            self.detach()
        except ValueError:
            pass


def _claim_stdin() -> tuple[BinaryIO, Callable[[], None] | None]:
    """fd 0 as the SDK's ``stdio_server`` claims it when it opens stdin itself: the wire is
    read from a private duplicate and fd 0 points at the null device while serving, so a child
    process reads EOF instead of the host's messages. Passing our own stdin skips that claim in
    the SDK, so it is made here with the SDK's helper; an SDK without it reads fd 0 in place."""
    try:
        from mcp.server.stdio import _claim_fd, _open_stdin_diversion
    except ImportError:  # pragma: no cover - a later 2.x SDK that moved its private helpers
        return sys.stdin.buffer, None
    return _claim_fd(0, sys.stdin, "rb", _open_stdin_diversion)


async def serve_stdio(run: Callable[[Any, Any], Awaitable[None]]) -> None:
    """Serve over this process's stdin and stdout through the SDK's ``stdio_server``.

    Args:
        run: ``async (read_stream, write_stream) -> None``, the server's loop on the streams.
    """
    buffer, release = _claim_stdin()
    try:
        text = _UnownedTextWrapper(buffer, encoding="utf-8", errors="replace")
        stdin = GuardedStdin(text)
        async with stdio_server(stdin=stdin) as (read_stream, write_stream):
            stdin.answer_on(write_stream)
            await run(read_stream, write_stream)
    finally:
        if release is not None:
            release()
