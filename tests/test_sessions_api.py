"""Sessions (CR x.1.1) over real HTTPS: list, start, report, rotate ids, abort."""

from __future__ import annotations

import threading

import httpx
import pytest

from dmlab.protocol import media

from helpers import (
    DEVINFO,
    FUMO,
    RIVAL,
    by_dev,
    commands,
    new_name,
    problem,
    put_status,
    queue,
    session_of,
)

#: Also against serve --workers 2 on PostgreSQL (tests/workers_lab.py).
pytestmark = pytest.mark.on_workers

MISSING = f"{DEVINFO}//DevInfo/NoSuchNode"


# GET /sessions/pending and /sessions/completed ----------------------------------
def test_pending_lists_queued_sessions_for_account_and_device(lab, register, clients):
    mine, other = register(attach=False), register(attach=False)
    first = queue(lab, mine.dev_id, job="inventory")
    second = queue(lab, mine.dev_id, job="firmware-update", version="2.0.0")
    queue(lab, other.dev_id, job="inventory")

    pending = by_dev(lab.operator.pending(), mine.dev_id)
    assert [s["SessionID"] for s in pending] == [first["SessionID"], second["SessionID"]]
    assert pending[0] == {
        "SessionID": first["SessionID"],
        "DevID": mine.dev_id,
        "Job": "inventory",
        "Origin": "server-initiated",
        "State": "pending",
        "Created": pending[0]["Created"],
    }
    assert pending[1]["Job"] == "firmware-update"

    # The device sees its own pending sessions, and only those.
    response = clients.of(mine).get("/sessions/pending")
    assert response.status_code == 200
    assert [s["SessionID"] for s in response.json()["Sessions"]] == [
        first["SessionID"],
        second["SessionID"],
    ]


def is_aborted(brief: dict) -> bool:
    """Aborted, as the CR's brief result shows it (lab choice brief-result=ok-failure)."""
    return brief["Result"] == "failure" and brief["Reason"] == "aborted"


def test_completed_shows_brief_results_ok_failure_aborted_expired(lab, register):
    phone = register()
    ok = queue(lab, phone.dev_id, job="inventory")
    assert phone.device.start_next().result == "OK"
    failing = queue(lab, phone.dev_id, commands=[["GET", MISSING], ["END"]])
    run = phone.device.start_next()
    assert run.rounds[0][1][0].sc == 404 and run.result == "failure"
    aborted = queue(lab, phone.dev_id, job="inventory")
    lab.operator.abort(aborted["SessionID"])
    expired = queue(lab, phone.dev_id, job="inventory", ttl=0)
    assert expired["Expires"] >= expired["Created"]

    completed = {s["SessionID"]: s for s in by_dev(lab.operator.completed(), phone.dev_id)}
    results = {sid: completed[sid]["Result"] for sid in completed}
    assert results[ok["SessionID"]] == "OK"
    assert results[failing["SessionID"]] == "failure"
    # The CR's brief result is OK or failure; Reason tells an abort or an expiry apart
    # (lab choice brief-result=ok-failure; extended: tests/test_choices.py).
    assert results[aborted["SessionID"]] == "failure" == results[expired["SessionID"]]
    assert completed[aborted["SessionID"]]["Reason"] == "aborted"
    assert completed[expired["SessionID"]]["Reason"] == "expired"
    assert completed[expired["SessionID"]]["Expires"] == expired["Expires"]
    assert completed[expired["SessionID"]]["Rounds"] == 0
    assert all(s["State"] == "completed" for s in completed.values())
    assert by_dev(lab.operator.pending(), phone.dev_id) == []
    # An expired session can no longer be started: nothing is pending.
    assert phone.device.start_next() is None


# POST /sessions/next and POST /sessions/id/{id} ---------------------------------
def test_next_answers_204_when_nothing_is_pending(register, clients):
    phone = register(attach=False)
    response = clients.of(phone).post("/sessions/next")
    assert response.status_code == 204
    assert response.content == b""


