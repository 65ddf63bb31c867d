"""The trace: one record per exchange with the server, in the order they happened.

The server records every request it answers (who asked, what, the status, the
session id, a one-line summary) and every DM Notification it sends; the lab
shows the trace as a pandas DataFrame and as a sequence diagram.

The trace lives in memory (notebooks). Given a ``sink`` (the standalone server
passes its :class:`~dmlab.store.sqlite.SQLiteStore`), it also writes every record
there and starts from what the sink kept, so a restarted server keeps its trace
and goes on counting ``seq`` where it stopped.

Bounded, whoever is asking: each field of a record is cut to a few hundred
characters (marked ``…[cut N]``); exchanges of unauthenticated callers are
sampled (a burst, then a few a minute; the rest only counted in
:attr:`Trace.unrecorded`); and the records kept, in memory and in the sink, are
capped both in number and in bytes, the oldest going first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .har import write_har

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
    #: Body bytes each way (a DM Notification: its package). Not kept by a store.
    request_bytes: int = 0
    response_bytes: int = 0

    @property
    def started(self) -> float:
        """When the request arrived (``time`` is when its answer went out)."""
        return self.time - self.elapsed


def exchange_from_row(row: Sequence[object]) -> Exchange | None:
    """An exchange from a stored row (text as ``str`` or UTF-8 ``bytes``), or
    ``None`` if the row is not one."""
    if len(row) != 12:
        return None
    seq, at, status, elapsed = row[0], row[1], row[7], row[11]
    texts: list[str] = []
    for value in (*row[2:7], *row[8:11]):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                return None
        if not isinstance(value, str):
            return None
        texts.append(value)
    if (
        not isinstance(seq, int)
        or not isinstance(at, int | float)
        or not isinstance(status, int)
        or isinstance(status, bool)
        or not isinstance(elapsed, int | float)
    ):
        return None
    source, target, dev_id, method, path, session, request, response = texts
    return Exchange(
        seq,
        float(at),
        source,
        target,
        dev_id,
        method,
        path,
        status,
        session,
        request,
        response,
        float(elapsed),
    )


#: Session ids are 16 hex characters; eight are plenty to tell sessions apart.
SHORT_ID = 8


def shortener(exchanges: Iterable[Exchange]) -> Callable[[str], str]:
    """Replace every session id of ``exchanges`` in a text by its first eight characters
    and an ellipsis (what the diagram and ``Trace.table()`` show)."""
    ids = sorted({e.session for e in exchanges if len(e.session) > SHORT_ID}, key=len, reverse=True)
    if not ids:
        return lambda text: text
    pattern = re.compile("|".join(re.escape(i) for i in ids))
    return lambda text: pattern.sub(lambda m: m.group(0)[:SHORT_ID] + "…", text)


class TraceSink(Protocol):
    """Where a trace keeps its records beyond the process (``SQLiteStore`` is one)."""

    def load_trace(self, limit: int) -> list[Exchange]:
        """The newest ``limit`` records, oldest first."""

    def append_trace(self, exchange: Exchange, limit: int) -> None:
        """Keep one record (and at most the newest ``limit``)."""

    def clear_trace(self) -> None: ...


_log = logging.getLogger(__name__)

#: Longest path, and longest other field, a record keeps (characters).
MAX_PATH = 512
MAX_FIELD = 1024
#: Bytes of records kept (an estimate: field lengths plus a fixed overhead).
MAX_BYTES = 32 * 1024 * 1024
_OVERHEAD = 400
#: Unauthenticated exchanges: this many in a burst, then one per ``ANON_REFILL`` seconds.
ANON_BURST = 20
ANON_REFILL = 6.0


def cut(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters marked as cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[cut {len(text) - limit}]"


def _size(exchange: Exchange) -> int:
    e = exchange
    return (
        _OVERHEAD
        + len(e.source)
        + len(e.target)
        + len(e.dev_id)
        + len(e.method)
        + len(e.path)
        + len(e.session)
        + len(e.request)
        + len(e.response)
    )


class Trace:
    """A bounded, thread-safe log of exchanges, optionally kept in a ``sink``."""

    def __init__(
        self,
        *,
        limit: int = 100_000,
        max_bytes: int = MAX_BYTES,
        clock: Callable[[], float] = time.time,
        sink: TraceSink | None = None,
    ) -> None:
        self._lock = threading.Lock()
        # A deque drops the oldest record in O(1) once full; deleting from the front
        # of a 100,000-item list cost every request ~15 µs on a long-running server.
        self._records: deque[Exchange] = deque(sink.load_trace(limit) if sink else (), maxlen=limit)
        self._seq = self._records[-1].seq if self._records else 0
        self._limit = limit
        self._max_bytes = max_bytes
        self._bytes = sum(_size(r) for r in self._records)
        while self._bytes > max_bytes and len(self._records) > 1:
            self._bytes -= _size(self._records.popleft())
        self._clock = clock
        self._sink = sink
        #: A sink shared by several processes numbers their exchanges (one order).
        self._next_seq: Callable[[], int] | None = getattr(sink, "next_trace_seq", None)
        self._listeners: list[Callable[[Exchange], None]] = []
        self._tokens = float(ANON_BURST)
        self._refilled = time.monotonic()
        #: Unauthenticated exchanges not kept, by status (the sampling above).
        self.unrecorded: Counter[int] = Counter()

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
        request_bytes: int = 0,
        response_bytes: int = 0,
    ) -> Exchange:
        """Keep one exchange, its fields cut to size."""
        numbered = None
        if self._next_seq is not None:
            with contextlib.suppress(Exception):  # the sink's write will say what failed
                numbered = self._next_seq()
        with self._lock:
            self._seq = self._seq + 1 if numbered is None else numbered
            exchange = Exchange(
                self._seq,
                self._clock(),
                # A full trace holds 100,000 exchanges: the fields that repeat (a
                # role, a method, a device, /sessions/next) share one string each.
                sys.intern(cut(source, MAX_FIELD)),
                sys.intern(cut(target, MAX_FIELD)),
                sys.intern(cut(dev_id, MAX_FIELD)),
                sys.intern(cut(method, MAX_FIELD)),
                sys.intern(cut(path, MAX_PATH)),
                status,
                cut(session, MAX_FIELD),
                cut(request, MAX_FIELD),
                cut(response, MAX_FIELD),
                elapsed,
                request_bytes,
                response_bytes,
            )
            if len(self._records) == self._records.maxlen:
                self._bytes -= _size(self._records[0])
            self._records.append(exchange)
            self._bytes += _size(exchange)
            while self._bytes > self._max_bytes and len(self._records) > 1:
                self._bytes -= _size(self._records.popleft())
            kept = len(self._records)
            listeners = list(self._listeners)
        if self._sink is not None:
            # Outside the lock (the sink has its own); ``seq`` keeps the order. A
            # failed write loses one record, never the answer being traced. The sink
            # keeps what memory keeps: the newest ``kept``.
            try:
                # Shared numbering: the other processes' records count too, so the
                # sink keeps the newest ``limit`` of them all, not this memory's share.
                self._sink.append_trace(exchange, kept if self._next_seq is None else self._limit)
            except Exception as exc:
                # One line, no traceback (a full disk fails every write alike);
                # the runtime's log filter lets one through a minute.
                _log.warning("could not keep trace record %d: %s", exchange.seq, exc)
        for listener in listeners:
            listener(exchange)
        return exchange

    def record_unauthenticated(self, *, status: int, **fields: Any) -> Exchange | None:
        """Keep an exchange of a caller without valid credentials, if the sample
        allows (a burst, then one per ``ANON_REFILL`` s); otherwise count it."""
        with self._lock:
            if not self._take_token():
                self.unrecorded[status] += 1
                return None
        return self.record(status=status, **fields)

    def _take_token(self) -> bool:
        now = time.monotonic()
        self._tokens = min(ANON_BURST, self._tokens + (now - self._refilled) / ANON_REFILL)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

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
            self._bytes = 0
            if self._sink is not None:
                self._sink.clear_trace()

    def frame(self, since: int = 0, *, sizes: bool = False) -> pd.DataFrame:
        """The records after ``since``; ``sizes=True`` adds the body byte counts."""
        import pandas as pd

        rows = [asdict(r) for r in self.since(since)]
        columns = FRAME_COLUMNS + (["request_bytes", "response_bytes"] if sizes else [])
        frame = pd.DataFrame(rows, columns=columns)
        frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
        return frame.set_index("seq")

    def table(self, since: int = 0, *, dev_id: bool = False) -> pd.DataFrame:
        """The exchanges after ``since`` for reading in a notebook: who asked whom, the
        request line, the status and both summaries, session ids shortened as in the
        diagram (``frame()`` has every field whole). ``dev_id`` adds the device column."""
        import pandas as pd

        records = self.since(since)
        short = shortener(records)
        rows = [
            {
                "seq": r.seq,
                "from → to": f"{r.source} → {r.target}",
                **({"dev_id": r.dev_id} if dev_id else {}),
                "request": short(f"{r.method} {r.path}"),
                "status": r.status,
                "sent": short(r.request),
                "answered": short(r.response),
            }
            for r in records
        ]
        columns = ["seq", "from → to", *(["dev_id"] if dev_id else []), "request", "status"]
        return pd.DataFrame(rows, columns=[*columns, "sent", "answered"]).set_index("seq")

    def to_har(self, path: str | os.PathLike[str], *, base_url: str, since: int = 0) -> Path:
        """Write the exchanges after ``since`` as a HAR 1.2 file (see :mod:`dmlab.har`)."""
        return write_har(self.since(since), path, base_url=base_url)
