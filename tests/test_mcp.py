"""`ragkit mcp`, driven as a host drives it: the MCP SDK's own client over stdio, in a subprocess.

Indexes are keyword-only, so no model is loaded. Each session is bounded by a timeout.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")

from mcp import Client, StdioServerParameters  # noqa: E402

import ragkit  # noqa: E402
from ragkit.mcp_server import IndexHolder, build_server  # noqa: E402

from .conftest import SMALL_CORPUS, write_corpus  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SESSION_TIMEOUT = 90  # seconds; a hung server fails the test instead of hanging the suite


def run_session(index: Path, body: Callable[[Client], Awaitable[None]], *extra: str) -> None:
    """Start `ragkit mcp --index INDEX` as a subprocess and run ``body`` with a client on it."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ragkit", "mcp", "--index", str(index), *extra],
        env={"PYTHONPATH": str(ROOT)},
        cwd=str(index.parent),
    )

    async def main() -> None:
        with anyio.fail_after(SESSION_TIMEOUT):
            async with Client(params) as client:
                await body(client)

    anyio.run(main)


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path]:
    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    index = tmp_path / "index"
    ragkit.index_folder(folder, index, embedder=None)
    return folder, index


@pytest.fixture
def tagged(tmp_path: Path) -> Path:
    """A keyword-only index of SMALL_CORPUS whose documents carry a `kind` and a `title`."""
    index = ragkit.Index(embedder=None)
    index.add(
        ragkit.Document(name, text, {"kind": name.rsplit(".", 1)[1], "title": name.split(".")[0]})
        for name, text in SMALL_CORPUS.items()
    )
    index.save(tmp_path / "tagged")
    return tmp_path / "tagged"


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content)


def test_stdio_session_search_list_get_and_tool_errors(tagged: Path) -> None:
    index = tagged
    seen: dict[str, Any] = {}

    async def body(client: Client) -> None:
        seen["tools"] = {t.name for t in (await client.list_tools()).tools}
        seen["search"] = await client.call_tool("search", {"query": "borrow checker", "k": 2})
        seen["filtered"] = await client.call_tool(
            "search", {"query": "language", "filter": {"kind": {"$in": ["rst", "md"]}}}
        )
        seen["docs"] = await client.call_tool("list_documents", {"limit": 3})
        seen["docs2"] = await client.call_tool("list_documents", {"offset": 3})
        seen["chunk"] = await client.call_tool("get_chunk", {"chunk_id": "rust.txt#0"})
        seen["bad_k"] = await client.call_tool("search", {"query": "cats", "k": 0})
        seen["bad_filter"] = await client.call_tool(
            "search", {"query": "cats", "filter": {"year": {"$near": 3}}}
        )
        seen["bad_mode"] = await client.call_tool("search", {"query": "cats", "mode": "vector"})
        seen["no_chunk"] = await client.call_tool("get_chunk", {"chunk_id": "nope.md#4"})
        seen["missing_arg"] = await client.call_tool("search", {})
        # the server is still serving after every error
        seen["after"] = await client.call_tool("search", {"query": "cats", "k": 1})

    run_session(index, body)

    # read-only by default, and no `ask` without ANTHROPIC_API_KEY
    assert seen["tools"] == {"search", "list_documents", "get_chunk"}

    search = seen["search"]
    assert not search.is_error
    hits = search.structured_content["results"]
    assert hits[0]["chunk_id"] == "rust.txt#0"
    assert hits[0]["source"] == "rust.txt"
    assert "borrow checker" in hits[0]["text"]
    # each result is its own content block headed by its chunk id and source
    assert len(search.content) == len(hits)
    assert search.content[0].text.startswith(
        "[1] chunk rust.txt#0\nsource: rust.txt\ntitle: rust\n"
    )

    filtered = seen["filtered"].structured_content["results"]
    assert [h["document_id"] for h in filtered] == ["python.rst"]

    docs = seen["docs"].structured_content
    assert docs["total"] == 4
    assert [d["id"] for d in docs["documents"]] == ["cats.md", "dogs.md", "python.rst"]
    assert docs["next_offset"] == 3
    assert docs["documents"][0]["title"] == "cats"
    assert docs["documents"][0]["metadata"]["kind"] == "md"
    last = seen["docs2"].structured_content
    assert [d["id"] for d in last["documents"]] == ["rust.txt"]
    assert last["next_offset"] is None

    chunk = seen["chunk"].structured_content
    assert chunk["document_id"] == "rust.txt"
    assert chunk["text"].startswith("Rust is a systems programming language")
    assert chunk["previous_chunk_id"] is None
    assert chunk["metadata"] == {"kind": "txt", "title": "rust", "path": "rust.txt"}

    for name, message in (
        ("bad_k", "greater than or equal to 1"),
        ("bad_filter", "filter operator $near"),
        ("bad_mode", "needs vectors, but this index is keyword-only"),
        ("no_chunk", "no chunk 'nope.md#4' in this index"),
        ("missing_arg", "query"),
    ):
        result = seen[name]
        assert result.is_error, name
        assert message in text_of(result), (name, text_of(result))
    assert seen["after"].structured_content["results"][0]["document_id"] == "cats.md"


