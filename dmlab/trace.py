"""The trace: one record per exchange with the server, in the order they happened.

The server records every request it answers (who asked, what, the status, the
session id, a one-line summary) and every DM Notification it sends; the lab
shows the trace as a pandas DataFrame and as a sequence diagram.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:
    import pandas as pd

#: The lifelines of a sequence diagram.
ROLES = ("device", "browser-component", "browser", "operator", "server", "unknown")


@dataclass(frozen=True, slots=True)
class Exchange:
    seq: int
    time: float
    source: str      # who sent the request (a role)
    target: str      # who answered it (a role)
    dev_id: str
    method: str
    path: str
    status: int
    session: str     # the session id the exchange concerns ("" if none)
    request: str     # one-line summary of what was sent
    response: str    # one-line summary of what came back


class Trace:
    """A bounded, thread-safe log of exchanges."""

    def __init__(self, *, limit: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._records: list[Exchange] = []
        self._limit = limit
        self._seq = 0
        self._clock = clock
        self._listeners: list[Callable[[Exchange], None]] = []

    def record(self, *, source: str, target: str = "server", dev_id: str = "", method: str,
               path: str, status: int, session: str = "", request: str = "",
               response: str = "") -> Exchange:
        with self._lock:
            self._seq += 1
            exchange = Exchange(self._seq, self._clock(), source, target, dev_id, method, path,
                                status, session, request, response)
            self._records.append(exchange)
            if len(self._records) > self._limit:
                del self._records[: len(self._records) - self._limit]
            listeners = list(self._listeners)
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

    @property
    def last_seq(self) -> int:
        return self._seq

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def frame(self, since: int = 0) -> pd.DataFrame:
        import pandas as pd

        rows = [asdict(r) for r in self.since(since)]
        columns = list(Exchange.__dataclass_fields__)
        frame = pd.DataFrame(rows, columns=columns)
        frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
        return frame.set_index("seq")
