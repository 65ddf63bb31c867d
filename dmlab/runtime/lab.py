"""The lab: a DM server under real uvicorn with TLS, and virtual devices beside it.

``Lab()`` starts everything in background threads (the server's loop and one
loop for all devices), so a Jupyter kernel's own running loop is no obstacle::

    with Lab() as lab:
        phone = lab.add_device("IMEI:490154203237518")
        lab.operator.request_session(phone.dev_id, job="inventory")
        lab.settle()
        lab.trace.frame()

Devices and the operator talk to the server only over HTTPS, verifying the lab CA.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import httpx

from ..caps import Caps
from ..choices import Choices
from ..core.limits import SessionLimits
from ..device import Behaviour, SessionRun, VirtualDevice
from ..events import EventBus
from ..protocol import AlertType, media
from ..server import Services, build_services, close_streams, create_app, follow_others
from ..store import Store
from ..trace import Trace
from .threads import LoopThread, ServerThread
from .tls import LabCA

T = TypeVar("T")

DEFAULT_ACCOUNT = ("demo", "demo-password")


class OperatorError(RuntimeError):
    """The server refused an operator's request; carries the problem body."""

    def __init__(self, response: httpx.Response) -> None:
        try:
            body = response.json()  # RFC 9457 problem details
            kind = str(body.get("type", "")).rpartition("#problem-")[2]
            detail = f"{kind}: {body.get('detail')}"
        except ValueError:
            detail = response.text[:200]
        super().__init__(f"HTTP {response.status_code} {detail}")
        self.status = response.status_code
        self.response = response


