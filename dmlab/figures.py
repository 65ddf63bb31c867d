"""The CR's Figures 1-4, drawn from real traffic.

The seed CR has the four flows of x.2 only as captions. Each function here runs
one flow on a running :class:`~dmlab.runtime.lab.Lab` for one of its devices, and
returns the figure of exactly that run: the parties the CR names (DM Server,
DM Client, Browser component, Browser), nothing the operator or a notebook did
around it. :func:`save_figures` writes all four as SVG, PNG and Mermaid.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from .diagram import SequenceDiagram
from .protocol import AlertType
from .runtime.lab import Device, Lab

__all__ = ["CAPTIONS", "FLOWS", "figure", "save_figures"]

#: The captions, as the CR writes them (Figure 3's has no colon there).
CAPTIONS = {
    1: "Figure 1: Server Initiated Session",
    2: "Figure 2: Client Initiated Session",
    3: "Figure 3 Web Browser Component Initiated Session",
    4: "Figure 4: Web Browser Initiated Session",
}
#: A browser's Accept header: HTML first, and no application/vnd.omadm-cmd+json.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def _server_initiated(lab: Lab, device: Device) -> None:
    """x.2.1: work is queued; the DM Notification makes the device call in."""
    lab.operators[device.account].request_session(device.dev_id, job="inventory")


def _client_initiated(lab: Lab, device: Device) -> None:
    """x.2.2: work waits (no notification); a device event picks it up."""
    lab.operators[device.account].request_session(device.dev_id, job="inventory", notify=False)
    device.alert(AlertType.CLIENT_INITIATED, trigger="ui")


def _browser_component(lab: Lab, device: Device) -> None:
    """x.2.3: the device's browser component asks for commands and runs them."""
    device.browser_component(job="inventory")


def _browser(lab: Lab, device: Device) -> None:
    """x.2.4: a person's browser asks; the server notifies the device, which calls in."""
    operator = lab.operators[device.account]
    browser = httpx.Client(
        base_url=lab.url,
        auth=operator.http.auth,
        verify=lab.ca.client_context(),
        headers={"Accept": BROWSER_ACCEPT},
    )
    with browser:
        answer = browser.post(f"/devices/{device.dev_id}/sessions", json={"job": "inventory"})
        answer.raise_for_status()


#: Figure number → the flow it shows.
FLOWS: dict[int, Callable[[Lab, Device], None]] = {
    1: _server_initiated,
    2: _client_initiated,
    3: _browser_component,
    4: _browser,
}


def figure(lab: Lab, number: int, device: Device | None = None) -> SequenceDiagram:
    """Run flow ``number`` (1-4) for ``device`` (default: the lab's first) and draw it."""
    if number not in FLOWS:
        raise ValueError(f"the CR has figures 1 to 4, not {number!r}")
    device = device or next(iter(lab.devices.values()))
    lab.settle()
    marker = lab.trace.last_seq
    FLOWS[number](lab, device)
    lab.settle()
    return SequenceDiagram.figure(lab.trace, since=marker, title=CAPTIONS[number])


def save_figures(
    lab: Lab,
    folder: str | Path,
    device: Device | None = None,
    suffixes: tuple[str, ...] = (".svg", ".png", ".mmd"),
) -> list[Path]:
    """Run the four flows and save each figure as ``figure-N`` in every format asked."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for number in FLOWS:
        drawn = figure(lab, number, device)
        saved += [drawn.save(folder / f"figure-{number}{suffix}") for suffix in suffixes]
    return saved
