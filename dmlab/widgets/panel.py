"""ControlPanel: the three things a person does to a lab, as buttons.

Fire a device alert (flow 2), queue a session through the operator's API
(flow 1), abort a session. Each handler waits for the lab to settle and says
what happened in words, so a notebook cell that calls ``.click()`` shows the
outcome the same way a real click does.
"""

from __future__ import annotations

import dataclasses
import html
import json
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..core.jobs import PLANNERS
from ..device import SessionRun
from ..events import Event
from ..protocol import Alert, AlertType
from ..protocol.alerts import generic_alert
from ..runtime.lab import Lab, OperatorError
from ..store import State


def _fields(alert: Alert) -> tuple[str, dict[str, Any]]:
    """An alert as (AlertType, the other fields it sets)."""
    fields = {k: v for k, v in dataclasses.asdict(alert).items() if v is not None}
    return fields.pop("alert_type"), fields


#: Alert choices: label → (AlertType, extra alert fields).
ALERTS: dict[str, tuple[str, dict[str, Any]]] = {
    "ClientInitiatedMgmt": (AlertType.CLIENT_INITIATED, {}),
    # What a FUMO job reports when it has finished: a generic alert with the FUMO
    # result code (200 successful) about the operation node, built as the device does.
    "FUMO generic alert": _fields(
        generic_alert(
            AlertType.FUMO_DOWNLOAD_AND_UPDATE,
            "urn:oma:mo:oma-fumo:1.0/fw1/DownloadAndUpdate",
            result=200,
            ok=True,
        )
    ),
}
#: The jobs an account may queue, as the server declares them (explicit commands last).
JOBS = (*(j for j in PLANNERS if j != "commands"), "commands")
#: Session events that make an id abortable (pending or active), and those that end it.
_LIVE = ("session.queued", "session.started", "session.continued")
_ENDED = ("session.completed", "session.aborted", "session.expired")
#: Ids the abort box offers at most (the newest).
MAX_OFFERED = 20
DEFAULT_COMMANDS = '[["GET", "urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/FwV"], ["END"]]'


