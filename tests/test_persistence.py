"""Nothing lost: the standalone server (``python -m dmlab serve``) is SIGKILLed in
the middle of a session and started again on the same data directory. Accounts,
devices (their secrets), pending, active and completed sessions, spent ids, the
trace and the lab CA all come back; the interrupted session goes on under the id
the device holds."""

from __future__ import annotations

import json
import signal
import sqlite3
import ssl
from pathlib import Path

import httpx
import pytest

from dmlab.protocol import media
from dmlab.store import Account
from dmlab.store.sqlite import _SCHEMA_1, SCHEMA_VERSION, SQLiteStore
from dmlab.trace import Trace

from helpers import serve

ACCOUNT = ("demo", "pw")
DEV_ID = "IMEI:490154203237518"
FWV = "urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/FwV"


def put(client: httpx.Client, session_id: str, statuses: list[dict]) -> httpx.Response:
    return client.put(
        f"/sessions/id/{session_id}",
        content=json.dumps({"Status": statuses}),
        headers={"Content-Type": media.DM20_RESPONSE},
    )


def trace_rows(db: Path) -> list[tuple]:
    """The trace as the store keeps it, read by a connection of our own (WAL lets us)."""
    raw = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return raw.execute(
            "SELECT seq, method, path, status, session FROM trace ORDER BY seq"
        ).fetchall()
    finally:
        raw.close()


def test_sigkill_mid_session_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first, url, _ = serve(tmp_path, account=ACCOUNT)
    port = int(url.rsplit(":", 1)[1])
    ca_files = {name: (data / name).read_bytes() for name in ("ca.pem", "ca-key.pem", "server.pem")}
    # Clients built once from DIR/ca.pem, and used on both sides of the restart.
    verify = ssl.create_default_context(cafile=str(data / "ca.pem"))
    operator = httpx.Client(
        base_url=url, auth=ACCOUNT, verify=verify, timeout=30, headers={"Accept": media.JSON}
    )
    device: httpx.Client | None = None
    try:
        registered = operator.post("/devices/new", json={"devId": DEV_ID, "name": "kept"})
        assert registered.status_code == 201, registered.text
        secret = registered.json()["secret"]
        device = httpx.Client(
            base_url=url,
            auth=(DEV_ID, secret),
            verify=verify,
            timeout=30,
            headers={media.DEVID_HEADER: DEV_ID, "Accept": media.COMMANDS},
        )

        def queue(**body: object) -> str:
            answer = operator.post(f"/devices/{DEV_ID}/sessions", json={**body, "notify": False})
            assert answer.status_code == 202, answer.text
            return answer.json()["SessionID"]

        # One session completed before the crash.
        done = queue(CMD=[["GET", FWV]])
        package = device.post("/sessions/next").json()
        assert package["SessionID"] == done
        assert put(device, done, [{"sc": 200, "Data": "1.0.0"}]).status_code == 204
        # Two queued; the first (2 rounds) started and its first round reported.
        fumo = queue(job="firmware-update", params={"version": "2.0.0"})
        inventory = queue(job="inventory")
        assert device.post("/sessions/next").json()["SessionID"] == fumo
        second = put(device, fumo, [{"sc": 200, "Data": "1.0.0"}, {"sc": 200, "Data": 10}])
        assert second.status_code == 200, second.text
        current = second.json()["SessionID"]
        assert current != fumo
        assert [c[0] for c in second.json()["CMD"]] == ["HGET", "EXEC", "END"]
        before_kill = trace_rows(data / "dmlab.sqlite3")

        first.popen.send_signal(signal.SIGKILL)
        assert first.popen.wait(10) == -signal.SIGKILL
        first.close()

        # What was answered before the kill is in the trace on disk.
        assert ("PUT", f"/sessions/id/{fumo}", 200, current) in [r[1:] for r in before_kill]
        assert ("POST", "/devices/new", 201, "") in [r[1:] for r in before_kill]

        again, url2, _ = serve(tmp_path, account=ACCOUNT, port=port)
        try:
            assert url2 == url
            assert {name: (data / name).read_bytes() for name in ca_files} == ca_files

            # Accounts and devices; the device's old secret still signs it in.
            devices = operator.get("/devices")
            assert devices.status_code == 200, devices.text
            assert [(d["devId"], d["name"]) for d in devices.json()["Devices"]] == [
                (DEV_ID, "kept")
            ]
            assert [s["SessionID"] for s in device.get("/sessions/pending").json()["Sessions"]] == [
                inventory
            ]
            completed = operator.get("/sessions/completed").json()["Sessions"]
            assert [(s["IDs"], s["Result"]) for s in completed] == [([done], "OK")]

            # Spent ids stay spent; the active session goes on under its current id.
            for spent in (fumo, done):
                assert put(device, spent, [{"sc": 200}, {"sc": 202}]).status_code == 409
                assert device.post(f"/sessions/id/{spent}").status_code == 409
            assert device.post(f"/sessions/id/{current}").status_code == 409  # active, not pending
            end = put(device, current, [{"sc": 200}, {"sc": 202}])
            assert end.status_code == 204, end.text
            assert end.headers["OMADM-Result"] == "OK"
            # Another report on it is refused (the same one would be a retry, answered
            # again: lab choice put-retry).
            assert put(device, current, [{"sc": 500}, {"sc": 202}]).status_code == 409

            last = device.post("/sessions/next")
            assert last.status_code == 200 and last.json()["SessionID"] == inventory
            assert (
                put(
                    device, inventory, [{"sc": 200, "Data": {}}, {"sc": 200, "Data": 10}]
                ).status_code
                == 204
            )
            assert device.post("/sessions/next").status_code == 204
            completed = operator.get("/sessions/completed").json()["Sessions"]
            assert [(s["IDs"], s["Result"]) for s in completed] == [
                ([done], "OK"),
                ([fumo, current], "OK"),
                ([inventory], "OK"),
            ]
            assert operator.get("/sessions/pending").json()["Sessions"] == []

            # The trace went on from where it stopped: old records kept, seq rising.
            after = trace_rows(data / "dmlab.sqlite3")
            assert after[: len(before_kill)] == before_kill
            new = after[len(before_kill) :]
            assert new and new[0][0] > before_kill[-1][0]
            assert ("PUT", f"/sessions/id/{current}", 204, current) in [r[1:] for r in new]
            assert [r[0] for r in after] == sorted({r[0] for r in after})
        finally:
            assert again.terminate() == 0, "\n".join(again.lines)
    finally:
        operator.close()
        if device is not None:
            device.close()
        if first.popen.poll() is None:
            first.popen.kill()
            first.popen.wait()
            first.close()


