"""What every reranker module shares: the error class and the text a reranker reads."""

from __future__ import annotations

from ..errors import RagkitError
from ..types import Chunk

__all__ = ["RerankError", "passage_text"]


class RerankError(RagkitError):
    """A reranker failed: a missing key or extra, the provider refused, or a bad reply."""


def passage_text(chunk: Chunk) -> str:
    """What a reranker reads for a chunk: its heading path, then its text (as indexed)."""
    if not chunk.headings:
        return chunk.text
    return " > ".join(chunk.headings) + "\n" + chunk.text
