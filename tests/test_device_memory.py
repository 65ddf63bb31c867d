"""What an idle virtual device costs: a fleet of 100,000 in one process must fit in
1 GiB with the server's records (issue 15, ``benchmarks/fleet.py``)."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import httpx

from dmlab.device import VirtualDevice

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
