"""What the MCP tools return: typed result shapes (structured output) and the text blocks a
host's model reads, each headed by its chunk ID and source (MCP has no ``search_result`` block).

This module leaves out the tools and the open index (``ragkit.mcp_server``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import MissingDependencyError
from .index import Index
from .types import Chunk, ScoredChunk

try:
    from mcp.server.mcpserver.exceptions import ToolError
    from typing_extensions import TypedDict
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "the MCP server needs the 'mcp' extra: pip install 'ragkit-claude[mcp]'"
    ) from exc


class SearchHit(TypedDict):
    rank: int
    chunk_id: str
    document_id: str
    source: str
    title: str | None
    headings: list[str]
    score: float
    scores: dict[str, float]
    text: str
    metadata: dict[str, Any]


class SearchOutput(TypedDict):
    query: str
    mode: str
    results: list[SearchHit]


class DocumentInfo(TypedDict):
    id: str
    path: str
    title: str | None
    metadata: dict[str, Any]


class DocumentsOutput(TypedDict):
    total: int
    offset: int
    next_offset: int | None
    documents: list[DocumentInfo]


class ChunkOutput(TypedDict):
    chunk_id: str
    document_id: str
    source: str
    title: str | None
    headings: list[str]
    start: int
    end: int
    text: str
    metadata: dict[str, Any]
    previous_chunk_id: str | None
    next_chunk_id: str | None


class CitationOutput(TypedDict):
    chunk_id: str
    source: str
    cited_text: str


class AnswerOutput(TypedDict):
    answer: str
    complete: bool
    abstained: bool
    model: str
    citations: list[CitationOutput]
    cost_usd: float | None


class IndexOutput(TypedDict):
    documents: int
    chunks: int
    added: list[str]
    replaced: list[str]
    removed: list[str]
    unchanged: int
    skipped: list[dict[str, str]]


def _jsonable(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in meta.items()}


def _title(meta: Mapping[str, Any]) -> str | None:
    title = meta.get("title")
    return title if isinstance(title, str) and title else None


def _page_label(meta: Mapping[str, Any]) -> str:
    """``" p. 12"`` or ``" pp. 12-13"`` for a chunk that knows its page(s), else ``""``."""
    pages = meta.get("pages", meta.get("page"))
    if isinstance(pages, (list, tuple)):
        nums = [p for p in pages if isinstance(p, int) and not isinstance(p, bool)]
        if len(nums) == 1:
            return f" p. {nums[0]}"
        if nums:
            return f" pp. {min(nums)}-{max(nums)}"
        return ""
    if isinstance(pages, int) and not isinstance(pages, bool):
        return f" p. {pages}"
    return ""


def source_of(chunk: Chunk) -> str:
    """Where a chunk comes from, as a reader cites it: ``guide.md`` or ``report.pdf p. 12``."""
    return chunk.document_id + _page_label(chunk.metadata)


def _hit(rank: int, sc: ScoredChunk) -> SearchHit:
    c = sc.chunk
    return {
        "rank": rank,
        "chunk_id": c.id,
        "document_id": c.document_id,
        "source": source_of(c),
        "title": _title(c.metadata),
        "headings": list(c.headings),
        "score": float(sc.score),
        "scores": {k: float(v) for k, v in sc.scores.items()},
        "text": c.text,
        "metadata": _jsonable(c.metadata),
    }


def _hit_text(hit: SearchHit) -> str:
    lines = [f"[{hit['rank']}] chunk {hit['chunk_id']}", f"source: {hit['source']}"]
    if hit["title"]:
        lines.append(f"title: {hit['title']}")
    if hit["headings"]:
        lines.append("section: " + " > ".join(hit["headings"]))
    lines.append(f"score: {hit['score']:.4f}")
    return "\n".join(lines) + "\n\n" + hit["text"]


def _neighbour(index: Index, chunk: Chunk, step: int) -> str | None:
    ordinal = chunk.id.rpartition("#")[2]
    if not ordinal.isdigit() or int(ordinal) + step < 0:
        return None
    candidate = f"{chunk.document_id}#{int(ordinal) + step}"
    try:
        index.chunk(candidate)
    except KeyError:
        return None
    return candidate


def _document_info(index: Index, doc_id: str) -> DocumentInfo:
    meta: Mapping[str, Any] = {}
    reader = getattr(index.store, "document_metadata", None)
    try:
        meta = reader(doc_id) if reader is not None else index.chunk(f"{doc_id}#0").metadata
    except KeyError:
        pass
    path = meta.get("path")
    return {
        "id": doc_id,
        "path": path if isinstance(path, str) else doc_id,
        "title": _title(meta),
        "metadata": _jsonable(meta),
    }


def _tool_error(exc: BaseException) -> ToolError:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return ToolError(str(text))
