"""One stream of lab events (session queued, started, ...), for widgets and SSE.

Subscribers are called synchronously from whichever thread delivers, so they
must be quick; a widget hands the event to its own thread or the kernel's loop.

One process (the notebook lab, ``serve`` on SQLite) numbers its events itself and
delivers each at once. Several processes on one PostgreSQL database share one
:class:`EventLog` instead: ``publish`` writes the event there (inside the store's
transaction when there is one, so it exists exactly when the change it announces
commits) and the database numbers it; every process, the publishing one included,
delivers it when its listener hears the NOTIFY, reading the log in number order
(:meth:`EventBus.relay`). So each subscriber, on any process, sees every process's
events in one global order, and a ``Last-Event-ID`` from one process means the same
on another.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

#: Every kind of event the server publishes.
KINDS: Final = (
    "session.queued",
    "session.started",
    "session.continued",
    "session.resumed",
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

#: Recent events kept for ``Last-Event-ID`` replay, across all accounts: in memory
#: for one process, as rows of the shared log for several.
REPLAY_SIZE: Final = 1_000


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


class EventLog(Protocol):
    """Events kept where every server process sees them (``PostgresStore``)."""

    def append_events(self, events: Sequence[Event], keep: int) -> list[int]:
        """Number and keep ``events`` (their ``seq`` is ignored), only the newest
        ``keep`` overall, and tell every listening process; the numbers given."""
        ...

    def events_after(self, after: int, account: str | None, limit: int) -> list[Event]:
        """The kept events numbered above ``after`` (of one account, or all), in order."""
        ...

    def last_event_seq(self) -> int: ...


class EventBus:
    def __init__(self, clock: Callable[[], float] = time.time, log: EventLog | None = None) -> None:
        self._clock = clock
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._recent: deque[Event] = deque(maxlen=REPLAY_SIZE)
        self._log = log
        # Shared: the newest event this process has delivered (the log's events before
        # it started are not this process's news). Guarded by ``_relaying``.
        self._relaying = threading.Lock()
        self._delivered = 0 if log is None else log.last_event_seq()

    @property
    def shared(self) -> bool:
        """Whether events go through a log that other processes share."""
        return self._log is not None

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
        """Announce an event. Shared: it is logged now (in the store's open transaction,
        if any) and delivered by :meth:`relay`, on every process, once committed."""
        assert kind in KINDS, kind
        if self._log is not None:
            event = Event(0, kind, account, dev_id, self._clock(), data)
            [seq] = self._log.append_events([event], REPLAY_SIZE)
            return Event(seq, kind, account, dev_id, event.at, data)
        with self._lock:
            event = Event(next(self._seq), kind, account, dev_id, self._clock(), data)
            self._recent.append(event)
        self._deliver(event)
        return event

    def _deliver(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)

    def relay(self, payload: str = "") -> None:
        """Shared: deliver every logged event after the last one delivered, in number
        order. The listener thread calls it on each NOTIFY (``payload``: the number of
        the event that sent it; one already delivered costs no query)."""
        if self._log is None:
            return
        with self._relaying:
            if payload.isdigit() and int(payload) <= self._delivered:
                return
            while True:
                batch = self._log.events_after(self._delivered, None, REPLAY_SIZE)
                for event in batch:
                    self._delivered = event.seq
                    self._deliver(event)
                if len(batch) < REPLAY_SIZE:
                    return

    def since(self, account: str, after: int) -> list[Event]:
        """The account's recent events numbered above ``after`` (``Last-Event-ID``
        replay), as far back as the last :data:`REPLAY_SIZE` events reach. Shared: a
        query (call it off the event loop)."""
        if self._log is not None:
            return self._log.events_after(after, account, REPLAY_SIZE)
        with self._lock:
            return [e for e in self._recent if e.account == account and e.seq > after]