class ControlPanel(widgets.VBox):
    """Fire alerts, queue sessions, abort sessions; ``last`` holds the last outcome in words."""

    def __init__(self, lab: Lab, **kwargs: Any) -> None:
        self.lab = lab
        self._lock = threading.Lock()
        self.history: list[str] = []
        style = {"description_width": "7em"}
        self.device = widgets.Dropdown(description="Device", style=style)
        self.alert_type = widgets.Dropdown(options=list(ALERTS), description="Alert", style=style)
        self.fire = widgets.Button(description="Fire alert", icon="bell", button_style="info")
        self.devices = widgets.SelectMultiple(description="Devices", rows=3, style=style)
        self.job = widgets.Dropdown(options=JOBS, value="inventory", description="Job", style=style)
        self.version = widgets.Text(value="2.0.0", description="Firmware", style=style)
        self.params = widgets.Text(
            value="{}",
            description="Params",
            placeholder='{"name": "Camera", "enable": "false"}',
            style=style,
        )
        self.commands = widgets.Textarea(
            value=DEFAULT_COMMANDS,
            description="Commands",
            style=style,
            layout=widgets.Layout(width="40em", height="4em"),
        )
        # Unticked, the session waits as pending (no DM Notification): there is
        # then something to abort, or for a device event to pick up (flow 2).
        self.notify = widgets.Checkbox(value=True, description="notify the device", indent=False)
        self.queue = widgets.Button(
            description="Queue session", icon="play", button_style="primary"
        )
        self.session = widgets.Combobox(
            description="Session id",
            placeholder="pending or active id",
            ensure_option=False,
            style=style,
        )
        self.abort = widgets.Button(description="Abort", icon="stop", button_style="danger")
        self.result = widgets.HTML(value="<i>no action yet</i>")
        self.result.add_class("dmlab-outcome")  # what a page (or a browser test) reads
        self.fire.on_click(self._guarded(self.fire_alert))
        self.queue.on_click(self._guarded(self.queue_session))
        self.abort.on_click(self._guarded(self.abort_session))
        super().__init__(
            children=[
                widgets.HTML("<b>Device event</b> (flow 2: <code>POST /alert</code>)"),
                widgets.HBox([self.device, self.alert_type, self.fire]),
                widgets.HTML(
                    "<b>Operator</b> (flow 1: <code>POST /devices/{devId}/sessions</code>)"
                ),
                widgets.HBox(
                    [
                        self.devices,
                        widgets.VBox([self.job, self.version, self.params, self.notify]),
                    ]
                ),
                self.commands,
                self.queue,
                widgets.HTML("<b>Abort</b> (<code>DELETE /session/id/{sessionId}</code>)"),
                widgets.HBox([self.session, self.abort]),
                self.result,
            ],
            **kwargs,
        )
        self.refresh()
        self._unsubscribe = lab.events.subscribe(self._on_event)

    # What the buttons do -------------------------------------------------------
    def fire_alert(self) -> str:
        """Flow 2: the chosen device sends the chosen alert and runs what comes back."""
        dev_id = self._one_device()
        alert_type, fields = ALERTS[self.alert_type.value]
        run = self.lab.devices[dev_id].alert(alert_type, **fields)
        self.lab.settle()
        name = self.alert_type.value
        if run is None:
            return f"{dev_id} sent alert {name}; the server recorded it and opened no session (204)"
        return f"{dev_id} sent alert {name}; the server answered with {_describe_run(run)}"

    def queue_session(self) -> str:
        """Flow 1: the operator queues a session per device; each device is notified."""
        chosen = list(self.devices.value)
        if not chosen:
            raise ValueError("choose at least one device under Devices")
        job: dict[str, Any]
        if self.job.value == "commands":
            try:
                job = {"commands": json.loads(self.commands.value)}
            except ValueError as exc:
                raise ValueError(f"the commands are not JSON ({exc})") from None
        elif self.job.value == "firmware-update":
            job = {"job": "firmware-update", "version": self.version.value}
        else:
            try:
                params = json.loads(self.params.value or "{}")
            except ValueError as exc:
                raise ValueError(f"the params are not JSON ({exc})") from None
            if not isinstance(params, dict):
                raise ValueError('the params are a JSON object, like {"mode": "partial"}')
            job = {"job": self.job.value, **params}
        job["notify"] = self.notify.value
        queued = []
        for dev_id in chosen:
            operator = self.lab.operators[self.lab.devices[dev_id].account]
            queued.append((dev_id, operator.request_session(dev_id, **job)["SessionID"]))
        self.lab.settle()
        outcomes = [
            f"{dev_id}: session {sid} {self._outcome(dev_id, sid)}" for dev_id, sid in queued
        ]
        return f"queued {len(queued)} {self.job.value} session(s); " + "; ".join(outcomes)

    def abort_session(self) -> str:
        """Abort the named session (its current id) through the owning account."""
        session_id = self.session.value.strip()
        if not session_id:
            raise ValueError("name a session id to abort")
        refusal: OperatorError | None = None
        for operator in self.lab.operators.values():
            try:
                brief = operator.abort(session_id)
            except OperatorError as exc:
                if exc.status != 404:
                    raise
                refusal = exc
                continue
            self.lab.settle()
            return (
                f"aborted session {session_id} of {brief['DevID']}: "
                f"{brief['State']} ({brief.get('Result')}"
                + (f": {brief['Reason']}" if brief.get("Reason") else "")
                + ")"
            )
        assert refusal is not None
        raise refusal

    @property
    def last(self) -> str:
        """The last action's outcome in words."""
        return self.history[-1] if self.history else ""

    # Plumbing -----------------------------------------------------------------
    def _guarded(self, action: Callable[[], str]) -> Callable[[widgets.Button], None]:
        """A click handler that reports refusals in the panel instead of raising."""

        def handler(button: widgets.Button) -> None:
            try:
                text = action()
                ok = True
            except (OperatorError, ValueError, KeyError, TimeoutError) as exc:
                text = f"refused: {exc}"
                ok = False
            self.history.append(text)
            colour = "#1b5e20" if ok else "#b00020"
            self.result.value = f'<span style="color:{colour}">{html.escape(text)}</span>'
            self.refresh()

        return handler

    def _one_device(self) -> str:
        if not self.device.value:
            raise ValueError("choose a device first")
        return str(self.device.value)

    def _outcome(self, dev_id: str, key: str) -> str:
        """How the session queued as ``key`` ended. Read from the server's store, not
        through the API, so the panel adds no exchanges of its own to the trace."""
        session = self.lab.services.store.get_session(key)
        if session is None or session.state is not State.COMPLETED:
            return "still pending (the device has not called yet)"
        ids = session.ids
        result = session.result.value if session.result else ""
        return f"completed {result} after {len(session.rounds)} round(s)" + (
            f", ids {' → '.join(ids)}" if len(ids) > 1 else ""
        )

    def refresh(self) -> None:
        """Bring device and session choices up to date (cheap; any thread)."""
        with self._lock:
            devices = sorted(self.lab.devices)
            if list(self.device.options) != devices:
                current = self.device.value
                self.device.options = devices
                self.device.value = (
                    current if current in devices else (devices[0] if devices else None)
                )
            if list(self.devices.options) != devices:
                kept = tuple(d for d in self.devices.value if d in devices)
                self.devices.options = devices
                self.devices.value = kept

    def _on_event(self, event: Event) -> None:
        """Offer exactly the ids that can be aborted: pending or active sessions' current ids."""
        self.refresh()  # devices come to life after their registration event: check often
        if event.kind not in _LIVE + _ENDED:
            return
        session = str(event.data.get("session", ""))
        gone = {session} if event.kind in _ENDED else {str(event.data.get("previous", ""))}
        with self._lock:
            offered = [s for s in self.session.options if s not in gone]
            if event.kind in _LIVE and session and session not in offered:
                offered.append(session)
            if offered != list(self.session.options):
                self.session.options = tuple(offered[-MAX_OFFERED:])

    def close(self) -> None:
        self._unsubscribe()
        super().close()

    def __repr__(self) -> str:
        return f"ControlPanel(devices={len(self.lab.devices)}, accounts={len(self.lab.operators)})"


def _describe_run(run: SessionRun) -> str:
    ids = " → ".join(run.ids)
    rounds = len(run.rounds)
    return f"session {ids}: {rounds} round(s), result {run.result}"
