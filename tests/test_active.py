"""Sessions that end (issue 10, finding 5): an idle active session expires after
``--active-ttl``, sessions in progress are listed, and a device that lost its place
resumes its session. The engine's parts run on all three stores with a clock the
test moves; the rest over real HTTPS."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from dmlab import Lab
from dmlab.__main__ import build_parser
from dmlab.conformance.server import Dev, statuses_for
from dmlab.core.errors import Conflict, Expired
from dmlab.core.limits import SessionLimits, from_arguments
from dmlab.protocol import Command, Report, Status
from dmlab.server import build_services, create_app
from dmlab.store import Device, JobSpec, MemoryStore, Origin, Result, SQLiteStore, State, Store
from dmlab.store.postgres import PostgresStore

from helpers import ACCOUNT, HASH_COST, by_dev, commands, new_dev_id, problem, put_status, queue

TTL = 60.0
BASE = "https://dmlab.test"
GET = Command("GET", ("urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/FwV",))
ONE_ROUND = JobSpec("commands", commands=(GET, Command("END", ())))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens the same store again on each call (a restart, for the SQL stores)."""
    made: list[Any] = []
    memory = MemoryStore()
    dsn = request.getfixturevalue("new_database")() if request.param == "postgres" else None

    def open_() -> Store:
        if request.param == "memory":
            return memory
        store: Any = PostgresStore(dsn) if dsn else SQLiteStore(tmp_path / "a.sqlite3")
        made.append(store)
        return store

    yield open_
    for store in made:
        store.close()


def _services(store: Store, clock: Clock, **choices: str) -> Any:
    from dmlab.choices import Choices

    return build_services(
        store=store,
        clock=clock,
        hash_cost=HASH_COST,
        limits=SessionLimits(active_ttl=TTL),
        choices=Choices(choices),
    )


def _started(svc: Any, dev_id: str = "IMEI:1", job: JobSpec = ONE_ROUND) -> Any:
    device = svc.store.get_device(dev_id)
    if device is None:
        device = Device(dev_id, "acme", "h", b"k")
        svc.store.put_device(device)
    svc.engine.queue(device, job, Origin.SERVER, notify=False)
    session = svc.engine.start_next(dev_id, BASE)
    assert session is not None and session.state is State.ACTIVE
    return session


OK = Report((Status(200),))


def _statuses(session: Any) -> Report:
    """What a device at firmware 1.0.0 reports for the session's current round."""
    cmd = [c.to_json() for c in session.rounds[-1].commands]
    dev = Dev(session.dev_id, "", "acme", True)
    return Report(tuple(Status.from_json(s) for s in statuses_for(cmd, dev)))


# The idle deadline, on every store ------------------------------------------------------
def test_an_idle_active_session_is_swept_as_expired(open_store):
    clock = Clock()
    svc = _services(open_store(), clock)
    session = _started(svc)
    assert session.idle_until == clock.now + TTL
    assert session.brief()["Expires"] == clock.now + TTL  # shown while active
    clock.now += TTL - 1
    assert svc.engine.expire_idle() == 0
    clock.now += 1
    assert svc.engine.expire_idle() == 1
    ended = svc.store.get_session(session.key)
    assert (ended.state, ended.result, ended.idle_until) == (State.COMPLETED, Result.EXPIRED, None)
    assert "sent nothing for 60 s" in ended.reason
    assert svc.engine.expire_idle() == 0


def test_a_report_moves_the_deadline_on(open_store):
    clock = Clock()
    svc = _services(open_store(), clock)
    job = JobSpec("firmware-update", {"version": "2.0.0"})
    session = _started(svc, job=job)
    clock.now += TTL - 1
    statuses = _statuses(session)
    going = svc.engine.report("IMEI:1", session.session_id, statuses, BASE)
    assert going.state is State.ACTIVE and going.idle_until == clock.now + TTL
    clock.now += TTL - 1
    assert svc.engine.expire_idle() == 0


def test_a_report_after_the_deadline_gets_expired_and_the_expiry_is_kept(open_store):
    """No sweep has run yet: the report itself finds the deadline passed."""
    clock = Clock()
    svc = _services(open_store(), clock)
    session = _started(svc)
    clock.now += TTL
    with pytest.raises(Expired, match="sent nothing for 60 s"):
        svc.engine.report("IMEI:1", session.session_id, OK, BASE)
    assert svc.store.get_session(session.key).result is Result.EXPIRED  # committed
    with pytest.raises(Expired):  # and so it stays
        svc.engine.report("IMEI:1", session.session_id, OK, BASE)
    with pytest.raises(Conflict, match="has already expired"):
        svc.engine.abort(None, "acme", session.session_id)


