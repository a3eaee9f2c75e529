"""What `ragkit mcp` answers to lines that are not valid JSON-RPC messages, driven as raw lines.

A host that sends a bad line waits for the answer to its id: on main the SDK only logged such a
line and sent nothing. Each test checks the reply's code and id, and that the server still
answers the next valid request. Every read is bounded by a timeout.
"""

from __future__ import annotations

import io
import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")

from mcp.shared.message import SessionMessage  # noqa: E402

import ragkit  # noqa: E402

from .conftest import SMALL_CORPUS, write_corpus  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60.0  # seconds for one reply; a server that never answers fails the test
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND = -32700, -32600, -32601

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-host", "version": "1"},
    },
}


class RawHost:
    """`ragkit mcp --index INDEX` in a subprocess, fed and read one line at a time."""

    def __init__(self, index: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ragkit", "mcp", "--index", str(index)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PYTHONPATH": str(ROOT)},
            cwd=str(index.parent),
        )
        self._pending = b""
        self._next_id = 1000

    def send(self, line: str | bytes) -> None:
        assert self.proc.stdin is not None
        data = line.encode() if isinstance(line, str) else line
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        """The next message the server writes (fails after TIMEOUT seconds without one)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + TIMEOUT
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(left, 0))
            if not ready:
                pytest.fail(f"no reply from the server within {TIMEOUT} s")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                pytest.fail("the server closed stdout (it exited)")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def list_tools(self) -> dict[str, Any]:
        """Send `tools/list` and return the very next message, which must be its answer."""
        self._next_id += 1
        self.send(json.dumps({"jsonrpc": "2.0", "id": self._next_id, "method": "tools/list"}))
        reply = self.read()
        assert reply.get("id") == self._next_id, f"expected the tools/list answer, got {reply}"
        return reply

    def peak_rss_kib(self) -> int | None:
        """The server's peak resident memory, where /proc tells it (Linux)."""
        status = Path(f"/proc/{self.proc.pid}/status")
        if not status.exists():
            return None
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return None

    def close(self) -> str:
        assert self.proc.stdin is not None
        assert self.proc.stderr is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        with self.proc.stderr:
            return self.proc.stderr.read().decode()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawHost]:
    """One initialized server for the module: every case also checks it still serves."""
    root = tmp_path_factory.mktemp("mcp-stdio")
    folder = write_corpus(root / "docs", SMALL_CORPUS)
    ragkit.index_folder(folder, root / "index", embedder=None)
    raw = RawHost(root / "index")
    raw.send(json.dumps(INITIALIZE))
    assert raw.read()["id"] == 0
    raw.send('{"jsonrpc":"2.0","method":"notifications/initialized"}')
    try:
        yield raw
    finally:
        raw.close()


@pytest.mark.parametrize(
    ("line", "code", "request_id"),
    [
        ("not json", PARSE_ERROR, None),
        ('{"jsonrpc":"2.0","id":11,"method":"tools/list"', PARSE_ERROR, None),
        ("[" * 100_000, PARSE_ERROR, None),
        ('{"jsonrpc":"2.0","id":7,"method":5}', INVALID_REQUEST, 7),
        ('{"jsonrpc":"2.0","id":"p8","method":"tools/list","params":[1]}', INVALID_REQUEST, "p8"),
        ('{"id":9,"method":"tools/list"}', INVALID_REQUEST, 9),
        ('{"jsonrpc":"1.0","id":12,"method":"tools/list"}', INVALID_REQUEST, 12),
        ('{"jsonrpc":"2.0","id":13}', INVALID_REQUEST, 13),
        # an id MCP does not accept cannot be echoed: the SDK took these for notifications
        ('{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}', INVALID_REQUEST, None),
        ('{"jsonrpc":"2.0","id":null,"method":"tools/list"}', INVALID_REQUEST, None),
        ('{"jsonrpc":"2.0","id":true,"method":"tools/list"}', INVALID_REQUEST, None),
        ("[]", INVALID_REQUEST, None),
        ("5", INVALID_REQUEST, None),
        ('"tools/list"', INVALID_REQUEST, None),
        ("null", INVALID_REQUEST, None),
        ('{"jsonrpc":"2.0","id":10,"method":"no/such/method"}', METHOD_NOT_FOUND, 10),
    ],
)
def test_an_invalid_line_gets_a_json_rpc_error_and_the_server_keeps_serving(
    host: RawHost, line: str, code: int, request_id: int | str | None
) -> None:
    host.send(line)
    reply = host.read()
    assert reply["jsonrpc"] == "2.0"
    assert "id" in reply, reply
    assert reply["id"] == request_id, reply
    assert reply["error"]["code"] == code, reply
    assert reply["error"]["message"], reply
    assert "result" not in reply
    assert host.list_tools()["result"]["tools"]


