"""Tests for ragkit.loaders: what is read, what is skipped and why, and HTML extraction."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ragkit.chunking import chunk_document
from ragkit.errors import LoadError
from ragkit.loaders import (
    DEFAULT_INCLUDE,
    LoadLimits,
    LoadResult,
    NoDocumentsError,
    Skipped,
    available_loaders,
    html_to_text,
    load_file,
    load_folder,
    loader_for,
    pages_for_span,
    parse_front_matter,
    register_loader,
    registered_suffixes,
)
from ragkit.types import Document


def write_corpus(folder: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def write_bytes(folder: Path, rel: str, data: bytes) -> Path:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def reasons(result: LoadResult) -> dict[str, str]:
    return {s.path: s.reason for s in result.skipped}


def ids(result: LoadResult) -> list[str]:
    return [d.id for d in result.documents]


def test_loads_the_corpus_with_relative_ids(corpus_dir: Path) -> None:
    files = {p.relative_to(corpus_dir).as_posix(): p for p in corpus_dir.rglob("*") if p.is_file()}
    result = load_folder(corpus_dir)
    assert ids(result) == sorted(files)
    assert {d.id: d.text for d in result.documents} == {
        rel: path.read_text(encoding="utf-8") for rel, path in files.items()
    }
    assert result.skipped == ()


def test_nested_ids_use_forward_slashes_and_sorted_order(tmp_path: Path) -> None:
    write_corpus(tmp_path, {"b/z.md": "z", "b/a/deep.txt": "deep", "a.md": "top", "c.rst": "c"})
    result = load_folder(tmp_path)
    assert ids(result) == ["a.md", "b/a/deep.txt", "b/z.md", "c.rst"]
    assert load_folder(tmp_path) == result  # deterministic


def test_include_and_exclude_globs(tmp_path: Path) -> None:
    write_corpus(
        tmp_path,
        {
            "a.md": "a",
            "notes.txt": "n",
            "docs/b.md": "b",
            "docs/drafts/c.md": "c",
            "docs/drafts/deeper/d.md": "d",
            "x/page.min.html": "<p>min</p>",
            "x/page.html": "<p>page</p>",
        },
    )
    # '**/' matches zero folders too, so top-level a.md is included.
    assert ids(load_folder(tmp_path, include=["**/*.md"])) == [
        "a.md",
        "docs/b.md",
        "docs/drafts/c.md",
        "docs/drafts/deeper/d.md",
    ]
    assert ids(load_folder(tmp_path, include=["*.md"])) == ids(
        load_folder(tmp_path, include=["**/*.md"])
    )  # a bare name pattern matches at any depth
    assert ids(load_folder(tmp_path, include=["docs/*.md"])) == ["docs/b.md"]
    assert ids(load_folder(tmp_path, include=["**/*.md"], exclude=["docs/drafts/**"])) == [
        "a.md",
        "docs/b.md",
    ]
    assert ids(load_folder(tmp_path, include=["**/*.md"], exclude=["**/drafts"])) == [
        "a.md",
        "docs/b.md",
    ]
    assert ids(load_folder(tmp_path, exclude=["*.min.html"])) == [
        "a.md",
        "docs/b.md",
        "docs/drafts/c.md",
        "docs/drafts/deeper/d.md",
        "notes.txt",
        "x/page.html",
    ]
    assert ids(load_folder(tmp_path, include="notes.tx?")) == ["notes.txt"]
    assert ids(load_folder(tmp_path, include=["./docs/*.md"])) == ["docs/b.md"]
    assert ids(load_folder(tmp_path, include=["[!a]*.md"])) == ["docs/b.md"] + [
        "docs/drafts/c.md",
        "docs/drafts/deeper/d.md",
    ]


def test_hidden_and_tool_folders_are_skipped_by_default(tmp_path: Path) -> None:
    write_corpus(
        tmp_path,
        {
            "a.md": "a",
            ".git/HEAD.txt": "x",
            ".venv/lib/readme.md": "x",
            "node_modules/pkg/README.md": "x",
            "pkg/__pycache__/notes.txt": "x",
            ".hidden.md": "x",
            "myenv/pyvenv.cfg": "home = /usr/bin",
            "myenv/lib/notes.txt": "x",
            "env/setup.md": "a docs folder that happens to be called env",
        },
    )
    assert ids(load_folder(tmp_path)) == ["a.md", "env/setup.md"]
    assert len(load_folder(tmp_path, skip_hidden=False).documents) == 8


def test_newlines_are_normalised(tmp_path: Path) -> None:
    write_bytes(tmp_path, "crlf.txt", b"one\r\ntwo\rthree\n\r\nfour")
    (doc,) = load_folder(tmp_path).documents
    assert doc.text == "one\ntwo\nthree\n\nfour"


def test_boms_and_utf16_are_decoded(tmp_path: Path) -> None:
    write_bytes(tmp_path, "bom.md", b"\xef\xbb\xbfhello \xc3\xa9")
    write_bytes(tmp_path, "u16.txt", "wide ü text\r\n".encode("utf-16"))
    docs = {d.id: d.text for d in load_folder(tmp_path).documents}
    assert docs == {"bom.md": "hello é", "u16.txt": "wide ü text\n"}


def test_every_skip_reason_is_recorded_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_corpus(tmp_path, {"good.md": "fine"})
    write_bytes(tmp_path, "binary.txt", b"PK\x03\x04\x00\x00data")
    write_bytes(tmp_path, "controls.txt", bytes(range(1, 9)) * 10)
    write_bytes(tmp_path, "latin1.txt", "café".encode("latin-1"))
    write_bytes(tmp_path, "empty.md", b"")
    write_bytes(tmp_path, "blank.md", b" \n\t\r\n ")
    write_bytes(tmp_path, "big.txt", b"x" * 101)
    with caplog.at_level(logging.WARNING, logger="ragkit"):
        result = load_folder(tmp_path, max_bytes=100)
    assert ids(result) == ["good.md"]
    got = reasons(result)
    assert got["binary.txt"] == "binary"
    assert got["controls.txt"] == "binary"
    assert got["latin1.txt"].startswith("not UTF-8")
    assert got["empty.md"] == "empty"
    assert got["blank.md"] == "whitespace only"
    assert got["big.txt"].startswith("too large")
    assert len(got) == 6
    for path, reason in got.items():
        assert any(
            r.name == "ragkit"
            and r.levelno == logging.WARNING
            and path in r.getMessage()
            and reason in r.getMessage()
            for r in caplog.records
        ), path


def test_fallback_encoding_reads_legacy_files(tmp_path: Path) -> None:
    write_bytes(tmp_path, "latin1.txt", "café crème".encode("cp1252"))
    result = load_folder(tmp_path, fallback_encoding="cp1252")
    assert [d.text for d in result.documents] == ["café crème"]
    assert result.skipped == ()


def test_html_meta_charset_is_honoured(tmp_path: Path) -> None:
    html = '<html><head><meta charset="iso-8859-1"><title>Caf\xe9</title></head>'
    html += "<body><p>Cr\xe8me br\xfbl\xe9e</p></body></html>"
    write_bytes(tmp_path, "page.html", html.encode("latin-1"))
    (doc,) = load_folder(tmp_path).documents
    assert doc.text == "# Café\n\nCrème brûlée"


def test_symlinks_out_of_the_folder_are_not_followed(tmp_path: Path) -> None:
    outside = write_corpus(tmp_path / "outside", {"secret.md": "secret", "sub/x.md": "x"})
    root = write_corpus(tmp_path / "root", {"a.md": "a", "real/b.md": "b"})
    os.symlink(outside / "secret.md", root / "leak.md")
    os.symlink(outside / "sub", root / "leakdir")
    os.symlink(root / "real" / "b.md", root / "alias.md")  # inside: fine
    result = load_folder(root)
    assert ids(result) == ["a.md", "alias.md", "real/b.md"]
    assert reasons(result) == {
        "leak.md": "symlink outside the folder",
        "leakdir": "symlink outside the folder",
    }


def test_symlinked_folder_loops_terminate(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "root", {"a/x.md": "x", "b/y.md": "y"})
    os.symlink(root, root / "a" / "up")  # back to an ancestor
    os.symlink(root / "b", root / "a" / "to_b")  # a sibling: followed once
    os.symlink(root / "a", root / "b" / "to_a")  # ... which links back to a
    result = load_folder(root)
    assert "a/x.md" in ids(result)
    assert "b/y.md" in ids(result)
    assert "a/to_b/y.md" in ids(result)
    assert all(r == "symlink loop" for r in reasons(result).values())
    assert {"a/up", "a/to_b/to_a"} <= set(reasons(result))


def test_unreadable_file_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_corpus(tmp_path, {"a.md": "a", "locked.md": "secret"})
    real_open = os.open

    def guarded_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path).endswith("locked.md"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    # Running as root ignores file modes, so simulate the OS refusing the open.
    monkeypatch.setattr(os, "open", guarded_open)
    result = load_folder(tmp_path)
    assert ids(result) == ["a.md"]
    assert reasons(result) == {"locked.md": "unreadable (permission denied)"}


def test_missing_folder_or_file_path_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no such folder") as info:
        load_folder(tmp_path / "nope")
    assert info.value.path == str(tmp_path / "nope")
    (tmp_path / "f.md").write_text("x")
    with pytest.raises(LoadError, match="not a folder"):
        load_folder(tmp_path / "f.md")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_bytes": 0}, r"max_bytes \(0\) must be >= 1"),
        ({"fallback_encoding": "no-such-codec"}, "fallback_encoding"),
        ({"include": [""]}, "non-empty"),
    ],
)
def test_bad_arguments_are_value_errors(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_folder(tmp_path, **kwargs)


def test_load_file_raises_with_a_reason(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "bin.md", b"\x00\x01\x02")
    with pytest.raises(LoadError, match="bin.md: binary") as info:
        load_file(path)
    assert info.value.reason == "binary"
    assert info.value.path == str(path)
    with pytest.raises(LoadError, match="not found"):
        load_file(tmp_path / "missing.md")
    good = write_bytes(tmp_path, "sub/ok.md", b"text")
    assert load_file(good).id == good.as_posix()
    assert load_file(good, document_id="ok").id == "ok"


def test_default_include_covers_every_built_in_format() -> None:
    assert {p.rsplit(".", 1)[1] for p in DEFAULT_INCLUDE} == {
        "md", "markdown", "mdx", "txt", "rst", "html", "htm", "xhtml", "ipynb", "pdf", "docx"
    }  # fmt: skip
    assert {"." + p.rsplit(".", 1)[1] for p in DEFAULT_INCLUDE} <= set(available_loaders())
    assert Skipped("a.md", "empty") == Skipped("a.md", "empty")


PAGE = """<!DOCTYPE html>
<html>
<head>
  <title>Guide</title>
  <style>body { color: red; }</style>
  <script>var hidden = "script text";</script>
