"""Loaders under a budget: bombs are refused cheaply, slow files are stopped, the rest is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragkit.chunking import chunk_text
from ragkit.errors import LoadError
from ragkit.loaders import DocxLoader, LoadLimits, PdfLoader, load_file, load_folder
from ragkit.loaders.limits import budget_for

from .hostile import MiB, docx_bomb, pdf_bomb, pdf_file, text_page

pytest.importorskip("pypdfium2")
pytest.importorskip("lxml")


def reasons(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {s.path: s.reason for s in result.skipped}


def test_a_docx_bomb_is_refused_before_its_xml_is_inflated() -> None:
    bomb = docx_bomb(400 * MiB)  # 1.6 MB zipped, word/document.xml honestly declared
    assert len(bomb) < 2 * MiB
    with budget_for(LoadLimits(), "bomb.docx") as budget:
        with pytest.raises(LoadError, match=r"word/document\.xml inflates to 400 MiB, more than"):
            DocxLoader().load(bomb, document_id="bomb.docx")
    assert budget.inflated < 4096  # only the small relationship parts were read


def test_a_docx_that_lies_about_its_size_stops_at_the_declared_size() -> None:
    bomb = docx_bomb(400 * MiB, declared=4096)
    with budget_for(LoadLimits(), "liar.docx") as budget:
        with pytest.raises(LoadError, match=r"not a readable \.docx \(BadZipFile\)"):
            DocxLoader().load(bomb, document_id="liar.docx")
    assert budget.inflated < 4096 + 4096


def test_the_inflated_budget_is_a_setting(tmp_path: Path) -> None:
    (tmp_path / "bomb.docx").write_bytes(docx_bomb(200 * MiB))
    result = load_folder(tmp_path, allow_empty=True)
    assert reasons(result)["bomb.docx"].endswith(
        "(max_inflated_bytes; raise it with RAGKIT_LOAD_MAX_INFLATED_BYTES "
        "or LoadLimits(max_inflated_bytes=...))"
    )
    # Raised past the bomb's size, the XML is streamed (and here stopped by the text budget).
    limits = LoadLimits(max_inflated_bytes=256 * MiB, max_chars=100_000)
    result = load_folder(tmp_path, allow_empty=True, limits=limits)
    assert reasons(result)["bomb.docx"].startswith("more than 100,000 characters of text")


def test_a_folder_with_bombs_still_indexes_the_rest(tmp_path: Path) -> None:
    (tmp_path / "bomb.docx").write_bytes(docx_bomb(400 * MiB))
    (tmp_path / "bomb.pdf").write_bytes(pdf_bomb(pages=100, inflated=50 * MiB))
    (tmp_path / "slow.html").write_text("<a" * 200_000)  # html.parser goes quadratic
    (tmp_path / "notes.md").write_text("# Notes\n\nThe rest is read.")
    (tmp_path / "manual.pdf").write_bytes(pdf_file([text_page(["Page one text"])]))
    limits = LoadLimits(max_seconds=3, max_memory=2048 * MiB)
    result = load_folder(tmp_path, limits=limits)
    assert [d.id for d in result.documents] == ["manual.pdf", "notes.md"]
    got = reasons(result)
    assert set(got) == {"bomb.docx", "bomb.pdf", "slow.html"}
    assert "(max_inflated_bytes; raise it with RAGKIT_LOAD_MAX_INFLATED_BYTES" in got["bomb.docx"]
    for name in ("bomb.pdf", "slow.html"):
        assert got[name] == (
            "took longer than 3 s (max_seconds; raise it with RAGKIT_LOAD_MAX_SECONDS "
            "or LoadLimits(max_seconds=...))"
        )


def test_a_pdf_past_the_memory_limit_is_killed_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "bomb.pdf").write_bytes(pdf_bomb(pages=3, inflated=50 * MiB))
    (tmp_path / "ok.txt").write_text("still read")
    result = load_folder(tmp_path, limits=LoadLimits(max_memory=200 * MiB, max_seconds=120))
    assert [d.id for d in result.documents] == ["ok.txt"]
    assert reasons(result)["bomb.pdf"] == (
        "needed more than 200 MiB of memory to read (max_memory; raise it with "
        "RAGKIT_LOAD_MAX_MEMORY or LoadLimits(max_memory=...))"
    )


def test_in_process_the_clock_is_checked_between_pages() -> None:
    bomb = pdf_bomb(pages=50, inflated=4 * MiB)
    with budget_for(LoadLimits(max_seconds=0.2, isolate=False), "bomb.pdf"):
        with pytest.raises(LoadError, match=r"took longer than 0\.2 s \(max_seconds;"):
            PdfLoader().load(bomb, document_id="bomb.pdf")


def test_text_past_the_character_budget_is_refused_not_truncated(tmp_path: Path) -> None:
    pages = [text_page([f"line {i} of page {p} " * 4 for i in range(40)]) for p in range(30)]
    (tmp_path / "long.pdf").write_bytes(pdf_file(pages))
    (tmp_path / "long.md").write_text("word " * 5000)
    (tmp_path / "short.md").write_text("word " * 50)
    result = load_folder(tmp_path, limits=LoadLimits(max_chars=10_000))
    assert [d.id for d in result.documents] == ["short.md"]
    expected = (
        "more than 10,000 characters of text (max_chars; raise it with RAGKIT_LOAD_MAX_CHARS "
        "or LoadLimits(max_chars=...))"
    )
    assert reasons(result) == {"long.md": expected, "long.pdf": expected}
    # In process the PDF stops at the page that passes the budget, not after reading them all.
    with budget_for(LoadLimits(max_chars=10_000, isolate=False), "long.pdf") as budget:
        with pytest.raises(LoadError, match="more than 10,000 characters"):
            PdfLoader().load((tmp_path / "long.pdf").read_bytes(), document_id="long.pdf")
    assert budget.chars < 10_000 + 5_000


def test_load_file_runs_under_the_same_limits(tmp_path: Path) -> None:
    path = tmp_path / "slow.html"
    path.write_text("<a" * 200_000)
    with pytest.raises(LoadError, match=r"slow\.html: took longer than 1 s \(max_seconds;"):
        load_file(path, limits=LoadLimits(max_seconds=1))


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAGKIT_LOAD_MAX_CHARS", "20")
    (tmp_path / "a.md").write_text("x" * 50)
    with pytest.raises(LoadError, match=r"more than 20 characters of text \(max_chars;"):
        load_file(tmp_path / "a.md")
    assert LoadLimits.from_env({"RAGKIT_LOAD_MAX_SECONDS": "2.5"}).max_seconds == 2.5
    with pytest.raises(ValueError, match=r"RAGKIT_LOAD_MAX_MEMORY \('lots'\) must be a number > 0"):
        LoadLimits.from_env({"RAGKIT_LOAD_MAX_MEMORY": "lots"})
    with pytest.raises(ValueError, match=r"max_seconds \(0\) must be a number > 0"):
        LoadLimits(max_seconds=0)
    with pytest.raises(TypeError, match="limits must be a ragkit.loaders.LoadLimits, got dict"):
        load_folder(tmp_path, limits={"max_chars": 5})  # type: ignore[arg-type]


def test_html_is_read_in_the_worker_and_markdown_in_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a.html").write_text("<title>Page</title><h1>Real</h1><p>body</p>")
    (tmp_path / "a.md").write_text("---\ntitle: [unclosed\n---\n# Real\n\nbody")
    notebook = {"cells": [{"cell_type": "markdown", "source": "# NB\n\ntext"}], "metadata": {}}
    (tmp_path / "n.ipynb").write_text(json.dumps(notebook))
    with caplog.at_level("WARNING", logger="ragkit"):
        docs = {d.id: d for d in load_folder(tmp_path).documents}
    assert docs["a.md"].metadata["title"] == "Real"
    assert docs["a.html"].text == "# Page\n\n# Real\n\nbody"  # read in the worker
    assert docs["n.ipynb"].text == "# NB\n\ntext"
    assert "'a.md': front matter is not valid YAML" in caplog.text


def test_a_long_run_of_spaces_in_a_heading_does_not_stall_the_chunker() -> None:
    # The heading pattern used to backtrack over every space: minutes for 50,000 of them.
    text = "# Title" + " " * 50_000 + "x\n\nBody text."
    chunks = chunk_text(text, document_id="d", size=64, overlap=0)
    assert chunks[-1].text.endswith("Body text.")
    assert chunks[-1].headings == ("Title" + " " * 50_000 + "x",)


def test_a_worker_that_dies_is_reported_and_replaced(tmp_path: Path) -> None:
    from ragkit.loaders import isolation

    class Unknown:  # a name the worker has no loader for: it exits on the request
        suffixes = (".x",)

    with pytest.raises(LoadError, match=r"a\.x: the reader crashed on this file \(the loader"):
        isolation.run_isolated(Unknown(), b"data", document_id="a.x", limits=LoadLimits())
    (tmp_path / "ok.pdf").write_bytes(pdf_file([text_page(["Read by a fresh worker"])]))
    assert load_file(tmp_path / "ok.pdf").text == "Read by a fresh worker"


def test_the_worker_sends_back_what_the_loader_logged() -> None:
    import logging

    from ragkit.loaders import isolation
    from ragkit.types import Document

    class Chatty:
        def load(self, data: bytes, *, document_id: str) -> Document:
            logging.getLogger("ragkit").warning("%r: one summary line", document_id)
            return Document(document_id, data.decode(), {"pages": 1})

    request = {
        "loader": "Chatty",
        "document_id": "a.pdf",
        "limits": {"max_seconds": 5, "max_chars": 100, "max_inflated_bytes": 1, "max_memory": 1},
    }
    reply = isolation._handle(request, b"text", {"Chatty": Chatty})
    assert reply == {
        "ok": True,
        "text": "text",
        "metadata": {"pages": 1},
        "logs": [(logging.WARNING, "'a.pdf': one summary line")],
    }
    too_long = isolation._handle(request, b"x" * 101, {"Chatty": Chatty})
    assert too_long["ok"] is False
    assert too_long["reason"].startswith("more than 100 characters of text (max_chars;")