def test_a_batch_gets_an_error_for_each_request_id_in_it(host: RawHost) -> None:
    """MCP has no batches: each request in one is refused by its id, so the host waits on none."""
    batch = [
        {"jsonrpc": "2.0", "id": 21, "method": "tools/list"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "b22", "method": "tools/list"},
    ]
    host.send(json.dumps(batch))
    replies = [host.read(), host.read()]
    assert [r["id"] for r in replies] == [21, "b22"]
    assert {r["error"]["code"] for r in replies} == {INVALID_REQUEST}
    assert "batches are not supported" in replies[0]["error"]["data"]
    assert host.list_tools()["result"]["tools"]


@pytest.mark.parametrize(
    "line",
    [
        '{"jsonrpc":"2.0","method":5}',
        '{"jsonrpc":"2.0","method":"notifications/progress","params":[1]}',
        '{"jsonrpc":"2.0","method":"notifications/no-such-thing"}',
        '{"jsonrpc":"2.0","id":99,"result":[1]}',
        "   ",
    ],
    ids=["bad-method", "array-params", "unknown", "malformed-response", "blank"],
)
def test_notifications_responses_and_blank_lines_get_no_reply(host: RawHost, line: str) -> None:
    """A message without an id is never answered, however malformed; nor is a response."""
    host.send(line)
    host.list_tools()  # the next message written is this answer, not an error


def test_a_line_over_the_limit_is_refused_without_reading_it_into_memory(host: RawHost) -> None:
    """main read the whole line into memory and served it (bench/bench_mcp_lines.py)."""
    from ragkit.mcp_stdio import MAX_LINE

    before = host.peak_rss_kib()
    query = "a" * 50_000_000
    call = {"name": "search", "arguments": {"query": query}}
    host.send(json.dumps({"jsonrpc": "2.0", "id": 31, "method": "tools/call", "params": call}))
    reply = host.read()
    assert reply["id"] is None
    assert reply["error"]["code"] == INVALID_REQUEST
    assert f"longer than {MAX_LINE:,} characters" in reply["error"]["data"]
    assert host.list_tools()["result"]["tools"]
    after = host.peak_rss_kib()
    if before is not None and after is not None:
        grown_mib = (after - before) / 1024
        assert grown_mib < 150, f"the server's peak memory grew by {grown_mib:.0f} MiB"


def test_a_long_line_under_the_limit_is_served(host: RawHost) -> None:
    query = "dogs " + "x" * 1_000_000
    call = {"name": "search", "arguments": {"query": query, "k": 1}}
    host.send(json.dumps({"jsonrpc": "2.0", "id": 32, "method": "tools/call", "params": call}))
    reply = host.read()
    assert reply["id"] == 32
    assert reply["result"]["structuredContent"]["query"] == query


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc")
def test_stdin_is_still_taken_off_fd_0_while_serving(host: RawHost) -> None:
    """ragkit hands the SDK its own stdin, which skips the SDK's claim of fd 0: ragkit makes
    it, so a child process started by a tool reads EOF, not the host's messages."""
    assert os.readlink(f"/proc/{host.proc.pid}/fd/0") == "/dev/null"
    assert host.list_tools()["result"]["tools"]


