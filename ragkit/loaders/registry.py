"""Which loader reads which file suffix: the built-in loaders, yours, and installed plugins.

Suffixes are matched case-insensitively (``README.MD`` is markdown). A third party adds a format
with :func:`register_loader`, or by declaring an entry point in the group ``ragkit.loaders``
(the object is a loader, or a class or function that returns one when called with no
arguments); plugins are loaded the first time a loader is looked up and take precedence over the
built-in loaders.

This module leaves out reading files (``folder.py``) and the formats themselves.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points
from typing import cast

from ..base import Loader
from .docx import DocxLoader
from .html import HtmlLoader
from .notebook import NotebookLoader
from .pdf import PdfLoader
from .text import MarkdownLoader, TextLoader

__all__ = ["ENTRY_POINT_GROUP", "loader_for", "register_loader", "registered_suffixes"]

logger = logging.getLogger("ragkit")

ENTRY_POINT_GROUP = "ragkit.loaders"
"""The entry-point group plugins declare their loaders in."""

_lock = threading.RLock()
_loaders: dict[str, Loader] = {}
_plugins_loaded = False


def _normalise(suffix: str) -> str:
    if not isinstance(suffix, str) or not suffix.strip("."):
        raise ValueError(f"suffix must be a non-empty string such as '.md', got {suffix!r}")
    suffix = suffix.lower()
    return suffix if suffix.startswith(".") else "." + suffix


def register_loader(loader: Loader, *, replace: bool = False) -> None:
    """Read files with ``loader.suffixes`` using ``loader``.

    Args:
        loader: an object with ``suffixes`` and ``load(data, *, document_id)``
            (:class:`ragkit.base.Loader`).
        replace: take over suffixes another loader already reads; without it that is an error.

    Raises:
        TypeError: ``loader`` does not implement the protocol.
        ValueError: a suffix is malformed, or taken and ``replace`` is false.

    Example:
        ``register_loader(MyOrgModeLoader())  # suffixes = (".org",)``
    """
    if not isinstance(loader, Loader) or isinstance(loader.suffixes, str):
        raise TypeError(
            "loader must have a `suffixes` tuple and a `load(data, *, document_id)` method "
            f"(ragkit.base.Loader), got {type(loader).__name__}"
        )
    suffixes = [_normalise(s) for s in loader.suffixes]
    if not suffixes:
        raise ValueError("loader.suffixes must name at least one suffix")
    with _lock:
        taken = [s for s in suffixes if s in _loaders and _loaders[s] is not loader]
        if taken and not replace:
            owners = ", ".join(f"{s} ({type(_loaders[s]).__name__})" for s in taken)
            raise ValueError(f"already read by another loader: {owners}; pass replace=True")
        for suffix in suffixes:
            _loaders[suffix] = loader


def _load_plugins() -> None:
    global _plugins_loaded
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        for point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = point.load()
                loader = obj() if isinstance(obj, type) or not isinstance(obj, Loader) else obj
                register_loader(loader, replace=True)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop loading
                logger.warning(
                    "loader plugin %r (%s) not used: %s: %s",
                    point.name,
                    point.value,
                    type(exc).__name__,
                    exc,
                )


def loader_for(suffix: str) -> Loader | None:
    """The loader for a file suffix (``".md"``, ``"MD"``), or ``None`` when none reads it.

    Example:
        >>> type(loader_for(".MDX")).__name__
        'MarkdownLoader'
    """
    suffix = _normalise(suffix)
    _load_plugins()
    with _lock:
        return _loaders.get(suffix)


def registered_suffixes() -> tuple[str, ...]:
    """Every suffix a loader reads, sorted (built-in, registered and plugin loaders)."""
    _load_plugins()
    with _lock:
        return tuple(sorted(_loaders))


for _builtin in (
    MarkdownLoader(),
    TextLoader(),
    HtmlLoader(),
    NotebookLoader(),
    PdfLoader(),
    DocxLoader(),
):
    # cast: a frozen dataclass's fields are read-only, the protocol declares a plain attribute.
    register_loader(cast(Loader, _builtin))
