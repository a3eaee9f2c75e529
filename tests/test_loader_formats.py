"""Documents as their authors wrote them: PDF outlines, Word text boxes, notes, code and tables,
Strict Open XML, and markdown dialects (MkDocs, Docusaurus, MDX, Hugo)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ragkit.chunking import chunk_document
from ragkit.errors import LoadError
from ragkit.loaders import DocxLoader, MarkdownLoader, PdfLoader, load_folder
from ragkit.loaders.text import escape_markup
from ragkit.types import Document

from .hostile import docx_package, paragraph, pdf_file, sized_page, text_page

# --------------------------------------------------------------------------- PDF


def test_pdf_headings_come_from_the_outline_never_from_hash_lines() -> None:
    pytest.importorskip("pypdfium2")
    pages = [
        text_page(["1 Fitting models", "Models are fitted with lm.", "# fit the model", "====="]),
        text_page(["1.1 Formulae", "A formula is y ~ x.", "#!/bin/bash", "```"]),
        text_page(["Appendix text without a bookmark line", "# DO NOT EDIT"]),
    ]
    outline = [(0, "Fitting models", 0), (1, "Formulae", 1), (0, "Index", 2)]
    data = pdf_file(pages, outline=outline)
    doc = PdfLoader().load(data, document_id="r.pdf")
    lines = doc.text.split("\n")
    assert [line for line in lines if line.startswith(("# ", "## "))] == [
        "# 1 Fitting models",  # the numbered line on the page became the heading
        "## 1.1 Formulae",
        "# Index",  # not on its page: put at the top of it
    ]
    assert "    # fit the model" in lines
    assert "    # DO NOT EDIT" in lines
    assert "#!/bin/bash" in lines  # not a heading to markdown either: left as it is
    assert doc.metadata["title"] == "Fitting models"
    headings = {c.headings for c in chunk_document(doc, size=16, overlap=0)}
    assert headings == {("1 Fitting models",), ("1 Fitting models", "1.1 Formulae"), ("Index",)}


def test_a_pdf_without_an_outline_gets_headings_from_font_sizes() -> None:
    pytest.importorskip("pypdfium2")
    body = "Body text set in the most used size, long enough to be the body."
    pages = [
        sized_page([(20, "Guide"), (11, body), (11, "# fit the model"), (15, "Install")]),
        sized_page([(11, "Run pip install."), (15, "Usage"), (11, body), (11, "Contents . . 3")]),
        sized_page([(11, body), (11, "Setext"), (11, "------"), (11, body)]),
    ]
    doc = PdfLoader().load(pdf_file(pages), document_id="x.pdf")
    headings = {c.headings for c in chunk_document(doc, size=24, overlap=0)}
    assert headings == {("Guide",), ("Guide", "Install"), ("Guide", "Usage")}
    assert "    # fit the model" in doc.text.split("\n")
    # One size throughout: no headings at all, whatever the lines look like.
    flat = pdf_file([text_page(["# Comment line", "Setext", "------", "body"])])
    doc = PdfLoader().load(flat, document_id="flat.pdf")
    assert all(c.headings == () for c in chunk_document(doc, size=8, overlap=0))
    assert "title" not in doc.metadata


def test_pdf_library_warnings_are_one_line_per_file(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("pypdfium2")
    import warnings

    from ragkit.loaders import pdf as module

    def noisy(*_args: object, **_kwargs: object) -> object:
        for i in range(300):
            warnings.warn(f"defect {i} " + "x" * 1000, UserWarning, stacklevel=1)
            logging.getLogger("pypdfium2").warning("logged defect %d", i)
        return real(*_args, **_kwargs)

    real = module._clean
    data = pdf_file([text_page(["Hello"])])
    with caplog.at_level("WARNING"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(module, "_clean", noisy)
            doc = PdfLoader().load(data, document_id="noisy.pdf")
    assert doc.text == "Hello"
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert message.startswith("'noisy.pdf': 600 warning(s) from pypdfium2 while reading (first: ")
    assert len(message) < 400


def _damage_pages(data: bytes, pages: set[int]) -> bytes:
    """``data`` with the page dictionaries of ``pages`` (0-based) replaced by a number, padded
    to the same length so the cross-reference table stays right: PDFium cannot load them."""
    import re

    found = list(re.finditer(rb"<< /Type /Page /Parent 2 0 R .*?/Contents \d+ 0 R >>", data))
    out = bytearray(data)
    for i in pages:
        m = found[i]
        out[m.start() : m.end()] = b"42".ljust(m.end() - m.start())
    return bytes(out)


def test_a_damaged_page_loses_its_own_text_not_the_whole_pdf(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Found by an outside probe: a real 87-page manual with one damaged page (PDFium: "Failed
    # to load page") was skipped whole; the other 86 pages read fine.
    pytest.importorskip("pypdfium2")
    pages = [text_page([f"Page {n} is about {animal}."]) for n, animal in enumerate("ABC", 1)]
    data = _damage_pages(pdf_file(pages), {1})
    with caplog.at_level("WARNING"):
        doc = PdfLoader().load(data, document_id="manual.pdf")
    assert "Page 1 is about A." in doc.text
    assert "Page 3 is about C." in doc.text
    assert "Page 2" not in doc.text
    assert doc.metadata["pages"] == 3
    assert "'manual.pdf': 1 of 3 pages are damaged and were left out (p. 2)" in caplog.text
    with pytest.raises(LoadError, match=r"not a readable PDF \(no page could be read\)"):
        PdfLoader().load(_damage_pages(pdf_file(pages), {0, 1, 2}), document_id="gone.pdf")


def test_escaped_lines_are_plain_text_to_the_chunker() -> None:
    text = escape_markup("Intro\n# comment\nTitle\n=====\n~~~\ncode\n| a | b |\n|---|---|")
    doc_chunks = chunk_document(Document("d.pdf", text), size=64)
    assert all(c.headings == () for c in doc_chunks)
    assert len(doc_chunks) == 1


# --------------------------------------------------------------------------- DOCX

STYLES = (
    '<w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/></w:style>'
    '<w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/></w:style>'
    '<w:style w:type="paragraph" w:styleId="SourceCode"><w:name w:val="Source Code"/></w:style>'
    '<w:style w:type="paragraph" w:styleId="TableCaption">'
    '<w:name w:val="Table Caption"/></w:style>'
)


def table(rows: list[list[str]]) -> str:
    return (
        "<w:tbl>"
        + "".join(
            "<w:tr>" + "".join(f"<w:tc>{paragraph(c)}</w:tc>" for c in row) + "</w:tr>"
            for row in rows
        )
        + "</w:tbl>"
    )


def text_box(text: str) -> str:
    """A text box as Word writes it: a DrawingML choice and a VML fallback with the same text."""
    content = f"<w:txbxContent>{paragraph(text)}</w:txbxContent>"
    return (
        "<w:p><w:r><mc:AlternateContent>"
        f'<mc:Choice Requires="wps"><w:drawing><wps:txbx>{content}</wps:txbx></w:drawing>'
        "</mc:Choice>"
        f"<mc:Fallback><w:pict><v:textbox>{content}</v:textbox></w:pict></mc:Fallback>"
        "</mc:AlternateContent></w:r></w:p>"
    )


def test_docx_text_boxes_footnotes_code_and_tables(tmp_path: Path) -> None:
    pytest.importorskip("lxml")
    body = (
        paragraph("Guide", "Heading1")
        + '<w:p><w:r><w:t>See the note</w:t></w:r><w:r><w:footnoteReference w:id="2"/></w:r>'
        "<w:r><w:t>.</w:t></w:r></w:p>"
        + text_box("Boxed advice")
        + paragraph("Setup", "Heading2")
        + paragraph("# install the package", "SourceCode")
        + paragraph("pip install ragkit", "SourceCode")
        + paragraph("# not a heading either")
        + paragraph("Table 1: Limits", "TableCaption")
        + table([["Setting", "Default"], ["max_seconds", "60"]])
        + paragraph("After the table.")
    )
    footnotes = (
        '<w:footnote w:type="separator" w:id="0">' + paragraph("---") + "</w:footnote>"
        '<w:footnote w:id="2">' + paragraph("The footnote text.") + "</w:footnote>"
    )
    (tmp_path / "guide.docx").write_bytes(docx_package(body, styles=STYLES, footnotes=footnotes))
    (doc,) = load_folder(tmp_path).documents
    assert doc.text == (
        "# Guide\n\nSee the note[^2].\n\nBoxed advice\n\n## Setup\n\n"
        "```\n# install the package\npip install ragkit\n```\n\n"
        "    # not a heading either\n\n"
        "Table 1: Limits\n| Setting | Default |\n| --- | --- |\n| max_seconds | 60 |\n\n"
        "After the table.\n\n[^2]: The footnote text."
    )
    chunks = chunk_document(doc, size=200, overlap=0)
    assert {c.headings for c in chunks} == {("Guide",), ("Guide", "Setup")}
    (table_chunk,) = [c for c in chunks if "| max_seconds | 60 |" in c.text]
    assert table_chunk.text.startswith("Table 1: Limits\n| Setting | Default |")
    assert table_chunk.headings == ("Guide", "Setup")
    assert "After the table." not in table_chunk.text


def test_strict_open_xml_is_read() -> None:
    pytest.importorskip("lxml")
    body = paragraph("Strict", "Heading1") + paragraph("Written in ISO 29500 Strict.")
    data = docx_package(body, strict=True, styles=STYLES, title="A Strict File")
    doc = DocxLoader().load(data, document_id="strict.docx")
    assert doc.text == "# Strict\n\nWritten in ISO 29500 Strict."
    assert doc.metadata["title"] == "A Strict File"


def test_a_package_without_a_word_document_names_what_is_missing() -> None:
    pytest.importorskip("lxml")
    data = docx_package(paragraph("x"))
    data = data.replace(b"word/document.xml", b"word/documenX.xml")
    with pytest.raises(LoadError, match=r"not a Word document: no main document part \(found "):
        DocxLoader().load(data, document_id="odd.docx")


# --------------------------------------------------------------------------- markdown dialects


def test_mkdocs_attribute_lists_and_admonitions() -> None:
    md = (
        "# Response Cookies { #response-cookies }\n\n"
        "## Use a `Response` parameter { #use-a-response-parameter .x data-y=z }\n\n"
        "Text.\n{: .lead }\n\n"
        '!!! note "Technical Details"\n    You could also use `Response`.\n\n    More.\n\n'
        "??? tip\n    Collapsed.\n\nAfter.\n\n"
        "```python\n# comment { #kept }\n!!! kept\n```\n"
    )
    doc = MarkdownLoader().load(md.encode(), document_id="cookies.md")
    assert doc.metadata["title"] == "Response Cookies"
    assert doc.text == (
        "# Response Cookies\n\n## Use a `Response` parameter\n\nText.\n\n"
        "Note: Technical Details\n\nYou could also use `Response`.\n\nMore.\n\n"
        "Tip\n\nCollapsed.\n\nAfter.\n\n"
        "```python\n# comment { #kept }\n!!! kept\n```"
    )
    paths = {c.headings for c in chunk_document(doc, size=200, overlap=0)}
    assert ("Response Cookies", "Use a `Response` parameter") in paths


def test_docusaurus_containers_and_mdx_imports_and_jsx(tmp_path: Path) -> None:
    (tmp_path / "page.mdx").write_text(
        "---\ntitle: Tabs\n---\nimport Tabs from '@theme/Tabs';\n"
        "export const meta = {a: 1};\n\n"
        ":::tip Use tabs\nGroup related code.\n:::\n\n"
        '<Tabs>\n  <TabItem value="py" label="Python">\n\nPython text.\n\n  </TabItem>\n</Tabs>\n'
    )
    (tmp_path / "hugo.md").write_text("+++\ntitle = 'Hugo page'\ntags = ['a', 'b']\n+++\nBody.")
    docs = {d.id: d for d in load_folder(tmp_path).documents}
    assert docs["page.mdx"].text == "# Tabs\n\nTip: Use tabs\n\nGroup related code.\n\nPython text."
    assert docs["hugo.md"].text == "# Hugo page\n\nBody."
    assert docs["hugo.md"].metadata["tags"] == ("a", "b")


def test_front_matter_nested_too_deeply_is_kept_as_text(caplog: pytest.LogCaptureFixture) -> None:
    data = ("+++\na = " + "[" * 100_000 + "\n+++\nBody").encode()
    doc = MarkdownLoader().load(data, document_id="deep.md")
    assert doc.text.endswith("+++\nBody")
    assert "'deep.md': front matter nested too deeply; kept as text" in caplog.text
