"""Servers of the tests' own, from the bundled binaries: one to stop, restart and crash, and a
streaming replica of it (``pg_basebackup -R``). Loopback only: every server listens on a unix
socket in its own directory and on no TCP address.

The session's shared server (``pg_url``) is never stopped; these are started per module.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg


def _owner(server: Any) -> str | None:
    """The system user the bundled server runs as (a user of its own when tests run as root)."""
    user: str | None = getattr(server._server, "system_user", None)
    return user


def run_as(user: str | None, argv: list[str], timeout: float = 120) -> str:
    """Run a server binary as the server's system user; its output, or an error with it.

    Output goes to files, not pipes: a postmaster started by ``pg_ctl`` inherits them and keeps
    a pipe open for as long as it runs.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        done = subprocess.run(
            argv, user=user, stdout=out, stderr=err, text=True, timeout=timeout, check=False
        )
        out.seek(0)
        err.seek(0)
        output, errors = out.read(), err.read()
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {errors or output}")
    return output


def socket_dir(url: str) -> str:
    """The unix socket directory of a bundled server's URL (its ``host=`` parameter)."""
    return parse_qs(urlsplit(url).query)["host"][0]


@dataclass
class Cluster:
    """A server run with pg_ctl: data directory, socket directory, port, the user it runs as."""

    bin_dir: Path
    data_dir: Path
    sock: str
    port: int
    user: str | None

    @property
    def url(self) -> str:
        return f"postgresql://postgres:@/postgres?host={self.sock}&port={self.port}"

    def pg_ctl(self, *args: str) -> str:
        return run_as(
            self.user, [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-w", *args]
        )

    def start(self) -> None:
        self.pg_ctl(
            "-l",
            str(self.data_dir / "log"),
            "-o",
            f"-c listen_addresses='' -k {self.sock} -p {self.port}",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "stop")

    def restart(self) -> None:
        self.pg_ctl("-m", "fast", "restart")

    def postmaster_pid(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])


def own_cluster(server: Any) -> Cluster:
    """The pg_ctl view of a server started by ``ragkit.stores.local_postgres.start``."""
    return Cluster(
        server.bin_dir, Path(server.data_dir), socket_dir(server.url), 5432, _owner(server)
    )


def _owned_dir(path: Path, user: str | None) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        prefix = path.parent
        while prefix != prefix.parent:  # let the server's user traverse to it
            prefix.chmod(prefix.stat().st_mode | 0o055)
            prefix = prefix.parent
    return path


def start_replica(primary: Cluster, root: Path, port: int = 5433) -> Cluster:
    """A hot standby streaming from ``primary`` over its unix socket, started and caught up."""
    data = root / "replica"
    sock = _owned_dir(root / "replica-sock", primary.user)
    _owned_dir(root, primary.user)
    run_as(
        primary.user,
        [
            str(primary.bin_dir / "pg_basebackup"),
            "-h", primary.sock, "-p", str(primary.port), "-U", "postgres",
            "-D", str(data), "-R", "-X", "stream", "--checkpoint=fast",
        ],
    )  # fmt: skip
    replica = Cluster(primary.bin_dir, data, str(sock), port, primary.user)
    replica.start()
    wait_for_replay(primary, replica)
    return replica


def wait_for_replay(primary: Cluster, replica: Cluster, timeout: float = 30.0) -> None:
    """Return once ``replica`` has replayed everything ``primary`` had written when called."""
    with psycopg.connect(primary.url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    target = row[0]
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(replica.url, autocommit=True) as conn:
                done = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                ).fetchone()
            if done and done[0]:
                return
        except psycopg.OperationalError:
            pass  # still starting
        if time.monotonic() > deadline:
            raise TimeoutError(f"the replica did not replay up to {target} in {timeout} s")
        time.sleep(0.1)
