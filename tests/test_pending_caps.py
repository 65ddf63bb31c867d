"""Caps on pending sessions (lab choice pending-caps, issue 10 finding 4): a device and an
account may have only so many sessions queued; the request over the cap gets a 429
problem with Retry-After, and nothing is queued."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from dmlab import Lab
from dmlab.caps import PENDING_RETRY_AFTER, Caps, OverCap
from dmlab.store import JobSpec, Origin

from helpers import ACCOUNT, HASH_COST, Clients, csrf_of, html, new_dev_id, problem

CAPS = Caps(pending_per_device=3, pending_per_account=5)


@pytest.fixture
def small() -> Iterator[Lab]:
    with Lab(hash_cost=HASH_COST, caps=CAPS) as lab:
        yield lab


def _queue(client: httpx.Client, dev_id: str, **body: object) -> httpx.Response:
    return client.post(f"/devices/{dev_id}/sessions", json={"job": "inventory", **body})


def _pending(lab: Lab) -> list[str]:
    return [s["SessionID"] for s in lab.operator.pending()]


def test_over_a_devices_cap_the_queueing_request_is_a_429_and_queues_nothing(
    small: Lab,
) -> None:
    clients = Clients(small)
    phone, tablet = new_dev_id(), new_dev_id()
    secret = small.operator.register(phone)["secret"]
    small.operator.register(tablet)
    operator = clients.account()
    try:
        for _ in range(CAPS.pending_per_device):
            assert _queue(operator, phone, notify=False).status_code == 202
        before = _pending(small)
        refused = _queue(operator, phone, notify=False)
        body = problem(refused, 429, "over-cap")
        assert refused.headers["retry-after"] == str(PENDING_RETRY_AFTER)
        assert phone in body["detail"] and "--pending-per-device" in body["detail"]
        assert _pending(small) == before  # nothing was queued
        # a person's browser is refused the same way, with a page that says why
        browser = clients.browser()
        token = csrf_of(html(browser.get(f"/devices/{phone}"), 200), "request-session")
        page = html(
            browser.post(f"/devices/{phone}/sessions", data={"job": "inventory", "csrf": token}),
            429,
        )
        assert "--pending-per-device" in page
        assert _pending(small) == before
        # once the device starts one, there is room for one more
        device = clients.device(phone, secret)
        assert device.post("/sessions/next").status_code == 200
        assert _queue(operator, phone, notify=False).status_code == 202
        assert _queue(operator, phone, notify=False).status_code == 429
        # the other device has its own cap, but the account's is shared
        assert _queue(operator, tablet, notify=False).status_code == 202
        assert _queue(operator, tablet, notify=False).status_code == 202  # 3 + 2 = 5
        over = _queue(operator, tablet, notify=False)
        body = problem(over, 429, "over-cap")
        assert ACCOUNT[0] in body["detail"] and "--pending-per-account" in body["detail"]
        assert len(_pending(small)) == CAPS.pending_per_account
    finally:
        clients.close()


def test_expired_sessions_do_not_count_against_the_cap(small: Lab) -> None:
    phone = new_dev_id()
    small.operator.register(phone)
    device = small.services.store.get_device(phone)
    assert device is not None
    for _ in range(CAPS.pending_per_device):  # queued with no time to live left
        small.services.engine.queue(device, JobSpec("inventory"), Origin.SERVER, ttl=0.0)
    queued = small.operator.request_session(phone, job="inventory", notify=False)
    assert _pending(small) == [queued["SessionID"]]


def test_racing_requests_never_pass_the_cap(small: Lab) -> None:
    """The count and the insert are one transaction: of 12 racing requests for one
    device, exactly its cap's worth get through."""
    phone = new_dev_id()
    small.operator.register(phone)
    device = small.services.store.get_device(phone)
    assert device is not None
    engine = small.services.engine

    def attempt(_: int) -> bool:
        try:
            engine.queue(device, JobSpec("inventory"), Origin.SERVER, notify=False)
        except OverCap:
            return False
        return True

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(attempt, range(12)))
    assert outcomes.count(True) == CAPS.pending_per_device
    assert small.services.store.count_pending(dev_id=phone) == CAPS.pending_per_device


def test_the_caps_are_serve_options_and_documented_on_the_queueing_operations(
    tmp_path: Path,
) -> None:
    from dmlab.__main__ import build_parser
    from dmlab.server.openapi import build_document

    args = build_parser().parse_args(
        ["serve", "--data", str(tmp_path), "--pending-per-device", "7"]
    )
    assert args.pending_per_device == 7
    assert args.pending_per_account == Caps().pending_per_account
    with Lab(hash_cost=HASH_COST) as lab:
        doc = build_document(lab.app.routes)
    answer = doc["paths"]["/devices/{devId}/sessions"]["post"]["responses"]["429"]
    assert "--pending-per-device" in answer["description"]
    assert "--pending-per-account" in answer["description"]
    assert "Retry-After" in answer["headers"]