class Operator:
    """An account's HTTPS client: what a person or script does through the API."""

    def __init__(self, base_url: str, name: str, password: str, verify: Any) -> None:
        self.name = name
        self.http = httpx.Client(
            base_url=base_url,
            auth=(name, password),
            verify=verify,
            headers={"Accept": media.JSON},
            timeout=30.0,
        )

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise OperatorError(response)
        return response.json() if response.content else None

    def register(
        self, dev_id: str, *, name: str = "", man: str = "", mod: str = ""
    ) -> dict[str, Any]:
        """``POST /devices/new``; the answer holds the device's secret."""
        return self._json(
            self.http.post(
                "/devices/new", json={"devId": dev_id, "name": name, "man": man, "mod": mod}
            )
        )

    def _every_page(self, url: str, key: str) -> list[dict[str, Any]]:
        """A listing's items over all its pages, following each page's ``Next``."""
        items: list[dict[str, Any]] = []
        following: str | None = url
        while following is not None:
            body = self._json(self.http.get(following))
            items += body[key]
            following = body.get("Next")
        return items

    def devices(self) -> list[dict[str, Any]]:
        return self._every_page("/devices", "Devices")

    def device(self, dev_id: str) -> dict[str, Any]:
        return self._json(self.http.get(f"/devices/{dev_id}"))

    def update(self, dev_id: str, **fields: str) -> dict[str, Any]:
        return self._json(self.http.put(f"/devices/{dev_id}", json=fields))

    def unregister(self, dev_id: str) -> None:
        self._json(self.http.delete(f"/devices/{dev_id}"))

    def request_session(
        self,
        dev_id: str,
        *,
        job: str | None = None,
        commands: list[list[str]] | None = None,
        notify: bool = True,
        ttl: float | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Queue a session through the browser entry point (JSON: flow 1)."""
        body: dict[str, Any] = (
            {"CMD": commands} if commands is not None else {"job": job, "params": params}
        )
        body["notify"] = notify
        if ttl is not None:
            body["ttl"] = ttl
        return self._json(self.http.post(f"/devices/{dev_id}/sessions", json=body))

    def pending(self) -> list[dict[str, Any]]:
        return self._every_page("/sessions/pending", "Sessions")

    def completed(self) -> list[dict[str, Any]]:
        return self._every_page("/sessions/completed", "Sessions")

    def active(self) -> list[dict[str, Any]]:
        """Sessions started and not ended (lab choice active-listing)."""
        return self._every_page("/sessions/active", "Sessions")

    def abort(self, session_id: str) -> dict[str, Any]:
        return self._json(self.http.delete(f"/session/id/{session_id}"))

    def close(self) -> None:
        self.http.close()


class Device:
    """A virtual device as the notebook sees it: plain calls, run on the lab's device loop."""

    def __init__(self, lab: Lab, device: VirtualDevice, account: str) -> None:
        self._lab = lab
        self.virtual = device
        self.dev_id = device.dev_id
        self.account = account

    def alert(
        self, alert_type: str = AlertType.CLIENT_INITIATED, *, trigger: str = "ui", **fields: Any
    ) -> SessionRun | None:
        """Flow 2: fire a device event; runs the session the server answers with."""
        return self._lab.run(self.virtual.fire_alert(alert_type, trigger=trigger, **fields))

    def start_next(self) -> SessionRun | None:
        return self._lab.run(self.virtual.start_next(trigger="poll"))

    def resume(self) -> SessionRun | None:
        """As a restarted device: ``POST /sessions/next``, running whatever comes back
        (the session it was in, under lab choice session-resume) to the end."""
        return self._lab.run(self.virtual.resume())

    def start(self, session_id: str) -> SessionRun | None:
        """``POST /sessions/id/{sessionId}``: start the pending session of that id."""
        return self._lab.run(self.virtual.start(session_id))

    def browser_component(self, **request: Any) -> SessionRun | None:
        """Flow 3: the device's browser component asks for commands directly."""
        return self._lab.run(self.virtual.browser_component(**request))

    def receive(self, package: bytes) -> SessionRun | None:
        """Hand the device raw package-0 bytes (to show forged or replayed ones)."""
        return self._lab.run(self.virtual.on_notification(package))

    def get(self, uri: str) -> Any:
        """Read the device's own tree (no ACLs: this is the device looking at itself)."""
        return self.virtual.tree.get(uri, force=True)

    @property
    def tree(self) -> Any:
        return self.virtual.tree

    @property
    def runs(self) -> list[SessionRun]:
        return self.virtual.runs

    @property
    def dropped(self) -> list[tuple[str, str]]:
        return self.virtual.dropped

    @property
    def firmware(self) -> Any:
        return self.virtual.firmware

    def __repr__(self) -> str:
        return f"<Device {self.dev_id} fw={self.firmware} sessions={len(self.runs)}>"


class Lab:
    """Server, devices and operators of one lab, started together and stopped together."""

    def __init__(
        self,
        *,
        account: tuple[str, str] = DEFAULT_ACCOUNT,
        store: Store | None = None,
        server_id: str = "dmlab",
        hash_cost: dict[str, int] | None = None,
        session_ids: Callable[[], str] | None = None,
        choices: Mapping[str, str] | None = None,
        clock: Callable[[], float] | None = None,
        caps: Caps | None = None,
        active_ttl: float | None = None,
        call_in: float = 5.0,
    ) -> None:
        """``choices``: lab choice id → option, e.g. ``{"session-ids": "stable"}``
        (:mod:`dmlab.choices`; an unknown id or option raises ``UnknownChoice``).
        ``clock``: the server's time (``time.time`` by default; :mod:`dmlab.compare` gives
        one that ticks in steps, so timestamps, and so bytes on the wire, repeat).
        ``caps``: how much a device or an account may hold (:mod:`dmlab.caps`), e.g.
        ``Caps(pending_per_device=3)``; the defaults are ``dmlab serve``'s.
        ``active_ttl``: seconds an active session may go without its device before it
        completes as expired (``SessionLimits``' default when not given).
        ``call_in``: under lab choice notification-transport=none, seconds between a lab
        device's ``POST /sessions/next`` calls (no DM Notification reaches it, in process
        or not, so it calls in on this timer, as ``dmlab device --call-in`` does)."""
        extra: dict[str, Any] = {"ids": session_ids} if session_ids else {}
        extra["choices"] = Choices(choices)
        extra["caps"] = caps
        if clock is not None:
            extra["clock"] = clock
        if active_ttl is not None:
            extra["limits"] = SessionLimits(active_ttl=active_ttl)
        self.ca = LabCA.create()
        self.services: Services = build_services(
            store=store, server_id=server_id, first_notification_id=0, hash_cost=hash_cost, **extra
        )
        self.app = create_app(self.services)
        self.server = ServerThread(self.app, self.ca)
        self.devices_loop = LoopThread("dmlab-devices")
        self.devices: dict[str, Device] = {}
        self.operators: dict[str, Operator] = {}
        self._account = account
        self._inflight: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()
        self._started = False
        self._unfollow: Callable[[], None] = lambda: None
        self._call_in = call_in
        #: The devices' call-in timers (notification-transport=none), cancelled at stop.
        self._timers: list[concurrent.futures.Future[Any]] = []

    # Lifecycle ---------------------------------------------------------------
    def start(self) -> Lab:
        if self._started:
            return self
        self.server.start()
        self.devices_loop.start()
        # A store other processes share (PostgreSQL): their notifications and events too.
        self._unfollow = follow_others(self.services)
        self._started = True
        self.add_account(*self._account)
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        with contextlib.suppress(TimeoutError):
            self.settle(timeout=5)
        for timer in self._timers:
            timer.cancel()
        for device in self.devices.values():
            self.devices_loop.run(device.virtual.aclose(), timeout=5)
        for operator in self.operators.values():
            operator.close()
        self.devices_loop.stop()
        close_streams(self.app)  # open /events streams would hold up the shutdown
        self.server.stop()
        self._unfollow()

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    def __repr__(self) -> str:
        # No URL: its port changes every run, and notebooks store this text.
        state = "running" if self._started else "stopped"
        return f"Lab(devices={len(self.devices)}, accounts={len(self.operators)}, {state})"

    @property
    def trace(self) -> Trace:
        return self.services.trace

    @property
    def events(self) -> EventBus:
        return self.services.events

    @property
    def operator(self) -> Operator:
        """The operator of the lab's default account."""
        return self.operators[self._account[0]]

    # Accounts and devices -------------------------------------------------------
    def add_account(self, name: str, password: str) -> Operator:
        self.services.add_account(name, password)
        operator = Operator(self.url, name, password, self.ca.client_context())
        self.operators[name] = operator
        return operator

    def add_device(
        self,
        dev_id: str,
        *,
        account: str | None = None,
        name: str = "",
        man: str = "dmlab",
        mod: str = "Virtual Device",
        fw_version: str = "1.0.0",
        behaviour: Behaviour = Behaviour(),
        services: bool = True,
    ) -> Device:
        """Register a device through ``POST /devices/new`` and bring it to life."""
        owner = account or self._account[0]
        registered = self.operators[owner].register(dev_id, name=name, man=man, mod=mod)
        return self.attach_device(
            dev_id,
            registered["secret"],
            account=owner,
            man=man,
            mod=mod,
            fw_version=fw_version,
            behaviour=behaviour,
            services=services,
        )

    def attach_device(
        self,
        dev_id: str,
        secret: str,
        *,
        account: str | None = None,
        man: str = "dmlab",
        mod: str = "Virtual Device",
        fw_version: str = "1.0.0",
        behaviour: Behaviour = Behaviour(),
        services: bool = True,
    ) -> Device:
        """Bring to life a device that is already registered (its secret known)."""
        owner = account or self._account[0]

        def on_event(kind: str, data: dict[str, Any]) -> None:
            self.events.publish(kind, account=owner, dev_id=dev_id, **data)

        async def make() -> VirtualDevice:
            return VirtualDevice(
                dev_id,
                secret,
                self.url,
                verify=self.ca.client_context(),
                server_id=self.services.server_id,
                man=man,
                mod=mod,
                fw_version=fw_version,
                behaviour=behaviour,
                on_event=on_event,
                services=services,
                choices=self.services.choices,
            )

        virtual = self.devices_loop.run(make())
        device = Device(self, virtual, owner)
        self.devices[dev_id] = device
        self.release_notifications(dev_id)
        if not self.services.notifier.sends:  # notification-transport=none: its timer
            self._timers.append(self.devices_loop.submit(virtual.listen(period=self._call_in)))
        return device

    def hold_notifications(self, dev_id: str) -> list[bytes]:
        """Put yourself on the device's notification channel: its DM Notifications land
        in the returned list instead of reaching it (to look at them, forge, replay)."""
        held: list[bytes] = []
        self.services.notifier.listen(dev_id, held.append)
        return held

    def release_notifications(self, dev_id: str) -> None:
        """Notifications reach the device again (undoes :meth:`hold_notifications`)."""
        virtual = self.devices[dev_id].virtual
        self.services.notifier.listen(dev_id, lambda package: self._dispatch(virtual, package))

    def _dispatch(self, device: VirtualDevice, package: bytes) -> None:
        """A notification arrived (on the server's thread): the device acts on its own loop."""
        future = self.devices_loop.submit(device.on_notification(package))
        with self._lock:
            self._inflight.add(future)
        future.add_done_callback(self._finished)

    def _finished(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._inflight.discard(future)

    # Running device work --------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return self.devices_loop.run(coro, timeout=timeout)

    def settle(self, timeout: float = 30) -> None:
        """Wait until devices have finished what notifications and EXECs started."""
        deadline = time.monotonic() + timeout
        # Done when a round finds no future it has not waited on yet. Not "until _inflight is
        # empty": the callback that empties it runs only after waiters wake, in another thread.
        seen: set[concurrent.futures.Future[Any]] = set()
        settled = False
        while True:
            with self._lock:
                inflight = [f for f in self._inflight if f not in seen]
            if settled and not inflight:
                return
            for future in inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("devices are still busy")
                concurrent.futures.wait([future], timeout=remaining)
                if not future.done():
                    raise TimeoutError("devices are still busy")
                if future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
                seen.add(future)
            for device in list(self.devices.values()):
                self.run(device.virtual.settle(), timeout=max(deadline - time.monotonic(), 0.1))
            settled = True
