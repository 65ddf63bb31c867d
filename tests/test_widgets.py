"""The widgets against a real lab, driven the way notebooks drive them: ``.click()``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dmlab import Lab
from dmlab.widgets import COLUMNS, ControlPanel, SessionTable, TraceView, dashboard

from helpers import HASH_COST, Clients

PHONE = "IMEI:490154203237518"
TABLET = "IMEI:356938035643809"


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab(hash_cost=HASH_COST) as running:
        running.add_device(PHONE)
        running.add_device(TABLET)
        yield running


def test_fire_alert_with_nothing_pending(lab: Lab) -> None:
    panel = ControlPanel(lab)
    panel.device.value = PHONE
    panel.fire.click()
    assert (
        panel.last
        == f"{PHONE} sent alert ClientInitiatedMgmt; the server recorded it and opened no session (204)"
    )
    assert "opened no session" in panel.result.value
    alerts = [e for e in lab.trace if e.path == "/alert"]
    assert [(e.source, e.status, e.request) for e in alerts] == [
        ("device", 204, "Alert ClientInitiatedMgmt")
    ]


def test_fire_alert_runs_a_waiting_session(lab: Lab) -> None:
    queued = lab.operator.request_session(PHONE, job="inventory", notify=False)["SessionID"]
    panel = ControlPanel(lab)
    table = SessionTable(lab)
    assert table.frame().to_dict("records") == [
        {
            "session id": queued,
            "device": PHONE,
            "job": "inventory",
            "origin": "server-initiated",
            "state": "pending",
            "result": "",
            "rounds": 0,
        }
    ]
    panel.device.value = PHONE
    panel.fire.click()
    assert panel.last.startswith(
        f"{PHONE} sent alert ClientInitiatedMgmt; the server answered with "
        f"session {queued}: 1 round(s), result OK"
    )
    row = table.frame().iloc[0]
    assert (row["state"], row["result"], row["rounds"]) == ("completed", "OK", 1)


def test_fumo_generic_alert(lab: Lab) -> None:
    panel = ControlPanel(lab)
    panel.device.value = TABLET
    panel.alert_type.value = "FUMO generic alert"
    panel.fire.click()
    assert panel.last.startswith(f"{TABLET} sent alert FUMO generic alert")
    record = lab.services.store.alerts_of(TABLET, 1)[0]
    assert (record.alert.alert_type, record.alert.data) == (
        "urn:oma:at:fumo:1.0:DownloadAndUpdate",
        {"DM1x": 200},
    )


def test_queue_two_devices_and_the_table_follows(lab: Lab) -> None:
    panel = ControlPanel(lab)
    table = SessionTable(lab)
    assert table.frame().empty and list(table.frame().columns) == list(COLUMNS)
    panel.devices.value = (PHONE, TABLET)
    panel.job.value = "firmware-update"
    panel.queue.click()
    assert panel.last.startswith("queued 2 firmware-update session(s); ")
    assert panel.last.count("completed OK after 2 round(s), ids ") == 2
    frame = table.frame()
    assert sorted(frame["device"]) == [TABLET, PHONE]
    assert set(frame["state"]) == {"completed"} and set(frame["result"]) == {"OK"}
    assert list(frame["rounds"]) == [2, 2]
    # The table shows each session's last id: the one a firmware-update's second round got.
    completed = {b["DevID"]: b for b in lab.operator.completed()}
    for _, row in frame.iterrows():
        assert row["session id"] == completed[row["device"]]["IDs"][-1]
    assert repr(table) == "SessionTable(pending=0, active=0, completed=2)"
    assert "firmware-update" in table.html.value


def test_queue_explicit_commands(lab: Lab) -> None:
    panel = ControlPanel(lab)
    panel.devices.value = (PHONE,)
    panel.job.value = "commands"
    panel.commands.value = '[["GET", "urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/Man"], ["END"]]'
    panel.queue.click()
    assert "completed OK after 1 round(s)" in panel.last
    assert lab.devices[PHONE].runs[-1].rounds[0][1][0].data == "dmlab"


def test_refusals_are_reported_not_raised(lab: Lab) -> None:
    panel = ControlPanel(lab)
    panel.queue.click()
    assert panel.last == "refused: choose at least one device under Devices"
    panel.devices.value = (PHONE,)
    panel.job.value = "commands"
    panel.commands.value = "not json"
    panel.queue.click()
    assert panel.last.startswith("refused: the commands are not JSON")
    panel.session.value = "0000000000000000"
    panel.abort.click()
    assert panel.last.startswith("refused: HTTP 404")
    assert "color:#b00020" in panel.result.value


def test_abort_a_pending_session(lab: Lab) -> None:
    table = SessionTable(lab)
    panel = ControlPanel(lab)
    queued = lab.operator.request_session(PHONE, job="inventory", notify=False)["SessionID"]
    assert queued in panel.session.options  # offered from the session.queued event
    panel.session.value = queued
    panel.abort.click()
    assert panel.last == f"aborted session {queued} of {PHONE}: completed (failure: aborted)"
    assert table.frame()[["session id", "state", "result"]].values.tolist() == [
        [queued, "completed", "aborted"]
    ]
    panel.abort.click()
    assert panel.last.startswith("refused: HTTP 409")


def test_devices_added_later_are_offered(lab: Lab) -> None:
    panel = ControlPanel(lab)
    assert repr(panel) == "ControlPanel(devices=2, accounts=1)"
    lab.add_device("IMEI:011111111111111")
    lab.operator.request_session("IMEI:011111111111111", job="inventory")
    lab.settle()
    assert "IMEI:011111111111111" in panel.devices.options
    assert repr(panel) == "ControlPanel(devices=3, accounts=1)"


def test_other_accounts_sessions_are_listed_too(lab: Lab) -> None:
    lab.add_account("rival", "rival-password")
    lab.add_device("IMEI:022222222222222", account="rival")
    table = SessionTable(lab)
    lab.operators["rival"].request_session("IMEI:022222222222222", job="inventory")
    lab.settle()
    assert table.frame()["device"].tolist() == ["IMEI:022222222222222"]


def test_trace_view_follows_the_trace(lab: Lab) -> None:
    view = TraceView(lab)
    assert view.exchanges() == [] and "no exchanges yet" in view.html.value
    lab.operator.request_session(PHONE, job="inventory")
    lab.settle()
    assert view.html.value.startswith("<svg")
    assert repr(view) == "TraceView(exchanges=4)"
    assert view.diagram().text().splitlines()[0] == (
        "sequence diagram: 7 arrows; lifelines: device, operator, server"
    )
    view.mark()
    assert view.exchanges() == []
    view.close()
    lab.operator.request_session(PHONE, job="inventory")
    lab.settle()
    assert "no exchanges yet" in view.html.value  # closed views stop listening


def test_dashboard_and_its_text_form(lab: Lab) -> None:
    board = dashboard(lab)
    assert repr(board) == "Dashboard(devices=2, sessions=0, exchanges=0)"
    bundle = board._repr_mimebundle_()
    assert bundle["text/plain"] == repr(board)
    board.panel.devices.value = (PHONE,)
    board.panel.queue.click()
    assert repr(board) == "Dashboard(devices=2, sessions=1, exchanges=4)"
    board.close()


def test_queue_without_notifying_then_abort_from_the_panel(lab: Lab) -> None:
    """Finding 4: the panel can leave a session pending (no DM Notification), offers
    only ids that can still be aborted, and its Abort then succeeds."""
    panel = ControlPanel(lab)
    panel.devices.value = (PHONE,)
    panel.queue.click()  # notified: the phone runs it at once
    done = lab.operator.completed()[-1]["SessionID"]
    assert "completed OK" in panel.last and done not in panel.session.options
    panel.notify.value = False
    panel.queue.click()
    assert panel.last.endswith("still pending (the device has not called yet)")
    (waiting,) = panel.session.options
    assert [s["SessionID"] for s in lab.operator.pending()] == [waiting]
    panel.session.value = waiting
    panel.abort.click()
    assert panel.last == f"aborted session {waiting} of {PHONE}: completed (failure: aborted)"
    assert panel.session.options == ()


def test_ids_leave_the_abort_box_when_their_session_ends(lab: Lab) -> None:
    panel = ControlPanel(lab)
    phone = lab.devices[PHONE]
    queued = lab.operator.request_session(
        PHONE, job="firmware-update", version="2.0.0", notify=False
    )
    assert panel.session.options == (queued["SessionID"],)
    phone.start(queued["SessionID"])
    lab.settle()
    assert panel.session.options == ()  # two rounds, two ids, then completed


def test_session_steps_show_a_subtree_as_whole_json(lab: Lab) -> None:
    import json

    phone = lab.devices[PHONE]
    lab.operator.request_session(
        PHONE, commands=[["GET", "urn:oma:mo:oma-dm-devinfo:1.0//DevInfo"], ["END"]]
    )
    lab.settle()
    first, end = phone.runs[-1].steps()
    assert (first["command"], first["sc"], end["command"], end["sc"]) == ("GET", 200, "END", "—")
    assert json.loads(first["Data"])["DevID"] == PHONE  # whole, and JSON


def test_exercise_checks_say_whether_the_answer_holds() -> None:
    from dmlab.exercises import check

    assert repr(check(1, 1, "rounds")) == "✓ your answer holds: you said 1; rounds: 1"
    assert repr(check(2, 1, "rounds")) == "✗ not yet: you said 2; rounds: 1"
    assert not check(..., 1, "rounds").holds


def test_hold_and_release_a_devices_notifications(lab: Lab) -> None:
    phone = lab.devices[PHONE]
    held = lab.hold_notifications(PHONE)
    lab.operator.request_session(PHONE, job="inventory")
    lab.settle()
    assert len(held) == 1 and phone.runs == []
    lab.release_notifications(PHONE)
    lab.operator.request_session(PHONE, job="inventory")
    lab.settle()
    assert len(held) == 1 and len(phone.runs) == 1


@pytest.mark.parametrize("listing", ["own-resource", "hidden"])
def test_the_table_shows_sessions_in_progress_on_its_first_load(listing: str) -> None:
    """A table opened while a session runs lists it at once, not after its next event
    (issue 10's last note), wherever the lab lists sessions in progress."""
    with Lab(hash_cost=HASH_COST, choices={"active-listing": listing}) as lab:
        secret = lab.operator.register(PHONE)["secret"]  # no device attached: we are it
        queued = lab.operator.request_session(PHONE, job="inventory", notify=False)
        with Clients(lab) as clients:
            started = clients.device(PHONE, secret).post("/sessions/next")
        assert started.status_code == 200, started.text
        table = SessionTable(lab)
        rows = table.frame().to_dict("records")
        table.close()
    if listing == "hidden":  # no listing has it: only its next event would show it
        assert rows == []
        return
    assert rows == [
        {
            "session id": queued["SessionID"],
            "device": PHONE,
            "job": "inventory",
            "origin": "server-initiated",
            "state": "active",
            "result": "",
            "rounds": 1,
        }
    ]