def test_next_starts_the_oldest_pending_session(lab, register, clients):
    phone = register(attach=False)
    first = queue(lab, phone.dev_id, job="inventory")
    second = queue(lab, phone.dev_id, commands=[["GET", f"{DEVINFO}//DevInfo/FwV"]])
    body = commands(clients.of(phone).post("/sessions/next"))
    assert body == {
        "SessionID": first["SessionID"],
        "CMD": [["GET", f"{DEVINFO}//"], ["GET", f"{FUMO}/*/State"], ["END"]],
    }
    pending = by_dev(lab.operator.pending(), phone.dev_id)
    assert [s["SessionID"] for s in pending] == [second["SessionID"]]


def test_next_accepts_an_opening_alert(lab, register, clients):
    phone = register(attach=False)
    queued = queue(lab, phone.dev_id, job="inventory")
    response = clients.of(phone).post(
        "/sessions/next",
        json={"Alert": [{"AlertType": "urn:oma:at:dm:2.0:ServerInitiatedMgmt", "Data": 7}]},
    )
    assert commands(response)["SessionID"] == queued["SessionID"]


def test_start_by_id_then_again_is_409(lab, register, clients):
    phone = register(attach=False)
    older = queue(lab, phone.dev_id, job="inventory")
    named = queue(lab, phone.dev_id, commands=[["GET", f"{DEVINFO}//DevInfo/Man"]])
    device = clients.of(phone)
    body = commands(device.post(f"/sessions/id/{named['SessionID']}"))
    assert body == {"SessionID": named["SessionID"], "CMD": [["GET", f"{DEVINFO}//DevInfo/Man"]]}
    problem(device.post(f"/sessions/id/{named['SessionID']}"), 409, "conflict")
    # The older one is untouched and still pending.
    assert [s["SessionID"] for s in by_dev(lab.operator.pending(), phone.dev_id)] == [
        older["SessionID"]
    ]


# PUT /sessions/id/{id} -------------------------------------------------------------
def test_put_rotates_the_session_id_and_the_old_one_is_spent(lab, register, clients):
    phone = register(attach=False)
    queued = queue(lab, phone.dev_id, job="firmware-update", version="2.0.0")
    device = clients.of(phone)
    first = commands(device.post("/sessions/next"))
    assert first["SessionID"] == queued["SessionID"]
    assert first["CMD"] == [["GET", f"{DEVINFO}//DevInfo/FwV"], ["GET", f"{FUMO}/fw1/State"]]

    report = [{"sc": 200, "Data": "1.0.0"}, {"sc": 200, "Data": 10}]
    second = commands(put_status(device, first["SessionID"], report))
    assert second["SessionID"] != first["SessionID"]
    assert [c[0] for c in second["CMD"]] == ["HGET", "EXEC", "END"]
    assert second["CMD"][0][1].endswith("/firmware/2.0.0/url")

    # The first id is spent: another report on it is a conflict (the same report again
    # is a retry, answered again: lab choice put-retry, tests/test_choices.py).
    other = [{"sc": 500}, {"sc": 500}]
    spent = problem(put_status(device, first["SessionID"], other), 409, "spent-session")
    assert "spent" in spent["detail"] and second["SessionID"] in spent["detail"]
    problem(device.post(f"/sessions/id/{first['SessionID']}"), 409)

    # The session still continues under its new id; END gets no status.
    end = put_status(device, second["SessionID"], [{"sc": 200}, {"sc": 202}])
    assert end.status_code == 204 and end.content == b""
    assert end.headers["OMADM-Result"] == "OK"
    problem(put_status(device, second["SessionID"], [{"sc": 500}, {"sc": 202}]), 409)

    done = session_of(lab, queued["SessionID"])
    assert done["State"] == "completed" and done["Result"] == "OK"
    assert done["IDs"] == [first["SessionID"], second["SessionID"]]
    assert done["SessionID"] == second["SessionID"] and done["Rounds"] == 2


def test_put_ends_with_failure_when_a_status_fails(lab, register, clients):
    phone = register(attach=False)
    queued = queue(
        lab, phone.dev_id, commands=[["GET", MISSING], ["GET", f"{DEVINFO}//DevInfo/FwV"]]
    )
    device = clients.of(phone)
    body = commands(device.post(f"/sessions/id/{queued['SessionID']}"))
    end = put_status(device, body["SessionID"], [{"sc": 404}, {"sc": 200, "Data": "1.0.0"}])
    assert end.status_code == 204 and end.headers["OMADM-Result"] == "failure"
    assert session_of(lab, queued["SessionID"])["Result"] == "failure"


