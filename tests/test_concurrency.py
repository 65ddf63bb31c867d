"""Hundreds of devices at once: every queued session is completed exactly once,
none is lost, none is started twice, and no device ever sees another's session.

Each device has ``K`` pending sessions (one of them a two-round firmware update).
Two copies of the device (same DevID and secret, as after a reboot mid-session)
race through ``POST /sessions/next`` at the same time, and for every fifth device
two raw ``POST /sessions/id/{id}`` race for the same pending session as well.
The big run goes through the ASGI app in process (memory and SQLite stores);
a smaller one goes over real HTTPS to a lab's uvicorn server.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from dmlab import Lab
from dmlab.choices import Choices
from dmlab.device import SessionFailed, SessionRun, VirtualDevice
from dmlab.events import Event
from dmlab.protocol import media
from dmlab.server import Services, build_services, create_app
from dmlab.store import MemoryStore, State
from dmlab.store.sqlite import SQLiteStore

from helpers import HASH_COST

K = 3
#: Two live copies of one device would each be handed the other's session in progress
#: under session-resume=next (the server cannot tell a copy from a device that lost its
#: place): these races are about starting pending sessions, so no resuming here.
CHOICES = {"session-resume": "none"}
JOBS: list[dict[str, Any]] = [
    {"job": "inventory"},
    {"job": "firmware-update", "params": {"version": "2.0.0"}},
    {"CMD": [["GET", "urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/DevID"]]},
]
ACCOUNTS = [("alpha", "alpha-pw"), ("beta", "beta-pw")]


@dataclass
class Outcome:
    queued: dict[str, list[str]] = field(default_factory=dict)  # dev_id -> session keys
    runs: dict[str, list[SessionRun]] = field(default_factory=dict)  # dev_id -> runs of both copies
    raced: dict[str, list[int]] = field(default_factory=dict)  # dev_id -> raw start statuses
    raw_ids: dict[str, list[str]] = field(default_factory=dict)  # ids the raw racers got


async def fleet(client: httpx.AsyncClient, base: str, n: int) -> Outcome:
    """Register ``n`` devices (split over two accounts), queue ``K`` sessions each, then
    run every device at once; returns what was queued and what each device saw."""
    out = Outcome()

    async def register(i: int) -> tuple[str, str, tuple[str, str]]:
        account = ACCOUNTS[i % len(ACCOUNTS)]
        dev_id = f"IMEI:{350000000000000 + i}"
        answer = await client.post(
            f"{base}/devices/new",
            json={"devId": dev_id},
            auth=account,
            headers={"Accept": media.JSON},
        )
        assert answer.status_code == 201, answer.text
        keys = []
        for body in JOBS[:K]:
            queued = await client.post(
                f"{base}/devices/{dev_id}/sessions",
                json={**body, "notify": False},
                auth=account,
                headers={"Accept": media.JSON},
            )
            assert queued.status_code == 202, queued.text
            keys.append(queued.json()["SessionID"])
        out.queued[dev_id] = keys
        return dev_id, answer.json()["secret"], account

    registered = await asyncio.gather(*(register(i) for i in range(n)))

    async def drain(device: VirtualDevice) -> list[SessionRun]:
        runs = []
        while True:
            try:
                run = await device.start_next()
            except SessionFailed as failed:
                # A copy may lose a race for a session the raw racer took: never silently.
                raise AssertionError(f"{device.dev_id}: {failed}") from None
            if run is None:
                return runs
            runs.append(run)

    async def race(dev_id: str, secret: str, session_id: str) -> dict[str, Any] | None:
        """Two starts of one pending session at once: one may win, never both."""
        headers = {media.DEVID_HEADER: dev_id, "Accept": media.COMMANDS}
        answers = await asyncio.gather(
            *(
                client.post(
                    f"{base}/sessions/id/{session_id}", auth=(dev_id, secret), headers=headers
                )
                for _ in range(2)
            )
        )
        out.raced[dev_id] = sorted(a.status_code for a in answers)
        won = [a.json() for a in answers if a.status_code == 200]
        return won[0] if won else None

    async def finish(dev_id: str, secret: str, package: dict[str, Any] | None) -> None:
        if package is None:
            return
        out.raw_ids.setdefault(dev_id, []).append(package["SessionID"])
        due = sum(1 for c in package["CMD"] if c[0] != "END")
        end = await client.put(
            f"{base}/sessions/id/{package['SessionID']}",
            auth=(dev_id, secret),
            headers={media.DEVID_HEADER: dev_id, "Content-Type": media.DM20_RESPONSE},
            content=json.dumps({"Status": [{"sc": 200}] * due}),
        )
        # the raced session is the inventory: one round, then the end
        assert end.status_code == 204, end.text

    async def run_device(i: int, dev_id: str, secret: str) -> None:
        copies = [VirtualDevice(dev_id, secret, base, client=client) for _ in range(2)]
        # Every fifth device: two raw starts race for its oldest session first, then the
        # winner reports while both copies race through the rest with /sessions/next.
        won = await race(dev_id, secret, out.queued[dev_id][0]) if i % 5 == 0 else None
        _, *results = await asyncio.gather(
            finish(dev_id, secret, won), *(drain(copy) for copy in copies)
        )
        for copy in copies:
            await copy.settle()
            await copy.aclose()
        out.runs[dev_id] = [run for runs in results for run in runs]

    await asyncio.gather(*(run_device(i, d, s) for i, (d, s, _) in enumerate(registered)))
    return out


def check(services: Services, out: Outcome, started: Counter[str] | None) -> None:
    """``started``: how often each session was started, from the events (``None``
    where they stayed in other processes; the counts of runs then say it)."""
    store = services.store
    all_keys = [k for keys in out.queued.values() for k in keys]
    assert len(all_keys) == len(set(all_keys)) == K * len(out.queued)
    for account, _ in ACCOUNTS:
        assert store.sessions_of_account(account, State.PENDING) == []
        assert store.sessions_of_account(account, State.ACTIVE) == []
    completed_keys = []
    for dev_id, keys in out.queued.items():
        mine = store.sessions_of_device(dev_id, State.COMPLETED)
        completed_keys += [s.key for s in mine]
        assert sorted(s.key for s in mine) == sorted(keys), dev_id
        assert {s.result.value for s in mine if s.result} == {"OK"}, [s.brief() for s in mine]
        own_ids = {i for s in mine for i in s.ids}
        seen = [i for run in out.runs[dev_id] for i in run.ids] + out.raw_ids.get(dev_id, [])
        assert set(seen) <= own_ids, f"{dev_id} saw ids of another device"
        # every session was run once, by one copy or by the raw racer
        assert len(out.runs[dev_id]) + len(out.raw_ids.get(dev_id, [])) == K
        if dev_id in out.raced:
            assert out.raced[dev_id] == [200, 409], out.raced[dev_id]
    assert sorted(completed_keys) == sorted(all_keys)
    if started is None:
        return
    assert all(started[k] == 1 for k in all_keys), [k for k in all_keys if started[k] != 1]
    assert set(started) == set(all_keys)


def in_process(services: Services, n: int) -> tuple[Outcome, Counter[str]]:
    started: Counter[str] = Counter()

    def count(event: Event) -> None:
        if event.kind == "session.started":
            started[event.data["key"]] += 1

    services.events.subscribe(count)
    for account in ACCOUNTS:
        services.add_account(*account)
    app = create_app(services)

    async def main() -> Outcome:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, timeout=60) as client:
            return await fleet(client, "https://dmlab.test", n)

    return asyncio.run(main()), started


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_two_hundred_devices_in_process(backend: str, tmp_path: Path) -> None:
    store = MemoryStore() if backend == "memory" else SQLiteStore(tmp_path / "c.sqlite3")
    try:
        services = build_services(store=store, hash_cost=HASH_COST, choices=Choices(CHOICES))
        out, started = in_process(services, 200)
        check(services, out, started)
        assert len(out.raced) == 40
    finally:
        if isinstance(store, SQLiteStore):
            store.close()


def test_many_devices_over_https() -> None:
    with Lab(hash_cost=HASH_COST, choices=CHOICES) as lab:
        started: Counter[str] = Counter()

        def count(event: Event) -> None:
            if event.kind == "session.started":
                started[event.data["key"]] += 1

        lab.events.subscribe(count)
        for account in ACCOUNTS:
            lab.add_account(*account)

        async def main() -> Outcome:
            async with httpx.AsyncClient(
                verify=lab.ca.client_context(), timeout=60, limits=httpx.Limits(max_connections=50)
            ) as client:
                return await fleet(client, lab.url, 40)

        out = lab.run(main(), timeout=120)
        check(lab.services, out, started)
