"""The two commands as a person runs them: ``python -m dmlab serve`` and
``python -m dmlab device`` in their own processes, talking HTTPS through the CA
file the server writes, and stopped with SIGTERM like any service."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import START_TIMEOUT, WAIT, Process, operator_client, run_device, serve

DEV_ID = "IMEI:490154203237518"


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Process, str, Path]]:
    """``dmlab serve`` with its state in SQLite (the default) or in PostgreSQL."""
    database = []
    if request.param == "postgres":
        database = ["--database", request.getfixturevalue("new_database")()]
    process, url, ca = serve(tmp_path, *database)
    try:
        yield process, url, ca
    finally:
        code = process.terminate()
    assert code == 0, "\n".join(process.lines)


def test_device_process_runs_a_server_initiated_session(
    server: tuple[Process, str, Path], tmp_path: Path
) -> None:
    _serve, url, ca = server
    with operator_client(url, ca) as operator:
        registered = operator.post("/devices/new", json={"devId": DEV_ID, "name": "cli"})
        assert registered.status_code == 201, registered.text
        secret = registered.json()["secret"]

        device = run_device(url, ca, DEV_ID, secret, cwd=tmp_path)
        try:
            queued = operator.post(f"/devices/{DEV_ID}/sessions", json={"job": "inventory"})
            assert queued.status_code == 202, queued.text
            first_id = queued.json()["SessionID"]

            # The device's own log: the notification arrives over the long-poll,
            # the device opens the session and reports until the server ends it.
            device.expect(rf"^{DEV_ID} GET /notifications -> 200$", START_TIMEOUT)
            started = device.expect(rf"^{DEV_ID} POST /sessions/next -> 200 session (\S+)$")
            ended = device.expect(rf"^{DEV_ID} PUT /sessions/id/(\S+) -> 204$")
            assert ended[1] == started[1], "the device reports to the id the server assigned"

            completed = operator.get("/sessions/completed").json()["Sessions"]
            mine = [s for s in completed if first_id in s["IDs"]]
            assert len(mine) == 1, completed
            assert mine[0]["Result"] == "OK"
            assert mine[0]["Origin"] == "server-initiated"
            assert started[1] in mine[0]["IDs"]
            assert operator.get("/sessions/pending").json()["Sessions"] == []
        finally:
            device_code = device.terminate()
    assert device_code == 0, "\n".join(device.lines)
    log = "\n".join(device.lines)
    assert "Traceback" not in log, log


def test_device_process_alert_now_once(server: tuple[Process, str, Path], tmp_path: Path) -> None:
    """``--alert-now --once``: a client-initiated session runs the queued work, then it exits."""
    _serve, url, ca = server
    with operator_client(url, ca) as operator:
        secret = operator.post("/devices/new", json={"devId": DEV_ID}).json()["secret"]
        queued = operator.post(
            f"/devices/{DEV_ID}/sessions",
            json={
                "CMD": [["GET", "urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/DevID"]],
                "notify": False,
            },
        )
        assert queued.status_code == 202, queued.text
        device = run_device(url, ca, DEV_ID, secret, "--alert-now", "--once", cwd=tmp_path)
        started = device.expect(rf"^{DEV_ID} POST /alert -> 200 session (\S+)$", START_TIMEOUT)
        device.expect(rf"^{DEV_ID} PUT /sessions/id/{started[1]} -> 204$")
        code = device.popen.wait(WAIT)
        device.close()
        assert code == 0, "\n".join(device.lines)
        completed = operator.get("/sessions/completed").json()["Sessions"]
        assert [(s["IDs"][0], s["Result"]) for s in completed] == [
            (queued.json()["SessionID"], "OK")
        ]
        assert started[1] in completed[0]["IDs"]


def test_serve_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        process = Process.start(
            "serve",
            "--port",
            str(busy.getsockname()[1]),
            "--data",
            str(tmp_path / "data"),
            cwd=tmp_path,
        )
        process.expect(r"cannot listen on 127\.0\.0\.1:\d+", START_TIMEOUT)
        code = process.popen.wait(START_TIMEOUT)
        process.close()
    assert code != 0