def test_put_with_all_2xx_ends_ok_for_explicit_commands(lab, register, clients):
    phone = register(attach=False)
    queued = queue(lab, phone.dev_id, commands=[["GET", f"{DEVINFO}//DevInfo/FwV"], ["END"]])
    device = clients.of(phone)
    body = commands(device.post("/sessions/next"))
    end = put_status(device, body["SessionID"], [{"sc": 200, "Data": "1.0.0"}])
    assert end.status_code == 204 and end.headers["OMADM-Result"] == "OK"
    assert session_of(lab, queued["SessionID"])["Result"] == "OK"


def test_real_device_reports_404_for_a_missing_node(lab, register):
    phone = register()
    queued = queue(
        lab, phone.dev_id, commands=[["GET", f"{DEVINFO}//DevInfo/FwV"], ["GET", MISSING], ["END"]]
    )
    run = phone.device.start_next()
    assert [s.sc for s in run.rounds[0][1]] == [200, 404]
    assert run.rounds[0][1][0].data == "1.0.0"
    assert run.server_result == "failure"
    assert session_of(lab, queued["SessionID"])["Result"] == "failure"


# DELETE /session/id/{id} and DELETE /sessions/id/{id} --------------------------------
@pytest.mark.parametrize("path", ["/session/id/{}", "/sessions/id/{}"])
def test_abort_pending_by_account_both_spellings(lab, register, clients, path):
    phone = register(attach=False)
    queued = queue(lab, phone.dev_id, job="inventory")
    response = clients.account().delete(path.format(queued["SessionID"]))
    assert response.status_code == 200
    assert response.json()["State"] == "completed" and is_aborted(response.json())
    assert by_dev(lab.operator.pending(), phone.dev_id) == []
    assert is_aborted(session_of(lab, queued["SessionID"]))
    # Nothing left to start.
    assert clients.of(phone).post("/sessions/next").status_code == 204


@pytest.mark.parametrize("path", ["/session/id/{}", "/sessions/id/{}"])
def test_abort_pending_by_device(lab, register, clients, path):
    phone = register(attach=False)
    queued = queue(lab, phone.dev_id, job="inventory")
    response = clients.of(phone).delete(path.format(queued["SessionID"]))
    assert response.status_code == 200 and is_aborted(response.json())
    assert is_aborted(session_of(lab, queued["SessionID"]))


def test_abort_active_session_by_device_then_reporting_is_409(lab, register, clients):
    phone = register(attach=False)
    queue(lab, phone.dev_id, job="firmware-update")
    device = clients.of(phone)
    first = commands(device.post("/sessions/next"))
    second = commands(
        put_status(
            device, first["SessionID"], [{"sc": 200, "Data": "1.0.0"}, {"sc": 200, "Data": 10}]
        )
    )
    # Aborting needs the id in force: the spent one is a conflict.
    problem(device.delete(f"/session/id/{first['SessionID']}"), 409)
    aborted = device.delete(f"/session/id/{second['SessionID']}")
    assert aborted.status_code == 200 and is_aborted(aborted.json())
    late = problem(put_status(device, second["SessionID"], [{"sc": 200}, {"sc": 202}]), 409)
    assert late["detail"] == f"session {second['SessionID']} was aborted", late
    assert is_aborted(session_of(lab, first["SessionID"]))


def test_abort_active_session_by_account(lab, register, clients):
    phone = register(attach=False)
    queued = queue(lab, phone.dev_id, job="inventory")
    device = clients.of(phone)
    commands(device.post("/sessions/next"))
    response = clients.account().delete(f"/sessions/id/{queued['SessionID']}")
    assert response.status_code == 200 and is_aborted(response.json())
    problem(put_status(device, queued["SessionID"], [{"sc": 200}, {"sc": 200}]), 409)


