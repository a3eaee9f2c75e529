"""Loader budgets on generated hostile files: time and peak memory of the worst inputs.

Each file is read alone with `load_file` under the default `LoadLimits` (so the defaults are
what is measured); reports, per file, the outcome, the wall time, the highest resident memory
seen in the worker process (polled every 50 ms, and its own peak when it answers) and this
process's peak. The bombs come from tests/hostile.py.

    python bench/bench_loader_limits.py
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ragkit.errors import LoadError  # noqa: E402
from ragkit.loaders import LoadLimits, isolation, load_file  # noqa: E402
from tests.hostile import MiB, docx_bomb, docx_package, paragraph, pdf_bomb  # noqa: E402


def cases() -> dict[str, bytes]:
    text_xml = "".join(paragraph("word " * 40) for _ in range(2000))
    return {
        "docx-bomb-400MiB.docx": docx_bomb(400 * MiB),
        "docx-lying-size.docx": docx_bomb(400 * MiB, declared=4096),
        "docx-120MiB-of-text.docx": docx_bomb(120 * MiB),
        "pdf-bomb-100x50MiB.pdf": pdf_bomb(100, 50 * MiB),
        "html-quadratic.html": b"<a" * 500_000,
        "md-heading-spaces.md": b"# T" + b" " * 1_000_000 + b"x\n\nbody",
        "docx-normal.docx": docx_package(text_xml),
    }


def main() -> None:
    limits = LoadLimits.from_env()
    print(f"limits: {limits}")
    print(f"load average before: {os.getloadavg()}")
    print("| file | size | outcome | seconds | worker peak RSS | this process peak RSS |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for name, data in cases().items():
            path = Path(folder) / name
            path.write_bytes(data)
            isolation.peak_rss = 0
            isolation.shutdown()  # a fresh worker per file: its peak is this file's
            load_file(Path(__file__), limits=limits)  # start the worker outside the timing
            isolation.peak_rss = 0
            started = time.perf_counter()
            try:
                doc = load_file(path, limits=limits)
                outcome = f"read, {len(doc.text):,} chars"
            except LoadError as exc:
                outcome = exc.reason.split(" (max_")[0]
            seconds = time.perf_counter() - started
            own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"| {name} | {len(data) / MiB:.1f} MiB | {outcome} | {seconds:.1f} | "
                f"{isolation.peak_rss / MiB:.0f} MiB | {own:.0f} MiB |"
            )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
