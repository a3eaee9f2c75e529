"""Embedders: texts in, unit-length float32 vectors out, by name.

The protocol is :class:`ragkit.base.Embedder` (re-exported here): a ``name`` that includes model
and dimension, ``dim``, ``batch_size``, ``max_input_tokens``, ``embed_documents(texts)`` and
``embed_query(text)``. One module per implementation:

- :mod:`~ragkit.embedders.minilm`: the offline default, all-MiniLM-L6-v2 at int8 on
  onnxruntime (extra ``local``; no torch).
- :mod:`~ragkit.embedders.st`: any sentence-transformers model on torch (extra ``st``).
- :mod:`~ragkit.embedders.voyage`: Voyage AI's hosted models (extra ``voyage``).
- :mod:`~ragkit.embedders.openai`: OpenAI's hosted models (extra ``openai``).

:mod:`~ragkit.embedders.registry` resolves a stored name to an embedder through the
:mod:`ragkit.plugins` registry ``EMBEDDERS`` (entry-point group ``ragkit.embedders``, or
:func:`register_embedder`), where third parties plug in. ``check_embeddings`` validates what any
embedder returned. Importing this package is cheap: no model, runtime or HTTP client loads until
an embedder is first called.

This package leaves out storing and searching vectors (the index and its stores).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragkit.base import Embedder

from .._lazy import lazy_names
from ._common import check_embeddings, embed_checked, plan_batches
from .minilm import (
    MINILM_NAME,
    MINILM_V1_NAME,
    MINILM_V3_NAME,
    MiniLMEmbedder,
    minilm_available,
)
from .registry import (
    EMBEDDERS,
    ENTRY_POINT_GROUP,
    GATE_THRESHOLDS,
    available_embedders,
    default_embedder,
    embedder_families,
    gate_threshold,
    get_embedder,
    register_embedder,
)

if TYPE_CHECKING:
    from ._http import EmbedderKeyError, EmbeddingCost, HostedEmbedder
    from .openai import OpenAIEmbedder
    from .st import SentenceTransformerEmbedder
    from .voyage import VoyageEmbedder

LocalEmbedder = MiniLMEmbedder
"""The offline default embedder (the name ragkit 0.1 used; now torch-free)."""

local_embedder_available = minilm_available
"""Whether the ``local`` extra (the offline default embedder) is installed."""

__all__ = [
    "EMBEDDERS",
    "ENTRY_POINT_GROUP",
    "GATE_THRESHOLDS",
    "MINILM_NAME",
    "MINILM_V1_NAME",
    "MINILM_V3_NAME",
    "Embedder",
    "EmbedderKeyError",
    "EmbeddingCost",
    "HostedEmbedder",
    "LocalEmbedder",
    "MiniLMEmbedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "VoyageEmbedder",
    "available_embedders",
    "check_embeddings",
    "default_embedder",
    "embed_checked",
    "embedder_families",
    "gate_threshold",
    "get_embedder",
    "local_embedder_available",
    "minilm_available",
    "plan_batches",
    "register_embedder",
]

# The hosted and torch embedders load on first use (PEP 562): a search with the default
# embedder imports neither their modules nor the HTTP helpers.
_LAZY: dict[str, str] = {
    "EmbedderKeyError": "_http",
    "EmbeddingCost": "_http",
    "HostedEmbedder": "_http",
    "OpenAIEmbedder": "openai",
    "SentenceTransformerEmbedder": "st",
    "VoyageEmbedder": "voyage",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)
