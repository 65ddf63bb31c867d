"""Listing pages over real HTTPS (lab choice paging): `limit` and an opaque `cursor`
on GET /sessions/pending, /sessions/completed and /devices; the next page in `Link`
and `Next`; bad values are 400 problems; and no request reads more than a page
(issue 10, finding 4: at 5,000 pending sessions a device's POST /sessions/next and
its account's GET /sessions/pending read every one of them)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from dmlab import Lab
from dmlab.caps import Caps
from dmlab.protocol.provenance import PAGE_DEFAULT, PAGE_MAX
from dmlab.store import JobSpec, Origin, Page, Session

from helpers import BROWSER_ACCEPT, HASH_COST, Clients, html, new_dev_id, new_name, problem, queue


@pytest.fixture
def account(lab: Lab, clients: Clients) -> Iterator[tuple[str, httpx.Client]]:
    """An account of its own (its listings hold only what the test made)."""
    name = new_name("pager")
    lab.add_account(name, "pager-password")
    yield name, clients.account(name, "pager-password")


def _queue_direct(lab: Lab, dev_id: str, n: int, ttl: float | None = None) -> list[str]:
    """Queue ``n`` sessions in process (fast), as the API would."""
    device = lab.services.store.get_device(dev_id)
    assert device is not None
    return [
        lab.services.engine.queue(
            device, JobSpec("inventory"), Origin.SERVER, notify=False, ttl=ttl
        ).session_id
        for _ in range(n)
    ]


def _walk(
    client: httpx.Client, url: str, key: str, between: Callable[[], None] = lambda: None
) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following ``Next``; checks ``Link`` says the same."""
    pages = []
    following: str | None = url
    while following is not None:
        response = client.get(following)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body[key])
        following = body.get("Next")
        if following is None:
            assert "link" not in response.headers
        else:
            assert response.headers["link"] == f'<{following}>; rel="next"'
            between()
    return pages


def test_pending_and_completed_come_in_pages_for_device_and_account(
    lab: Lab, account: tuple[str, httpx.Client], clients: Clients
) -> None:
    name, operator = account
    secret = lab.operators[name].register(phone := new_dev_id())["secret"]
    device = clients.device(phone, secret)
    queued = [queue(lab, phone, account=name, job="inventory")["SessionID"] for _ in range(7)]
    for client in (device, operator):
        pages = _walk(client, "/sessions/pending?limit=3", "Sessions")
        assert [len(p) for p in pages] == [3, 3, 1]
        assert [s["SessionID"] for p in pages for s in p] == queued
        # the next link keeps the limit asked for
        first = client.get("/sessions/pending?limit=3").json()["Next"]
        assert first.startswith("/sessions/pending?") and "limit=3" in first
        # without limit, one page of at most the default
        whole = client.get("/sessions/pending").json()
        assert len(whole["Sessions"]) == 7 and "Next" not in whole
    for sid in queued[:5]:  # five end (aborted), in this order
        assert operator.delete(f"/sessions/id/{sid}").status_code == 200
    for client in (device, operator):
        pages = _walk(client, "/sessions/completed?limit=2", "Sessions")
        assert [len(p) for p in pages] == [2, 2, 1]
        assert [s["SessionID"] for p in pages for s in p] == queued[:5]
        assert [s["SessionID"] for s in client.get("/sessions/pending").json()["Sessions"]] == (
            queued[5:]
        )


def test_a_walk_returns_every_session_once_while_sessions_are_queued(
    lab: Lab, account: tuple[str, httpx.Client], clients: Clients
) -> None:
    name, operator = account
    secret = lab.operators[name].register(phone := new_dev_id())["secret"]
    before = _queue_direct(lab, phone, 10)
    added: list[str] = []

    def between() -> None:  # more work arrives while the operator reads
        if len(added) < 12:
            added.extend(_queue_direct(lab, phone, 3))

    for client in (operator, clients.device(phone, secret)):
        added.clear()
        pages = _walk(client, "/sessions/pending?limit=4", "Sessions", between)
        seen = [s["SessionID"] for p in pages for s in p]
        assert len(seen) == len(set(seen))
        assert seen[: len(before)] == before
        assert set(added) <= set(seen)
        before = seen  # the next walk starts with all of these


def test_devices_come_in_pages_in_json_and_html(
    lab: Lab, account: tuple[str, httpx.Client], clients: Clients
) -> None:
    name, operator = account
    registered = [lab.operators[name].register(new_dev_id())["devId"] for _ in range(5)]
    pages = _walk(operator, "/devices?limit=2", "Devices")
    assert [[d["devId"] for d in p] for p in pages] == [
        registered[0:2],
        registered[2:4],
        registered[4:],
    ]
    assert [d["devId"] for d in lab.operators[name].devices()] == registered
    browser = clients.browser(name, "pager-password")
    page = html(browser.get("/devices?limit=2"), 200)
    link = re.search(r'<a rel="next" href="([^"]+)">Next page</a>', page)
    assert link is not None
    second = html(browser.get(link[1].replace("&amp;", "&")), 200)
    assert registered[2] in second and registered[0] not in second
    last = browser.get("/devices?limit=5", headers={"Accept": BROWSER_ACCEPT})
    assert 'rel="next"' not in html(last, 200) and "link" not in last.headers


