"""Storage faults with clear answers (issue 10, findings 8-10): a full, read-only or
failing disk answers 503 and keeps nothing half-done; the WAL is checkpointed
after faults and periodically; start-up refuses damaged, full or read-only
storage in one line; a listing skips an unreadable row; files are owner-only."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from dmlab import Lab
from dmlab.protocol import media
from dmlab.store import Account, Device, JobSpec, Origin, Session, State, StorageFault
from dmlab.store import sqlite as sqlite_store
from dmlab.store.sqlite import SQLiteStore

from helpers import ACCOUNT, HASH_COST, problem


@pytest.fixture
def every_log_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server logs each kind of fault once a minute; these tests count lines."""
    from dmlab.runtime import limits

    monkeypatch.setattr(limits._FILTER, "_period", 0.0)


WRITES = ("INSERT", "UPDATE", "DELETE", "COMMIT")


class Faulty:
    """An SQLite connection whose writes fail as a full, read-only or failing disk
    makes them fail (the same error codes), until ``failing`` is set to None."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.failing: tuple[int, str] | None = None
        self.statements: list[str] = []

    def _check(self, sql: str) -> None:
        self.statements.append(sql)
        if self.failing and sql.lstrip().split()[0].upper() in WRITES:
            code, message = self.failing
            error = sqlite3.OperationalError(message)
            error.sqlite_errorcode = code  # type: ignore[attr-defined]
            raise error

    def execute(self, sql: str, *args: Any) -> Any:
        self._check(sql)
        return self.conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self._check(sql)
        return self.conn.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


FAULTS = {
    "disk full": (13, "database or disk is full"),
    "read-only": (8, "attempt to write a readonly database"),
    "I/O error": (10, "disk I/O error"),
}


def faulty(store: SQLiteStore) -> Faulty:
    proxy = Faulty(store._conn)  # type: ignore[arg-type]
    store._conn = proxy  # type: ignore[assignment]
    return proxy


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_storage_fault_answers_503_keeps_nothing_and_checkpoints_after(
    tmp_path: Path, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(tmp_path / "dmlab.sqlite3")
    with Lab(hash_cost=HASH_COST, store=store) as lab:
        proxy = faulty(store)
        client = httpx.Client(
            base_url=lab.url,
            verify=lab.ca.client_context(),
            auth=ACCOUNT,
            headers={"Accept": media.JSON},
        )
        with client:
            proxy.failing = FAULTS[fault]
            answer = client.post("/devices/new", json={"devId": "IMEI:100000000000001"})
            body = problem(answer, 503, "storage-unavailable")
            assert answer.headers["Retry-After"] == "30" and "nothing was changed" in body["detail"]
            assert store.get_device("IMEI:100000000000001") is None
            assert "Traceback" not in caplog.text
            proxy.failing = None
            proxy.statements.clear()
            assert client.post("/devices/new", json={"devId": "IMEI:100000000000001"}).is_success
            assert any("wal_checkpoint" in s for s in proxy.statements)
    store.close()


def test_the_wal_is_checkpointed_periodically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dmlab.sqlite3"
    with SQLiteStore(path) as store:
        monkeypatch.setattr(sqlite_store, "CHECKPOINT_EVERY", 0.0)
        for n in range(50):
            store.put_account(Account(f"a{n}", "x" * 4000))
        assert os.path.getsize(f"{path}-wal") == 0  # checkpointed and truncated
        monkeypatch.setattr(sqlite_store, "CHECKPOINT_EVERY", 3600.0)
        store.put_account(Account("b", "x"))
        assert os.path.getsize(f"{path}-wal") > 0  # not on every commit


def _damage(path: Path) -> None:
    """Fill the database with sessions, then overwrite one of its pages."""
    with SQLiteStore(path) as store:
        store.put_device(Device("IMEI:1", "acme", "h", b"k"))
        for n in range(300):
            store.put_session(
                Session(f"s{n:04d}", "IMEI:1", "acme", JobSpec("x" * 200), Origin.SERVER)
            )
    with open(path, "r+b") as file:
        file.seek(4096 * 8)
        file.write(b"\xa5" * 4096)


def test_start_up_refuses_a_damaged_database_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _damage(data / "dmlab.sqlite3")
    done = subprocess.run(
        [sys.executable, "-m", "dmlab", "serve", "--data", str(data), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dmlab: cannot start: "), done.stderr
    assert "damaged" in lines[0] and "Traceback" not in done.stderr


def test_start_up_check_refuses_read_only_storage_and_a_full_disk(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "dmlab.sqlite3") as store:
        store.check()  # healthy
        with pytest.raises(StorageFault) as full:
            store.check(min_free=2**62)
        assert full.value.kind == "full" and "free" in str(full.value)
        faulty(store).failing = FAULTS["read-only"]
        with pytest.raises(StorageFault) as read_only:
            store.check()
        assert read_only.value.kind == "read-only"


def test_a_listing_skips_an_unreadable_row_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, every_log_line: None
) -> None:
    path = tmp_path / "dmlab.sqlite3"
    with SQLiteStore(path) as store:
        store.put_device(Device("IMEI:1", "acme", "h", b"k"))
        for key in ("a", "b", "c", "d"):
            store.put_session(Session(key, "IMEI:1", "acme", JobSpec("inventory"), Origin.SERVER))
        raw = sqlite3.connect(path)
        raw.execute("UPDATE sessions SET rounds = '[{' WHERE key = 'b'")
        raw.execute("UPDATE sessions SET job = CAST(x'ff' AS TEXT) WHERE key = 'c'")
        raw.commit()
        raw.close()
        caplog.set_level(logging.WARNING)
        assert [s.key for s in store.sessions_of_device("IMEI:1", State.PENDING)] == ["a", "d"]
        assert [s.key for s in store.sessions_of_account("acme", State.PENDING)] == ["a", "d"]
    warnings = [r.getMessage() for r in caplog.records if "unreadable session" in r.getMessage()]
    assert len(warnings) == 2 and all("skipped 2" in w for w in warnings)


def test_the_database_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "dmlab.sqlite3"
    old = os.umask(0o022)
    try:
        with SQLiteStore(path) as store:
            store.put_account(Account("a", "x"))
            modes = {
                suffix: stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode)
                for suffix in ("", "-wal", "-shm")
            }
    finally:
        os.umask(old)
    assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
