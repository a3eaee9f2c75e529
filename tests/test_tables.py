"""Tables in Word and PDF files: each becomes a markdown table in a chunk of its own, with its
caption (or the heading above it), and its cells never run into the paragraphs around it.

The files are made here: .docx with python-docx (Word's own template and styles), PDFs with
reportlab (ruled grids, LaTeX-style rules without verticals, page breaks).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from ragkit.chunking import chunk_document
from ragkit.loaders import (
    DocxLoader,
    LoadLimits,
    PdfLoader,
    load_file,
    pages_for_span,
    register_loader,
)
from ragkit.types import Chunk, Document

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


# --------------------------------------------------------------------------- PDF


def pdf_bytes(flowables: list[object]) -> bytes:
    """A PDF laid out by reportlab's platypus (A4, its default styles)."""
    pytest.importorskip("pypdfium2")
    platypus = pytest.importorskip("reportlab.platypus")
    out = io.BytesIO()
    platypus.SimpleDocTemplate(out).build(flowables)
    return out.getvalue()


def styles() -> dict[str, object]:
    sheet = pytest.importorskip("reportlab.lib.styles").getSampleStyleSheet()
    return {"h1": sheet["Heading1"], "body": sheet["BodyText"]}


def rl_table(rows: list[list[str]], style: list[tuple[object, ...]], **kw: object) -> object:
    platypus = pytest.importorskip("reportlab.platypus")
    table = platypus.Table(rows, **kw)
    table.setStyle(platypus.TableStyle(style))
    return table


def para(text: str, style: str = "body") -> object:
    platypus = pytest.importorskip("reportlab.platypus")
    return platypus.Paragraph(text, styles()[style])


LIMITS = [
    ["Setting", "Default", "Meaning"],
    ["max_seconds", "60", "time per file"],
    ["max_chars", "10,000,000", "characters kept"],
]
GRID = [("GRID", (0, 0), (-1, -1), 0.5, (0, 0, 0))]
# LaTeX booktabs: a rule above the header, below it, and below the last row; no verticals.
BOOKTABS = [
    ("LINEABOVE", (0, 0), (-1, 0), 1, (0, 0, 0)),
    ("LINEBELOW", (0, 0), (-1, 0), 0.5, (0, 0, 0)),
    ("LINEBELOW", (0, -1), (-1, -1), 1, (0, 0, 0)),
]


def load_pdf(data: bytes, **options: object) -> Document:
    return PdfLoader(**options).load(data, document_id="report.pdf")  # type: ignore[arg-type]


def test_pdf_grid_table_is_one_markdown_chunk_with_its_caption() -> None:
    data = pdf_bytes(
        [
            para("Loader limits", "h1"),
            para("Each file is read under a budget. " * 6),
            para("Table 1: Limits"),
            rl_table(LIMITS, GRID),
            para("Text after the table says what happens when a limit is hit."),
        ]
    )
    doc = load_pdf(data)
    table = (
        "Table 1: Limits\n| Setting | Default | Meaning |\n| --- | --- | --- |\n"
        "| max_seconds | 60 | time per file |\n| max_chars | 10,000,000 | characters kept |"
    )
    assert f"\n\n{table}\n\n" in doc.text
    chunks = chunk_document(doc, size=256, overlap=32)
    (found,) = table_chunks(chunks)
    assert found.text == table
    assert found.headings == ("Loader limits",)
    # The cells are not also read as lines of text anywhere else.
    assert doc.text.count("max_seconds") == 1
    rest = [c.text for c in chunks if c is not found]
    assert rest[0].startswith("# Loader limits\n")
    assert rest[-1] == "Text after the table says what happens when a limit is hit."


