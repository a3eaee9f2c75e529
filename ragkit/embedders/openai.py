"""OpenAI's hosted embedders (extra ``openai``): text-embedding-3-small and -large.

``OpenAIEmbedder("text-embedding-3-small", dim=512)`` posts to ``/v1/embeddings`` with
``dimensions`` (the models are trained so a shortened vector still works), at most 2,048 texts
and 300,000 tokens per request; inputs over the model's 8,192 tokens are truncated here with
tiktoken's cl100k, the models' own encoding, since the API refuses them. The key comes from
``OPENAI_API_KEY`` (or ``api_key=``); ``base_url=`` points it at a compatible server.

This module leaves out the official ``openai`` client (plain HTTP needs no extra package) and
the older ada-002 model (no ``dimensions``).
"""

from __future__ import annotations

from typing import Any

from ._http import HostedEmbedder, httpx_available

__all__ = ["MODELS", "OpenAIEmbedder", "from_name"]

MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}
"""Model -> its full dimension (the default; any smaller ``dim`` works too)."""


class OpenAIEmbedder(HostedEmbedder):
    """An OpenAI embedding model; name ``"openai/<model>/<dim>"``.

    Example:
        >>> OpenAIEmbedder("text-embedding-3-small", dim=512).name
        'openai/text-embedding-3-small/512'
    """

    family = "openai"
    env_key = "OPENAI_API_KEY"
    extra = "openai"
    default_url = "https://api.openai.com/v1"
    max_items = 2048
    max_request_tokens = 300_000
    token_margin = 0.95  # exact counts; a little room for the API's own accounting
    max_input_tokens = 8192

    def __init__(
        self, model: str = "text-embedding-3-small", *, dim: int | None = None, **kwargs: Any
    ) -> None:
        """Configure the embedder (nothing is sent yet).

        Args:
            model: ``"text-embedding-3-small"`` or ``"text-embedding-3-large"``.
            dim: output dimension, at most the model's (default: the model's full size).
            **kwargs: ``api_key``, ``base_url``, ``client`` (an ``httpx2.Client``), ``timeout``,
                ``max_retries``, ``backoff``, ``sleep`` (see :class:`HostedEmbedder`).

        Raises:
            ValueError: an unknown model, or ``dim`` outside ``1..full size``.
        """
        if model not in MODELS:
            raise ValueError(f"model {model!r} is not one of {', '.join(MODELS)}")
        full = MODELS[model]
        dim = full if dim is None else dim
        if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= full:
            raise ValueError(f"dim ({dim!r}) must be between 1 and {full} for {model}")
        super().__init__(model, dim, **kwargs)

    def _prepare(self, texts: list[str]) -> tuple[list[str], list[int]]:
        from ragkit.chunking import get_encoding

        enc = get_encoding()
        sent: list[str] = []
        counts: list[int] = []
        for text in texts:
            tokens = enc.encode_ordinary(text) or enc.encode_ordinary(" ")
            if len(tokens) > self.max_input_tokens:
                tokens = tokens[: self.max_input_tokens]
                text = enc.decode(tokens)
            # The API refuses an empty string: embed a space instead.
            sent.append(text if text else " ")
            counts.append(len(tokens))
        return sent, counts

    def _payload(self, texts: list[str], input_type: str) -> dict[str, Any]:  # noqa: ARG002
        # OpenAI embeds queries and documents alike: input_type has no field here.
        body: dict[str, Any] = {"model": self.model, "input": texts, "encoding_format": "float"}
        if self.dim != MODELS[self.model]:
            body["dimensions"] = self.dim
        return body


def from_name(spec: str) -> OpenAIEmbedder:
    """The registry's factory: ``"<model>/<dim>"``, ``"<model>"`` or ``""`` (3-small, 1536).

    Raises:
        ValueError: an unknown model or dimension.
        MissingDependencyError: the ``openai`` extra is not installed.
    """
    from ragkit.errors import MissingDependencyError

    model, _, dim = spec.partition("/")
    if dim and not dim.isdigit():
        raise ValueError(f"openai embedder dimension {dim!r} must be a number")
    found = OpenAIEmbedder(model or "text-embedding-3-small", dim=int(dim) if dim else None)
    if not httpx_available():
        raise MissingDependencyError(
            "openai embedders need the 'openai' extra:\n    pip install 'ragkit-claude[openai]'"
        )
    return found
