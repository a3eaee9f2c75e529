"""The bundled Postgres server itself: it starts, and its pgvector runs on this CPU.

When the server's pgvector cannot run here (a build for instructions this CPU lacks), this is the
one test that fails, with the cause; every other Postgres test skips (see the ``pg_url`` fixture).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("psycopg")

from ragkit.errors import ExtensionError  # noqa: E402
from ragkit.stores import local_postgres  # noqa: E402
from ragkit.stores.postgres import check_pgvector_version  # noqa: E402


def test_bundled_server_runs_pgvector_on_this_cpu(local_pg: Any) -> None:
    try:
        version = local_postgres.check_pgvector(local_pg.url)
    except ExtensionError as exc:
        pytest.fail(str(exc), pytrace=False)
    major, minor, patch = (int(p) for p in version.split("."))
    assert (major, minor, patch) >= (0, 8, 3)
    assert local_pg.url.startswith("postgresql://")
    assert (local_pg.bin_dir / "pg_basebackup").exists()


def test_a_backend_that_dies_on_vectors_is_named_as_the_cause(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import psycopg

    def crash(*args: object, **kwargs: object) -> None:
        raise psycopg.OperationalError(
            "server closed the connection unexpectedly\n\tThis probably means the server "
            "terminated abnormally"
        )

    monkeypatch.setattr(psycopg, "connect", crash)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu sse2 avx avx2 fma\n", encoding="ascii")
    read_flags = local_postgres.cpu_flags
    monkeypatch.setattr(local_postgres, "cpu_flags", lambda: read_flags(cpuinfo))
    with pytest.raises(ExtensionError, match=r"crashed a backend.*AVX-512 flags: none") as info:
        local_postgres.check_pgvector("postgresql://app:s3cret@localhost/db")
    assert "s3cret" not in str(info.value)
    assert "zmm" in str(info.value)


def test_cpu_flags_reads_the_avx512_family(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "flags\t: fpu avx2 avx512f avx512bw avx512_vnni\nflags\t: fpu avx2 avx512f\n",
        encoding="ascii",
    )
    assert local_postgres.cpu_flags(cpuinfo) == {"avx512f", "avx512bw", "avx512_vnni"}
    assert local_postgres.cpu_flags(tmp_path / "missing") == frozenset()


def test_pgvector_older_than_0_8_is_refused_with_the_upgrade_statement() -> None:
    with pytest.raises(ExtensionError, match=r"pgvector 0\.7\.4 at .* older than 0\.8\.0.*ALTER"):
        check_pgvector_version("0.7.4", "postgresql://db/old")
    with pytest.raises(ExtensionError, match=r"pgvector garbage at .* older than 0\.8\.0"):
        check_pgvector_version("garbage", "postgresql://db/old")


def test_pgvector_before_0_8_3_warns_once_per_server() -> None:
    with pytest.warns(UserWarning, match=r"pgvector 0\.8\.2 .* HNSW .* ALTER EXTENSION vector"):
        check_pgvector_version("0.8.2", "postgresql://db/warn-once")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_pgvector_version("0.8.2", "postgresql://db/warn-once")  # said already
        check_pgvector_version("0.8.6", "postgresql://db/new")
