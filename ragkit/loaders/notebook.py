"""Jupyter notebooks (``.ipynb``): markdown cells as markdown, code cells as fenced code.

Cells are joined in order with a blank line between them; a code cell becomes a fenced block
tagged with the notebook's language (``kernelspec.language`` or ``language_info.name``), with a
fence longer than any backtick run inside the cell. ``title`` is the first heading of the
markdown cells; ``language`` is the notebook's language when it names one.

This module leaves out cell outputs (images, tables, printed text; they are results, not prose
the author wrote), raw cells, attachments and widgets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import LoadError
from ..types import Document
from .text import decode_text, first_heading

__all__ = ["NotebookLoader"]

_BACKTICKS = re.compile(r"`{3,}")


def _source(cell: Mapping[str, Any], key: str = "source") -> str:
    value = cell.get(key, "")
    if isinstance(value, list):
        value = "".join(v for v in value if isinstance(v, str))
    if not isinstance(value, str):
        return ""
    return value.replace("\r\n", "\n").replace("\r", "\n").strip("\n")


def _language(notebook: Mapping[str, Any]) -> str:
    meta = notebook.get("metadata")
    if not isinstance(meta, Mapping):
        return ""
    for section, key in (("kernelspec", "language"), ("language_info", "name")):
        inner = meta.get(section)
        if isinstance(inner, Mapping) and isinstance(inner.get(key), str):
            return str(inner[key]).strip().lower()
    return ""


def _cells(notebook: Mapping[str, Any]) -> list[Any]:
    cells = notebook.get("cells")
    if isinstance(cells, list):
        return cells
    worksheets = notebook.get("worksheets")  # nbformat 3
    if isinstance(worksheets, list) and worksheets and isinstance(worksheets[0], Mapping):
        old = worksheets[0].get("cells")
        if isinstance(old, list):
            return old
    raise ValueError("no cells")


@dataclass(frozen=True, slots=True)
class NotebookLoader:
    """Jupyter notebooks: markdown and code cells, outputs left out.

    Attributes:
        suffixes: the suffixes it reads.
        max_bytes: the default size limit; outputs with images make notebooks large.
    """

    suffixes: tuple[str, ...] = (".ipynb",)
    max_bytes: int = 50 * 1024 * 1024

    def load(self, data: bytes, *, document_id: str) -> Document:
        """Parse the notebook's JSON and join its cells.

        Raises:
            LoadError: not notebook JSON, or no cell with text.
        """
        raw = decode_text(data, document_id=document_id)
        try:
            notebook = json.loads(raw)
            if not isinstance(notebook, Mapping):
                raise ValueError("not an object")
            cells = _cells(notebook)
        except RecursionError:
            raise LoadError(
                document_id, "not a Jupyter notebook (JSON nested too deeply)"
            ) from None
        except ValueError as exc:
            why = str(exc)
            if "int_max_str_digits" in why:  # Python's advice is for programmers, not users
                why = "a number with thousands of digits"
            raise LoadError(document_id, f"not a Jupyter notebook ({why})") from None
        language = _language(notebook)
        parts: list[str] = []
        for cell in cells:
            if not isinstance(cell, Mapping):
                continue
            kind = cell.get("cell_type")
            if kind == "markdown":
                text = _source(cell)
                if text.strip():
                    parts.append(text)
            elif kind == "code":
                code = _source(cell) or _source(cell, "input")  # nbformat 3 used "input"
                if code.strip():
                    longest = max((len(m.group()) for m in _BACKTICKS.finditer(code)), default=2)
                    fence = "`" * max(3, longest + 1)
                    parts.append(f"{fence}{language}\n{code}\n{fence}")
        if not parts:
            raise LoadError(document_id, "no text in notebook cells")
        text = "\n\n".join(parts)
        metadata: dict[str, Any] = {}
        title = first_heading(text)
        if title:
            metadata["title"] = title
        if language:
            metadata["language"] = language
        return Document(document_id, text, metadata)
