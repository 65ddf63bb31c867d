"""Checking a device: a server of its own that a device implementation connects to.

It prints what to provision (URL, CA file, DevID, secret, server id), then plays
one scripted run over the device's long-poll of ``GET /notifications``:

1. a forged notification (wrong digest), then a stale one (an hour old), then a
   genuine one: the device must call in after the genuine one only;
2. the session it opens has two rounds, the second under a newly assigned id,
   the last ending in END: one status per command, in order, to the new id, and
   nothing after the end;
3. the genuine notification again (a replay): ignored.

Alongside, it answers a client-initiated alert and the browser component's POST
with a session each, judging the alert shapes and the component's Accept header.
Order is read from the device's own requests (a poll after a notification means
the device is done with it), never from timers; only the overall ``timeout``
turns what never happened into a verdict.

Digests use the lab's key derivation (``notification_key``, a lab choice the
README documents), so a third-party device must implement it to pass NOTI/001.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..protocol.notification import Notification, encode, notification_key
from ..runtime.threads import ServerThread
from ..runtime.tls import LabCA
from .purposes import BY_ID, Verdict, select
from .results import Outcome, Result
from .server import basic
from .wire import COMMANDS, Exchange, excerpt, json_or_none, kept_headers

DEVINFO = "urn:oma:mo:oma-dm-devinfo:1.0"
MARKS = {"fatal", "critical", "minor", "warning", "informational", "harmless", "indeterminate"}
SERVER_INITIATED = "urn:oma:at:dm:2.0:ServerInitiatedMgmt"
CLIENT_INITIATED = "urn:oma:at:dm:2.0:ClientInitiatedMgmt"
#: How long one long-poll is held at most, in seconds.
MAX_WAIT = 25.0
POLL_TICK = 0.05

ROUND_1 = [["GET", f"{DEVINFO}//DevInfo/DevID"], ["GET", f"{DEVINFO}//DevInfo/FwV"]]
ROUND_2 = [["GET", f"{DEVINFO}//DevInfo/Man"], ["END"]]
SHORT = [["GET", f"{DEVINFO}//DevInfo/DevID"], ["END"]]

BAD_KINDS = {"forged": "TP/DEV/NOTI/002", "stale": "TP/DEV/NOTI/004", "replayed": "TP/DEV/NOTI/003"}


@dataclass
class _Session:
    kind: str  # "notified", "client", "component"
    rounds: list[list[list[str]]]
    ids: list[str] = field(default_factory=list)
    done: int = 0  # rounds reported
    ended: bool = False


class CheckingServer:
    """The checking server and its judge (state lives on the server's event loop;
    ``wait`` reads the verdicts from another thread under a lock)."""

    def __init__(
        self,
        data: str | Path,
        *,
        port: int = 0,
        server_id: str = "dmlab",
        only: str | None = None,
        dev_id: str | None = None,
    ) -> None:
        self.data = Path(data)
        self.data.mkdir(parents=True, exist_ok=True)
        self.ca = LabCA.load_or_create(self.data)
        self.cafile = self.ca.write_ca(self.data / "ca.pem")
        self.server_id = server_id
        self.dev_id = dev_id or f"IMEI:{secrets.randbelow(10**14):014d}9"
        self.secret = secrets.token_hex(16)  # hex: never starts with '-', safe on a command line
        self.purposes = select("device", only)
        self.started = time.monotonic()
        self._lock = threading.Condition()
        self._outcomes: dict[str, Outcome] = {}
        self._log: list[Exchange] = []
        self._sessions: dict[str, _Session] = {}
        self._alerts: list[Any] = []
        self._alert_exchanges: list[int] = []
        # The notification script: what the next poll delivers, and what is awaited.
        self._key = notification_key(self.secret)
        self._next_id = secrets.randbelow(60000) + 1
        self._script = ["forged", "stale", "genuine"]
        self._genuine: bytes | None = None
        self._delivered: str | None = None  # the last kind delivered, not yet judged
        self._delivered_at = 0
        self._notified: _Session | None = None
        self._closing = False
        self.app = Starlette(
            routes=[
                Route("/notifications", self._poll, methods=["GET"]),
                Route("/sessions/next", self._call_in, methods=["POST"]),
                Route("/sessions/id/{sid}", self._call_in, methods=["POST"]),
                Route("/sessions/id/{sid}", self._report, methods=["PUT"]),
                Route("/alert", self._alert, methods=["POST"]),
                Route("/devices/{dev_id}/sessions", self._component, methods=["POST"]),
            ]
        )
        self.server = ServerThread(self.app, self.ca, port=port, name="dmlab-conform-device")

    # Lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> CheckingServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True  # open long-polls answer 204 within a tick
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    def instructions(self) -> list[str]:
        return [
            f"conformance checking server {self.url}",
            f"CA certificate: {self.cafile}",
            f"device: devId {self.dev_id} secret {self.secret} server-id {self.server_id}",
            f"run your device against it, e.g.: python -m dmlab device --server {self.url} "
            f"--cafile {self.cafile} --dev-id {self.dev_id} --secret {self.secret} "
            "--alert-now --browser-component",
        ]

    def wait(self, timeout: float, on_outcome: Callable[[Outcome], None] | None = None) -> Result:
        """Block until every selected purpose is decided, or ``timeout`` seconds pass;
        what never happened by then is decided by :meth:`_time_out`."""
        deadline = time.monotonic() + timeout
        reported: set[str] = set()
        with self._lock:
            while True:
                self._decide_alert_shapes()
                for p in self.purposes:
                    if p.id in self._outcomes and p.id not in reported:
                        reported.add(p.id)
                        if on_outcome:
                            on_outcome(self._outcomes[p.id])
                if len(reported) == len(self.purposes):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._time_out(timeout)
                    continue
                self._lock.wait(min(remaining, 0.5))
        result = Result("device", self.url, [self._outcomes[p.id] for p in self.purposes])
        result.seconds = time.monotonic() - self.started
        return result

    # Judging ----------------------------------------------------------------------------
    def _decide(self, purpose_id: str, verdict: Verdict, reason: str, exchanges: list[int]) -> None:
        """Record a verdict (the first one stands) with the exchanges behind it."""
        with self._lock:
            if purpose_id in self._outcomes or purpose_id not in {p.id for p in self.purposes}:
                return
            shown = [self._log[i] for i in sorted(set(exchanges)) if 0 <= i < len(self._log)]
            self._outcomes[purpose_id] = Outcome(
                BY_ID[purpose_id],
                verdict,
                reason,
                shown,
                len(shown) - 1 if shown else None,
                time.monotonic() - self.started,
            )
            self._lock.notify_all()

    def _violation(self, purpose_id: str, reason: str, exchanges: list[int]) -> None:
        self._decide(purpose_id, BY_ID[purpose_id].on_violation, reason, exchanges)

    def _decide_alert_shapes(self) -> None:
        """Alert shapes are judged once the rest is decided (a bad one FAILs at once)."""
        wanted = {p.id for p in self.purposes}
        shapes = "TP/DEV/ALRT/001"
        if shapes not in wanted or shapes in self._outcomes or not self._alerts:
            return
        if all(i in self._outcomes for i in wanted - {shapes}):
            shown = [self._log[i] for i in self._alert_exchanges[-3:]]
            reason = f"{len(self._alerts)} alert(s), all well formed"
            self._outcomes[shapes] = Outcome(BY_ID[shapes], Verdict.PASS, reason, shown, None)

    def _time_out(self, timeout: float) -> None:
        why = {
            "TP/DEV/NOTI/001": (
                Verdict.FAIL,
                "the device never called in after the genuine notification",
            ),
            "TP/DEV/CI/001": (
                Verdict.INCONCLUSIVE,
                "the device sent no ClientInitiatedMgmt alert (start it with a timer or UI event, e.g. --alert-now)",
            ),
            "TP/DEV/BC/001": (
                Verdict.INCONCLUSIVE,
                "the browser component never posted (e.g. --browser-component)",
            ),
            "TP/DEV/ALRT/001": (Verdict.INCONCLUSIVE, "the device sent no alert"),
        }
        for p in self.purposes:
            if p.id not in self._outcomes:
                verdict, reason = why.get(
                    p.id, (Verdict.INCONCLUSIVE, "the run did not get this far")
                )
                self._outcomes[p.id] = Outcome(
                    p, verdict, f"{reason} within {timeout:g} s", [], None
                )

    # Recording --------------------------------------------------------------------------
    async def _record(self, request: Request, response: Response, role: str = "device") -> int:
        index = await self._begin(request, role)
        self._finish(index, response)
        return index

    async def _begin(self, request: Request, role: str = "device") -> int:
        """Record a request as it arrives (its answer is filled in by ``_finish``)."""
        body = await request.body()
        exchange = Exchange(
            f"device {self.dev_id}" if role == "device" else f"browser component {self.dev_id}",
            role,
            request.method,
            request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            kept_headers(request.headers),
            excerpt(body, request.headers.get("content-type", "")),
        )
        with self._lock:
            self._log.append(exchange)
            return len(self._log) - 1

    def _finish(self, index: int, response: Response) -> None:
        exchange = self._log[index]
        exchange.status = response.status_code
        exchange.response_headers = kept_headers(response.headers)
        exchange.response_body = excerpt(
            bytes(response.body), response.headers.get("content-type", "")
        )

    def _authorized(self, request: Request) -> bool:
        good = secrets.compare_digest(
            request.headers.get("authorization", ""), basic(self.dev_id, self.secret)
        )
        claimed = request.headers.get("omadm-devid")
        return good and (claimed is None or claimed == self.dev_id)

    def _refuse(self) -> Response:
        return JSONResponse(
            {"error": "unauthorized"}, 401, {"WWW-Authenticate": 'Basic realm="dmlab-conform"'}
        )

    def _package(self, session: _Session) -> Response:
        sid = secrets.token_hex(8)
        session.ids.append(sid)
        self._sessions[sid] = session
        body = {"SessionID": sid, "CMD": session.rounds[session.done]}
        return Response(
            json.dumps(body), 200, {"Location": f"/sessions/id/{sid}"}, media_type=COMMANDS
        )

    def _note_alerts(self, body: Any, index: int) -> list[dict[str, Any]]:
        alerts = body.get("Alert") if isinstance(body, dict) else None
        alerts = alerts if isinstance(alerts, list) else []
        for alert in alerts:
            self._alerts.append(alert)
            self._alert_exchanges.append(index)
            ok = (
                isinstance(alert, dict)
                and isinstance(alert.get("AlertType"), str)
                and bool(alert["AlertType"])
                and alert.get("Mark", "informational") in MARKS
            )
            if not ok:
                self._violation("TP/DEV/ALRT/001", f"a malformed alert: {alert!r}", [index])
        return [a for a in alerts if isinstance(a, dict)]

    # The routes -------------------------------------------------------------------------
    def _notification(self, kind: str) -> bytes:
        if kind == "replayed":
            assert self._genuine is not None
            return self._genuine
        self._next_id = self._next_id % 65535 + 1
        stamp = int(time.time()) - (3600 if kind == "stale" else 0)
        note = Notification(self.server_id, notification_id=self._next_id, timestamp=stamp)
        key = secrets.token_bytes(32) if kind == "forged" else self._key
        package = encode(note, key)
        if kind == "genuine":
            self._genuine = package
        return package

    async def _poll(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._refuse()
        try:
            wait = min(float(request.query_params.get("wait", "0")), MAX_WAIT)
        except ValueError:
            wait = 0.0
        # The device polls again: it is done with what it was given last.
        index = await self._begin(request)
        if self._delivered in BAD_KINDS:
            kind, self._delivered = self._delivered, None
            reason = f"the {kind} notification was ignored"
            self._decide(BAD_KINDS[kind], Verdict.PASS, reason, [self._delivered_at, index])
        if self._notified is not None and self._notified.ended:
            self._decide("TP/DEV/SESS/003", Verdict.PASS, "nothing followed the end", [index])
        response = await self._next_notification(request, wait)
        self._finish(index, response)
        if response.status_code == 200:
            self._delivered_at = index
        return response

    async def _next_notification(self, request: Request, wait: float) -> Response:
        deadline = asyncio.get_running_loop().time() + max(wait, 0.0)
        while True:
            kind = self._next_kind()
            if kind is not None:
                self._script.pop(0)
                self._delivered = kind
                return Response(
                    self._notification(kind), 200, media_type="application/vnd.oma.dm.notification"
                )
            loop = asyncio.get_running_loop()
            if self._closing or loop.time() >= deadline or await request.is_disconnected():
                return Response(status_code=204)
            await asyncio.sleep(POLL_TICK)

    def _next_kind(self) -> str | None:
        if not self._script:
            return None
        kind = self._script[0]
        if kind == "replayed" and not (self._notified and self._notified.ended):
            return None  # the replay waits until the genuine notification's session is over
        return kind

    async def _call_in(self, request: Request) -> Response:
        """A device calling in after a notification (POST /sessions/next or /sessions/id/…)."""
        if not self._authorized(request):
            return self._refuse()
        body = json_or_none((await request.body()).decode("utf-8", "replace")) or {}
        return await self._notified_session(request, body)

    async def _notified_session(self, request: Request, body: Any) -> Response:
        kind = self._delivered
        if kind in BAD_KINDS:
            response = Response(status_code=204)
            index = await self._record(request, response)
            self._violation(
                BAD_KINDS[kind],
                f"the device called in after the {kind} notification",
                [self._delivered_at, index],
            )
            self._delivered = None
            return response
        if kind != "genuine" or self._notified is not None:
            response = Response(status_code=204)
            await self._record(request, response)
            return response
        self._delivered = None
        self._notified = _Session("notified", [ROUND_1, ROUND_2])
        response = self._package(self._notified)
        index = await self._record(request, response)
        alerts = self._note_alerts(body, index)
        self._decide(
            "TP/DEV/NOTI/001", Verdict.PASS, "the device called in", [self._delivered_at, index]
        )
        if any(a.get("AlertType") == SERVER_INITIATED for a in alerts):
            self._decide("TP/DEV/ALRT/002", Verdict.PASS, "ServerInitiatedMgmt", [index])
        else:
            self._violation(
                "TP/DEV/ALRT/002", "the call-in carries no ServerInitiatedMgmt alert", [index]
            )
        self._script.append("replayed")
        return response

    async def _alert(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._refuse()
        body = json_or_none((await request.body()).decode("utf-8", "replace")) or {}
        types = (
            [a.get("AlertType") for a in (body.get("Alert") or []) if isinstance(a, dict)]
            if isinstance(body, dict)
            else []
        )
        if SERVER_INITIATED in types:
            return await self._notified_session(request, body)
        if CLIENT_INITIATED in types and not any(
            s.kind == "client" for s in self._sessions.values()
        ):
            response = self._package(_Session("client", [SHORT]))
        else:
            response = Response(status_code=204)
        index = await self._record(request, response)
        self._note_alerts(body, index)
        return response

    async def _component(self, request: Request) -> Response:
        if not self._authorized(request) or request.path_params["dev_id"] != self.dev_id:
            return self._refuse()
        accept = request.headers.get("accept", "")
        response = self._package(_Session("component", [SHORT]))
        index = await self._record(request, response, role="browser-component")
        if COMMANDS in accept.lower():
            self._decide("TP/DEV/BC/001", Verdict.PASS, f"Accept: {accept}", [index])
        else:
            self._violation(
                "TP/DEV/BC/001", f"the browser component's Accept is {accept!r}", [index]
            )
        return response

    async def _report(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._refuse()
        sid = request.path_params["sid"]
        session = self._sessions.get(sid)
        body = json_or_none((await request.body()).decode("utf-8", "replace"))
        if session is None:
            response = JSONResponse({"error": "not-found"}, 404)
            await self._record(request, response)
            return response
        if session.ended:
            response = JSONResponse({"error": "conflict", "detail": "the session ended"}, 409)
            index = await self._record(request, response)
            if session.kind == "notified":
                self._violation(
                    "TP/DEV/SESS/003", "the device reported again after the end", [index]
                )
            return response
        if sid != session.ids[-1]:
            response = JSONResponse(
                {"error": "conflict", "detail": f"continue as {session.ids[-1]}"}, 409
            )
            index = await self._record(request, response)
            self._violation(
                "TP/DEV/SESS/002",
                f"the report went to the old id {sid}, not {session.ids[-1]}",
                [index],
            )
            # The session cannot go on: end it, so the rest of the script can.
            session.ended = True
            if session.kind == "notified":
                reason = "the session was cut short (see TP/DEV/SESS/002)"
                self._decide("TP/DEV/SESS/001", Verdict.INCONCLUSIVE, reason, [index])
            return response
        commands = session.rounds[session.done]
        problem = self._check_statuses(commands, body)
        session.done += 1
        answer: Response
        if session.done < len(session.rounds):
            answer = self._package(session)
        else:
            session.ended = True
            answer = Response(status_code=204, headers={"OMADM-Result": "OK"})
        index = await self._record(request, answer)
        if isinstance(body, dict):
            self._note_alerts(body, index)
        if session.kind == "notified":
            if problem:
                self._violation("TP/DEV/SESS/001", problem, [index])
            if session.done == 2:
                self._decide(
                    "TP/DEV/SESS/002", Verdict.PASS, "the second report went to the new id", [index]
                )
            if session.ended:
                self._decide(
                    "TP/DEV/SESS/001",
                    Verdict.PASS,
                    "one status per command, in order, in both rounds",
                    [index],
                )
        elif session.kind == "client" and session.ended:
            if problem:
                self._violation("TP/DEV/CI/001", problem, [index])
            self._decide(
                "TP/DEV/CI/001",
                Verdict.PASS,
                "the client-initiated session ran to its end",
                [index],
            )
        return answer

    def _check_statuses(self, commands: list[list[str]], body: Any) -> str:
        """What is wrong with a package 3 for ``commands`` ("" if nothing)."""
        statuses = body.get("Status") if isinstance(body, dict) else None
        if not isinstance(statuses, list):
            return 'the report has no "Status" list'
        due = [c for c in commands if c[0] != "END"]
        if len(statuses) != len(due):
            return f"{len(statuses)} status(es) for {len(due)} command(s) before END"
        for command, status in zip(due, statuses, strict=True):
            if not isinstance(status, dict) or not isinstance(status.get("sc"), int):
                return f"status {status!r} has no integer sc"
            if command[1].endswith("/DevID") and status.get("Data") != self.dev_id:
                return f"the GET of DevID reported {status.get('Data')!r}: statuses out of order?"
        return ""
