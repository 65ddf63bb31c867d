"""Two readings of the CR, side by side: the same scripted flow run under each.

``compare(flow, a, b)`` starts a lab for each set of lab choices (``a`` and ``b``, as
``Lab(choices=...)`` takes them), runs ``flow`` in it as a device speaking raw HTTP
(so a flow can lose an answer on purpose: the request reached the server, the device
never read the reply), and measures what a working group weighs: exchanges, bytes, round
trips, how many session ids the device had to keep track of, and how the session ended.
The result shows both sequence diagrams side by side and a table of the differences.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Any

import httpx

from .conformance.server import Dev, statuses_for
from .diagram import SequenceDiagram
from .protocol import media
from .runtime import Lab
from .trace import Exchange

__all__ = [
    "Comparison",
    "Run",
    "Script",
    "aborted_session",
    "alert_while_pending",
    "compare",
    "failing_update",
    "firmware_update",
    "lost_put_answer",
]

#: The device every flow plays (an IMEI, so the tables read alike on every run).
DEV_ID = "IMEI:490154203237518"
#: A session of two rounds (the lab's firmware update).
TWO_ROUNDS: dict[str, Any] = {"job": "firmware-update", "params": {"version": "2.0.0"}}


class Script:
    """What a flow does: the operator queues, the device starts and reports, over HTTPS."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        secret = lab.operator.register(DEV_ID, name="compare", man="dmlab", mod="raw")["secret"]
        self.dev = Dev(DEV_ID, secret, lab.operator.name, True)
        self.http = httpx.Client(
            base_url=lab.url,
            auth=(DEV_ID, secret),
            headers={"OMADM-DevID": DEV_ID, "Accept": media.COMMANDS},
            verify=lab.ca.client_context(),
            timeout=30,
        )
        #: What happened, in words, for the table's last row.
        self.notes: list[str] = []
        self.session = ""
        #: Trace sequence numbers of the exchanges whose answer the device never read.
        self.lost: set[int] = set()

    def queue(self, **request: Any) -> str:
        body = {**(request or TWO_ROUNDS), "notify": False}
        answer = self.lab.operator.http.post(f"/devices/{DEV_ID}/sessions", json=body)
        answer.raise_for_status()
        self.session = answer.json()["SessionID"]
        return self.session

    def start(self) -> httpx.Response:
        return self.http.post("/sessions/next")

    def report(
        self, session_id: str, package: Mapping[str, Any], *, fail: bool = False
    ) -> httpx.Response:
        """Package 3 for ``package``: one status per command, as a device reports them
        (each a 500 when ``fail``)."""
        body = {"Status": statuses_for(package["CMD"], self.dev, fail=fail)}
        return self.http.put(
            f"/sessions/id/{session_id}",
            content=json.dumps(body),
            headers={"Content-Type": media.DM20_RESPONSE},
        )

    def reports_end(self, package: Mapping[str, Any]) -> bool:
        """Whether the device reports this package: not one ending with END when END
        needs no report (lab choice end-report=none)."""
        ends = bool(package["CMD"]) and package["CMD"][-1][:1] == ["END"]
        return not ends or self.lab.services.choices.is_("end-report", "report")

    def finish(self, answer: httpx.Response, *, fail_last: bool = False) -> httpx.Response:
        """Report round after round until the session ends (or is refused); with
        ``fail_last`` every command of the round ending with END fails."""
        while answer.status_code == 200:
            package = answer.json()
            if not self.reports_end(package):
                self.notes.append("END needs no report: the device sent none")
                break
            ends = package["CMD"][-1][:1] == ["END"]
            answer = self.report(package["SessionID"], package, fail=fail_last and ends)
        return answer

    def alert(self, alert_type: str = "urn:oma:at:dm:2.0:ClientInitiatedMgmt") -> httpx.Response:
        """``POST /alert`` with a session-opening alert (package 1's shape)."""
        return self.http.post(
            "/alert",
            content=json.dumps({"Alert": [{"AlertType": alert_type}]}),
            headers={"Content-Type": media.DM20_INITIATION},
        )

    def result(self) -> str:
        """The queued session's brief result as the operator lists it (with its
        ``Reason`` when it has one), or its state."""
        for listing in ("completed", "pending"):
            for s in self.lab.operator.http.get(f"/sessions/{listing}").json()["Sessions"]:
                if s["DevID"] == DEV_ID and (
                    not self.session
                    or self.session == s["SessionID"]
                    or self.session in s.get("IDs", ())
                ):
                    result = str(s.get("Result") or s["State"])
                    return f"{result} ({s['Reason']})" if s.get("Reason") else result
        return "active (never completed)"

    def close(self) -> None:
        self.http.close()


Flow = Callable[[Script], None]


