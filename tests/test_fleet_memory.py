"""What a fleet costs per device: 100,000 virtual devices in one process must fit in
1 GiB with the server's records of their sessions (issue 15, ``benchmarks/fleet.py``).
The memory store's share: tests/test_store.py."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc

import httpx
import pytest

from dmlab.core.jobs import next_step
from dmlab.device import VirtualDevice, client
from dmlab.protocol import ProtocolError, parse_commands
from dmlab.protocol.notification import (
    Notification,
    NotificationGuard,
    NotificationRejected,
    encode,
)
from dmlab.store import JobSpec
from dmlab.trace import Trace

#: Bytes an idle bare device may hold (its tree, executor, guard, client side),
#: measured with tracemalloc; one took 12 KiB before the standard objects were shared,
#: 4.9 KiB before its DevID and credentials stopped copying shared nodes (2.8 KiB).
IDLE_BUDGET = 4 * 1024


def test_an_idle_virtual_device_fits_the_fleet_budget() -> None:
    async def main() -> float:
        client = httpx.AsyncClient()
        VirtualDevice("IMEI:0", "warm", "https://dm.example", client=client)  # caches
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            fleet = [
                VirtualDevice(f"IMEI:{i}", f"secret-{i}", "https://dm.example", client=client)
                for i in range(1, 201)
            ]
            gc.collect()
            per_device = (tracemalloc.get_traced_memory()[0] - before) / len(fleet)
        finally:
            tracemalloc.stop()
        await client.aclose()
        return per_device

    per_device = asyncio.run(main())
    assert per_device < IDLE_BUDGET, f"{per_device:.0f} bytes per idle device"


def test_devices_without_readings_share_the_default_choices() -> None:
    async def main() -> bool:
        a = VirtualDevice("IMEI:1", "a", "https://dm.example")
        b = VirtualDevice("IMEI:2", "b", "https://dm.example")
        c = VirtualDevice("IMEI:3", "c", "https://dm.example", choices={"end-report": "none"})
        try:
            assert not c.report_end and a.report_end
            return a.choices is b.choices
        finally:
            for device in (a, b, c):
                await device.aclose()

    assert asyncio.run(main())


def test_inventory_sessions_share_one_package() -> None:
    """Every stored inventory session holds the same (immutable) commands, not a copy."""
    first = next_step(JobSpec("inventory"), (), "https://dm.example").commands
    again = next_step(JobSpec("inventory"), (), "https://dm.example").commands
    assert first is again and first is not None and [c.name for c in first][-1] == "END"


#: Bytes a notification guard may hold once it accepted one notification (tracemalloc);
#: with an instance dict and an OrderedDict it held 971 bytes, now 746.
GUARD_BUDGET = 850


def test_a_guard_that_accepted_a_notification_fits_its_budget() -> None:
    secret = b"k" * 32
    now = 1_700_000_000
    package = encode(Notification(server_id="srv", notification_id=7, timestamp=now), secret)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        guards = [NotificationGuard("srv", secret, clock=lambda: now) for _ in range(100)]
        for guard in guards:
            guard.check(package)
        per_guard = (tracemalloc.get_traced_memory()[0] - before) / len(guards)
    finally:
        tracemalloc.stop()
    assert per_guard < GUARD_BUDGET, f"{per_guard:.0f} bytes per guard"
    with pytest.raises(NotificationRejected, match="already accepted"):
        guards[0].check(package)


def test_devices_share_the_parsed_commands_of_one_package() -> None:
    cmd = [["GET", "urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/DevID"], ["END"]]
    first = client._parse_shared(json.loads(json.dumps(cmd)))
    again = client._parse_shared(json.loads(json.dumps(cmd)))
    assert first is again and first == parse_commands(cmd)
    # Anything but a small list of lists of strings is parsed as it comes, errors alike.
    large = [["GET", "urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/" + "x" * 5000], ["END"]]
    assert client._parse_shared(large) is not client._parse_shared(large)
    for bad in (["GET"], [["END"], ["GET", "x"]], {"GET": "x"}):
        with pytest.raises(ProtocolError) as shared:
            client._parse_shared(bad)
        with pytest.raises(ProtocolError) as plain:
            parse_commands(bad)
        assert str(shared.value) == str(plain.value)


def test_a_device_keeps_its_latest_runs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "RUNS_KEPT", 3)
    counter = iter(range(100))

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            return httpx.Response(204, headers={"OMADM-Result": "OK"})
        session = f"{next(counter):016d}"
        cmd = [["GET", "urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/DevID"], ["END"]]
        return httpx.Response(200, json={"SessionID": session, "CMD": cmd})

    async def main() -> list[str]:
        transport = httpx.MockTransport(answer)
        device = VirtualDevice("IMEI:1", "secret", "https://dm.example", transport=transport)
        try:
            for _ in range(5):
                await device.start_next(trigger="poll")
            return [run.ids[0] for run in device.runs]
        finally:
            await device.aclose()

    assert asyncio.run(main()) == [f"{i:016d}" for i in (2, 3, 4)]


def test_a_full_trace_shares_the_fields_that_repeat() -> None:
    """100,000 exchanges: a role, a method, a device, a path held once each."""
    trace = Trace()
    for _ in range(2):
        trace.record(
            source="".join(["dev", "ice"]),
            dev_id="".join(["IMEI:", "1"]),
            method="".join(["PO", "ST"]),
            path="".join(["/sessions/", "next"]),
            status=200,
        )
    first, again = list(trace)[-2:]
    for name in ("source", "target", "dev_id", "method", "path"):
        assert getattr(first, name) is getattr(again, name), name
