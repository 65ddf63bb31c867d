"""Connection limits for the lab's uvicorn server: what uvicorn and h11 lack.

What uvicorn 0.54 and h11 0.16 offer, and why each is not enough alone:

- ``timeout_keep_alive`` closes a connection idle *after* a response; it is not
  armed before the first request, and any byte (one header line a minute) cancels
  it. So a slowloris connection, or one that never sends a request, stays open.
- ``h11_max_incomplete_event_size`` caps the bytes of an unfinished request head
  (memory), not the time it may take.
- ``limit_concurrency`` answers ``503``, but only once a request's head has been
  read: connections that send nothing are never refused, and each holds a file
  descriptor until the process runs out and asyncio logs every failed accept.
- The TLS handshake (asyncio's ``ssl_handshake_timeout``) waits 60 s by default,
  and uvicorn does not pass one.
- h11 reads a request with both ``Content-Length`` and ``Transfer-Encoding`` by
  the latter (as RFC 9112 allows) but keeps the connection open, where RFC 9112
  § 6.3 says the server MUST close it; and it accepts bare LF line endings.

So :class:`GuardedH11Protocol` (uvicorn's h11 protocol with a few hooks) refuses a
connection over ``max_connections`` at once with a ``503`` problem, closes one
whose request head or body is not complete within ``header_timeout`` /
``body_timeout``, closes after answering a ``Content-Length`` + ``Transfer-Encoding``
request, and answers ``400`` to a request head with a bare LF. Every kind of fault
is logged at most once a minute (:class:`OncePerMinute`), with a count of the
ones not logged.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import threading
import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.flow_control import CLOSE_HEADER
from uvicorn.protocols.http.h11_impl import H11Protocol

_log = logging.getLogger("dmlab.limits")


def _default_max_connections() -> int:
    """1,000, or half the process' file descriptors if that is fewer."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1000 if soft == resource.RLIM_INFINITY else max(16, min(1000, soft // 2))


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    #: Seconds for a request head to arrive, counted from the connection (or the
    #: previous answer): a slowloris connection is closed after this.
    header_timeout: float = 10.0
    #: Seconds for a request body to arrive once its head has.
    body_timeout: float = 15.0
    #: Seconds for a TLS handshake.
    handshake_timeout: float = 10.0
    #: Seconds an idle kept-alive connection stays open (uvicorn's own timer). Longer
    #: than pooled clients keep an idle connection (httpx 5 s, aiohttp 15 s), so that
    #: the client retires it first: when the server closes first, a client reusing
    #: the connection at that moment loses its request without an answer (uvicorn's
    #: default of 5 s, equal to httpx's, made ``benchmarks/sessions.py`` die on
    #: ``Server disconnected without sending a response``).
    keep_alive: int = 20
    #: Open connections at most; one more is answered 503 and closed.
    max_connections: int = _default_max_connections()
    #: Bytes of an unfinished request head (h11's limit; 16 KiB by default).
    max_head: int = 16 * 1024

    def uvicorn_options(self) -> dict[str, Any]:
        return {
            "http": GuardedH11Protocol.for_limits(self),
            "timeout_keep_alive": self.keep_alive,
            "h11_max_incomplete_event_size": self.max_head,
        }


class OncePerMinute(logging.Filter):
    """Lets one record per (logger, message) through each ``period`` seconds and
    appends how many were held back since: a flood of one fault (say, asyncio's
    "socket.accept() out of system resource") is one line a minute, not 300,000."""

    def __init__(self, period: float = 60.0, *, max_kinds: int = 1024) -> None:
        super().__init__()
        self._period = period
        self._max_kinds = max_kinds
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg).split("\n", 1)[0][:120])
        now = time.monotonic()
        with self._lock:
            last, held = self._seen.get(key, (float("-inf"), 0))
            if now - last < self._period:
                self._seen[key] = (last, held + 1)
                return False
            if len(self._seen) >= self._max_kinds:
                self._seen.clear()
            self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last minute not logged)"
        return True


_FILTER = OncePerMinute()
_installed = False


def install_log_limits() -> None:
    """Put the once-a-minute filter on the loggers that a flood can reach."""
    global _installed
    if _installed:
        return
    for name in (
        "asyncio",
        "uvicorn.error",
        "dmlab.limits",
        "dmlab.trace",
        "dmlab.store.sqlite",
        "dmlab.store.postgres",
        "psycopg.pool",  # "error connecting", each try while PostgreSQL is away
    ):
        logging.getLogger(name).addFilter(_FILTER)
    _installed = True