def firmware_update(script: Script) -> None:
    """A server-initiated firmware update of two rounds, every answer read."""
    script.queue()
    end = script.finish(script.start())
    script.notes.append(f"the last report answered {end.status_code}")


def lost_put_answer(script: Script) -> None:
    """The same update; the answer to the first PUT is lost (the server committed it),
    so the device sends the same PUT again, as an HTTP client retries an idempotent
    request."""
    script.queue()
    first = script.start().json()
    script.report(first["SessionID"], first)
    script.lost.add(script.lab.trace.last_seq)  # that answer never reaches the device
    retry = script.report(first["SessionID"], first)
    if retry.status_code == 200:
        script.notes.append("the retry got the second round again; the session goes on")
    else:
        script.notes.append(f"the retry got {retry.status_code}: the device cannot go on")
        again = script.start()
        script.notes.append(f"POST /sessions/next then answered {again.status_code}")
    script.finish(retry)


def failing_update(script: Script) -> None:
    """A firmware update whose last round fails (the download cannot be fetched)."""
    script.queue()
    end = script.finish(script.start(), fail_last=True)
    script.notes.append(f"the last answer was {end.status_code}")


def alert_while_pending(script: Script) -> None:
    """A client-initiated alert while a firmware update is pending, then POST /sessions/next.

    Under alert-opens=oldest-pending the alert runs the update; under new-session it runs
    a session of its own, and the update waits for the call to ``/sessions/next``."""
    script.queue()
    opened = script.alert()
    if opened.status_code == 200:
        opened_id = opened.json()["SessionID"]
        which = "the pending update" if opened_id == script.session else "a new session"
        script.notes.append(f"the alert opened {which}")
    script.finish(opened)
    following = script.start()
    script.notes.append(f"POST /sessions/next then answered {following.status_code}")
    script.finish(following)


def aborted_session(script: Script) -> None:
    """The device aborts its started session, then lists its completed sessions."""
    script.queue()
    started = script.start().json()
    script.http.delete(f"/session/id/{started['SessionID']}")
    listed = script.http.get("/sessions/completed").json()["Sessions"]
    script.notes.append("listed as " + ", ".join(str(s.get("Result")) for s in listed))


@dataclass
class Run:
    """One flow under one reading: its exchanges and what they cost."""

    label: str
    choices: dict[str, str]
    exchanges: list[Exchange]
    result: str
    notes: list[str] = field(default_factory=list)

    @property
    def device_exchanges(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.source == "device"]

    def measures(self) -> dict[str, Any]:
        sent = self.device_exchanges
        return {
            "round trips (device)": len(sent),
            "bytes (device bodies, both ways)": sum(
                e.request_bytes + e.response_bytes for e in sent
            ),
            "session ids the device used": len({e.session for e in sent if e.session}),
            "refused answers (4xx)": sum(400 <= e.status < 500 for e in sent),
            "session result": self.result,
            "what happened": "; ".join(self.notes),
        }

    @property
    def diagram(self) -> SequenceDiagram:
        return SequenceDiagram(self.device_exchanges, title=self.label)


@dataclass
class Comparison:
    """Two runs of one flow; shows the diagrams side by side and the differences."""

    flow: str
    a: Run
    b: Run

    def table(self) -> Any:
        import pandas as pd

        rows = {self.a.label: self.a.measures(), self.b.label: self.b.measures()}
        return pd.DataFrame(rows)

    def text(self) -> str:
        return "\n\n".join([self.a.diagram.text(), self.b.diagram.text(), self.table().to_string()])

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        cells = "".join(
            f'<td style="vertical-align:top">{run.diagram.svg()}</td>' for run in (self.a, self.b)
        )
        html = (
            f"<p><b>{escape(self.flow)}</b></p><table><tr>{cells}</tr></table>"
            + self.table().to_html()
        )
        return {"text/html": html, "text/plain": self.text()}


def _label(choices: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in choices.items()) or "defaults"


def run(flow: Flow, choices: Mapping[str, str], **lab_options: Any) -> Run:
    """``flow`` in a lab of its own under ``choices``."""
    with Lab(choices=dict(choices), **lab_options) as lab:
        script = Script(lab)
        try:
            since = lab.trace.last_seq
            flow(script)
            result = script.result()
        finally:
            script.close()
        exchanges = [
            dataclasses.replace(e, response=f"{e.response} ✗ LOST") if e.seq in script.lost else e
            for e in lab.trace.since(since)
        ]
    return Run(_label(choices), dict(choices), exchanges, result, script.notes)


def compare(
    flow: Flow, a: Mapping[str, str], b: Mapping[str, str], **lab_options: Any
) -> Comparison:
    """Run ``flow`` under readings ``a`` and ``b``; the two side by side."""
    name = (flow.__doc__ or flow.__name__).strip().splitlines()[0]
    return Comparison(name, run(flow, a, **lab_options), run(flow, b, **lab_options))