</head>
<body>
  <nav><a href="/">Home</a></nav>
  <h1>Guide</h1>
  <p>Fish &amp; chips &lt;3 &eacute;t&eacute; &#8212; done.</p>
  <h2>Install   <small>steps</small></h2>
  <ul>
    <li>First</li>
    <li>Second</li>
  </ul>
  <noscript>Enable JS</noscript>
  <template><p>template text</p></template>
  <pre>  indented
    code</pre>
  <p>Line one<br>line two</p>
  <table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>
  <script>console.log("more script");</script>
</body>
</html>
"""


def test_html_to_text_keeps_structure_and_drops_code() -> None:
    text = html_to_text(PAGE)
    assert "script" not in text
    assert "color" not in text
    assert "Enable JS" not in text
    assert "template text" not in text
    assert text.startswith(("Home\n\n# Guide\n\n", "# Guide\n\nHome"))
    assert "Fish & chips <3 été — done." in text
    assert "\n## Install steps\n" in text
    assert "- First\n- Second" in text
    assert "  indented\n    code" in text
    assert "Line one\nline two" in text
    assert "a b\nc d" in text
    assert "\n\n\n" not in text


def test_html_headings_stay_on_one_line() -> None:
    assert html_to_text("<h3>\n  Two<br>lines <span>and more</span></h3><p>x</p>") == (
        "### Two lines and more\n\nx"
    )


def test_html_title_becomes_a_heading_once() -> None:
    assert html_to_text("<title>T</title><h1>T</h1><p>x</p>") == "# T\n\nx"
    assert html_to_text("<title>Page</title><p>x</p>") == "# Page\n\nx"
    assert html_to_text("<head><title>Page</title><p>x") == "# Page\n\nx"


def test_html_files_are_converted_on_load(tmp_path: Path) -> None:
    write_bytes(tmp_path, "page.htm", PAGE.encode())
    write_bytes(tmp_path, "empty.html", b"<html><script>x</script></html>")
    result = load_folder(tmp_path)
    assert ids(result) == ["page.htm"]
    assert result.documents[0].text == html_to_text(PAGE)
    assert reasons(result) == {"empty.html": "no text in HTML"}


# --------------------------------------------------------------------------- metadata


def test_every_document_carries_file_facts_and_a_title(tmp_path: Path) -> None:
    write_corpus(tmp_path, {"guide/intro.md": "Some text.\n\n## Setup\n\nRun it.", "n.txt": "x"})
    os.utime(tmp_path / "guide" / "intro.md", (0, 1_700_000_000.5))
    docs = {d.id: d for d in load_folder(tmp_path).documents}
    meta = dict(docs["guide/intro.md"].metadata)
    assert meta == {
        "path": "guide/intro.md",
        "suffix": ".md",
        "size": len(b"Some text.\n\n## Setup\n\nRun it."),
        "mtime": "2023-11-14T22:13:20Z",
        "title": "Setup",
    }
    assert "title" not in docs["n.txt"].metadata  # no heading: no title, not a made-up one
    assert json.loads(json.dumps(dict(docs["n.txt"].metadata))) == dict(docs["n.txt"].metadata)


def test_front_matter_becomes_metadata_and_leaves_the_text(tmp_path: Path) -> None:
    write_corpus(
        tmp_path,
        {
            "post.md": "---\ntitle: Refund  policy\ntags: [billing, faq]\ndate: 2024-03-01\n"
            "author:\n  name: Ann\ndraft: false\nsize: 99\n---\n\nBody text.\n",
            "h1.md": "---\ntitle: Meta title\n---\n# Own heading\n\nBody.",
            "rule.md": "---\n- a\n- b\n---\nText after a list.",
            "broken.md": "---\ntitle: [unclosed\n---\nStill indexed.",
        },
    )
    docs = {d.id: d for d in load_folder(tmp_path).documents}
    post = docs["post.md"]
    assert post.text == "# Refund policy\n\nBody text.\n"  # the title heads the chunks' paths
    assert post.metadata["title"] == "Refund policy"
    assert post.metadata["tags"] == ("billing", "faq")
    assert post.metadata["date"] == "2024-03-01"
    assert post.metadata["author.name"] == "Ann"
    assert post.metadata["draft"] is False
    assert post.metadata["size"] == len((tmp_path / "post.md").read_bytes())  # a file fact wins
    assert docs["h1.md"].text == "# Own heading\n\nBody."
    assert docs["h1.md"].metadata["title"] == "Meta title"
    assert docs["rule.md"].text.startswith("---\n- a")  # not a mapping: not front matter
    assert docs["broken.md"].text.startswith("---\ntitle: [unclosed")
    assert "title" not in docs["broken.md"].metadata


def test_front_matter_fields_that_have_no_json_form_are_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="ragkit"):
        fields, length = parse_front_matter(
            "---\nok: 1\nitems:\n  - {a: 1}\nwhen: 2024-01-02T03:04:05Z\nn: .nan\n---\nx",
            document_id="f.md",
        )
    assert fields == {"ok": 1, "when": fields["when"], "n": "nan"}
    assert str(fields["when"]).startswith("2024-01-02")
    assert length == len(
        "---\nok: 1\nitems:\n  - {a: 1}\nwhen: 2024-01-02T03:04:05Z\nn: .nan\n---\n"
    )
    assert any("'items' left out" in r.getMessage() for r in caplog.records)


def test_front_matter_alias_bombs_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    keys = ", ".join(f"k{i}: {i}" for i in range(9))
    bomb = f"---\na: &a {{{keys}}}\n"
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        refs = ", ".join(f"k{i}: *{prev}" for i in range(9))
        bomb += f"{name}: &{name} {{{refs}}}\n"  # 9**8 values once expanded
    bomb += "---\nbody"
    with caplog.at_level(logging.WARNING, logger="ragkit"):
        fields, length = parse_front_matter(bomb, document_id="bomb.md")
    assert fields == {}
    assert length == bomb.index("body")
    assert any("more than 1000 values" in r.getMessage() for r in caplog.records)


def test_html_title_and_chunk_heading_paths(tmp_path: Path) -> None:
    write_bytes(tmp_path, "page.html", b"<title>Guide</title><h2>Install</h2><p>Run pip.</p>")
    (doc,) = load_folder(tmp_path).documents
    assert doc.metadata["title"] == "Guide"
    assert [c.headings for c in chunk_document(doc)] == [("Guide", "Install")]


# --------------------------------------------------------------------------- friction


def test_suffixes_match_case_insensitively_and_mdx_is_markdown(tmp_path: Path) -> None:
    write_corpus(
        tmp_path,
        {
            "README.MD": "# Upper\n\ntext",
            "page.mdx": "---\ntitle: X\n---\nimport A from './a'\n\n# X\n\nbody",
            "Notes.TXT": "plain",
        },
    )
    result = load_folder(tmp_path)
    assert ids(result) == ["Notes.TXT", "README.MD", "page.mdx"]
    docs = {d.id: d for d in result.documents}
    assert docs["README.MD"].metadata["suffix"] == ".md"
    assert docs["page.mdx"].metadata["title"] == "X"
    assert ids(load_folder(tmp_path, include=["*.md"])) == ["README.MD"]
    assert ids(load_folder(tmp_path, include=["readme.md"], allow_empty=True)) == []


def test_files_left_out_are_counted_by_type(tmp_path: Path) -> None:
    write_corpus(tmp_path, {"a.md": "a", "img/x.PNG": "p", "img/y.png": "p", "Makefile": "m"})
    write_corpus(tmp_path, {"c.svg": "<svg/>", ".env": "K=1", ".hidden.md": "h", ".git/c.md": "x"})
    write_corpus(tmp_path, {"node_modules/p/r.md": "x"})
    result = load_folder(tmp_path)
    assert ids(result) == ["a.md"]
    assert dict(result.not_indexed) == {".png": 2, "": 1, ".svg": 1}
    assert list(result.not_indexed) == [".png", "", ".svg"]  # most frequent first
    assert result.describe_not_indexed() == "4 files not indexed: 2 .png, 1 (no suffix), 1 .svg"
    assert result.hidden == (".git/", ".hidden.md", "node_modules/")
    assert result.skipped == ()
    every = load_folder(tmp_path, include=["**"], skip_hidden=False)
    assert len(every.documents) == 9
    assert every.hidden == ()
    assert dict(every.not_indexed) == {}


def test_an_empty_folder_is_an_error_the_caller_can_detect(tmp_path: Path) -> None:
    with pytest.raises(NoDocumentsError, match="no documents to load; add include patterns"):
        load_folder(tmp_path)
    write_corpus(tmp_path, {"a.png": "x", "b.png": "x", "c.md": ""})
    with pytest.raises(
        NoDocumentsError, match=r"no documents to load \(2 files not indexed: 2 .png; 1 skipped\)"
    ) as info:
        load_folder(tmp_path)
    assert isinstance(info.value, LoadError)
    assert info.value.result.skipped == (Skipped("c.md", "empty"),)
    assert load_folder(tmp_path, allow_empty=True).documents == ()


def test_included_files_of_unknown_type_are_read_as_text(tmp_path: Path) -> None:
    write_corpus(tmp_path, {"data.csv": "a,b\n1,2\n", "Makefile": "all:\n\ttrue\n"})
    result = load_folder(tmp_path, include=["*.csv", "Makefile"])
    assert {d.id: d.metadata["suffix"] for d in result.documents} == {
        "Makefile": "",
        "data.csv": ".csv",
    }


def test_notebook_cells_become_markdown_and_fenced_code(tmp_path: Path) -> None:
    notebook = {
        "nbformat": 4,
        "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
        "cells": [
            {"cell_type": "markdown", "source": ["# Analysis\n", "\n", "We load data."]},
            {
                "cell_type": "code",
                "source": "df = load()\nprint('```')",
                "outputs": [{"output_type": "stream", "text": ["OUTPUT TEXT"]}],
            },
            {"cell_type": "raw", "source": "RAW CELL"},
            {"cell_type": "code", "source": []},
        ],
    }
    write_bytes(tmp_path, "nb.ipynb", json.dumps(notebook).encode())
    write_bytes(tmp_path, "bad.ipynb", b"{not json")
    result = load_folder(tmp_path)
    (doc,) = result.documents
    assert doc.text == "# Analysis\n\nWe load data.\n\n````python\ndf = load()\nprint('```')\n````"
    assert doc.metadata["title"] == "Analysis"
    assert doc.metadata["language"] == "python"
    assert reasons(result)["bad.ipynb"].startswith("not a Jupyter notebook")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            b'{"cells": [{"cell_type": "code", "execution_count": ' + b"9" * 5000 + b"}]}",
            "not a Jupyter notebook (a number with thousands of digits)",
        ),
        (b'{"cells": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "(JSON nested too deeply)"),
    ],
)
def test_a_hostile_notebook_is_skipped_with_a_reason_for_users(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    # Found by an outside probe: the skip reason told users to call
    # sys.set_int_max_str_digits(), or repeated Python's recursion message.
    write_bytes(tmp_path, "good.md", b"# Good\n\ntext\n")
    write_bytes(tmp_path, "hostile.ipynb", content)
    result = load_folder(tmp_path)
    assert [d.id for d in result.documents] == ["good.md"]
    assert reasons(result)["hostile.ipynb"].endswith(reason)
    assert "sys." not in reasons(result)["hostile.ipynb"]


# --------------------------------------------------------------------------- registry


@dataclass
class OrgLoader:
    suffixes: tuple[str, ...] = (".org",)

    def load(self, data: bytes, *, document_id: str) -> Document:
        return Document(document_id, data.decode().replace("* ", "# "), {"title": "org", "size": 1})


class _Point:
    """An installed entry point's shape: name, value, load()."""

    def __init__(self, name: str, obj: Any) -> None:
        self.name, self.value, self.obj = name, f"plugin:{name}", obj

    def load(self) -> Any:
        if isinstance(self.obj, Exception):
            raise self.obj
        return self.obj


