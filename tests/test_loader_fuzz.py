"""Fuzz every built-in loader with generated and mutated files: no crash, no hang, bounded memory.

Each target reads files through :func:`ragkit.loaders.load_file` (the worker process, under the
default limits but a short time budget) and chunks what comes back. A case passes when it gives
a document or a :class:`LoadError` with a reason; anything else, or a case past the time budget
plus the worker's kill margin, fails. ``make test-slow`` runs them; set ``RAGKIT_FUZZ_REPORT=1``
to print the cases run, the slowest case and the peak memory of the workers.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragkit.chunking import chunk_document
from ragkit.errors import LoadError
from ragkit.loaders import LoadLimits, isolation, load_file

from .hostile import MiB, docx_package, paragraph, pdf_file, text_page

pytestmark = pytest.mark.slow

LIMITS = LoadLimits(max_seconds=10)
FUZZ = settings(
    max_examples=int(os.environ.get("RAGKIT_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
STATS: dict[str, dict[str, float]] = {}

SEEDS: dict[str, bytes] = {
    ".md": (
        b"---\ntitle: Seed { #seed }\ntags: [a, b]\n---\n# Seed { #seed }\n\n"
        b'!!! note "Hi"\n    Body.\n\n:::tip X\nY\n:::\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n'
        b"```py\n# code\n```\n\nSetext\n======\n"
    ),
    ".markdown": b"+++\ntitle = 'Hugo'\n[params]\nlist = [1, [2, [3]]]\n+++\n# H\n\nbody\n",
    ".mdx": b"import A from 'a';\n\n<Tabs>\n<TabItem value=\"a\">\n\n# Tab\n\ntext\n</TabItem>\n",
    ".txt": "Title\n=====\n\nPlain text, caf\u00e9.\n".encode(),
    ".html": (
        b"<html><head><title>T</title><meta charset='utf-8'></head><body><h1>H</h1>"
        b"<p>para &amp; <b>bold</b></p><pre># code</pre><table><tr><td>a</td></tr></table>"
        b"<script>x()</script></body></html>"
    ),
    ".ipynb": json.dumps(
        {
            "cells": [
                {"cell_type": "markdown", "source": ["# NB\n", "text"]},
                {"cell_type": "code", "source": "print(1)", "outputs": []},
            ],
            "metadata": {"kernelspec": {"language": "python"}},
            "nbformat": 4,
        }
    ).encode(),
    ".pdf": pdf_file(
        [text_page(["1 Intro", "# comment", "text"]), text_page(["2 Next", "more"])],
        outline=[(0, "Intro", 0), (0, "Next", 1)],
        title="Seed",
    ),
    ".docx": docx_package(
        paragraph("Seed", "Heading1") + paragraph("# body") + paragraph("code", "SourceCode"),
        styles=(
            '<w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/>'
            '</w:style><w:style w:type="paragraph" w:styleId="SourceCode">'
            '<w:name w:val="Source Code"/></w:style>'
        ),
        footnotes='<w:footnote w:id="1">' + paragraph("note") + "</w:footnote>",
        title="Seed",
    ),
}


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few byte flips, insertions, deletions, splices or a truncation."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 12))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "splice", "truncate", "repeat"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "splice" and data:
            start = draw(st.integers(0, len(data) - 1))
            data[at:at] = data[start : start + draw(st.integers(1, 256))]
        elif op == "truncate":
            del data[at:]
        elif op == "repeat" and data:
            piece = bytes(data[at : at + draw(st.integers(1, 32))])
            data[at:at] = piece * draw(st.integers(2, 2000))
    return bytes(data)


def files(suffix: str) -> st.SearchStrategy[bytes]:
    seed = SEEDS[suffix]
    return st.one_of(mutated(seed), st.binary(max_size=2048), st.just(seed))


def xml_fragments() -> st.SearchStrategy[str]:
    """Word body XML built from valid pieces and hostile ones (deep nesting, entities, junk)."""
    piece = st.sampled_from(
        [
            paragraph("text"),
            paragraph("# hash", "SourceCode"),
            "<w:tbl><w:tr><w:tc>" + paragraph("cell") + "</w:tc></w:tr></w:tbl>",
            "<w:p><w:r><w:txbxContent>" + paragraph("box") + "</w:txbxContent></w:r></w:p>",
            "<w:tbl><w:tr><w:tc><w:tbl><w:tr><w:tc>" + paragraph("nested") + "</w:tc></w:tr>"
            "</w:tbl></w:tc></w:tr></w:tbl>",
            "<w:p>" * 300 + "</w:p>" * 300,
            "&amp;&lt;&#0;&#x1F600;",
            "<w:t>loose</w:t>",
            "</w:p>",
            "<mc:Fallback>" + paragraph("hidden") + "</mc:Fallback>",
        ]
    )
    return st.lists(st.one_of(piece, st.text(max_size=40)), max_size=30).map("".join)


def run_case(suffix: str, data: bytes) -> None:
    stats = STATS.setdefault(suffix, {"cases": 0, "worst_s": 0.0, "documents": 0})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        started = time.monotonic()
        reason = ""
        try:
            doc = load_file(path, limits=LIMITS)
        except LoadError as exc:
            reason, doc = exc.reason, None
        elapsed = time.monotonic() - started
    assert (doc is None) == bool(reason)  # a document, or a reason a user can read
    if doc is not None:
        chunks = chunk_document(doc, size=64, overlap=8)
        assert all(doc.text[c.start : c.end] == c.text for c in chunks)
        stats["documents"] += 1
    stats["cases"] += 1
    stats["worst_s"] = max(stats["worst_s"], elapsed)
    # The worker is killed at max_seconds; the rest is the kill, the reply and a restart.
    assert elapsed < LIMITS.max_seconds + 30


@pytest.mark.parametrize("suffix", sorted(SEEDS))
def test_fuzz_loader(suffix: str) -> None:
    @FUZZ
    @given(files(suffix))
    def case(data: bytes) -> None:
        run_case(suffix, data)

    case()


def test_fuzz_docx_structure() -> None:
    @FUZZ
    @given(xml_fragments(), st.booleans())
    def case(body: str, strict: bool) -> None:
        run_case(".docx", docx_package(body, strict=strict))

    case()


def test_fuzz_report() -> None:
    """Runs last in this file: the workers' peak memory stays under the limit."""
    peak = isolation.peak_rss
    if os.environ.get("RAGKIT_FUZZ_REPORT"):
        sys.stderr.write(f"\nfuzz: {json.dumps(STATS)}; worker peak RSS {peak / MiB:.0f} MiB\n")
    assert peak < LIMITS.max_memory + 64 * MiB