def test_a_session_left_active_expires_after_a_restart(open_store):
    """The deadline is stored: the server's start-up sweep (its lifespan) expires it."""
    clock = Clock()
    first = open_store()
    session = _started(_services(first, clock))
    if not isinstance(first, MemoryStore):
        first.close()  # type: ignore[attr-defined]  # the crash
    clock.now += TTL + 1
    svc = _services(open_store(), clock)
    assert svc.store.get_session(session.key).state is State.ACTIVE
    app = create_app(svc)

    async def serve_briefly() -> None:
        async with app.router.lifespan_context(app):  # what uvicorn runs at start-up
            assert svc.store.get_session(session.key).result is Result.EXPIRED

    anyio.run(serve_briefly)


def test_a_report_racing_the_sweep_either_lands_or_is_refused_never_both(open_store):
    """Real time and a tiny TTL: the report and the sweep race, and the session ends
    either OK (the report landed; 204) or expired (the report was refused)."""
    svc = build_services(
        store=open_store(), hash_cost=HASH_COST, limits=SessionLimits(active_ttl=0.002)
    )
    outcomes = []
    for _ in range(30):
        session = _started(svc)
        answer: list[object] = []

        def put(sid: str = session.session_id, answer: list[object] = answer) -> None:
            try:
                answer.append(svc.engine.report("IMEI:1", sid, OK, BASE).result)
            except Expired as exc:
                answer.append(exc)

        racer = threading.Thread(target=put)
        racer.start()
        svc.engine.expire_idle()
        racer.join()
        stored = svc.store.get_session(session.key).result
        if isinstance(answer[0], Expired):
            assert stored is Result.EXPIRED
        else:
            assert answer[0] is Result.OK and stored is Result.OK
        outcomes.append(stored)
    assert set(outcomes) <= {Result.OK, Result.EXPIRED}


def test_the_sweep_expires_in_batches(open_store):
    clock = Clock()
    svc = _services(open_store(), clock)
    for n in range(7):
        _started(svc, dev_id=f"IMEI:{n}")
    clock.now += TTL
    assert svc.engine.expire_idle(batch=3) == 7
    assert svc.store.idle_sessions(clock.now, 10) == []


# Listed, and resumed ---------------------------------------------------------------
def test_active_sessions_are_listed_for_account_and_device(open_store):
    clock = Clock()
    svc = _services(open_store(), clock)
    session = _started(svc)
    assert [s.key for s in svc.engine.active_page(dev_id="IMEI:1", limit=9).items] == [session.key]
    assert [s.key for s in svc.engine.active_page(account="acme", limit=9).items] == [session.key]
    assert svc.engine.active_count("IMEI:1") == 1
    clock.now += TTL
    assert svc.engine.active_count("IMEI:1") == 0  # past its deadline: not counted
    assert svc.engine.active_page(dev_id="IMEI:1", limit=9).items == []  # moved out when read
    assert svc.store.get_session(session.key).result is Result.EXPIRED


def test_next_resumes_the_active_session_with_its_current_round(open_store):
    clock = Clock()
    svc = _services(open_store(), clock)
    job = JobSpec("firmware-update", {"version": "2.0.0"})
    first = _started(svc, job=job)
    second = svc.engine.queue(svc.store.get_device("IMEI:1"), ONE_ROUND, Origin.SERVER)
    clock.now += TTL - 1
    again = svc.engine.start_next("IMEI:1", BASE, resume=True)
    assert again.key == first.key and again.session_id == first.session_id
    assert again.rounds == first.rounds and again.idle_until == clock.now + TTL
    # POST /alert does not resume: the pending session starts
    assert svc.engine.start_next("IMEI:1", BASE).key == second.key


def test_without_resume_next_starts_the_pending_one(open_store):
    clock = Clock()
    svc = _services(open_store(), clock, **{"session-resume": "none"})
    _started(svc)
    assert svc.engine.start_next("IMEI:1", BASE, resume=True) is None


# Over HTTPS ---------------------------------------------------------------------------------
class Raw:
    """A device speaking raw HTTPS, so a test can make it lose its place."""

    def __init__(self, lab: Lab) -> None:
        self.dev_id = new_dev_id()
        self.secret = lab.operator.register(self.dev_id)["secret"]
        self.http = httpx.Client(
            base_url=lab.url,
            auth=(self.dev_id, self.secret),
            verify=lab.ca.client_context(),
            headers={"OMADM-DevID": self.dev_id},
            timeout=30,
        )


@pytest.fixture
def raw(lab: Lab) -> Iterator[Callable[[], Raw]]:
    made: list[Raw] = []

    def make() -> Raw:
        made.append(Raw(lab))
        return made[-1]

    yield make
    for device in made:
        device.http.close()


