"""Shared fixtures: a Claude client on a mock transport, a tiny deterministic embedder, corpora.

No test reaches the network: the API key is removed from the environment for every test, so
an un-injected real client fails loudly instead of calling the API.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import numpy as np
import pytest

from ragkit.base import Query, Retriever
from ragkit.types import ScoredChunk

FIXTURES = Path(__file__).parent / "fixtures"
MESSAGES = FIXTURES / "messages"
SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
# The keys of an evaluation report (`ragkit eval --json`, `evaluate()`), which users script on.
REPORT_KEYS = [
    "ndcg@10",
    "recall@10",
    "recall@100",
    "mrr@10",
    "index_s",
    "query_p50_ms",
    "query_p95_ms",
    "n_queries",
    "retriever",
]


@pytest.fixture(autouse=True)
def _no_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAGKIT_INDEX", raising=False)
    monkeypatch.delenv("RAGKIT_MODEL", raising=False)


def load_message(name: str) -> dict[str, Any]:
    """A Messages API response body from tests/fixtures/messages/NAME.json."""
    data: dict[str, Any] = json.loads((MESSAGES / f"{name}.json").read_text())
    return data


Handler = Callable[[httpx2.Request], httpx2.Response]


class Recorder:
    """Collects the parsed JSON body of every request the mock transport sees."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.raw: list[httpx2.Request] = []

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]


def _as_response(item: Any) -> httpx2.Response:
    if isinstance(item, httpx2.Response):
        return item
    if isinstance(item, str):  # a fixture name
        return httpx2.Response(200, json=load_message(item))
    if isinstance(item, tuple):  # (status, body[, headers])
        status, body, *rest = item
        headers = rest[0] if rest else {}
        return httpx2.Response(status, json=body, headers=headers)
    return httpx2.Response(200, json=item)


@pytest.fixture
def claude() -> Callable[..., tuple[anthropic.Anthropic, Recorder]]:
    """Factory: ``client, rec = claude(handler_or_responses)``.

    Pass a handler ``(httpx2.Request) -> httpx2.Response``, or a sequence of canned responses
    (fixture names, dict bodies, ``(status, body[, headers])`` tuples or ``httpx2.Response``),
    served in order and the last one repeated.
    """

    def make(
        responses: Handler | Sequence[Any] | str, **client_kwargs: Any
    ) -> tuple[anthropic.Anthropic, Recorder]:
        rec = Recorder()
        if callable(responses):
            inner: Handler = responses
        else:
            items = [responses] if isinstance(responses, str) else list(responses)

            def inner(request: httpx2.Request) -> httpx2.Response:
                i = min(len(rec.requests) - 1, len(items) - 1)
                return _as_response(items[i])

        def handler(request: httpx2.Request) -> httpx2.Response:
            rec.raw.append(request)
            rec.requests.append(json.loads(request.content or b"{}"))
            return inner(request)

        client = anthropic.Anthropic(
            api_key="test-key",
            max_retries=client_kwargs.pop("max_retries", 0),
            http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
            **client_kwargs,
        )
        return client, rec

    return make


_WORD = re.compile(r"\w+")


class FixedRetriever(Retriever):
    """Returns preset results, whatever the query (the contract's rules still apply)."""

    name = "hybrid"
    score_kind = "fused"

    def __init__(self, results: list[ScoredChunk]) -> None:
        self.results = results

    def score_kinds(self) -> dict[str, str]:
        return {"bm25": "bm25", "vector": "cosine"}

    def _search(self, query: Query) -> list[ScoredChunk]:
        return list(self.results)


class FakeEmbedder:
    """Deterministic bag-of-words hashing embedder: texts sharing words get similar vectors.

    Good enough for ranking tests (cosine of word overlap), instant, and needs no model.
    """

    batch_size = 256
    max_input_tokens = 512

    def __init__(self, dim: int = 64, name: str = "fake-hash-64") -> None:
        self.dim = dim
        self.name = name
        self.calls: list[int] = []

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
            else:  # no words, or their signs cancelled: ragkit refuses all-zero vectors
                out[row, 0] = 1.0
        return out


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


SMALL_CORPUS = {
    "cats.md": "# Cats\n\nCats are small carnivorous mammals. They sleep for most of the day.\n\n"
    "## Diet\n\nA cat eats meat: fish, chicken and mice.\n",
    "dogs.md": "# Dogs\n\nDogs were domesticated from wolves. They are loyal companions.\n\n"
    "## Training\n\nDogs learn commands through repetition and rewards.\n",
    "rust.txt": "Rust is a systems programming language focused on memory safety without "
    "a garbage collector. The borrow checker enforces ownership rules at compile time.\n",
    "python.rst": "Python\n======\n\nPython is a dynamically typed language. Its package index is "
    "called PyPI, and pip installs packages from it.\n",
}


def write_corpus(folder: Path, files: dict[str, str] | Iterable[tuple[str, str]]) -> Path:
    items = files.items() if isinstance(files, dict) else files
    for rel, text in items:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A folder with four small documents in three formats."""
    return write_corpus(tmp_path / "docs", SMALL_CORPUS)


# -- a real Postgres server (ragkit.stores.local_postgres: PostgreSQL + pgvector, unix socket) ----

_pg_schemas = itertools.count()


@pytest.fixture(scope="session")
def local_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The bundled server (started once per session), or a skip when its package is missing."""
    pytest.importorskip("psycopg")
    pytest.importorskip("pgvector")
    from ragkit.errors import MissingDependencyError
    from ragkit.stores import local_postgres

    try:
        server = local_postgres.start(tmp_path_factory.mktemp("pgdata"), delete=True)
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_url(local_pg: Any) -> str:
    """A unix-socket URL of the bundled server, whose pgvector was checked to run on this CPU.

    When it cannot, the Postgres tests skip and tests/stores/test_local_server.py fails once
    with the cause, instead of every test failing on its own.
    """
    from ragkit.errors import ExtensionError
    from ragkit.stores.local_postgres import check_pgvector

    try:
        check_pgvector(local_pg.url)
    except ExtensionError as exc:
        pytest.skip(f"the bundled Postgres server cannot run pgvector here: {exc}")
    url: str = local_pg.url
    return url


@pytest.fixture
def pg_index_url(pg_url: str) -> Iterator[str]:
    """A ``postgresql://`` index location in a schema of its own, dropped after the test."""
    import psycopg

    schema = f"ix{next(_pg_schemas)}"
    sep = "&" if "?" in pg_url else "?"
    yield f"{pg_url}{sep}ragkit_schema={schema}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    """Fake installed entry points: ``plugins[group] = [EntryPoint(...)]``; registrations the
    test makes (``register_loader`` and the like) are forgotten after it."""
    from ragkit import plugins as module

    points: dict[str, list[Any]] = {}
    monkeypatch.setattr(module, "entry_points", lambda group: tuple(points.get(group, ())))
    saved = [(registry, dict(registry._registered)) for registry in module.REGISTRIES]
    for registry in module.REGISTRIES:
        registry.reload()
    yield points
    for registry, registered in saved:
        registry._registered = registered
        registry.reload()
