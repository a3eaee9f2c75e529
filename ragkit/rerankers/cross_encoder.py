"""A local cross-encoder reranker through sentence-transformers (``ragkit-claude[rerank-local]``).

ragkit ships no cross-encoder weights: no package on PyPI bundles an ms-marco-MiniLM-class
model for offline use (docs/reranking.md lists what was checked). Point this at a model
directory on disk, or at a Hugging Face name already in the local cache; with
``local_files_only=True`` (the default) nothing is downloaded.

This module leaves out model training and ONNX export.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..types import ScoredChunk
from ._common import RerankError, passage_text

__all__ = ["CrossEncoderReranker"]


class CrossEncoderReranker:
    """A sentence-transformers ``CrossEncoder`` as a :class:`ragkit.base.Reranker`.

    Args:
        model: a model directory, or a Hugging Face model name in the local cache.
        batch_size: query-passage pairs per forward pass.
        max_length: tokens per pair (longer pairs are truncated).
        device: torch device (``"cpu"``).
        local_files_only: never download (default); ``False`` lets sentence-transformers fetch.

    Raises:
        RerankError: sentence-transformers is not installed, or the model cannot be loaded.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        batch_size: int = 32,
        max_length: int = 512,
        device: str = "cpu",
        local_files_only: bool = True,
    ) -> None:
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as exc:
            raise RerankError(
                "the cross-encoder reranker needs sentence-transformers: "
                "pip install 'ragkit-claude[rerank-local]'"
            ) from exc
        try:
            self._model: Any = CrossEncoder(
                str(model),
                device=device,
                max_length=max_length,
                local_files_only=local_files_only,
            )
        except Exception as exc:  # OSError, ValueError, ... from transformers
            raise RerankError(
                f"cannot load cross-encoder {str(model)!r}: {exc}. Pass a model directory, or a "
                "model already in the Hugging Face cache"
            ) from exc
        self.name = f"cross-encoder:{Path(str(model)).name}"
        self.batch_size = batch_size

    def rerank(self, query: str, candidates: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        """The candidates scored by the cross-encoder (its raw output: higher is better)."""
        if not candidates:
            return []
        pairs = [(query, passage_text(sc.chunk)) for sc in candidates]
        scores = self._model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False)
        out = [
            ScoredChunk(sc.chunk, float(s), sc.scores)
            for sc, s in zip(candidates, scores, strict=True)
        ]
        out.sort(key=lambda sc: (-sc.score, sc.chunk.id))
        return out
