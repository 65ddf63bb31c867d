"""A shared server under abuse (issue 10): login work off the event loop, no timing
oracle, a lockout that an attacker cannot hold, bounded tables."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from dmlab.core.devices import new_secret
from dmlab.server import auth
from dmlab.store import Account, Device, MemoryStore
from dmlab.store.sqlite import SQLiteStore
from dmlab.trace import ANON_BURST, MAX_FIELD, MAX_PATH, Trace

from helpers import DEVINFO, HASH_COST, commands, new_name, problem, put_status, queue


@pytest.fixture
def every_log_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server logs each kind of fault once a minute; these tests count lines."""
    from dmlab.runtime import limits

    monkeypatch.setattr(limits._FILTER, "_period", 0.0)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per scrypt run: True if it ran on a thread with a running event loop."""
    calls: list[bool] = []
    real = hashlib.scrypt

    def spy(*args: Any, **kwargs: Any) -> bytes:
        try:
            asyncio.get_running_loop()
            calls.append(True)
        except RuntimeError:
            calls.append(False)
        return real(*args, **kwargs)

    monkeypatch.setattr(auth.hashlib, "scrypt", spy)
    return calls


def _store() -> tuple[MemoryStore, str]:
    store = MemoryStore()
    store.put_account(Account("acme", auth.hash_secret("pw", cost=HASH_COST)))
    secret = new_secret()
    store.put_device(Device("IMEI:1", "acme", auth.device_verifier(secret), b"k"))
    return store, secret


def _run(authenticator: auth.Authenticator, header: str) -> auth.Principal | None:
    return anyio.run(authenticator.authenticate, header, "10.0.0.1")


# 1. Nothing slow on the loop; known and unknown names cost the same --------------------
def test_scrypt_never_runs_on_the_event_loop(scrypt_calls: list[bool]) -> None:
    store, _ = _store()
    authenticator = auth.Authenticator(store, cost=HASH_COST)
    assert _run(authenticator, _basic("acme", "pw")) == auth.Principal("account", "acme", "acme")
    assert _run(authenticator, _basic("acme", "wrong")) is None
    assert scrypt_calls and not any(scrypt_calls), scrypt_calls


@pytest.mark.parametrize(
    "user",
    ["acme", "IMEI:1", "nobody", "IMEI:999"],
    ids=["known account", "known device", "unknown name", "unknown device"],
)
def test_a_failed_login_costs_one_scrypt_whatever_the_name(
    scrypt_calls: list[bool], user: str
) -> None:
    store, _ = _store()
    authenticator = auth.Authenticator(store, cost=HASH_COST)
    authenticator._dummy_hash()  # made once per process, not per login
    scrypt_calls.clear()
    assert _run(authenticator, _basic(user, "wrong-secret")) is None
    assert len(scrypt_calls) == 1


def test_a_restart_checks_device_secrets_without_scrypt(scrypt_calls: list[bool]) -> None:
    """A device registered by an older dmlab (scrypt hash) is upgraded on its first
    success; after a restart (a new Authenticator, empty cache) no scrypt runs."""
    store = MemoryStore()
    secret = new_secret()
    store.put_device(Device("IMEI:2", "acme", auth.hash_secret(secret, cost=HASH_COST), b"k"))
    first = auth.Authenticator(store, cost=HASH_COST)
    assert _run(first, _basic("IMEI:2", secret)) == auth.Principal("device", "IMEI:2", "acme")
    device = store.get_device("IMEI:2")
    assert device is not None and auth.is_cheap(device.secret_hash)
    restarted = auth.Authenticator(store, cost=HASH_COST)
    restarted._dummy_hash()  # made once per process, not per login
    scrypt_calls.clear()
    assert _run(restarted, _basic("IMEI:2", secret)) is not None
    assert _run(restarted, _basic("IMEI:2", secret + "x")) is None  # a failure still costs one
    assert len(scrypt_calls) == 1


# 7. Lockout that an attacker cannot hold ------------------------------------------------
def _clocked(**kwargs: Any) -> tuple[auth.Throttle, Callable[[float], None]]:
    now = [1000.0]

    def advance(seconds: float) -> None:
        now[0] += seconds

    return auth.Throttle(clock=lambda: now[0], **kwargs), advance


def test_failures_count_per_name_and_address_with_backoff() -> None:
    throttle, advance = _clocked()
    for _ in range(auth.FREE_FAILURES):
        throttle.failed(("acme",), "10.0.0.66")
    throttle.check(("acme",), "10.0.0.66")  # the free allowance
    waits = []
    for _ in range(4):
        throttle.failed(("acme",), "10.0.0.66")
        with pytest.raises(auth.LockedOut) as locked:
            throttle.check(("acme",), "10.0.0.66")
        waits.append(locked.value.retry_after)
        advance(locked.value.retry_after)
    assert waits == [2.0, 4.0, 8.0, 16.0]
    throttle.check(("acme",), "10.0.0.7")  # the party elsewhere is not locked out
    throttle.failed(("acme",), "10.0.0.66")
    with pytest.raises(auth.LockedOut):
        throttle.check(("acme",), "10.0.0.66")


def test_a_name_ceiling_withholds_only_the_expensive_check() -> None:
    throttle, advance = _clocked()
    for n in range(auth.NAME_CEILING):  # a guesser with many addresses
        throttle.failed(("IMEI:1",), f"10.1.{n // 250}.{n % 250}")
    with pytest.raises(auth.LockedOut):
        throttle.check(("IMEI:1",), "10.0.0.7")
    throttle.check(("IMEI:1",), "10.0.0.7", proven=True)
    advance(auth.LOCKOUT + 1)
    throttle.check(("IMEI:1",), "10.0.0.7")


def test_the_throttle_tables_are_bounded() -> None:
    throttle, _ = _clocked(max_tracked=100)
    for n in range(5_000):
        throttle.failed((f"name-{n}",), f"10.2.{n // 250}.{n % 250}")
    assert len(throttle) <= 200


def test_an_attacker_failing_on_purpose_cannot_hold_a_device(lab, register, clients) -> None:
    """Wrong secrets for a device's name, far past every threshold, from the same
    address as the device (loopback): the device still finishes its active session
    and receives its notifications."""
    phone = register(attach=False)
    queue(lab, phone.dev_id, commands=[["GET", f"{DEVINFO}//DevInfo/FwV"], ["END"]])
    device = clients.of(phone)
    active = commands(device.post("/sessions/next"))

    attacker = clients.device(phone.dev_id, "wrong-secret")
    answers = {attacker.get("/sessions/pending").status_code for _ in range(auth.NAME_CEILING + 5)}
    assert answers == {401, 429}

    end = put_status(device, active["SessionID"], [{"sc": 200, "Data": "1.0.0"}])
    assert end.status_code == 204 and end.headers["OMADM-Result"] == "OK"
    queue(lab, phone.dev_id, job="inventory", notify=True)
    polled = device.get("/notifications", params={"wait": 5})
    assert polled.status_code == 200 and polled.content
    problem(attacker.get("/sessions/pending"), 429, "too-many-attempts")


def test_an_account_locked_for_one_address_is_not_locked_for_another(lab) -> None:
    name = new_name("operator")
    lab.add_account(name, "right")
    throttle = lab.services.auth.throttle
    for _ in range(auth.FREE_FAILURES + 1):
        throttle.failed((name,), "10.9.9.9")
    principal = anyio.run(lab.services.auth.authenticate, _basic(name, "right"), "127.0.0.1")
    assert principal == auth.Principal("account", name, name)


# 2. A bounded trace ------------------------------------------------------------------------
def test_trace_fields_are_cut_and_marked() -> None:
    trace = Trace()
    kept = trace.record(
        source="device", method="GET", path="/" + "p" * 15_000, status=404, request="r" * 250_000
    )
    assert kept.path.startswith("/ppp") and kept.path.endswith(f"…[cut {15_001 - MAX_PATH}]")
    assert len(kept.path) < MAX_PATH + 20 and len(kept.request) < MAX_FIELD + 20
    assert trace.record(source="device", method="GET", path="/short", status=200).path == "/short"


def test_trace_bytes_are_capped_in_memory_and_in_the_sink(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "t.sqlite3") as store:
        trace = Trace(sink=store, max_bytes=200_000)
        for n in range(1_000):
            trace.record(source="device", method="PUT", path=f"/{n}", status=200, request="x" * 900)
        assert 100 < len(trace) < 200
        assert list(trace)[-1].path == "/999"  # the newest stay
        (rows,) = store._one("SELECT count(*) FROM trace", ())  # type: ignore[misc]
        assert rows == len(trace)


def test_unauthenticated_exchanges_are_sampled_not_kept(fresh_lab) -> None:
    before = fresh_lab.trace.last_seq
    with httpx.Client(base_url=fresh_lab.url, verify=fresh_lab.ca.client_context()) as anon:
        for n in range(120):
            assert anon.get(f"/{n}-" + "a" * 15_000).status_code == 404
        assert anon.get("/sessions/pending", auth=("nobody", "x")).status_code == 401
    kept = fresh_lab.trace.since(before)
    assert len(kept) <= ANON_BURST + 2
    assert sum(fresh_lab.trace.unrecorded.values()) == 121 - len(kept)
    assert all(len(e.path) < MAX_PATH + 20 for e in kept)
    # Authenticated exchanges are all kept.
    fresh_lab.operator.devices()
    assert fresh_lab.trace.since(before)[-1].path == "/devices"


def test_a_corrupt_trace_row_is_skipped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, every_log_line: None
) -> None:
    path = tmp_path / "t.sqlite3"
    with SQLiteStore(path) as store:
        trace = Trace(sink=store)
        for n in range(4):
            trace.record(source="device", method="GET", path=f"/{n}", status=200)
    raw = sqlite3.connect(path)
    raw.execute("UPDATE trace SET path = CAST(x'ff' AS TEXT) WHERE seq = 2")
    raw.execute("UPDATE trace SET status = 'abc' WHERE seq = 3")
    raw.commit()
    raw.close()
    with SQLiteStore(path) as store:
        reloaded = Trace(sink=store)
        assert [e.path for e in reloaded] == ["/0", "/3"]
        assert reloaded.record(source="x", method="GET", path="/", status=200).seq == 5
    warnings = [r for r in caplog.records if "unreadable trace row" in r.getMessage()]
    assert len(warnings) == 1 and "skipped 2" in warnings[0].getMessage()