def test_index_rebuilt_on_disk_is_picked_up_without_restart(built: tuple[Path, Path]) -> None:
    folder, index = built
    found: dict[str, list[str]] = {}

    async def body(client: Client) -> None:
        before = await client.call_tool("search", {"query": "platypus"})
        found["before"] = [h["chunk_id"] for h in before.structured_content["results"]]
        (folder / "platypus.md").write_text("# Platypus\n\nThe platypus lays eggs.\n")
        await anyio.to_thread.run_sync(lambda: ragkit.index_folder(folder, index, embedder=None))
        after = await client.call_tool("search", {"query": "platypus"})
        found["after"] = [h["chunk_id"] for h in after.structured_content["results"]]
        docs = await client.call_tool("list_documents", {})
        found["docs"] = [d["id"] for d in docs.structured_content["documents"]]

    run_session(index, body)
    assert found["before"] == []
    assert found["after"] == ["platypus.md#0"]
    assert "platypus.md" in found["docs"]


def test_index_tool_only_with_allow_index(built: tuple[Path, Path], tmp_path: Path) -> None:
    _, index = built
    extra = write_corpus(tmp_path / "more", {"otters.md": "# Otters\n\nOtters hold hands.\n"})
    seen: dict[str, Any] = {}

    async def body(client: Client) -> None:
        seen["tools"] = {t.name for t in (await client.list_tools()).tools}
        seen["not_dir"] = await client.call_tool("index", {"folder": str(tmp_path / "none")})
        seen["index"] = await client.call_tool("index", {"folder": str(extra)})
        seen["search"] = await client.call_tool("search", {"query": "otters hold hands"})

    run_session(index, body, "--allow-index")
    assert "index" in seen["tools"]
    assert seen["not_dir"].is_error
    assert "is not a directory" in text_of(seen["not_dir"])
    out = seen["index"].structured_content
    assert out["added"] == ["otters.md"]
    assert out["removed"] == []  # adding a folder keeps the documents already indexed
    assert out["documents"] == 5
    assert seen["search"].structured_content["results"][0]["chunk_id"] == "otters.md#0"
    # saved: a fresh reader sees it too
    assert "otters.md" in ragkit.Index.load(index, embedder=None).document_ids


