"""Devices (CR x.1.2) over real HTTPS: list, register (JSON and HTML form),
show, update, unregister, and what one account may see of another's."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from dmlab.protocol import media

from helpers import (
    RIVAL,
    commands,
    csrf_of,
    element_text,
    html,
    new_dev_id,
    problem,
    queue,
)

#: Also against serve --workers 2 on PostgreSQL (tests/workers_lab.py).
pytestmark = pytest.mark.on_workers


def test_list_devices_json_and_html(lab, register, clients):
    phone = register(attach=False)
    listed = clients.account().get("/devices")
    assert listed.status_code == 200
    entry = next(d for d in listed.json()["Devices"] if d["devId"] == phone.dev_id)
    assert entry["account"] == "demo" and entry["name"] == "test" and entry["pending"] == 0
    assert "secret" not in entry
    page = html(clients.browser().get("/devices"), 200)
    assert f'href="/devices/{quote(phone.dev_id)}"' in page or phone.dev_id in page


def test_registration_form_is_html_with_a_csrf_token(clients):
    page = html(clients.browser().get("/devices/new"), 200)
    assert '<form method="post" action="/devices/new"' in page
    assert 'name="devId"' in page
    assert len(csrf_of(page)) == 32
    # The token is the account's: another account's form carries another one.
    assert csrf_of(html(clients.browser(RIVAL[0]).get("/devices/new"), 200)) != csrf_of(page)


def test_register_with_json_accept_returns_201_secret_and_location(lab, clients):
    dev_id = new_dev_id()
    response = clients.account().post(
        "/devices/new", json={"devId": dev_id, "name": "Phone", "man": "Acme", "mod": "X1"}
    )
    assert response.status_code == 201
    assert media.base(response.headers["content-type"]) == media.JSON
    body = response.json()
    assert body["devId"] == dev_id and body["account"] == "demo"
    assert (body["name"], body["man"], body["mod"]) == ("Phone", "Acme", "X1")
    assert (
        isinstance(body["secret"], str) and len(body["secret"]) >= 16 and ":" not in body["secret"]
    )
    assert response.headers["location"] == f"/devices/{quote(dev_id)}"
    # The Location names the device, and the secret is the device's credential.
    assert clients.account().get(response.headers["location"]).json()["devId"] == dev_id
    assert clients.device(dev_id, body["secret"]).get("/sessions/pending").status_code == 200
    # The secret is shown once: the device's page does not carry it.
    assert "secret" not in clients.account().get(f"/devices/{dev_id}").json()


def test_register_with_a_form_needs_csrf_even_asking_for_json(lab, clients):
    # Accept and a urlencoded body are both CORS-safelisted: a cross-site page can
    # send them, so a form needs the token whatever it accepts. A JSON body needs none.
    dev_id = new_dev_id()
    problem(clients.account().post("/devices/new", data={"devId": dev_id}), 403, "csrf")
    assert dev_id not in {d["devId"] for d in lab.operator.devices()}
    token = csrf_of(html(clients.browser().get("/devices/new"), 200))
    response = clients.account().post("/devices/new", data={"devId": dev_id, "csrf": token})
    assert response.status_code == 201 and response.json()["devId"] == dev_id


def test_register_from_the_html_form_shows_the_secret(lab, clients):
    browser = clients.browser()
    token = csrf_of(html(browser.get("/devices/new"), 200))
    dev_id = new_dev_id()
    response = browser.post(
        "/devices/new", data={"devId": dev_id, "name": "Kitchen <tablet>", "csrf": token}
    )
    page = html(response, 201)
    secret = element_text(page, "secret")
    assert element_text(page, "devId") == dev_id
    assert "<tablet>" not in page  # escaped: the name is not in this page, nor raw anywhere
    assert clients.device(dev_id, secret).get("/sessions/pending").status_code == 200
    assert clients.account().get(f"/devices/{dev_id}").json()["name"] == "Kitchen <tablet>"


def test_form_post_without_json_accept_needs_the_csrf_token(lab, clients):
    browser = clients.browser()
    rival_token = csrf_of(html(clients.browser(RIVAL[0]).get("/devices/new"), 200))
    for fields in ({}, {"csrf": ""}, {"csrf": "0" * 32}, {"csrf": rival_token}):
        dev_id = new_dev_id()
        page = html(browser.post("/devices/new", data={"devId": dev_id, **fields}), 403)
        assert "csrf" in page.lower()
        assert dev_id not in {d["devId"] for d in lab.operator.devices()}
    # A script that posts a form without asking for JSON gets a JSON refusal.
    plain = clients.account(accept="*/*")
    problem(plain.post("/devices/new", data={"devId": new_dev_id()}), 403, "csrf")
    token = csrf_of(html(browser.get("/devices/new"), 200))
    dev_id = new_dev_id()
    created = plain.post("/devices/new", data={"devId": dev_id, "csrf": token})
    assert created.status_code == 201 and created.json()["devId"] == dev_id


def test_show_device_json_and_html(lab, register, clients):
    phone = register(attach=False)
    queue(lab, phone.dev_id, job="inventory")
    info = clients.account().get(f"/devices/{phone.dev_id}")
    assert info.status_code == 200
    assert info.json() == {
        "devId": phone.dev_id,
        "name": "test",
        "man": "dmlab",
        "mod": "Virtual Device",
        "account": "demo",
        "registered": info.json()["registered"],
        "pending": 1,
        "active": 0,
    }
    page = html(clients.browser().get(f"/devices/{phone.dev_id}"), 200)
    assert phone.dev_id in element_text(page, "info") or phone.dev_id in page
    assert 'name="_method" value="PUT"' in page and 'name="_method" value="DELETE"' in page
    assert len(csrf_of(page, "update")) == 32
    assert f'action="/devices/{quote(phone.dev_id)}/sessions"' in page


def test_update_device_json(lab, register, clients):
    phone = register(attach=False)
    account = clients.account()
    response = account.put(f"/devices/{phone.dev_id}", json={"name": "Renamed", "mod": "X2"})
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["mod"], response.json()["man"]) == (
        "Renamed",
        "X2",
        "dmlab",
    )
    assert account.get(f"/devices/{phone.dev_id}").json()["name"] == "Renamed"
    problem(account.put(f"/devices/{phone.dev_id}", json={"devId": "IMEI:111111111"}), 400)
    assert account.get(f"/devices/{phone.dev_id}").json()["devId"] == phone.dev_id


def test_update_device_from_the_html_form(lab, register, clients):
    phone = register(attach=False)
    browser = clients.browser()
    token = csrf_of(html(browser.get(f"/devices/{phone.dev_id}"), 200), "update")
    response = browser.post(
        f"/devices/{phone.dev_id}",
        data={
            "_method": "PUT",
            "csrf": token,
            "name": "From form",
            "man": "dmlab",
            "mod": "Virtual Device",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/devices/{quote(phone.dev_id)}"
    assert lab.operator.device(phone.dev_id)["name"] == "From form"
    # Without the token, nothing changes.
    html(browser.post(f"/devices/{phone.dev_id}", data={"_method": "PUT", "name": "Forged"}), 403)
    assert lab.operator.device(phone.dev_id)["name"] == "From form"


def test_delete_device_json(lab, register, clients):
    phone = register(attach=False)
    queued = queue(lab, phone.dev_id, job="inventory")
    account = clients.account()
    response = account.delete(f"/devices/{phone.dev_id}")
    assert response.status_code == 204 and response.content == b""
    problem(account.get(f"/devices/{phone.dev_id}"), 404, "not-found")
    assert phone.dev_id not in {d["devId"] for d in lab.operator.devices()}
    assert queued["SessionID"] not in {s["SessionID"] for s in lab.operator.pending()}
    # The device's credentials die with it.
    problem(clients.of(phone).get("/sessions/pending"), 401)
    problem(account.delete(f"/devices/{phone.dev_id}"), 404)


def test_delete_device_from_the_html_form(lab, register, clients):
    phone = register(attach=False)
    browser = clients.browser()
    token = csrf_of(html(browser.get(f"/devices/{phone.dev_id}"), 200), "unregister")
    response = browser.post(f"/devices/{phone.dev_id}", data={"_method": "DELETE", "csrf": token})
    assert response.status_code == 303 and response.headers["location"] == "/devices"
    assert phone.dev_id not in {d["devId"] for d in lab.operator.devices()}
    html(browser.get(f"/devices/{phone.dev_id}"), 404)


def test_device_can_be_registered_again_after_unregistering(lab, register, clients):
    phone = register(attach=False)
    lab.operator.unregister(phone.dev_id)
    again = clients.account(RIVAL[0]).post("/devices/new", json={"devId": phone.dev_id})
    assert again.status_code == 201 and again.json()["account"] == RIVAL[0]
    problem(clients.of(phone).get("/sessions/pending"), 401)  # the old secret is gone


def test_accounts_cannot_see_each_others_devices(lab, register, clients):
    theirs = register(RIVAL[0], attach=False)
    mine = clients.account()
    assert theirs.dev_id not in {d["devId"] for d in mine.get("/devices").json()["Devices"]}
    body = problem(mine.get(f"/devices/{theirs.dev_id}"), 404, "not-found")
    # The refusal reads exactly like a device that does not exist.
    missing = problem(mine.get("/devices/IMEI:000000000000000"), 404, "not-found")
    assert body["detail"].replace(theirs.dev_id, "X") == missing["detail"].replace(
        "IMEI:000000000000000", "X"
    )
    problem(mine.put(f"/devices/{theirs.dev_id}", json={"name": "mine now"}), 404)
    problem(mine.delete(f"/devices/{theirs.dev_id}"), 404)
    problem(mine.post(f"/devices/{theirs.dev_id}/sessions", json={"job": "inventory"}), 404)
    html(clients.browser().get(f"/devices/{theirs.dev_id}"), 404)
    # Registering it again is refused, but says only that it is taken.
    problem(mine.post("/devices/new", json={"devId": theirs.dev_id}), 409, "conflict")
    assert lab.operators[RIVAL[0]].device(theirs.dev_id)["name"] == "test"
    assert lab.operators[RIVAL[0]].pending() == [] or all(
        s["DevID"] != theirs.dev_id for s in lab.operators[RIVAL[0]].pending()
    )


def test_a_device_cannot_use_the_browser_entry_point_of_another(lab, register, clients):
    phone, other = register(attach=False), register(attach=False)
    problem(
        clients.of(phone).post(
            f"/devices/{other.dev_id}/sessions",
            json={"job": "inventory"},
            headers={"Accept": media.COMMANDS},
        ),
        404,
    )
    assert [s for s in lab.operator.pending() if s["DevID"] == other.dev_id] == []


@pytest.mark.in_process(
    "the in-process lab hands the notification to the attached device; serve's devices "
    "long-poll (test_workers.py wakes one across workers)"
)
def test_browser_entry_point_answers_by_accept(lab, register, clients):
    """``POST /devices/{devId}/sessions``, the lab's resource for both browser flows."""
    phone = register()
    # The device's browser component asks for commands: a session starts now (201).
    component = clients.of(phone).post(
        f"/devices/{phone.dev_id}/sessions",
        json={"job": "inventory"},
        headers={"Accept": media.COMMANDS},
    )
    started = commands(component, 201)
    assert [c[0] for c in started["CMD"]] == ["GET", "GET", "END"]
    problem(clients.of(phone).post(f"/sessions/id/{started['SessionID']}"), 409)  # already active
    lab.operator.abort(started["SessionID"])

    # A script asks with JSON: queued (202) and the device is notified, so it runs.
    queued = clients.account().post(f"/devices/{phone.dev_id}/sessions", json={"job": "inventory"})
    assert queued.status_code == 202
    body = queued.json()
    assert queued.headers["location"] == f"/sessions/id/{body['SessionID']}"
    assert (body["State"], body["Origin"], body["Job"]) == (
        "pending",
        "server-initiated",
        "inventory",
    )
    lab.settle()
    assert phone.device.runs[-1].ids == [body["SessionID"]]
    done = [s for s in lab.operator.completed() if s["SessionID"] == body["SessionID"]]
    assert done[0]["Result"] == "OK"

    # A browser's form: queued (202) with an HTML page naming the session.
    browser = clients.browser()
    token = csrf_of(html(browser.get(f"/devices/{phone.dev_id}"), 200), "request-session")
    page = html(
        browser.post(
            f"/devices/{phone.dev_id}/sessions",
            data={"job": "firmware-update", "version": "2.0.0", "csrf": token},
        ),
        202,
    )
    sid = element_text(page, "session")
    lab.settle()
    assert phone.device.firmware == "2.0.0"
    assert [s["Origin"] for s in lab.operator.completed() if sid in s["IDs"]] == [
        "browser-initiated"
    ]
