"""The trace: one record per exchange with the server, in the order they happened.

The server records every request it answers (who asked, what, the status, the
session id, a one-line summary) and every DM Notification it sends; the lab
shows the trace as a pandas DataFrame and as a sequence diagram.

The trace lives in memory (notebooks). Given a ``sink`` (the standalone server
passes its :class:`~dmlab.store.sqlite.SQLiteStore`), it also writes every record
there and starts from what the sink kept, so a restarted server keeps its trace
and goes on counting ``seq`` where it stopped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pandas as pd

#: What ``Trace.frame()`` shows: ``elapsed`` changes on every run, so a stored
#: notebook table leaves it out (the HAR export has it).
FRAME_COLUMNS = [
    "seq",
    "time",
    "source",
    "target",
    "dev_id",
    "method",
    "path",
    "status",
    "session",
    "request",
    "response",
]

#: The lifelines of a sequence diagram.
ROLES = ("device", "browser-component", "browser", "operator", "server", "unknown")


@dataclass(frozen=True, slots=True)
class Exchange:
    seq: int
    time: float
    source: str  # who sent the request (a role)
    target: str  # who answered it (a role)
    dev_id: str
    method: str
    path: str
    status: int
    session: str  # the session id the exchange concerns ("" if none)
    request: str  # one-line summary of what was sent
    response: str  # one-line summary of what came back
    # Seconds from the request's arrival to its answer (0 for a notification, or
    # unknown). A notification sent within that span of a request of the same
    # session was sent while answering it: that is how the diagram places it.
    elapsed: float = 0.0

    @property
    def started(self) -> float:
        """When the request arrived (``time`` is when its answer went out)."""
        return self.time - self.elapsed


class TraceSink(Protocol):
    """Where a trace keeps its records beyond the process (``SQLiteStore`` is one)."""

    def load_trace(self, limit: int) -> list[Exchange]:
        """The newest ``limit`` records, oldest first."""

    def append_trace(self, exchange: Exchange, limit: int) -> None:
        """Keep one record (and at most the newest ``limit``)."""

    def clear_trace(self) -> None: ...


_log = logging.getLogger(__name__)


class Trace:
    """A bounded, thread-safe log of exchanges, optionally kept in a ``sink``."""

    def __init__(
        self,
        *,
        limit: int = 100_000,
        clock: Callable[[], float] = time.time,
        sink: TraceSink | None = None,
    ) -> None:
        self._lock = threading.Lock()
        # A deque drops the oldest record in O(1) once full; deleting from the front
        # of a 100,000-item list cost every request ~15 µs on a long-running server.
        self._records: deque[Exchange] = deque(sink.load_trace(limit) if sink else (), maxlen=limit)
        self._seq = self._records[-1].seq if self._records else 0
        self._limit = limit
        self._clock = clock
        self._sink = sink
        self._listeners: list[Callable[[Exchange], None]] = []

    def record(
        self,
        *,
        source: str,
        target: str = "server",
        dev_id: str = "",
        method: str,
        path: str,
        status: int,
        session: str = "",
        request: str = "",
        response: str = "",
        elapsed: float = 0.0,
    ) -> Exchange:
        with self._lock:
            self._seq += 1
            exchange = Exchange(
                self._seq,
                self._clock(),
                source,
                target,
                dev_id,
                method,
                path,
                status,
                session,
                request,
                response,
                elapsed,
            )
            self._records.append(exchange)
            listeners = list(self._listeners)
        if self._sink is not None:
            # Outside the lock (the sink has its own); ``seq`` keeps the order. A
            # failed write loses one record, never the answer being traced.
            try:
                self._sink.append_trace(exchange, self._limit)
            except Exception:
                _log.exception("could not keep trace record %d", exchange.seq)
        for listener in listeners:
            listener(exchange)
        return exchange

    def listen(self, callback: Callable[[Exchange], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return remove

    def __iter__(self) -> Iterator[Exchange]:
        with self._lock:
            return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def since(self, seq: int) -> list[Exchange]:
        """Records after ``seq`` (use the last seen ``seq`` to follow one flow)."""
        with self._lock:
            return [r for r in self._records if r.seq > seq]

    def now(self) -> float:
        """The trace's clock (the middleware times requests with it)."""
        return self._clock()

    @property
    def last_seq(self) -> int:
        return self._seq

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            if self._sink is not None:
                self._sink.clear_trace()

    def frame(self, since: int = 0) -> pd.DataFrame:
        import pandas as pd

        rows = [asdict(r) for r in self.since(since)]
        columns = FRAME_COLUMNS
        frame = pd.DataFrame(rows, columns=columns)
        frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
        return frame.set_index("seq")

    def to_har(self, path: str | os.PathLike[str], *, base_url: str, since: int = 0) -> Path:
        """Write the exchanges after ``since`` as a HAR 1.2 file (see :mod:`dmlab.har`)."""
        from .har import write_har

        return write_har(self.since(since), path, base_url=base_url)
