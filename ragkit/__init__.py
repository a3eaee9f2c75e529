"""ragkit: small, fast, honest retrieval-augmented question answering over Claude.

Index a folder, search it with hybrid BM25 + vector retrieval, and ask Claude questions answered
only from the retrieved chunks, with the chunk IDs it cites::

    import ragkit
    index = ragkit.index_folder("docs", ".ragkit/index")
    result = ragkit.answer("How are rankings fused?", index)
    print(result.text, result.cited_chunk_ids)

"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .audit import AuditLog
from .base import Query, Store
from .bm25 import Analyzer, BM25Index
from .chunking import chunk_document, chunk_text, count_tokens
from .context import DEFAULT_BUDGET_TOKENS, ContextPlan, EvidenceGate, retrieve_context
from .embedders import Embedder, LocalEmbedder, default_embedder
from .errors import (
    AnswerError,
    EmbeddingError,
    IndexFormatError,
    LoadError,
    MissingAPIKeyError,
    MissingDependencyError,
    RagkitError,
)
from .evaluation import EvalReport, evaluate, load_beir
from .fusion import minmax_fusion, reciprocal_rank_fusion, zscore_fusion
from .index import Index, IndexUpdate, index_folder, open_index
from .loaders import LoadResult, load_file, load_folder
from .pricing import CostEstimate, ModelPrice, estimate_query_cost, register_price
from .retrievers import BM25Retriever, HybridRetriever, Retriever, VectorRetriever
from .types import Answer, Chunk, Citation, Document, ScoredChunk, Usage
from .vectors import VectorStore

if TYPE_CHECKING:
    from .answering import DEFAULT_MODEL, aanswer, aanswer_stream, answer, answer_stream

__version__ = "0.1.0"

__all__ = [
    "Analyzer",
    "Query",
    "Store",
    "Answer",
    "AnswerError",
    "AuditLog",
    "BM25Index",
    "BM25Retriever",
    "Chunk",
    "Citation",
    "ContextPlan",
    "CostEstimate",
    "DEFAULT_BUDGET_TOKENS",
    "DEFAULT_MODEL",
    "Document",
    "Embedder",
    "EmbeddingError",
    "EvalReport",
    "EvidenceGate",
    "HybridRetriever",
    "Index",
    "IndexFormatError",
    "IndexUpdate",
    "LoadError",
    "LoadResult",
    "LocalEmbedder",
    "MissingAPIKeyError",
    "MissingDependencyError",
    "ModelPrice",
    "RagkitError",
    "Retriever",
    "ScoredChunk",
    "Usage",
    "VectorRetriever",
    "VectorStore",
    "__version__",
    "aanswer",
    "aanswer_stream",
    "answer",
    "answer_stream",
    "chunk_document",
    "chunk_text",
    "count_tokens",
    "default_embedder",
    "estimate_query_cost",
    "evaluate",
    "index_folder",
    "load_beir",
    "load_file",
    "load_folder",
    "minmax_fusion",
    "open_index",
    "reciprocal_rank_fusion",
    "register_price",
    "retrieve_context",
    "zscore_fusion",
]

_ANSWERING = frozenset({"DEFAULT_MODEL", "aanswer", "aanswer_stream", "answer", "answer_stream"})


def __getattr__(name: str) -> Any:
    """Load the anthropic-backed names on first use (PEP 562)."""
    if name in _ANSWERING:
        from . import answering

        value = getattr(answering, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ragkit' has no attribute {name!r}")
