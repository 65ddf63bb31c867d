"""An in-memory store: dictionaries and indexes behind one re-entrant lock.

The listings' indexes are sorted by a mark (a counter, as the SQL stores' ``position``
and ``rowid``), so a page starts where the previous one ended in O(log n).

A completed session is kept with its rounds as the SQL stores' compact JSON text
(:class:`_Completed`), read back when asked for: every status a device reported, with
its data, as objects was most of what a finished session held.

Sessions are indexed by one sorted list per state for devices and one for accounts,
of ``(dev_id or account, mark, key)``: a device's sessions in a state are one run of
it. An index per device and state (three sorted dictionaries each, over 2 KiB) was a
fifth of what a fleet of 100,000 devices with one session each held.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sortedcontainers import SortedDict, SortedList

from .base import Page
from .model import Account, AlertRecord, Device, Session, State
from .rows import rounds_from, rounds_json


def _page(index: SortedDict | None, after: int, limit: int, newest_first: bool) -> Page[str]:
    """Up to ``limit`` values of ``index`` (mark -> key) after mark ``after`` (before
    it, newest first; 0: from the end)."""
    if not index:
        return Page([], None)
    if newest_first:
        marks = index.irange(maximum=after or None, inclusive=(True, False), reverse=True)
    else:
        marks = index.irange(minimum=after, inclusive=(False, True))
    taken = list(itertools.islice(marks, limit + 1))
    more = len(taken) > limit
    taken = taken[:limit]
    return Page([index[m] for m in taken], taken[-1] if more else None)


@dataclasses.dataclass(frozen=True, slots=True)
class _Completed:
    """A completed session as kept: the record without its rounds, and the rounds as
    compact JSON text (2 KiB of objects for an inventory became 0.4 KiB of text)."""

    session: Session
    rounds: str

    @classmethod
    def of(cls, session: Session) -> _Completed:
        return cls(dataclasses.replace(session, rounds=()), rounds_json(session.rounds))

    def unpack(self) -> Session:
        return dataclasses.replace(self.session, rounds=rounds_from(self.rounds))


def _unpacked(kept: Session | _Completed | None) -> Session | None:
    return kept.unpack() if isinstance(kept, _Completed) else kept


#: An entry of a session index: (dev_id or account, mark, session key).
Entry = tuple[str, int, str]


def _run(index: SortedList, scope: str) -> Iterator[Entry]:
    """The entries of one device (or account) in an index, oldest first."""
    return index.irange((scope,), (scope, math.inf))


def _session_page(
    index: SortedList, scope: str, after: int, limit: int, newest_first: bool
) -> Page[str]:
    """As :func:`_page`, over the entries of ``scope`` in a session index."""
    if newest_first:
        end = (scope, after) if after else (scope, math.inf)
        entries = index.irange((scope,), end, inclusive=(True, False), reverse=True)
    else:
        entries = index.irange((scope, after + 1), (scope, math.inf))
    taken: list[Entry] = list(itertools.islice(entries, limit + 1))
    more = len(taken) > limit
    taken = taken[:limit]
    return Page([key for _, _, key in taken], taken[-1][1] if more else None)


class MemoryStore:
    """Holds everything in dictionaries, indexed so that no lookup scans other
    devices' sessions. ``transaction()`` is the lock; every method takes it too,
    so single calls are safe from any thread."""

    def __init__(self, *, alerts_per_device: int = 200) -> None:
        self._lock = threading.RLock()
        self._accounts: dict[str, Account] = {}
        self._devices: dict[str, Device] = {}
        self._marks = itertools.count(1)
        # account -> {registration mark: dev_id}; dev_id -> its mark
        self._devices_by_account: dict[str, SortedDict] = defaultdict(SortedDict)
        self._device_mark: dict[str, int] = {}
        self._sessions: dict[str, Session | _Completed] = {}
        self._key_by_id: dict[str, str] = {}
        # state -> (dev_id, mark, key) sorted, and (account, mark, key): the mark taken
        # when the session entered that state (the SQL stores' `position`); key -> mark.
        self._by_device: dict[State, SortedList] = {state: SortedList() for state in State}
        self._by_account: dict[State, SortedList] = {state: SortedList() for state in State}
        self._session_mark: dict[str, int] = {}
        # Pending sessions with a time to live: (expires_at, key), a heap; stale
        # entries (started, or re-put) are dropped when they reach the top.
        self._expiring: list[tuple[float, str]] = []
        # Keys of active sessions, for the idle sweep: few (expiry bounds them).
        self._active: dict[str, None] = {}
        # A list, cut to the newest ``alerts_per_device``: a deque is 760 bytes from
        # its first alert on, and most devices of a fleet have one or two.
        self._alerts: dict[str, list[AlertRecord]] = {}
        self._alerts_per_device = alerts_per_device
        self._data: dict[tuple[str, str], tuple[str, bytes]] = {}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            yield

    # Accounts
    def put_account(self, account: Account) -> None:
        with self._lock:
            self._accounts[account.name] = account

    def get_account(self, name: str) -> Account | None:
        return self._accounts.get(name)

    # Devices
    def put_device(self, device: Device) -> None:
        with self._lock:
            old = self._devices.get(device.dev_id)
            if old is not None and old.account != device.account:
                self._devices_by_account[old.account].pop(self._device_mark[device.dev_id])
                old = None
            self._devices[device.dev_id] = device
            if old is None:
                mark = next(self._marks)
                self._device_mark[device.dev_id] = mark
                self._devices_by_account[device.account][mark] = device.dev_id

    def get_device(self, dev_id: str) -> Device | None:
        return self._devices.get(dev_id)

    def delete_device(self, dev_id: str) -> None:
        with self._lock:
            device = self._devices.pop(dev_id, None)
            if device is None:
                return
            self._devices_by_account[device.account].pop(self._device_mark.pop(dev_id), None)
            for state in State:
                for entry in list(_run(self._by_device[state], dev_id)):
                    _, mark, key = entry
                    self._by_device[state].remove(entry)
                    session = _unpacked(self._sessions.pop(key))
                    assert session is not None
                    self._active.pop(key, None)
                    del self._session_mark[key]
                    self._by_account[state].discard((session.account, mark, key))
                    for sid in session.ids:
                        self._key_by_id.pop(sid, None)
            self._alerts.pop(dev_id, None)
            for data_key in [k for k in self._data if k[0] == dev_id]:
                del self._data[data_key]

    def devices_of(self, account: str) -> list[Device]:
        with self._lock:
            return [self._devices[d] for d in self._devices_by_account.get(account, {}).values()]

    def devices_page(self, account: str, after: int, limit: int) -> Page[Device]:
        with self._lock:
            page = _page(self._devices_by_account.get(account), after, limit, False)
            return Page([self._devices[d] for d in page.items], page.after)

    # Sessions
    def put_session(self, session: Session) -> None:
        with self._lock:
            kept = self._sessions.get(session.key)
            old = kept.session if isinstance(kept, _Completed) else kept
            if old is None or old.state is not session.state:
                if old is not None:
                    mark = self._session_mark[old.key]
                    self._by_device[old.state].discard((old.dev_id, mark, old.key))
                    self._by_account[old.state].discard((old.account, mark, old.key))
                mark = next(self._marks)
                self._session_mark[session.key] = mark
                self._by_device[session.state].add((session.dev_id, mark, session.key))
                self._by_account[session.state].add((session.account, mark, session.key))
            done = session.state is State.COMPLETED
            self._sessions[session.key] = _Completed.of(session) if done else session
            for sid in session.ids:
                self._key_by_id[sid] = session.key
            if session.state is State.PENDING and session.expires_at is not None:
                heapq.heappush(self._expiring, (session.expires_at, session.key))
            if session.state is State.ACTIVE:
                self._active[session.key] = None
            else:
                self._active.pop(session.key, None)

    def add_sessions(self, sessions: Iterable[Session]) -> None:
        """New sessions, many at once: as ``put_session`` one by one. A key or id
        already stored fails the whole call (``ValueError``) and adds nothing."""
        with self._lock:
            batch = list(sessions)
            keys = [s.key for s in batch]
            ids = [sid for s in batch for sid in s.ids]
            if (
                len(set(keys)) < len(keys)
                or len(set(ids)) < len(ids)
                or any(k in self._sessions for k in keys)
                or any(sid in self._key_by_id for sid in ids)
            ):
                raise ValueError("add_sessions: a key or id is already stored")
            for session in batch:
                self.put_session(session)

    def get_session(self, key: str) -> Session | None:
        return _unpacked(self._sessions.get(key))

    def session_by_id(self, session_id: str) -> Session | None:
        with self._lock:
            key = self._key_by_id.get(session_id)
            return _unpacked(self._sessions.get(key)) if key else None

    def _read(self, keys: Iterable[str]) -> list[Session]:
        kept = map(self._sessions.__getitem__, keys)
        return [s.unpack() if isinstance(s, _Completed) else s for s in kept]

    def sessions_of_device(self, dev_id: str, state: State) -> list[Session]:
        with self._lock:
            return self._read(k for _, _, k in _run(self._by_device[state], dev_id))

    def sessions_of_account(self, account: str, state: State) -> list[Session]:
        with self._lock:
            return self._read(k for _, _, k in _run(self._by_account[state], account))

    def _index(
        self, state: State, dev_id: str | None, account: str | None
    ) -> tuple[SortedList, str]:
        if dev_id is not None:
            return self._by_device[state], dev_id
        if account is not None:
            return self._by_account[state], account
        raise TypeError("a device or an account is needed")

    def sessions_page(
        self,
        state: State,
        *,
        dev_id: str | None = None,
        account: str | None = None,
        after: int = 0,
        limit: int,
        newest_first: bool = False,
    ) -> Page[Session]:
        with self._lock:
            index, scope = self._index(state, dev_id, account)
            page = _session_page(index, scope, after, limit, newest_first)
            return Page(self._read(page.items), page.after)

    def count_pending(self, *, dev_id: str | None = None, account: str | None = None) -> int:
        with self._lock:
            index, scope = self._index(State.PENDING, dev_id, account)
            return index.bisect_left((scope, math.inf)) - index.bisect_left((scope,))

    def due_sessions(self, until: float, limit: int) -> list[Session]:
        with self._lock:
            due: list[Session] = []
            seen: set[str] = set()
            heap = self._expiring
            while heap and heap[0][0] <= until and len(due) < limit:
                at, key = heapq.heappop(heap)
                session = self._sessions.get(key)
                if (
                    not isinstance(session, Session)
                    or session.state is not State.PENDING
                    or session.expires_at != at
                    or key in seen
                ):
                    continue  # stale: started, deleted, or put again since
                seen.add(key)
                due.append(session)
            for session in due:  # still pending until the caller moves them out
                heapq.heappush(heap, (session.expires_at or 0.0, session.key))
            return due

    def idle_sessions(self, until: float, limit: int) -> list[Session]:
        """Active sessions whose idle deadline is at or before ``until``, the earliest
        first, at most ``limit``."""
        with self._lock:
            due = [
                s
                for s in map(self._sessions.__getitem__, self._active)
                if isinstance(s, Session) and s.idle_until is not None and s.idle_until <= until
            ]
        return sorted(due, key=lambda s: s.idle_until or 0.0)[: max(limit, 0)]

    # Alerts and device data
    def add_alert(self, record: AlertRecord) -> None:
        with self._lock:
            alerts = self._alerts.setdefault(record.dev_id, [])
            alerts.append(record)
            if len(alerts) > self._alerts_per_device:
                del alerts[0]

    def alerts_of(self, dev_id: str, limit: int = 50) -> list[AlertRecord]:
        with self._lock:
            return self._alerts.get(dev_id, [])[-limit:]

    def put_data(self, dev_id: str, key: str, content_type: str, body: bytes) -> None:
        with self._lock:
            self._data[(dev_id, key)] = (content_type, body)

    def get_data(self, dev_id: str, key: str) -> tuple[str, bytes] | None:
        return self._data.get((dev_id, key))
