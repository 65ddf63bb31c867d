"""Two readings of the CR, side by side: the same scripted flow run under each.

``compare(flow, a, b)`` starts a lab for each set of lab choices (``a`` and ``b``, as
``Lab(choices=...)`` takes them), runs ``flow`` in it as a device speaking raw HTTP
(so a flow can lose an answer on purpose: the request reached the server, the device
never read the reply), and measures what a working group weighs: exchanges, bytes, round
trips, how many session ids the device had to keep track of, and how the session ended.
The result shows both sequence diagrams side by side and a table of the differences.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Any

import httpx
from httpx_sse import connect_sse

from .choices import SWITCHABLE
from .conformance.server import Dev, statuses_for
from .conformance.wire import BROWSER_ACCEPT, forms
from .diagram import SequenceDiagram
from .protocol import media
from .protocol.notification import decode
from .runtime import Lab
from .trace import Exchange

__all__ = [
    "WEIGHED",
    "Comparison",
    "Run",
    "Script",
    "aborted_session",
    "alert_while_pending",
    "browser_initiated",
    "compare",
    "failing_update",
    "firmware_update",
    "lost_next_answer",
    "lost_put_answer",
    "markdown",
    "plural_abort",
    "server_initiated",
    "session_in_progress",
    "weigh",
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
        self._browser: httpx.Client | None = None

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

    def browser(self) -> httpx.Client:
        """A person's browser signed in as the lab's account (HTML first in Accept)."""
        if self._browser is None:
            self._browser = httpx.Client(
                base_url=self.lab.url,
                auth=self.lab.operator.http.auth,
                headers={"Accept": BROWSER_ACCEPT},
                verify=self.lab.ca.client_context(),
                timeout=30,
            )
        return self._browser

    def notification(self) -> bytes | None:
        """Package 0 as a device in another process gets it under the lab's
        notification-transport: one long-poll, the first event of the stream, or
        nothing at all (``none``: the device calls in when its timer fires)."""
        transport = self.lab.services.choices["notification-transport"]
        if transport == "long-poll":
            answer = self.http.get("/notifications", params={"wait": 5})
            return answer.content if answer.status_code == 200 else None
        if transport == "sse":
            with connect_sse(self.http, "GET", "/notifications", timeout=10) as source:
                for event in source.iter_sse():
                    if event.event == "notification":
                        return base64.b64decode(event.data)
            return None
        self.notes.append("no notification: the device's timer fired (one period later)")
        return None

    def call_in(self, package0: bytes | None) -> httpx.Response:
        """Package 1 after package 0 (``ServerInitiatedMgmt`` naming its id), or after the
        timer fired (no body)."""
        if package0 is None:
            return self.start()
        nid = decode(package0).notification_id
        alert = {"AlertType": "urn:oma:at:dm:2.0:ServerInitiatedMgmt"}
        if nid is not None:
            alert["Data"] = {"NOTIFICATION-ID": nid}  # type: ignore[assignment]
        return self.http.post(
            "/sessions/next",
            content=json.dumps({"Alert": [alert]}),
            headers={"Content-Type": media.DM20_INITIATION},
        )

    def close(self) -> None:
        self.http.close()
        if self._browser is not None:
            self._browser.close()


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
        script.notes.append(f"the retry got {retry.status_code}: the device lost its place")
        again = script.start()
        if again.status_code == 200:  # lab choice session-resume: the round comes again
            script.notes.append("POST /sessions/next re-sent the second round; the session goes on")
            retry = again
        else:
            script.notes.append(f"POST /sessions/next then answered {again.status_code}")
    script.finish(retry)


def lost_next_answer(script: Script) -> None:
    """The same update; the answer to POST /sessions/next is lost (the session started),
    so the device, which knows no session id, asks again."""
    script.queue()
    script.start()
    script.lost.add(script.lab.trace.last_seq)  # that answer never reaches the device
    again = script.start()
    if again.status_code == 200:  # lab choice session-resume
        script.notes.append("POST /sessions/next re-sent the first round; the session goes on")
    else:
        script.notes.append(
            f"POST /sessions/next answered {again.status_code}: the session waits for its expiry"
        )
    script.finish(again)


def session_in_progress(script: Script) -> None:
    """The update is started; the account looks for it while it runs (GET
    /sessions/active, then the CR's two listings), and the device finishes it."""
    script.queue()
    started = script.start()
    listed = script.lab.operator.http.get("/sessions/active")
    found = [s["SessionID"] for s in listed.json()["Sessions"]] if listed.is_success else []
    elsewhere = [
        listing
        for listing in ("pending", "completed")
        if any(
            s["SessionID"] == script.session
            for s in script.lab.operator.http.get(f"/sessions/{listing}").json()["Sessions"]
        )
    ]
    script.notes.append(
        f"GET /sessions/active answered {listed.status_code}"
        + (", listing it" if script.session in found else "")
        + f"; the CR's listings {'show it' if elsewhere else 'do not show it'}"
    )
    script.finish(started)


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


def plural_abort(script: Script) -> None:
    """The device aborts its started session at DELETE /sessions/id/{id}, spelled like
    the CR's other session resources."""
    script.queue()
    started = script.start().json()
    answer = script.http.delete(f"/sessions/id/{started['SessionID']}")
    script.notes.append(f"the abort answered {answer.status_code}")


def browser_initiated(script: Script) -> None:
    """A person asks for an inventory on the device page (flow 4).

    The browser opens the page and posts its session form wherever the form points (lab
    choice browser-entry); the device, notified, calls in and runs the session."""
    browser = script.browser()
    page = browser.get(f"/devices/{DEV_ID}")
    form = next(f for f in forms(page.text) if "job" in f.names)
    posted = browser.post(form.action, data={**form.fields, "job": "inventory"})
    script.session = posted.headers.get("location", "").rsplit("/", 1)[-1]
    script.notes.append(f"the browser posted to {form.action}: {posted.status_code}")
    script.finish(script.call_in(script.notification()))


def server_initiated(script: Script) -> None:
    """The server queues an inventory and notifies the device (flow 1); the device gets
    package 0 as lab choice notification-transport says, calls in and runs the session."""
    answer = script.lab.operator.http.post(
        f"/devices/{DEV_ID}/sessions", json={"job": "inventory", "notify": True}
    )
    script.session = answer.json()["SessionID"]
    script.finish(script.call_in(script.notification()))


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

    @property
    def browser_exchanges(self) -> list[Exchange]:
        """What a person's browser sent (flows that start in a browser)."""
        return [e for e in self.exchanges if e.source == "browser"]

    def measures(self) -> dict[str, Any]:
        sent = self.device_exchanges
        shown: dict[str, Any] = {
            "round trips (device)": len(sent),
            "bytes (device bodies, both ways)": sum(
                e.request_bytes + e.response_bytes for e in sent
            ),
        }
        if self.browser_exchanges:
            shown["round trips (browser)"] = len(self.browser_exchanges)
            shown["bytes (browser bodies, both ways)"] = sum(
                e.request_bytes + e.response_bytes for e in self.browser_exchanges
            )
        return {
            **shown,
            "session ids the device used": len({e.session for e in sent if e.session}),
            "refused answers (4xx)": sum(400 <= e.status < 500 for e in sent),
            "session result": self.result,
            "what happened": "; ".join(self.notes),
        }

    @property
    def round_trips(self) -> int:
        """Every request of the session's parties (device and browser; not the script
        that queued the work)."""
        return len(self.device_exchanges) + len(self.browser_exchanges)

    @property
    def bytes(self) -> int:
        return sum(
            e.request_bytes + e.response_bytes
            for e in (*self.device_exchanges, *self.browser_exchanges)
        )

    @property
    def diagram(self) -> SequenceDiagram:
        return SequenceDiagram(
            [*self.browser_exchanges, *self.device_exchanges]
            if self.browser_exchanges
            else self.device_exchanges,
            title=self.label,
        )


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


def ticking(start: float = 1_800_000_000.0, step: float = 0.5) -> Callable[[], float]:
    """A clock that moves ``step`` s each time it is read: timestamps in JSON bodies then
    have the same length on every run (``time.time``'s repr varies by a digit or two), so
    the bytes a flow measures repeat."""
    ticks = itertools.count()
    return lambda: start + next(ticks) * step


def run(flow: Flow, choices: Mapping[str, str], **lab_options: Any) -> Run:
    """``flow`` in a lab of its own under ``choices``."""
    lab_options.setdefault("clock", ticking())
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


#: The flow that weighs each switchable choice: where its options differ on the wire.
WEIGHED: dict[str, Flow] = {
    "session-ids": lost_put_answer,
    "put-retry": lost_put_answer,
    "abort-path": plural_abort,
    "alert-opens": alert_while_pending,
    "brief-result": aborted_session,
    "end-report": firmware_update,
    "notification-transport": server_initiated,
    "browser-entry": browser_initiated,
    "session-resume": lost_next_answer,
    "active-listing": session_in_progress,
}


def weigh(choice_ids: list[str] | None = None, **lab_options: Any) -> Any:
    """Every option of each switchable choice (all of them by default), its choice's
    flow run under it in a lab of its own: a table to paste into a contribution.

    Each row: the choice, the option (default first), whether it departs from the CR
    (and the test purposes that then fail), the flow, the round trips and bytes the
    session's parties sent and received, how the session ended, and the risk the
    registry says the option leaves. Nothing in it is typed by hand."""
    import pandas as pd

    rows = []
    for c in SWITCHABLE:
        if choice_ids is not None and c.id not in choice_ids:
            continue
        flow = WEIGHED[c.id]
        for o in c.options:
            measured = run(flow, {c.id: o.value}, **lab_options)
            rows.append(
                {
                    "choice": c.id,
                    "option": o.value + (" (default)" if o.value == c.default else ""),
                    "departs from the CR": ", ".join(o.purposes) if o.departs else "no",
                    "flow": flow.__name__.replace("_", " "),
                    "round trips": measured.round_trips,
                    "bytes": measured.bytes,
                    "session result": measured.result,
                    "risk": o.risk,
                }
            )
    return pd.DataFrame(rows)


def markdown(table: Any) -> str:
    """A DataFrame as a Markdown table (what a contribution's text takes)."""
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in table.itertuples(index=False):
        cells = (str(v).replace("|", "\\|").replace("\n", " ") for v in row)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
