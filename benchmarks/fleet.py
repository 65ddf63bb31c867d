"""A fleet of virtual devices in one process: server-initiated sessions, no sockets.

Why in process: a class or a workshop wants to watch thousands of devices on a
laptop. Devices reach the app through ``httpx.ASGITransport`` in the same
asyncio loop; the server queues one session per device with ``notify=True``,
the Notifier's in-process listener schedules ``device.on_notification(package)``
as a task, and each device verifies the notification, runs its commands and
reports its statuses (flow 1 of the CR, end to end).

Devices are registered directly in the store with the salted SHA-256 verifier
the server itself gives a registered device (``Authenticator.device_verifier``),
so their first login costs microseconds on the event loop; the account's password
gets a *cheap* scrypt cost (``n=2, r=1, p=1``). Idle memory per device is the RSS growth
from creating N idle devices, divided by N.

    .venv/bin/python benchmarks/fleet.py                   # 1,000 then 10,000 devices
    .venv/bin/python benchmarks/fleet.py --devices 5
    .venv/bin/python benchmarks/fleet.py --devices 1000 --own-clients   # one client per device
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import os
import resource
import sys
import time
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dmlab.device import VirtualDevice
from dmlab.protocol.notification import notification_key
from dmlab.server import build_services, create_app
from dmlab.store import Account, Device, JobSpec, Origin, State, Store

ACCOUNT = "fleet"
SERVER_URL = "https://dmlab.fleet"  # never resolved: ASGITransport calls the app directly
#: The cheapest scrypt hashlib accepts; fine for a benchmark, never for a real server.
CHEAP_HASH = {"n": 2, "r": 1, "p": 1}


def rss_kib() -> int:
    """Resident set size now (VmRSS), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def count_completed(store: Store) -> int:
    """The account's completed sessions, counted a page at a time as the server lists
    them: the memory store reads each completed session back from compact text, and
    100,000 of them at once would be the run's peak."""
    count, after = 0, 0
    while True:
        page = store.sessions_page(State.COMPLETED, account=ACCOUNT, after=after, limit=1000)
        count += len(page.items)
        if page.after is None:
            return count
        after = page.after


class _GcTimer:
    """Collections by generation, and the seconds they took, while installed."""

    def __init__(self) -> None:
        self.runs = [0, 0, 0]
        self.seconds = 0.0
        self._began = 0.0

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.runs[info["generation"]] += 1
            self.seconds += time.perf_counter() - self._began


def _gc_timer() -> _GcTimer:
    timer = _GcTimer()
    gc.callbacks.append(timer.callback)
    return timer


async def run_fleet(n: int, own_clients: bool) -> dict[str, Any]:
    services = build_services(server_id="dmlab", hash_cost=CHEAP_HASH)
    services.store.put_account(Account(ACCOUNT, services.auth.hash("password")))
    transport = httpx.ASGITransport(app=create_app(services))
    shared = httpx.AsyncClient(transport=transport, timeout=60.0)
    secrets = [f"fleet-secret-{i:06d}" for i in range(n)]
    records = []
    for i, secret in enumerate(secrets):
        record = Device(
            dev_id=f"IMEI:{350000000000000 + i}",
            account=ACCOUNT,
            secret_hash=services.auth.device_verifier(secret),
            notify_key=notification_key(secret),
        )
        services.store.put_device(record)
        records.append(record)

    gc.collect()
    before = rss_kib()
    fleet = [
        VirtualDevice(
            r.dev_id,
            s,
            SERVER_URL,
            server_id="dmlab",
            **({"transport": transport} if own_clients else {"client": shared}),
        )
        for r, s in zip(records, secrets, strict=False)
    ]
    gc.collect()
    idle = rss_kib() - before

    loop = asyncio.get_running_loop()
    # A task is kept until it ends, then only what it gave is counted: 100,000 ended
    # tasks (each holding its coroutine and result) were about 0.7 KiB a device.
    tasks: set[asyncio.Task[Any]] = set()
    failed: list[Any] = []
    ended = loop.create_future()

    def on_end(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if task.cancelled() or task.exception() is not None:
            if not ended.done():
                ended.set_exception(task.exception() or asyncio.CancelledError())
            return
        run = task.result()
        if run is None or run.result != "OK":
            failed.append(run)
        if not tasks and not ended.done():
            ended.set_result(None)

    def on_package(device: VirtualDevice, package: bytes) -> None:
        task = loop.create_task(device.on_notification(package))
        tasks.add(task)
        task.add_done_callback(on_end)

    for device in fleet:
        services.notifier.listen(device.dev_id, functools.partial(on_package, device))

    # What is built before the timed part (the fleet, its trees, the store's devices)
    # lives as long as the run: frozen, the collector stops walking it on every full
    # collection (gc.freeze, as a server that built a fleet at start would do).
    gc.collect()
    gc.freeze()
    collections = _gc_timer()
    start = time.perf_counter()
    for record in records:
        services.engine.queue(record, JobSpec("inventory"), Origin.SERVER, notify=True)
    if tasks:
        await ended
    seconds = time.perf_counter() - start
    gc.callbacks.remove(collections.callback)
    gc.unfreeze()

    completed = count_completed(services.store)
    if failed or completed != n:
        raise RuntimeError(f"{len(failed)} sessions failed, {completed} of {n} completed")
    for device in fleet:
        await device.aclose()
    await shared.aclose()
    return {
        "seconds": seconds,
        "idle_kib": idle,
        "peak_kib": peak_rss_kib(),
        "gc_seconds": collections.seconds,
        "gc_runs": collections.runs,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--devices",
        type=int,
        nargs="+",
        default=[1000, 10000],
        help="fleet sizes, run one after another (default 1000 10000)",
    )
    parser.add_argument(
        "--own-clients",
        action="store_true",
        help="one httpx.AsyncClient per device instead of one shared client",
    )
    args = parser.parse_args(argv)
    clients = "one client per device" if args.own_clients else "one shared client"
    print(f"in-process fleet: httpx.ASGITransport, {clients}, scrypt cost {CHEAP_HASH} (cheap)")
    for n in args.devices:
        figures = asyncio.run(run_fleet(n, args.own_clients))
        print(
            f"devices {n:>6}   wall {figures['seconds']:7.2f} s   "
            f"sessions/s {n / figures['seconds']:8.1f}   "
            f"idle RSS/device {figures['idle_kib'] * 1024 / n / 1024:6.2f} KiB   "
            f"peak RSS {figures['peak_kib'] / 1024:7.1f} MiB (process so far)   "
            f"gc {figures['gc_seconds']:5.1f} s ({'/'.join(map(str, figures['gc_runs']))})"
        )


if __name__ == "__main__":
    main()
