"""A fresh start on a really full disk (issue 10, finding 9): ``dmlab serve --data``
on a file system filled for real refuses in one clear line, without a traceback,
whichever write meets the full disk first: the CA's key, the database, or the
free-space check of the start-up probe.

The disk is a tmpfs mounted for the test (tests/helpers.py ``tiny_tmpfs``), which
needs root; elsewhere these tests skip and say so."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dmlab.store.sqlite import MIN_FREE

from helpers import fill, tiny_tmpfs

#: Generous: a refusal takes a second; this only turns a hang into a failure.
DEADLINE = 120.0


def serve(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dmlab", "serve", "--data", str(data), "--port", "0"],
        capture_output=True, text=True, timeout=DEADLINE, check=False,
    )  # fmt: skip


def refused_in_one_line(started: subprocess.CompletedProcess[str]) -> str:
    assert started.returncode == 1, (started.stdout, started.stderr)
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    assert "Traceback" not in started.stderr and not started.stdout
    assert lines[0].startswith("dmlab: cannot start: ")
    return lines[0]


@pytest.mark.parametrize(
    ("size", "leave", "words"),
    [
        # not a byte left: the CA's key is the first write
        ("24m", 0, ["No space left on device", "ca-key.pem"]),
        # the CA fits, the database does not (SQLite meets it growing its -shm file)
        ("24m", 40 * 1024, ["dmlab.sqlite3 has no space left (disk full)"]),
        # everything fits, but less is free than a server needs to run
        ("8m", None, [f"has less than {MIN_FREE // 2**20} MiB free"]),
    ],
    ids=["no byte left", "no room for the database", "under the free-space floor"],
)
def test_a_fresh_start_on_a_full_disk_refuses_in_one_line(
    size: str, leave: int | None, words: list[str]
) -> None:
    with tiny_tmpfs(size) as disk:
        if leave is not None:
            fill(disk, leave)
        data = disk / "data"
        line = refused_in_one_line(serve(data))
        for word in words:
            assert word in line, line
        # nothing half-written is left to confuse the next start
        assert not [p.name for p in data.iterdir() if p.name.endswith(".tmp")]
        if leave is not None:  # space freed, the same directory starts: it was the disk
            (disk / "filler").unlink()
            assert starts(data)


def starts(data: Path) -> bool:
    """Whether ``dmlab serve --data`` gets as far as serving (then it is stopped)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "dmlab", "serve", "--data", str(data), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        first = server.stdout.readline()  # its first line, or "" once it has exited
    finally:
        server.send_signal(signal.SIGTERM)
        _, errors = server.communicate(timeout=DEADLINE)
    assert not errors.strip(), errors
    return first.startswith("dmlab serving https://")
