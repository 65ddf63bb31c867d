"""What waiting long-polls cost: ``GET /notifications?wait=30`` held open by many devices.

Why: a fleet behind NAT long-polls all day, so a waiting poll must cost nothing
while it waits. Each waiting poll sleeps until a delivery wakes it. The CPU
the process uses over a few seconds with N polls waiting is compared with the
same process idle, and with N coroutines that look into their mailbox every
50 ms (what the route did before: the baseline a timer-driven wait costs).
In process (httpx.ASGITransport, one asyncio loop): what is measured is the
app's waiting, not TLS or sockets. The polls are then woken by one delivery
each, to show they were really waiting.

    .venv/bin/python benchmarks/longpoll.py                  # 500 polls, 5 s windows
    .venv/bin/python benchmarks/longpoll.py --polls 20 --seconds 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dmlab.caps import Caps
from dmlab.protocol import media
from dmlab.protocol.notification import notification_key
from dmlab.server import Services, build_services, create_app
from dmlab.store import Account, Device

#: The cheapest scrypt hashlib accepts; fine for a benchmark, never for a real server.
CHEAP_HASH = {"n": 2, "r": 1, "p": 1}
#: The former route's poll interval, for the baseline.
OLD_INTERVAL = 0.05
#: Issue 10's target for waiting polls, in % of one core.
TARGET = 5.0


async def cpu_percent(seconds: float) -> float:
    """% of one core this process used over ``seconds`` while the loop runs what waits."""
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    return 100 * (time.process_time() - cpu) / (time.perf_counter() - wall)


def secret_of(dev_id: str) -> str:
    return "secret-" + dev_id.rsplit(":", 1)[-1]  # no colon: Basic auth splits at the last


async def poll(client: httpx.AsyncClient, dev_id: str) -> int:
    answer = await client.get(
        "/notifications",
        params={"wait": 30},
        auth=(dev_id, secret_of(dev_id)),
        headers={media.DEVID_HEADER: dev_id},
    )
    return answer.status_code


async def old_style_wait(services: Services, dev_id: str, stop: asyncio.Event) -> None:
    """The former long-poll loop: look, sleep 50 ms, look again."""
    while not stop.is_set():
        if services.notifier.take(dev_id) is not None:
            return
        await asyncio.sleep(OLD_INTERVAL)


async def measure(n: int, seconds: float) -> None:
    # All the devices belong to one account: its cap on waiting polls must let them in.
    caps = Caps(polls_per_account=max(n, Caps().polls_per_account))
    services = build_services(server_id="dmlab", hash_cost=CHEAP_HASH, caps=caps)
    services.store.put_account(Account("bench", services.auth.hash("bench-password")))
    devices = [f"IMEI:{350000000000000 + i}" for i in range(n)]
    for dev_id in devices:
        secret = secret_of(dev_id)
        services.store.put_device(
            Device(dev_id, "bench", services.auth.hash(secret), notification_key(secret))
        )
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(
        transport=transport, base_url="https://dmlab.bench", timeout=60
    ) as client:
        idle = await cpu_percent(seconds)

        polls = [asyncio.create_task(poll(client, dev_id)) for dev_id in devices]
        deadline = time.monotonic() + 30
        while services.notifier.waiting() < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {services.notifier.waiting()} of {n} polls waiting")
            await asyncio.sleep(0.05)
        waiting = await cpu_percent(seconds)
        still = services.notifier.waiting()

        woken_at = time.perf_counter()
        for dev_id in devices:
            services.notifier.deliver(dev_id, b"package 0")
        codes = await asyncio.gather(*polls)
        woken = time.perf_counter() - woken_at
        if still != n or codes != [200] * n:
            raise RuntimeError(f"{still} of {n} still waiting; answers {set(codes)}")

        stop = asyncio.Event()
        loops = [asyncio.create_task(old_style_wait(services, d, stop)) for d in devices]
        polling = await cpu_percent(seconds)
        stop.set()
        await asyncio.gather(*loops)

    cost = max(waiting - idle, 0.0)
    print(f"idle            {idle:6.2f} % of a core over {seconds:g} s")
    print(
        f"waiting {n:<6}  {waiting:6.2f} % of a core over {seconds:g} s"
        f" (over idle: {cost:.2f} %; target < {TARGET:g} %)"
    )
    print(
        f"polling {n:<6}  {polling:6.2f} % of a core over {seconds:g} s"
        f" (baseline: a {OLD_INTERVAL * 1000:g} ms poll loop per request)"
    )
    print(f"ratio waiting/polling {waiting / polling if polling else 0.0:.3f}")
    print(f"woken {n} polls by one delivery each in {woken:.3f} s, all answered 200")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=500, help="waiting long-polls (500)")
    parser.add_argument("--seconds", type=float, default=5.0, help="each measuring window (5)")
    args = parser.parse_args(argv)
    asyncio.run(measure(args.polls, args.seconds))


if __name__ == "__main__":
    main()
