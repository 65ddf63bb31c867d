"""Lab choices (issue 12): one registry, switchable, validated, shown from one place."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dmlab import Lab
from dmlab import choices as registry
from dmlab.__main__ import build_parser
from dmlab.choices import CHOICES, Choices, UnknownChoice
from dmlab.conformance import Verdict
from dmlab.conformance import run as run_kit
from dmlab.conformance.server import Dev, statuses_for
from dmlab.protocol import media
from dmlab.protocol.provenance import CHOICE_IDS, choice

from helpers import (
    ACCOUNT,
    HASH_COST,
    RIVAL,
    Clients,
    by_dev,
    commands,
    new_dev_id,
    post_alert,
    problem,
    put_status,
    queue,
    session_of,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

#: How prose names a choice: "lab choice `x-y`", "lab choice x-y", "▸ lab choice x-y".
CITED = re.compile(r"lab choice\**:?\**\s+`?([a-z0-9]+(?:-[a-z0-9]+)+)`?")


def _notebook_text(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    parts = []
    for cell in cells:
        parts.append("".join(cell["source"]))
        for output in cell.get("outputs", ()):
            for value in output.get("data", {}).values():
                parts.append("".join(value) if isinstance(value, list) else str(value))
            parts.append("".join(output.get("text", "")))
    return "\n".join(parts)


# The registry --------------------------------------------------------------------------
def test_every_choice_id_is_unique_and_every_switchable_default_is_its_first_option():
    ids = [c.id for c in CHOICES]
    assert len(ids) == len(set(ids))
    for c in CHOICES:
        if c.options:
            assert c.default == c.options[0].value
            assert len(c.options) >= 2, c.id
            assert c.clause and c.question and c.where, c.id
            assert all(o.purposes for o in c.options if o.departs), c.id


def test_readme_choices_table_is_generated_from_the_registry():
    assert registry.main(["--check"]) == 0


@pytest.mark.parametrize("path", [ROOT / "README.md", *NOTEBOOKS], ids=lambda p: p.name)
def test_documents_cite_only_registered_choice_ids(path: Path):
    text = _notebook_text(path) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8")
    unknown = {cited for cited in CITED.findall(text) if cited not in CHOICE_IDS}
    assert not unknown, f"{path.name} cites lab choices nobody declared: {sorted(unknown)}"


#: A marker that introduces the others ("… is marked **▸ lab choice**:") names no choice.
INTRO = re.compile(r"▸ lab choice(\*\*(\.|:| so | marks)|, for this notebook only)")
MARKER = re.compile(r"▸ lab choice(?:\*\*)? `([a-z0-9-]+)`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_lab_choice_marker_names_a_registered_choice(path: Path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    text = " ".join(
        re.sub(r"\s+", " ", "".join(c["source"])) for c in cells if c["cell_type"] == "markdown"
    )
    markers = text.count("▸ lab choice")
    named = MARKER.findall(text)
    assert markers == len(named) + len(INTRO.findall(text)), (
        f"{path.name}: a ▸ lab choice marker names no choice id"
    )
    assert set(named) <= CHOICE_IDS, sorted(set(named) - CHOICE_IDS)


def test_every_registered_choice_is_shown_by_a_notebook():
    shown = "\n".join(_notebook_text(p) for p in NOTEBOOKS)
    missing = [c.id for c in CHOICES if c.id not in shown]
    assert not missing, f"no notebook shows these lab choices: {missing}"


# Validation ------------------------------------------------------------------------------
def test_an_unknown_choice_id_is_refused_with_the_valid_ones():
    with pytest.raises(UnknownChoice) as refused:
        Choices({"session-idz": "stable"})
    assert "session-idz" in str(refused.value) and "session-ids" in str(refused.value)


def test_an_unknown_option_is_refused_with_the_valid_ones():
    with pytest.raises(UnknownChoice) as refused:
        Lab(choices={"session-ids": "sticky"})
    assert "sticky" in str(refused.value)
    assert "new-per-put" in str(refused.value) and "stable" in str(refused.value)


def test_a_fixed_choice_cannot_be_switched():
    with pytest.raises(UnknownChoice, match="no switchable lab choice 'tls-floor'"):
        Choices({"tls-floor": "1.1"})


def test_serve_refuses_a_bad_choice_before_starting(capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", "--data", str(tmp_path), "--choice", "put-retry=x"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "put-retry" in err and "replay" in err and "conflict" in err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--data", str(tmp_path), "--choice", "put-retry"])
    assert "ID=VALUE" in capsys.readouterr().err


def test_serve_takes_repeated_choices():
    args = build_parser().parse_args(
        [
            "serve",
            "--data",
            "x",
            "--choice",
            "session-ids=stable",
            "--choice",
            "abort-path=singular",
        ]
    )
    assert dict(args.choice) == {"session-ids": "stable", "abort-path": "singular"}


# GET /choices and the choices in force -------------------------------------------------------
@pytest.fixture(scope="module")
def singular_lab() -> Iterator[Lab]:
    with Lab(hash_cost=HASH_COST, choices={"abort-path": "singular"}) as running:
        yield running


def _in_force(lab: Lab) -> dict[str, str]:
    with Clients(lab) as made:
        answer = made.anonymous().get("/choices")
    assert answer.status_code == 200, answer.text
    return {c["id"]: c["inForce"] for c in answer.json()["Choices"] if c["options"]}


def test_get_choices_lists_every_choice_with_the_defaults_in_force(lab):
    with Clients(lab) as made:
        answer = made.anonymous().get("/choices")
    rows = answer.json()["Choices"]
    assert [r["id"] for r in rows] == [c.id for c in CHOICES]
    assert _in_force(lab) == {c.id: c.default for c in CHOICES if c.options}
    stable = next(r for r in rows if r["id"] == "session-ids")["options"][1]
    assert stable == {
        "value": "stable",
        "wire": stable["wire"],
        "departs": True,
        "purposes": ["TP/SESS/PUT/001"],
        "risk": choice("session-ids").option("stable").risk,
    }


def test_get_choices_shows_the_option_a_lab_was_started_with(singular_lab):
    assert _in_force(singular_lab)["abort-path"] == "singular"


def test_get_choices_as_a_page(lab):
    with Clients(lab) as made:
        page = made.anonymous(accept=media.HTML).get("/choices")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="choice-put-retry"' in page.text and "<strong>in force</strong>" in page.text


# abort-path -------------------------------------------------------------------------------
def _active_session(lab: Lab, made: Clients, registered) -> tuple[str, object]:
    sid = queue(lab, registered.dev_id, job="inventory")["SessionID"]
    client = made.of(registered)
    commands(client.post(f"/sessions/id/{sid}"))
    return sid, client


@pytest.mark.parametrize("path", ["/session/id/{}", "/sessions/id/{}"])
def test_abort_path_both_aborts_at_either_spelling(lab, register, path):
    with Clients(lab) as made:
        sid, client = _active_session(lab, made, register(attach=False))
        answer = client.delete(path.format(sid))  # type: ignore[attr-defined]
        assert answer.status_code == 200, answer.text
        assert answer.json()["Reason"] == "aborted"


def test_abort_path_singular_serves_only_the_crs_spelling(singular_lab):
    account = singular_lab.operator
    dev_id = "IMEI:490154203237000"
    secret = account.register(dev_id, name="t", man="m", mod="m")["secret"]
    with Clients(singular_lab) as made:
        client = made.device(dev_id, secret)
        sid = queue(singular_lab, dev_id, job="inventory")["SessionID"]
        commands(client.post(f"/sessions/id/{sid}"))
        plural = client.delete(f"/sessions/id/{sid}")
        assert plural.status_code == 405
        assert put_status(client, sid, []).status_code != 409  # still active: not aborted
        assert client.delete(f"/session/id/{sid}").status_code == 200


# Agreement with the conformance kit ---------------------------------------------------------
OPTIONS = [(c.id, o.value) for c in CHOICES for o in c.options if c.judged_by]
BAD = {Verdict.FAIL, Verdict.WARN}


@pytest.mark.parametrize(("choice_id", "value"), OPTIONS, ids=[f"{k}={v}" for k, v in OPTIONS])
def test_the_conformance_kit_agrees_with_the_registry_on_every_option(choice_id, value, tmp_path):
    """An option the registry says departs from the CR makes its purposes FAIL or WARN;
    any other option passes every purpose that judges the choice."""
    c = choice(choice_id)
    option = c.option(value)
    assert set(option.purposes) <= set(c.judged_by)
    with Lab(hash_cost=HASH_COST, choices={choice_id: value}) as running:
        running.add_account(*RIVAL)
        ca = str(running.ca.write_ca(tmp_path / "ca.pem"))
        result = run_kit(
            running.url, cafile=ca, accounts=[ACCOUNT, RIVAL], only=",".join(c.judged_by)
        )
    verdicts = {o.purpose.id: o.verdict for o in result.outcomes}
    assert set(verdicts) == set(c.judged_by)
    broken = {pid for pid, verdict in verdicts.items() if verdict in BAD}
    if option.departs:
        assert set(option.purposes) <= broken, verdicts
    else:
        assert not broken, {pid: result.outcome(pid).reason for pid in broken}


# session-ids and put-retry ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def stable_lab() -> Iterator[Lab]:
    with Lab(hash_cost=HASH_COST, choices={"session-ids": "stable"}) as running:
        yield running


@pytest.fixture(scope="module")
def conflict_lab() -> Iterator[Lab]:
    with Lab(hash_cost=HASH_COST, choices={"put-retry": "conflict"}) as running:
        yield running


class _Phone:
    """A device speaking raw HTTP, so a test can lose an answer on purpose."""

    def __init__(self, lab: Lab, made: Clients) -> None:
        dev_id = new_dev_id()
        secret = lab.operator.register(dev_id, name="t", man="m", mod="m")["secret"]
        self.lab, self.dev = lab, Dev(dev_id, secret, ACCOUNT[0], True)
        self.http = made.device(dev_id, secret)

    def first_round(self) -> dict:
        queue(self.lab, self.dev.dev_id, job="firmware-update", version="2.0.0")
        return commands(self.http.post("/sessions/next"))

    def report(self, package: dict, *, fail: bool = False, **extra) -> httpx.Response:
        statuses = statuses_for(package["CMD"], self.dev, fail=fail)
        return put_status(self.http, package["SessionID"], statuses, **extra)

    def result(self) -> str:
        listed = by_dev(self.lab.operator.completed(), self.dev.dev_id)
        return listed[0]["Result"] if listed else "not completed"


def test_session_ids_new_per_put_gives_each_round_a_new_id(lab):
    with Clients(lab) as made:
        phone = _Phone(lab, made)
        first = phone.first_round()
        second = commands(phone.report(first))
        assert second["SessionID"] != first["SessionID"]
        assert phone.report(second).status_code == 204


def test_session_ids_stable_keeps_one_id_for_the_whole_session(stable_lab):
    with Clients(stable_lab) as made:
        phone = _Phone(stable_lab, made)
        first = phone.first_round()
        answer = phone.report(first)
        second = commands(answer)  # checks Location too
        assert second["SessionID"] == first["SessionID"]
        assert answer.headers["location"] == f"/sessions/id/{first['SessionID']}"
        assert phone.report(second).status_code == 204
        assert phone.result() == "OK"


def test_session_ids_stable_takes_a_retried_put_as_the_next_rounds_report(stable_lab):
    """The risk a stable id leaves: the server cannot tell a retry from the next report."""
    with Clients(stable_lab) as made:
        phone = _Phone(stable_lab, made)
        first = phone.first_round()
        phone.report(first)  # its answer is lost
        retry = phone.report(first)
        assert retry.status_code in (200, 204, 400)
        assert retry.status_code != 200 or retry.json()["CMD"] != first["CMD"]


def test_put_retry_replay_answers_a_repeated_put_again_and_the_session_goes_on(lab):
    """Issue 12's finding: the answer to a PUT is lost; the device's retry used to get 409
    and the session hung."""
    with Clients(lab) as made:
        phone = _Phone(lab, made)
        first = phone.first_round()
        lost = phone.report(first)
        retry = phone.report(first)
        assert retry.status_code == 200, retry.text
        assert retry.json() == lost.json() and retry.headers["location"] == lost.headers["location"]
        final = phone.report(commands(retry))
        assert final.status_code == 204
        again = phone.report(commands(retry))  # the 204 is lost too
        assert again.status_code == 204 and again.headers["omadm-result"] == "OK"
        assert phone.result() == "OK"


def test_put_retry_replay_still_refuses_a_different_report_on_a_spent_id(lab):
    with Clients(lab) as made:
        phone = _Phone(lab, made)
        first = phone.first_round()
        second = commands(phone.report(first))
        problem(phone.report(first, fail=True), 409)
        assert phone.report(second).status_code == 204


def test_put_retry_replay_records_a_repeated_reports_alerts_once(lab):
    alert = {"AlertType": "urn:oma:at:dmlab:1.0:Note", "Data": {"n": 1}}
    with Clients(lab) as made:
        phone = _Phone(lab, made)
        first = phone.first_round()
        before = len(lab.services.store.alerts_of(phone.dev.dev_id))
        phone.report(first, Alert=[alert])
        assert phone.report(first, Alert=[alert]).status_code == 200
        assert len(lab.services.store.alerts_of(phone.dev.dev_id)) == before + 1


def test_put_retry_conflict_refuses_the_repeated_put_and_the_session_hangs(conflict_lab):
    with Clients(conflict_lab) as made:
        phone = _Phone(conflict_lab, made)
        first = phone.first_round()
        second = commands(phone.report(first))  # its answer is lost
        problem(phone.report(first), 409)
        # Only resuming (lab choice session-resume, the default) gets the device going.
        assert commands(phone.http.post("/sessions/next")) == second
        assert phone.result() == "not completed"


# Weighing two readings side by side -----------------------------------------------------------
def test_compare_shows_what_a_lost_put_answer_costs_under_each_put_retry_option():
    from dmlab.compare import compare, lost_put_answer

    weighed = compare(
        lost_put_answer, {"put-retry": "conflict"}, {"put-retry": "replay"}, hash_cost=HASH_COST
    )
    table = weighed.table()
    conflict, replay = table["put-retry=conflict"], table["put-retry=replay"]
    # Under conflict the retry is refused; POST /sessions/next then re-sends the round
    # (lab choice session-resume), at the cost of a refusal and two more round trips.
    assert conflict["session result"] == "OK"
    assert conflict["refused answers (4xx)"] == 1
    assert conflict["round trips (device)"] == 5  # next, PUT, PUT (409), next, PUT round 2
    assert replay["session result"] == "OK" and replay["refused answers (4xx)"] == 0
    assert replay["round trips (device)"] == 4  # next, PUT, the same PUT again, PUT round 2
    assert "✗ LOST" in weighed.a.diagram.text() and "409" in weighed.a.diagram.text()
    bundle = weighed._repr_mimebundle_()
    assert bundle["text/html"].count("<svg") == 2 and "put-retry=replay" in bundle["text/plain"]


# end-report, alert-opens, brief-result ----------------------------------------------------------
#: The defaults spelled out: the old registry refused them (the choices were fixed).
DEFAULTS = {"end-report": "report", "alert-opens": "oldest-pending", "brief-result": "ok-failure"}


@pytest.fixture(scope="module")
def defaults_lab() -> Iterator[Lab]:
    with Lab(hash_cost=HASH_COST, choices=DEFAULTS) as running:
        yield running


@pytest.fixture(scope="module")
def no_end_report_lab() -> Iterator[Lab]:
    with Lab(hash_cost=HASH_COST, choices={"end-report": "none"}) as running:
        yield running


@pytest.fixture(scope="module")
def new_session_lab() -> Iterator[Lab]:
    with Lab(hash_cost=HASH_COST, choices={"alert-opens": "new-session"}) as running:
        yield running


@pytest.fixture(scope="module")
def extended_lab() -> Iterator[Lab]:
    with Lab(hash_cost=HASH_COST, choices={"brief-result": "extended"}) as running:
        yield running


CLIENT_INITIATED = {"AlertType": "urn:oma:at:dm:2.0:ClientInitiatedMgmt"}
SERVER_INITIATED = {"AlertType": "urn:oma:at:dm:2.0:ServerInitiatedMgmt"}


def test_end_report_report_takes_the_end_rounds_statuses_and_completes_on_that_put(
    defaults_lab,
):
    with Clients(defaults_lab) as made:
        phone = _Phone(defaults_lab, made)
        last = commands(phone.report(phone.first_round()))
        assert last["CMD"][-1] == ["END"]
        assert phone.result() == "not completed"  # the END round is still to be reported
        end = phone.report(last, fail=True)
        assert end.status_code == 204 and end.headers["omadm-result"] == "failure"
        assert phone.result() == "failure"


def test_end_report_none_completes_as_end_is_handed_out_and_refuses_a_put_after_it(
    no_end_report_lab,
):
    with Clients(no_end_report_lab) as made:
        phone = _Phone(no_end_report_lab, made)
        last = commands(phone.report(phone.first_round()))
        assert last["CMD"][-1] == ["END"]
        assert phone.result() == "OK"  # completed as END went out
        problem(phone.report(last, fail=True), 409)  # the failure is never heard of
        assert phone.result() == "OK"


def test_end_report_none_the_labs_device_sends_nothing_after_end(no_end_report_lab):
    lab = no_end_report_lab
    dev_id = new_dev_id()
    device = lab.add_device(dev_id)
    assert device.virtual.report_end is False
    queue(lab, dev_id, job="inventory")
    since = lab.trace.last_seq
    run = device.start_next()
    assert run is not None and len(run.rounds) == 1 and run.result == "OK"
    sent = [(e.method, e.path) for e in lab.trace.since(since) if e.source == "device"]
    assert sent == [("POST", "/sessions/next")]
    assert by_dev(lab.operator.completed(), dev_id)[0]["Result"] == "OK"


def test_the_device_command_takes_the_end_report_choice():
    device = ["device", "--server", "https://x", "--cafile", "c", "--dev-id", "d"]
    args = build_parser().parse_args([*device, "--secret", "s", "--choice", "end-report=none"])
    assert dict(args.choice) == {"end-report": "none"}


def test_alert_opens_oldest_pending_starts_the_queued_session(defaults_lab):
    with Clients(defaults_lab) as made:
        phone = _Phone(defaults_lab, made)
        queued = queue(defaults_lab, phone.dev.dev_id, job="firmware-update")["SessionID"]
        opened = commands(post_alert(phone.http, CLIENT_INITIATED))
        assert opened["SessionID"] == queued
        assert phone.http.get("/sessions/pending").json()["Sessions"] == []


def test_alert_opens_new_session_starts_a_client_initiated_session_and_leaves_pending_queued(
    new_session_lab,
):
    lab = new_session_lab
    with Clients(lab) as made:
        phone = _Phone(lab, made)
        queued = queue(lab, phone.dev.dev_id, job="firmware-update")["SessionID"]
        opened = commands(post_alert(phone.http, CLIENT_INITIATED))
        assert opened["SessionID"] != queued
        assert [c[0] for c in opened["CMD"]] == ["GET", "GET", "END"]  # the lab's inventory
        pending = phone.http.get("/sessions/pending").json()["Sessions"]
        assert [s["SessionID"] for s in pending] == [queued]
        assert phone.report(opened).status_code == 204
        brief = session_of(lab, opened["SessionID"])
        assert (brief["Origin"], brief["Job"], brief["Result"]) == (
            "client-initiated",
            "inventory",
            "OK",
        )
        # The queued work is still there for POST /sessions/next, and a server-initiated
        # alert (answering a notification) still opens it.
        assert commands(post_alert(phone.http, SERVER_INITIATED))["SessionID"] == queued


def test_alert_opens_new_session_runs_a_session_even_with_nothing_pending(new_session_lab):
    with Clients(new_session_lab) as made:
        phone = _Phone(new_session_lab, made)
        opened = commands(post_alert(phone.http, CLIENT_INITIATED))
        assert phone.report(opened).status_code == 204


def _ended_without_running(lab: Lab) -> tuple[dict, dict]:
    """A session aborted while active and one expired while pending, as listed."""
    with Clients(lab) as made:
        phone = _Phone(lab, made)
        aborted = phone.first_round()["SessionID"]
        answer = phone.http.delete(f"/session/id/{aborted}")
        assert answer.status_code == 200
        expired = queue(lab, phone.dev.dev_id, job="inventory", ttl=0)["SessionID"]
        listed = phone.http.get("/sessions/completed").json()["Sessions"]
    by_id = {s["SessionID"]: s for s in listed}
    assert by_id[aborted]["Result"] == answer.json()["Result"]
    return by_id[aborted], by_id[expired]


def test_brief_result_ok_failure_lists_aborted_and_expired_as_failure_with_a_reason(defaults_lab):
    aborted, expired = _ended_without_running(defaults_lab)
    assert (aborted["Result"], aborted["Reason"]) == ("failure", "aborted")
    assert (expired["Result"], expired["Reason"]) == ("failure", "expired")


def test_brief_result_ok_failure_device_page_shows_the_reason_beside_the_result(defaults_lab):
    aborted, _ = _ended_without_running(defaults_lab)
    with Clients(defaults_lab) as made:
        page = made.browser().get(f"/devices/{aborted['DevID']}")
    assert page.status_code == 200 and "failure (aborted)" in page.text


def test_brief_result_extended_lists_aborted_and_expired_as_such(extended_lab):
    aborted, expired = _ended_without_running(extended_lab)
    assert aborted["Result"] == "aborted" and expired["Result"] == "expired"
    assert "Reason" not in aborted


def test_brief_result_keeps_how_a_session_really_ended_in_the_store(defaults_lab):
    aborted, _ = _ended_without_running(defaults_lab)
    stored = defaults_lab.services.store.session_by_id(aborted["SessionID"])
    assert stored is not None and stored.result is not None
    assert stored.result.value == "aborted"


# Weighing the three readings with dmlab.compare ---------------------------------------------
@pytest.mark.parametrize(
    ("flow", "choice_id", "a", "b", "rows"),
    [
        (
            "failing_update",
            "end-report",
            "report",
            "none",
            {"round trips (device)": (3, 2), "session result": ("failure", "OK")},
        ),
        (
            "alert_while_pending",
            "alert-opens",
            "oldest-pending",
            "new-session",
            {"round trips (device)": (4, 5), "session result": ("OK", "OK")},
        ),
        (
            "aborted_session",
            "brief-result",
            "ok-failure",
            "extended",
            {"session result": ("failure (aborted)", "aborted")},
        ),
    ],
)
def test_compare_weighs_each_option(flow, choice_id, a, b, rows):
    from dmlab import compare

    weighed = compare.compare(
        getattr(compare, flow), {choice_id: a}, {choice_id: b}, hash_cost=HASH_COST
    )
    table = weighed.table()
    for row, (under_a, under_b) in rows.items():
        assert table[f"{choice_id}={a}"][row] == under_a, (row, table)
        assert table[f"{choice_id}={b}"][row] == under_b, (row, table)


def test_python_m_dmlab_choices_runs_without_a_runpy_warning():
    import subprocess
    import sys

    for module in ("dmlab.choices", "dmlab.protocol.provenance"):
        ran = subprocess.run(
            [sys.executable, "-W", "error::RuntimeWarning", "-m", module, "--check"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert "RuntimeWarning" not in ran.stderr, ran.stderr
        assert ran.returncode == 0, ran.stderr


def test_compare_a_lost_put_answer_without_resume_leaves_the_session_hanging():
    from dmlab.compare import compare, lost_put_answer

    weighed = compare(
        lost_put_answer,
        {"put-retry": "conflict", "session-resume": "none"},
        {"put-retry": "conflict", "session-resume": "next"},
        hash_cost=HASH_COST,
    )
    table = weighed.table()
    hanging = table["put-retry=conflict, session-resume=none"]
    assert hanging["session result"] == "active (never completed)"
    assert "answered 204" in hanging["what happened"]
    assert table["put-retry=conflict, session-resume=next"]["session result"] == "OK"


@pytest.mark.parametrize(("option", "result"), [("ok-failure", "failure"), ("extended", "expired")])
def test_brief_result_covers_an_active_session_expired_by_the_active_ttl(option, result):
    """An active session whose device went silent past --active-ttl (1e-9 s here: the next
    read finds it idle) is listed as the option says, its Reason naming the expiry."""
    with Lab(hash_cost=HASH_COST, choices={"brief-result": option}, active_ttl=1e-9) as running:
        with Clients(running) as made:
            phone = _Phone(running, made)
            started = phone.first_round()["SessionID"]
            listed = phone.http.get("/sessions/completed").json()["Sessions"]
    brief = next(s for s in listed if s["SessionID"] == started)
    assert brief["Result"] == result
    assert "active TTL" in brief["Reason"]
    assert brief["Reason"].startswith("expired") == (option == "ok-failure")
