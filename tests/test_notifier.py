"""Long-polls for notifications sleep until a delivery wakes them: no timer, no polling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dmlab.caps import Caps
from dmlab.events import EventBus
from dmlab.protocol import media
from dmlab.protocol.notification import notification_key
from dmlab.server import Services, build_services, create_app
from dmlab.server.notifier import Notifier
from dmlab.store import Device
from dmlab.trace import Trace

from helpers import asgi_get, hangs_up_on

PHONE = "IMEI:490154203237518"
#: Generous: these bound a wait that should end at once, only so a bug fails rather than hangs.
DEADLINE = 30.0


def notifier(**caps: int) -> Notifier:
    return Notifier("dmlab", Trace(), EventBus(), caps=Caps(**caps))


def phone_server() -> Services:
    """A server's services with one device, ``PHONE`` (secret ``s3cret``)."""
    services = build_services(hash_cost={"n": 2, "r": 1, "p": 1})
    services.store.put_device(
        Device(PHONE, "demo", services.auth.hash("s3cret"), notification_key("s3cret"))
    )
    return services


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition()`` holds (each turn runs what is ready)."""
    async with asyncio.timeout(DEADLINE):
        while not condition():
            await asyncio.sleep(0)


def test_a_waiting_poll_is_woken_by_a_delivery_from_another_thread() -> None:
    box = notifier()

    async def go() -> bytes | None:
        poll = asyncio.create_task(box.wait(PHONE, timeout=3600))
        await until(lambda: box.waiting() == 1)
        await asyncio.to_thread(box.deliver, PHONE, b"package 0")
        async with asyncio.timeout(DEADLINE):  # not the hour it asked for
            return await poll

    assert asyncio.run(go()) == b"package 0"
    assert box.waiting() == 0


def test_a_package_already_waiting_is_taken_at_once() -> None:
    box = notifier()
    box.deliver(PHONE, b"first")
    box.deliver(PHONE, b"second")
    assert asyncio.run(box.wait(PHONE, timeout=0)) == b"first"
    assert asyncio.run(box.wait(PHONE, timeout=3600)) == b"second"


def test_nothing_in_time_is_none_and_leaves_no_waiter() -> None:
    box = notifier()
    assert asyncio.run(box.wait(PHONE, timeout=0)) is None
    assert asyncio.run(box.wait(PHONE, timeout=0.01)) is None
    assert box.waiting() == 0


def test_one_package_goes_to_one_of_two_polls_the_other_waits_on() -> None:
    box = notifier(polls_per_device=2)  # the default, 1, would end the first poll

    async def go() -> list[bytes | None]:
        polls = [asyncio.create_task(box.wait(PHONE, timeout=3600)) for _ in range(2)]
        await until(lambda: box.waiting() == 2)
        box.deliver(PHONE, b"one")
        await until(lambda: any(p.done() for p in polls))
        await until(lambda: box.waiting() == 1)  # the other went back to sleep
        box.deliver(PHONE, b"two")
        async with asyncio.timeout(DEADLINE):
            return sorted(await asyncio.gather(*polls), key=str)

    assert asyncio.run(go()) == [b"one", b"two"]
    assert box.waiting() == 0


def test_other_devices_deliveries_do_not_wake_a_poll() -> None:
    box = notifier()

    async def go() -> bool:
        poll = asyncio.create_task(box.wait(PHONE, timeout=3600))
        await until(lambda: box.waiting() == 1)
        box.deliver("IMEI:356938035643809", b"not yours")
        for _ in range(10):  # ten loop turns: a woken poll would have returned
            await asyncio.sleep(0)
        done = poll.done()
        poll.cancel()
        return done

    assert asyncio.run(go()) is False
    assert box.waiting() == 0


def test_a_long_poll_ends_when_the_client_hangs_up() -> None:
    """GET /notifications?wait=30: the client leaves after the poll began waiting."""
    services = phone_server()
    app = create_app(services)
    scope = asgi_get("/notifications", PHONE, "s3cret", query=b"wait=30", dev_id=PHONE)
    sent: list[dict[str, Any]] = []

    async def go() -> None:
        hung_up = asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        served = asyncio.create_task(app(scope, hangs_up_on(hung_up), send))
        await until(lambda: services.notifier.waiting() == 1 or served.done())
        hung_up.set()
        async with asyncio.timeout(DEADLINE):  # not the 30 s the poll asked for
            await served

    asyncio.run(go())
    assert services.notifier.waiting() == 0
    assert sent[0]["status"] == 204


@pytest.mark.parametrize("wait", ["0", "0.01"])
def test_a_poll_with_nothing_to_take_answers_204(wait: str) -> None:
    services = phone_server()

    async def go() -> int:
        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="https://dmlab.test") as c:
            answer = await c.get(
                "/notifications",
                params={"wait": wait},
                auth=(PHONE, "s3cret"),
                headers={media.DEVID_HEADER: PHONE},
            )
            return answer.status_code

    assert asyncio.run(go()) == 204
    assert services.notifier.waiting() == 0