def test_abort_completed_session_is_409(lab, register, clients):
    phone = register()
    queued = queue(lab, phone.dev_id, job="inventory")
    phone.device.start_next()
    body = problem(clients.account().delete(f"/session/id/{queued['SessionID']}"), 409, "conflict")
    assert "completed (OK)" in body["detail"]
    problem(clients.of(phone).delete(f"/sessions/id/{queued['SessionID']}"), 409)
    aborted = queue(lab, phone.dev_id, job="inventory")
    lab.operator.abort(aborted["SessionID"])
    again = problem(clients.account().delete(f"/session/id/{aborted['SessionID']}"), 409)
    # The detail says how the session really ended, not "completed (aborted)".
    assert again["detail"] == f"session {aborted['SessionID']} was already aborted"
    assert session_of(lab, queued["SessionID"])["Result"] == "OK"


# Isolation ------------------------------------------------------------------------
def test_accounts_do_not_see_each_others_sessions(lab, register, clients):
    mine, theirs = register(), register(RIVAL[0])
    my_session = queue(lab, mine.dev_id, job="inventory")
    their_session = queue(lab, theirs.dev_id, job="inventory", account=RIVAL[0])

    mine_pending = clients.account().get("/sessions/pending").json()["Sessions"]
    theirs_pending = clients.account(RIVAL[0]).get("/sessions/pending").json()["Sessions"]
    assert my_session["SessionID"] in {s["SessionID"] for s in mine_pending}
    assert their_session["SessionID"] not in {s["SessionID"] for s in mine_pending}
    assert {s["DevID"] for s in theirs_pending} == {theirs.dev_id}

    # Aborting the other account's session: 404, as if it did not exist.
    problem(clients.account().delete(f"/session/id/{their_session['SessionID']}"), 404, "not-found")
    mine.device.start_next()
    theirs.device.start_next()
    mine_done = clients.account().get("/sessions/completed").json()["Sessions"]
    theirs_done = clients.account(RIVAL[0]).get("/sessions/completed").json()["Sessions"]
    assert theirs.dev_id not in {s["DevID"] for s in mine_done}
    assert {s["DevID"] for s in theirs_done} == {theirs.dev_id}


@pytest.mark.parametrize("same_account", [True, False], ids=["same-account", "other-account"])
def test_a_device_cannot_touch_another_devices_session(lab, register, clients, same_account):
    victim = register(attach=False)
    intruder = register(attach=False) if same_account else register(RIVAL[0], attach=False)
    pending = queue(lab, victim.dev_id, job="inventory")
    active = queue(lab, victim.dev_id, job="inventory")
    commands(clients.of(victim).post(f"/sessions/id/{active['SessionID']}"))
    other = clients.of(intruder)

    problem(other.post(f"/sessions/id/{pending['SessionID']}"), 404, "not-found")
    problem(put_status(other, active["SessionID"], [{"sc": 200}, {"sc": 200}]), 404, "not-found")
    for path in ("/session/id/{}", "/sessions/id/{}"):
        problem(other.delete(path.format(pending["SessionID"])), 404)
        problem(other.delete(path.format(active["SessionID"])), 404)
    assert other.post("/sessions/next").status_code == 204
    listed = other.get("/sessions/pending").json()["Sessions"]
    assert listed == []

    # The victim's sessions are untouched.
    assert session_of(lab, pending["SessionID"])["State"] == "pending"
    end = put_status(clients.of(victim), active["SessionID"], [{"sc": 200}, {"sc": 200}])
    assert end.status_code == 204


def test_device_and_account_credentials_keep_to_their_resources(lab, register, clients):
    phone = register(attach=False)
    queued = queue(lab, phone.dev_id, job="inventory")
    account = clients.account()
    for response in (
        account.post("/sessions/next"),
        account.post(f"/sessions/id/{queued['SessionID']}"),
        put_status(account, queued["SessionID"], []),
    ):
        problem(response, 403, "forbidden")
    device = clients.of(phone)
    for response in (
        device.get("/devices"),
        device.get("/devices/new"),
        device.post("/devices/new", json={"devId": "IMEI:999999999"}),
        device.get(f"/devices/{phone.dev_id}"),
    ):
        problem(response, 403, "forbidden")
    assert session_of(lab, queued["SessionID"])["State"] == "pending"


