"""The virtual device on the wire: a DM 2.0 client speaking HTTPS to the server.

It verifies DM Notifications, opens sessions (``/sessions/next``, ``/alert`` or
its browser component), runs each package 2 through the :class:`Executor` and
reports one status per command with ``PUT /sessions/id/{id}``, following the
newly assigned session id until the server ends the session (or, under lab choice
end-report ``none``, until a package ends with END). It never reaches
into the server: every exchange is a real HTTP request.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import SSEError, aconnect_sse

from ..choices import Choices, UnknownChoice
from ..protocol import Alert, AlertType, Command, Report, Status, media, parse_commands
from ..protocol.notification import NotificationGuard, NotificationRejected, notification_key
from . import mo, serialize
from .executor import Behaviour, Executor
from .objects import noti_credentials, standard_tree

#: The lab choices a device must follow too (the others concern the server alone).
DEVICE_SIDE = ("browser-entry", "notification-transport", "end-report")
#: A session that keeps handing out commands past this many rounds is cut off.
MAX_ROUNDS = 50
#: What the device takes as a package 2: the CR's type and the specification's.
_ACCEPT = f"{media.COMMANDS}, {media.DM20_REQUEST}"
#: Methods a client may send again when the connection closed before an answer came
#: (RFC 9110 § 9.2.2, RFC 9112 § 9.3.1.1). POST is not among them: the server may have
#: applied it (started the session) before the connection went.
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: How httpx reports a connection closed before a whole answer: a kept-alive connection
#: the server closed (its idle timer) just as this request went out on it.
_CLOSED_EARLY = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
#: Sessions a device remembers (:attr:`VirtualDevice.runs`), the oldest going first: a
#: device left running (``dmlab device`` with a timer) would otherwise keep every
#: session it ever ran; the lab's tables and notebooks read the latest few.
RUNS_KEPT = 1000
#: Distinct packages 2 whose parsed commands are kept to share: a fleet's devices get
#: the same commands from one job, and a ``Command`` is immutable, so 100,000 devices
#: hold one parse, not one each (about 0.6 KiB a device). Only small packages are kept.
SHARED_PARSES = 64
_SHARED_PARSE_CHARS = 4096
#: Every device that is given no readings follows the defaults: one (immutable) object.
_DEFAULT_CHOICES = Choices()


class SessionFailed(RuntimeError):
    """The server refused a step of the session (the answer is attached)."""

    def __init__(self, message: str, status: int, body: str) -> None:
        super().__init__(f"{message}: HTTP {status} {body}")
        self.status = status
        self.body = body


@dataclass(slots=True)
class SessionRun:
    """What the device saw of one session, for tables and tests."""

    trigger: str
    ids: list[str] = field(default_factory=list)
    rounds: list[tuple[list[Command], list[Status]]] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    server_result: str = ""

    @property
    def ok(self) -> bool:
        return all(s.ok for _, statuses in self.rounds for s in statuses)

    @property
    def result(self) -> str:
        return self.server_result or ("OK" if self.ok else "failure")

    def row(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "ids": len(self.ids),
            "rounds": len(self.rounds),
            "commands": sum(len(c) for c, _ in self.rounds),
            "statuses": " ".join(str(s.sc) for _, st in self.rounds for s in st),
            "result": self.result,
            "seconds": round(self.ended - self.started, 3),
        }

    def steps(self) -> list[dict[str, Any]]:
        """One row per command: round, session id, command, parameters, status, Data.

        A GET of a subtree returns a dict: it is shown as JSON text, whole (a table
        cell would cut a dict's repr short), with spaces where a narrow cell may wrap.
        """
        rows = []
        for number, ((commands, statuses), session_id) in enumerate(
            zip(self.rounds, self.ids, strict=False), 1
        ):
            for i, command in enumerate(commands):
                status = statuses[i] if i < len(statuses) else None
                data = None if status is None else status.data
                rows.append(
                    {
                        "round": number,
                        "session id": session_id,
                        "command": command.name,
                        "parameters": " ".join(command.args),
                        "sc": status.sc if status else "—",
                        "Data": ""
                        if data is None
                        else data
                        if isinstance(data, str)
                        else json.dumps(data),
                    }
                )
        return rows


def _parse_shared(cmd: Any) -> tuple[Command, ...]:
    """``parse_commands``, shared between devices for a small package of plain strings
    (what every job sends); anything else is parsed as it comes."""
    if type(cmd) is list and all(type(c) is list and all(type(a) is str for a in c) for c in cmd):
        key = tuple(tuple(c) for c in cmd)
        if sum(len(a) for c in key for a in c) <= _SHARED_PARSE_CHARS:
            return _parse_key(key)
    return parse_commands(cmd)


@functools.lru_cache(maxsize=SHARED_PARSES)
def _parse_key(key: tuple[tuple[str, ...], ...]) -> tuple[Command, ...]:
    return parse_commands([list(c) for c in key])


@functools.lru_cache(maxsize=16)
def _server_origin(server_url: str) -> tuple[str, str, int | None]:
    """The DM server's origin, one tuple for a fleet of the same server."""
    return _origin(httpx.URL(server_url))


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """RFC 6454's origin: scheme, host and port (the scheme's default when absent)."""
    default = {"https": 443, "http": 80}.get(url.scheme)
    return url.scheme, url.host, url.port or default


class VirtualDevice:
    """A DM client with a real management tree.

    All methods are coroutines of one event loop; the lab runs them in its
    device thread, the ``dmlab device`` command with ``asyncio.run``.
    """

    def __init__(
        self,
        dev_id: str,
        secret: str,
        server_url: str,
        *,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        server_id: str = "dmlab",
        man: str = "dmlab",
        mod: str = "Virtual Device",
        fw_version: str = "1.0.0",
        noti_secret: bytes | None = None,
        noti_data: bytes = b"",
        behaviour: Behaviour = Behaviour(),
        clock: Callable[[], float] = time.time,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        on_exchange: Callable[[str], None] | None = None,
        services: bool = False,
        choices: Mapping[str, str] | None = None,
    ) -> None:
        self.dev_id = dev_id
        #: The server's readings the device must follow (lab choices browser-entry,
        #: notification-transport and end-report; the rest concern the server alone).
        self.choices = _DEFAULT_CHOICES if choices is None else Choices(choices)
        self.server_id = server_id
        self.server_url = server_url.rstrip("/")
        # DMAcc Auth/Noti: the specification's secret and auth data when given, else the
        # lab's key derived from the password (lab choice notification-secret).
        if noti_secret is None:
            noti_secret, noti_data = notification_key(secret), b""
        self.tree = standard_tree(
            dev_id,
            man,
            mod,
            server_id,
            self.server_url,
            fw_version=fw_version,
            auth_name=dev_id,
            secret=secret,
            noti_secret=noti_secret,
            noti_data=noti_data,
        )
        self.guard = NotificationGuard(server_id, noti_secret, auth_data=noti_data, clock=clock)
        #: SCOMO, LAWMO, DiagMon and DCMO, by MOID, when asked for (``services=True``, as
        #: the lab's devices are): they take about 15 KiB per idle device, which a fleet
        #: of 100,000 devices running only FUMO need not pay.
        self.services = (
            mo.install(
                self.tree,
                capabilities=behaviour.capabilities,
                diagnostics=behaviour.diagnostics,
                free_space=behaviour.free_space,
            )
            if services
            else {}
        )
        self.executor = Executor(self.tree, self, behaviour, self.services)
        self.runs: list[SessionRun] = []
        self.dropped: list[tuple[str, str]] = []
        self.shown: list[str] = []
        self._clock = clock
        self._on_event = on_event
        # A fleet of thousands shares one client (``client=``): a client per device would
        # dominate an idle device's memory, so closing the device leaves a shared client
        # open. Either way credentials and OMADM-DevID travel per request, and only to
        # the DM server's own origin: a command may name any URL (HGET, HPUT, an EXEC's
        # ServerURI), and a download server elsewhere must not learn the device's secret.
        self._shared = client is not None
        self._origin = _server_origin(self.server_url)
        self._auth = httpx.BasicAuth(dev_id, secret)
        self._headers = {media.DEVID_HEADER: dev_id}
        if client is None:
            client = httpx.AsyncClient(
                base_url=self.server_url,
                verify=verify,
                transport=transport,
                timeout=30.0,
                event_hooks={"response": [self._log_exchange]} if on_exchange else None,
            )
        self._client = client
        self._on_exchange = on_exchange
        # A device runs one session at a time; triggers queue behind it.
        self._session_lock = asyncio.Lock()

    @property
    def report_end(self) -> bool:
        """Lab choice end-report: whether the round that ends with END is reported
        (``report``) or the device stops after running it (``none``)."""
        return self.choices.is_("end-report", "report")

    # Triggers ----------------------------------------------------------------
    async def on_notification(self, package: bytes) -> SessionRun | None:
        """Package 0: verify it with the DMAcc's Auth/Noti, then open the session it asks
        for (flow 1). Without Auth/Noti for the server, the notification is ignored."""
        try:
            credentials = noti_credentials(self.tree, self.server_id)
            if credentials is None:
                raise NotificationRejected("digest", "no DMAcc Auth/Noti for this server")
            self.guard.rekey(*credentials)
            notification = self.guard.check(package)
        except NotificationRejected as rejected:
            self.dropped.append((rejected.reason, rejected.detail))
            self._emit("notification.dropped", reason=rejected.reason, detail=rejected.detail)
            return None
        # The alert carries the NOTIFICATION-ID (specification §2.2) in its Data object
        # (lab choice notification-id-in-alert); MOS only when REQ-MOS asked for it.
        nid = notification.notification_id
        alert = Alert(
            AlertType.SERVER_INITIATED, data=None if nid is None else {"NOTIFICATION-ID": nid}
        )
        return await self.start_next(alert, trigger="notification", mos=notification.req_mos)

    async def start_next(
        self, alert: Alert | None = None, *, trigger: str = "poll", mos: bool = False
    ) -> SessionRun | None:
        """``POST /sessions/next``: start the oldest pending session, if any."""
        body = self._package1((alert,) if alert else (), mos=mos) if alert or mos else None
        async with self._session_lock:
            response = await self._post("/sessions/next", body)
            return await self._run(response, trigger)

    async def resume(self) -> SessionRun | None:
        """What the device does when it starts up (or lost an answer): if the server lists
        a session of it in progress (``GET /sessions/active``, lab choice active-listing),
        ``POST /sessions/next``, which re-sends that session's current round (lab choice
        session-resume); the device runs it to the end. ``None`` if nothing was in progress."""
        listed = await self._request("GET", "/sessions/active", headers={"Accept": media.JSON})
        if listed.status_code != 200 or not listed.json().get("Sessions"):
            return None
        return await self.start_next(trigger="resume")

    async def start(self, session_id: str) -> SessionRun | None:
        """``POST /sessions/id/{id}``: start one named pending session."""
        async with self._session_lock:
            response = await self._post(f"/sessions/id/{quote(session_id)}", None)
            return await self._run(response, f"start {session_id}")

    async def fire_alert(
        self, alert_type: str = AlertType.CLIENT_INITIATED, *, trigger: str = "ui", **fields: Any
    ) -> SessionRun | None:
        """Flow 2: a device event (a timer, a UI action) → ``POST /alert``."""
        alert = Alert(alert_type, **fields)
        async with self._session_lock:
            response = await self._post("/alert", self._package1((alert,)))
            return await self._run(response, trigger)

    async def browser_component(
        self,
        *,
        job: str | None = None,
        commands: list[list[str]] | None = None,
        params: dict[str, Any] | None = None,
    ) -> SessionRun | None:
        """Flow 3: the device's browser component asks for a session and gets the
        commands back directly (``Accept: application/vnd.omadm-cmd+json``)."""
        body: dict[str, Any] = (
            {"CMD": commands} if commands is not None else {"job": job, "params": params or {}}
        )
        # Lab choice browser-entry: the resource under the device, or /sessions/next.
        entry = (
            "/sessions/next"
            if self.choices.is_("browser-entry", "sessions-next")
            else f"/devices/{quote(self.dev_id)}/sessions"
        )
        async with self._session_lock:
            response = await self._request(
                "POST", entry, json=body, headers={"Accept": media.COMMANDS}
            )
            return await self._run(response, "browser component")

    async def poll_notifications(self, wait: float = 25.0) -> SessionRun | None:
        """One long-poll of ``GET /notifications`` (the cross-process channel)."""
        response = await self._request(
            "GET", "/notifications", params={"wait": wait}, timeout=wait + 10
        )
        if response.status_code == 204:
            return None
        if response.status_code != 200:
            raise SessionFailed("notification poll refused", response.status_code, response.text)
        return await self.on_notification(response.content)

    async def stream_notifications(self) -> int:
        """Read ``GET /notifications`` as Server-Sent Events until the server ends the
        stream (lab choice notification-transport=sse); each ``notification`` event is
        one package 0, base64, acted on as it comes. Returns how many came."""
        came = 0
        async with aconnect_sse(
            self._client,
            "GET",
            self.server_url + "/notifications",
            headers=dict(self._headers),
            auth=self._auth,
            # Heartbeats come every 15 s: a minute of silence is a dead connection.
            timeout=httpx.Timeout(30.0, read=60.0),
        ) as source:
            if source.response.status_code != 200:
                await source.response.aread()
                raise SessionFailed(
                    "notification stream refused",
                    source.response.status_code,
                    source.response.text,
                )
            async for event in source.aiter_sse():
                if event.event == "notification":
                    came += 1
                    await self.on_notification(base64.b64decode(event.data))
        return came

    async def listen(self, *, period: float = 60.0) -> None:
        """Wait for work as lab choice notification-transport says, until cancelled:
        long-poll ``GET /notifications``, keep its event stream open, or (``none``)
        call ``POST /sessions/next`` every ``period`` seconds. A failed channel is
        tried again after a backoff (1 s, doubling to 30 s), so a server restart is
        ridden out."""
        transport = self.choices["notification-transport"]
        delay = 1.0
        while True:
            try:
                if transport == "long-poll":
                    await self.poll_notifications(wait=25)
                elif transport == "sse":
                    await self.stream_notifications()
                    await asyncio.sleep(1.0)  # as the stream's retry: asks, then reconnect
                else:
                    await asyncio.sleep(period)
                    await self.start_next(trigger="timer")
                delay = 1.0
            except (httpx.TransportError, SessionFailed, SSEError) as exc:
                self._emit("notification.channel-failed", transport=transport, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def adopt_server_choices(self, keep: Mapping[str, str] | None = None) -> dict[str, str]:
        """Follow the readings the server says it has in force (``GET /choices``) for
        the choices a device must follow, except those in ``keep`` (given by hand);
        unchanged where the server says nothing. Returns what it adopted."""
        try:
            answer = await self._request("GET", "/choices", headers={"Accept": media.JSON})
            rows = answer.json().get("Choices", []) if answer.status_code == 200 else []
        except (httpx.HTTPError, ValueError, AttributeError):
            rows = []
        stated = {
            row["id"]: row["inForce"]
            for row in (rows if isinstance(rows, list) else [])
            if isinstance(row, dict)
            and row.get("id") in DEVICE_SIDE
            and row.get("id") not in (keep or {})
            and row.get("inForce")
        }
        try:
            self.choices = Choices({**self.choices, **stated})
        except UnknownChoice:  # a reading this device does not know: keep its own
            return {}
        return stated

    async def every(self, seconds: float, rounds: int | None = None) -> None:
        """A timer: fire a client-initiated alert every ``seconds``."""
        done = 0
        while rounds is None or done < rounds:
            await asyncio.sleep(seconds)
            await self.fire_alert(trigger="timer")
            done += 1

    # The session loop --------------------------------------------------------
    async def _run(self, response: httpx.Response, trigger: str) -> SessionRun | None:
        if response.status_code == 204:
            return None
        run = SessionRun(trigger, started=self._clock())
        url: str | None = None
        for _ in range(MAX_ROUNDS):
            if response.status_code not in (200, 201):
                raise SessionFailed(
                    "the server refused the session step", response.status_code, response.text
                )
            package = response.json()
            session_id, commands = package["SessionID"], list(_parse_shared(package["CMD"]))
            run.ids.append(session_id)
            result = await self.executor.run(commands)
            run.rounds.append((commands, result.statuses))
            self.shown.extend(result.shown)
            if not self.report_end and commands and commands[-1].name == "END":
                break  # END needs no report: the server completed the session as it sent it
            # CONT names where the following packages go; otherwise the
            # Location of the newly assigned id.
            url = (
                result.continue_to
                or response.headers.get("location")
                or f"/sessions/id/{quote(session_id)}"
            )
            response = await self._request(
                "PUT",
                url,
                content=json.dumps(Report(tuple(result.statuses)).to_json()),
                headers={"Content-Type": media.DM20_RESPONSE, "Accept": _ACCEPT},
            )
            if response.status_code == 204:
                run.server_result = response.headers.get("omadm-result", "")
                break
        else:
            raise SessionFailed("too many rounds", response.status_code, "")
        run.ended = self._clock()
        self.runs.append(run)
        if len(self.runs) > RUNS_KEPT:
            del self.runs[0]
        return run

    def _package1(self, alerts: tuple[Alert, ...], *, mos: bool = False) -> dict[str, Any]:
        """A package 1 body (specification §6.2): the MO list when asked, and the alerts."""
        body: dict[str, Any] = {"MOS": serialize.mo_list(self.tree)} if mos else {}
        body["Alert"] = [a.to_json() for a in alerts]
        return body

    async def _post(self, path: str, body: dict[str, Any] | None) -> httpx.Response:
        """A package 1, as the specification sends it: initiation+json, and an Accept
        naming both the specification's and the CR's package 2 type."""
        if body is None:
            return await self._request("POST", path, headers={"Accept": _ACCEPT})
        return await self._request(
            "POST",
            path,
            content=json.dumps(body),
            headers={"Content-Type": media.DM20_INITIATION, "Accept": _ACCEPT},
        )

    async def _request(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Every exchange goes through here. A path is the DM server's; the device's
        credentials and OMADM-DevID go to that origin and nowhere else.

        A pooled connection can close under a request: the server's keep-alive timer
        fires as the request goes out, and no answer comes. An idempotent request is
        then sent once more, on a fresh connection (RFC 9112 § 9.3.1.1); a POST is
        not (the error propagates), since the server may have acted on it."""
        target = httpx.URL(self.server_url + url if url.startswith("/") else url)
        auth: httpx.Auth | None = None
        if _origin(target) == self._origin:
            headers = {**self._headers, **(headers or {})}
            auth = self._auth
        try:
            return await self._client.request(method, target, headers=headers, auth=auth, **kwargs)
        except _CLOSED_EARLY:
            if method not in IDEMPOTENT:
                raise
        return await self._client.request(method, target, headers=headers, auth=auth, **kwargs)

    # DevicePort: how the executor reaches out --------------------------------
    async def http_get(self, url: str) -> tuple[int, bytes, str]:
        response = await self._request("GET", url)
        return response.status_code, response.content, response.headers.get("content-type", "")

    async def http_send(
        self, method: str, url: str, body: bytes, content_type: str
    ) -> tuple[int, str]:
        response = await self._request(
            method, url, content=body, headers={"Content-Type": content_type}
        )
        return response.status_code, response.headers.get(media.ACCEPT_HEADER, "")

    async def show(self, url: str) -> None:
        """The browser component opens the page (it must be the lab's own server)."""
        await self._request("GET", url, headers={"Accept": media.HTML})

    async def alert(self, alert: Alert, url: str | None = None) -> None:
        """A generic alert from background work (a FUMO result) in a new exchange: to the
        EXEC's ServerURI when it named one, else to the server's ``/alert``."""
        async with self._session_lock:
            response = await self._post(url or "/alert", self._package1((alert,)))
            await self._run(response, "generic alert")

    # Lifecycle ---------------------------------------------------------------
    async def settle(self) -> None:
        """Wait for background work (FUMO jobs, SUB notifications) to finish."""
        await self.executor.drain()

    async def aclose(self) -> None:
        await self.executor.drain()
        self.executor.close()
        if not self._shared:
            await self._client.aclose()

    async def _log_exchange(self, response: httpx.Response) -> None:
        """One line per exchange, for the ``dmlab device`` command's log."""
        assert self._on_exchange is not None
        request = response.request
        session = response.headers.get("location", "").rsplit("/", 1)[-1]
        self._on_exchange(
            f"{self.dev_id} {request.method} {request.url.path} -> "
            f"{response.status_code}" + (f" session {session}" if session else "")
        )

    def _emit(self, kind: str, **data: Any) -> None:
        if self._on_event is not None:
            self._on_event(kind, data)

    @property
    def firmware(self) -> Any:
        return self.tree.get("urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/FwV", force=True)

    def __repr__(self) -> str:
        return f"<VirtualDevice {self.dev_id} fw={self.firmware}>"