def test_get_sessions_active_shows_a_session_in_progress(lab, raw):
    device = raw()
    dev_id, phone = device.dev_id, device.http
    queued = queue(lab, dev_id, job="inventory")
    assert phone.get("/sessions/active").json() == {"Sessions": []}
    sid = commands(phone.post("/sessions/next"))["SessionID"]
    assert sid == queued["SessionID"]
    mine = phone.get("/sessions/active").json()["Sessions"]
    listed = by_dev(lab.operator.active(), dev_id)
    assert [s["SessionID"] for s in mine] == [s["SessionID"] for s in listed] == [sid]
    assert listed[0]["State"] == "active" and listed[0]["Expires"] > listed[0]["Created"]
    record = lab.operator.device(dev_id)
    assert (record["pending"], record["active"]) == (0, 1)
    assert by_dev(lab.operator.pending(), dev_id) == []  # still not pending (TP/SESS/NEXT/003)


def test_next_re_sends_the_round_a_device_lost(lab, raw):
    device = raw()
    dev_id, phone = device.dev_id, device.http
    queue(lab, dev_id, job="firmware-update", version="2.0.0")
    first = commands(phone.post("/sessions/next"))
    assert commands(phone.post("/sessions/next")) == first  # the answer was lost: again
    dev = Dev(dev_id, device.secret, ACCOUNT[0], True)
    statuses = statuses_for(first["CMD"], dev)
    second = commands(put_status(phone, first["SessionID"], statuses))
    resumed = phone.post("/sessions/next")
    assert commands(resumed) == second and second["SessionID"] != first["SessionID"]
    assert resumed.headers["location"] == f"/sessions/id/{second['SessionID']}"


def test_a_restarted_virtual_device_finishes_its_session(lab, raw):
    device = raw()
    dev_id = device.dev_id
    queue(lab, dev_id, job="inventory")
    sid = commands(device.http.post("/sessions/next"))["SessionID"]  # ... then it crashed
    restarted = lab.attach_device(dev_id, device.secret)
    run = restarted.resume()
    assert run is not None and run.ids[0] == sid and run.result == "OK"
    assert by_dev(lab.operator.active(), dev_id) == []
    done = by_dev(lab.operator.completed(), dev_id)
    assert [(s["IDs"][0], s["Result"]) for s in done] == [(sid, "OK")]
    assert restarted.resume() is None  # nothing in progress any more


class _Sync(httpx.BaseTransport):
    """The ASGI app in process, for a synchronous client (one event loop per request)."""

    def __init__(self, app: Any) -> None:
        self._asgi = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def go() -> httpx.Response:
            response = await self._asgi.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return anyio.run(go)


def test_an_expired_sessions_device_gets_a_clear_problem_on_its_next_put():
    """Over the HTTP API, with the server's clock moved past the deadline."""
    clock = Clock()
    svc = _services(MemoryStore(), clock)
    svc.add_account(*ACCOUNT)
    with httpx.Client(transport=_Sync(create_app(svc)), base_url=BASE) as http:
        dev_id = new_dev_id()
        registered = http.post("/devices/new", json={"devId": dev_id}, auth=ACCOUNT)
        phone = {"auth": (dev_id, registered.json()["secret"]), "headers": {"OMADM-DevID": dev_id}}
        svc.engine.queue(svc.store.get_device(dev_id), ONE_ROUND, Origin.SERVER, notify=False)
        first = commands(http.post("/sessions/next", **phone))
        active = http.get("/sessions/active", auth=ACCOUNT).json()["Sessions"]
        assert [s["Expires"] for s in active] == [clock.now + TTL]
        clock.now += TTL
        refused = http.put(
            f"/sessions/id/{first['SessionID']}",
            json={"Status": [{"sc": 200}]},
            headers={**phone["headers"], "Content-Type": "application/vnd.oma.dm.response+json"},
            auth=phone["auth"],
        )
        body = problem(refused, 409, "session-expired")
        assert "sent nothing for 60 s" in body["detail"]
        done = http.get("/sessions/completed", auth=ACCOUNT).json()["Sessions"]
        # The CR's brief result (lab choice brief-result=ok-failure): a failure, and why.
        assert [(s["SessionID"], s["Result"]) for s in done] == [(first["SessionID"], "failure")]
        assert done[0]["Reason"].startswith("expired; the device sent nothing for 60 s")
        assert http.get("/sessions/active", auth=ACCOUNT).json() == {"Sessions": []}
        assert http.post("/sessions/next", **phone).status_code == 204


def test_hidden_listing_serves_no_active_resource():
    with Lab(hash_cost=HASH_COST, choices={"active-listing": "hidden"}) as lab:
        device = Raw(lab)
        assert device.http.get("/sessions/active").status_code == 404
        assert "active" not in lab.operator.device(device.dev_id)
        device.http.close()


# The limit's one declaration ------------------------------------------------------------
def test_active_ttl_is_a_serve_option_with_the_declared_default():
    args = build_parser().parse_args(["serve", "--data", "x"])
    assert from_arguments(args) == SessionLimits() and SessionLimits().active_ttl == 300.0
    args = build_parser().parse_args(["serve", "--data", "x", "--active-ttl", "12.5"])
    assert from_arguments(args).active_ttl == 12.5
    for bad in ("0", "-1", "soon", "inf"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["serve", "--data", "x", "--active-ttl", bad])
