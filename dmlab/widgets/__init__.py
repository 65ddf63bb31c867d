"""ipywidgets for the lab: drive it (ControlPanel), watch sessions (SessionTable),
watch the wire (TraceView), or all three at once (dashboard).

Every button works from code too (``panel.fire.click()``), which is how the
notebooks drive them: nbval then runs exactly the path a click takes. Each
widget's ``text/plain`` form is a short, stable summary, because that (not the
widget view, whose model ids are random) is what nbval compares.
"""

from __future__ import annotations

from .dashboard import Dashboard, dashboard
from .panel import ALERTS, JOBS, ControlPanel
from .table import COLUMNS, SessionTable
from .trace import TraceView

__all__ = [
    "ALERTS",
    "COLUMNS",
    "JOBS",
    "ControlPanel",
    "Dashboard",
    "SessionTable",
    "TraceView",
    "dashboard",
]
