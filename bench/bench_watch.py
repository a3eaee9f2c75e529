"""Watch mode: time from saving a file to that file being searchable, on the demo corpus.

Usage::

    .venv/bin/python bench/bench_watch.py [--changes 12] [--keyword-only]

The demo corpus (``docs/``) is copied to a temporary folder and indexed; then
``ragkit.watch.watch_folder`` runs in a thread on that index (as ``ragkit mcp --watch`` does)
and the script saves one page (~500 words) ``--changes`` times: a new page, then edits of it,
each with a word found nowhere else. For each save it records the time from the file being
closed to a keyword search for that word returning the page (polled every 5 ms; the store writes
a document's chunks, keyword statistics and vectors in one step, so the keyword side seeing it
means the vectors are in too. A nonsense word is no test of the vector side's ranking.), and
how much of that the batch itself took (load, chunk, embed, save: ``WatchUpdate.seconds``); the
rest is the file-system notification plus the quiet period (``step_ms``, 100 ms by default).

Baseline in the same run: rebuilding the whole corpus's index from scratch with the same
embedder, which is what a re-run without incremental updates would cost.

Runs keyword-only and, when the offline embedder is installed, with the default embedder.
Writes bench/out/watch.json.
"""

from __future__ import annotations

import argparse
import json
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import ragkit  # noqa: E402
from ragkit.embedders import default_embedder  # noqa: E402
from ragkit.watch import WatchUpdate, watch_folder  # noqa: E402

WORDS = (
    "index chunk search rank answer folder document embed vector keyword fusion query token "
    "budget citation model store filter update watch save load page heading section"
).split()


def word(i: int) -> str:
    """A letters-only word that appears nowhere else (the analyzer keeps it whole)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return "zyq" + letters[i // 26 % 26] + letters[i % 26] + "vex"


def page(i: int) -> str:
    body = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(480))
    return f"# Bench page {i}\n\nThe marker word is {word(i)}.\n\n{body}\n"


def run(embedder: object, changes: int) -> dict[str, object]:
    name = "keyword-only" if embedder is None else getattr(embedder, "name", "embedder")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        shutil.copytree(ROOT / "docs", folder)
        location = Path(tmp) / "index"
        started = time.perf_counter()
        ragkit.index_folder(folder, Path(tmp) / "baseline", embedder=embedder)  # type: ignore[arg-type]
        rebuild_s = time.perf_counter() - started
        index = ragkit.index_folder(folder, location, embedder=embedder)  # type: ignore[arg-type]
        if embedder is not None:
            index.search("warm up the query path", 1)
        updates: queue.Queue[WatchUpdate] = queue.Queue()
        stop = threading.Event()
        thread = threading.Thread(
            target=watch_folder,
            args=(folder, location),
            kwargs={"index": index, "on_update": updates.put, "stop_event": stop},
        )
        thread.start()
        assert updates.get(timeout=60).initial
        latencies: list[float] = []
        applied: list[float] = []
        target = folder / "bench-page.md"
        try:
            for i in range(changes):
                target.write_text(page(i), encoding="utf-8")
                saved = time.perf_counter()
                deadline = saved + 30
                while target.name not in {
                    h.chunk.document_id for h in index.search(word(i), 5, mode="bm25")
                }:
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"change {i} not searchable after 30 s")
                    time.sleep(0.005)
                latencies.append(time.perf_counter() - saved)
                event = updates.get(timeout=30)
                while target.name not in (*event.update.added, *event.update.replaced):
                    event = updates.get(timeout=30)
                applied.append(event.seconds)
                time.sleep(0.3)  # let the watcher go idle between saves
        finally:
            stop.set()
            thread.join(timeout=10)
    result = {
        "embedder": name,
        "changes": changes,
        "save_to_searchable_s": {
            "median": statistics.median(latencies),
            "p90": sorted(latencies)[int(0.9 * (len(latencies) - 1))],
            "max": max(latencies),
        },
        "batch_s_median": statistics.median(applied),
        "full_rebuild_s": rebuild_s,
        "rebuild_over_watch": rebuild_s / statistics.median(latencies),
    }
    print(
        f"{name:<22} save→searchable median {result['save_to_searchable_s']['median']:.3f} s "
        f"(p90 {result['save_to_searchable_s']['p90']:.3f}, max {max(latencies):.3f}); "
        f"batch median {statistics.median(applied):.3f} s; full rebuild {rebuild_s:.2f} s"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=12)
    parser.add_argument("--keyword-only", action="store_true", help="Skip the embedder run.")
    args = parser.parse_args()
    embedders: list[object] = [None]
    if not args.keyword_only:
        found = default_embedder()
        if found is None:
            print("no default embedder installed: keyword-only only")
        else:
            embedders.append(found)
    results = [run(e, args.changes) for e in embedders]
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "watch.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
