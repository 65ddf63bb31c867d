"""One unit of work: a store transaction whose events go out only after commit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..events import EventBus
from ..store import Store


class Unit:
    """Shared by the session engine and the device lifecycle, so a change that spans
    both commits (and is announced) once. Nested ``atomic()`` blocks join the outer one;
    a block that raises rolls back and announces nothing."""

    def __init__(self, store: Store, events: EventBus) -> None:
        self.store = store
        self.events = events
        self._local = threading.local()  # per-thread outbox of events awaiting commit

    @contextmanager
    def atomic(self) -> Iterator[None]:
        outermost = getattr(self._local, "outbox", None) is None
        if outermost:
            self._local.outbox = []
        try:
            with self.store.transaction():
                yield
                if outermost and self.events.shared:
                    # Logged in this transaction: they exist exactly if it commits, and
                    # every process delivers them after the commit (dmlab.events).
                    self._announce()
            if outermost and not self.events.shared:
                self._announce()
        finally:
            if outermost:
                self._local.outbox = None

    def _announce(self) -> None:
        for kind, account, dev_id, data in self._local.outbox:
            self.events.publish(kind, account=account, dev_id=dev_id, **data)

    def publish(self, kind: str, *, account: str, dev_id: str, **data: Any) -> None:
        """Announce now, or at commit when inside ``atomic()``."""
        outbox = getattr(self._local, "outbox", None)
        if outbox is not None:
            outbox.append((kind, account, dev_id, data))
        else:
            self.events.publish(kind, account=account, dev_id=dev_id, **data)