def test_the_operator_follows_every_page(lab: Lab, account: tuple[str, httpx.Client]) -> None:
    name, operator = account
    phone, tablet = (lab.operators[name].register(new_dev_id())["devId"] for _ in range(2))
    queued = _queue_direct(lab, phone, PAGE_DEFAULT // 2) + _queue_direct(
        lab, tablet, PAGE_DEFAULT - PAGE_DEFAULT // 2 + 3
    )  # more than a page, each device within its cap
    first = operator.get("/sessions/pending").json()
    assert len(first["Sessions"]) == PAGE_DEFAULT and "Next" in first
    assert [s["SessionID"] for s in lab.operators[name].pending()] == queued
    assert len(operator.get(f"/sessions/pending?limit={PAGE_MAX}").json()["Sessions"]) == len(
        queued
    )


BAD_LIMITS = ["0", str(PAGE_MAX + 1), "-1", "abc", "1.5", "", "1e3", "99999999999999999999"]


@pytest.mark.parametrize("path", ["/sessions/pending", "/sessions/completed", "/devices"])
@pytest.mark.parametrize("limit", BAD_LIMITS)
def test_a_bad_limit_is_a_400_problem(
    account: tuple[str, httpx.Client], path: str, limit: str
) -> None:
    _, operator = account
    body = problem(operator.get(path, params={"limit": limit}), 400, "bad-request")
    assert f"1 to {PAGE_MAX}" in body["detail"]


def test_a_cursor_that_is_not_the_listings_own_is_a_400_problem(
    lab: Lab, account: tuple[str, httpx.Client]
) -> None:
    name, operator = account
    for _ in range(3):
        lab.operators[name].register(new_dev_id())
    devices_next = operator.get("/devices?limit=1").json()["Next"]
    cursor = re.search(r"cursor=([^&]+)", devices_next)
    assert cursor is not None
    assert operator.get(devices_next).status_code == 200
    for bad in (
        cursor[1],  # another listing's
        "not-a-cursor",
        "%00",
        "x" * 200,
        "cGVuZGluZzow",  # pending:0
        "cGVuZGluZzo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5",  # pending:99999999999999999999999
    ):
        answer = operator.get("/sessions/pending", params={"cursor": bad})
        assert "cursor" in problem(answer, 400, "bad-request")["detail"]


def test_expired_sessions_leave_the_pending_pages_and_reach_completed(
    lab: Lab, account: tuple[str, httpx.Client]
) -> None:
    name, operator = account
    phone = lab.operators[name].register(new_dev_id())["devId"]
    live = _queue_direct(lab, phone, 2)
    gone = _queue_direct(lab, phone, 3, ttl=0.0)  # due at once
    # the completed listing is read first: the expired ones are moved out anyway
    done = operator.get("/sessions/completed").json()["Sessions"]
    assert [s["SessionID"] for s in done] == gone
    assert all("expired" in (s["Result"], *s["Reason"].split(";")) for s in done), done
    assert [s["SessionID"] for s in lab.operators[name].pending()] == live


def _count_sessions_read(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many session records each store call hands back, call by call."""
    store = lab.services.store
    counts: list[int] = []
    for method in (
        "sessions_of_device",
        "sessions_of_account",
        "sessions_page",
        "due_sessions",
        "get_session",
        "session_by_id",
    ):
        original = getattr(store, method)

        def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            found = _original(*args, **kwargs)
            items = found.items if isinstance(found, Page) else found
            counts.append(
                len(items) if isinstance(items, list) else int(isinstance(items, Session))
            )
            return found

        monkeypatch.setattr(store, method, counted)
    return counts


def test_no_request_reads_every_pending_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 4: with 400 sessions pending for one device (its cap raised to allow
    them), starting the next one and listing them read a page's worth, not all 400
    (no timing: records read)."""
    with Lab(hash_cost=HASH_COST, caps=Caps(pending_per_device=400)) as lab:
        clients = Clients(lab)
        try:
            _read_a_page_each(lab, clients, monkeypatch)
        finally:
            clients.close()


def _read_a_page_each(lab: Lab, clients: Clients, monkeypatch: pytest.MonkeyPatch) -> None:
    operator = clients.account()
    secret = lab.operator.register(phone := new_dev_id())["secret"]
    device = clients.device(phone, secret)
    _queue_direct(lab, phone, 400)
    counts = _count_sessions_read(lab, monkeypatch)
    for client, url in (
        (operator, "/sessions/pending"),
        (device, "/sessions/pending"),
        (operator, "/sessions/completed"),
        (operator, "/devices"),
        (operator, f"/devices/{phone}"),
    ):
        counts.clear()
        assert client.get(url).status_code == 200
        assert sum(counts) <= PAGE_DEFAULT + 1, (url, counts)
    counts.clear()
    assert device.post("/sessions/next").status_code == 200
    assert sum(counts) <= 40, counts
