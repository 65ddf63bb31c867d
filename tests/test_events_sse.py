"""``GET /events``: an account's lab events as Server-Sent Events, over real HTTPS."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dmlab import Lab
from dmlab.server import build_services, create_app
from dmlab.server.routes.events import QUEUE_SIZE, close_streams, event_streams

from helpers import HASH_COST, WAIT, asgi_get, hangs_up_on

PHONE = "IMEI:490154203237518"
RIVAL_PHONE = "IMEI:356938035643809"


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab(hash_cost=HASH_COST) as running:
        running.add_account("rival", "rival-password")
        running.add_device(PHONE)
        running.add_device(RIVAL_PHONE, account="rival")
        yield running


class Listener:
    """Reads one event stream in a thread; hands parsed frames to the test."""

    def __init__(self, client: httpx.Client, headers: dict[str, str] | None = None) -> None:
        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self.ready = threading.Event()
        self.status = 0
        self.content_type = ""
        self.comments: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(client, headers or {}), daemon=True)
        self._thread.start()
        assert self.ready.wait(WAIT), "the stream did not start"

    def _run(self, client: httpx.Client, headers: dict[str, str]) -> None:
        with client.stream("GET", "/events", headers=headers, timeout=10) as response:
            self.status = response.status_code
            self.content_type = response.headers.get("content-type", "")
            frame: dict[str, Any] = {}
            for line in response.iter_lines():
                if line.startswith(":"):
                    self.comments.append(line)
                    self.ready.set()  # the first comment comes once the subscription is in place
                elif line == "":
                    if frame:
                        self.frames.put(frame)
                    frame = {}
                else:
                    field, _, value = line.partition(": ")
                    frame[field] = value
                if self._stop.is_set():
                    break
        self.ready.set()

    def next(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            frame = self.frames.get(timeout=max(deadline - time.monotonic(), 0.01))
            if frame.get("event") == kind:
                return frame

    def kinds(self) -> list[str]:
        out = []
        while not self.frames.empty():
            out.append(self.frames.get().get("event", ""))
        return out

    def close(self, lab: Lab, account: str = "demo") -> None:
        self._stop.set()
        # Something to read, so the reader loop sees the stop flag.
        lab.events.publish("device.updated", account=account, dev_id="")
        self._thread.join(5)
        assert not self._thread.is_alive()


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_stream_carries_the_accounts_session_events(lab: Lab) -> None:
    listener = Listener(lab.operator.http)
    assert listener.status == 200
    assert listener.content_type.startswith("text/event-stream")
    assert listener.comments[0] == ": events of account demo"
    brief = lab.operator.request_session(PHONE, job="inventory")
    lab.settle()
    queued = listener.next("session.queued")
    data = json.loads(queued["data"])
    assert int(queued["id"]) == data["seq"]
    assert (data["account"], data["devId"], data["session"], data["job"]) == (
        "demo",
        PHONE,
        brief["SessionID"],
        "inventory",
    )
    completed = json.loads(listener.next("session.completed")["data"])
    assert (completed["key"], completed["result"]) == (brief["SessionID"], "OK")
    listener.close(lab)
    wait_for(lambda: event_streams(lab.app).open_streams == 0)
    stream = [e for e in lab.trace if e.path == "/events"][-1]
    assert (stream.source, stream.status, stream.request) == ("operator", 200, "event stream")
    assert stream.response.endswith("event(s) streamed")


def test_another_account_does_not_see_them(lab: Lab) -> None:
    mine = Listener(lab.operator.http)
    rival = Listener(lab.operators["rival"].http)
    lab.operator.request_session(PHONE, job="inventory")
    lab.settle()
    mine.next("session.completed")
    lab.operators["rival"].request_session(RIVAL_PHONE, job="inventory")
    lab.settle()
    rival_frame = json.loads(rival.next("session.completed")["data"])
    assert rival_frame["devId"] == RIVAL_PHONE
    assert all(json.loads(f["data"])["account"] == "rival" for f in _drain(rival))
    assert all(json.loads(f["data"])["account"] == "demo" for f in _drain(mine))
    mine.close(lab)
    rival.close(lab, "rival")


def _drain(listener: Listener) -> list[dict[str, Any]]:
    out = []
    while not listener.frames.empty():
        out.append(listener.frames.get())
    return out


def test_credentials_are_required(lab: Lab) -> None:
    with httpx.Client(base_url=lab.url, verify=lab.ca.client_context()) as anonymous:
        response = anonymous.get("/events")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    with httpx.Client(
        base_url=lab.url, verify=lab.ca.client_context(), auth=("demo", "wrong")
    ) as wrong:
        assert wrong.get("/events").status_code == 401


def test_devices_cannot_listen(lab: Lab) -> None:
    registered = lab.operator.register("IMEI:011111111111111")
    with httpx.Client(
        base_url=lab.url,
        verify=lab.ca.client_context(),
        auth=("IMEI:011111111111111", registered["secret"]),
    ) as device:
        assert device.get("/events").status_code == 403


def test_last_event_id_replays_what_was_missed(lab: Lab) -> None:
    first = Listener(lab.operator.http)  # makes the hub, which starts recording
    lab.operator.request_session(PHONE, job="inventory")
    lab.settle()
    queued = first.next("session.queued")
    first.close(lab)
    again = Listener(lab.operator.http, headers={"Last-Event-ID": queued["id"]})
    replayed = [again.next("session.started"), again.next("session.completed")]
    assert all(int(f["id"]) > int(queued["id"]) for f in replayed)
    again.close(lab)


def test_heartbeat_on_a_quiet_stream(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dmlab.server.routes.events.HEARTBEAT", 0.2)
    listener = Listener(lab.operator.http)
    wait_for(lambda: ": heartbeat" in listener.comments)
    listener.close(lab)


def test_closing_the_hub_ends_streams_so_the_server_stops_promptly() -> None:
    lab = Lab(hash_cost=HASH_COST).start()
    try:
        listener = Listener(lab.operator.http)
        close_streams(lab.app)
        listener._thread.join(5)
        assert not listener._thread.is_alive()
        with lab.operator.http.stream("GET", "/events") as response:
            assert response.status_code == 503
    finally:
        lab.stop()
    assert not lab.server.forced, "an open stream held up the server's graceful shutdown"


def test_a_stream_that_falls_a_whole_queue_behind_ends_and_says_why() -> None:
    """The client stops reading; more events than the queue holds arrive; the stream ends
    with a comment instead of silently skipping events (a reconnect replays them)."""
    services = build_services(hash_cost=HASH_COST)
    services.add_account("demo", "demo-password")
    app = create_app(services)
    scope = asgi_get("/events", "demo", "demo-password")
    chunks: list[bytes] = []

    async def go() -> None:
        reading, first_chunk, gone = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                first_chunk.set()
                await reading.wait()  # a client that has stopped reading

        served = asyncio.create_task(app(scope, hangs_up_on(gone), send))
        async with asyncio.timeout(30):
            await first_chunk.wait()
            for _ in range(QUEUE_SIZE + 1):
                services.events.publish("device.updated", account="demo", dev_id="")
            # The hand-overs to the stream are queued on this loop (call_soon_threadsafe),
            # so they all run before the client reads again.
            asyncio.get_running_loop().call_soon(reading.set)
            await served
        gone.set()

    asyncio.run(go())
    text = b"".join(chunks).decode()
    assert text.count("event: device.updated") < QUEUE_SIZE + 1
    assert text.rstrip().endswith(": too far behind; reconnect with Last-Event-ID")
