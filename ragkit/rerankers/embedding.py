"""Rerank by an embedder's cosine: a semantic signal for a keyword-only index.

The candidates' texts are embedded at query time (nothing is stored), so the cost per query
grows with the number of candidates; a hybrid index, which embeds once at index time, gets the
same signal for free. It works with any :class:`~ragkit.base.Embedder`, offline with the
default one.

This module leaves out cross-attention models (``cross_encoder``, ``voyage``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..base import Embedder
from ..embedders import embed_checked
from ..errors import EmbeddingError
from ..types import ScoredChunk
from ._common import RerankError, passage_text

__all__ = ["EmbeddingReranker"]


class EmbeddingReranker:
    """Re-score candidates by the cosine between the query's and their embeddings.

    Args:
        embedder: any :class:`~ragkit.base.Embedder`.
    """

    def __init__(self, embedder: Embedder) -> None:
        if not isinstance(embedder, Embedder):
            raise TypeError(f"embedder must be an Embedder, got {type(embedder).__name__}")
        self.embedder = embedder
        self.name = f"embedder:{embedder.name}"

    @classmethod
    def from_name(cls, name: str | None = None) -> EmbeddingReranker:
        """The reranker over the default embedder, or the one called ``name``.

        Raises:
            RerankError: no embedder is installed (or none by that name).
        """
        from .. import embedders

        if name:
            resolve = getattr(embedders, "get_embedder", None)
            if resolve is None:
                raise RerankError(f"embedder {name!r} cannot be resolved by name here")
            found: Embedder = resolve(name)
            return cls(found)
        default = embedders.default_embedder()
        if default is None:
            raise RerankError(
                "the 'embedder' reranker needs an embedder: pip install 'ragkit-claude[local]'"
            )
        return cls(default)

    def rerank(self, query: str, candidates: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        """The candidates scored by cosine with the query, best first."""
        if not candidates:
            return []
        # Through the one embedding boundary: shapes, NaN, infinity and zero vectors refused.
        try:
            q = embed_checked(self.embedder, [query], dim=None, query=True)[0]
            texts = [passage_text(sc.chunk) for sc in candidates]
            docs = embed_checked(self.embedder, texts, dim=q.shape[0])
        except EmbeddingError as exc:
            raise RerankError(f"the embedding reranker failed: {exc}") from exc
        norms = np.linalg.norm(docs, axis=1) * max(float(np.linalg.norm(q)), 1e-12)
        cosines = docs @ q / np.maximum(norms, 1e-12)
        out = [
            ScoredChunk(sc.chunk, float(c), sc.scores)
            for sc, c in zip(candidates, cosines, strict=True)
        ]
        out.sort(key=lambda sc: (-sc.score, sc.chunk.id))
        return out
