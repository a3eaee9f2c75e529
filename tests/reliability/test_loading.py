"""Loading a folder that changes, loops or holds hostile names: every case ends, and says why.

Each scenario is one a user could hit on a live folder (a build writing files, a mischievous
symlink, a FIFO left by a tool). Races are made deterministic by doing the swap inside
``os.open`` just before the loader's own call, i.e. in the window between listing and opening.
Every load runs in a daemon thread with a deadline, so a hang fails the test instead of the run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ragkit.loaders import LoadResult, load_folder

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file semantics")

DEADLINE_S = 60.0


def bounded(fn: Callable[[], LoadResult]) -> LoadResult:
    """Run ``fn`` in a daemon thread; fail (instead of hanging) if it does not return in time."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # handed to the test thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), "load_folder did not return: it blocks on something"
    if "error" in box:
        raise box["error"]
    result: LoadResult = box["result"]
    return result


def reasons(result: LoadResult) -> dict[str, str]:
    return {s.path: s.reason for s in result.skipped}


def ids(result: LoadResult) -> list[str]:
    return [d.id for d in result.documents]


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A folder to load, and a secret file outside it."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.md").write_text("alpha")
    secret = tmp_path / "secret.md"
    secret.write_text("SECRET OUTSIDE")
    return root, secret


def swap_before_open(
    monkeypatch: pytest.MonkeyPatch, name: str, swap: Callable[[], None]
) -> list[int]:
    """Run ``swap`` once, just before ragkit opens an entry called ``name``."""
    real_open = os.open
    calls: list[int] = []

    def racing_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fsdecode(path) == name and not calls:
            calls.append(flags)
            swap()
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", racing_open)
    return calls


def no_secret(result: LoadResult) -> None:
    assert all("SECRET" not in d.text for d in result.documents)


# --------------------------------------------------------------------------- non-regular files


