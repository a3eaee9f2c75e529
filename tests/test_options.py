"""Query and AnswerOptions: one value per path, validated by the class that owns the field."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

import ragkit
from ragkit.answering import aanswer, aanswer_stream, answer, answer_stream
from ragkit.base import Query
from ragkit.plan import AnswerOptions, retrieve_context

from .conftest import SMALL_CORPUS, write_corpus

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def index() -> ragkit.Index:
    built = ragkit.Index(embedder=None, chunk_size=16, chunk_overlap=0)
    built.add(ragkit.Document(name, text) for name, text in SMALL_CORPUS.items())
    return built


def test_the_four_entry_points_share_one_signature_of_six_parameters() -> None:
    shapes = []
    for function in (answer, answer_stream, aanswer, aanswer_stream):
        params = [
            p
            for p in inspect.signature(function).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD  # the deprecated keywords
        ]
        assert len(params) <= 6, function.__name__
        shapes.append([(p.name, p.kind) for p in params])
    assert shapes[0] == shapes[1] == shapes[2] == shapes[3]
    assert [name for name, _ in shapes[0]] == [
        "question", "index", "options", "client", "plan", "audit"
    ]  # fmt: skip


def test_answer_options_validate_their_fields() -> None:
    with pytest.raises(ValueError, match=r"max_tokens \(0\) must be an integer >= 1"):
        AnswerOptions(max_tokens=0)
    with pytest.raises(ValueError, match=r"budget_tokens \(True\) must be an integer >= 1"):
        AnswerOptions(budget_tokens=True)
    with pytest.raises(ValueError, match=r"strategy \('all'\) must be one of"):
        AnswerOptions(strategy="all")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"timeout \(0\) must be a number of seconds > 0"):
        AnswerOptions(timeout=0)
    with pytest.raises(ValueError, match=r"model \(''\) must be a model id"):
        AnswerOptions(model="")
    with pytest.raises(TypeError, match="gate must be True, False or an EvidenceGate"):
        AnswerOptions(gate="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_retries \(-1\) must be an integer >= 0"):
        AnswerOptions(max_retries=-1)
    assert AnswerOptions(timeout=5).timeout == 5.0
    with pytest.raises(TypeError, match="unexpected keyword argument 'kk'"):
        retrieve_context("dogs", ragkit.Index(embedder=None), kk=3)


def test_a_k_next_to_a_query_is_not_silently_ignored(index: ragkit.Index) -> None:
    """main: retrieve_context(Query(k=3), index, k=5) retrieved 3."""
    retrieve = AnswerOptions(strategy="retrieve", gate=False)
    with pytest.warns(
        DeprecationWarning, match=r"retrieve_context\(\): the keyword arguments k are"
    ):
        plan = retrieve_context(Query("dogs cats rust python", k=3), index, retrieve, k=5)
    assert len(plan.retrieved) == 5
    plan = retrieve_context(Query("dogs cats rust python", k=3), index, retrieve)
    assert len(plan.retrieved) == 3
    with pytest.warns(DeprecationWarning, match="the keyword arguments where are deprecated"):
        filtered = retrieve_context(
            Query("dogs cats", k=3), index, retrieve, where={"path": "dogs.md"}
        )
    assert {sc.chunk.document_id for sc in filtered.retrieved} == {"dogs.md"}


def test_answer_takes_a_query_and_options(index: ragkit.Index, claude: Any) -> None:
    client, rec = claude(["success"])
    ragkit.answer(
        Query("How do dogs learn?", k=2),
        index,
        AnswerOptions(strategy="retrieve", gate=False, max_tokens=300, model="claude-x"),
        client=client,
    )
    request = rec.requests[0]
    assert request["max_tokens"] == 300
    assert request["model"] == "claude-x"
    blocks = [b for b in request["messages"][0]["content"] if b["type"] == "search_result"]
    assert 1 <= len(blocks) <= 2
    # the keywords of before still work for one release, over the options
    client, rec = claude(["success"])
    with pytest.warns(
        DeprecationWarning,
        match=r"answer\(\): the keyword arguments gate, max_tokens, strategy are deprecated: pass",
    ):
        ragkit.answer("How do dogs learn?", index, AnswerOptions(max_tokens=300), client=client,
                      max_tokens=200, strategy="retrieve", gate=False)  # fmt: skip
    assert rec.requests[0]["max_tokens"] == 200


def test_mcp_ask_is_offered_with_an_auth_token_like_the_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mcp")
    from mcp import Client

    from ragkit.mcp_server import IndexHolder, build_server

    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    ragkit.index_folder(folder, tmp_path / "idx", embedder=None)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "token")
    server = build_server(IndexHolder(tmp_path / "idx"))
    tools: set[str] = set()

    async def main() -> None:
        async with Client(server) as c:
            tools.update(t.name for t in (await c.list_tools()).tools)

    anyio.run(main)
    assert "ask" in tools


def test_ragkit_ask_without_a_key_does_not_import_the_anthropic_sdk(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    ragkit.index_folder(folder, tmp_path / "idx", embedder=None)
    code = (
        "import sys\n"
        "from ragkit.cli import cli\n"
        f"cli.main(['ask', 'How do dogs learn?', '--index', {str(tmp_path / 'idx')!r}],"
        " standalone_mode=False)\n"
        "print('anthropic loaded:', 'anthropic' in sys.modules)\n"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "showed the passages instead of asking" in done.stdout
    assert "anthropic loaded: False" in done.stdout
