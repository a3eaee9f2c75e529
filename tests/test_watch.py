"""Watch mode on a real temporary folder: saved, changed and deleted files reach the index.

Every wait is bounded; nothing here asserts how fast (bench/bench_watch.py measures that).
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

pytest.importorskip("watchfiles")

import ragkit  # noqa: E402
from ragkit.watch import WatchUpdate, watch_folder  # noqa: E402

from .conftest import SMALL_CORPUS, write_corpus  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WAIT = 30.0  # seconds: the most any step may take before the test fails


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {WAIT:.0f} s waiting for {what}")
        time.sleep(0.05)


def ids_for(index: ragkit.Index, text: str) -> list[str]:
    return [hit.chunk.id for hit in index.search(text, 3)]


class Watcher:
    def __init__(self, folder: Path, location: Path, index: ragkit.Index) -> None:
        self.updates: queue.Queue[WatchUpdate] = queue.Queue()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(folder, location, index))

    def _run(self, folder: Path, location: Path, index: ragkit.Index) -> None:
        try:
            watch_folder(
                folder, location, index=index, on_update=self.updates.put, stop_event=self.stop
            )
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.errors.append(exc)


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, Path, ragkit.Index, Watcher]]:
    folder = write_corpus(tmp_path / "notes", SMALL_CORPUS)
    # the index lives inside the watched folder: its own saves must not trigger batches
    location = folder / ".ragkit" / "index"
    index = ragkit.Index(embedder=None)
    watcher = Watcher(folder, location, index)
    watcher.thread.start()
    first = watcher.updates.get(timeout=WAIT)
    assert first.initial
    assert sorted(first.update.added) == sorted(SMALL_CORPUS)
    yield folder, location, index, watcher
    watcher.stop.set()
    watcher.thread.join(timeout=WAIT)
    assert not watcher.thread.is_alive(), "stop_event did not stop the watcher"
    assert watcher.errors == []


def test_saved_changed_and_deleted_files_reach_the_index(
    watched: tuple[Path, Path, ragkit.Index, Watcher],
) -> None:
    folder, location, index, watcher = watched
    note = folder / "sub" / "platypus.md"
    note.parent.mkdir()
    note.write_text("# Platypus\n\nThe platypus lays eggs.\n", encoding="utf-8")
    wait_for(lambda: ids_for(index, "platypus") == ["sub/platypus.md#0"], "the new file")
    # saved too: a separate reader of the directory sees it
    wait_for(
        lambda: "sub/platypus.md" in ragkit.Index.load(location, embedder=None).document_ids,
        "the saved index",
    )

    note.write_text("# Platypus\n\nThe platypus hunts with electroreception.\n", encoding="utf-8")
    wait_for(lambda: ids_for(index, "electroreception") == ["sub/platypus.md#0"], "the change")
    assert ids_for(index, "eggs") == []

    note.unlink()
    wait_for(lambda: "sub/platypus.md" not in index.document_ids, "the deletion")
    assert ids_for(index, "electroreception") == []
    assert set(index.document_ids) == set(SMALL_CORPUS)

    seen: list[WatchUpdate] = []

    def reported_removal() -> bool:
        while not watcher.updates.empty():
            seen.append(watcher.updates.get())
        return any("sub/platypus.md" in u.update.removed for u in seen)

    wait_for(reported_removal, "on_update to report the deletion")
    assert all(not u.initial and u.paths for u in seen)


@pytest.mark.parametrize("pause", [0.0, 1.0])
def test_a_watched_folder_removed_and_made_again_is_watched_again(
    tmp_path: Path, pause: float
) -> None:
    # Found by an outside probe: once the folder was removed, its watch saw nothing more, so
    # files saved in the folder made again were never indexed (a folder made again at once
    # may even get the same inode number back).
    folder = write_corpus(tmp_path / "notes", SMALL_CORPUS)
    location = tmp_path / "index"
    index = ragkit.Index(embedder=None)
    watcher = Watcher(folder, location, index)
    watcher.thread.start()
    try:
        assert watcher.updates.get(timeout=WAIT).initial
        shutil.rmtree(folder)
        time.sleep(pause)
        write_corpus(folder, {"back.md": "# Back\n\nThe wombat returns.\n"})
        wait_for(lambda: set(index.document_ids) == {"back.md"}, "the folder made again")
        (folder / "later.md").write_text("# Later\n\nA quokka arrives.\n", encoding="utf-8")
        wait_for(lambda: ids_for(index, "quokka") == ["later.md#0"], "a file saved after that")
        wait_for(
            lambda: "later.md" in ragkit.Index.load(location, embedder=None).document_ids,
            "the saved index",
        )
    finally:
        watcher.stop.set()
        watcher.thread.join(timeout=WAIT)
    assert not watcher.thread.is_alive(), "stop_event did not stop the watcher"
    assert watcher.errors == []


def test_watch_folder_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(ragkit.RagkitError, match="it is not a directory"):
        watch_folder(tmp_path / "missing", None, index=ragkit.Index(embedder=None))
    with pytest.raises(ValueError, match=r"step_ms \(0\) must be an integer >= 1"):
        watch_folder(tmp_path, None, step_ms=0)


@contextlib.contextmanager
def watching(folder: Path, location: Path, *options: str) -> Iterator[tuple[list[str], list[str]]]:
    """Run `ragkit index FOLDER --keyword-only --watch OPTIONS` until the watcher is up; yield its
    stdout and stderr lines (filled as they come); stop it with Ctrl-C (SIGINT) on leaving."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragkit", "index", str(folder), "--index", str(location)]
        + ["--keyword-only", *options, "--watch"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda s=stream, d=dest: d.extend(s), daemon=True)
        for stream, dest in ((proc.stdout, out), (proc.stderr, err))
    ]
    for reader in readers:
        reader.start()
    try:
        wait_for(lambda: any(line.startswith("Watching") for line in err), "the watcher")
        yield out, err
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(timeout=WAIT)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0, "".join(err)
    assert "Stopped watching.\n" in err


