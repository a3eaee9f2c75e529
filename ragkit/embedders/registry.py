"""Embedders by name: the ``ragkit.embedders`` entry-point group, the default, gate thresholds.

An embedder's ``name`` is ``"<family>/<rest>"``: the family is an entry point in the group
``ragkit.embedders`` whose object is a factory ``factory(rest: str) -> Embedder``, and the rest
names the model and dimension. ``get_embedder("openai/text-embedding-3-small/512")`` loads the
``openai`` factory and calls it with ``"text-embedding-3-small/512"``; the embedder it returns
carries that same name, which an index stores so it can be reopened with the model that built
it. A third-party package plugs in with, in its pyproject.toml::

    [project.entry-points."ragkit.embedders"]
    mycorp = "mycorp_ragkit:make_embedder"

or calls :func:`register_embedder` at run time. ragkit's own families are declared the same way
(``_BUILTIN`` names the targets pyproject.toml registers, so a source checkout finds them too);
the precedence among the three is ``ragkit.plugins``'s: registered > built-in > entry point.

=========================  =========  ==============================================
family                     extra      names
=========================  =========  ==============================================
``minilm-l6-v2-int8``      local      ``minilm-l6-v2-int8/v2/384`` (the default),
                                     ``minilm-l6-v2-int8/v3/384`` (graph version 3),
                                     ``minilm-l6-v2-int8/384`` (graph version 1)
``sentence-transformers``  st         ``sentence-transformers/all-MiniLM-L6-v2/384``
``voyage``                 voyage     ``voyage/voyage-4-lite/1024`` ...
``openai``                 openai     ``openai/text-embedding-3-small/1536`` ...
=========================  =========  ==============================================

The evidence gate's cosine threshold depends on the embedder (each model spreads cosines
differently): :func:`gate_threshold` gives the value calibrated for a shipped embedder by
``bench/calibrate_gate.py``, or the embedder's own ``gate_min_cosine`` attribute.

This module leaves out the embedders themselves and what an index does with the name.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, cast

from ragkit.base import Embedder
from ragkit.errors import MissingDependencyError
from ragkit.plugins import Registry

from .minilm import (
    MINILM_NAME,
    MINILM_V1_NAME,
    MINILM_V3_NAME,
    MiniLMEmbedder,
    minilm_available,
)

__all__ = [
    "EMBEDDERS",
    "ENTRY_POINT_GROUP",
    "GATE_THRESHOLDS",
    "available_embedders",
    "default_embedder",
    "embedder_families",
    "gate_threshold",
    "get_embedder",
    "register_embedder",
]

ENTRY_POINT_GROUP = "ragkit.embedders"

# family -> "module:factory", the targets pyproject.toml registers.
_BUILTIN = {
    "minilm-l6-v2-int8": "ragkit.embedders.minilm:from_name",
    "sentence-transformers": "ragkit.embedders.st:from_name",
    "voyage": "ragkit.embedders.voyage:from_name",
    "openai": "ragkit.embedders.openai:from_name",
}

# The best chunk's cosine below which the evidence gate finds no evidence, per embedder name.
# Chosen by bench/calibrate_gate.py on SciFact train + bench/questions/unrelated.txt (the
# figures are in docs/embedders.md). Hosted embedders are not calibrated: the gate falls back
# to keyword coverage for them.
GATE_THRESHOLDS: dict[str, float] = {
    MINILM_NAME: 0.36,
    MINILM_V3_NAME: 0.36,
    MINILM_V1_NAME: 0.36,
    "sentence-transformers/all-MiniLM-L6-v2/384": 0.36,
}

Factory = Callable[[str], Embedder]


def _factory(obj: object) -> Factory:
    if not callable(obj):
        raise TypeError(
            f"an embedder entry point must name a factory(rest) -> Embedder, got {obj!r}"
        )
    return cast(Factory, obj)


EMBEDDERS: Registry[Factory] = Registry(
    "embedder",
    ENTRY_POINT_GROUP,
    _BUILTIN,
    accept=_factory,
    hint=(
        "a name is '<family>/<model>/<dim>'; third-party embedders register under the "
        f"entry-point group {ENTRY_POINT_GROUP!r} or with register_embedder()"
    ),
)
"""The embedder families (``ragkit.plugins`` precedence: registered > built-in > entry point)."""


def register_embedder(family: str, factory: Factory, *, replace: bool = False) -> None:
    """Make ``get_embedder("<family>/<rest>")`` call ``factory(rest)`` in this process.

    Raises:
        ValueError: the family is taken (built-in or plugin) and ``replace`` is false.
    """
    EMBEDDERS.register(family, _factory(factory), replace=replace)


def available_embedders() -> list[str]:
    """Every known family (the part of a name before the first ``/``), sorted."""
    return EMBEDDERS.names()


def embedder_families() -> list[str]:
    """Deprecated (kept for one release): use :func:`available_embedders`."""
    warnings.warn(
        "embedder_families() is deprecated: use ragkit.embedders.available_embedders()",
        DeprecationWarning,
        stacklevel=2,
    )
    return available_embedders()


def get_embedder(name: str) -> Embedder:
    """The embedder a stored name (or a family alone, for its default model) stands for.

    Nothing heavy loads here: the model loads on the embedder's first call.

    Args:
        name: ``"<family>/<model>/<dim>"`` as an index stores it, or a family alone
            (``"openai"``, ``"minilm-l6-v2-int8"``).

    Raises:
        TypeError: ``name`` is not a string.
        UnknownNameError: no family of that name is registered (the message lists the known
            ones; also a ``ValueError``).
        ValueError: the family does not know the model or dimension.
        MissingDependencyError: the family's pip extra is not installed (the message names it).

    Example:
        >>> get_embedder("minilm-l6-v2-int8/v2/384").name  # doctest: +SKIP
        'minilm-l6-v2-int8/v2/384'
    """
    if not isinstance(name, str):
        raise TypeError(f"embedder name must be a str, got {type(name).__name__}")
    family, _, rest = name.strip().partition("/")
    try:
        factory = EMBEDDERS.get(family, shown=name)
    except ImportError as exc:
        if isinstance(exc, MissingDependencyError):
            raise
        raise MissingDependencyError(
            f"embedder family {family!r} could not be imported ({exc}); install the package "
            "that provides it"
        ) from exc
    embedder = factory(rest)
    if not isinstance(embedder, Embedder):
        raise TypeError(f"the {family!r} factory returned {embedder!r}, not an Embedder")
    return embedder


def default_embedder() -> Embedder | None:
    """The offline default (all-MiniLM-L6-v2 int8) when the ``local`` extra is installed."""
    return MiniLMEmbedder() if minilm_available() else None


def gate_threshold(embedder: str | Embedder) -> float | None:
    """The evidence gate's minimum best-chunk cosine for an embedder, or ``None`` if unknown.

    Args:
        embedder: an embedder name, or an embedder (its ``gate_min_cosine`` attribute wins
            over the table, so a third-party embedder can carry its own).

    Example:
        >>> gate_threshold("minilm-l6-v2-int8/384") is not None
        True
    """
    if not isinstance(embedder, str):
        own: Any = getattr(embedder, "gate_min_cosine", None)
        if isinstance(own, (int, float)) and not isinstance(own, bool):
            return float(own)
        embedder = embedder.name
    return GATE_THRESHOLDS.get(embedder)
