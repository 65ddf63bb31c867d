"""Package 0: the DM Notification that asks a device to open a session.

Delivery has two channels behind one call. A device in the same process (the
notebook lab) registers a listener and gets the bytes at once. A device in
another process long-polls ``GET /notifications`` over HTTPS, which needs no
listening socket on the device (phones behind NAT cannot take incoming
connections either); its notifications wait in a small mailbox meanwhile, and
a waiting poll sleeps until a delivery wakes it (no timer, no CPU while idle).

Several server processes on one PostgreSQL database share the mailboxes: they are
rows in the database (:class:`SharedMailboxes`), a delivery on one process NOTIFYs
every process, whose listener thread wakes its own waiting polls, and the woken
poll takes the row with ``DELETE … RETURNING``, so each package reaches the device
exactly once, whichever process it polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Protocol

import anyio
import anyio.to_thread

from ..events import EventBus
from ..protocol.notification import Notification, encode
from ..store import Device
from ..trace import Trace

Listener = Callable[[bytes], None]
Wake = Callable[[], None]

#: Notifications kept per device for long-polling; older ones are dropped
#: (one pending notification is enough to make a device call /sessions/next).
MAILBOX_SIZE = 8


class SharedMailboxes(Protocol):
    """Mailboxes kept where every server process sees them (``PostgresStore``)."""

    def put_notification(self, dev_id: str, package: bytes, keep: int) -> None: ...
    def take_notification(self, dev_id: str) -> bytes | None: ...
    def forget_notifications(self, dev_id: str) -> None: ...


class Notifier:
    def __init__(
        self,
        server_id: str,
        trace: Trace,
        events: EventBus,
        *,
        first_id: int | None = None,
        clock: Callable[[], float] = time.time,
        shared: SharedMailboxes | None = None,
    ) -> None:
        self.server_id = server_id
        self._trace = trace
        self._events = events
        self._clock = clock
        # NOTIFICATION-ID is 16 bits; a client drops ids it has already seen,
        # so the server counts up and wraps.
        # A restarted server starts at a random id: devices that outlived it
        # remember the ids they saw and would drop repeats as replays. The
        # notebooks' labs pass 0 so that their stored outputs stay the same.
        self._ids = itertools.count(secrets.randbelow(65535) if first_id is None else first_id)
        self._lock = threading.Lock()
        self._listeners: dict[str, Listener] = {}
        self._mailboxes: dict[str, deque[bytes]] = defaultdict(lambda: deque(maxlen=MAILBOX_SIZE))
        #: Polls waiting for each device's mailbox, each woken on its own loop.
        self._waiting: dict[str, set[Wake]] = {}
        #: Rows in the shared database instead of ``_mailboxes`` (module docstring);
        #: whoever listens for deliveries calls :meth:`wake`.
        self._shared = shared

    def listen(self, dev_id: str, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners[dev_id] = listener

        def stop() -> None:
            with self._lock:
                if self._listeners.get(dev_id) is listener:
                    del self._listeners[dev_id]

        return stop

    def notify(self, device: Device, *, session: str = "", req_mos: bool = False) -> bytes:
        with self._lock:
            nid = next(self._ids) % 65535 + 1  # 1..65535, wrapping
        package = encode(
            Notification(
                server_id=self.server_id,
                notification_id=nid,
                timestamp=int(self._clock()),
                req_mos=req_mos,
            ),
            device.notify_key,
        )
        self._trace.record(
            source="server",
            target="device",
            dev_id=device.dev_id,
            method="NOTIFY",
            path="package 0",
            status=0,
            session=session,
            request=f"DM Notification id={nid} ({len(package)} bytes)",
            request_bytes=len(package),
        )
        self._events.publish(
            "notification.sent",
            account=device.account,
            dev_id=device.dev_id,
            session=session,
            notification_id=nid,
        )
        self.deliver(device.dev_id, package)
        return package

    def deliver(self, dev_id: str, package: bytes) -> None:
        """Hand bytes to the device's channel (also used to show forged packages)."""
        with self._lock:
            listener = self._listeners.get(dev_id)
            if listener is None and self._shared is None:
                self._mailboxes[dev_id].append(package)
                for wake in self._waiting.get(dev_id, ()):
                    wake()
        if listener is not None:
            listener(package)
        elif self._shared is not None:
            self._shared.put_notification(dev_id, package, MAILBOX_SIZE)

    def wake(self, dev_id: str) -> None:
        """Something arrived for the device in the shared mailboxes (any thread)."""
        with self._lock:
            for wake in self._waiting.get(dev_id, ()):
                wake()

    def take(self, dev_id: str) -> bytes | None:
        if self._shared is not None:
            return self._shared.take_notification(dev_id)
        with self._lock:
            box = self._mailboxes.get(dev_id)
            return box.popleft() if box else None

    def waiting(self) -> int:
        """How many polls are waiting now, over all devices."""
        with self._lock:
            return sum(len(polls) for polls in self._waiting.values())

    async def wait(self, dev_id: str, timeout: float) -> bytes | None:
        """The device's next notification, waiting up to ``timeout`` s for one to arrive.

        The wait sleeps until :meth:`deliver` (on any thread) wakes it, so a waiting
        long-poll costs no CPU. ``None`` if nothing came in time.
        """
        loop = asyncio.get_running_loop()
        arrived = asyncio.Event()

        def wake() -> None:  # any thread, under self._lock
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                loop.call_soon_threadsafe(arrived.set)

        deadline = loop.time() + timeout
        while True:
            with self._lock:
                box = self._mailboxes.get(dev_id)
                if box:
                    return box.popleft()
                self._waiting.setdefault(dev_id, set()).add(wake)
            if self._shared is not None:
                # Registered first, then looked: a delivery in between still wakes us.
                package = await anyio.to_thread.run_sync(self._shared.take_notification, dev_id)
                if package is not None:
                    self._unwait(dev_id, wake)
                    return package
            try:
                async with asyncio.timeout_at(deadline):
                    await arrived.wait()
            except TimeoutError:
                self._unwait(dev_id, wake)
                if self._shared is None:
                    return self.take(dev_id)
                return await anyio.to_thread.run_sync(self.take, dev_id)
            finally:
                self._unwait(dev_id, wake)
            arrived.clear()  # another poll for the same device may have taken it

    def _unwait(self, dev_id: str, wake: Wake) -> None:
        with self._lock:
            waiting = self._waiting.get(dev_id, set())
            waiting.discard(wake)
            if not waiting:
                self._waiting.pop(dev_id, None)

    def forget(self, dev_id: str) -> None:
        if self._shared is not None:
            self._shared.forget_notifications(dev_id)
        with self._lock:
            self._mailboxes.pop(dev_id, None)
            self._listeners.pop(dev_id, None)
