"""MkDocs hook for the docs site: serve bench/RESULTS.md as ``results.md``; docstring markup.

MkDocs serves only files inside ``docs/``, while the measured tables live in bench/RESULTS.md next
to the scripts that produce them. This hook adds that file to the site as a generated page (so
each table exists once, in one file) and rewrites the docs' links to ``../bench/RESULTS.md`` so
they point at it; on GitHub the same links open bench/RESULTS.md directly. ``DocstringMarkup``
is a griffe extension for the API reference (below). Nothing else.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from griffe import Extension, Module, Object
from mkdocs.structure.files import File, Files

_RESULTS = Path(__file__).parent / "bench" / "RESULTS.md"
_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|class|meth|attr|mod|data|exc|obj):`~?([^`]+)`")
_LITERAL = re.compile(r"(?<=\S)::$", re.MULTILINE)
_LINK = re.compile(r"\]\(\.\./bench/RESULTS\.md(#[^)]*)?\)")


# Shown under the page's title: the measured tables that live next to the feature they measure.
_ELSEWHERE = """
!!! note "Measured elsewhere"
    Retrieval quality on SciFact: [evaluation](evaluation.md#results-on-scifact). The evidence
    gate's calibration: [answering](answering.md#the-evidence-gate). Locking and checksum costs:
    [concurrency](concurrency.md#measured-costs). Contextual retrieval's cost per million
    tokens: [contextual retrieval](contextual.md#cost-per-million-document-tokens-estimate).
    This page is bench/RESULTS.md, the speed and memory tables.
"""


def on_files(files: Files, config: Any) -> Files:
    title, _, rest = _RESULTS.read_text(encoding="utf-8").partition("\n")
    files.append(File.generated(config, "results.md", content=f"{title}\n{_ELSEWHERE}{rest}"))
    return files


def on_page_markdown(markdown: str, **kwargs: Any) -> str:  # noqa: ARG001 (page, config, files)
    return _LINK.sub(lambda m: f"](results.md{m.group(1) or ''})", markdown)


class DocstringMarkup(Extension):
    """Render the reST habits of ragkit's Google-style docstrings as Markdown.

    ``Example:`` reads as ``Examples:`` (griffe parses only the plural into doctest code
    blocks; the singular would show ``>>>`` lines as nested quotes), a role such as
    ``:func:`open_index``` becomes inline code, and a paragraph ending in ``::`` before a code
    block ends in ``:``. Loaded by mkdocstrings (``extensions:`` in mkdocs.yml); the source
    docstrings are left as they are.
    """

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:  # noqa: ARG002 (loader)
        if obj.docstring is not None:
            text = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            text = _ROLE.sub(r"`\1`", text)
            obj.docstring.value = _LITERAL.sub(":", text)

    def on_package(self, *, pkg: Module, **kwargs: Any) -> None:  # noqa: ARG002 (loader)
        self.on_object(obj=pkg)  # the top-level package is not passed to on_object
