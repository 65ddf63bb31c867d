"""What a fleet costs per device: 100,000 virtual devices in one process must fit in
1 GiB with the server's records of their sessions (issue 15, ``benchmarks/fleet.py``).
The memory store's share: tests/test_store.py."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import httpx

from dmlab.core.jobs import next_step
from dmlab.device import VirtualDevice
from dmlab.store import JobSpec

#: Bytes an idle bare device may hold (its tree, executor, guard, client side),
#: measured with tracemalloc; one took 12 KiB before the standard objects were shared.
IDLE_BUDGET = 7 * 1024


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
