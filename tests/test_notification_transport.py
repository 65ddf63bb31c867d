"""Lab choice notification-transport (issue 12): how package 0 reaches a device in
another process, under each option. ``python -m dmlab serve --choice
notification-transport=…`` and ``python -m dmlab device`` run as a person runs them; the
device follows the server's reading from ``GET /choices``."""

from __future__ import annotations

import base64
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from dmlab import Lab
from dmlab.protocol.notification import notification_key, verify_digest

from helpers import (
    HASH_COST,
    START_TIMEOUT,
    WAIT,
    Process,
    https_client,
    new_dev_id,
    operator_client,
    run_device,
    serve,
)

DEV_ID = "IMEI:490154203237518"


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict]:
    """A server under the option in ``request.param``, an operator, a registered device."""
    server, url, ca = serve(tmp_path, "--choice", f"notification-transport={request.param}")
    operator = operator_client(url, ca)
    try:
        secret = operator.post("/devices/new", json={"devId": DEV_ID}).json()["secret"]
        yield {"url": url, "ca": ca, "operator": operator, "secret": secret, "tmp": tmp_path}
    finally:
        operator.close()
        code = server.terminate()
    assert code == 0, "\n".join(server.lines)


def _device(world: dict, *extra: str) -> Process:
    return run_device(world["url"], world["ca"], DEV_ID, world["secret"], *extra, cwd=world["tmp"])


def _as_device(world: dict, **options: Any) -> httpx.Client:
    return https_client(world["url"], world["ca"], auth=(DEV_ID, world["secret"]), **options)


def _queue_and_see_it_run(world: dict, device: Process, channel: str | None, timeout: float) -> str:
    """Queue a session (notified); the device's log shows it arrive (on ``channel``, a
    line of its own where there is one) and run."""
    operator: httpx.Client = world["operator"]
    queued = operator.post(f"/devices/{DEV_ID}/sessions", json={"job": "inventory"})
    assert queued.status_code == 202, queued.text
    if channel:
        device.expect(channel, timeout)
    started = device.expect(rf"^{DEV_ID} POST /sessions/next -> 200 session (\S+)$", timeout)
    device.expect(rf"^{DEV_ID} PUT /sessions/id/{started[1]} -> 204$")
    done = operator.get("/sessions/completed").json()["Sessions"]
    assert [(s["IDs"][0], s["Result"]) for s in done] == [(queued.json()["SessionID"], "OK")]
    return started[1]


def _stop(device: Process) -> str:
    code = device.terminate()
    log = "\n".join(device.lines)
    assert code == 0 and "Traceback" not in log, log
    return log


@pytest.mark.parametrize("world", ["long-poll"], indirect=True)
def test_long_poll_a_device_in_another_process_gets_the_notification_from_its_poll(world):
    device = _device(world)
    try:
        device.expect(rf"^{DEV_ID} GET /choices -> 200$", START_TIMEOUT)
        _queue_and_see_it_run(
            world, device, rf"^{DEV_ID} GET /notifications -> 200$", START_TIMEOUT
        )
    finally:
        log = _stop(device)
    assert "text/event-stream" not in log


@pytest.mark.parametrize("world", ["sse"], indirect=True)
def test_sse_a_device_in_another_process_gets_the_notification_as_an_event(world):
    operator: httpx.Client = world["operator"]
    device = _device(world)
    try:
        device.expect(rf"^{DEV_ID} follows the server: .*notification-transport=sse", START_TIMEOUT)
        # The stream is open (its answer's head came) before anything is queued.
        device.expect(rf"^{DEV_ID} GET /notifications -> 200$", START_TIMEOUT)
        _queue_and_see_it_run(world, device, None, 20)
        # A second session on the same stream: no new GET /notifications in between.
        lines = len(device.lines)
        queued = operator.post(f"/devices/{DEV_ID}/sessions", json={"job": "inventory"})
        assert queued.status_code == 202
        device.expect(rf"^{DEV_ID} PUT /sessions/id/\S+ -> 204$", 20)
        assert not any("GET /notifications" in line for line in device.lines[lines:])
    finally:
        _stop(device)
    # The long-poll is not served under this reading.
    with _as_device(world, headers={"Accept": "application/vnd.oma.dm.notification"}) as client:
        assert client.get("/notifications", params={"wait": 0}).status_code == 406


