"""Every old name or keyword kept for one release still works and says what replaces it.

Each row of the migration table in docs/api.md has a test here: the old call gives the same
result as the new one and raises a ``DeprecationWarning`` naming the replacement.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

import ragkit
from ragkit.plan import AnswerOptions, retrieve_context

from .conftest import FIXTURES, load_message, write_corpus

SSE = FIXTURES / "sse"

DOCS = {"dogs.md": "Dogs learn commands by repetition and reward.", "cats.md": "Cats eat fish."}


@pytest.fixture
def index() -> ragkit.Index:
    built = ragkit.Index(embedder=None)
    built.add([ragkit.Document(path, text) for path, text in DOCS.items()])
    return built


def test_the_old_context_module_warns_and_reexports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "ragkit.context", raising=False)
    with pytest.warns(DeprecationWarning, match=r"ragkit.context is deprecated: import from"):
        context = importlib.import_module("ragkit.context")
    assert context.retrieve_context is retrieve_context
    assert context.count_tokens is ragkit.tokens.count_tokens  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "new"),
    [("index_folder", "ragkit.index_folder"), ("CHECKPOINT_SECONDS", "ragkit.ingest.")],
)
def test_names_moved_out_of_ragkit_index_warn(name: str, new: str) -> None:
    from ragkit import index as module
    from ragkit import ingest

    with pytest.warns(DeprecationWarning, match=rf"ragkit.index.{name} is deprecated: use {new}"):
        old = getattr(module, name)
    assert old is getattr(ingest, name)


def test_update_from_folder_warns_when_called(tmp_path: Path, index: ragkit.Index) -> None:
    from ragkit import index as module

    folder = write_corpus(tmp_path / "docs", {"a.md": "alpha"})
    update_from_folder = module.update_from_folder  # warns on the call, not on the import
    with pytest.warns(DeprecationWarning, match=r"update_from_folder\(\) is deprecated: use"):
        update_from_folder(index, folder)


def test_chunking_count_tokens_warns() -> None:
    from ragkit import chunking, tokens

    with pytest.warns(DeprecationWarning, match=r"ragkit.chunking.count_tokens is deprecated"):
        old = chunking.count_tokens  # type: ignore[attr-defined]
    assert old is tokens.count_tokens


def test_retrieve_context_keywords_warn_and_still_apply(index: ragkit.Index) -> None:
    with pytest.warns(
        DeprecationWarning,
        match=r"retrieve_context\(\): the keyword arguments k, strategy are deprecated: pass a",
    ):
        plan = retrieve_context("dogs", index, k=1, strategy="retrieve")
    assert plan == retrieve_context(
        ragkit.Query("dogs", k=1), index, AnswerOptions(strategy="retrieve")
    )


def _client(entry: str, seen: list[dict[str, Any]]) -> Any:
    """A client on a mock transport answering ``entry``'s request (SSE for the streams)."""
    if entry.endswith("stream"):
        body = (SSE / "success.sse").read_bytes()
        headers = {"content-type": "text/event-stream"}
    else:
        body = json.dumps(load_message("success")).encode()
        headers = {"content-type": "application/json"}

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        return httpx2.Response(200, content=body, headers=headers)

    if entry.startswith("aanswer"):

        async def ahandler(request: httpx2.Request) -> httpx2.Response:
            return handler(request)

        transport = httpx2.MockTransport(ahandler)
        return anthropic.AsyncAnthropic(
            api_key="test-key", max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
        )
    return anthropic.Anthropic(
        api_key="test-key",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def _run(entry: str, index: ragkit.Index, client: Any) -> Any:
    call = getattr(ragkit, entry)
    kwargs: dict[str, Any] = {"client": client, "k": 1, "max_tokens": 200, "gate": False}
    if entry == "answer":
        return call("How do dogs learn?", index, **kwargs)
    if entry == "answer_stream":
        return list(call("How do dogs learn?", index, **kwargs))[-1]
    if entry == "aanswer":
        return asyncio.run(call("How do dogs learn?", index, **kwargs))

    async def collect() -> Any:
        return [item async for item in call("How do dogs learn?", index, **kwargs)][-1]

    return asyncio.run(collect())


@pytest.mark.parametrize("entry", ["answer", "answer_stream", "aanswer", "aanswer_stream"])
def test_answer_keywords_warn_in_all_four_entry_points(entry: str, index: ragkit.Index) -> None:
    seen: list[dict[str, Any]] = []
    with pytest.warns(
        DeprecationWarning,
        match=rf"^{entry}\(\): the keyword arguments gate, k, max_tokens are deprecated: pass",
    ):
        result = _run(entry, index, _client(entry, seen))
    assert isinstance(result, ragkit.Answer)
    assert seen[0]["max_tokens"] == 200


def test_old_registry_names_warn() -> None:
    from ragkit.embedders import available_embedders, embedder_families
    from ragkit.loaders import available_loaders, registered_suffixes

    with pytest.warns(DeprecationWarning, match=r"embedder_families\(\) is deprecated: use"):
        assert embedder_families() == available_embedders()
    with pytest.warns(DeprecationWarning, match=r"registered_suffixes\(\) is deprecated: use"):
        assert registered_suffixes() == available_loaders()