# The trace sink on its own -----------------------------------------------------------


def test_trace_kept_in_sqlite_and_reloaded(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    clock = iter(range(1000, 2000)).__next__
    with SQLiteStore(db) as store:
        trace = Trace(sink=store, limit=3, clock=clock)
        for n in range(5):
            trace.record(source="device", dev_id="IMEI:1", method="GET", path=f"/{n}", status=200)
        assert [e.path for e in trace] == ["/2", "/3", "/4"]
        assert store.load_trace(10) == list(trace)  # pruned to the limit on disk too
    with SQLiteStore(db) as store:
        reloaded = Trace(sink=store, limit=3)
        assert [(e.seq, e.path, e.time) for e in reloaded] == [
            (3, "/2", 1002),
            (4, "/3", 1003),
            (5, "/4", 1004),
        ]
        assert reloaded.last_seq == 5
        assert (
            reloaded.record(source="server", method="NOTIFY", path="package 0", status=0).seq == 6
        )
        reloaded.clear()
        assert len(reloaded) == 0 and store.load_trace(10) == []


def test_the_memory_trace_stays_the_default() -> None:
    trace = Trace()
    trace.record(source="device", method="GET", path="/", status=200)
    assert trace._sink is None and len(trace) == 1


def test_a_version_1_database_gains_the_trace_table(tmp_path: Path) -> None:
    db = tmp_path / "v1.sqlite3"
    raw = sqlite3.connect(db)
    for statement in _SCHEMA_1:
        raw.execute(statement)
    raw.execute("INSERT INTO accounts (name, password_hash) VALUES ('old', 'h')")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    with SQLiteStore(db) as store:
        assert store.schema_version == SCHEMA_VERSION == 7
        assert store.get_account("old") == Account("old", "h")
        assert store.load_trace(10) == []


def test_a_failing_sink_loses_the_record_not_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def load_trace(self, limit: int) -> list:
            return []

        def append_trace(self, exchange: object, limit: int) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        def clear_trace(self) -> None:
            pass

    trace = Trace(sink=Broken())
    exchange = trace.record(source="device", method="GET", path="/", status=200)
    assert list(trace) == [exchange]
    assert "could not keep trace record 1" in caplog.text


def test_a_version_2_trace_gains_elapsed_and_keeps_its_rows(tmp_path: Path) -> None:
    """Version 3 adds each exchange's duration; rows written before it read as 0."""
    db = tmp_path / "v2.sqlite3"
    with SQLiteStore(db) as store:
        store.append_trace(Trace().record(source="device", method="GET", path="/", status=200), 10)
    raw = sqlite3.connect(db)
    raw.execute("ALTER TABLE trace DROP COLUMN elapsed")
    raw.execute("PRAGMA user_version = 2")
    raw.commit()
    raw.close()
    with SQLiteStore(db) as store:
        assert store.schema_version == SCHEMA_VERSION
        (old,) = store.load_trace(10)
        assert (old.path, old.elapsed) == ("/", 0.0)
        trace = Trace(sink=store, clock=iter([10.0, 10.0]).__next__)
        timed = trace.record(source="device", method="PUT", path="/x", status=204, elapsed=0.25)
        assert store.load_trace(10)[-1] == timed and timed.started == 9.75
