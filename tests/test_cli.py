"""The two commands as a person runs them: ``python -m dmlab serve`` and
``python -m dmlab device`` in their own processes, talking HTTPS through the CA
file the server writes, and stopped with SIGTERM like any service."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ACCOUNT = ("demo", "demo-pw")
DEV_ID = "IMEI:490154203237518"
#: Generous: the first start of a process imports pandas and uvicorn.
START_TIMEOUT = 30.0


def free_port() -> int:
    """A port nobody listens on right now (bound, read back, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Process:
    """A child process whose output lines can be awaited one pattern at a time."""

    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _pump_thread: threading.Thread | None = None

    @classmethod
    def start(cls, *args: str, cwd: Path) -> Process:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        popen = subprocess.Popen(
            [sys.executable, "-m", "dmlab", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        process = cls(popen)
        process._pump_thread = threading.Thread(target=process._pump, daemon=True)
        process._pump_thread.start()
        return process

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The first new line matching ``pattern``; fails with everything seen so far."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                line = ""
            if line is None:
                raise AssertionError(
                    f"process exited ({self.popen.poll()}) before {pattern!r}:\n"
                    + "\n".join(self.lines)
                )
            if line:
                self.lines.append(line)
                match = re.search(pattern, line)
                if match:
                    return match
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout} s:\n" + "\n".join(self.lines)
                )

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, and the exit status (killing it, and failing, if it hangs)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(f"{self.popen.args} ignored SIGTERM for {timeout} s") from None
        finally:
            self.close()

    def close(self) -> None:
        """Once the process has exited: read the rest of its output, close the pipe."""
        if self._pump_thread is not None:
            self._pump_thread.join(5)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line:
                self.lines.append(line)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Process, str, Path]]:
    """``dmlab serve`` with its state in SQLite (the default) or in PostgreSQL."""
    data = tmp_path / "data"
    database = []
    if request.param == "postgres":
        database = ["--database", request.getfixturevalue("new_database")()]
    process = Process.start(
        "serve",
        "--port",
        str(free_port()),
        "--data",
        str(data),
        "--account",
        ":".join(ACCOUNT),
        *database,
        cwd=tmp_path,
    )
    try:
        url = process.expect(r"dmlab serving (https://127\.0\.0\.1:\d+)", START_TIMEOUT)[1]
        yield process, url, data / "ca.pem"
    finally:
        code = process.terminate()
    assert code == 0, "\n".join(process.lines)


def test_device_process_runs_a_server_initiated_session(
    server: tuple[Process, str, Path], tmp_path: Path
) -> None:
    _serve, url, ca = server
    verify = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(
        base_url=url,
        auth=ACCOUNT,
        verify=verify,
        timeout=30,
        headers={"Accept": "application/json"},
    ) as operator:
        registered = operator.post("/devices/new", json={"devId": DEV_ID, "name": "cli"})
        assert registered.status_code == 201, registered.text
        secret = registered.json()["secret"]

        device = Process.start(
            "device",
            "--server",
            url,
            "--cafile",
            str(ca),
            "--dev-id",
            DEV_ID,
            "--secret",
            secret,
            cwd=tmp_path,
        )
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
    verify = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(
        base_url=url,
        auth=ACCOUNT,
        verify=verify,
        timeout=30,
        headers={"Accept": "application/json"},
    ) as operator:
        secret = operator.post("/devices/new", json={"devId": DEV_ID}).json()["secret"]
        queued = operator.post(
            f"/devices/{DEV_ID}/sessions",
            json={
                "CMD": [["GET", "urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/DevID"]],
                "notify": False,
            },
        )
        assert queued.status_code == 202, queued.text
        device = Process.start(
            "device",
            "--server",
            url,
            "--cafile",
            str(ca),
            "--dev-id",
            DEV_ID,
            "--secret",
            secret,
            "--alert-now",
            "--once",
            cwd=tmp_path,
        )
        started = device.expect(rf"^{DEV_ID} POST /alert -> 200 session (\S+)$", START_TIMEOUT)
        device.expect(rf"^{DEV_ID} PUT /sessions/id/{started[1]} -> 204$")
        code = device.popen.wait(20)
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
