"""Tables in Word and PDF files: each becomes a markdown table in a chunk of its own, with its
caption (or the heading above it), and its cells never run into the paragraphs around it.

The files are made here: .docx with python-docx (Word's own template and styles), PDFs with
reportlab (ruled grids, LaTeX-style rules without verticals, page breaks).
"""

from __future__ import annotations

import io
import re

import pytest

from ragkit.chunking import chunk_document
from ragkit.loaders import DocxLoader
from ragkit.types import Chunk

from .hostile import docx_package, paragraph

# --------------------------------------------------------------------------- helpers


def table_chunks(chunks: list[Chunk]) -> list[Chunk]:
    return [c for c in chunks if re.search(r"^\| --- \|", c.text, re.M) or c.text.startswith("|")]


def docx_bytes(build: object) -> bytes:
    docx = pytest.importorskip("docx")
    document = docx.Document()
    build(document)  # type: ignore[operator]
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


# --------------------------------------------------------------------------- DOCX


def test_docx_table_with_caption_merged_cells_pipes_and_line_breaks() -> None:
    def build(document: object) -> None:
        d = document  # python-docx Document
        d.add_heading("Quarterly report", level=1)  # type: ignore[attr-defined]
        d.add_paragraph("Revenue grew in every region this quarter.")  # type: ignore[attr-defined]
        d.add_paragraph("Table 3: Revenue by region")  # type: ignore[attr-defined]
        t = d.add_table(rows=4, cols=3)  # type: ignore[attr-defined]
        for r, row in enumerate(
            [
                ("Region", "Q1", "Q2"),
                ("North | East", "1.2", "1.4"),
                ("South", "0.9\nrevised", "1.0"),
                ("Total (both quarters)", "", ""),
            ]
        ):
            for c, value in enumerate(row):
                if value:
                    t.cell(r, c).text = value
        t.cell(3, 1).merge(t.cell(3, 2)).text = "4.5"  # a gridSpan of 2
        t.cell(1, 0).add_paragraph("(merged regions)")
        d.add_paragraph("The south lagged behind.")  # type: ignore[attr-defined]

    doc = DocxLoader().load(docx_bytes(build), document_id="report.docx")
    assert doc.text == (
        "# Quarterly report\n\nRevenue grew in every region this quarter.\n\n"
        "Table 3: Revenue by region\n"
        "| Region | Q1 | Q2 |\n| --- | --- | --- |\n"
        "| North \\| East<br>(merged regions) | 1.2 | 1.4 |\n"
        "| South | 0.9 revised | 1.0 |\n"
        "| Total (both quarters) | 4.5 |  |\n\n"
        "The south lagged behind."
    )
    chunks = chunk_document(doc, size=200, overlap=20)
    (table,) = table_chunks(chunks)
    assert table.text.startswith("Table 3: Revenue by region\n| Region | Q1 | Q2 |")
    assert table.text.endswith("| Total (both quarters) | 4.5 |  |")
    assert table.headings == ("Quarterly report",)
    others = [c.text for c in chunks if c is not table]
    assert others == [
        "# Quarterly report\n\nRevenue grew in every region this quarter.",
        "The south lagged behind.",
    ]


def test_docx_caption_style_and_vertical_merges() -> None:
    def build(document: object) -> None:
        d = document
        d.add_heading("Staff", level=2)  # type: ignore[attr-defined]
        t = d.add_table(rows=3, cols=2)  # type: ignore[attr-defined]
        t.cell(0, 0).text, t.cell(0, 1).text = "Team", "Member"
        t.cell(1, 0).merge(t.cell(2, 0)).text = "Search"  # a vMerge over two rows
        t.cell(1, 1).text, t.cell(2, 1).text = "Ada", "Grace"
        d.add_paragraph("Figure-less caption: the search team", style="Caption")  # type: ignore[attr-defined]

    doc = DocxLoader().load(docx_bytes(build), document_id="staff.docx")
    assert doc.text == (
        "## Staff\n\nFigure-less caption: the search team\n"
        "| Team | Member |\n| --- | --- |\n| Search | Ada |\n|  | Grace |"
    )


def test_docx_nested_table_is_flattened_into_its_cell() -> None:
    inner = (
        "<w:tbl><w:tr><w:tc>" + paragraph("a") + "</w:tc><w:tc>" + paragraph("1") + "</w:tc>"
        "</w:tr><w:tr><w:tc>" + paragraph("b") + "</w:tc><w:tc>" + paragraph("2") + "</w:tc>"
        "</w:tr></w:tbl>"
    )
    body = (
        "<w:tbl>"
        "<w:tr><w:tc>" + paragraph("Key") + "</w:tc><w:tc>" + paragraph("Values") + "</w:tc></w:tr>"
        '<w:tr><w:trPr><w:gridBefore w:val="1"/></w:trPr>'
        "<w:tc>" + paragraph("Shifted by gridBefore") + "</w:tc></w:tr>"
        "<w:tr><w:tc>"
        + paragraph("pairs")
        + "</w:tc><w:tc>"
        + paragraph("see:")
        + inner
        + "</w:tc></w:tr>"
        '<w:tr><w:tc><w:tcPr><w:gridSpan w:val="999999999"/></w:tcPr>'
        + paragraph("wide")
        + "</w:tc></w:tr>"
        "</w:tbl>"
    )
    doc = DocxLoader().load(docx_package(body), document_id="nested.docx")
    lines = doc.text.split("\n")
    pad = "  |" * 62  # the hostile span is capped at 64 columns
    assert lines == [
        "| Key | Values |" + pad,
        "|" + " --- |" * 64,
        "|  | Shifted by gridBefore |" + pad,
        "| pairs | see:<br>a, 1; b, 2 |" + pad,
        "| wide |" + "  |" * 63,
    ]


def test_docx_large_table_is_split_by_rows_with_the_header_in_each_piece() -> None:
    def build(document: object) -> None:
        d = document
        d.add_heading("Parts list", level=1)  # type: ignore[attr-defined]
        d.add_paragraph("Every part we stock, with its bin.")  # type: ignore[attr-defined]
        d.add_paragraph("Table 1. Parts")  # type: ignore[attr-defined]
        t = d.add_table(rows=81, cols=3)  # type: ignore[attr-defined]
        for c, name in enumerate(("Part", "Bin", "Supplier")):
            t.cell(0, c).text = name
        for r in range(1, 81):
            for c, value in enumerate((f"part-{r}", f"B{r % 7}", f"supplier number {r}")):
                t.cell(r, c).text = value
        d.add_paragraph("Ask the stores desk for anything else.")  # type: ignore[attr-defined]

    doc = DocxLoader().load(docx_bytes(build), document_id="parts.docx")
    chunks = chunk_document(doc, size=128, overlap=24)
    pieces = table_chunks(chunks)
    assert len(pieces) >= 4
    assert pieces[0].text.startswith("Table 1. Parts\n| Part | Bin | Supplier |")
    assert pieces[0].headings == ("Parts list",)
    for piece in pieces[1:]:
        assert piece.headings == ("Parts list", "Table 1. Parts", "| Part | Bin | Supplier |")
        assert piece.text.startswith("| part-")
    rows = [line for p in pieces for line in p.text.split("\n") if line.startswith("| part-")]
    assert rows == [f"| part-{r} | B{r % 7} | supplier number {r} |" for r in range(1, 81)]
    assert chunks[-1].text == "Ask the stores desk for anything else."
