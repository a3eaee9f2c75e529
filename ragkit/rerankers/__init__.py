"""Rerankers: re-score the best fused candidates of a search with a stronger, slower model.

- :class:`RerankRetriever` wraps any :class:`~ragkit.base.Retriever`: it takes the base's top
  ``top_n`` candidates, asks a :class:`~ragkit.base.Reranker` to re-score them and returns the
  best ``k``. Each result keeps the base's per-retriever ``scores`` (so the evidence gate keeps
  reading the vector cosine it was calibrated on) and adds the reranker's score under its name.
- :func:`get_reranker` resolves a name to a reranker. Built-ins:

  ``voyage`` / ``voyage:MODEL``
      Voyage AI's hosted rerankers (``rerank-2.5`` by default, ``rerank-2.5-lite``); needs
      ``VOYAGE_API_KEY`` and the network (:mod:`ragkit.rerankers.voyage`).
  ``cross-encoder:MODEL``
      a sentence-transformers cross-encoder (``pip install 'ragkit-claude[rerank-local]'``), loaded
      from a local path or the Hugging Face cache; ragkit ships no weights
      (:mod:`ragkit.rerankers.cross_encoder`).
  ``embedder`` / ``embedder:NAME``
      re-scores candidates by the cosine of an embedder (the offline default); gives a
      keyword-only index a semantic signal without vectors in the index.

  Third parties register more under the entry-point group ``ragkit.rerankers`` (or with
  :func:`register_reranker`): the entry point names a callable
  ``factory(model: str | None = None, **options) -> Reranker``, and
  ``get_reranker("NAME:MODEL")`` calls it with ``model="MODEL"``. The precedence is
  :mod:`ragkit.plugins`'s: registered > built-in > entry point.

This package leaves out first-stage retrieval and fusion (``ragkit.retrievers``) and the gate
(``ragkit.gate``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from ..base import Reranker
from ..plugins import Registry
from ._common import RerankError
from .retriever import DEFAULT_TOP_N, RerankRetriever, with_reranker

__all__ = [
    "DEFAULT_TOP_N",
    "ENTRY_POINT_GROUP",
    "RERANKERS",
    "RerankError",
    "RerankRetriever",
    "Reranker",
    "available_rerankers",
    "get_reranker",
    "register_reranker",
    "resolve_reranker",
    "with_reranker",
]

ENTRY_POINT_GROUP = "ragkit.rerankers"
"""The entry-point group third-party rerankers register under."""


Factory = Callable[..., Reranker]


def _voyage(model: str | None = None, **options: Any) -> Reranker:
    from .voyage import DEFAULT_VOYAGE_MODEL, VoyageReranker

    return VoyageReranker(model or DEFAULT_VOYAGE_MODEL, **options)


def _cross_encoder(model: str | None = None, **options: Any) -> Reranker:
    from .cross_encoder import CrossEncoderReranker

    if not model:
        raise ValueError(
            "name 'cross-encoder' needs a model: 'cross-encoder:PATH_OR_HF_NAME' "
            "(ragkit ships no cross-encoder weights)"
        )
    return CrossEncoderReranker(model, **options)


def _embedder(model: str | None = None, **options: Any) -> Reranker:
    from .embedding import EmbeddingReranker

    return EmbeddingReranker.from_name(model, **options)


def _factory(obj: object) -> Factory:
    if not callable(obj):
        raise TypeError(
            f"a reranker entry point must name a factory(model=None, **options), got {obj!r}"
        )
    return cast(Factory, obj)


RERANKERS: Registry[Factory] = Registry(
    "reranker",
    ENTRY_POINT_GROUP,
    {
        "voyage": "ragkit.rerankers:_voyage",
        "cross-encoder": "ragkit.rerankers:_cross_encoder",
        "embedder": "ragkit.rerankers:_embedder",
    },
    accept=_factory,
)
"""The reranker kinds (``ragkit.plugins`` precedence: registered > built-in > entry point)."""


def register_reranker(kind: str, factory: Factory, *, replace: bool = False) -> None:
    """Make ``get_reranker("KIND:MODEL")`` call ``factory("MODEL", **options)`` in this process.

    Raises:
        ValueError: the kind is taken (built-in or plugin) and ``replace`` is false.
    """
    RERANKERS.register(kind, _factory(factory), replace=replace)


def available_rerankers() -> list[str]:
    """Names :func:`get_reranker` resolves (registered, plugins and built-ins), sorted."""
    return RERANKERS.names()


def get_reranker(name: str, **options: Any) -> Reranker:
    """The reranker called ``name`` (``"voyage"``, ``"voyage:rerank-2.5-lite"``, ...).

    Args:
        name: ``KIND`` or ``KIND:MODEL``; the part after the first ``:`` is passed as ``model``.
        options: keyword arguments for the reranker (``api_key=``, ``transport=``, ...).

    Raises:
        UnknownNameError: no reranker has that name (also a ``ValueError``).
        RerankError: the reranker cannot start (a missing key or extra).

    Example:
        >>> get_reranker("nope")
        Traceback (most recent call last):
        ...
        ragkit.errors.UnknownNameError: unknown reranker 'nope'; known: cross-encoder, embedder, ...
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"reranker name must be a non-empty string, got {name!r}")
    kind, _, model = name.strip().partition(":")
    factory = RERANKERS.get(kind)
    found = factory(model or None, **options)
    if not isinstance(found, Reranker):
        raise TypeError(
            f"reranker factory {kind!r} returned {type(found).__name__}, which has no "
            "name/rerank(query, candidates)"
        )
    return found


def resolve_reranker(rerank: str | Reranker) -> Reranker:
    """``rerank`` itself when it is a reranker, else :func:`get_reranker` of the name."""
    if isinstance(rerank, str):
        return get_reranker(rerank)
    if isinstance(rerank, Reranker):
        return rerank
    raise TypeError(
        "rerank must be a reranker name (str) or a Reranker (name, rerank(query, candidates)), "
        f"got {type(rerank).__name__}"
    )
