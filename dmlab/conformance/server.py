"""Checking a server: each test purpose carried out over HTTPS, nothing else.

The kit is a client. It plays the roles the CR names (a device, its browser
component, a person's browser, an account's script) with the credentials it is
given, registers the devices it needs (and unregisters them afterwards), and
judges what comes back. It never imports the lab's server: whatever it needs to
decide must be on the wire.

Message bodies follow DM 2.0's JSON as the lab reads it (``{"SessionID", "CMD"}``
for a package 2, ``{"Status": [...]}`` for a package 3, listings as
``{"Sessions": [...]}``); where the CR names no resource at all (how a session is
queued, how a device hears of a notification over HTTP) the kit uses the lab's
readings and says INCONCLUSIVE, with the reason, when a server has neither.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
from httpx_sse import connect_sse

from ..protocol.notification import NotificationError, decode, notification_key, verify_digest
from .purposes import NOTIFICATIONS, QUEUE, SECOND_ACCOUNT, TestPurpose, Verdict, select
from .results import Outcome, Result
from .wire import (
    BROWSER_ACCEPT,
    COMMANDS,
    DEVID_HEADER,
    DM_RESPONSE,
    FORM,
    JSON,
    PACKAGE_1,
    Actor,
    Exchange,
    Form,
    excerpt,
    forms,
    json_or_none,
    kept_headers,
    media_type,
    path_of,
)

DEVINFO = "urn:oma:mo:oma-dm-devinfo:1.0"
FUMO = "urn:oma:mo:oma-fumo:1.0"
#: What the kit queues when it needs a session: two GETs and END (one round).
COMMANDS_ONE_ROUND = [
    ["GET", f"{DEVINFO}//DevInfo/DevID"],
    ["GET", f"{DEVINFO}//DevInfo/FwV"],
    ["END"],
]
#: The lab's job of two rounds (GET, GET; then HGET, EXEC, END) for the id-rotation purposes.
TWO_ROUNDS = {"job": "firmware-update", "params": {"version": "2.0.0"}}
#: How long the kit long-polls for a DM Notification.
NOTIFICATION_WAIT = 5.0
#: Pages of a session listing the kit follows at most (a server that pages its lists).
MAX_PAGES = 50
SERVER_INITIATED = "urn:oma:at:dm:2.0:ServerInitiatedMgmt"
CLIENT_INITIATED = "urn:oma:at:dm:2.0:ClientInitiatedMgmt"
#: A generic alert as DM 2.0 shapes one: a FUMO result (the lab's fumo-alert reading).
FUMO_ALERT = "urn:oma:at:fumo:1.0:DownloadAndUpdate"
DEVICE_ROLES = ("device", "browser-component")
NOT_JSON = b'{"Status": [{"sc": 200}'  # cut short: not JSON


class Decided(Exception):
    """A verdict reached before the end of a check (a violation, or no way to decide)."""

    def __init__(self, verdict: Verdict, reason: str, decisive: int | None = None) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason
        self.decisive = decisive


@dataclass(frozen=True)
class Dev:
    """A device the kit plays: its DevID, secret and the actors speaking for it."""

    dev_id: str
    secret: str
    account: str
    registered: bool

    @property
    def actor(self) -> Actor:
        return Actor(
            f"device {self.dev_id}",
            "device",
            (self.dev_id, self.secret),
            ((DEVID_HEADER, self.dev_id),),
        )

    @property
    def component(self) -> Actor:
        """The device's browser component (same credentials; the CR's Accept)."""
        return Actor(
            f"browser component {self.dev_id}",
            "browser-component",
            (self.dev_id, self.secret),
            (("Accept", COMMANDS),),
        )


@dataclass
class Target:
    """The server under test and what the kit was given to test it with."""

    url: str
    cafile: str | None
    accounts: list[tuple[str, str]]
    devices: list[tuple[str, str]] = field(default_factory=list)
    timeout: float = 15.0

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.context = ssl.create_default_context(cafile=self.cafile)
        self.client = httpx.Client(base_url=self.url, verify=self.context, timeout=self.timeout)
        self.registered: list[tuple[str, str]] = []  # (account name, devId) to remove
        self._readings: dict[str, str] | None = None

    def reading(self, choice_id: str) -> str:
        """The option of a lab choice the server says it has in force (``GET /choices``),
        or "" when it says nothing. Where the CR names no resource (where the browser
        posts, how package 0 travels), the kit follows the server's stated reading."""
        if self._readings is None:
            self._readings = {}
            try:
                answer = self.client.get("/choices", headers={"Accept": JSON})
                rows = answer.json().get("Choices", []) if answer.status_code == 200 else []
            except (httpx.HTTPError, ValueError, AttributeError):
                rows = []
            for row in rows if isinstance(rows, list) else []:
                if isinstance(row, dict) and isinstance(row.get("inForce"), str):
                    self._readings[str(row.get("id"))] = row["inForce"]
        return self._readings.get(choice_id, "")

    def account(self, index: int) -> Actor | None:
        if index >= len(self.accounts):
            return None
        name, password = self.accounts[index]
        return Actor(f"account {name}", "operator", (name, password), (("Accept", JSON),))

    def browser(self, index: int) -> Actor | None:
        if index >= len(self.accounts):
            return None
        name, password = self.accounts[index]
        return Actor(f"browser {name}", "browser", (name, password), (("Accept", BROWSER_ACCEPT),))

    def given_device(self, taken: set[str]) -> tuple[str, str] | None:
        """A ``--device`` this purpose has not taken yet (each purpose may use them all)."""
        return next((d for d in self.devices if d[0] not in taken), None)

    def close(self) -> None:
        """Unregister every device the kit registered."""
        for account, dev_id in self.registered:
            index = next(i for i, (n, _) in enumerate(self.accounts) if n == account)
            try:
                self.client.delete(f"/devices/{quote(dev_id, safe=':')}", auth=self.accounts[index])
            except httpx.HTTPError:
                pass  # the run's verdicts stand; a leftover device is the server's to clean
        self.registered.clear()
        self.client.close()


NOBODY = Actor("nobody", "unknown", None, (("Accept", JSON),))


