"""Lab choice browser-entry (issue 12): what the browser POSTs to, under each option.

``device-sessions`` (the default): the device page's form, and the browser component,
POST to ``/devices/{devId}/sessions``. ``sessions-next``: both POST to ``/sessions/next``,
the CR's own resource that starts a session; the form names the device."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from dmlab import Lab
from dmlab.protocol import media

from helpers import (
    HASH_COST,
    RIVAL,
    Clients,
    by_dev,
    commands,
    html,
    new_dev_id,
    problem,
    put_status,
)


@pytest.fixture(scope="module")
def next_lab() -> Iterator[Lab]:
    with Lab(hash_cost=HASH_COST, choices={"browser-entry": "sessions-next"}) as running:
        running.add_account(*RIVAL)
        yield running


def _form(page: str) -> tuple[str, dict[str, str]]:
    """The device page's session form: where it posts, and its hidden fields."""
    match = re.search(
        r'<form method="post" action="([^"]+)" id="request-session">(.*?)</form>', page, re.S
    )
    assert match, "no session form on the device page"
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', match[2]))
    return match[1], hidden


def _browser_requests_a_session(lab: Lab, made: Clients) -> tuple[str, str]:
    """A person opens the device page and submits its form; returns (form action, sid)."""
    device = lab.add_device(new_dev_id())
    browser = made.browser()
    action, hidden = _form(html(browser.get(f"/devices/{quote(device.dev_id)}"), 200))
    answer = browser.post(action, data={**hidden, "job": "inventory"})
    page = html(answer, 202)
    sid = answer.headers["location"].rsplit("/", 1)[-1]
    assert sid in page and "DM Notification" in page
    lab.settle()
    done = by_dev(lab.operator.completed(), device.dev_id)
    assert [(s["SessionID"], s["Origin"], s["Result"]) for s in done] == [
        (sid, "browser-initiated", "OK")
    ]
    assert device.runs[-1].trigger == "notification"
    return action, sid


# device-sessions (the default) -----------------------------------------------------------
def test_device_sessions_the_page_form_posts_under_the_device_and_the_device_runs_it(lab):
    with Clients(lab) as made:
        action, _ = _browser_requests_a_session(lab, made)
    assert re.fullmatch(r"/devices/IMEI%3A\d+/sessions", action), action


def test_device_sessions_a_browser_cannot_post_to_sessions_next(lab):
    with Clients(lab) as made:
        device = lab.add_device(new_dev_id())
        page = html(made.browser().get(f"/devices/{quote(device.dev_id)}"), 200)
        answer = made.browser().post(
            "/sessions/next", data={**_form(page)[1], "devId": device.dev_id, "job": "inventory"}
        )
        assert answer.status_code == 403, answer.text
        assert lab.operator.pending() == [] or not by_dev(lab.operator.pending(), device.dev_id)


# sessions-next -------------------------------------------------------------------------
def test_sessions_next_the_page_form_posts_to_sessions_next_and_the_device_runs_it(next_lab):
    with Clients(next_lab) as made:
        action, sid = _browser_requests_a_session(next_lab, made)
    assert action == "/sessions/next"
    browser_posts = [
        e for e in next_lab.trace.since(0) if e.source == "browser" and e.method == "POST"
    ]
    assert (browser_posts[-1].path, browser_posts[-1].status) == ("/sessions/next", 202)
    assert browser_posts[-1].session == sid


def test_sessions_next_the_browser_component_gets_commands_there(next_lab):
    device = next_lab.add_device(new_dev_id())
    run = device.browser_component(job="inventory")
    assert run is not None and run.result == "OK" and run.trigger == "browser component"
    component = [e for e in next_lab.trace.since(0) if e.source == "browser-component"]
    assert (component[-1].method, component[-1].path, component[-1].status) == (
        "POST",
        "/sessions/next",
        201,
    )


def test_sessions_next_a_dm_clients_package_1_still_starts_its_pending_session(next_lab):
    dev_id = new_dev_id()
    secret = next_lab.operator.register(dev_id)["secret"]
    sid = next_lab.operator.request_session(dev_id, job="inventory", notify=False)["SessionID"]
    with Clients(next_lab) as made:
        client = made.device(dev_id, secret)
        alert = {"Alert": [{"AlertType": "urn:oma:at:dm:2.0:ClientInitiatedMgmt"}]}
        package = commands(
            client.post(
                "/sessions/next", json=alert, headers={"Content-Type": media.DM20_INITIATION}
            )
        )
        assert package["SessionID"] == sid
        assert put_status(client, sid, [{"sc": 200}] * 2).status_code == 204
        assert client.post("/sessions/next").status_code == 204  # nothing left


def test_sessions_next_the_resource_under_the_device_takes_scripts_json_only(next_lab):
    dev_id = new_dev_id()
    secret = next_lab.operator.register(dev_id)["secret"]
    path = f"/devices/{quote(dev_id)}/sessions"
    with Clients(next_lab) as made:
        page = html(made.browser().get(f"/devices/{quote(dev_id)}"), 200)
        form = made.browser().post(path, data={**_form(page)[1], "job": "inventory"})
        assert "/sessions/next" in html(form, 415)  # a page that says where to post
        component = made.device(dev_id, secret).post(path, json={"job": "inventory"})
        problem(component, 406)
    queued = next_lab.operator.request_session(dev_id, job="inventory", notify=False)
    assert queued["State"] == "pending"


def test_sessions_next_refuses_a_form_without_its_device_token_or_a_strangers_device(next_lab):
    dev_id = new_dev_id()
    next_lab.operator.register(dev_id)
    rivals = new_dev_id()
    next_lab.operators[RIVAL[0]].register(rivals)
    with Clients(next_lab) as made:
        page = html(made.browser().get(f"/devices/{quote(dev_id)}"), 200)
        hidden = _form(page)[1]
        browser = made.browser()
        no_device = {k: v for k, v in hidden.items() if k != "devId"}
        assert (
            browser.post("/sessions/next", data={**no_device, "job": "inventory"}).status_code
            == 400
        )
        no_token = {k: v for k, v in hidden.items() if k != "csrf"}
        assert (
            browser.post("/sessions/next", data={**no_token, "job": "inventory"}).status_code == 403
        )
        strangers = {**hidden, "devId": rivals, "job": "inventory"}
        assert browser.post("/sessions/next", data=strangers).status_code == 404
    assert not by_dev(next_lab.operator.pending(), dev_id)


def test_openapi_declares_the_entry_in_force(lab, next_lab):
    def next_operation(running: Lab) -> dict:
        with Clients(running) as made:
            document = made.anonymous().get("/openapi.json").json()
        return document["paths"]["/sessions/next"]["post"]

    default, moved = next_operation(lab), next_operation(next_lab)
    assert media.FORM not in default["requestBody"]["content"]
    assert {"accountBasic": []} not in default["security"]
    assert media.FORM in moved["requestBody"]["content"]
    assert {"accountBasic": []} in moved["security"] and "202" in moved["responses"]
    with Clients(next_lab) as made:
        document = made.anonymous().get("/openapi.json").json()
    under_device = document["paths"]["/devices/{devId}/sessions"]["post"]
    assert list(under_device["requestBody"]["content"]) == [media.JSON]