def test_cli_index_watch_updates_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "notes", SMALL_CORPUS)
    location = tmp_path / "index"
    with watching(folder, location) as (out, _):
        (folder / "otters.md").write_text("# Otters\n\nOtters hold hands.\n", encoding="utf-8")
        wait_for(lambda: any("otters.md" in line for line in out), "the update line")
        assert "otters.md" in ragkit.Index.load(location, embedder=None).document_ids
    assert out[0].startswith("Indexed")
    assert out[-1].startswith("Updated")
    assert "otters.md" in out[-1]


def test_mcp_watch_serves_changes_in_process(tmp_path: Path) -> None:
    pytest.importorskip("mcp")
    from .test_mcp import run_session

    folder = write_corpus(tmp_path / "notes", SMALL_CORPUS)
    location = tmp_path / "index"
    ragkit.index_folder(folder, location, embedder=None)
    found: list[str] = []

    async def body(client) -> None:
        (folder / "otters.md").write_text("# Otters\n\nOtters hold hands.\n", encoding="utf-8")
        with anyio.fail_after(WAIT):
            while not found:
                result = await client.call_tool("search", {"query": "otters hold hands"})
                found.extend(h["chunk_id"] for h in result.structured_content["results"])
                await anyio.sleep(0.1)

    run_session(location, body, "--watch", str(folder))
    assert found[0] == "otters.md#0"


# -- the folder's options are remembered: no silent removals (issue 14 item 5, issue 15) ------


def _cli_index(folder: Path, location: Path, *options: str) -> None:
    from click.testing import CliRunner

    from ragkit.cli import cli

    result = CliRunner().invoke(
        cli, ["index", str(folder), "--index", str(location), "--keyword-only", *options]
    )
    assert result.exit_code == 0, result.output


def test_cli_index_hidden_watch_keeps_the_hidden_files(tmp_path: Path) -> None:
    """`ragkit index docs --hidden --watch`: the watcher's first sync keeps `.notes/b.md`."""
    folder = write_corpus(
        tmp_path / "docs",
        {**SMALL_CORPUS, ".notes/b.md": "# Hidden\n\nThe okapi is a forest giraffe.\n"},
    )
    location = tmp_path / "index"
    with watching(folder, location, "--hidden") as (out, _):
        # a later change proves the first sync is over
        (folder / "otters.md").write_text("# Otters\n\nOtters hold hands.\n", encoding="utf-8")
        wait_for(lambda: any("otters.md" in line for line in out), "the update line")
        saved = ragkit.Index.load(location, embedder=None)
        assert ".notes/b.md" in saved.document_ids
        assert "otters.md" in saved.document_ids
    assert not any(".notes/b.md" in line for line in out[1:]), out


def test_watch_folder_syncs_with_the_options_the_index_was_built_with(tmp_path: Path) -> None:
    folder = write_corpus(
        tmp_path / "src",
        {**SMALL_CORPUS, "tool.py": "def okapi():\n    return 'forest giraffe'\n"},
    )
    location = tmp_path / "index"
    _cli_index(folder, location, "--include", "**/*.py", "--include", "**/*.md")
    built = set(ragkit.Index.load(location, embedder=None).document_ids)
    assert built == {"cats.md", "dogs.md", "tool.py"}
    index = ragkit.Index.load(location, embedder=None)
    watcher = Watcher(folder, location, index)
    watcher.thread.start()
    try:
        first = watcher.updates.get(timeout=WAIT)
        assert first.initial
        assert first.update.removed == ()
        assert first.update.added == ()
        assert set(index.document_ids) == built
    finally:
        watcher.stop.set()
        watcher.thread.join(timeout=WAIT)
    assert watcher.errors == []
    assert set(ragkit.Index.load(location, embedder=None).document_ids) == built


def test_mcp_watch_keeps_documents_of_the_recorded_include_patterns(tmp_path: Path) -> None:
    """`--include '**/*.py' --include '**/*.md'`, then `ragkit mcp --watch`: no .py is lost."""
    pytest.importorskip("mcp")
    from .test_mcp import run_session

    folder = write_corpus(
        tmp_path / "src",
        {**SMALL_CORPUS, "tool.py": "def okapi():\n    return 'forest giraffe'\n"},
    )
    location = tmp_path / "index"
    _cli_index(folder, location, "--include", "**/*.py", "--include", "**/*.md")
    seen: dict[str, list[str]] = {}

    async def body(client) -> None:  # type: ignore[no-untyped-def]
        (folder / "otters.md").write_text("# Otters\n\nOtters hold hands.\n", encoding="utf-8")
        found: list[str] = []
        with anyio.fail_after(WAIT):  # the change is applied after the first sync
            while not found:
                result = await client.call_tool("search", {"query": "otters hold hands"})
                found.extend(h["chunk_id"] for h in result.structured_content["results"])
                await anyio.sleep(0.1)
        docs = await client.call_tool("list_documents", {})
        seen["docs"] = [d["id"] for d in docs.structured_content["documents"]]

    run_session(location, body, "--watch", str(folder))
    assert seen["docs"] == ["cats.md", "dogs.md", "otters.md", "tool.py"]
    assert "tool.py" in ragkit.Index.load(location, embedder=None).document_ids