class Check:
    """One test purpose being carried out: its exchanges and the helpers that make them."""

    def __init__(self, target: Target, purpose: TestPurpose) -> None:
        self.target = target
        self.purpose = purpose
        self.exchanges: list[Exchange] = []
        self.notes: list[str] = []
        self._taken: set[str] = set()  # the --devices this purpose uses

    # Verdicts -----------------------------------------------------------------------
    def expect(self, condition: bool, reason: str) -> None:
        """A rule of the purpose: broken, it decides the verdict (FAIL or WARN)."""
        if not condition:
            raise Decided(self.purpose.on_violation, reason, self._last())

    def need(self, condition: bool, reason: str) -> None:
        """A precondition: unmet, the purpose is INCONCLUSIVE."""
        if not condition:
            raise Decided(Verdict.INCONCLUSIVE, reason, self._last())

    def note(self, text: str) -> None:
        self.notes.append(text)

    def _last(self) -> int | None:
        return len(self.exchanges) - 1 if self.exchanges else None

    # HTTP ------------------------------------------------------------------------------
    def send(
        self,
        actor: Actor,
        method: str,
        path: str,
        *,
        body: Any = None,
        content: bytes | str | None = None,
        content_type: str | None = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a request as ``actor`` and record the exchange."""
        sent = dict(actor.headers)
        if body is not None:
            content = json.dumps(body)
            content_type = content_type or JSON
        elif form is not None:
            from urllib.parse import urlencode

            content = urlencode(form)
            content_type = FORM
        if content_type:
            sent["Content-Type"] = content_type
        sent.update(headers or {})
        request = self.target.client.build_request(
            method,
            path,
            content=content,
            headers=sent,
            params=params,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        if actor.auth is not None:
            request.headers["Authorization"] = basic(*actor.auth)
        record = Exchange(
            actor.label,
            actor.role,
            method,
            path_of(str(request.url)),
            kept_headers(request.headers),
            excerpt(request.content, request.headers.get("content-type", "")),
            dev_id=actor.auth[0] if actor.auth and actor.role in DEVICE_ROLES else "",
        )
        self.exchanges.append(record)
        started = time.monotonic()
        try:
            response = self.target.client.send(request)
            response.read()
        except httpx.HTTPError as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            record.seconds = time.monotonic() - started
            raise Decided(
                Verdict.INCONCLUSIVE, f"no answer to {method} {path}: {record.error}", self._last()
            ) from None
        record.seconds = time.monotonic() - started
        record.status = response.status_code
        record.response_headers = kept_headers(response.headers)
        record.response_body = excerpt(response.content, response.headers.get("content-type", ""))
        return response

    # Actors and fixtures --------------------------------------------------------------
    @property
    def a(self) -> Actor:
        actor = self.target.account(0)
        self.need(actor is not None, "an account is needed (--account NAME:PASSWORD)")
        assert actor is not None
        return actor

    @property
    def b(self) -> Actor:
        actor = self.target.account(1)
        self.need(actor is not None, f"this purpose needs {SECOND_ACCOUNT}")
        assert actor is not None
        return actor

    def browser(self, index: int = 0) -> Actor:
        actor = self.target.browser(index)
        self.need(actor is not None, "an account is needed (--account NAME:PASSWORD)")
        assert actor is not None
        return actor

    def device(self, account: int = 0, name: str = "") -> Dev:
        """A fresh device registered to the account (``POST /devices/new``, JSON), or
        one of the given ``--device``s, drained of pending work."""
        actor = self.a if account == 0 else self.b
        dev_id = f"urn:uuid:{uuid.uuid4()}"
        fields = {"devId": dev_id, "name": name} if name else {"devId": dev_id}
        answer = self.send(actor, "POST", "/devices/new", body=fields)
        secret = (json_or_none(answer.text) or {}).get("secret") if answer.is_success else None
        if answer.is_success and isinstance(secret, str):
            self.target.registered.append((self.target.accounts[account][0], dev_id))
            return Dev(dev_id, secret, actor.label, True)
        spare = self.target.given_device(self._taken) if account == 0 else None
        self.need(
            spare is not None,
            f"could not register a device ({answer.status_code}) and no --device is left to use",
        )
        assert spare is not None
        self._taken.add(spare[0])
        dev = Dev(spare[0], spare[1], actor.label, False)
        self.drain(dev)
        return dev

    def drain(self, dev: Dev) -> None:
        """Run a given device's pending sessions to their end, so it starts clean."""
        for _ in range(20):
            package = self.package(self.send(dev.actor, "POST", "/sessions/next"))
            if not package:
                return
            for _round in range(10):
                package = self.package(self.report(dev, package["SessionID"], package["CMD"]))
                if not package:
                    break

    def queue(
        self,
        dev: Dev,
        *,
        commands: list[list[str]] | None = None,
        job: dict[str, Any] | None = None,
        notify: bool = False,
    ) -> str:
        """Queue a session for ``dev`` the lab's way; INCONCLUSIVE if the server has no such way."""
        body: dict[str, Any] = dict(job) if job else {"CMD": commands or COMMANDS_ONE_ROUND}
        body["notify"] = notify
        answer = self.send(
            self.a, "POST", f"/devices/{quote(dev.dev_id, safe=':')}/sessions", body=body
        )
        session_id = (
            (json_or_none(answer.text) or {}).get("SessionID") if answer.is_success else None
        )
        self.need(
            isinstance(session_id, str),
            f"no session could be queued ({answer.status_code}): this purpose needs {QUEUE}",
        )
        assert isinstance(session_id, str)
        return session_id

    def package(self, answer: httpx.Response) -> dict[str, Any]:
        """A package 2 from an answer: ``{"SessionID", "CMD"}`` (anything else: ``{}``)."""
        body = json_or_none(answer.text) if answer.status_code in (200, 201) else None
        if (
            isinstance(body, dict)
            and isinstance(body.get("SessionID"), str)
            and isinstance(body.get("CMD"), list)
        ):
            return body
        return {}

    def start(self, dev: Dev, session_id: str) -> dict[str, Any]:
        """Start a queued session (a precondition: INCONCLUSIVE if it cannot be)."""
        answer = self.send(dev.actor, "POST", f"/sessions/id/{session_id}")
        package = self.package(answer)
        self.need(bool(package), f"the session could not be started ({answer.status_code})")
        return package

    def report(
        self,
        dev: Dev,
        session_id: str,
        commands: list[Any],
        *,
        fail: bool = False,
        actor: Actor | None = None,
        drop: int = 0,
    ) -> httpx.Response:
        statuses = statuses_for(commands, dev, fail=fail)
        statuses = statuses[: len(statuses) - drop] if drop else statuses
        return self.send(
            actor or dev.actor,
            "PUT",
            f"/sessions/id/{session_id}",
            body={"Status": statuses},
            content_type=DM_RESPONSE,
        )

    def finish(self, dev: Dev, package: dict[str, Any], *, fail: bool = False) -> list[str]:
        """Report every round until the server ends the session; the ids used, in order."""
        ids = []
        for _ in range(10):
            ids.append(package["SessionID"])
            answer = self.report(dev, package["SessionID"], package["CMD"], fail=fail)
            if self._ended_on_end(dev, package, answer):
                return ids
            self.expect(
                answer.status_code in (200, 201, 204),
                f"the report was refused ({answer.status_code})",
            )
            if answer.status_code == 204 or not self.package(answer):
                return ids
            package = self.package(answer)
        raise Decided(
            self.purpose.on_violation, "the session did not end within 10 rounds", self._last()
        )

    def _ended_on_end(self, dev: Dev, package: dict[str, Any], answer: httpx.Response) -> bool:
        """Whether the report of a round ending with END was refused because the session
        had already ended as END was handed out (the specification's reading, lab choice
        end-report): the session is over, and TP/SESS/PUT/002 alone judges the refusal."""
        commands = package["CMD"]
        ends = bool(commands) and isinstance(commands[-1], list) and commands[-1][:1] == ["END"]
        if answer.is_success or not ends:
            return False
        listed = json_or_none(self.listing(dev.actor, "completed").text)
        if not entries_with(listed, package["SessionID"]):
            return False
        self.note("the report after END was refused; the session had ended as END was sent")
        return True

    def done_session(self, dev: Dev, *, fail: bool = False) -> str:
        """A session run to its end; its first id."""
        session_id = self.queue(dev)
        self.finish(dev, self.start(dev, session_id), fail=fail)
        return session_id

    def listing(self, actor: Actor, which: str) -> httpx.Response:
        """``GET /sessions/{which}``, every page of it: a server that pages its lists
        (the lab does: lab choice paging) says where the next page is in a ``Next``
        field or a ``Link: <…>; rel="next"`` header. The answer holds the sessions of
        all pages; the first failing page is the answer as it came."""
        answer = self.send(actor, "GET", f"/sessions/{which}")
        body = json_or_none(answer.text)
        if answer.status_code != 200 or not isinstance(body, dict):
            return answer
        sessions = list(body.get("Sessions") or [])
        seen = {f"/sessions/{which}"}
        for _ in range(MAX_PAGES):
            following = body.get("Next") or answer.links.get("next", {}).get("url")
            if not isinstance(following, str) or following in seen:
                break
            seen.add(following)
            answer = self.send(actor, "GET", following)
            body = json_or_none(answer.text)
            if answer.status_code != 200 or not isinstance(body, dict):
                return answer
            sessions += list(body.get("Sessions") or [])
        return httpx.Response(
            200, json={"Sessions": sessions}, headers={"Content-Type": JSON}, request=answer.request
        )

    def completed_ok(self, actor: Actor, session_id: str) -> bool:
        """Whether ``actor``'s ``GET /sessions/completed`` lists the session with the
        brief result OK."""
        entries = entries_with(json_or_none(self.listing(actor, "completed").text), session_id)
        return bool(entries) and has_result(entries[0], "OK")

    def still_pending(self, dev: Dev, session_id: str) -> bool:
        return session_id in self.listing(dev.actor, "pending").text

    def takes_report(self, dev: Dev, package: dict[str, Any]) -> bool:
        return self.report(dev, package["SessionID"], package["CMD"]).status_code in (200, 201, 204)

    def notification(self, dev: Dev, *, required: bool = True) -> bytes | None:
        """The next DM Notification for ``dev`` as a device in another process gets it:
        a long-poll of ``GET /notifications``, or its event stream where the server says
        notification-transport=sse. ``None`` if none came in time. INCONCLUSIVE where the
        server has no such channel; where it says it sends none (notification-transport=
        none), the CR's trigger is missing: a FAIL if ``required``."""
        reading = self.target.reading("notification-transport")
        if reading == "none":
            missing = (
                "the server says it sends no DM Notification to a device in another process "
                "(GET /choices: notification-transport=none)"
            )
            if required:
                self.expect(False, missing)
            self.need(False, missing)
        if reading == "sse":
            return self._notification_event(dev)
        answer = self.send(
            dev.actor,
            "GET",
            "/notifications",
            params={"wait": NOTIFICATION_WAIT},
            timeout=NOTIFICATION_WAIT + 10,
        )
        self.need(
            answer.status_code not in (404, 405, 501),
            f"the server offers no GET /notifications ({answer.status_code}): {NOTIFICATIONS}",
        )
        return answer.content if answer.status_code == 200 and answer.content else None

    def _notification_event(self, dev: Dev) -> bytes | None:
        """The first ``notification`` event of ``GET /notifications`` as Server-Sent Events."""
        record = Exchange(
            dev.actor.label,
            dev.actor.role,
            "GET",
            "/notifications",
            [("Accept", "text/event-stream")],
            dev_id=dev.dev_id,
        )
        self.exchanges.append(record)
        started = time.monotonic()
        found: bytes | None = None
        try:
            with connect_sse(
                self.target.client,
                "GET",
                "/notifications",
                headers={DEVID_HEADER: dev.dev_id, "Authorization": basic(dev.dev_id, dev.secret)},
                timeout=httpx.Timeout(NOTIFICATION_WAIT + 10, read=NOTIFICATION_WAIT),
            ) as source:
                record.status = source.response.status_code
                record.response_headers = kept_headers(source.response.headers)
                self.need(
                    source.response.status_code == 200,
                    f"the server offers no notification stream ({record.status}): {NOTIFICATIONS}",
                )
                for event in source.iter_sse():
                    if event.event == "notification":
                        found = base64.b64decode(event.data)
                        record.response_body = f"event: notification ({len(found)} bytes)"
                        break
        except (httpx.ReadTimeout, ValueError):
            record.response_body = f"no notification event within {NOTIFICATION_WAIT:g} s"
        except httpx.HTTPError as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            raise Decided(
                Verdict.INCONCLUSIVE,
                f"no answer to GET /notifications: {record.error}",
                self._last(),
            ) from None
        finally:
            record.seconds = time.monotonic() - started
        return found

    def refused(self, answer: httpx.Response, what: str) -> None:
        self.expect(
            400 <= answer.status_code < 500,
            f"{what} was answered {answer.status_code}, not refused with a 4xx",
        )

    def html_form(self, path: str, action_has: str, actor: Actor | None = None) -> Form:
        answer = self.send(actor or self.browser(), "GET", path)
        found = [
            f
            for f in forms(answer.text)
            if action_has in urljoin(path, f.action) and f.method == "post"
        ]
        self.need(
            answer.status_code == 200 and bool(found),
            f"no form posting to …{action_has} on {path} ({answer.status_code})",
        )
        return found[0]


def basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode("ascii")


def statuses_for(commands: Iterable[Any], dev: Dev, *, fail: bool = False) -> list[dict[str, Any]]:
    """What a device would report: one status per command before END, GETs with data."""
    values = {"DevID": dev.dev_id, "FwV": "1.0.0", "State": 10}
    out: list[dict[str, Any]] = []
    for command in commands:
        name = command[0] if isinstance(command, list) and command else ""
        if name == "END":
            continue
        if fail:
            out.append({"sc": 500})
        elif name == "GET":
            leaf = str(command[1]).rsplit("/", 1)[-1] if len(command) > 1 else ""
            out.append({"sc": 200, "Data": values[leaf]} if leaf in values else {"sc": 200})
        else:
            out.append({"sc": 200})
    return out


def entries_with(body: Any, session_id: str) -> list[dict[str, Any]]:
    """Listing entries naming ``session_id`` (as its SessionID, or among its IDs)."""
    sessions = body.get("Sessions") if isinstance(body, dict) else None
    return [
        entry
        for entry in (sessions if isinstance(sessions, list) else [])
        if isinstance(entry, dict)
        and (entry.get("SessionID") == session_id or session_id in (entry.get("IDs") or []))
    ]


def has_result(entry: dict[str, Any], result: str) -> bool:
    return any(isinstance(v, str) and v.lower() == result.lower() for v in entry.values())


# --- the checks, one per test purpose -------------------------------------------------------

CheckFn = Callable[[Check], None]
CHECKS: dict[str, CheckFn] = {}


def check(*ids: str) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        for purpose_id in ids:
            CHECKS[purpose_id] = fn
        return fn

    return register


# x.1.1 GET /sessions/pending


@check("TP/SESS/PEND/001", "TP/SESS/PEND/002")
def _pending_listed(c: Check) -> None:
    dev = c.device()
    sid = c.queue(dev)
    who = dev.actor if c.purpose.id.endswith("1") else c.a
    answer = c.listing(who, "pending")
    c.expect(answer.status_code == 200, f"the listing answered {answer.status_code}")
    c.expect(sid in answer.text, f"the pending session {sid} is not listed")


@check("TP/SESS/PEND/003", "TP/SESS/COMP/004")
def _listing_other_account(c: Check) -> None:
    b = c.b
    dev = c.device()
    pending = c.purpose.id.startswith("TP/SESS/PEND")
    sid = c.queue(dev) if pending else c.done_session(dev)
    answer = c.listing(b, "pending" if pending else "completed")
    c.expect(sid not in answer.text, f"another account sees session {sid}")


@check("TP/SESS/PEND/004")
def _pending_other_device(c: Check) -> None:
    dev, other = c.device(), c.device()
    sid = c.queue(dev)
    c.expect(
        sid not in c.listing(other.actor, "pending").text, f"another device sees session {sid}"
    )


@check("TP/SESS/PEND/005", "TP/SESS/COMP/006")
def _listing_nobody(c: Check) -> None:
    dev = c.device()
    pending = c.purpose.id.startswith("TP/SESS/PEND")
    sid = c.queue(dev) if pending else c.done_session(dev)
    answer = c.listing(NOBODY, "pending" if pending else "completed")
    c.refused(answer, "a listing without credentials")
    c.expect(sid not in answer.text, f"session {sid} is revealed without credentials")


# x.1.1 GET /sessions/completed


@check("TP/SESS/COMP/001", "TP/SESS/COMP/002", "TP/SESS/COMP/003")
def _completed_listed(c: Check) -> None:
    fail = c.purpose.id.endswith("2")
    dev = c.device()
    sid = c.done_session(dev, fail=fail)
    who = c.a if c.purpose.id.endswith("3") else dev.actor
    answer = c.listing(who, "completed")
    c.expect(answer.status_code == 200, f"the listing answered {answer.status_code}")
    entries = entries_with(json_or_none(answer.text), sid)
    c.expect(bool(entries), f"the completed session {sid} is not listed")
    wanted = "failure" if fail else "OK"
    c.expect(
        has_result(entries[0], wanted),
        f"session {sid} is not listed with the brief result {wanted}",
    )


@check("TP/SESS/COMP/005")
def _completed_not_pending(c: Check) -> None:
    dev = c.device()
    sid = c.queue(dev)
    answer = c.listing(dev.actor, "completed")
    c.expect(answer.status_code == 200, f"the listing answered {answer.status_code}")
    c.expect(sid not in answer.text, f"the pending session {sid} is listed as completed")


# x.1.1 POST /sessions/next and POST /sessions/id/{sessionId}


def _starts_with_commands(c: Check, answer: httpx.Response, queued: list[list[str]]) -> None:
    c.expect(answer.status_code == 200, f"the start answered {answer.status_code}, not 200")
    package = c.package(answer)
    c.expect(bool(package), 'the answer is not a package 2 ({"SessionID", "CMD"})')
    c.expect(
        package["CMD"] == queued, f"the commands are {package['CMD']}, not the queued {queued}"
    )


@check("TP/SESS/NEXT/001")
def _next_starts(c: Check) -> None:
    dev = c.device()
    c.queue(dev)
    _starts_with_commands(c, c.send(dev.actor, "POST", "/sessions/next"), COMMANDS_ONE_ROUND)


@check("TP/SESS/NEXT/002")
def _next_idle(c: Check) -> None:
    dev = c.device()
    answer = c.send(dev.actor, "POST", "/sessions/next")
    c.expect(
        answer.status_code in (204, 404),
        f"with nothing pending the answer is {answer.status_code}, as if a session started",
    )
    c.expect(not c.package(answer), "with nothing pending the answer carries commands")


@check("TP/SESS/NEXT/003")
def _next_leaves_pending(c: Check) -> None:
    dev = c.device()
    sid = c.queue(dev)
    c.need(
        c.send(dev.actor, "POST", "/sessions/next").status_code == 200,
        "the session could not be started",
    )
    c.expect(
        not c.still_pending(dev, sid), f"session {sid} is still listed as pending once started"
    )


@check("TP/SESS/NEXT/004")
def _next_account(c: Check) -> None:
    dev = c.device()
    sid = c.queue(dev)
    c.refused(c.send(c.a, "POST", "/sessions/next"), "an account's POST /sessions/next")
    c.expect(c.still_pending(dev, sid), f"session {sid} is no longer pending")


@check("TP/SESS/NEXT/005")
def _next_bad_body(c: Check) -> None:
    dev = c.device()
    sid = c.queue(dev)
    answer = c.send(dev.actor, "POST", "/sessions/next", content=NOT_JSON, content_type=PACKAGE_1)
    c.refused(answer, "a package 1 that is not JSON")
    c.expect(c.still_pending(dev, sid), f"session {sid} is no longer pending")


@check("TP/SESS/NEXT/006")
def _next_other_device(c: Check) -> None:
    dev, other = c.device(), c.device()
    sid = c.queue(dev)
    answer = c.send(other.actor, "POST", "/sessions/next")
    c.expect(not c.package(answer), f"another device was handed a session ({answer.status_code})")
    c.expect(c.still_pending(dev, sid), f"session {sid} is no longer pending")


@check("TP/SESS/START/001")
def _start_named(c: Check) -> None:
    dev = c.device()
    sid = c.queue(dev)
    _starts_with_commands(c, c.send(dev.actor, "POST", f"/sessions/id/{sid}"), COMMANDS_ONE_ROUND)


def unknown_id() -> str:
    return uuid.uuid4().hex[:16]


@check("TP/SESS/START/002")
def _start_unknown(c: Check) -> None:
    dev = c.device()
    answer = c.send(dev.actor, "POST", f"/sessions/id/{unknown_id()}")
    c.refused(answer, "starting an unknown id")
    c.expect(not c.package(answer), "commands came back for an unknown id")


@check("TP/SESS/START/003", "TP/SESS/START/004", "TP/SESS/START/007")
def _start_someone_else(c: Check) -> None:
    kind = c.purpose.id[-1]
    dev = c.device()
    if kind == "4":
        c.b  # noqa: B018 - needs the second account
        actor = c.device(account=1).actor
    elif kind == "3":
        actor = c.device().actor
    else:
        actor = c.a
    sid = c.queue(dev)
    answer = c.send(actor, "POST", f"/sessions/id/{sid}")
    c.refused(answer, f"{actor.label}'s start of another device's session")
    c.expect(c.still_pending(dev, sid), f"session {sid} is no longer pending")


@check("TP/SESS/START/005")
def _start_twice(c: Check) -> None:
    dev = c.device()
    sid = c.queue(dev)
    package = c.start(dev, sid)
    c.refused(c.send(dev.actor, "POST", f"/sessions/id/{sid}"), "starting an active session again")
    c.expect(c.takes_report(dev, package), "the session no longer takes its report")


@check("TP/SESS/START/006")
def _start_spent(c: Check) -> None:
    dev = c.device()
    sid = c.done_session(dev)
    answer = c.send(dev.actor, "POST", f"/sessions/id/{sid}")
    c.refused(answer, "starting a completed session's id")
    c.expect(not c.package(answer), "commands came back for a spent id")


@check("TP/SESS/COMP/007")
def _completed_without_running(c: Check) -> None:
    dev = c.device()
    aborted = c.queue(dev)
    c.start(dev, aborted)
    stopped = c.send(dev.actor, "DELETE", f"/session/id/{aborted}")
    c.need(stopped.is_success, f"the session could not be aborted ({stopped.status_code})")
    # A time to live of 0 is the lab's way to queue a session that expires at once.
    expired = c.queue(dev, job={"CMD": COMMANDS_ONE_ROUND, "ttl": 0})
    listed = json_or_none(c.listing(dev.actor, "completed").text)
    for sid in (aborted, expired):
        for entry in entries_with(listed, sid):  # not listed at all is no brief result
            c.expect(
                has_result(entry, "OK") or has_result(entry, "failure"),
                f"session {sid} is listed with the brief result {entry.get('Result')!r}, "
                "not OK or failure",
            )


# x.1.1 PUT /sessions/id/{sessionId}


def _second_round(c: Check, dev: Dev) -> tuple[dict[str, Any], httpx.Response]:
    sid = c.queue(dev, job=TWO_ROUNDS)
    first = c.start(dev, sid)
    answer = c.report(dev, sid, first["CMD"])
    c.need(
        answer.status_code in (200, 201) and bool(c.package(answer)),
        f"no second round came back ({answer.status_code}); a session of two rounds is needed",
    )
    return first, answer


@check("TP/SESS/PUT/001")
def _put_new_id(c: Check) -> None:
    dev = c.device()
    first, answer = _second_round(c, dev)
    new_id = c.package(answer)["SessionID"]
    c.expect(new_id != first["SessionID"], f"the further commands keep the session id {new_id}")


@check("TP/SESS/PUT/002")
def _put_ends(c: Check) -> None:
    dev = c.device()
    sid = c.queue(dev)
    package = c.start(dev, sid)
    answer = c.report(dev, sid, package["CMD"])
    c.expect(
        answer.status_code in (200, 204) and not c.package(answer),
        f"the last report answered {answer.status_code} with further commands or an error",
    )
    entries = entries_with(json_or_none(c.listing(dev.actor, "completed").text), sid)
    c.expect(bool(entries), f"session {sid} is not listed as completed")


@check("TP/SESS/PUT/003", "TP/SESS/PUT/004")
def _put_bad_report(c: Check) -> None:
    dev = c.device()
    sid = c.queue(dev)
    package = c.start(dev, sid)
    if c.purpose.id.endswith("3"):
        answer = c.report(dev, sid, package["CMD"], drop=1)
        c.refused(answer, "a report one status short")
    else:
        answer = c.send(
            dev.actor, "PUT", f"/sessions/id/{sid}", content=NOT_JSON, content_type=DM_RESPONSE
        )
        c.refused(answer, "a report that is not JSON")
    c.expect(c.takes_report(dev, package), "the session no longer takes a correct report")


@check("TP/SESS/PUT/005")
def _put_unknown(c: Check) -> None:
    dev = c.device()
    c.refused(c.report(dev, unknown_id(), COMMANDS_ONE_ROUND), "a report on an unknown id")


@check("TP/SESS/PUT/006")
def _put_spent(c: Check) -> None:
    dev = c.device()
    sid = c.done_session(dev)
    c.refused(
        c.report(dev, sid, COMMANDS_ONE_ROUND, fail=True), "a second report on an ended session"
    )
    c.expect(c.completed_ok(dev.actor, sid), f"session {sid} lost its result OK")


@check("TP/SESS/PUT/007", "TP/SESS/PUT/008")
def _put_someone_else(c: Check) -> None:
    dev = c.device()
    actor = c.device().actor if c.purpose.id.endswith("7") else c.a
    sid = c.queue(dev)
    package = c.start(dev, sid)
    c.refused(
        c.report(dev, sid, package["CMD"], actor=actor, fail=True),
        f"{actor.label}'s report on another device's session",
    )
    c.expect(c.takes_report(dev, package), "the device's own report is no longer taken")


@check("TP/SESS/PUT/009")
def _put_pending(c: Check) -> None:
    dev = c.device()
    sid = c.queue(dev)
    c.refused(c.report(dev, sid, COMMANDS_ONE_ROUND), "a report on a session not started")
    c.expect(c.still_pending(dev, sid), f"session {sid} is no longer pending")


@check("TP/SESS/PUT/010")
def _put_old_id(c: Check) -> None:
    dev = c.device()
    first, answer = _second_round(c, dev)
    second = c.package(answer)
    c.need(
        second["SessionID"] != first["SessionID"],
        "the server kept the id, so no id was spent (see TP/SESS/PUT/001)",
    )
    # Other statuses: a repeat of the same report is a retry (TP/HTTP/IDEM/001).
    c.refused(
        c.report(dev, first["SessionID"], first["CMD"], fail=True), "a report on the replaced id"
    )
    c.expect(c.takes_report(dev, second), "the session no longer takes its report on the new id")


@check("TP/HTTP/IDEM/001")
def _put_repeated(c: Check) -> None:
    dev = c.device()
    first, answer = _second_round(c, dev)  # suppose this answer never reached the device
    second = c.package(answer)
    again = c.report(dev, first["SessionID"], first["CMD"])
    c.expect(
        again.status_code == answer.status_code and c.package(again) == second,
        f"the repeated PUT answered {again.status_code}, not round 2 again",
    )
    c.expect(c.takes_report(dev, second), "after the repeat the session no longer takes round 2")


# x.1.1 DELETE /session/id/{sessionId}


@check("TP/SESS/DEL/001", "TP/SESS/DEL/002")
def _abort(c: Check) -> None:
    dev = c.device()
    actor = dev.actor if c.purpose.id.endswith("1") else c.a
    sid = c.queue(dev)
    package = c.start(dev, sid)
    answer = c.send(actor, "DELETE", f"/session/id/{sid}")
    c.expect(answer.is_success, f"DELETE /session/id/{{id}} answered {answer.status_code}")
    c.expect(not c.takes_report(dev, package), "the aborted session still takes a report")


@check("TP/SESS/DEL/003")
def _abort_unknown(c: Check) -> None:
    dev = c.device()
    c.refused(c.send(dev.actor, "DELETE", f"/session/id/{unknown_id()}"), "aborting an unknown id")


@check("TP/SESS/DEL/004", "TP/SESS/DEL/005", "TP/SESS/DEL/007")
def _abort_someone_else(c: Check) -> None:
    kind = c.purpose.id[-1]
    actor = c.b if kind == "4" else NOBODY if kind == "7" else None
    dev = c.device()
    actor = actor or c.device().actor
    sid = c.queue(dev)
    package = c.start(dev, sid)
    c.refused(c.send(actor, "DELETE", f"/session/id/{sid}"), f"{actor.label}'s abort")
    c.expect(c.takes_report(dev, package), "the session was aborted: it no longer takes its report")


@check("TP/SESS/DEL/006")
def _abort_ended(c: Check) -> None:
    dev = c.device()
    sid = c.done_session(dev)
    c.refused(c.send(dev.actor, "DELETE", f"/session/id/{sid}"), "aborting an ended session")
    c.expect(c.completed_ok(dev.actor, sid), f"session {sid} lost its result OK")


# x.1.2 Devices


def dev_path(dev: Dev | str) -> str:
    dev_id = dev.dev_id if isinstance(dev, Dev) else dev
    return f"/devices/{quote(dev_id, safe=':')}"


@check("TP/DEVS/LIST/001")
def _devices_listed(c: Check) -> None:
    dev = c.device()
    answer = c.send(c.a, "GET", "/devices")
    c.expect(
        answer.status_code == 200 and dev.dev_id in answer.text,
        f"{dev.dev_id} is not listed ({answer.status_code})",
    )


@check("TP/DEVS/LIST/002")
def _devices_other_account(c: Check) -> None:
    c.b  # noqa: B018 - needs the second account
    theirs = c.device(account=1)
    c.expect(
        theirs.dev_id not in c.send(c.a, "GET", "/devices").text,
        "another account's device is listed",
    )


@check("TP/DEVS/LIST/003")
def _devices_by_device(c: Check) -> None:
    dev = c.device()
    answer = c.send(dev.actor, "GET", "/devices")
    c.refused(answer, "a device's GET /devices")
    c.expect(dev.dev_id not in answer.text, "the listing was shown to a device")


@check("TP/DEVS/FORM/001")
def _form_html(c: Check) -> None:
    answer = c.send(c.browser(), "GET", "/devices/new")
    c.expect(answer.status_code == 200, f"the form answered {answer.status_code}")
    c.expect(
        media_type(answer.headers.get("content-type")) == "text/html",
        f"the form is {answer.headers.get('content-type')}, not HTML",
    )
    c.expect(
        any(f.method == "post" for f in forms(answer.text)), "the page holds no <form method=post>"
    )


@check("TP/DEVS/FORM/002")
def _form_device(c: Check) -> None:
    dev = c.device()
    answer = c.send(dev.actor, "GET", "/devices/new", headers={"Accept": BROWSER_ACCEPT})
    c.refused(answer, "a device's GET /devices/new")


def _dev_id_field(form: Form) -> str | None:
    return next(
        (n for n in form.names if n.lower().replace("_", "").replace("-", "") == "devid"), None
    )


@check("TP/DEVS/REG/001")
def _register_form(c: Check) -> None:
    form = c.html_form("/devices/new", "/devices/new")
    name = _dev_id_field(form)
    c.need(name is not None, f"the form has no devId field (fields: {', '.join(form.names)})")
    assert name is not None
    dev_id = f"urn:uuid:{uuid.uuid4()}"
    answer = c.send(
        c.browser(),
        "POST",
        urljoin("/devices/new", form.action),
        form={**form.fields, name: dev_id},
    )
    if answer.is_success:
        c.target.registered.append((c.target.accounts[0][0], dev_id))
    c.expect(answer.is_success, f"registering with the form's data answered {answer.status_code}")
    c.expect(
        dev_id in c.send(c.a, "GET", "/devices").text, f"{dev_id} is not listed after registering"
    )


@check("TP/DEVS/REG/002")
def _register_twice(c: Check) -> None:
    dev = c.device()
    answer = c.send(c.a, "POST", "/devices/new", body={"devId": dev.dev_id})
    c.refused(answer, "registering a devId again")
    c.expect(
        c.listing(dev.actor, "pending").status_code == 200,
        "the device's own credentials stopped working",
    )


@check("TP/DEVS/REG/003", "TP/DEVS/REG/004")
def _register_bad(c: Check) -> None:
    before = c.send(c.a, "GET", "/devices").text.count("urn:uuid:")
    if c.purpose.id.endswith("3"):
        c.refused(
            c.send(c.a, "POST", "/devices/new", body={"name": "no devId"}),
            "a registration without devId",
        )
    else:
        dev = c.device()
        before += 1
        new = f"urn:uuid:{uuid.uuid4()}"
        c.refused(
            c.send(dev.actor, "POST", "/devices/new", body={"devId": new}),
            "a device's registration",
        )
    c.expect(c.send(c.a, "GET", "/devices").text.count("urn:uuid:") == before, "a device was added")


@check("TP/DEVS/GET/001")
def _device_info(c: Check) -> None:
    name = f"conformance {uuid.uuid4().hex[:8]}"
    dev = c.device(name=name)
    answer = c.send(c.a, "GET", dev_path(dev))
    c.expect(answer.status_code == 200, f"the device's information answered {answer.status_code}")
    c.expect(
        dev.dev_id in answer.text and name in answer.text, "the answer lacks the devId or the name"
    )


@check("TP/DEVS/GET/002")
def _device_info_form(c: Check) -> None:
    dev = c.device()
    answer = c.send(c.browser(), "GET", dev_path(dev))
    c.expect(answer.status_code == 200, f"the device page answered {answer.status_code}")
    c.expect(
        media_type(answer.headers.get("content-type")) == "text/html", "the device page is not HTML"
    )
    c.expect(bool(forms(answer.text)), "the device page holds no form to update the information")


@check("TP/DEVS/GET/003")
def _device_info_other(c: Check) -> None:
    b = c.b
    name = f"conformance {uuid.uuid4().hex[:8]}"
    dev = c.device(name=name)
    answer = c.send(b, "GET", dev_path(dev))
    c.refused(answer, "another account's GET of the device")
    c.expect(name not in answer.text, "the device's name is revealed to another account")


@check("TP/DEVS/GET/004", "TP/DEVS/PUT/004", "TP/DEVS/DEL/003")
def _device_unknown(c: Check) -> None:
    method = {"GET": "GET", "PUT": "PUT", "DEL": "DELETE"}[c.purpose.id.split("/")[2]]
    dev_id = f"urn:uuid:{uuid.uuid4()}"
    answer = c.send(c.a, method, dev_path(dev_id), body={"name": "x"} if method == "PUT" else None)
    c.refused(answer, f"{method} on a devId never registered")
    c.expect(dev_id not in c.send(c.a, "GET", "/devices").text, "the unknown devId now exists")


@check("TP/DEVS/PUT/001")
def _device_update(c: Check) -> None:
    dev = c.device(name="before")
    name = f"after {uuid.uuid4().hex[:8]}"
    answer = c.send(c.a, "PUT", dev_path(dev), body={"name": name})
    c.expect(answer.is_success, f"the update answered {answer.status_code}")
    c.expect(name in c.send(c.a, "GET", dev_path(dev)).text, "the new name is not shown")


@check("TP/DEVS/PUT/002", "TP/DEVS/PUT/003", "TP/HTTP/ETAG/001")
def _device_update_refused(c: Check) -> None:
    kind = c.purpose.id
    actor = c.b if kind.endswith("PUT/002") else c.a
    name = f"kept {uuid.uuid4().hex[:8]}"
    dev = c.device(name=name)
    if kind.endswith("PUT/003"):
        answer = c.send(actor, "PUT", dev_path(dev), content=b'{"name": ', content_type=JSON)
        c.refused(answer, "a malformed update")
    elif kind.endswith("ETAG/001"):
        answer = c.send(
            actor,
            "PUT",
            dev_path(dev),
            body={"name": "changed"},
            headers={"If-Match": '"not-current"'},
        )
        c.expect(
            answer.status_code == 412,
            f'If-Match: "not-current" was answered {answer.status_code}, not 412',
        )
    else:
        c.refused(
            c.send(actor, "PUT", dev_path(dev), body={"name": "changed"}),
            "another account's update",
        )
    c.expect(name in c.send(c.a, "GET", dev_path(dev)).text, "the device's name changed")


@check("TP/DEVS/DEL/001")
def _device_delete(c: Check) -> None:
    dev = c.device()
    answer = c.send(c.a, "DELETE", dev_path(dev))
    c.expect(answer.is_success, f"unregistering answered {answer.status_code}")
    c.expect(c.send(c.a, "GET", dev_path(dev)).status_code == 404, "the device is still found")
    c.expect(
        c.listing(dev.actor, "pending").status_code in (401, 403),
        "the device's credentials still work",
    )


@check("TP/DEVS/DEL/002")
def _device_delete_other(c: Check) -> None:
    b = c.b
    dev = c.device()
    c.refused(c.send(b, "DELETE", dev_path(dev)), "another account's unregister")
    c.expect(c.send(c.a, "GET", dev_path(dev)).status_code == 200, "the device is gone")


# x.1.3 Alert


def _alert(alert_type: str, **fields: Any) -> dict[str, Any]:
    return {"Alert": [{"AlertType": alert_type, **fields}]}


@check("TP/ALRT/001")
def _alert_generic(c: Check) -> None:
    dev = c.device()
    body = _alert(
        FUMO_ALERT,
        SourceURI=f"{FUMO}/fw1/DownloadAndUpdate",
        Mark="informational",
        DataType="int",
        Data={"DM1x": 200},
    )
    answer = c.send(dev.actor, "POST", "/alert", body=body, content_type=PACKAGE_1)
    c.expect(answer.is_success, f"the generic alert answered {answer.status_code}")


@check("TP/ALRT/002")
def _alert_opens(c: Check) -> None:
    dev = c.device()
    sid = c.queue(dev)
    answer = c.send(
        dev.actor, "POST", "/alert", body=_alert(CLIENT_INITIATED), content_type=PACKAGE_1
    )
    c.expect(bool(c.package(answer)), f"the alert answered {answer.status_code}, not commands")
    if not c.still_pending(dev, sid):  # else the alert opened a session of its own
        _starts_with_commands(c, answer, COMMANDS_ONE_ROUND)
    c.expect(
        c.takes_report(dev, c.package(answer)), "the report on the alert's session id is refused"
    )


@check("TP/ALRT/003")
def _alert_idle(c: Check) -> None:
    dev = c.device()
    answer = c.send(
        dev.actor, "POST", "/alert", body=_alert(CLIENT_INITIATED), content_type=PACKAGE_1
    )
    c.expect(
        answer.status_code == 204 or (answer.status_code == 200 and bool(c.package(answer))),
        f"the alert answered {answer.status_code} without a session",
    )


@check("TP/ALRT/004", "TP/ALRT/005", "TP/ALRT/006")
def _alert_refused(c: Check) -> None:
    dev = c.device()
    sid = c.queue(dev)
    kind = c.purpose.id[-1]
    if kind == "5":
        answer = c.send(dev.actor, "POST", "/alert", content=NOT_JSON, content_type=PACKAGE_1)
    else:
        actor = c.a if kind == "4" else NOBODY
        answer = c.send(
            actor, "POST", "/alert", body=_alert(CLIENT_INITIATED), content_type=PACKAGE_1
        )
    c.refused(answer, "the alert")
    c.expect(c.still_pending(dev, sid), f"session {sid} is no longer pending")


# x.2 TLS


def _host_port(c: Check) -> tuple[str, int]:
    parts = urlsplit(c.target.url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


def _probe(c: Check, what: str) -> Exchange:
    record = Exchange("kit", "unknown", "CONNECT", what)
    c.exchanges.append(record)
    return record


@check("TP/TLS/001")
def _tls_url(c: Check) -> None:
    _probe(c, c.target.url)
    c.expect(c.target.url.startswith("https://"), f"{c.target.url} is not an https:// URL")


@check("TP/TLS/002")
def _tls_plain(c: Check) -> None:
    host, port = _host_port(c)
    record = _probe(c, f"plain HTTP to {host}:{port}")
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    record.request_body = request.decode()
    received = b""
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(request)
            while len(received) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
    except OSError as exc:
        record.error = f"{type(exc).__name__}: {exc}"
    record.response_body = excerpt(received)
    c.expect(not received.startswith(b"HTTP/"), "the server answered plain HTTP")
    c.note(f"no HTTP answer ({len(received)} bytes{', ' + record.error if record.error else ''})")


@check("TP/TLS/003")
def _tls_old(c: Check) -> None:
    host, port = _host_port(c)
    record = _probe(c, f"TLS 1.0/1.1 handshake with {host}:{port}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        # Offering TLS 1.0/1.1 is the point here: Python's deprecation warning is not news.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError) as exc:
        raise Decided(
            Verdict.INCONCLUSIVE, f"this machine's TLS library cannot offer TLS 1.0/1.1: {exc}"
        ) from None
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            with context.wrap_socket(sock, server_hostname=host) as tls:
                record.response_body = f"negotiated {tls.version()}"
    except ssl.SSLError as exc:
        record.error = f"{exc.reason or exc}"
        c.need(
            "NO_PROTOCOLS_AVAILABLE" not in str(exc) and "no protocols available" not in str(exc),
            f"this machine's TLS library cannot offer TLS 1.0/1.1 ({exc})",
        )
        c.note(f"refused: {record.error}")
        return
    except OSError as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        c.note(f"refused: {record.error}")
        return
    raise Decided(
        Verdict.FAIL,
        f"the server accepted {record.response_body.split()[-1]}",
        len(c.exchanges) - 1,
    )


@check("TP/TLS/004")
def _tls_certificate(c: Check) -> None:
    host, port = _host_port(c)
    record = _probe(c, f"TLS handshake with {host}:{port}, verifying against the CA")
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            with c.target.context.wrap_socket(sock, server_hostname=host) as tls:
                record.response_body = f"verified; {tls.version()}"
    except ssl.SSLCertVerificationError as exc:
        record.error = exc.verify_message or str(exc)
        raise Decided(
            Verdict.FAIL, f"the certificate does not verify: {record.error}", len(c.exchanges) - 1
        ) from None
    except OSError as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        raise Decided(
            Verdict.INCONCLUSIVE, f"no TLS handshake: {record.error}", len(c.exchanges) - 1
        ) from None


# x.2.1 - x.2.4 flows


def _run_after_notification(c: Check, dev: Dev) -> bytes:
    """Long-poll for the DM Notification, then call in and run the session to its end."""
    package0 = c.notification(dev)
    c.expect(package0 is not None, f"no DM Notification within {NOTIFICATION_WAIT:g} s")
    assert package0 is not None
    try:
        nid = decode(package0).notification_id
    except NotificationError as exc:
        raise Decided(
            c.purpose.on_violation, f"the notification does not decode: {exc}", len(c.exchanges) - 1
        ) from None
    # DM 2.0: package 1 names the notification it answers (Data {"NOTIFICATION-ID": n}).
    alert: dict[str, Any] = {"AlertType": SERVER_INITIATED}
    if nid is not None:
        alert["Data"] = {"NOTIFICATION-ID": nid}
    opened = c.send(
        dev.actor, "POST", "/sessions/next", body={"Alert": [alert]}, content_type=PACKAGE_1
    )
    package = c.package(opened)
    c.expect(
        bool(package),
        f"calling in after the notification answered {opened.status_code}, not commands",
    )
    first = c.finish(dev, package)[0]
    c.expect(c.completed_ok(c.a, first), f"session {first} is not completed with OK")
    return package0


@check("TP/FLOW/SI/001")
def _flow_server_initiated(c: Check) -> None:
    dev = c.device()
    c.queue(dev, notify=True)
    _run_after_notification(c, dev)


@check("TP/FLOW/SI/002")
def _flow_digest(c: Check) -> None:
    dev = c.device()
    c.queue(dev, notify=True)
    package0 = c.notification(dev, required=False)
    c.need(package0 is not None, "no DM Notification came")
    assert package0 is not None
    c.expect(
        verify_digest(package0, notification_key(dev.secret)),
        "SHA256-DIGEST does not match the key derived from the device's secret",
    )


@check("TP/FLOW/CI/001")
def _flow_client_initiated(c: Check) -> None:
    dev = c.device()
    c.queue(dev)
    answer = c.send(
        dev.actor, "POST", "/alert", body=_alert(CLIENT_INITIATED), content_type=PACKAGE_1
    )
    package = c.package(answer)
    c.expect(
        bool(package), f"the client-initiated alert answered {answer.status_code}, not commands"
    )
    opened = c.finish(dev, package)[0]  # S, or a session of the alert's own
    c.expect(c.completed_ok(dev.actor, opened), f"session {opened} is not completed with OK")


@check("TP/FLOW/BC/001")
def _flow_component(c: Check) -> None:
    dev = c.device()
    # The CR names no resource: the lab's, or /sessions/next where the server says so.
    entry = (
        "/sessions/next"
        if c.target.reading("browser-entry") == "sessions-next"
        else f"{dev_path(dev)}/sessions"
    )
    answer = c.send(dev.component, "POST", entry, body={"CMD": COMMANDS_ONE_ROUND})
    package = c.package(answer)
    c.expect(
        bool(package),
        f"the browser component got {answer.status_code} {answer.headers.get('content-type', '')}, not commands",
    )
    first = c.finish(dev, package)[0]
    c.expect(c.completed_ok(dev.actor, first), f"session {first} is not completed with OK")


def _browser_post(c: Check, dev: Dev) -> httpx.Response:
    form = c.html_form(dev_path(dev), "/sessions")
    action = urljoin(dev_path(dev), form.action)
    return c.send(c.browser(), "POST", action, form=form.fields)


@check("TP/FLOW/BI/001")
def _flow_browser_page(c: Check) -> None:
    dev = c.device()
    answer = _browser_post(c, dev)
    c.expect(answer.is_success, f"the browser's POST answered {answer.status_code}")
    c.expect(
        media_type(answer.headers.get("content-type")) == "text/html",
        "the browser got no HTML page",
    )
    c.expect(not c.package(answer), "the browser got commands")


@check("TP/FLOW/BI/002")
def _flow_browser_notifies(c: Check) -> None:
    dev = c.device()
    answer = _browser_post(c, dev)
    c.need(answer.is_success, f"the browser's POST answered {answer.status_code}")
    _run_after_notification(c, dev)


# HTTP conventions


@check("TP/HTTP/PROB/001")
def _problem(c: Check) -> None:
    answer = c.send(c.a, "GET", dev_path(f"urn:uuid:{uuid.uuid4()}"))
    c.need(400 <= answer.status_code < 500, f"no error came back ({answer.status_code})")
    body = json_or_none(answer.text)
    c.expect(
        media_type(answer.headers.get("content-type")) == "application/problem+json",
        f"the error is {answer.headers.get('content-type')}, not application/problem+json",
    )
    c.expect(
        isinstance(body, dict) and body.get("status") == answer.status_code and "title" in body,
        "the problem lacks status or title",
    )


@check("TP/HTTP/AUTH/001")
def _www_authenticate(c: Check) -> None:
    answer = c.listing(NOBODY, "pending")
    c.expect(
        answer.status_code == 401,
        f"a request without credentials answered {answer.status_code}, not 401",
    )
    c.expect(
        "basic" in answer.headers.get("www-authenticate", "").lower()
        or bool(answer.headers.get("www-authenticate")),
        "the 401 has no WWW-Authenticate",
    )


@check("TP/HTTP/ALLOW/001")
def _allow(c: Check) -> None:
    dev = c.device()
    answer = c.send(c.a, "PATCH", dev_path(dev), body={"name": "x"})
    c.expect(answer.status_code == 405, f"PATCH answered {answer.status_code}, not 405")
    c.expect(bool(answer.headers.get("allow")), "the 405 has no Allow header")


@check("TP/HTTP/NEG/001")
def _vary(c: Check) -> None:
    dev = c.device()
    for actor in (c.a, c.browser()):
        answer = c.send(actor, "GET", dev_path(dev))
        vary = [v.strip().lower() for v in answer.headers.get("vary", "").split(",")]
        c.expect("accept" in vary, f"the answer for {actor.label} has no Vary: Accept")


@check("TP/HTTP/NEG/002")
def _not_acceptable(c: Check) -> None:
    dev = c.device()
    answer = c.send(c.a, "GET", dev_path(dev), headers={"Accept": "image/png"})
    c.expect(answer.status_code == 406, f"Accept: image/png answered {answer.status_code}, not 406")


@check("TP/HTTP/NEG/003")
def _q_zero(c: Check) -> None:
    dev = c.device()
    answer = c.send(
        dev.actor,
        "POST",
        f"{dev_path(dev)}/sessions",
        body={"CMD": COMMANDS_ONE_ROUND, "notify": False},
        headers={"Accept": f"{COMMANDS};q=0, {JSON}"},
    )
    package = c.package(answer)
    if package:  # do not leave the session hanging
        c.finish(dev, package)
    c.expect(not package, "commands came back although their type was refused (q=0)")


@check("TP/HTTP/LOC/001")
def _location(c: Check) -> None:
    dev_id = f"urn:uuid:{uuid.uuid4()}"
    answer = c.send(c.a, "POST", "/devices/new", body={"devId": dev_id})
    c.need(answer.is_success, f"registering answered {answer.status_code}")
    c.target.registered.append((c.target.accounts[0][0], dev_id))
    c.expect(
        answer.status_code != 201 or bool(answer.headers.get("location")), "the 201 has no Location"
    )
    secret = (json_or_none(answer.text) or {}).get("secret", "")
    dev = Dev(dev_id, secret, c.a.label, True)
    c.queue(dev)
    queued = c.exchanges[-1]
    c.expect(queued.status != 202 or bool(queued.header("location")), "the 202 has no Location")


@check("TP/HTTP/ETAG/002")
def _etag(c: Check) -> None:
    dev = c.device()
    answer = c.send(c.a, "GET", dev_path(dev))
    c.need(answer.status_code == 200, f"the device's information answered {answer.status_code}")
    etag = answer.headers.get("etag", "")
    c.expect(etag.startswith('"'), f"no strong ETag ({etag or 'none'})")


@check("TP/HTTP/CACHE/001")
def _no_store(c: Check) -> None:
    c.device()
    answer = c.exchanges[-1]
    c.need(answer.status is not None and 200 <= answer.status < 300, "no registration answer")
    directives = [d.strip().lower() for d in answer.header("cache-control").split(",")]
    c.expect(
        "no-store" in directives,
        "the answer holding the secret may be stored (no Cache-Control: no-store)",
    )


# --- running ----------------------------------------------------------------------------


def run_purpose(target: Target, purpose: TestPurpose) -> Outcome:
    c = Check(target, purpose)
    started = time.monotonic()
    try:
        CHECKS[purpose.id](c)
        verdict, reason, decisive = (
            Verdict.PASS,
            "; ".join(c.notes),
            (len(c.exchanges) - 1 if c.exchanges else None),
        )
    except Decided as decided:
        verdict, reason, decisive = decided.verdict, decided.reason, decided.decisive
    return Outcome(purpose, verdict, reason, c.exchanges, decisive, time.monotonic() - started)


def run(
    url: str,
    *,
    cafile: str | None = None,
    accounts: list[tuple[str, str]] | None = None,
    devices: list[tuple[str, str]] | None = None,
    only: str | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> Result:
    """Check the server at ``url`` against every (or ``only`` the matching) test purpose."""
    target = Target(url, cafile, list(accounts or []), list(devices or []))
    result = Result("server", url)
    started = time.monotonic()
    try:
        for purpose in select("server", only):
            outcome = run_purpose(target, purpose)
            result.outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    finally:
        target.close()
        result.seconds = time.monotonic() - started
    return result
