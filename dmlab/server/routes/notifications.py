"""``GET /notifications`` as Server-Sent Events (lab choice notification-transport=sse).

Under the default reading a device in another process long-polls ``GET /notifications``
(:mod:`.resources`): one package 0 per request. Under ``sse`` the device keeps one
request open and every package 0 arrives on it as an event, base64 in its data (an
event's data is text; package 0 is binary)::

    event: notification
    data: AAEBBWRtbGFi…

Behind the stream are the same mailbox and the same waits as behind a long-poll
(:meth:`Notifier.wait`): a stream is a long-poll that does not end, so the caps on
long-polls (:mod:`dmlab.caps`) bound streams too. A newer listener of the same device
takes an older one's place (the wait ends early with nothing): the older stream then
ends rather than take the place back; an account over its cap gets a 429. Under ``none`` neither route is served (devices call in on a timer).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from ...caps import OverCap
from ..context import authenticate, note, services
from ..negotiation import negotiate
from ..operation import DATA, DEVICE, Operation, empty, over_cap
from .events import HEARTBEAT, MEDIA_TYPE, RETRY_MS, stream_response

#: An event's name: what the device listens for.
EVENT = "notification"


class Closing:
    """The app's open notification streams, ended together when the server stops
    (uvicorn waits for responses in flight, and a stream never finishes on its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.closed = False

    def open(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._streams.add(entry)
        return entry

    def drop(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._streams.discard(entry)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            streams = list(self._streams)
        for loop, stop in streams:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(stop.set)


_closing_lock = threading.Lock()


def closing(app: Starlette) -> Closing:
    with _closing_lock:
        found = getattr(app.state, "notification_streams", None)
        if found is None:
            found = app.state.notification_streams = Closing()
        return found


def frame(package: bytes) -> str:
    return f"event: {EVENT}\ndata: {base64.b64encode(package).decode('ascii')}\n\n"


async def stream_notifications(request: Request) -> Response:
    """The device's DM Notifications as they come, one event each."""
    principal = authenticate(request, "device")
    # A long-poll's client (it asks for package 0 itself) is told so, not left hanging.
    negotiate(request, (MEDIA_TYPE,))
    hub = closing(request.app)
    if hub.closed:
        return Response(status_code=503, headers={"Retry-After": "1"})
    notifier = services(request).notifier
    dev_id, account = principal.name, principal.account
    loop = asyncio.get_running_loop()

    def wait() -> asyncio.Future[Any]:
        return asyncio.ensure_future(notifier.wait(dev_id, HEARTBEAT, account=account))

    # The first wait is counted in before the answer starts, so an account over its
    # cap of waits gets its 429 (OverCap) rather than a stream that ends at once.
    waiting = wait()
    await asyncio.sleep(0)
    if waiting.done() and waiting.exception() is not None:
        raise waiting.exception()  # type: ignore[misc]
    note(request, request="notification stream")
    entry = hub.open()
    stop = entry[1]

    async def body() -> AsyncIterator[str]:
        nonlocal waiting
        sent = 0
        started = loop.time()
        stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            yield f"retry: {RETRY_MS}\n: DM Notifications for {dev_id}\n\n"
            while not hub.closed:
                await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stopping.done():
                    break
                try:
                    package = waiting.result()
                except OverCap as over:
                    yield f": {over}\n\n"
                    break
                if package is not None:
                    sent += 1
                    yield frame(package)
                elif loop.time() - started < HEARTBEAT - 1:
                    # Ended early with nothing: a newer listener of this device took the place.
                    yield ": another listener of this device took this stream's place\n\n"
                    break
                else:
                    yield ": heartbeat\n\n"
                started = loop.time()
                waiting = wait()
        finally:
            waiting.cancel()
            stopping.cancel()
            hub.drop(entry)
            note(request, response=f"{sent} DM Notification(s) streamed")

    return stream_response(body())


routes = [
    Operation(
        "GET",
        "/notifications",
        stream_notifications,
        "DM Notifications (package 0) as Server-Sent Events, one `notification` event each "
        "(base64): how a device in another process, or behind NAT, is reached "
        "(lab choice notification-transport=sse).",
        DATA,
        who=DEVICE,
        responses={
            200: {
                "description": "An endless event stream.",
                "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
            },
            406: "406",
            429: over_cap("polls_per_account"),
            503: empty("The server is shutting down.", {"Retry-After": "seconds"}),
        },
        devid_header=True,
        when={"notification-transport": ("sse",)},
    ),
]
