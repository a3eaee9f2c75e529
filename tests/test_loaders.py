"""Tests for ragkit.loaders: what is read, what is skipped and why, and HTML extraction."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from ragkit.errors import LoadError
from ragkit.loaders import (
    DEFAULT_INCLUDE,
    LoadResult,
    Skipped,
    html_to_text,
    load_file,
    load_folder,
    registered_suffixes,
)


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
    assert "a/x.md" in ids(result) and "b/y.md" in ids(result)
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
    with pytest.raises(LoadError) as info:
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
    assert {"." + p.rsplit(".", 1)[1] for p in DEFAULT_INCLUDE} <= set(registered_suffixes())
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
    assert "script" not in text and "color" not in text
    assert "Enable JS" not in text and "template text" not in text
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
