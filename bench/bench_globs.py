"""`$glob` filters in the memory store: ragkit's matcher against Python's backtracking regex.

Usage::

    .venv/bin/python bench/bench_globs.py [--paths 10000] [--repeats 5]

Baseline in the same run: ``ragkit.filters.matches`` as it was before issue 14 (the module as
of ``--baseline-rev``, default ``main``, read with ``git show``; it imports only the standard
library), which matched every glob with Python's backtracking regex. Measured per pattern: the
median over ``--repeats`` of matching ``--paths`` realistic paths, and the ratio to the
baseline; then pathological patterns (``*a`` repeated, ending in ``b``) on ``"a" * 40``, where
the baseline backtracks ``40 ** stars`` ways (it is stopped at 8 stars: 10 took 46 s).
Prints the load average: on a shared machine absolute times are noisy, the ratios less so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

from ragkit.filters import Field, matches

ROOT = Path(__file__).resolve().parents[1]


def _baseline(rev: str) -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{rev}:ragkit/filters.py"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    module = types.ModuleType("filters_baseline")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:ragkit/filters.py", "exec"), module.__dict__)  # noqa: S102
    return module


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-rev", default="main")
    args = parser.parse_args()
    old = _baseline(args.baseline_rev)
    paths = [f"docs/section{i % 13}/sub{i % 7}/page-{i}.md" for i in range(args.paths)]
    print(f"load average {os.getloadavg()[0]:.1f}; {len(paths)} paths; median of {args.repeats}")
    print(f"{'pattern':24} {'before ms':>9} {'after ms':>9} {'ratio':>6}")
    metas = [{"path": p} for p in paths]
    for pattern in ("docs/**", "*.md", "docs/**/*.md", "**/sub3/*.md", "*a*e*"):
        where, before = Field("path", "glob", pattern), old.Field("path", "glob", pattern)
        base = _median_seconds(lambda w=before: [old.matches(w, m) for m in metas], args.repeats)
        ours = _median_seconds(lambda w=where: [matches(w, m) for m in metas], args.repeats)
        print(f"{pattern:24} {base * 1e3:9.1f} {ours * 1e3:9.1f} {ours / base:6.2f}")
    print(f"\n{'stars on a*40':24} {'before ms':>9} {'after ms':>9}")
    for stars in (4, 6, 8, 16, 32):
        pattern = "*a" * (stars - 1) + "*b"
        where = Field("t", "glob", pattern)
        ours = _median_seconds(lambda w=where: matches(w, {"t": "a" * 40}), args.repeats)
        if stars <= 8:
            before = old.Field("t", "glob", pattern)
            seconds = _median_seconds(lambda w=before: old.matches(w, {"t": "a" * 40}), 1)
            base_text = f"{seconds * 1e3:9.1f}"
        else:
            base_text = f"{'(skipped)':>9}"
        print(f"{stars:<24} {base_text} {ours * 1e3:9.3f}")


if __name__ == "__main__":
    main()
