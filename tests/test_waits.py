"""Caps on concurrent waits (issue 10, "Waits that sleep"): long-polls per device
and per account, event streams per account, declared once in dmlab/caps.py.

Every wait here is ordered by the notifier's own count of waiting polls (or the
hub's of open streams), never by a sleep; ``DEADLINE`` only turns a bug into a
failure instead of a hang."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from dmlab import caps
from dmlab.caps import RETRY_AFTER, Caps, OverCap
from dmlab.events import EventBus
from dmlab.protocol import media
from dmlab.protocol.notification import notification_key
from dmlab.server import Services, build_services, create_app
from dmlab.server.openapi import build_document
from dmlab.server.routes.events import EventStreams, event_streams
from dmlab.store import Device

DEADLINE = 30.0
CHEAP = {"n": 2, "r": 1, "p": 1}
PHONES = [f"IMEI:49015420323751{n}" for n in range(4)]


def fleet(**values: int) -> Services:
    """A server with account ``demo`` and the devices ``PHONES`` (secret ``s3cret``)."""
    services = build_services(hash_cost=CHEAP, caps=Caps(**values))
    services.add_account("demo", "demo-password")
    for dev_id in PHONES:
        services.store.put_device(
            Device(dev_id, "demo", services.auth.hash("s3cret"), notification_key("s3cret"))
        )
    return services


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(DEADLINE):
        while not condition():
            await asyncio.sleep(0)


def client(services: Services) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(services))
    return httpx.AsyncClient(transport=transport, base_url="https://dmlab.test", timeout=DEADLINE)


async def poll(http: httpx.AsyncClient, dev_id: str, wait: float = 30) -> httpx.Response:
    return await http.get(
        "/notifications",
        params={"wait": wait},
        auth=(dev_id, "s3cret"),
        headers={media.DEVID_HEADER: dev_id},
    )


def test_a_devices_new_poll_ends_its_old_one_and_gets_the_notification() -> None:
    """The default: one waiting poll per device. A device whose connection died unseen
    polls again; the old poll answers 204 at once, the new one gets the delivery."""
    services = fleet()
    assert services.caps.polls_per_device == 1

    async def go() -> tuple[httpx.Response, httpx.Response]:
        async with client(services) as http:
            old = asyncio.create_task(poll(http, PHONES[0]))
            await until(lambda: services.notifier.waiting() == 1)
            new = asyncio.create_task(poll(http, PHONES[0]))
            async with asyncio.timeout(DEADLINE):  # not the 30 s the old poll asked for
                ended = await old
            await until(lambda: services.notifier.waiting() == 1)
            services.notifier.deliver(PHONES[0], b"package 0")
            async with asyncio.timeout(DEADLINE):
                return ended, await new

    ended, woken = asyncio.run(go())
    assert ended.status_code == 204
    assert woken.status_code == 200 and woken.content == b"package 0"
    assert services.notifier.waiting() == 0


def test_polls_of_one_account_over_its_cap_get_a_429_problem() -> None:
    services = fleet(polls_per_account=2)

    async def go() -> list[httpx.Response]:
        async with client(services) as http:
            waiting = [asyncio.create_task(poll(http, dev_id)) for dev_id in PHONES[:2]]
            await until(lambda: services.notifier.waiting() == 2)
            refused = await poll(http, PHONES[2])
            at_once = await poll(http, PHONES[2], wait=0)  # a poll that does not wait
            again = asyncio.create_task(poll(http, PHONES[1]))  # replaces its own: allowed
            await until(lambda: waiting[1].done())
            for dev_id in PHONES[:2]:
                services.notifier.deliver(dev_id, b"package 0")
            async with asyncio.timeout(DEADLINE):
                return [refused, at_once, *await asyncio.gather(*waiting, again)]

    refused, at_once, first, replaced, second = asyncio.run(go())
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(RETRY_AFTER)
    problem = refused.json()
    assert refused.headers["content-type"] == "application/problem+json"
    assert problem["type"].endswith("#problem-over-cap") and problem["status"] == 429
    assert "--polls-per-account" in problem["detail"]
    assert at_once.status_code == 204
    assert (first.status_code, replaced.status_code, second.status_code) == (200, 204, 200)
    assert services.notifier.waiting() == 0


def test_another_accounts_polls_do_not_count() -> None:
    services = fleet(polls_per_account=1)
    services.add_account("rival", "rival-password")
    services.store.put_device(
        Device("IMEI:356938035643809", "rival", services.auth.hash("s3cret"), b"k" * 32)
    )

    async def go() -> list[int]:
        async with client(services) as http:
            mine = asyncio.create_task(poll(http, PHONES[0]))
            await until(lambda: services.notifier.waiting() == 1)
            theirs = asyncio.create_task(poll(http, "IMEI:356938035643809"))
            await until(lambda: services.notifier.waiting() == 2)
            services.notifier.deliver(PHONES[0], b"a")
            services.notifier.deliver("IMEI:356938035643809", b"b")
            async with asyncio.timeout(DEADLINE):
                return [r.status_code for r in await asyncio.gather(mine, theirs)]

    assert asyncio.run(go()) == [200, 200]


def test_event_streams_of_one_account_over_its_cap_get_a_429_problem() -> None:
    services = fleet(streams_per_account=2)
    app = create_app(services)

    async def go() -> tuple[httpx.Response, int]:
        hub = event_streams(app)
        held = [hub.open("demo", None)[0] for _ in range(2)]  # two streams open
        other, _ = hub.open("rival", None)  # another account's do not count
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://dmlab.test") as h:
            refused = await h.get("/events", auth=("demo", "demo-password"))
        for subscription in (*held, other):
            hub.drop(subscription)
        return refused, hub.open_streams

    refused, left = asyncio.run(go())
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(RETRY_AFTER)
    assert refused.json()["type"].endswith("#problem-over-cap")
    assert "--streams-per-account" in refused.json()["detail"]
    assert left == 0


def test_a_refused_stream_is_not_counted() -> None:
    hub = EventStreams(EventBus(), caps=Caps(streams_per_account=1))

    async def go() -> int:
        first, _ = hub.open("demo", None)
        for _ in range(3):
            with pytest.raises(OverCap):
                hub.open("demo", None)
        hub.drop(first)
        hub.open("demo", None)  # the freed place can be taken again
        return hub.open_streams

    assert asyncio.run(go()) == 1


def test_the_default_caps_refuse_the_501st_poll_of_an_account() -> None:
    """Only the notifier, no HTTP: 500 polls of 500 devices wait, one more is refused."""
    services = build_services(hash_cost=CHEAP)
    notifier, cap = services.notifier, Caps().polls_per_account

    async def go() -> None:
        polls = [
            asyncio.create_task(notifier.wait(f"IMEI:{n}", 30, account="demo")) for n in range(cap)
        ]
        await until(lambda: notifier.waiting() == cap)
        with pytest.raises(OverCap):
            await notifier.wait("IMEI:extra", 30, account="demo")
        assert notifier.waiting() == cap
        for n in range(cap):
            notifier.deliver(f"IMEI:{n}", b"p")
        async with asyncio.timeout(DEADLINE):
            assert await asyncio.gather(*polls) == [b"p"] * cap

    asyncio.run(go())
    assert notifier.waiting() == 0


def test_openapi_documents_each_cap_from_its_declaration() -> None:
    document = build_document(create_app(build_services()).routes)
    polls = document["paths"]["/notifications"]["get"]["responses"]
    streams = document["paths"]["/events"]["get"]["responses"]
    assert caps.describe("polls_per_account") in polls["429"]["description"]
    assert caps.describe("polls_per_device") in polls["204"]["description"]
    assert caps.describe("streams_per_account") in streams["429"]["description"]
    assert "Retry-After" in polls["429"]["headers"] and "Retry-After" in streams["429"]["headers"]


def test_the_readme_table_of_caps_is_generated_from_the_declaration() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert caps.with_table(readme) == readme, "run: python -m dmlab.caps"


def test_serve_has_one_option_per_cap_and_refuses_zero() -> None:
    from dmlab.__main__ import _caps, build_parser

    args = build_parser().parse_args(
        ["serve", "--data", "x", "--polls-per-device", "3", "--streams-per-account", "4"]
    )
    assert _caps(args) == Caps(polls_per_device=3, streams_per_account=4)
    refused = subprocess.run(
        [sys.executable, "-m", "dmlab", "serve", "--data", "x", "--polls-per-account", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2
    assert "--polls-per-account: a whole number from 1 up, not '0'" in refused.stderr
