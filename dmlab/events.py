"""One stream of lab events (session queued, started, ...), for widgets and SSE.

Subscribers are called synchronously from whichever thread publishes, so they
must be quick; a widget hands the event to its own thread or the kernel's loop.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

#: Every kind of event the server publishes.
KINDS: Final = (
    "session.queued",
    "session.started",
    "session.continued",
    "session.completed",
    "session.aborted",
    "session.expired",
    "device.registered",
    "device.updated",
    "device.unregistered",
    "alert.received",
    "notification.sent",
    "notification.dropped",
)


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    kind: str
    account: str
    dev_id: str
    at: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "account": self.account,
            "devId": self.dev_id,
            "at": self.at,
            **self.data,
        }


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it again."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, kind: str, *, account: str, dev_id: str, **data: Any) -> Event:
        assert kind in KINDS, kind
        event = Event(next(self._seq), kind, account, dev_id, self._clock(), data)
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)
        return event
