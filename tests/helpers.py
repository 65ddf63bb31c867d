"""Helpers for the end-to-end suite: raw HTTPS clients for accounts and devices,
and what a user of the API would read (listings, problem bodies, HTML pages, the
trace). Fixtures that build on them live in conftest.py."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import httpx

from dmlab import Lab
from dmlab.protocol import media
from dmlab.runtime.lab import DEFAULT_ACCOUNT, Device
from dmlab.trace import MAX_PATH

#: scrypt as cheap as it gets: the suite is about the protocol, not the KDF.
HASH_COST = {"n": 2**4, "r": 8, "p": 1}
ACCOUNT = DEFAULT_ACCOUNT
RIVAL = ("rival", "rival-password")

DEVINFO = "urn:oma:mo:oma-dm-devinfo:1.0"
FUMO = "urn:oma:mo:oma-fumo:1.0"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

_serial = itertools.count(100_000_000_000_000)


def new_dev_id() -> str:
    """A DevID no other test of the session uses (15 digits, like an IMEI)."""
    return f"IMEI:{next(_serial)}"


def new_name(prefix: str) -> str:
    """A fresh name without a colon: an account, or a DevID for tests that send
    wrong credentials (the server counts failed logins per name and address and
    makes a name wait after ten, so such tests must not spend the shared names' allowance)."""
    return f"{prefix}-{next(_serial)}"


@dataclass
class Registered:
    """A device registered through ``POST /devices/new``; ``device`` is the
    virtual device brought to life with its secret (None when not attached)."""

    dev_id: str
    secret: str
    account: str
    device: Device | None


class Clients:
    """Raw ``httpx.Client``s against a lab, closed when the test ends."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self._open: list[httpx.Client] = []

    def _client(self, auth: tuple[str, str] | None, headers: dict[str, str]) -> httpx.Client:
        client = httpx.Client(
            base_url=self.lab.url,
            auth=auth,
            headers=headers,
            verify=self.lab.ca.client_context(),
            timeout=30.0,
        )
        self._open.append(client)
        return client

    def account(
        self, name: str = ACCOUNT[0], password: str | None = None, *, accept: str = media.JSON
    ) -> httpx.Client:
        if password is None:
            password = {ACCOUNT[0]: ACCOUNT[1], RIVAL[0]: RIVAL[1]}[name]
        return self._client((name, password), {"Accept": accept})

    def browser(self, name: str = ACCOUNT[0], password: str | None = None) -> httpx.Client:
        """What a person's browser sends: HTML Accept, forms, Basic credentials."""
        return self.account(name, password, accept=BROWSER_ACCEPT)

    def device(self, dev_id: str, secret: str, *, devid_header: str | None = None) -> httpx.Client:
        return self._client(
            (dev_id, secret), {media.DEVID_HEADER: devid_header or dev_id, "Accept": media.COMMANDS}
        )

    def of(self, registered: Registered) -> httpx.Client:
        return self.device(registered.dev_id, registered.secret)

    def anonymous(self, *, accept: str = media.JSON) -> httpx.Client:
        return self._client(None, {"Accept": accept})

    def close(self) -> None:
        for client in self._open:
            client.close()

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# What a user reads ---------------------------------------------------------------
PROBLEM_JSON = "application/problem+json"


def problem(response: httpx.Response, status: int, error: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem answer (``application/problem+json`` with ``type``,
    ``title``, ``status``, ``detail`` and ``instance``) and return its body; ``error``
    names the problem type (its ``type`` URI points at ``/docs#problem-<error>``)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert media.base(response.headers.get("content-type")) == PROBLEM_JSON, response.headers
    assert "accept" in response.headers.get("vary", "").lower(), response.headers
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail", "instance"}, body
    assert body["status"] == status, body
    # the path as sent, up to MAX_PATH characters (not cut inside a %XX escape)
    sent = response.request.url.raw_path.decode().partition("?")[0]
    assert sent.startswith(body["instance"]), body
    assert len(body["instance"]) >= min(len(sent), MAX_PATH) - 2, body
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["title"], str) and body["title"]
    base = f"{response.request.url.scheme}://{response.request.url.netloc.decode()}"
    assert body["type"].startswith(f"{base}/docs#problem-"), body
    if error is not None:
        assert body["type"] == f"{base}/docs#problem-{error}", body
    return body


def html(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert media.base(response.headers.get("content-type")) == media.HTML, response.headers
    return response.text


def csrf_of(page: str, form_id: str | None = None) -> str:
    """The hidden CSRF token of a page's form (the first form, or the one with that id)."""
    if form_id is not None:
        match = re.search(rf'<form[^>]*id="{re.escape(form_id)}".*?</form>', page, re.DOTALL)
        assert match, f"no form {form_id}"
        page = match.group(0)
    token = re.search(r'<input type="hidden" name="csrf" value="([0-9a-f]+)">', page)
    assert token, "no CSRF token in the page"
    return token.group(1)


def element_text(page: str, element_id: str) -> str:
    match = re.search(rf'id="{re.escape(element_id)}"[^>]*>([^<]*)<', page)
    assert match, f"no element {element_id}"
    return match.group(1)


def commands(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    """Assert a package 2 answer (SessionID + CMD, the CR's media type, Location)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert media.base(response.headers.get("content-type")) == media.COMMANDS
    body = response.json()
    assert set(body) == {"SessionID", "CMD"}, body
    assert isinstance(body["SessionID"], str) and body["SessionID"]
    assert isinstance(body["CMD"], list) and body["CMD"]
    assert response.headers["location"] == f"/sessions/id/{body['SessionID']}"
    return body


def put_status(
    client: httpx.Client, session_id: str, statuses: list[dict[str, Any]], **extra: Any
) -> httpx.Response:
    """A package 3, as a device sends it."""
    return client.put(
        f"/sessions/id/{session_id}",
        content=json.dumps({"Status": statuses, **extra}),
        headers={"Content-Type": media.DM20_RESPONSE},
    )


def post_alert(client: httpx.Client, *alerts: dict[str, Any]) -> httpx.Response:
    return client.post(
        "/alert",
        content=json.dumps({"Alert": list(alerts)}),
        headers={"Content-Type": media.DM20_RESPONSE},
    )


def queue(
    lab: Lab, dev_id: str, *, account: str = ACCOUNT[0], notify: bool = False, **request: Any
) -> dict[str, Any]:
    """Queue a session through the operator (notify=False: the device is not told)."""
    return lab.operators[account].request_session(dev_id, notify=notify, **request)


def by_dev(sessions: list[dict[str, Any]], dev_id: str) -> list[dict[str, Any]]:
    return [s for s in sessions if s["DevID"] == dev_id]


def session_of(lab: Lab, session_id: str, account: str = ACCOUNT[0]) -> dict[str, Any]:
    """The listing entry of a session, found by any id it has had."""
    operator = lab.operators[account]
    for entry in operator.pending() + operator.completed():
        if entry["SessionID"] == session_id or session_id in entry.get("IDs", ()):
            return entry
    raise AssertionError(f"session {session_id} is neither pending nor completed")


def snapshot(lab: Lab) -> dict[str, Any]:
    """What every account sees: its devices, pending and completed sessions."""
    lab.settle()
    return {
        name: {
            "devices": sorted(op.devices(), key=lambda d: d["devId"]),
            "pending": op.pending(),
            "completed": op.completed(),
        }
        for name, op in sorted(lab.operators.items())
    }


def rows(lab: Lab, since: int, dev_id: str | None = None) -> list[tuple[str, str, str, int]]:
    """The trace since a point as (who, method, path, status), optionally for one device."""
    frame = lab.trace.frame(since)
    if dev_id is not None:
        frame = frame[frame["dev_id"] == dev_id]
    return [(r.source, r.method, r.path, r.status) for r in frame.itertuples()]


#: Generous: the first start of a process imports pandas and uvicorn, and issue 16's loaded
#: runs (three suites and a fleet on two cores) reach load 15-20. A deadline, not a guess:
#: each wait ends as soon as what it waits for happens.
START_TIMEOUT = 120.0
#: The same for anything else a test waits for (an event, a process's exit, a stream).
WAIT = 60.0


@dataclass
class Process:
    """A child process whose output lines can be awaited one pattern at a time."""

    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _queue: Queue[str | None] = field(default_factory=Queue)
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
            except Empty:
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
            except Empty:
                break
            if line:
                self.lines.append(line)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def serve(
    tmp_path: Path, *options: str, account: tuple[str, str] = ACCOUNT, port: int = 0
) -> tuple[Process, str, Path]:
    """``python -m dmlab serve`` with its state in ``tmp_path/data`` and ``account``: the
    process, its URL and its CA file, once it serves. ``port`` 0 (the default) is any
    free one, the server's own pick: a port picked here and bound later could be taken
    in between, as one was under issue 16's parallel suites. A restart passes the port
    its first run got."""
    data = tmp_path / "data"
    process = Process.start(
        "serve", "--port", str(port), "--data", str(data), "--account", ":".join(account),
        *options, cwd=tmp_path,
    )  # fmt: skip
    try:
        url = process.expect(r"dmlab serving (https://127\.0\.0\.1:\d+)", START_TIMEOUT)[1]
    except BaseException:
        process.terminate()
        raise
    return process, url, data / "ca.pem"


def run_device(url: str, ca: Path, dev_id: str, secret: str, *options: str, cwd: Path) -> Process:
    """``python -m dmlab device`` against the server at ``url``."""
    return Process.start(
        "device", "--server", url, "--cafile", str(ca), "--dev-id", dev_id, "--secret", secret,
        *options, cwd=cwd,
    )  # fmt: skip


def https_client(url: str, ca: Path, **options: Any) -> httpx.Client:
    """A client of the server at ``url`` that trusts its CA file ``ca`` (30 s timeout)."""
    verify = ssl.create_default_context(cafile=str(ca))
    return httpx.Client(base_url=url, verify=verify, timeout=30, **options)


def operator_client(url: str, ca: Path, account: tuple[str, str] = ACCOUNT) -> httpx.Client:
    """An account's script: Basic credentials, JSON answers."""
    return https_client(url, ca, auth=account, headers={"Accept": "application/json"})


# Raw ASGI: a client the test controls to the message ------------------------------------
def asgi_get(
    path: str, user: str, secret: str, *, query: bytes = b"", dev_id: str = ""
) -> dict[str, Any]:
    """The ASGI scope of ``GET path?query`` with Basic credentials (and ``OMADM-DevID``
    when ``dev_id`` is given), as uvicorn would pass it."""
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    headers = [(b"host", b"dmlab.test"), (b"authorization", f"Basic {token}".encode())]
    if dev_id:
        headers.append((media.DEVID_HEADER.lower().encode(), dev_id.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("dmlab.test", 443),
    }


def hangs_up_on(gone: asyncio.Event) -> Callable[[], Awaitable[dict[str, Any]]]:
    """An ASGI ``receive``: the request (no body), then a disconnect once ``gone`` is set."""
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    return receive


# A real browser (Chromium, driven by Playwright) --------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Where the browser tests leave their screenshots.
SHOTS = Path(os.environ.get("DMLAB_SCREENSHOTS", "/tmp"))


@contextlib.contextmanager
def tiny_tmpfs(size: str, owner: int | None = None) -> Iterator[Path]:
    """A real, small file system (a tmpfs of ``size``, owned by ``owner``) to fill up,
    or a skip that says why there is none: mounting needs root (and a container
    that allows it). A disk filled for real, not a mocked free-space check."""
    import pytest

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a really full disk needs a tmpfs to fill, and mounting one needs root")
    top = Path(tempfile.mkdtemp(prefix="dmlab-full-"))
    options = f"size={size},mode=0700" + (f",uid={owner}" if owner is not None else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(top)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        top.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield top
    finally:
        subprocess.run(["umount", str(top)], check=False)
        top.rmdir()


def fill(directory: Path, leave: int = 0) -> None:
    """Fill ``directory``'s file system until only ``leave`` bytes are free."""
    stat = os.statvfs(directory)
    with open(directory / "filler", "wb") as filler:
        with contextlib.suppress(OSError):  # ENOSPC: full, as asked when leave is 0
            filler.write(b"\0" * max(stat.f_bavail * stat.f_frsize - leave, 0))
            filler.flush()
