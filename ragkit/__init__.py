"""ragkit: small, fast, honest retrieval-augmented question answering over Claude.

Index a folder, search it with hybrid BM25 + vector retrieval, and ask Claude questions answered
only from the retrieved chunks, with the chunk IDs it cites::

    import ragkit
    index = ragkit.index_folder("docs", ".ragkit/index")   # or "postgresql://..."
    result = ragkit.answer("How are rankings fused?", index, where={"team": "search"})
    print(result.text, result.cited_chunk_ids)

The top level holds what users call or receive. Everything else has a stable submodule path:
``ragkit.base`` (extension points: Embedder, Store, Loader, Reranker, Retriever),
``ragkit.stores`` (MemoryStore, PostgresStore), ``ragkit.filters``, ``ragkit.retrievers``,
``ragkit.embedders``, ``ragkit.loaders``, ``ragkit.chunking``, ``ragkit.bm25``, ``ragkit.vectors``,
``ragkit.fusion``, ``ragkit.context``, ``ragkit.answering``, ``ragkit.pricing``, ``ragkit.audit``,
``ragkit.evaluation`` and ``ragkit.errors``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import AnswerError, IndexFormatError, RagkitError, StoreError
from .types import Answer, Chunk, Citation, Document, ScoredChunk, Usage

if TYPE_CHECKING:
    from .answering import aanswer, aanswer_stream, answer, answer_stream
    from .base import Embedder, Query, Retriever, Store
    from .context import ContextPlan, EvidenceGate, retrieve_context
    from .evaluation import evaluate
    from .index import Index, IndexUpdate, index_folder, open_index
    from .loaders import load_folder

__version__ = "0.2.0"

__all__ = [
    "Answer",
    "AnswerError",
    "Chunk",
    "Citation",
    "ContextPlan",
    "Document",
    "Embedder",
    "EvidenceGate",
    "Index",
    "IndexFormatError",
    "IndexUpdate",
    "Query",
    "RagkitError",
    "Retriever",
    "ScoredChunk",
    "Store",
    "StoreError",
    "Usage",
    "__version__",
    "aanswer",
    "aanswer_stream",
    "answer",
    "answer_stream",
    "evaluate",
    "index_folder",
    "load_folder",
    "open_index",
    "retrieve_context",
]

# Names loaded from their submodule on first use (PEP 562), so that a process which needs only a
# few of them (``ragkit search``) does not import loaders, evaluation or the Claude SDK.
_LAZY: dict[str, str] = {
    "DEFAULT_MODEL": "answering",
    "aanswer": "answering",
    "aanswer_stream": "answering",
    "answer": "answering",
    "answer_stream": "answering",
    "Embedder": "base",
    "Query": "base",
    "Retriever": "base",
    "Store": "base",
    "ContextPlan": "context",
    "EvidenceGate": "context",
    "retrieve_context": "context",
    "evaluate": "evaluation",
    "Index": "index",
    "IndexUpdate": "index",
    "index_folder": "index",
    "open_index": "index",
    "load_folder": "loaders",
}


def __getattr__(name: str) -> Any:
    """Load a public name from its submodule on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ragkit' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
