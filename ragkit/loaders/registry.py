"""Which loader reads which file suffix: the built-in loaders, yours, and installed plugins.

Suffixes are matched case-insensitively (``README.MD`` is markdown). The suffixes live in the
:mod:`ragkit.plugins` registry :data:`LOADERS`, with its one precedence rule: a loader given to
:func:`register_loader` wins over a built-in loader, and a built-in over a plugin. A plugin
declares an entry point in the group ``ragkit.loaders`` (the object is a loader, or a class or
function that returns one when called with no arguments; it reads the suffixes its
``suffixes`` names); plugins are loaded the first time a suffix no built-in reads is looked
up, and one that fails to load is logged and skipped.

This module leaves out reading files (``folder.py``) and the formats themselves.
"""

from __future__ import annotations

import warnings

from ..base import Loader
from ..plugins import Registry

__all__ = [
    "ENTRY_POINT_GROUP",
    "LOADERS",
    "available_loaders",
    "loader_for",
    "register_loader",
    "registered_suffixes",
]

ENTRY_POINT_GROUP = "ragkit.loaders"
"""The entry-point group plugins declare their loaders in."""


def _normalise(suffix: str) -> str:
    if not isinstance(suffix, str) or not suffix.strip("."):
        raise ValueError(f"suffix must be a non-empty string such as '.md', got {suffix!r}")
    suffix = suffix.lower()
    return suffix if suffix.startswith(".") else "." + suffix


def _checked(loader: object) -> Loader:
    """``loader`` when it implements :class:`ragkit.base.Loader`, else a ``TypeError``."""
    if not isinstance(loader, Loader) or isinstance(loader.suffixes, str):
        raise TypeError(
            "loader must have a `suffixes` tuple and a `load(data, *, document_id)` method "
            f"(ragkit.base.Loader), got {type(loader).__name__}"
        )
    return loader


def _accept(obj: object) -> Loader:
    loader = obj() if isinstance(obj, type) or not isinstance(obj, Loader) else obj  # type: ignore[operator]
    return _checked(loader)


_TEXT, _MARKDOWN = "ragkit.loaders.text:TextLoader", "ragkit.loaders.text:MarkdownLoader"
_HTML = "ragkit.loaders.html:HtmlLoader"

LOADERS: Registry[Loader] = Registry(
    "loader",
    ENTRY_POINT_GROUP,
    {
        ".md": _MARKDOWN,
        ".markdown": _MARKDOWN,
        ".mdx": _MARKDOWN,
        ".txt": _TEXT,
        ".rst": _TEXT,
        ".html": _HTML,
        ".htm": _HTML,
        ".xhtml": _HTML,
        ".ipynb": "ragkit.loaders.notebook:NotebookLoader",
        ".pdf": "ragkit.loaders.pdf:PdfLoader",
        ".docx": "ragkit.loaders.docx:DocxLoader",
    },
    accept=_accept,
    normalise=_normalise,
    names_of=lambda loader: loader.suffixes,
)
"""File suffix → loader (``ragkit.plugins`` precedence: registered > built-in > entry point)."""


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
    _checked(loader)
    suffixes = [_normalise(s) for s in loader.suffixes]
    if not suffixes:
        raise ValueError("loader.suffixes must name at least one suffix")
    if not replace:
        taken = [s for s in suffixes if LOADERS.source(s) and LOADERS.find(s) is not loader]
        if taken:
            owners = ", ".join(f"{s} ({type(LOADERS.find(s)).__name__})" for s in taken)
            raise ValueError(f"already read by another loader: {owners}; pass replace=True")
    for suffix in suffixes:
        LOADERS.register(suffix, loader, replace=True)


def loader_for(suffix: str) -> Loader | None:
    """The loader for a file suffix (``".md"``, ``"MD"``), or ``None`` when none reads it.

    Example:
        >>> type(loader_for(".MDX")).__name__
        'MarkdownLoader'
    """
    return LOADERS.find(suffix)


def available_loaders() -> tuple[str, ...]:
    """Every suffix a loader reads, sorted (built-in, registered and plugin loaders)."""
    return tuple(LOADERS.names())


def registered_suffixes() -> tuple[str, ...]:
    """Deprecated (kept for one release): use :func:`available_loaders`."""
    warnings.warn(
        "registered_suffixes() is deprecated: use ragkit.loaders.available_loaders()",
        DeprecationWarning,
        stacklevel=2,
    )
    return available_loaders()
