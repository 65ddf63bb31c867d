"""What one device request costs the store (issue 15: CPU per session on the request path).

``POST /alert`` reads the calling device once (authentication reads it; the route uses
that record) and records the alerts and starts the session in one transaction, without
savepoints inside it, so both are kept or neither."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx

from dmlab.protocol import AlertType, media
from dmlab.server import build_services, create_app
from dmlab.store import (
    Account,
    Device,
    JobSpec,
    MemoryStore,
    Origin,
    SQLiteStore,
    State,
    StorageFault,
)

from helpers import HASH_COST

DEV_ID, SECRET = "IMEI:490154200000001", "a-device-secret"
ALERT = {"Alert": [{"AlertType": AlertType.CLIENT_INITIATED}]}
HEADERS = {"Content-Type": media.DM20_INITIATION, media.DEVID_HEADER: DEV_ID}


class Counting(MemoryStore):
    """A memory store that counts device reads, and transactions: outermost ones, and
    every level (an inner one is a savepoint on the SQL stores)."""

    def __init__(self) -> None:
        super().__init__()
        self.device_reads = self.transactions = self.levels = self._depth = 0

    def get_device(self, dev_id: str) -> Device | None:
        self.device_reads += 1
        return super().get_device(dev_id)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.transactions += self._depth == 0
        self.levels += 1
        self._depth += 1
        try:
            with super().transaction():
                yield
        finally:
            self._depth -= 1


class FailingAlerts(SQLiteStore):
    """A SQLite store whose disk gives out as an alert is written."""

    def add_alert(self, record: Any) -> None:
        raise StorageFault("full", "the disk is full")


def _lab(store: Any) -> tuple[Any, Any]:
    svc = build_services(store=store, hash_cost=HASH_COST)
    store.put_account(Account("acme", svc.auth.hash("pw")))
    store.put_device(Device(DEV_ID, "acme", svc.auth.hash(SECRET), b"k" * 32))
    device = store.get_device(DEV_ID)
    svc.engine.queue(device, JobSpec("inventory"), Origin.SERVER, notify=False)
    return svc, create_app(svc)


def _alerts(app: Any, count: int) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://dmlab.test") as http:
            return [
                await http.post("/alert", json=ALERT, headers=HEADERS, auth=(DEV_ID, SECRET))
                for _ in range(count)
            ]

    return anyio.run(go)


def test_an_alert_reads_the_device_once_in_one_transaction():
    store = Counting()
    svc, app = _lab(store)
    _alerts(app, 1)  # the first login checks the secret the slow way (scrypt)
    svc.engine.queue(store.get_device(DEV_ID), JobSpec("inventory"), Origin.SERVER, notify=False)
    store.device_reads = store.transactions = store.levels = 0
    (answer,) = _alerts(app, 1)
    assert answer.status_code == 200, answer.text
    assert store.device_reads == 1
    assert store.transactions == 1  # the alert recorded and the session started together
    assert store.levels == 1  # and no savepoint inside it
    session = store.session_by_id(answer.json()["SessionID"])
    assert session is not None and session.state is State.ACTIVE
    assert [r.session_key for r in store.alerts_of(DEV_ID)][-1] == session.key


def test_an_alert_that_cannot_be_recorded_starts_no_session(tmp_path: Path):
    store = FailingAlerts(tmp_path / "dmlab.sqlite3")
    try:
        _svc, app = _lab(store)
        (answer,) = _alerts(app, 1)
        assert answer.status_code == 503
        # Kept or lost together: the session it would have started is still pending.
        assert [s.state for s in store.sessions_of_device(DEV_ID, State.ACTIVE)] == []
        assert len(store.sessions_of_device(DEV_ID, State.PENDING)) == 1
    finally:
        store.close()