def test_a_fifo_in_the_folder_is_skipped_without_blocking(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    os.mkfifo(root / "pipe.md")
    result = bounded(lambda: load_folder(root))
    assert ids(result) == ["a.md"]
    assert reasons(result) == {"pipe.md": "not a regular file (a FIFO)"}


def test_a_file_swapped_for_a_fifo_before_open_is_skipped(
    tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = tree
    (root / "b.md").write_text("bravo")

    def swap() -> None:
        (root / "b.md").unlink()
        os.mkfifo(root / "b.md")

    calls = swap_before_open(monkeypatch, "b.md", swap)
    result = bounded(lambda: load_folder(root))
    assert calls, "the race window was not reached"
    assert ids(result) == ["a.md"]
    assert reasons(result) == {"b.md": "not a regular file (a FIFO)"}


def test_a_file_swapped_for_a_symlink_before_open_is_not_followed(
    tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, secret = tree
    (root / "b.md").write_text("bravo")

    def swap() -> None:
        (root / "b.md").unlink()
        os.symlink(secret, root / "b.md")

    calls = swap_before_open(monkeypatch, "b.md", swap)
    result = bounded(lambda: load_folder(root))
    assert calls
    assert calls[0] & os.O_NOFOLLOW
    assert calls[0] & os.O_NONBLOCK
    assert ids(result) == ["a.md"]
    assert reasons(result) == {"b.md": "became a symlink during the walk (not followed)"}
    no_secret(result)


def test_a_folder_swapped_for_a_symlink_before_it_is_entered_is_not_followed(
    tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, secret = tree
    (root / "sub").mkdir()
    (root / "sub" / "c.md").write_text("charlie")
    outside = secret.parent / "outside"
    outside.mkdir()
    shutil.copy(secret, outside / "c.md")

    def swap() -> None:
        shutil.rmtree(root / "sub")
        os.symlink(outside, root / "sub")

    calls = swap_before_open(monkeypatch, "sub", swap)
    result = bounded(lambda: load_folder(root))
    assert calls
    assert ids(result) == ["a.md"]
    assert reasons(result) == {"sub": "folder was replaced during the walk (not followed)"}
    no_secret(result)


def test_a_file_that_vanishes_before_open_is_skipped(
    tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = tree
    (root / "b.md").write_text("bravo")
    swap_before_open(monkeypatch, "b.md", (root / "b.md").unlink)
    result = bounded(lambda: load_folder(root))
    assert ids(result) == ["a.md"]
    assert reasons(result) == {"b.md": "vanished during the walk"}


# --------------------------------------------------------------------------- links and depth


def test_symlink_loops_and_broken_links_are_skipped_with_a_reason(
    tree: tuple[Path, Path],
) -> None:
    root, secret = tree
    os.symlink(root / "loop2.md", root / "loop1.md")
    os.symlink(root / "loop1.md", root / "loop2.md")
    os.symlink(root / "self.md", root / "self.md")
    os.symlink(root / "gone.md", root / "dangling.md")
    os.symlink(secret, root / "leak.md")
    os.symlink(root / "a.md", root / "alias.md")  # inside: followed
    result = bounded(lambda: load_folder(root))
    assert ids(result) == ["a.md", "alias.md"]
    assert reasons(result) == {
        "dangling.md": "broken symlink",
        "leak.md": "symlink outside the folder",
        "loop1.md": "symlink loop",
        "loop2.md": "symlink loop",
        "self.md": "symlink loop",
    }


def test_a_thousand_nested_folders_load_without_recursion_error(tmp_path: Path) -> None:
    root = tmp_path / "root"
    # Build it relative to each level: the absolute path is longer than PATH_MAX allows.
    fd = os.open(root.parent, os.O_RDONLY)
    os.mkdir("root", dir_fd=fd)
    current = os.open("root", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    (root / "top.md").write_text("top")
    for _ in range(1000):
        os.mkdir("d", dir_fd=current)
        nxt = os.open("d", os.O_RDONLY, dir_fd=current)
        os.close(current)
        current = nxt
    leaf = os.open("leaf.md", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=current)
    os.write(leaf, b"# Bottom\n\nfound")
    os.close(leaf)
    os.close(current)
    try:
        result = bounded(lambda: load_folder(root))
    finally:
        remove_chain(root)  # pytest's own clean-up recurses once per level
    assert ids(result) == ["d/" * 1000 + "leaf.md", "top.md"]
    assert result.documents[0].metadata["title"] == "Bottom"
    assert result.skipped == ()


def remove_chain(root: Path) -> None:
    """Delete a chain of nested ``d`` folders bottom-up, holding one descriptor at a time."""
    current = os.open(root, os.O_RDONLY)
    depth = 0
    while _has_d(current):
        child = os.open("d", os.O_RDONLY, dir_fd=current)
        os.close(current)
        current, depth = child, depth + 1
    for name in os.listdir(current):
        os.unlink(name, dir_fd=current)
    for _ in range(depth):
        parent = os.open("..", os.O_RDONLY, dir_fd=current)
        os.close(current)
        os.rmdir("d", dir_fd=parent)
        current = parent
    os.close(current)


def _has_d(fd: int) -> bool:
    try:
        os.stat("d", dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


# --------------------------------------------------------------------------- hostile names


def test_names_that_are_not_utf8_are_skipped_printably(
    tree: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    root, _ = tree
    with open(os.path.join(os.fsencode(root), b"bad\xff.md"), "wb") as fh:
        fh.write(b"latin name")
    os.mkdir(os.path.join(os.fsencode(root), b"dir\xfe"))
    with caplog.at_level(logging.WARNING, logger="ragkit"):
        result = bounded(lambda: load_folder(root))
    assert ids(result) == ["a.md"]
    assert reasons(result) == {
        "bad\\xff.md": "name is not valid UTF-8 (rename the file to index it)",
        "dir\\xfe": "name is not valid UTF-8 (rename the file to index it)",
    }
    for skipped in result.skipped:
        skipped.path.encode("utf-8")  # printable and storable as it is
    json.dumps([s.path for s in result.skipped], ensure_ascii=False)
    for record in caplog.records:
        record.getMessage().encode("utf-8")


def test_a_file_name_cannot_forge_a_log_line(
    tree: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    root, _ = tree
    evil = "x\nragkit: WARNING all good\x1b[2K.md"
    (root / evil).write_bytes(b"\x00binary")
    with caplog.at_level(logging.WARNING, logger="ragkit"):
        result = bounded(lambda: load_folder(root))
    assert reasons(result) == {evil: "binary"}
    (message,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in message
    assert "\x1b" not in message
    assert message == "skipped 'x\\nragkit: WARNING all good\\x1b[2K.md': binary"


def test_deep_and_wide_trees_load_the_same_with_few_descriptors_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    for i in range(3):
        for j in range(3):
            leaf = root / f"a{i}" / "b" / f"c{j}" / "d" / "e"
            leaf.mkdir(parents=True)
            (leaf / f"f{i}{j}.md").write_text(f"text {i}{j}")
    (root / "a1" / "b" / "link.md").symlink_to(root / "a2" / "b" / "c0" / "d" / "e" / "f20.md")
    expected = load_folder(root)
    assert len(expected.documents) == 10
    import ragkit.loaders.folder as folder

    monkeypatch.setattr(folder, "_MAX_HELD_DIRS", 2)  # forces the reopen-from-root path
    assert bounded(lambda: load_folder(root)) == expected