@pytest.mark.parametrize(
    ("reply", "note", "complete"),
    [
        ("success", "(No retrieved chunk was cited: treat this as not", True),
        (
            "max_tokens",
            "(The answer was cut off, stop reason max_tokens: it is incomplete.)",
            False,
        ),
    ],
)
def test_ask_tool_says_when_an_answer_is_uncited_or_cut_off(
    built: tuple[Path, Path], claude, reply: str, note: str, complete: bool
) -> None:
    # Found by an outside probe: the host's model read an answer whose citations were all
    # dropped, or one cut off at max_tokens, as plain text like any supported, whole answer.
    from .conftest import load_message

    _, index = built
    body = load_message(reply)
    if reply == "success":  # every citation names a chunk that was never sent
        for block in body["content"]:
            for citation in block.get("citations") or []:
                citation["source"] = "ghost.md#9"
    client, _ = claude([body])
    server = build_server(IndexHolder(index), client=client)
    seen: dict[str, Any] = {}

    async def main() -> None:
        with anyio.fail_after(SESSION_TIMEOUT):
            async with Client(server) as c:
                seen["ask"] = await c.call_tool("ask", {"question": "How do dogs learn?"})

    anyio.run(main)
    result = seen["ask"]
    assert not result.is_error
    assert note in result.content[0].text
    assert result.structured_content["complete"] is complete


def test_mcp_http_on_a_port_in_use_is_one_error_line(built: tuple[Path, Path]) -> None:
    # Found by an outside probe: uvicorn logged "address already in use" and the process
    # exited with status 3, after "serving ... over http" had been printed.
    import socket
    import subprocess

    _, index = built
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "ragkit", "mcp", "--index", str(index), "--http"]
            + ["--port", str(port)],
            env={"PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=SESSION_TIMEOUT,
        )
    assert done.returncode == 1
    assert f"Error: cannot serve on 127.0.0.1:{port} (" in done.stderr
    assert "pick another port with --port" in done.stderr
    assert "serving" not in done.stderr


def test_ask_tool_answers_with_cited_chunk_ids(built: tuple[Path, Path], claude) -> None:
    _, index = built
    client, rec = claude(["success"])
    server = build_server(IndexHolder(index), client=client)
    seen: dict[str, Any] = {}

    async def main() -> None:
        with anyio.fail_after(SESSION_TIMEOUT):
            async with Client(server) as c:
                seen["tools"] = {t.name for t in (await c.list_tools()).tools}
                seen["ask"] = await c.call_tool("ask", {"question": "How do dogs learn?"})
                seen["empty"] = await c.call_tool("ask", {"question": ""})

    anyio.run(main)
    assert "ask" in seen["tools"]
    result = seen["ask"]
    assert not result.is_error
    out = result.structured_content
    assert out["answer"].startswith("Dogs learn commands through repetition and rewards")
    assert out["citations"], "the fixture cites passages"
    for citation in out["citations"]:
        assert f"chunk {citation['chunk_id']} " in result.content[0].text
    assert len(rec.requests) == 1
    assert seen["empty"].is_error
    assert len(rec.requests) == 1  # a bad argument makes no call


def test_a_bad_index_starts_the_server_and_every_tool_call_says_why(tmp_path: Path) -> None:
    """main: the server exited (a host shows only "Failed to connect"). Now it serves, and the
    index is picked up once it is built."""
    location = tmp_path / "none"
    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    seen: dict[str, Any] = {}

    async def body(client: Client) -> None:
        seen["tools"] = {t.name for t in (await client.list_tools()).tools}
        seen["search"] = await client.call_tool("search", {"query": "dogs"})
        seen["docs"] = await client.call_tool("list_documents", {})
        await anyio.to_thread.run_sync(lambda: ragkit.index_folder(folder, location, embedder=None))
        seen["after"] = await client.call_tool("search", {"query": "dogs"})

    run_session(location, body)
    assert {"search", "list_documents", "get_chunk"} <= seen["tools"]
    for name in ("search", "docs"):
        assert seen[name].is_error
        text = text_of(seen[name])
        assert "cannot be opened" in text, text
        assert "ragkit index DIR --index" in text, text
    assert not seen["after"].is_error
    assert seen["after"].structured_content["results"][0]["document_id"] == "dogs.md"