@pytest.mark.parametrize("world", ["none"], indirect=True)
def test_none_a_device_in_another_process_picks_the_session_up_on_its_timer(world):
    device = _device(world, "--call-in", "1")
    try:
        device.expect(
            rf"^{DEV_ID} follows the server: .*notification-transport=none", START_TIMEOUT
        )
        device.expect(rf"^{DEV_ID} POST /sessions/next -> 204$", START_TIMEOUT)  # nothing yet
        _queue_and_see_it_run(world, device, None, 20)
    finally:
        log = _stop(device)
    assert "/notifications" not in log
    with _as_device(world) as client:
        assert client.get("/notifications", params={"wait": 0}).status_code == 404


# The server side, in process ------------------------------------------------------------
def test_sse_each_package_0_is_one_event_and_the_stream_ends_when_the_server_stops():
    events: queue.Queue[tuple[str, object]] = queue.Queue()
    with Lab(hash_cost=HASH_COST, choices={"notification-transport": "sse"}) as lab:
        dev_id = new_dev_id()
        secret = lab.operator.register(dev_id)["secret"]

        def read() -> None:
            with httpx.Client(
                base_url=lab.url, auth=(dev_id, secret), verify=lab.ca.client_context()
            ) as client:
                with connect_sse(client, "GET", "/notifications", timeout=30) as source:
                    events.put(("open", source.response.status_code))
                    for event in source.iter_sse():
                        if event.data:  # not the opening frame (retry: and a comment)
                            events.put((event.event, event.data))
            events.put(("closed", None))

        threading.Thread(target=read, daemon=True).start()
        assert events.get(timeout=WAIT) == ("open", 200)
        lab.operator.request_session(dev_id, job="inventory")
        lab.operator.request_session(dev_id, job="inventory")
        for _ in range(2):
            kind, data = events.get(timeout=WAIT)
            assert kind == "notification"
            assert verify_digest(base64.b64decode(str(data)), notification_key(secret))
        stopping = time.monotonic()
    assert events.get(timeout=WAIT) == ("closed", None)
    assert time.monotonic() - stopping < WAIT


def test_none_the_server_keeps_no_package_0_for_a_device_in_another_process():
    with Lab(hash_cost=HASH_COST, choices={"notification-transport": "none"}) as lab:
        dev_id = new_dev_id()
        lab.operator.register(dev_id)
        lab.operator.request_session(dev_id, job="inventory")  # notify: true, as by default
        assert lab.services.notifier.take(dev_id) is None
        assert not [e for e in lab.trace.since(0) if e.method == "NOTIFY"]
        assert [s["DevID"] for s in lab.operator.pending()] == [dev_id]  # it waits for a call


def test_none_no_package_0_reaches_the_labs_own_devices_they_call_in_on_their_timer():
    """Under ``none`` the in-process channel is closed too: a lab device is not handed
    package 0 (it used to be, as if ``none`` meant "only for other processes"), and
    runs the session when its timer fires."""
    with Lab(hash_cost=HASH_COST, choices={"notification-transport": "none"}, call_in=0.2) as lab:
        completed = threading.Event()
        lab.events.subscribe(
            lambda event: completed.set() if event.kind == "session.completed" else None
        )
        phone = lab.add_device(new_dev_id())
        held = lab.hold_notifications(phone.dev_id)  # what a listener would be handed
        queued = lab.operator.request_session(phone.dev_id, job="inventory")  # notify: true
        assert held == []
        lab.release_notifications(phone.dev_id)
        assert completed.wait(WAIT), "the device's timer never picked the session up"
        deadline = time.monotonic() + WAIT  # the device files its run after the last answer
        while not phone.runs and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [(run.ids[0], run.trigger) for run in phone.runs] == [(queued["SessionID"], "timer")]
        assert not [e for e in lab.trace.since(0) if e.method == "NOTIFY"]
        assert phone.dropped == []


