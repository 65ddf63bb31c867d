"""Alert (CR x.1.3) over real HTTPS: a device reports an event and may get commands."""

from __future__ import annotations

import pytest

from dmlab.protocol import AlertType, media

from helpers import (
    by_dev,
    commands,
    element_text,
    html,
    post_alert,
    problem,
    put_status,
    queue,
    session_of,
)

#: Also against serve --workers 2 on PostgreSQL (tests/workers_lab.py).
pytestmark = pytest.mark.on_workers

FUMO_ALERT = {
    "AlertType": AlertType.FUMO_DOWNLOAD_AND_UPDATE,
    "SourceURI": "urn:oma:mo:oma-fumo:1.0/fw1/",
    "Mark": "informational",
    "Data": 200,
}


def recent_alerts(clients, dev_id: str) -> str:
    """The device page's list of recent alerts, as a person sees it."""
    page = html(clients.browser().get(f"/devices/{dev_id}"), 200)
    start = page.index('<ul id="alerts">')
    return page[start : page.index("</ul>", start)]


@pytest.mark.parametrize(
    "alert_type",
    [AlertType.CLIENT_INITIATED, AlertType.FUMO_DOWNLOAD_AND_UPDATE, AlertType.BOOTSTRAP_COMPLETE],
)
def test_alert_without_work_is_204_and_recorded(lab, register, clients, alert_type):
    phone = register(attach=False)
    response = post_alert(clients.of(phone), {"AlertType": alert_type, "Data": 1})
    assert response.status_code == 204 and response.content == b""
    assert alert_type in recent_alerts(clients, phone.dev_id)


def test_client_initiated_alert_starts_the_pending_session(lab, register, clients):
    phone = register(attach=False)
    queued = queue(lab, phone.dev_id, job="inventory")
    device = clients.of(phone)
    body = commands(post_alert(device, {"AlertType": AlertType.CLIENT_INITIATED}))
    assert body["SessionID"] == queued["SessionID"]
    assert [c[0] for c in body["CMD"]] == ["GET", "GET", "END"]
    assert by_dev(lab.operator.pending(), phone.dev_id) == []
    end = put_status(device, body["SessionID"], [{"sc": 200, "Data": {}}, {"sc": 200, "Data": 10}])
    assert end.status_code == 204 and end.headers["OMADM-Result"] == "OK"
    assert session_of(lab, queued["SessionID"])["Result"] == "OK"
    assert "ClientInitiatedMgmt" in recent_alerts(clients, phone.dev_id)


def test_generic_alert_does_not_open_a_pending_session(lab, register, clients):
    phone = register(attach=False)
    queued = queue(lab, phone.dev_id, job="inventory")
    response = post_alert(clients.of(phone), FUMO_ALERT)
    assert response.status_code == 204
    assert [s["SessionID"] for s in by_dev(lab.operator.pending(), phone.dev_id)] == [
        queued["SessionID"]
    ]
    assert AlertType.FUMO_DOWNLOAD_AND_UPDATE in recent_alerts(clients, phone.dev_id)


def test_alert_with_several_alerts_and_json_media_type(lab, register, clients):
    phone = register(attach=False)
    queued = queue(
        lab, phone.dev_id, commands=[["GET", "urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/Mod"]]
    )
    response = clients.of(phone).post(
        "/alert", json={"Alert": [FUMO_ALERT, {"AlertType": AlertType.CLIENT_INITIATED}]}
    )
    assert commands(response)["SessionID"] == queued["SessionID"]


def test_alert_is_for_devices_only(lab, register, clients):
    phone = register(attach=False)
    queue(lab, phone.dev_id, job="inventory")
    problem(
        post_alert(clients.account(), {"AlertType": AlertType.CLIENT_INITIATED}), 403, "forbidden"
    )
    assert len(by_dev(lab.operator.pending(), phone.dev_id)) == 1


def test_alert_answers_in_html_to_a_browser(lab, register, clients):
    # A browser signed in as an account is refused with a page, not JSON.
    page = html(clients.browser().post("/alert", json={"Alert": [FUMO_ALERT]}), 403)
    assert element_text(page, "error") == "forbidden"


def test_alert_media_type_is_the_dm_response(lab, register, clients):
    phone = register(attach=False)
    response = clients.of(phone).post(
        "/alert",
        content=b'{"Alert": [{"AlertType": "x.y"}]}',
        headers={"Content-Type": media.DM20_RESPONSE},
    )
    assert response.status_code == 204
