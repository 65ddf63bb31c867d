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

A device has one long-poll for the whole server (``Caps.polls_per_device``): a poll
admitted on one process is announced to the others (:meth:`SharedMailboxes.announce_poll`,
a NOTIFY; one round trip per poll), which end the device's older polls
(:meth:`Notifier.polled_elsewhere`), so a poll whose connection died unseen on another
process cannot take the device's next notification. The account's cap is divided among
the processes instead (``dmlab/caps.py`` says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from typing import Protocol

import anyio
import anyio.to_thread

from ..caps import DEFAULT as DEFAULT_CAPS
from ..caps import RETRY_AFTER, Caps, OverCap, option
from ..events import EventBus
from ..protocol.notification import Notification, encode
from ..store import Device
from ..trace import Trace

Listener = Callable[[bytes], None]

#: Notifications kept per device for long-polling; older ones are dropped
#: (one pending notification is enough to make a device call /sessions/next).
MAILBOX_SIZE = 8


class SharedMailboxes(Protocol):
    """Mailboxes kept where every server process sees them (``PostgresStore``)."""

    def put_notification(self, dev_id: str, package: bytes, keep: int) -> None: ...
    def take_notification(self, dev_id: str) -> bytes | None: ...
    def forget_notifications(self, dev_id: str) -> None: ...
    def announce_poll(self, payload: str) -> None: ...


class _Poll:
    """One waiting long-poll: woken (from any thread) by a delivery, or ended by a
    newer poll of the same device."""

    def __init__(self, loop: asyncio.AbstractEventLoop, account: str) -> None:
        self.loop = loop
        self.account = account
        #: When it was admitted, on the wall clock other processes (and hosts, NTP-kept)
        #: share: of a device's polls on two processes, the later one stays.
        self.since = time.time()
        self.arrived = asyncio.Event()
        self.ended = False

    def wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
            self.loop.call_soon_threadsafe(self.arrived.set)

    def end(self) -> None:
        self.ended = True
        self.wake()


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
        caps: Caps = DEFAULT_CAPS,
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
        #: Polls waiting for each device's mailbox, oldest first, each woken on its
        #: own loop; and how many wait per account (both bounded by ``caps``).
        self._caps = caps
        self._waiting: dict[str, list[_Poll]] = {}
        self._per_account: Counter[str] = Counter()
        #: Rows in the shared database instead of ``_mailboxes`` (module docstring);
        #: whoever listens for deliveries calls :meth:`wake`.
        self._shared = shared
        #: This process, as its poll announcements name it (to skip its own).
        self._origin = secrets.token_hex(8)
        #: Whether package 0 is sent at all; False under lab choice
        #: notification-transport=none, where no channel reaches any device: not a
        #: mailbox for devices in other processes, nor a listener in this one (the lab's
        #: own devices call in on their timer like every other device).
        self.sends = True

    def listen(self, dev_id: str, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners[dev_id] = listener

        def stop() -> None:
            with self._lock:
                if self._listeners.get(dev_id) is listener:
                    del self._listeners[dev_id]

        return stop

    def notify(self, device: Device, *, session: str = "", req_mos: bool = False) -> bytes:
        if not self.sends:
            return b""  # notification-transport=none: no channel reaches the device
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
                for poll in self._waiting.get(dev_id, ()):
                    poll.wake()
        if listener is not None:
            listener(package)
        elif self._shared is not None:
            self._shared.put_notification(dev_id, package, MAILBOX_SIZE)

    def wake(self, dev_id: str) -> None:
        """Something arrived for the device in the shared mailboxes (any thread)."""
        with self._lock:
            for poll in self._waiting.get(dev_id, ()):
                poll.wake()

    def wake_all(self) -> None:
        """Wake every waiting poll, to look again (deliveries may have gone unheard)."""
        with self._lock:
            for polls in self._waiting.values():
                for poll in polls:
                    poll.wake()

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

    async def wait(self, dev_id: str, timeout: float, *, account: str = "") -> bytes | None:
        """The device's next notification, waiting up to ``timeout`` s for one to arrive.

        The wait sleeps until :meth:`deliver` (on any thread) wakes it, so a waiting
        long-poll costs no CPU. ``None`` if nothing came in time, or if a newer poll
        of the same device took its place (``Caps.polls_per_device``). Raises
        :class:`OverCap` if ``account``'s devices already have their cap of polls
        waiting.
        """
        if timeout <= 0:
            return await self._take(dev_id)
        loop = asyncio.get_running_loop()
        poll = _Poll(loop, account)
        with self._lock:
            self._admit(dev_id, poll)
        try:
            if self._shared is not None:  # the device's polls on other processes end
                said = f"{self._origin} {poll.since!r} {dev_id}"
                await anyio.to_thread.run_sync(self._shared.announce_poll, said)
            return await self._wait(dev_id, poll, loop.time() + timeout)
        finally:
            self._unwait(dev_id, poll)

    def polled_elsewhere(self, payload: str) -> None:
        """Another process admitted a poll of the device (any thread; ``payload`` is
        ``"<origin> <admitted at> <dev_id>"``): end the device's polls here admitted
        before it. Two polls admitted at once on two processes hear of each other, and
        the later one stays."""
        try:
            origin, since, dev_id = payload.split(" ", 2)
            admitted = float(since)
        except ValueError:  # not one of ours (another version's): never kill the listener
            return
        if origin == self._origin:
            return
        with self._lock:
            for poll in list(self._waiting.get(dev_id, ())):
                if poll.since < admitted:
                    self._drop(dev_id, poll)
                    poll.end()

    def _admit(self, dev_id: str, poll: _Poll) -> None:
        """Count ``poll`` in (under ``self._lock``). At the device's cap, its oldest
        poll ends and gives up its place (so a device that lost its connection unseen
        is never refused); otherwise at the account's cap ``poll`` is refused."""
        polls = self._waiting.setdefault(dev_id, [])
        replaces = len(polls) >= self._caps.polls_per_device
        if not replaces and self._per_account[poll.account] >= self._caps.polls_per_account:
            if not polls:
                del self._waiting[dev_id]
            raise OverCap(
                "polls_per_account",
                f"account {poll.account} has {self._caps.polls_per_account} long-polls "
                f"waiting already on this server process (the cap, "
                f"{option('polls_per_account')}, shared out among --workers); "
                f"try again in {RETRY_AFTER} s",
            )
        while len(polls) >= self._caps.polls_per_device:
            oldest = polls[0]
            self._drop(dev_id, oldest)
            oldest.end()
        self._waiting.setdefault(dev_id, []).append(poll)
        self._per_account[poll.account] += 1

    async def _wait(self, dev_id: str, poll: _Poll, deadline: float) -> bytes | None:
        while True:
            # Counted in first, then looked: a delivery in between still wakes us.
            package = await self._take(dev_id)
            if package is not None or poll.ended:
                return package
            try:
                async with asyncio.timeout_at(deadline):
                    await poll.arrived.wait()
            except TimeoutError:
                return None if poll.ended else await self._take(dev_id)
            poll.arrived.clear()  # another poll for the same device may have taken it

    async def _take(self, dev_id: str) -> bytes | None:
        """:meth:`take`, off the loop when it asks the shared database."""
        if self._shared is None:
            return self.take(dev_id)
        return await anyio.to_thread.run_sync(self._shared.take_notification, dev_id)

    def _unwait(self, dev_id: str, poll: _Poll) -> None:
        with self._lock:
            self._drop(dev_id, poll)

    def _drop(self, dev_id: str, poll: _Poll) -> None:
        """Count ``poll`` out, if it is still in (under ``self._lock``)."""
        polls = self._waiting.get(dev_id, [])
        if poll in polls:
            polls.remove(poll)
            self._per_account[poll.account] -= 1
            if not self._per_account[poll.account]:
                del self._per_account[poll.account]
        if not polls:
            self._waiting.pop(dev_id, None)

    def forget(self, dev_id: str) -> None:
        if self._shared is not None:
            self._shared.forget_notifications(dev_id)
        with self._lock:
            self._mailboxes.pop(dev_id, None)
            self._listeners.pop(dev_id, None)
