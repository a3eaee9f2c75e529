"""Voyage AI's hosted embedders (extra ``voyage``): the voyage-4 family, Anthropic's pick.

``VoyageEmbedder("voyage-4-lite", dim=512)`` posts to ``/v1/embeddings`` with ``input_type``
``"document"`` for documents and ``"query"`` for queries (Voyage prepends its own retrieval
prompt for each), ``output_dimension`` (256, 512, 1024 or 2048) and ``truncation`` on (texts
over the model's context are cut by the server). At most 1,000 texts per request, and at most
the model's tokens per request (120,000 for voyage-4-large, 320,000 for voyage-4, 1,000,000 for
voyage-4-lite); tokens are estimated with cl100k, so batches stay within 80 % of that. The
voyage-4 models share one embedding space, but each model's name is its own: an index is
always queried with the model that built it. The key comes from ``VOYAGE_API_KEY`` (or
``api_key=``).

This module leaves out the ``voyageai`` client (it retries nothing by default; plain HTTP
needs no extra package), multimodal and contextualized-chunk endpoints.
"""

from __future__ import annotations

from typing import Any

from ._http import HostedEmbedder, httpx_available

__all__ = ["DIMENSIONS", "MODELS", "VoyageEmbedder", "from_name"]

MODELS = {"voyage-4-large": 120_000, "voyage-4": 320_000, "voyage-4-lite": 1_000_000}
"""Model -> the most tokens one request may carry."""

DIMENSIONS = (256, 512, 1024, 2048)
"""The ``output_dimension`` values the voyage-4 models accept (1024 is their default)."""


class VoyageEmbedder(HostedEmbedder):
    """A Voyage AI embedding model; name ``"voyage/<model>/<dim>"``.

    Example:
        >>> VoyageEmbedder("voyage-4-lite").name
        'voyage/voyage-4-lite/1024'
    """

    family = "voyage"
    env_key = "VOYAGE_API_KEY"
    extra = "voyage"
    default_url = "https://api.voyageai.com/v1"
    max_items = 1000
    token_margin = 0.8  # cl100k only estimates Voyage's tokenizer
    max_input_tokens = 32_000

    def __init__(self, model: str = "voyage-4", *, dim: int = 1024, **kwargs: Any) -> None:
        """Configure the embedder (nothing is sent yet).

        Args:
            model: ``"voyage-4-large"``, ``"voyage-4"`` or ``"voyage-4-lite"``.
            dim: ``output_dimension``: 256, 512, 1024 or 2048.
            **kwargs: ``api_key``, ``base_url``, ``client`` (an ``httpx2.Client``), ``timeout``,
                ``max_retries``, ``backoff``, ``sleep`` (see :class:`HostedEmbedder`).

        Raises:
            ValueError: an unknown model or dimension.
        """
        if model not in MODELS:
            raise ValueError(f"model {model!r} is not one of {', '.join(MODELS)}")
        if dim not in DIMENSIONS:
            raise ValueError(f"dim ({dim!r}) must be one of {', '.join(map(str, DIMENSIONS))}")
        self.max_request_tokens = MODELS[model]
        super().__init__(model, dim, **kwargs)

    def _payload(self, texts: list[str], input_type: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "input": texts,
            "input_type": input_type,
            "output_dimension": self.dim,
            "truncation": True,
        }


def from_name(spec: str) -> VoyageEmbedder:
    """The registry's factory: ``"<model>/<dim>"``, ``"<model>"`` or ``""`` (voyage-4, 1024).

    Raises:
        ValueError: an unknown model or dimension.
        MissingDependencyError: the ``voyage`` extra is not installed.
    """
    from ragkit.errors import MissingDependencyError

    model, _, dim = spec.partition("/")
    if dim and not dim.isdigit():
        raise ValueError(f"voyage embedder dimension {dim!r} must be a number")
    found = VoyageEmbedder(model or "voyage-4", dim=int(dim) if dim else 1024)
    if not httpx_available():
        raise MissingDependencyError(
            "voyage embedders need the 'voyage' extra:\n    pip install 'ragkit-claude[voyage]'"
        )
    return found
