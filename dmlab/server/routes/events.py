"""``GET /events``: an account's lab events as Server-Sent Events (not in the CR).

A browser page or a script watches sessions move (queued, started, continued,
completed) without polling ``/sessions/pending``. Each event is one SSE frame::

    id: 42
    event: session.completed
    data: {"seq": 42, "kind": "session.completed", "account": "demo", ...}

The :class:`~dmlab.events.EventBus` calls subscribers synchronously on whatever
thread publishes (a request on the server's loop, a device thread, a notebook
cell, or the listener thread that relays other processes' events on a shared
database). :class:`EventStreams` keeps the bus callback tiny: it hands the event
to each matching stream's loop with ``call_soon_threadsafe``. A stream that falls
behind by a whole queue ends, and the client's reconnect with ``Last-Event-ID``
replays the missed events from the bus's recent ones (:meth:`EventBus.since`: the
last ``REPLAY_SIZE`` in memory, or in the database several processes share, so a
client may reconnect to any of them).

A stream sleeps until something wakes it: an event, the hub closing
(:func:`close_streams`), or its heartbeat falling due. A client that hangs up
cancels it: the server reports the disconnect, which Starlette's
``StreamingResponse`` listens for.

Why not sse-starlette: this module's work is the hub (per-account fan-out from
any thread, the ``Last-Event-ID`` ring, ending slow streams), which it does not
do; what it would take over (a three-line frame, the heartbeat, the disconnect
listening Starlette already does) is a few lines here, and its shutdown signal
patches uvicorn's exit handler process-wide, when a notebook runs several labs
and stops them one at a time (:func:`close_streams` stops one app's streams).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ...caps import DEFAULT as DEFAULT_CAPS
from ...caps import RETRY_AFTER, Caps, OverCap, option
from ...events import Event, EventBus
from ..context import authenticate, note
from ..operation import ACCOUNT, DATA, Operation, empty, over_cap

#: Seconds between comment lines on a quiet stream, so proxies and clients
#: can tell a quiet stream from a dead connection.
HEARTBEAT = 15.0
#: Events a stream may have waiting before it is ended as too slow.
QUEUE_SIZE = 1_000
#: What the ``retry:`` field asks of a reconnecting EventSource, in ms.
RETRY_MS = 1_000

MEDIA_TYPE = "text/event-stream"


class Subscription:
    """One open stream: its account and a bounded queue on the server's loop."""

    def __init__(
        self, account: str, loop: asyncio.AbstractEventLoop, size: int = QUEUE_SIZE
    ) -> None:
        self.account = account
        self.loop = loop
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=size)
        self.overflowed = False

    def offer(self, event: Event | None) -> None:
        """Any thread: queue ``event`` on the stream's loop (``None`` wakes it to close)."""
        try:
            self.loop.call_soon_threadsafe(self._put, event)
        except RuntimeError:  # the loop has closed: the stream is gone anyway
            pass

    def _put(self, event: Event | None) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    async def get(self, timeout: float) -> Event | None:
        """The next event; ``None`` after ``timeout`` s without one, or when woken to close."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class EventStreams:
    """The bridge from one EventBus to every open ``/events`` stream of an app."""

    def __init__(self, bus: EventBus, *, caps: Caps = DEFAULT_CAPS) -> None:
        self._lock = threading.Lock()
        self._caps = caps
        self._bus = bus
        self._subscriptions: set[Subscription] = set()
        self.closed = False
        self._unsubscribe = bus.subscribe(self._publish)

    def _publish(self, event: Event) -> None:
        with self._lock:
            targets = [s for s in self._subscriptions if s.account == event.account]
        for subscription in targets:
            subscription.offer(event)

    def open(self, account: str, after: int | None) -> tuple[Subscription, list[Event]]:
        """Subscribe, then read the account's recent events after ``after`` (if given;
        a shared bus's are read by the route, off the loop). In that order no event
        is missed: one published meanwhile is in both, and the stream skips numbers it
        has sent. Raises :class:`OverCap` if the account has its cap of streams open
        already: a stream never ends by itself, so ending an older one would only make
        two clients of one account take turns."""
        subscription = Subscription(account, asyncio.get_running_loop())
        cap = self._caps.streams_per_account
        with self._lock:
            if sum(s.account == account for s in self._subscriptions) >= cap:
                raise OverCap(
                    "streams_per_account",
                    f"account {account} has {cap} event streams open already on this "
                    f"server process (the cap, {option('streams_per_account')}, shared "
                    f"out among --workers); close one, or try again in {RETRY_AFTER} s",
                )
            self._subscriptions.add(subscription)
        if after is None or self._bus.shared:
            return subscription, []
        return subscription, self._bus.since(account, after)

    def drop(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    @property
    def open_streams(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    def close(self) -> None:
        """End every stream and refuse new ones: call before stopping the server."""
        with self._lock:
            self.closed = True
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.offer(None)
        self._unsubscribe()


_hub_lock = threading.Lock()


def event_streams(app: Starlette) -> EventStreams:
    """The app's hub, made on first use (it subscribes to the app's EventBus)."""
    with _hub_lock:
        hub = getattr(app.state, "event_streams", None)
        if hub is None:
            services = app.state.services
            hub = EventStreams(services.events, caps=services.caps)
            app.state.event_streams = hub
        return hub


def close_streams(app: Starlette) -> None:
    """End the app's open streams, so a server shutdown does not wait for them.

    uvicorn's graceful shutdown waits for responses in flight, and an event
    stream never finishes on its own; nor does uvicorn tell the app it is
    stopping before those responses are done."""
    event_streams(app).close()


def frame(event: Event) -> str:
    """One SSE frame (``data`` is one line: JSON never needs a raw newline)."""
    data = json.dumps(event.to_json(), separators=(",", ":"), default=str)
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n"


def _last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


async def stream_events(request: Request) -> Response:
    principal = authenticate(request, "account")
    hub = event_streams(request.app)
    if hub.closed:
        return Response(status_code=503, headers={"Retry-After": "1"})
    after = _last_event_id(request)
    subscription, backlog = hub.open(principal.account, after)
    bus: EventBus = request.app.state.services.events
    if after is not None and bus.shared:
        try:  # a query: off the event loop
            backlog = await anyio.to_thread.run_sync(bus.since, principal.account, after)
        except BaseException:
            hub.drop(subscription)
            raise
    note(request, request="event stream" + (f" after {after}" if after is not None else ""))

    async def body() -> AsyncIterator[str]:
        sent = 0
        last = after or 0
        try:
            yield f"retry: {RETRY_MS}\n: events of account {principal.account}\n\n"
            for event in backlog:
                last = event.seq
                sent += 1
                yield frame(event)
            while True:
                waited = await subscription.get(HEARTBEAT)
                if hub.closed:
                    break
                if subscription.overflowed:
                    yield ": too far behind; reconnect with Last-Event-ID\n\n"
                    break
                if waited is None:  # quiet for HEARTBEAT s
                    yield ": heartbeat\n\n"
                elif waited.seq > last:  # not one the backlog already sent
                    last = waited.seq
                    sent += 1
                    yield frame(waited)
        finally:
            hub.drop(subscription)
            note(request, response=f"{sent} event(s) streamed")

    return stream_response(body())


def stream_response(frames: AsyncIterator[str]) -> StreamingResponse:
    """An event stream as every SSE route sends it: never cached, never buffered by a proxy."""
    return StreamingResponse(
        frames,
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


routes = [
    Operation(
        "GET",
        "/events",
        stream_events,
        "The account's lab events (session queued, started, completed...) as "
        "Server-Sent Events; `Last-Event-ID` replays what a reconnecting client missed.",
        DATA,
        who=ACCOUNT,
        query=(
            {
                "name": "lastEventId",
                "in": "query",
                "required": False,
                "description": "as the Last-Event-ID header",
                "schema": {"type": "string"},
            },
        ),
        responses={
            200: {
                "description": "An endless event stream.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            429: over_cap("streams_per_account"),
            503: empty("The server is shutting down.", {"Retry-After": "seconds"}),
        },
    )
]
