"""Hostile filters give the same answer or the same error on every store, and MCP tool errors.

Issue 14 item 9: 195 of 3,000 random hostile filters made Postgres raise raw psycopg errors
(NUL in a key or a glob, a 5,000-star glob) where the memory store answered ``[]``. Filters are
now validated once, while parsed, so both stores refuse the same filters with the same
:class:`~ragkit.errors.FilterError`, and answer the filters they accept alike. The MCP
``search`` tool turns every ragkit error (a bad filter, a failing embedder, an unreachable
store) into a tool error, never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from ragkit.errors import FilterError, StoreUnavailableError
from ragkit.filters import MAX_GLOB_STARS, matches, parse_filter
from ragkit.index import Index
from ragkit.types import Document

from ..conftest import FakeEmbedder

DOCS = [
    Document("docs/a.md", "alpha beta gamma cats", {"team": "billing", "year": 2021}),
    Document("docs/api/b.md", "beta gamma dogs", {"team": "infra", "tags": ["x\ty", "z"]}),
    Document("notes/aaaaaaaab.md", "gamma delta fish", {"title": "line 1\nline 2"}),
    Document("c\x01d.md", "delta alpha birds", {"team": "\x1b[31mred", "year": 2024}),
]

REFUSED = [
    ({"te\x00am": "billing"}, "control character U\\+0000"),
    ({"path": {"$glob": "docs/\x00*"}}, "contains NUL"),
    ({"path": {"$glob": "*" * 5000}}, "5000 characters long; the limit is 1024"),
    ({"path": {"$glob": "*a" * (MAX_GLOB_STARS + 1)}}, "the limit is 32"),
    ({"team": {"$in": ["billing", "x\x00"]}}, "contains NUL"),
    ({"tea\nm": "billing"}, "control character U\\+000A"),
]

ACCEPTED: list[dict[str, Any]] = [
    {"path": {"$glob": "*a*a*a*a*a*a*a*b*"}},
    {"path": {"$glob": "**/**/**/*"}},
    {"path": {"$glob": "*" * MAX_GLOB_STARS}},
    {"path": {"$glob": "c\x01*"}},
    {"tags": "x\ty"},
    {"title": {"$glob": "line*\nline 2"}},
    {"team": "\x1b[31mred"},
    {"team": {"$gte": "\x01"}},
    {"path": {"$glob": "(.*)+[x]{2}$^\\"}},
    {"year": {"$lt": float("inf")}},
]


def _memory(tmp_path: Path) -> Index:
    index = Index(embedder=FakeEmbedder(), chunk_size=32, chunk_overlap=0)
    index.add(DOCS)
    index.save(tmp_path / "idx")
    return index


@pytest.fixture(params=["memory", "postgres"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Index, str]]:
    if request.param == "memory":
        made = _memory(tmp_path)
        yield made, str(tmp_path / "idx")
        return
    pytest.importorskip("ragkit.stores.postgres")
    from ragkit.stores import open_store

    url: str = request.getfixturevalue("pg_index_url")
    made = Index(
        open_store(url, migrate=True), embedder=FakeEmbedder(), chunk_size=32, chunk_overlap=0
    )
    made.add(DOCS)
    yield made, url
    made.close()


@pytest.mark.parametrize(("spec", "message"), REFUSED)
def test_every_store_refuses_a_hostile_filter_with_one_filter_error(
    index: tuple[Index, str], spec: dict[str, Any], message: str
) -> None:
    ix, _ = index
    for mode in ("bm25", "vector", "hybrid"):
        with pytest.raises(FilterError, match=message):
            ix.search("gamma", k=3, mode=mode, where=spec)  # type: ignore[arg-type]


def test_accepted_hostile_filters_give_the_same_answer_on_both_stores(
    tmp_path: Path, pg_index_url: str
) -> None:
    pytest.importorskip("ragkit.stores.postgres")
    from ragkit.stores import open_store

    memory = _memory(tmp_path)
    postgres = Index(
        open_store(pg_index_url, migrate=True),
        embedder=FakeEmbedder(),
        chunk_size=32,
        chunk_overlap=0,
    )
    try:
        postgres.add(DOCS)
        hits = 0
        for spec in ACCEPTED:
            where = parse_filter(spec)
            want = sorted(c.id for c in memory.chunks if matches(where, c.metadata))
            for ix in (memory, postgres):
                assert sorted(c.id for c in ix.store.chunks(where)) == want, spec
                assert ix.store.stats(where).chunks == len(want), spec
                for mode in ("bm25", "vector"):
                    got = sorted(
                        h.chunk.id
                        for h in ix.search("alpha gamma delta", k=10, mode=mode, where=spec)
                    )  # type: ignore[arg-type]
                    assert set(got) <= set(want), (spec, mode)
            hits += len(want)
        assert hits > len(ACCEPTED) // 2  # the filters do select chunks, not only nothing
    finally:
        postgres.close()


# -- the MCP search tool -----------------------------------------------------------------------

mcp = pytest.importorskip("mcp")


def _call_all(server: Any, calls: list[dict[str, Any]]) -> list[Any]:
    results: list[Any] = []

    async def main() -> None:
        with anyio.fail_after(90):
            async with mcp.Client(server) as client:
                for arguments in calls:
                    results.append(await client.call_tool("search", arguments))

    anyio.run(main)
    return results


def _text(result: Any) -> str:
    return "\n".join(block.text for block in result.content)


class ZeroQuery(FakeEmbedder):
    def embed_query(self, text: str) -> np.ndarray:
        return np.zeros(self.dim, dtype=np.float32)


def test_mcp_search_turns_every_ragkit_error_into_a_tool_error(
    index: tuple[Index, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragkit.mcp_server import IndexHolder, build_server

    ix, location = index
    server = build_server(IndexHolder(location, index=ix, follow_disk=False))
    calls = [{"query": "gamma", "filter": spec} for spec, _ in REFUSED]
    calls.append({"query": "gamma", "filter": {"path": {"$glob": "docs/**"}}})
    results = _call_all(server, calls)
    for (_, message), result in zip(REFUSED, results, strict=False):
        assert result.is_error, message
        assert "FilterError" not in _text(result)  # the message, not a traceback or a class
        assert re.search(message, _text(result)), _text(result)
    ok = results[-1]
    assert not ok.is_error
    assert {h["document_id"] for h in ok.structured_content["results"]} <= {
        "docs/a.md",
        "docs/api/b.md",
    }

    # A failing embedder and an unreachable store are ragkit errors too.
    ix.embedder = ZeroQuery()
    (failing,) = _call_all(server, [{"query": "gamma", "mode": "vector"}])
    assert failing.is_error
    assert "returned an all-zero vector for the query" in _text(failing)

    def unreachable(*_args: Any, **_kwargs: Any) -> Any:
        raise StoreUnavailableError("the database at postgresql://db/x cannot be reached; retry")

    monkeypatch.setattr(ix.store, "keyword_search", unreachable)
    (down,) = _call_all(server, [{"query": "gamma", "mode": "bm25"}])
    assert down.is_error
    assert "cannot be reached; retry" in _text(down)


def test_the_cli_refuses_a_hostile_filter_as_a_usage_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ragkit.cli import cli

    keyword_only = Index(embedder=None, chunk_size=32, chunk_overlap=0)
    keyword_only.add(DOCS)
    path = str(keyword_only.save(tmp_path / "kw"))
    result = CliRunner().invoke(cli, ["search", "gamma", "--index", path, "--path", "a*" * 40])
    assert result.exit_code == 2
    assert "40 * or ** wildcards; the limit is 32" in result.output
    result = CliRunner().invoke(cli, ["search", "gamma", "--index", path, "--where", "a\x00=1"])
    assert result.exit_code == 2
    assert "control character U+0000" in result.output
