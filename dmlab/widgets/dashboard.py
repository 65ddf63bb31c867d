"""The three widgets in one box, for a notebook's "try it yourself" cell."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..runtime.lab import Lab
from .panel import ControlPanel
from .table import SessionTable
from .trace import TraceView


class Dashboard(widgets.VBox):
    """ControlPanel above SessionTable above TraceView, each reachable by name."""

    def __init__(self, lab: Lab, since: int | None = None, **kwargs: Any) -> None:
        self.panel = ControlPanel(lab)
        self.table = SessionTable(lab)
        self.trace = TraceView(lab, since)
        super().__init__(
            children=[
                self.panel,
                widgets.HTML("<b>Sessions</b>"),
                self.table,
                widgets.HTML("<b>Exchanges</b> (sequence diagram)"),
                self.trace,
            ],
            **kwargs,
        )
        self.add_class("dmlab-dashboard")

    def close(self) -> None:
        for part in (self.panel, self.table, self.trace):
            part.close()
        super().close()

    def __repr__(self) -> str:
        sessions = sum(self.table.counts().values())
        return (
            f"Dashboard(devices={len(self.panel.lab.devices)}, sessions={sessions}, "
            f"exchanges={len(self.trace.exchanges())})"
        )


def dashboard(lab: Lab, since: int | None = None) -> Dashboard:
    """Panel, session table and live diagram of ``lab`` in one VBox."""
    return Dashboard(lab, since)