def test_pdf_booktabs_table_with_two_header_lines_and_caption_below() -> None:
    rows = [["Method", "Recall", "Latency"], ["", "at 10", "(ms)"]] + [
        ["BM25", "0.61", "1.2"],
        ["Dense, MiniLM", "0.66", "9.8"],
        ["Hybrid (RRF)", "0.72", "11.0"],
    ]
    style = [
        ("LINEABOVE", (0, 0), (-1, 0), 1, (0, 0, 0)),
        ("LINEBELOW", (0, 1), (-1, 1), 0.5, (0, 0, 0)),
        ("LINEBELOW", (0, -1), (-1, -1), 1, (0, 0, 0)),
    ]
    data = pdf_bytes(
        [
            para("We compare three retrievers on the same questions."),
            rl_table(rows, style),
            para("Table 2. Retrieval on SciFact"),
            para("Hybrid wins at a small cost in latency."),
        ]
    )
    doc = load_pdf(data)
    assert doc.text == (
        "We compare three retrievers on the same questions.\n\n"
        "Table 2. Retrieval on SciFact\n"
        "| Method | Recall at 10 | Latency (ms) |\n| --- | --- | --- |\n"
        "| BM25 | 0.61 | 1.2 |\n| Dense, MiniLM | 0.66 | 9.8 |\n| Hybrid (RRF) | 0.72 | 11.0 |\n\n"
        "Hybrid wins at a small cost in latency."
    )
    assert len(table_chunks(chunk_document(doc, size=256))) == 1


def word_style_pdf() -> bytes:
    """A table drawn as Word exports it: each border a thin filled rectangle, one merged cell."""
    pytest.importorskip("pypdfium2")
    canvas = pytest.importorskip("reportlab.pdfgen.canvas")
    out = io.BytesIO()
    c = canvas.Canvas(out)
    c.setFont("Helvetica", 10)
    c.drawString(72, 760, "Staff by team, as of March.")
    xs, ys = [72, 172, 272, 372], [740, 720, 700, 680]
    for y in ys:
        c.rect(xs[0], y - 0.25, xs[-1] - xs[0], 0.5, stroke=0, fill=1)
    for i, x in enumerate(xs):
        for top, bottom in zip(ys, ys[1:], strict=False):
            if i == 2 and top == 700:
                continue  # no border between columns 2 and 3 in the last row: a merged cell
            c.rect(x - 0.25, bottom, 0.5, top - bottom, stroke=0, fill=1)
    cells = [["Team", "Lead", "Members"], ["Search", "Ada", "4"], ["Ranking", "Grace + Alan", ""]]
    for r, row in enumerate(cells):
        for col, text in enumerate(row):
            c.drawString(xs[col] + 4, ys[r] - 14, text)
    c.drawString(72, 660, "Teams change every quarter.")
    c.showPage()
    c.save()
    return out.getvalue()


def test_pdf_word_style_borders_and_a_merged_cell() -> None:
    doc = load_pdf(word_style_pdf())
    assert doc.text == (
        "Staff by team, as of March.\n\n"
        "| Team | Lead | Members |\n| --- | --- | --- |\n| Search | Ada | 4 |\n"
        "| Ranking | Grace + Alan |  |\n\n"
        "Teams change every quarter."
    )
    plain = load_pdf(word_style_pdf(), tables=False)
    assert "Team Lead Members" in plain.text  # the old reading, kept behind tables=False


def test_pdf_table_over_two_pages_keeps_its_pages_for_citations() -> None:
    rows = [["Part", "Bin"]] + [[f"part-{i}", f"B{i % 7}"] for i in range(1, 71)]
    data = pdf_bytes(
        [para("Every part we stock."), rl_table(rows, GRID, repeatRows=1), para("The end.")]
    )
    doc = load_pdf(data)
    assert doc.metadata["pages"] == 2
    chunks = chunk_document(doc, size=1000, overlap=0)
    tables = table_chunks(chunks)
    assert len(tables) == 2  # one per page, each with the header row reportlab repeated
    assert all(t.text.startswith("| Part | Bin |\n| --- | --- |\n| part-") for t in tables)
    pages = [pages_for_span(doc.metadata["page_starts"], t.start, t.end) for t in tables]
    assert pages == [(1,), (2,)]
    cells = re.findall(r"\| (part-\d+) \|", doc.text)
    assert cells == [f"part-{i}" for i in range(1, 71)]


