"""A throwaway PostgreSQL server: ``initdb`` in a temporary directory, started on a
free loopback port, removed on exit. For trying ``--database postgresql://…`` without
setting a server up, and for the test suite's PostgreSQL runs.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres``
user (Debian's packages create it) through ``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PostgresNotFound", "find_bindir", "throwaway_postgres"]


class PostgresNotFound(RuntimeError):
    """No PostgreSQL server binaries (``initdb``, ``pg_ctl``) on this machine."""


def find_bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` are: on PATH, else Debian's versioned directory
    (newest version first), which is not on PATH."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(bindir) / "pg_ctl").exists() and (Path(bindir) / "initdb").exists():
            return Path(bindir)
    raise PostgresNotFound(
        "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in "
        "/usr/lib/postgresql/*/bin; on Debian: apt-get install postgresql"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def throwaway_postgres(user: str = "dmlab") -> Iterator[str]:
    """Yield the DSN of a new, empty PostgreSQL cluster; stop and delete it on exit."""
    bindir = find_bindir()
    run_as: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError as error:
            raise PostgresNotFound("running as root, but there is no 'postgres' user") from error
        run_as = ["runuser", "-u", "postgres", "--"]
    with tempfile.TemporaryDirectory(prefix="dmlab-pg-") as top:
        if owner is not None:
            os.chown(top, owner.pw_uid, owner.pw_gid)
        data, log, port = Path(top) / "data", Path(top) / "log", _free_port()

        def pg(*args: str) -> None:
            subprocess.run(
                [*run_as, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )

        pg(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", user, "-E", "UTF8")
        # Unix socket in our own directory, TCP on loopback only; fsync off: a
        # throwaway cluster need not survive a power cut, and tests run faster.
        options = f"-k {top} -p {port} -h 127.0.0.1 -c fsync=off -c max_connections=200"
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start")
        try:
            yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
        finally:
            pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
