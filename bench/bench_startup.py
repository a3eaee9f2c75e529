"""Time ``ragkit search`` as a fresh process against ``python -c 'import numpy'`` in one run.

Usage::

    .venv/bin/python bench/bench_startup.py [--chunks 3000] [--rounds 15] [--index PATH] \
        [--baseline ../../main/.venv/bin [--baseline-index PATH]]

Builds (once; reused when PATH already holds it) a hybrid index of about ``--chunks`` chunks from
SciFact abstracts with the default embedder, then runs rounds of three fresh processes in turn
(so load from other processes hits each alike): ``python -c 'import numpy'`` (the floor),
``ragkit search Q --mode bm25`` and ``ragkit search Q`` (hybrid: loads the ONNX session and
embeds the query). ``--baseline-index`` is for a baseline that cannot read this checkout's index
format (index format 3 is read by ragkit from this branch on; make the copy with the baseline's
own save, or keep the index it built). Reports medians of wall and CPU time (user + system: on a
loaded machine the wall time adds waiting for a core), their ratios to the floor, the load
average, and ``python -X importtime`` of the bm25 search's heaviest imports. Writes
bench/out/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import SCIFACT  # noqa: E402

OUT = HERE / "out" / "startup.json"
QUERY = "vitamin D deficiency in elderly people"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def build(index: Path, chunks: int) -> int:
    """Index the first SciFact abstracts until about ``chunks`` chunks; returns the count."""
    docs_dir = index.with_name(index.name + "-docs")
    docs_dir.mkdir(parents=True, exist_ok=True)
    # ~3.4 chunks per abstract at --chunk-size 128 (measured on the keyword-only build).
    wanted = max(1, round(chunks / 3.4))
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= wanted:
                break
            doc = json.loads(line)
            (docs_dir / f"{doc['_id']}.md").write_text(f"# {doc['title']}\n\n{doc['text']}\n")
    ragkit = Path(sys.executable).with_name("ragkit")
    subprocess.run(
        [str(ragkit), "index", str(docs_dir), "--index", str(index), "--chunk-size", "128"],
        check=True,
    )
    return count_chunks(index)


def count_chunks(index: Path) -> int:
    import ragkit

    with ragkit.open_index(index) as opened:
        return len(opened)


# Every process may write and read bytecode caches, as an installed package does (pip compiles
# them at install): with PYTHONDONTWRITEBYTECODE set, each process would compile every ragkit
# module from source (numpy's caches come with its wheel), which is not a user's start-up.
CHECKOUT_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
# The baseline checkout's processes must not see this checkout through PYTHONPATH.
BASELINE_ENV = {k: v for k, v in CHECKOUT_ENV.items() if k != "PYTHONPATH"}


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of one fresh process.

    CPU time is what the process itself costs; on a loaded machine the wall time adds the time
    spent waiting for a core, which inflates every process alike and squeezes the ratios.
    """
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--index", type=Path, default=HERE / "data" / "startup-index")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="bin/ of another checkout's venv (e.g. main's): its searches run in the same rounds",
    )
    parser.add_argument(
        "--baseline-index",
        type=Path,
        help="the index the baseline searches (default: --index; a copy in a format it reads)",
    )
    args = parser.parse_args()
    index: Path = args.index
    n_chunks = count_chunks(index) if index.exists() else build(index, args.chunks)
    ragkit = str(Path(sys.executable).with_name("ragkit"))
    commands = {
        "import numpy": [sys.executable, "-c", "import numpy"],
        "search --mode bm25": [ragkit, "search", QUERY, "--index", str(index), "--mode", "bm25"],
        "search (hybrid)": [ragkit, "search", QUERY, "--index", str(index)],
    }
    if args.baseline:
        base = str(args.baseline / "ragkit")
        old = str(args.baseline_index or index)
        commands["baseline: search --mode bm25"] = [
            base, "search", QUERY, "--index", old, "--mode", "bm25"
        ]  # fmt: skip
        commands["baseline: search (hybrid)"] = [base, "search", QUERY, "--index", old]
    envs = {
        name: BASELINE_ENV if name.startswith("baseline") else CHECKOUT_ENV for name in commands
    }
    for name, cmd in commands.items():  # warm the page and bytecode caches and the ONNX graph
        timed(cmd, envs[name])
    load_before = load_average()
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, cmd in commands.items():
            wall, used = timed(cmd, envs[name])
            times[name].append(wall)
            cpu[name].append(used)
    medians = {name: statistics.median(v) for name, v in times.items()}
    cpu_medians = {name: statistics.median(v) for name, v in cpu.items()}
    floor = medians["import numpy"]
    ratios = {name: round(m / floor, 2) for name, m in medians.items()}
    cpu_ratios = {
        name: round(m / cpu_medians["import numpy"], 2) for name, m in cpu_medians.items()
    }
    env = dict(CHECKOUT_ENV, PYTHONPROFILEIMPORTTIME="1")
    prof = subprocess.run(
        commands["search --mode bm25"], env=env, capture_output=True, text=True, check=True
    ).stderr
    rows = []
    for line in prof.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    heaviest = [f"{us / 1000:.0f} ms {name.strip()}" for us, name in sorted(rows)[-12:][::-1]]
    result = {
        "chunks": n_chunks,
        "rounds": args.rounds,
        "median_s": {name: round(m, 3) for name, m in medians.items()},
        "ratio_to_import_numpy": ratios,
        "cpu_median_s": {name: round(m, 3) for name, m in cpu_medians.items()},
        "cpu_ratio_to_import_numpy": cpu_ratios,
        "load_average": [load_before, load_average()],
        "bm25_search_heaviest_imports_cumulative": heaviest,
    }
    print(f"\n### `ragkit search` start-up, {n_chunks:,} chunks, {args.rounds} rounds\n")
    print("| process | median s (wall) | ratio to `import numpy` | median CPU s | CPU ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, m in medians.items():
        print(
            f"| {name} | {m:.3f} | {ratios[name]} | {cpu_medians[name]:.3f} | {cpu_ratios[name]} |"
        )
    print(f"\nload average before / after: {load_before} / {load_average()}")
    print("heaviest imports of the bm25 search (cumulative):", *heaviest, sep="\n- ")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
