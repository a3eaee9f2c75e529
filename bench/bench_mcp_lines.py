"""`ragkit mcp` over stdio: the guarded transport (ragkit.mcp_stdio) against the SDK's own.

Both servers run the same tools on the same keyword-only index, each in a subprocess fed raw
lines; the SDK's transport is the baseline, measured in the same run. Reported per transport:

- round trips of a valid `tools/list` (median and p90 over --requests, after warm-up): what the
  guard's extra validation of each valid line costs;
- peak RSS (VmHWM) before and after one --big-mb MB `tools/call` line, and what came back.

Run: PYTHONPATH=$PWD .venv/bin/python bench/bench_mcp_lines.py [--requests 300] [--big-mb 50]
Linux only (reads /proc/PID/status).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

SERVE = """
import sys, anyio
from mcp.server.mcpserver import MCPServer
from ragkit.mcp_server import IndexHolder, build_server
server = build_server(IndexHolder(sys.argv[1]))
if sys.argv[2] == "sdk":
    anyio.run(MCPServer.run_stdio_async, server)  # the SDK's stdio transport, unguarded
else:
    server.run("stdio")
"""

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    },
}


class Server:
    def __init__(self, index: Path, mode: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(index), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.pending = b""

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def read(self, timeout: float = 120.0) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                return None
            chunk = os.read(fd, 1 << 22)
            if not chunk:
                return None
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def run(index: Path, mode: str, requests: int, big_mb: int) -> dict[str, Any]:
    server = Server(index, mode)
    server.send(json.dumps(INITIALIZE).encode())
    assert server.read() is not None
    server.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    times = []
    for i in range(requests + 20):
        started = time.perf_counter()
        server.send(json.dumps({"jsonrpc": "2.0", "id": i + 1, "method": "tools/list"}).encode())
        reply = server.read()
        if reply is None or reply["id"] != i + 1:
            raise RuntimeError(f"expected the answer to tools/list {i + 1}, got {reply}")
        if i >= 20:
            times.append(time.perf_counter() - started)
    before = server.peak_rss_mib()
    query = "a" * (big_mb * 1_000_000)
    call = {"name": "search", "arguments": {"query": query}}
    server.send(
        json.dumps({"jsonrpc": "2.0", "id": -1, "method": "tools/call", "params": call}).encode()
    )
    reply = server.read()
    after = server.peak_rss_mib()
    if reply is None:
        got = "nothing"
    elif "error" in reply:
        got = f"error {reply['error']['code']}, id {reply['id']}"
    else:
        got = f"result, {len(json.dumps(reply)) / 1e6:.0f} MB"
    server.close()
    times.sort()
    return {
        "median_us": statistics.median(times) * 1e6,
        "p90_us": times[int(len(times) * 0.9)] * 1e6,
        "rss_before": before,
        "rss_after": after,
        "big_reply": got,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--big-mb", type=int, default=50)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import ragkit

    with tempfile.TemporaryDirectory(prefix="ragkit-bench-mcp-") as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        for name, text in {
            "dogs.md": "Dogs learn commands through repetition and rewards.",
            "cats.md": "Cats sleep most of the day and hunt at dusk.",
            "birds.md": "Birds migrate south in winter along old routes.",
        }.items():
            (folder / name).write_text(text)
        index = Path(tmp) / "index"
        ragkit.index_folder(folder, index, embedder=None)
        print(f"load average at start: {Path('/proc/loadavg').read_text().split()[:3]}")
        results = {mode: run(index, mode, args.requests, args.big_mb) for mode in ("sdk", "ragkit")}
        print(f"load average at end: {Path('/proc/loadavg').read_text().split()[:3]}")
    sdk, ours = results["sdk"], results["ragkit"]
    print(
        "| transport | tools/list median µs | p90 µs | peak RSS before MiB | after "
        f"{args.big_mb} MB line MiB | reply to that line |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for mode, r in results.items():
        print(
            f"| {mode} | {r['median_us']:.0f} | {r['p90_us']:.0f} | {r['rss_before']:.0f} | "
            f"{r['rss_after']:.0f} | {r['big_reply']} |"
        )
    print(f"median round trip ratio ragkit/sdk: {ours['median_us'] / sdk['median_us']:.2f}")
    print(
        "peak RSS growth from the big line: sdk "
        f"{sdk['rss_after'] - sdk['rss_before']:.0f} MiB, ragkit "
        f"{ours['rss_after'] - ours['rss_before']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
