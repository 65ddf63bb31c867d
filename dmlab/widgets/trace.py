"""TraceView: the sequence diagram of the trace since a marker, redrawn as exchanges arrive.

It draws the SVG form (no JavaScript, so it shows in any front end that shows
widgets); ``diagram()`` gives the same exchanges as a :class:`SequenceDiagram`
for a later cell, where Mermaid, SVG and the text listing are all available.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as widgets

from ..diagram import SequenceDiagram, is_inspection, svg
from ..runtime.lab import Lab
from ..trace import Exchange

#: Exchanges drawn at most: the newest ones; a longer story belongs in a table.
LIMIT = 60


class TraceView(widgets.VBox):
    """A live sequence diagram of ``lab.trace`` after ``since`` (default: from now on)."""

    def __init__(
        self, lab: Lab, since: int | None = None, *, limit: int = LIMIT, **kwargs: Any
    ) -> None:
        self.lab = lab
        self.limit = limit
        self._lock = threading.Lock()
        self.since = lab.trace.last_seq if since is None else since
        self.html = widgets.HTML()
        super().__init__(children=[self.html], **kwargs)
        self._unlisten = lab.trace.listen(self._on_exchange)
        self._render()

    def mark(self) -> int:
        """Start the diagram afresh from here (returns the new marker)."""
        with self._lock:
            self.since = self.lab.trace.last_seq
        self._render()
        return self.since

    def exchanges(self) -> list[Exchange]:
        """The newest exchanges since the marker, without the operator's reads."""
        shown = [e for e in self.lab.trace.since(self.since) if not is_inspection(e)]
        return shown[-self.limit :]

    def diagram(self) -> SequenceDiagram:
        return SequenceDiagram(self.exchanges())

    def _on_exchange(self, exchange: Exchange) -> None:
        if exchange.seq > self.since and not is_inspection(exchange):
            self._render()

    def _render(self) -> None:
        with self._lock:
            exchanges = self.exchanges()
            self.html.value = svg(exchanges) if exchanges else "<i>no exchanges yet</i>"

    def close(self) -> None:
        self._unlisten()
        super().close()

    def __repr__(self) -> str:
        return f"TraceView(exchanges={len(self.lab.trace.since(self.since))})"
