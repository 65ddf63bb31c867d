"""The device side of the kit can fail too: a small scripted device, flawed one
way at a time, against the checking server in this process. Each flaw must give
its test purposes their verdict for a broken rule (FAIL, or WARN for a reading)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dmlab.conformance import Verdict
from dmlab.conformance.device import CheckingServer
from dmlab.conformance.purposes import BY_ID
from dmlab.protocol.notification import NotificationGuard, NotificationRejected, notification_key

SERVER_INITIATED = "urn:oma:at:dm:2.0:ServerInitiatedMgmt"
CLIENT_INITIATED = "urn:oma:at:dm:2.0:ClientInitiatedMgmt"
COMMANDS = "application/vnd.omadm-cmd+json"


class ScriptedDevice:
    """A DM client in a few lines, with switchable flaws."""

    def __init__(self, checking: CheckingServer, flaws: set[str]) -> None:
        self.checking, self.flaws = checking, flaws
        self.stop = threading.Event()
        self.http = httpx.Client(
            base_url=checking.url,
            auth=(checking.dev_id, checking.secret),
            headers={"OMADM-DevID": checking.dev_id},
            verify=ssl.create_default_context(cafile=str(checking.cafile)),
            timeout=10,
        )
        self.guard = NotificationGuard(checking.server_id, notification_key(checking.secret))

    def statuses(
        self, commands: list[list[str]], *, short: bool = False
    ) -> list[dict[str, object]]:
        values = {"DevID": self.checking.dev_id, "FwV": "1.0.0", "Man": "dmlab"}
        out: list[dict[str, object]] = [
            {"sc": 200, "Data": values.get(c[1].rsplit("/", 1)[-1])}
            for c in commands
            if c[0] != "END"
        ]
        if "reversed" in self.flaws:
            out.reverse()
        return out[:-1] if short else out

    def session(self, answer: httpx.Response, *, short: bool = False) -> None:
        first = None
        while answer.status_code == 200:
            package = answer.json()
            first = first or package["SessionID"]
            to = first if "old-id" in self.flaws else package["SessionID"]
            body = {"Status": self.statuses(package["CMD"], short=short)}
            answer = self.http.put(f"/sessions/id/{to}", json=body)
        if answer.status_code == 204 and "report-after-end" in self.flaws and first:
            self.http.put(f"/sessions/id/{package['SessionID']}", json={"Status": []})

    def run(self) -> None:
        alert = {"AlertType": CLIENT_INITIATED} | (
            {"Mark": "loud"} if "bad-alert" in self.flaws else {}
        )
        self.session(
            self.http.post("/alert", json={"Alert": [alert]}), short="short-report" in self.flaws
        )
        accept = "text/html" if "no-accept" in self.flaws else COMMANDS
        path = f"/devices/{self.checking.dev_id}/sessions"
        self.session(self.http.post(path, json={"job": "inventory"}, headers={"Accept": accept}))
        while not self.stop.is_set():
            poll = self.http.get("/notifications", params={"wait": 0.5})
            if poll.status_code != 200:
                continue
            try:
                notification = self.guard.check(poll.content)
            except NotificationRejected:
                if "trust-all" not in self.flaws:
                    continue
                notification = None
            if "ignore-all" in self.flaws:
                continue
            data = notification.notification_id if notification else None
            body = (
                {}
                if "no-alert" in self.flaws
                else {"Alert": [{"AlertType": SERVER_INITIATED, "Data": data}]}
            )
            self.session(self.http.post("/sessions/next", json=body))


@pytest.fixture
def checking(tmp_path: Path) -> Iterator[CheckingServer]:
    with CheckingServer(tmp_path / "check") as server:
        yield server


FLAWS = {
    "acts on every notification": (
        {"trust-all"},
        {"TP/DEV/NOTI/002", "TP/DEV/NOTI/003", "TP/DEV/NOTI/004"},
    ),
    "acts on none": ({"ignore-all"}, {"TP/DEV/NOTI/001"}),
    "statuses reversed": ({"reversed"}, {"TP/DEV/SESS/001"}),
    "keeps reporting to the first id": ({"old-id"}, {"TP/DEV/SESS/002"}),
    "reports after the end": ({"report-after-end"}, {"TP/DEV/SESS/003"}),
    "an alert with an unknown Mark": ({"bad-alert"}, {"TP/DEV/ALRT/001"}),
    "calls in without ServerInitiatedMgmt": ({"no-alert"}, {"TP/DEV/ALRT/002"}),
    "client session short of a status": ({"short-report"}, {"TP/DEV/CI/001"}),
    "browser component without the CR's Accept": ({"no-accept"}, {"TP/DEV/BC/001"}),
}


def test_every_device_purpose_has_a_flaw() -> None:
    covered = set().union(*(ids for _, ids in FLAWS.values()))
    assert covered == {p for p, tp in BY_ID.items() if tp.side == "device"}


@pytest.mark.parametrize("name", list(FLAWS))
def test_each_flawed_device_breaks_its_purposes(checking: CheckingServer, name: str) -> None:
    flaws, broken = FLAWS[name]
    device = ScriptedDevice(checking, flaws)
    thread = threading.Thread(target=device.run, daemon=True)
    thread.start()
    try:
        # Absence (a notification never acted on) can only be seen at the deadline.
        result = checking.wait(3.0 if "ignore-all" in flaws else 30.0)
    finally:
        device.stop.set()
        thread.join(10)
        device.http.close()
    verdicts = result.verdicts()
    for purpose_id in broken:
        assert verdicts[purpose_id] == BY_ID[purpose_id].on_violation.value, result.outcome(
            purpose_id
        ).line()


def test_a_sound_scripted_device_passes(checking: CheckingServer) -> None:
    device = ScriptedDevice(checking, set())
    thread = threading.Thread(target=device.run, daemon=True)
    thread.start()
    try:
        result = checking.wait(30.0)
    finally:
        device.stop.set()
        thread.join(10)
        device.http.close()
    assert {o.verdict for o in result.outcomes} == {Verdict.PASS}, [
        o.line() for o in result.outcomes
    ]
    # The verdicts carry the device's exchanges: the deciding one is a real request.
    assert json.loads(json.dumps(result.to_json()))["ok"] is True
