"""The CR's four communication flows (x.2.1 to x.2.4), end to end with a
virtual device over HTTPS, read back from the trace, listings and the device."""

from __future__ import annotations

from urllib.parse import quote

from dmlab.device import Behaviour
from dmlab.protocol import AlertType

from helpers import (
    DEVINFO,
    FUMO,
    by_dev,
    csrf_of,
    element_text,
    html,
    rows,
    session_of,
)


def device_rows(lab, since, dev_id):
    """The trace rows of one device's exchanges, minus the operator's own requests
    (an operator's row is written when its answer has gone, which may be after
    the device has already reacted to the notification)."""
    return [r for r in rows(lab, since, dev_id) if r[0] not in ("operator", "browser")]


def test_server_initiated_session(lab, register):
    phone = register()
    since = lab.trace.last_seq
    queued = lab.operator.request_session(phone.dev_id, job="inventory")
    assert queued["State"] == "pending" and queued["Origin"] == "server-initiated"
    lab.settle()

    sid = queued["SessionID"]
    assert device_rows(lab, since, phone.dev_id) == [
        ("server", "NOTIFY", "package 0", 0),
        ("device", "POST", "/sessions/next", 200),
        ("device", "PUT", f"/sessions/id/{sid}", 204),
    ]
    assert ("operator", "POST", f"/devices/{phone.dev_id}/sessions", 202) in rows(
        lab, since, phone.dev_id
    )
    frame = lab.trace.frame(since)
    notify = frame[frame["method"] == "NOTIFY"].iloc[0]
    assert (notify["source"], notify["target"], notify["session"]) == ("server", "device", sid)

    run = phone.device.runs[-1]
    assert run.trigger == "notification" and run.ids == [sid] and run.result == "OK"
    assert run.rounds[0][0][0].name == "GET"
    done = session_of(lab, sid)
    assert (done["Origin"], done["Result"], done["Rounds"]) == ("server-initiated", "OK", 1)


def test_client_initiated_session_and_generic_alert(lab, register):
    phone = register()
    since = lab.trace.last_seq
    queued = lab.operator.request_session(phone.dev_id, job="inventory", notify=False)
    lab.settle()
    assert phone.device.runs == []  # not notified: nothing happened on the device
    assert by_dev(lab.operator.pending(), phone.dev_id)[0]["SessionID"] == queued["SessionID"]

    run = phone.device.alert()  # a UI event: ClientInitiatedMgmt
    assert run is not None and run.trigger == "ui" and run.ids == [queued["SessionID"]]
    assert run.result == "OK"
    # A generic alert with nothing to do: recorded, answered 204, no session.
    assert (
        phone.device.alert(
            AlertType.FUMO_DOWNLOAD_AND_UPDATE,
            trigger="timer",
            data={"DM1x": 200},
            data_type="int",
            source_uri=f"{FUMO}/fw1/DownloadAndUpdate",
            mark="informational",
        )
        is None
    )
    # And a client-initiated one when nothing is pending: 204 too.
    assert phone.device.alert() is None
    lab.settle()

    assert device_rows(lab, since, phone.dev_id) == [
        ("device", "POST", "/alert", 200),
        ("device", "PUT", f"/sessions/id/{queued['SessionID']}", 204),
        ("device", "POST", "/alert", 204),
        ("device", "POST", "/alert", 204),
    ]
    frame = lab.trace.frame(since)
    alerts = frame[(frame["dev_id"] == phone.dev_id) & (frame["path"] == "/alert")]
    assert [a.split()[1] for a in alerts["request"]] == [
        "ClientInitiatedMgmt",
        "DownloadAndUpdate(200)",
        "ClientInitiatedMgmt",
    ]
    assert list(alerts["response"])[1:] == ["recorded; no session"] * 2
    assert session_of(lab, queued["SessionID"])["Result"] == "OK"
    assert len(phone.device.runs) == 1


def test_browser_component_initiated_session(lab, register):
    phone = register()
    since = lab.trace.last_seq
    run = phone.device.browser_component(job="inventory")
    assert run is not None and run.trigger == "browser component" and run.result == "OK"
    sid = run.ids[0]
    assert rows(lab, since, phone.dev_id) == [
        ("browser-component", "POST", f"/devices/{phone.dev_id}/sessions", 201),
        ("device", "PUT", f"/sessions/id/{sid}", 204),
    ]
    done = session_of(lab, sid)
    assert (done["Origin"], done["Result"]) == ("browser-component-initiated", "OK")
    # Explicit commands work the same way, and a failing one makes a failure.
    run = phone.device.browser_component(commands=[["GET", f"{DEVINFO}//DevInfo/Nope"], ["END"]])
    assert run.result == "failure" and session_of(lab, run.ids[0])["Result"] == "failure"


