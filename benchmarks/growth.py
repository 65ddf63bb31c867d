"""Request times as the store grows: does a year of history slow every session down?

Why: a lab server left running (``make serve`` with SQLite) keeps every completed
session. Listing pending work and starting a session must not scan that
history, so their times should stay flat from 1,000 to 100,000 completed
sessions (target: largest/smallest ≤ 1.5 at 100x the data).

The store is filled directly with completed sessions (one inventory round each)
spread over 10,000 devices of one account; requests go through the ASGI app in
process (``httpx.ASGITransport``). Each figure is the median of many requests:

- ``GET /sessions/pending`` as a device (its own pending sessions),
- ``POST /sessions/next`` as a device with one pending session (queued untimed),
- ``GET /sessions/pending`` as the account (all 10,000 devices'; a quarter of the samples).

    .venv/bin/python benchmarks/growth.py                        # memory and SQLite
    .venv/bin/python benchmarks/growth.py --sizes 100 1000 --devices 50 --stores memory
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dmlab.protocol import Command, Status
from dmlab.protocol.notification import notification_key
from dmlab.server import Services, build_services, create_app
from dmlab.store import (
    Account,
    Device,
    JobSpec,
    MemoryStore,
    Origin,
    Result,
    Round,
    Session,
    SQLiteStore,
    State,
    Store,
)

ACCOUNT, PASSWORD = "growth", "growth-password"
SERVER_URL = "https://dmlab.growth"
CHEAP_HASH = {"n": 2, "r": 1, "p": 1}  # 10,000 devices at the real cost would take minutes
COMMANDS = (
    Command.of("GET", "urn:oma:mo:oma-dm-devinfo:1.0//"),
    Command.of("GET", "urn:oma:mo:oma-fumo:1.0/*/State"),
    Command.of("END"),
)
STATUSES = (
    Status(200, data={"DevInfo": {"DevID": "IMEI:0", "FwV": "1.0.0", "Man": "dmlab"}}),
    Status(200, data={"fw1": {"State": 10}}),
)
BATCH = 2000  # completed sessions written per transaction while filling


def dev_id(i: int) -> str:
    return f"IMEI:{360000000000000 + i}"


def secret(i: int) -> str:
    return f"growth-secret-{i:06d}"


def fill(store: Store, start: int, stop: int, devices: int) -> None:
    """Completed sessions ``start`` … ``stop - 1``, round-robin over the devices."""
    now = time.time()
    for first in range(start, stop, BATCH):
        with store.transaction():
            for n in range(first, min(first + BATCH, stop)):
                key = f"done{n:012x}"
                store.put_session(
                    Session(
                        key=key,
                        dev_id=dev_id(n % devices),
                        account=ACCOUNT,
                        job=JobSpec("inventory"),
                        origin=Origin.SERVER,
                        state=State.COMPLETED,
                        result=Result.OK,
                        session_id=key,
                        rounds=(Round(key, COMMANDS, STATUSES),),
                        created_at=now,
                        started_at=now,
                        ended_at=now,
                    )
                )


async def median_ms(samples: int, call: Callable[[int], Awaitable[float]]) -> float:
    return statistics.median([await call(i) for i in range(samples)]) * 1000


async def measure(
    services: Services, client: httpx.AsyncClient, devices: int, samples: int
) -> dict[str, float]:
    step = max(devices // samples, 1)
    records = {i: services.store.get_device(dev_id(i)) for i in range(0, devices, step)}
    picks = list(records)

    async def timed(request: Callable[[], Awaitable[httpx.Response]], status: int) -> float:
        start = time.perf_counter()
        response = await request()
        elapsed = time.perf_counter() - start
        if response.status_code != status:
            raise RuntimeError(f"expected {status}, got {response.status_code}: {response.text}")
        return elapsed

    def as_device(i: int) -> dict[str, Any]:
        return {"auth": (dev_id(i), secret(i)), "headers": {"OMADM-DevID": dev_id(i)}}

    async def device_pending(n: int) -> float:
        i = picks[n % len(picks)]
        return await timed(lambda: client.get("/sessions/pending", **as_device(i)), 200)

    async def start_next(n: int) -> float:
        i = picks[n % len(picks)]
        record = records[i]
        assert record is not None
        services.engine.queue(record, JobSpec("inventory"), Origin.SERVER, notify=False)
        return await timed(lambda: client.post("/sessions/next", **as_device(i)), 200)

    async def account_pending(n: int) -> float:
        return await timed(lambda: client.get("/sessions/pending", auth=(ACCOUNT, PASSWORD)), 200)

    # Warm-up: the authenticator's cache and the code paths, as a running server has them.
    for n in range(len(picks)):
        await device_pending(n)
    await account_pending(0)
    return {
        "device GET /sessions/pending": await median_ms(samples, device_pending),
        "device POST /sessions/next": await median_ms(samples, start_next),
        "account GET /sessions/pending": await median_ms(max(samples // 4, 3), account_pending),
    }


async def grow(
    kind: str, sizes: list[int], devices: int, samples: int, directory: str
) -> dict[int, dict[str, float]]:
    store: Store = (
        MemoryStore()
        if kind == "memory"
        else SQLiteStore(os.path.join(directory, "growth.sqlite3"))
    )
    services = build_services(store=store, hash_cost=CHEAP_HASH)
    services.store.put_account(Account(ACCOUNT, services.auth.hash(PASSWORD)))
    with store.transaction():
        for i in range(devices):
            store.put_device(
                Device(
                    dev_id=dev_id(i),
                    account=ACCOUNT,
                    secret_hash=services.auth.hash(secret(i)),
                    notify_key=notification_key(secret(i)),
                )
            )
    results: dict[int, dict[str, float]] = {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)), base_url=SERVER_URL
    ) as client:
        filled = 0
        for size in sizes:
            fill(store, filled, size, devices)
            filled = size
            results[size] = await measure(services, client, devices, samples)
            figures = "   ".join(f"{name} {ms:7.3f} ms" for name, ms in results[size].items())
            print(f"{kind:<6} completed {size:>7}   {figures}", flush=True)
    if isinstance(store, SQLiteStore):
        store.close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1000, 10000, 100000],
        help="completed sessions in the store, growing (default 1000 10000 100000)",
    )
    parser.add_argument("--devices", type=int, default=10000, help="devices (default 10000)")
    parser.add_argument(
        "--samples",
        type=int,
        default=200,
        help="requests per figure; the account listing takes a quarter (default 200)",
    )
    parser.add_argument(
        "--stores", nargs="+", choices=["memory", "sqlite"], default=["memory", "sqlite"]
    )
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes)
    print(f"median request time through the ASGI app; {args.devices} devices, one account")
    with tempfile.TemporaryDirectory(prefix="dmlab-growth-") as directory:
        for kind in args.stores:
            results = asyncio.run(grow(kind, sizes, args.devices, args.samples, directory))
            small, large = results[sizes[0]], results[sizes[-1]]
            for name in small:
                print(
                    f"{kind:<6} ratio {name}: {large[name] / small[name]:.2f} "
                    f"({sizes[-1]} vs {sizes[0]} completed)   target <= 1.5"
                )


if __name__ == "__main__":
    main()