def test_invalid_lines_are_logged_on_stderr(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    ragkit.index_folder(folder, tmp_path / "index", embedder=None)
    raw = RawHost(tmp_path / "index")
    try:
        raw.send(json.dumps(INITIALIZE))
        assert raw.read()["id"] == 0
        raw.send('{"jsonrpc":"2.0","id":7,"method":5}')
        assert raw.read()["id"] == 7
    finally:
        stderr = raw.close()
    assert "not a valid JSON-RPC message from the host (method: " in stderr, stderr


class Recorder:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, item: SessionMessage, /) -> None:
        self.sent.append(
            json.loads(item.message.model_dump_json(by_alias=True, exclude_unset=True))
        )


def test_guarded_stdin_passes_valid_lines_unchanged_and_bounds_line_length() -> None:
    """In-process, at a limit of 64 characters: the limit is on the line without its newline."""
    from ragkit.mcp_stdio import GuardedStdin

    valid = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}\n'
    at_limit = '{"jsonrpc":"2.0","id":2,"method":"' + "m" * 28 + '"}\n'
    assert len(at_limit) - 1 == 64
    over = '{"jsonrpc":"2.0","id":3,"method":"' + "m" * 29 + '"}\n'
    note = '{"jsonrpc":"2.0","method":"notifications/initialized"}'  # no newline at the end
    text = valid + at_limit + over + "{oops\n" + valid + note
    stdin = GuardedStdin(io.StringIO(text), limit=64)
    out = Recorder()
    stdin.answer_on(out)

    async def read_all() -> list[str]:
        return [line async for line in stdin]

    passed = anyio.run(read_all)
    assert passed == [valid, at_limit, valid, note]
    assert [(m["id"], m["error"]["code"]) for m in out.sent] == [
        (None, INVALID_REQUEST),
        (None, PARSE_ERROR),
    ]
    assert "longer than 64 characters" in out.sent[0]["error"]["data"]


# -- streamable HTTP: the SDK's transport already answers these --------------------------------


def test_http_answers_invalid_bodies_with_a_json_rpc_error(tmp_path: Path) -> None:
    """The SDK's streamable-HTTP transport answers bad bodies with HTTP 400 and a JSON-RPC
    error (id null; -32602 for a body that is JSON but not a message), and 413 past its 4 MiB
    body limit; the session keeps serving."""
    httpx = pytest.importorskip("httpx2")
    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    ragkit.index_folder(folder, tmp_path / "index", embedder=None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragkit", "mcp", "--index", str(tmp_path / "index")]
        + ["--http", "--port", str(port)],
        env={"PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            deadline = time.monotonic() + TIMEOUT
            while True:
                try:
                    first = client.post(url, headers=headers, json=INITIALIZE)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.2)
            assert first.status_code == 200
            session = {
                **headers,
                "mcp-session-id": first.headers["mcp-session-id"],
                "mcp-protocol-version": "2025-06-18",
            }
            replies = {
                body: client.post(url, headers=session, content=body)
                for body in ("not json", '{"jsonrpc":"2.0","id":7,"method":5}', "[]", "5")
            }
            too_big = client.post(url, headers=session, content=b"[" + b" " * (5 << 20) + b"]")
            listed = client.post(
                url, headers=session, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
            )
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT)
        assert proc.stderr is not None
        proc.stderr.close()
    for body, response in replies.items():
        assert response.status_code == 400, body
        error = response.json()
        assert error["id"] is None
        if body == "not json":
            assert error["error"]["code"] == PARSE_ERROR
        else:  # the SDK says -32602 (invalid params) where JSON-RPC says -32600
            assert error["error"]["code"] in (INVALID_REQUEST, -32602), error
    assert too_big.status_code == 413
    assert listed.status_code == 200
    assert '"id":2,"result":{"tools"' in listed.text
