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

__all__ = ["Cluster", "PostgresNotFound", "find_bindir", "throwaway_cluster", "throwaway_postgres"]


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


class Cluster:
    """A throwaway cluster that can be stopped and started again on the same port
    (to try what a server does when its database goes away and comes back)."""

    def __init__(self, top: Path, bindir: Path, run_as: list[str], user: str) -> None:
        self.data, self.log, self._top, self._user = top / "data", top / "log", top, user
        self._bindir, self._run_as = bindir, run_as
        self._use(_free_port())

    def _use(self, port: int) -> None:
        self.port = port
        self.dsn = f"postgresql://{self._user}@127.0.0.1:{port}/postgres"
        # Unix socket in our own directory, TCP on loopback only; fsync off: a
        # throwaway cluster need not survive a power cut, and tests run faster.
        self._options = f"-k {self._top} -p {port} -h 127.0.0.1 -c fsync=off -c max_connections=200"

    def pg(self, *args: str) -> None:
        subprocess.run(
            [*self._run_as, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def start(self) -> None:
        ctl = str(self._bindir / "pg_ctl")
        self.pg(ctl, "-D", str(self.data), "-o", self._options, "-l", str(self.log), "-w", "start")

    def start_on_a_free_port(self, attempts: int = 5) -> None:
        """The first start: a port picked free can be taken before PostgreSQL binds it
        (by another process starting, or a client's outgoing connection); then try another."""
        for attempt in range(attempts):
            try:
                self.start()
                return
            except subprocess.CalledProcessError:
                taken = self.log.exists() and "already in use" in self.log.read_text()
                if not taken or attempt == attempts - 1:
                    raise
                self.log.unlink()
                self._use(_free_port())

    def stop(self, mode: str = "immediate") -> None:
        self.pg(str(self._bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")


@contextlib.contextmanager
def throwaway_cluster(user: str = "dmlab") -> Iterator[Cluster]:
    """A new, empty, running PostgreSQL cluster; stopped and deleted on exit."""
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
        cluster = Cluster(Path(top), bindir, run_as, user)
        cluster.pg(
            str(bindir / "initdb"), "-D", str(cluster.data), "-A", "trust", "-U", user, "-E", "UTF8"
        )
        cluster.start_on_a_free_port()
        try:
            yield cluster
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):  # stopped already
                cluster.stop()


@contextlib.contextmanager
def throwaway_postgres(user: str = "dmlab") -> Iterator[str]:
    """Yield the DSN of a new, empty PostgreSQL cluster; stop and delete it on exit."""
    with throwaway_cluster(user) as cluster:
        yield cluster.dsn
