"""SessionTable: every session of the lab's accounts, kept current by lab events.

It starts from the operators' listings (``GET /sessions/pending`` and
``/sessions/completed``, the CR's own resources, and ``/sessions/active`` under lab
choice active-listing=own-resource) and then follows the event
bus instead of polling them. Events arrive on whichever thread published them
(often the server's, in the middle of a request), so the callback only updates
a dict and re-renders a small HTML table; no HTTP, no pandas there.
"""

from __future__ import annotations

import html
import threading
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..events import Event
from ..runtime.lab import Lab

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("session id", "device", "job", "origin", "state", "result", "rounds")

#: What each session event does to a row's state and result.
_ENDINGS = {"session.completed": None, "session.aborted": "aborted", "session.expired": "expired"}


class SessionTable(widgets.VBox):
    """A live table of pending, active and completed sessions; ``frame()`` for pandas."""

    def __init__(self, lab: Lab, **kwargs: Any) -> None:
        self.lab = lab
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, Any]] = {}  # by session key (its first id)
        self.html = widgets.HTML()
        super().__init__(children=[self.html], **kwargs)
        # Subscribe first, then read the listings: an event in between is newer
        # than the listing, so the listing only fills in what the event lacked.
        # (No lock across the HTTP calls: the server thread publishes events.)
        self._unsubscribe = lab.events.subscribe(self._on_event)
        # Sessions in progress too, where the lab lists them (lab choice active-listing):
        # a table opened mid-session shows it from the start, not after its next event.
        listed = lab.services.choices.is_("active-listing", "own-resource")
        briefs = [
            brief
            for op in list(lab.operators.values())
            for brief in op.pending() + (op.active() if listed else []) + op.completed()
        ]
        with self._lock:
            for brief in briefs:
                self._from_brief(brief)
            self._render()

    def frame(self) -> pd.DataFrame:
        """The table now, one row per session in the order they were first seen."""
        import pandas as pd

        with self._lock:
            rows = [dict(row) for row in self._rows.values()]
        return pd.DataFrame(rows, columns=list(COLUMNS)).astype({"rounds": "int64"})

    def _from_brief(self, brief: dict[str, Any]) -> None:
        ids = brief.get("IDs") or [brief["SessionID"]]
        row = self._rows.setdefault(
            ids[0],
            {
                "session id": brief["SessionID"],
                "device": brief["DevID"],
                "job": "",
                "origin": "",
                "state": brief["State"],
                "result": brief.get("Result") or "",
                "rounds": int(brief.get("Rounds", 0)),
            },
        )
        row["job"] = row["job"] or brief["Job"]
        row["origin"] = row["origin"] or brief["Origin"]

    def _on_event(self, event: Event) -> None:
        if not event.kind.startswith("session.") or event.account not in self.lab.operators:
            return
        data = event.data
        key = str(data.get("key") or data.get("session", ""))
        with self._lock:
            row = self._rows.setdefault(
                key,
                {
                    "session id": key,
                    "device": event.dev_id,
                    "job": str(data.get("job", "")),
                    "origin": str(data.get("origin", "")),
                    "state": "pending",
                    "result": "",
                    "rounds": 0,
                },
            )
            row["session id"] = str(data.get("session") or row["session id"])
            if event.kind == "session.started":
                row["state"], row["rounds"] = "active", row["rounds"] + 1
            elif event.kind == "session.continued":
                row["rounds"] += 1
            elif event.kind in _ENDINGS:
                row["state"] = "completed"
                row["result"] = _ENDINGS[event.kind] or str(data.get("result", ""))
            self._render()

    def _render(self) -> None:
        """Plain HTML (escaped), rebuilt whole: cheap for the tens of rows a lab has."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in COLUMNS) + "</tr>"
            for row in self._rows.values()
        )
        if not body:
            body = f'<tr><td colspan="{len(COLUMNS)}"><i>no sessions yet</i></td></tr>'
        self.html.value = (
            f'<table class="dmlab-sessions" style="border-collapse:collapse">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )

    def counts(self) -> dict[str, int]:
        with self._lock:
            states = [row["state"] for row in self._rows.values()]
        return {state: states.count(state) for state in ("pending", "active", "completed")}

    def close(self) -> None:
        self._unsubscribe()
        super().close()

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.counts().items())
        return f"SessionTable({counts})"