def test_long_poll_the_server_keeps_package_0_until_the_device_polls():
    with Lab(hash_cost=HASH_COST) as lab:
        dev_id = new_dev_id()
        secret = lab.operator.register(dev_id)["secret"]
        lab.operator.request_session(dev_id, job="inventory")
        with httpx.Client(
            base_url=lab.url, auth=(dev_id, secret), verify=lab.ca.client_context()
        ) as client:
            answer = client.get("/notifications", params={"wait": 0})
        assert answer.status_code == 200
        assert verify_digest(answer.content, notification_key(secret))


# The caps on waits (dmlab/caps.py) bound streams too ---------------------------------------
CHEAP = {"n": 2, "r": 1, "p": 1}
PHONES = [f"IMEI:49015420323751{n}" for n in range(2)]


class _Stream:
    """One device's notification stream read in a thread: its status, events, and end."""

    def __init__(self, url: str, ca: object, dev_id: str) -> None:
        self.lines: queue.Queue[tuple[str, object]] = queue.Queue()
        self.status = 0
        self.body = ""

        def read() -> None:
            with httpx.Client(
                base_url=url,
                auth=(dev_id, "s3cret"),
                verify=ca.client_context(),  # type: ignore[attr-defined]
                headers={"OMADM-DevID": dev_id},
            ) as client:
                with connect_sse(client, "GET", "/notifications", timeout=30) as source:
                    self.status = source.response.status_code
                    if self.status != 200:
                        self.body = source.response.read().decode()
                    else:
                        for line in source.response.iter_lines():
                            self.lines.put(("line", line))
            self.lines.put(("closed", None))

        threading.Thread(target=read, daemon=True).start()

    def until(self, text: str) -> None:
        deadline = time.monotonic() + 20
        while True:
            kind, line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            if kind == "closed":
                raise AssertionError(f"the stream ended before {text!r}")
            if text in str(line):
                return

    def closed(self) -> bool:
        deadline = time.monotonic() + 20
        while True:
            kind, _ = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            if kind == "closed":
                return True


@pytest.fixture
def capped() -> Iterator[tuple[object, str, object]]:
    from dmlab.caps import Caps
    from dmlab.choices import Choices
    from dmlab.runtime import LabCA, ServerThread
    from dmlab.server import build_services, close_streams, create_app
    from dmlab.store import Device

    services = build_services(
        hash_cost=CHEAP,
        caps=Caps(polls_per_account=1),
        choices=Choices({"notification-transport": "sse"}),
    )
    services.add_account("demo", "demo-password")
    for dev_id in PHONES:
        services.store.put_device(
            Device(dev_id, "demo", services.auth.hash("s3cret"), notification_key("s3cret"))
        )
    ca = LabCA.create()
    app = create_app(services)
    server = ServerThread(app, ca).start()
    try:
        yield services, server.url, ca
    finally:
        close_streams(app)
        server.stop()


def _waiting(services: object, count: int) -> None:
    deadline = time.monotonic() + 20
    while services.notifier.waiting() != count:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the stream's wait was never counted in"
        time.sleep(0.01)


def test_sse_an_account_over_its_cap_of_waits_gets_a_429_not_a_stream(capped):
    services, url, ca = capped
    first = _Stream(url, ca, PHONES[0])
    first.until(": DM Notifications for")
    _waiting(services, 1)
    refused = _Stream(url, ca, PHONES[1])
    assert refused.closed() and refused.status == 429
    assert "over-cap" in refused.body and "--polls-per-account" in refused.body
    services.notifier.deliver(PHONES[0], b"package 0")
    first.until("event: notification")


def test_sse_a_devices_new_stream_takes_the_old_ones_place(capped):
    services, url, ca = capped
    old = _Stream(url, ca, PHONES[0])
    old.until(": DM Notifications for")
    _waiting(services, 1)
    new = _Stream(url, ca, PHONES[0])
    old.until("took this stream's place")
    assert old.closed()
    new.until(": DM Notifications for")
    _waiting(services, 1)
    services.notifier.deliver(PHONES[0], b"package 0")
    new.until("data: " + base64.b64encode(b"package 0").decode())
