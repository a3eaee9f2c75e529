"""An edit to a long document: how many chunks are re-embedded, and how soon it is searchable.

Usage::

    .venv/bin/python bench/bench_reembed.py [--chunks 1000] [--edits 5] [--keyword-only]

Builds one markdown document of about ``--chunks`` chunks (release-notes style: a heading per
release, paragraphs of 20-90 words), indexes it with the default embedder, then runs
``ragkit.watch.watch_folder`` in a thread on that index (as ``ragkit index --watch`` does) and
saves ``--edits`` edits of the document, each appending one paragraph with a word found nowhere
else. Per edit it records the chunks re-embedded (``IndexUpdate.chunks_embedded``) of the
document's total, the time from the file being closed to a keyword search for that word
returning it (polled every 5 ms), and the batch's own time (load, chunk, embed, save).

Baseline in the same run: embedding every chunk of the document again, which is what each edit
cost before stored vectors were reused. Writes bench/out/reembed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
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
from ragkit.index import keyword_text  # noqa: E402
from ragkit.watch import WatchUpdate, watch_folder  # noqa: E402

WORDS = (
    "parser cache flag release notes fix feature option index search vector token chunk model "
    "store filter update watch save load page heading section default error message"
).split()


def document(chunks: int) -> str:
    rng = random.Random(1)
    parts = ["# Release notes"]
    # About 3.6 paragraphs of 20-90 words per 256-token chunk, a heading per 8 paragraphs.
    for p in range(int(chunks * 3.6)):
        if p % 8 == 0:
            parts.append(f"## Release 0.{p // 8}.0")
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 90)))
        parts.append(words.capitalize() + ".")
    return "\n\n".join(parts) + "\n"


def marker(i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return "zyq" + letters[i // 26 % 26] + letters[i % 26] + "vex"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--keyword-only", action="store_true")
    args = parser.parse_args()
    embedder = None if args.keyword_only else default_embedder()
    work = Path(tempfile.mkdtemp(prefix="ragkit-reembed-"))
    folder = work / "docs"
    folder.mkdir()
    target = folder / "release-notes.md"
    text = document(args.chunks)
    target.write_text(text, encoding="utf-8")
    location = work / "index"
    started = time.perf_counter()
    index = ragkit.index_folder(folder, location, embedder=embedder if embedder else None)
    build_s = time.perf_counter() - started
    total = len(index)
    print(f"indexed {total} chunks in {build_s:.1f}s", file=sys.stderr)

    # Baseline: every chunk of the document embedded again (the cost of an edit before).
    baseline_s = None
    if embedder is not None:
        texts = [keyword_text(c) for c in index.chunks]
        t0 = time.perf_counter()
        embedder.embed_documents(texts)
        baseline_s = time.perf_counter() - t0

    events: queue.Queue[WatchUpdate] = queue.Queue()
    stop = threading.Event()
    thread = threading.Thread(
        target=watch_folder,
        args=(folder, location),
        kwargs={"index": index, "on_update": events.put, "stop_event": stop},
        daemon=True,
    )
    thread.start()
    events.get(timeout=600)  # the initial sync
    rows = []
    for i in range(args.edits):
        text += f"\nThe {marker(i)} option now also reads the cache on start-up.\n"
        saved = time.perf_counter()
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        saved = time.perf_counter()
        while not index.search(marker(i), 1, mode="bm25"):
            time.sleep(0.005)
        searchable = time.perf_counter() - saved
        event = events.get(timeout=600)
        rows.append(
            {
                "re_embedded": event.update.chunks_embedded,
                "of_chunks": event.update.chunks_embedded + event.update.chunks_reused,
                "searchable_s": round(searchable, 3),
                "batch_s": round(event.seconds, 3),
            }
        )
        print(rows[-1], file=sys.stderr)
    stop.set()
    thread.join(timeout=30)
    with open("/proc/loadavg", encoding="ascii") as fh:
        load = fh.read().split()[:3]
    result = {
        "chunks": total,
        "embedder": embedder.name if embedder else None,
        "build_s": round(build_s, 2),
        "baseline_full_reembed_s": None if baseline_s is None else round(baseline_s, 2),
        "edits": rows,
        "median_re_embedded": statistics.median(r["re_embedded"] for r in rows),
        "median_searchable_s": statistics.median(r["searchable_s"] for r in rows),
        "median_batch_s": statistics.median(r["batch_s"] for r in rows),
        "load_average": load,
    }
    if baseline_s:
        result["ratio_searchable_to_full_reembed"] = round(
            result["median_searchable_s"] / baseline_s, 4
        )
    print(json.dumps(result, indent=2))
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "reembed.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