# The guarded protocol -----------------------------------------------------------------
_OVERLOADED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
    b"Retry-After: 5\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
)
# RFC 9457 with the "about:blank" type (the status says it all), as the answer is made
# before any request is read: no path for "instance", no host for a /docs type URI.
_OVERLOADED_BODY = (
    b'{"type":"about:blank","title":"Service Unavailable","status":503,'
    b'"detail":"the server has too many open connections; try again shortly"}'
)
_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with the limits the module doc lists."""

    limits = ConnectionLimits()  # replaced per server by ``for_limits``

    @classmethod
    def for_limits(cls, limits: ConnectionLimits) -> type[GuardedH11Protocol]:
        return type(cls.__name__, (cls,), {"limits": limits})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._phase: object = None
        self._last_cycle: object = None
        self._tail = b""  # the last bytes of the request head so far (bare LF check)
        self._refused = False
        self._answered = False  # has a response completed on this connection?
        self._partial = False  # bytes of the next request head received?

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            _log.warning("refused a connection: %d open (the limit)", self.limits.max_connections)
            transport.write(_OVERLOADED % (len(_OVERLOADED_BODY), _OVERLOADED_BODY))
            transport.close()
            self.transport = transport
            self._refused = True
            return
        super().connection_made(transport)
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._arm(None, 0.0)
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self.conn.their_state is h11.IDLE:
            self._partial = True  # a request head has begun: time it
        if self.conn.their_state is h11.IDLE and self._bare_lf(data):
            _log.warning("refused a request head with a bare LF line ending")
            self._arm(None, 0.0)
            self.send_400_response("Invalid HTTP request: bare LF line ending.")
            return
        super().data_received(data)
        self._after_events()

    def on_response_complete(self) -> None:
        self._answered = True
        super().on_response_complete()  # may start a pipelined request
        if not self.transport.is_closing():
            self._after_events()

    def _after_events(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle is not self._last_cycle:
            self._last_cycle = cycle
            names = {name for name, _ in cycle.scope["headers"]}
            if b"content-length" in names and b"transfer-encoding" in names:
                # RFC 9112 § 6.3: answer, then close (a smuggling attempt, likely).
                _log.warning("closing after a request with Content-Length and Transfer-Encoding")
                cycle.keep_alive = False
                cycle.scope["headers"] = [*cycle.scope["headers"], CLOSE_HEADER]
        self._watch()

    def _bare_lf(self, data: bytes) -> bool:
        """Whether this part of a request head has an LF without a CR before it
        (``_tail`` keeps the head's last bytes across reads)."""
        joined = self._tail + data
        end = joined.find(b"\r\n\r\n")
        head = joined if end == -1 else joined[: end + 4]
        index = head.find(b"\n", len(self._tail))
        while index != -1:
            if index == 0 or head[index - 1] != 0x0D:
                return True
            index = head.find(b"\n", index + 1)
        self._tail = joined[-3:] if end == -1 else b""
        return False

    def _watch(self) -> None:
        """Arm the timer that the connection's phase calls for: the request head
        (their state IDLE: from the connection's start, or from the first byte of a
        later request; an idle kept-alive connection is uvicorn's keep-alive timer's)
        or the body (SEND_BODY); none while the app answers."""
        state = self.conn.their_state
        if state is not h11.IDLE:
            # The head is complete. A head that came whole in one read never put the
            # connection in the "head" phase, so this is the one place to forget it:
            # else, once answered, the idle kept-alive connection would be timed as a
            # slow head and closed with a 408 that a pooled client may take for the
            # answer to its next request.
            self._partial = False
            self._tail = b""
        phase: str | None = None
        if state is h11.IDLE and (self._partial or not self._answered):
            phase = "head"
        elif state is h11.SEND_BODY:
            phase = "body"
        if phase == self._phase:
            return
        self._phase = phase
        timeout = self.limits.header_timeout if phase == "head" else self.limits.body_timeout
        self._arm(phase, timeout)

    def _arm(self, phase: object, timeout: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if phase is not None:
            self._timer = self.loop.call_later(timeout, self._timed_out, phase)

    def _timed_out(self, phase: object) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        _log.warning("closed a connection whose request %s was too slow", phase)
        # A 408 only to a request begun: on a connection that sent nothing, a
        # client about to reuse it could take the 408 for its next answer.
        if self.conn.our_state is h11.IDLE and self._partial:
            self.transport.write(_TIMEOUT)
        self.transport.close()
