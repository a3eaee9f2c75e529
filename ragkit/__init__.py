"""ragkit: small, fast, honest retrieval-augmented question answering over Claude.

Index a folder, search it with hybrid BM25 + vector retrieval, and ask Claude questions answered
only from the retrieved chunks, with the chunk IDs it cites::

    import ragkit
    index = ragkit.index_folder("docs", ".ragkit/index")   # or "postgresql://..."
    question = ragkit.Query("How are rankings fused?", k=5, where={"team": "search"})
    result = ragkit.answer(question, index, ragkit.AnswerOptions(max_tokens=512))
    print(result.text, result.cited_chunk_ids)

The top level holds what users call or receive. Everything else has a stable submodule path:
``ragkit.base`` (extension points: Embedder, Store, Loader, Reranker, Retriever, Corpus),
``ragkit.stores`` (MemoryStore, PostgresStore), ``ragkit.filters``, ``ragkit.retrievers``,
``ragkit.embedders``, ``ragkit.loaders``, ``ragkit.chunking``, ``ragkit.tokens``, ``ragkit.bm25``,
``ragkit.vectors``, ``ragkit.fusion``, ``ragkit.ingest`` (folder sync), ``ragkit.plan``,
``ragkit.gate``, ``ragkit.answering``, ``ragkit.pricing``, ``ragkit.audit``,
``ragkit.evaluation`` and ``ragkit.errors`` (``ragkit.context`` is the old path of plan and gate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names
from .errors import AnswerError, IndexFormatError, RagkitError, StoreError
from .types import Answer, Chunk, Citation, Document, ScoredChunk, Usage

if TYPE_CHECKING:
    from .answering import aanswer, aanswer_stream, answer, answer_stream
    from .base import Embedder, Query, Retriever, Store
    from .evaluation import evaluate
    from .gate import EvidenceGate
    from .index import Index, IndexUpdate, open_index
    from .ingest import FolderSource, index_folder
    from .loaders import load_folder
    from .plan import AnswerOptions, ContextPlan, retrieve_context

__version__ = "0.2.0"

__all__ = [
    "Answer",
    "AnswerError",
    "AnswerOptions",
    "Chunk",
    "Citation",
    "ContextPlan",
    "Document",
    "Embedder",
    "EvidenceGate",
    "FolderSource",
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
    "EvidenceGate": "gate",
    "AnswerOptions": "plan",
    "ContextPlan": "plan",
    "retrieve_context": "plan",
    "evaluate": "evaluation",
    "Index": "index",
    "IndexUpdate": "index",
    "open_index": "index",
    "FolderSource": "ingest",
    "index_folder": "ingest",
    "load_folder": "loaders",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)
