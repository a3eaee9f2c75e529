"""Read files into :class:`~ragkit.types.Document` values: a folder walk and one loader per format.

- ``folder.py``: which files to read and how they are opened (race-safe, any depth), and the
  account of what was left out (:class:`LoadResult`).
- ``defaults.py``: the default patterns and limits (constants only, importable without any loader).
- ``registry.py``: suffix → loader (:func:`register_loader`, :func:`loader_for`, entry-point
  group ``ragkit.loaders``; one :mod:`ragkit.plugins` registry like the other extension points).
- ``text.py`` (``.txt``, ``.rst``; markdown ``.md``, ``.markdown``, ``.mdx`` with YAML front
  matter), ``html.py``, ``notebook.py`` (``.ipynb``), ``pdf.py`` (extra ``pdf``) and ``docx.py``
  (extra ``docx``): each implements :class:`ragkit.base.Loader`.

Every document's metadata holds ``path``, ``suffix``, ``size``, ``mtime`` and, when the file has
one, ``title``; markdown adds its front-matter fields, PDFs ``pages`` and ``page_starts`` (see
:func:`pages_for_span`). docs/loaders.md lists the formats, fields and skip reasons.

This package leaves out chunking, embedding and indexing, and any network access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names
from .defaults import DEFAULT_EXCLUDE_DIRS, DEFAULT_INCLUDE, DEFAULT_MAX_BYTES

if TYPE_CHECKING:
    from .docx import DocxLoader
    from .folder import (
        LoadResult,
        NoDocumentsError,
        Skipped,
        load_file,
        load_folder,
    )
    from .html import HtmlLoader, html_to_text
    from .limits import LoadLimits
    from .notebook import NotebookLoader
    from .pdf import PdfLoader, pages_for_span
    from .registry import (
        ENTRY_POINT_GROUP,
        LOADERS,
        available_loaders,
        loader_for,
        register_loader,
        registered_suffixes,
    )
    from .text import MarkdownLoader, TextLoader, parse_front_matter

__all__ = [
    "DEFAULT_EXCLUDE_DIRS",
    "DEFAULT_INCLUDE",
    "DEFAULT_MAX_BYTES",
    "ENTRY_POINT_GROUP",
    "LOADERS",
    "DocxLoader",
    "HtmlLoader",
    "LoadLimits",
    "LoadResult",
    "MarkdownLoader",
    "NoDocumentsError",
    "NotebookLoader",
    "PdfLoader",
    "Skipped",
    "TextLoader",
    "available_loaders",
    "html_to_text",
    "load_file",
    "load_folder",
    "loader_for",
    "pages_for_span",
    "parse_front_matter",
    "register_loader",
    "registered_suffixes",
]

# Names loaded from their submodule on first use (PEP 562): a process that only searches an
# index imports no loader, YAML or subprocess code.
_LAZY: dict[str, str] = {
    "DocxLoader": "docx",
    "LoadResult": "folder",
    "NoDocumentsError": "folder",
    "Skipped": "folder",
    "load_file": "folder",
    "load_folder": "folder",
    "HtmlLoader": "html",
    "html_to_text": "html",
    "LoadLimits": "limits",
    "NotebookLoader": "notebook",
    "PdfLoader": "pdf",
    "pages_for_span": "pdf",
    "ENTRY_POINT_GROUP": "registry",
    "LOADERS": "registry",
    "available_loaders": "registry",
    "loader_for": "registry",
    "register_loader": "registry",
    "registered_suffixes": "registry",
    "MarkdownLoader": "text",
    "TextLoader": "text",
    "parse_front_matter": "text",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)