@pytest.fixture
def registry(plugins: dict[str, list[Any]]) -> Any:
    from ragkit.loaders import registry as module

    return module


def test_third_party_loaders_register_by_suffix(tmp_path: Path, registry: Any) -> None:
    org = OrgLoader()
    register_loader(org)
    assert loader_for("ORG") is org
    assert loader_for(".org") is org
    with pytest.raises(ValueError, match=r"already read by another loader: \.md"):
        register_loader(OrgLoader(suffixes=(".md",)))
    with pytest.raises(TypeError, match="ragkit.base.Loader"):
        register_loader(object())  # type: ignore[arg-type]
    write_corpus(tmp_path, {"notes.org": "* Head\ntext"})
    (doc,) = load_folder(tmp_path).documents  # include=None follows the registry
    assert doc.text == "# Head\ntext"
    assert doc.metadata["size"] == len(b"* Head\ntext")  # file facts are the folder's
    register_loader(OrgLoader(suffixes=(".md",)), replace=True)
    assert isinstance(loader_for(".md"), OrgLoader)


def test_plugins_register_through_entry_points(
    registry: Any, plugins: dict[str, list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    points = [_Point("org", OrgLoader), _Point("broken", ImportError("no module named x"))]
    plugins[registry.ENTRY_POINT_GROUP] = points
    with caplog.at_level(logging.WARNING, logger="ragkit"):
        assert isinstance(loader_for(".org"), OrgLoader)
    assert any(
        "'broken'" in r.getMessage() and "not used" in r.getMessage() for r in caplog.records
    )
    assert ".org" in available_loaders()
    with pytest.warns(DeprecationWarning, match=r"registered_suffixes\(\) is deprecated"):
        assert registered_suffixes() == available_loaders()


def test_one_precedence_rule_registered_then_builtin_then_plugin(
    registry: Any, plugins: dict[str, list[Any]]
) -> None:
    plugins[registry.ENTRY_POINT_GROUP] = [_Point("org-md", OrgLoader(suffixes=(".md", ".org")))]
    registry.LOADERS.reload()
    # an installed plugin adds .org but does not change how .md is read
    assert registry.LOADERS.source(".md") == "built-in"
    assert type(loader_for(".md")).__name__ == "MarkdownLoader"
    assert registry.LOADERS.source(".org") == "entry point"
    assert isinstance(loader_for(".org"), OrgLoader)
    mine = OrgLoader(suffixes=(".md",))
    with pytest.raises(
        ValueError, match=r"already read by another loader: \.md \(MarkdownLoader\)"
    ):
        register_loader(mine)
    register_loader(mine, replace=True)
    assert loader_for(".MD") is mine  # a registration takes over a built-in, explicitly


def test_a_failing_loader_skips_its_file_only(tmp_path: Path, registry: Any) -> None:
    class Crashing:
        suffixes = (".crash",)

        def load(self, data: bytes, *, document_id: str) -> Document:
            raise RuntimeError("boom")

    register_loader(Crashing())
    write_corpus(tmp_path, {"a.crash": "x", "b.md": "b"})
    result = load_folder(tmp_path)
    assert ids(result) == ["b.md"]
    assert reasons(result) == {"a.crash": "loader Crashing failed (RuntimeError: boom)"}


# --------------------------------------------------------------------------- PDF


def make_pdf(pages: list[str], *, title: str | None = None) -> bytes:
    """A minimal valid PDF with one Helvetica text line per line of each page's text."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    page_ids: list[int] = []
    for text in pages:
        ops = [b"BT /F1 12 Tf 72 720 Td 14 TL"]
        for line in text.split("\n") if text else []:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(b"(" + escaped.encode("latin-1") + b") Tj T*")
        ops.append(b"ET")
        stream = b"\n".join(ops)
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page_ids.append(
            add(
                b"<< /Type /Page /Parent PARENT 0 R /MediaBox [0 0 612 792] "
                b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (font, content)
            )
        )
    kids = b" ".join(b"%d 0 R" % p for p in page_ids)
    pages_id = add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids)))
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    info = add(b"<< /Title (%s) >>" % title.encode("latin-1")) if title else None
    objects = [o.replace(b"PARENT", b"%d" % pages_id) for o in objects]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    trailer = b"<< /Size %d /Root %d 0 R" % (len(objects) + 1, catalog)
    if info:
        trailer += b" /Info %d 0 R" % info
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def test_pages_for_span_maps_offsets_to_pages() -> None:
    starts = (0, 100, 100, 250)  # page 2 is empty
    assert pages_for_span(starts, 0, 10) == (1,)
    assert pages_for_span(starts, 90, 110) == (1, 3)
    assert pages_for_span(starts, 100, 101) == (3,)
    assert pages_for_span(starts, 240, 400) == (3, 4)
    assert pages_for_span((), 0, 1) == ()
    with pytest.raises(ValueError, match=r"span \(5, 5\) must satisfy 0 <= start < end"):
        pages_for_span(starts, 5, 5)


def test_pdf_pages_and_title_go_into_metadata(tmp_path: Path) -> None:
    pytest.importorskip("pypdfium2")
    data = make_pdf(["First page line", "", "Third page\nsecond line"], title="The Manual")
    write_bytes(tmp_path, "manual.PDF", data)
    (doc,) = load_folder(tmp_path).documents
    meta = doc.metadata
    assert meta["pages"] == 3
    assert meta["title"] == "The Manual"
    assert meta["suffix"] == ".pdf"
    starts = meta["page_starts"]
    assert len(starts) == 3
    assert starts[0] == 0
    assert starts[1] == starts[2]
    assert doc.text[: starts[1]].strip() == "First page line"
    assert doc.text[starts[2] :].split() == ["Third", "page", "second", "line"]
    for chunk in chunk_document(doc, size=8, overlap=0):
        pages = pages_for_span(starts, chunk.start, chunk.end)
        assert pages
        assert 2 not in pages
        if "Third" in chunk.text:
            assert 3 in pages


def test_pdf_without_text_encrypted_or_damaged_is_skipped_with_a_reason(tmp_path: Path) -> None:
    pytest.importorskip("pypdfium2")
    pypdf = pytest.importorskip("pypdf")  # only to encrypt the test files
    write_bytes(tmp_path, "scan.pdf", make_pdf(["", ""]))
    write_bytes(tmp_path, "cut.pdf", make_pdf(["text"])[:60])
    write_bytes(tmp_path, "fake.pdf", b"just text, no header")
    for name, password in (("locked.pdf", "secret"), ("open.pdf", "")):
        writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(make_pdf(["inside"]))))
        writer.encrypt(user_password=password, owner_password="owner", algorithm="AES-128")
        buffer = io.BytesIO()
        writer.write(buffer)
        write_bytes(tmp_path, name, buffer.getvalue())
    result = load_folder(tmp_path)
    assert ids(result) == ["open.pdf"]  # encrypted for permissions only: readable
    assert result.documents[0].text == "inside"
    got = reasons(result)
    assert got["scan.pdf"].startswith("no text layer (a scanned PDF? run OCR")
    assert got["locked.pdf"] == "encrypted (needs a password; decrypt it first)"
    assert got["cut.pdf"].startswith("not a readable PDF")
    assert got["fake.pdf"] == "not a PDF (no %PDF header)"


def test_a_missing_extra_is_a_skip_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdfium2", None)  # import fails
    monkeypatch.setitem(sys.modules, "lxml", None)
    write_bytes(tmp_path, "a.pdf", make_pdf(["x"]))
    write_bytes(tmp_path, "b.docx", b"PK")
    # In this process, where the imports are patched (the worker process has the extras).
    result = load_folder(tmp_path, allow_empty=True, limits=LoadLimits(isolate=False))
    assert reasons(result) == {
        "a.pdf": "needs the 'pdf' extra: pip install 'ragkit-claude[pdf]'",
        "b.docx": "needs the 'docx' extra: pip install 'ragkit-claude[docx]'",
    }


# --------------------------------------------------------------------------- DOCX


def make_docx(path: Path, *, title: str | None = None) -> None:
    docx = pytest.importorskip("docx")
    document = docx.Document()
    if title:
        document.core_properties.title = title
    document.add_heading("Handbook", level=1)
    document.add_paragraph("Welcome to the team.")
    document.add_heading("Leave", level=2)
    document.add_paragraph("Ask your manager.")
    document.add_paragraph("Two weeks notice", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([("Days", "Kind"), ("25", "annual")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_heading("Pay", level=2)
    document.add_paragraph("Monthly.")
    document.save(str(path))


def test_docx_headings_become_markdown_heading_paths(tmp_path: Path) -> None:
    make_docx(tmp_path / "handbook.docx")
    make_docx(tmp_path / "titled.docx", title="HR Handbook 2026")
    write_bytes(tmp_path, "broken.docx", b"PK\x03\x04 not really a zip")
    result = load_folder(tmp_path)
    docs = {d.id: d for d in result.documents}
    doc = docs["handbook.docx"]
    assert doc.text == (
        "# Handbook\n\nWelcome to the team.\n\n## Leave\n\nAsk your manager.\n\n"
        "- Two weeks notice\n\n| Days | Kind |\n| --- | --- |\n| 25 | annual |\n\n"
        "## Pay\n\nMonthly."
    )
    assert doc.metadata["title"] == "Handbook"
    assert docs["titled.docx"].metadata["title"] == "HR Handbook 2026"
    paths = {c.headings for c in chunk_document(doc, size=12, overlap=0)}
    assert ("Handbook", "Leave") in paths
    assert ("Handbook", "Pay") in paths
    assert reasons(result)["broken.docx"].startswith("not a readable .docx")
