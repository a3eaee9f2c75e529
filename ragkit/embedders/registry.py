"""Embedders by name: the ``ragkit.embedders`` entry-point group, the default, gate thresholds.

An embedder's ``name`` is ``"<family>/<rest>"``: the family is an entry point in the group
``ragkit.embedders`` whose object is a factory ``factory(rest: str) -> Embedder``, and the rest
names the model and dimension. ``get_embedder("openai/text-embedding-3-small/512")`` loads the
``openai`` factory and calls it with ``"text-embedding-3-small/512"``; the embedder it returns
carries that same name, which an index stores so it can be reopened with the model that built
it. A third-party package plugs in with, in its pyproject.toml::

    [project.entry-points."ragkit.embedders"]
    mycorp = "mycorp_ragkit:make_embedder"

ragkit's own families are registered the same way (and also found from a source checkout,
where no entry points are installed):

=========================  =========  ==============================================
family                     extra      names
=========================  =========  ==============================================
``minilm-l6-v2-int8``      local      ``minilm-l6-v2-int8/384`` (the default)
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

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from ragkit.base import Embedder
from ragkit.errors import MissingDependencyError

from .minilm import MINILM_NAME, MiniLMEmbedder, minilm_available

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "ENTRY_POINT_GROUP",
    "GATE_THRESHOLDS",
    "default_embedder",
    "embedder_families",
    "gate_threshold",
    "get_embedder",
]

ENTRY_POINT_GROUP = "ragkit.embedders"

# family -> "module:factory", as pyproject.toml registers them.
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
    "sentence-transformers/all-MiniLM-L6-v2/384": 0.36,
}

Factory = Callable[[str], Embedder]


def _factories() -> dict[str, str | EntryPoint]:
    import importlib.metadata  # the scan of installed packages: only when a plugin may be named

    found: dict[str, str | EntryPoint] = dict(_BUILTIN)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _BUILTIN:  # ragkit's own families cannot be shadowed
            found[ep.name] = ep
    return found


def embedder_families() -> list[str]:
    """Every registered family (the part of a name before the first ``/``), sorted."""
    return sorted(_factories())


def _load_factory(target: str | EntryPoint) -> Factory:
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        return cast(Factory, getattr(importlib.import_module(module), attr))
    return cast(Factory, target.load())


def get_embedder(name: str) -> Embedder:
    """The embedder a stored name (or a family alone, for its default model) stands for.

    Nothing heavy loads here: the model loads on the embedder's first call.

    Args:
        name: ``"<family>/<model>/<dim>"`` as an index stores it, or a family alone
            (``"openai"``, ``"minilm-l6-v2-int8"``).

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: no family of that name is registered (the message lists the known ones),
            or the family does not know the model or dimension.
        MissingDependencyError: the family's pip extra is not installed (the message names it).

    Example:
        >>> get_embedder("minilm-l6-v2-int8/384").name  # doctest: +SKIP
        'minilm-l6-v2-int8/384'
    """
    if not isinstance(name, str):
        raise TypeError(f"embedder name must be a str, got {type(name).__name__}")
    family, _, rest = name.strip().partition("/")
    # Built-in families cannot be shadowed, so naming one needs no scan of installed packages.
    factories: dict[str, str | EntryPoint] = (
        {family: _BUILTIN[family]} if family in _BUILTIN else _factories()
    )
    if family not in factories:
        raise ValueError(
            f"unknown embedder {name!r}: known families are {', '.join(sorted(factories))} "
            "(a name is '<family>/<model>/<dim>'; third-party embedders register under the "
            f"entry-point group {ENTRY_POINT_GROUP!r})"
        )
    try:
        factory = _load_factory(factories[family])
    except ImportError as exc:
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