@pytest.mark.parametrize(
    "who", ["nobody", "wrong-password", "wrong-secret", "other-devid-header", "not-basic"]
)
def test_bad_credentials_are_401_with_a_challenge(lab, register, clients, who):
    # Names of their own: failed logins count against a name (ten lock it out).
    account = new_name("acct")
    lab.add_account(account, "right-password")
    phone = register(attach=False, dev_id=new_name("dev"))
    client = {
        "nobody": lambda: clients.anonymous(),
        "wrong-password": lambda: clients.account(account, "wrong-password"),
        "wrong-secret": lambda: clients.device(phone.dev_id, phone.secret + "x"),
        "other-devid-header": lambda: clients.device(
            phone.dev_id, phone.secret, devid_header="IMEI:000000000000001"
        ),
        "not-basic": lambda: clients.anonymous(),
    }[who]()
    headers = {"Authorization": "Bearer abc"} if who == "not-basic" else {}
    for method, path in (
        ("GET", "/sessions/pending"),
        ("GET", "/sessions/completed"),
        ("POST", "/sessions/next"),
        ("DELETE", "/session/id/abc"),
        ("GET", "/devices"),
        ("POST", "/alert"),
    ):
        response = client.request(method, path, headers=headers)
        problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    # The right credentials still work afterwards.
    assert clients.account(account, "right-password").get("/devices").status_code == 200
    assert clients.of(phone).get("/sessions/pending").status_code == 200


# Atomicity ------------------------------------------------------------------------
def race(clients: list[httpx.Client], path: str) -> list[httpx.Response]:
    """POST to one path from each client at the same moment, one thread each."""
    barrier = threading.Barrier(len(clients))
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def post(client: httpx.Client) -> None:
        barrier.wait()
        response = client.post(path)
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=post, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def test_two_concurrent_starts_of_one_session_have_one_winner(lab, register, clients):
    phone = register(attach=False)
    for _ in range(5):
        queued = queue(lab, phone.dev_id, job="inventory")
        racers = [clients.of(phone), clients.of(phone)]
        for racer in racers:  # open the TLS connections before the race
            assert racer.get("/sessions/pending").status_code == 200
        answers = race(racers, f"/sessions/id/{queued['SessionID']}")
        assert sorted(r.status_code for r in answers) == [200, 409]
        winner = next(r for r in answers if r.status_code == 200)
        loser = next(r for r in answers if r.status_code == 409)
        assert commands(winner)["SessionID"] == queued["SessionID"]
        problem(loser, 409, "conflict")
        lab.operator.abort(queued["SessionID"])


def test_two_concurrent_next_calls_start_one_session_once(lab, register, clients):
    phone = register(attach=False)
    queued = queue(lab, phone.dev_id, job="inventory")
    racers = [clients.of(phone), clients.of(phone)]
    for racer in racers:
        assert racer.get("/sessions/pending").status_code == 200
    answers = race(racers, "/sessions/next")
    # One starts the session; the other, coming second, gets the same round again
    # (lab choice session-resume), not a second start: one session, one round.
    assert [r.status_code for r in answers] == [200, 200]
    assert [commands(r)["SessionID"] for r in answers] == [queued["SessionID"]] * 2
    assert [s["SessionID"] for s in by_dev(lab.operator.active(), phone.dev_id)] == [
        queued["SessionID"]
    ]
    assert by_dev(lab.operator.pending(), phone.dev_id) == []


def test_session_media_type_accepts_dm20_and_json_bodies(lab, register, clients):
    phone = register(attach=False)
    device = clients.of(phone)
    for content_type in (
        media.DM20_RESPONSE,
        media.JSON,
        media.DM20_REQUEST,
        media.JSON + "; charset=utf-8",
    ):
        queue(lab, phone.dev_id, commands=[["GET", f"{DEVINFO}//DevInfo/FwV"]])
        body = commands(device.post("/sessions/next"))
        end = device.put(
            f"/sessions/id/{body['SessionID']}",
            content=b'{"Status": [{"sc": 200}]}',
            headers={"Content-Type": content_type},
        )
        assert end.status_code == 204, content_type