def test_browser_initiated_session(lab, register, clients):
    phone = register()
    browser = clients.browser()
    since = lab.trace.last_seq
    token = csrf_of(html(browser.get(f"/devices/{phone.dev_id}"), 200), "request-session")
    response = browser.post(
        f"/devices/{phone.dev_id}/sessions", data={"job": "inventory", "csrf": token}
    )
    page = html(response, 202)
    sid = element_text(page, "session")
    assert response.headers["location"] == f"/sessions/id/{sid}"
    assert f'href="/devices/{quote(phone.dev_id)}"' in page
    lab.settle()

    assert device_rows(lab, since, phone.dev_id) == [
        ("server", "NOTIFY", "package 0", 0),
        ("device", "POST", "/sessions/next", 200),
        ("device", "PUT", f"/sessions/id/{sid}", 204),
    ]
    browser_rows = [r for r in rows(lab, since, phone.dev_id) if r[0] == "browser"]
    assert browser_rows == [
        ("browser", "GET", f"/devices/{phone.dev_id}", 200),
        ("browser", "POST", f"/devices/{phone.dev_id}/sessions", 202),
    ]
    done = session_of(lab, sid)
    assert (done["Origin"], done["Result"], done["Job"]) == ("browser-initiated", "OK", "inventory")
    assert phone.device.runs[-1].trigger == "notification"
    # The device page now lists the session with its result.
    listing = html(browser.get(f"/devices/{phone.dev_id}"), 200)
    assert sid in listing and "browser-initiated" in listing


def test_browser_initiated_without_csrf_queues_nothing(lab, register, clients):
    phone = register()
    html(
        clients.browser().post(f"/devices/{phone.dev_id}/sessions", data={"job": "inventory"}), 403
    )
    lab.settle()
    assert by_dev(lab.operator.pending(), phone.dev_id) == []
    assert phone.device.runs == []


def test_firmware_update_rotates_ids_and_ends_with_a_fumo_alert(lab, register):
    phone = register()
    events = []
    unsubscribe = lab.events.subscribe(
        lambda e: events.append(e) if e.dev_id == phone.dev_id else None
    )
    try:
        since = lab.trace.last_seq
        queued = lab.operator.request_session(phone.dev_id, job="firmware-update", version="2.0.0")
        lab.settle()
    finally:
        unsubscribe()

    run = phone.device.runs[-1]
    first, second = run.ids
    assert first == queued["SessionID"] and second != first
    assert [[c.name for c in cmds] for cmds, _ in run.rounds] == [
        ["GET", "GET"],
        ["HGET", "EXEC", "END"],
    ]
    assert [s.sc for _, st in run.rounds for s in st] == [200, 200, 200, 202]
    done = session_of(lab, first)
    assert (done["Result"], done["Rounds"], done["IDs"]) == ("OK", 2, [first, second])

    # The device installed the package and said so in a generic alert.
    assert phone.device.firmware == "2.0.0"
    assert phone.device.get(f"{FUMO}/fw1/State") == 100
    assert phone.device.get(f"{FUMO}/fw1/PkgVersion") == "2.0.0"
    kinds = [e.kind for e in events]
    assert (
        kinds.index("session.started")
        < kinds.index("session.continued")
        < kinds.index("session.completed")
    )
    continued = next(e for e in events if e.kind == "session.continued")
    assert (continued.data["previous"], continued.data["session"]) == (first, second)
    fumo = [
        e
        for e in events
        if e.kind == "alert.received" and e.data["alert_type"] == AlertType.FUMO_DOWNLOAD_AND_UPDATE
    ]
    assert len(fumo) == 1 and fumo[0].data["data"] == {"DM1x": 200}
    assert fumo[0].data["source"] == f"{FUMO}/fw1/DownloadAndUpdate"

    session_rows = [
        r for r in device_rows(lab, since, phone.dev_id) if "/sessions" in r[2] or r[1] == "NOTIFY"
    ]
    assert session_rows == [
        ("server", "NOTIFY", "package 0", 0),
        ("device", "POST", "/sessions/next", 200),
        ("device", "PUT", f"/sessions/id/{first}", 200),
        ("device", "PUT", f"/sessions/id/{second}", 204),
    ]
    others = sorted(r for r in device_rows(lab, since, phone.dev_id) if r not in session_rows)
    assert others == [
        ("device", "GET", "/firmware/2.0.0", 200),
        ("device", "GET", "/firmware/2.0.0/url", 200),
        ("device", "POST", "/alert", 204),
    ]

    # Asked again for the same version, the server sees it is done: one round.
    again = lab.operator.request_session(phone.dev_id, job="firmware-update", version="2.0.0")
    lab.settle()
    repeat = session_of(lab, again["SessionID"])
    assert (repeat["Result"], repeat["Rounds"]) == ("OK", 1)
    assert repeat["Reason"] == "already on firmware 2.0.0"


def test_failed_firmware_update_is_reported_by_alert_not_by_the_session(lab, register, clients):
    phone = register(behaviour=Behaviour(update_fails=True))
    queued = lab.operator.request_session(phone.dev_id, job="firmware-update", version="3.1.0")
    lab.settle()
    # The session did what it set out to do (EXEC accepted: 202), so it is OK...
    assert session_of(lab, queued["SessionID"])["Result"] == "OK"
    # ...while the update itself failed, which the FUMO alert tells.
    assert phone.device.firmware == "1.0.0"
    assert phone.device.get(f"{FUMO}/fw1/State") == 80
    page = html(clients.browser().get(f"/devices/{phone.dev_id}"), 200)
    assert f'{AlertType.FUMO_DOWNLOAD_AND_UPDATE}</code> {{"DM1x": 410}}' in page