def test_pdf_frames_rules_and_charts_stay_text() -> None:
    pytest.importorskip("pypdfium2")
    canvas = pytest.importorskip("reportlab.pdfgen.canvas")
    out = io.BytesIO()
    c = canvas.Canvas(out)
    c.setFont("Helvetica", 10)
    c.drawString(72, 780, "A page rule under the running head.")
    c.line(72, 770, 520, 770)
    c.rect(70, 700, 300, 40)  # a framed note: one cell
    c.drawString(80, 720, "Note: back up first. Then run the upgrade.")
    for i, height in enumerate([40, 80, 60, 120]):  # a bar chart with gridlines, no text
        c.rect(100 + 40 * i, 400, 30, height, fill=1)
    for y in (400, 450, 500, 550):
        c.line(90, y, 270, y)
    c.line(90, 400, 90, 550)
    c.drawString(72, 380, "Figure 1: Sales by quarter.")
    c.showPage()
    c.save()
    doc = load_pdf(out.getvalue())
    assert "|" not in doc.text
    assert doc.text == (
        "A page rule under the running head.\nNote: back up first. Then run the upgrade.\n"
        "Figure 1: Sales by quarter."
    )


def test_tables_off_holds_in_the_worker_process(tmp_path: Path) -> None:
    # conftest forgets the registration after the test
    (tmp_path / "staff.pdf").write_bytes(word_style_pdf())
    table = "| Team | Lead | Members |"
    assert table in load_file(tmp_path / "staff.pdf", limits=LoadLimits(isolate=True)).text
    register_loader(PdfLoader(tables=False), replace=True)
    text = load_file(tmp_path / "staff.pdf", limits=LoadLimits(isolate=True)).text
    assert table not in text
    assert "Team Lead Members" in text


def test_pdf_boxed_table_without_row_lines_and_a_wrapped_cell_in_a_grid() -> None:
    box = [
        ("BOX", (0, 0), (-1, -1), 0.5, (0, 0, 0)),
        ("LINEAFTER", (0, 0), (-2, -1), 0.5, (0, 0, 0)),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, (0, 0, 0)),
    ]
    long_cell = para("Reads the outline first, then font sizes when there is none.")
    data = pdf_bytes(
        [
            para("Options, boxed with column lines only:"),
            rl_table([["Option", "Default"], ["size", "256"], ["overlap", "32"]], box),
            para("Loaders, in a full grid:"),
            rl_table([["Loader", "Headings"], ["PdfLoader", long_cell]], GRID, colWidths=[90, 150]),
        ]
    )
    tables = [c.text for c in table_chunks(chunk_document(load_pdf(data), size=256))]
    assert tables == [
        "| Option | Default |\n| --- | --- |\n| size | 256 |\n| overlap | 32 |",
        "| Loader | Headings |\n| --- | --- |\n"
        "| PdfLoader | Reads the outline first, then font sizes when there is none. |",
    ]


def test_pdf_text_beside_a_table_follows_it_once() -> None:
    pytest.importorskip("pypdfium2")
    canvas = pytest.importorskip("reportlab.pdfgen.canvas")
    out = io.BytesIO()
    c = canvas.Canvas(out)
    c.setFont("Helvetica", 10)
    c.drawString(72, 770, "Prices, valid until June:")
    for y in (750, 730, 710):
        c.line(72, y, 272, y)
    for x in (72, 172, 272):
        c.line(x, 710, x, 750)
    for x, y, text in [(76, 736, "Plan"), (176, 736, "Price"), (76, 716, "Pro"), (176, 716, "10")]:
        c.drawString(x, y, text)
    c.drawString(320, 730, "Prices exclude tax.")  # a margin note beside the table
    c.drawString(72, 690, "Ask sales for volume discounts.")
    c.showPage()
    c.save()
    doc = load_pdf(out.getvalue())
    assert doc.text == (
        "Prices, valid until June:\n\n| Plan | Price |\n| --- | --- |\n| Pro | 10 |\n\n"
        "Prices exclude tax.\n\nAsk sales for volume discounts."
    )
