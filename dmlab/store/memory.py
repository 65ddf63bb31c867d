"""An in-memory store: dictionaries and indexes behind one re-entrant lock."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from .model import Account, AlertRecord, Device, Session, State


class MemoryStore:
    """Holds everything in dictionaries, indexed so that no lookup scans other
    devices' sessions. ``transaction()`` is the lock; every method takes it too,
    so single calls are safe from any thread."""

    def __init__(self, *, alerts_per_device: int = 200) -> None:
        self._lock = threading.RLock()
        self._accounts: dict[str, Account] = {}
        self._devices: dict[str, Device] = {}
        self._devices_by_account: dict[str, dict[str, None]] = defaultdict(dict)
        self._sessions: dict[str, Session] = {}
        self._key_by_id: dict[str, str] = {}
        # (dev_id, state) -> session keys in creation order (dicts keep order).
        self._by_device: dict[tuple[str, State], dict[str, None]] = defaultdict(dict)
        self._by_account: dict[tuple[str, State], dict[str, None]] = defaultdict(dict)
        self._alerts: dict[str, deque[AlertRecord]] = defaultdict(
            lambda: deque(maxlen=alerts_per_device)
        )
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
            self._devices[device.dev_id] = device
            self._devices_by_account[device.account][device.dev_id] = None

    def get_device(self, dev_id: str) -> Device | None:
        return self._devices.get(dev_id)

    def delete_device(self, dev_id: str) -> None:
        with self._lock:
            device = self._devices.pop(dev_id, None)
            if device is None:
                return
            self._devices_by_account[device.account].pop(dev_id, None)
            for state in State:
                for key in self._by_device.pop((dev_id, state), {}):
                    session = self._sessions.pop(key)
                    self._by_account[(session.account, state)].pop(key, None)
                    for sid in session.ids:
                        self._key_by_id.pop(sid, None)
            self._alerts.pop(dev_id, None)
            for data_key in [k for k in self._data if k[0] == dev_id]:
                del self._data[data_key]

    def devices_of(self, account: str) -> list[Device]:
        with self._lock:
            return [self._devices[d] for d in self._devices_by_account.get(account, {})]

    # Sessions
    def put_session(self, session: Session) -> None:
        with self._lock:
            old = self._sessions.get(session.key)
            if old is not None and old.state is not session.state:
                self._by_device[(old.dev_id, old.state)].pop(old.key, None)
                self._by_account[(old.account, old.state)].pop(old.key, None)
            self._sessions[session.key] = session
            self._by_device[(session.dev_id, session.state)][session.key] = None
            self._by_account[(session.account, session.state)][session.key] = None
            for sid in session.ids:
                self._key_by_id[sid] = session.key

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
        return self._sessions.get(key)

    def session_by_id(self, session_id: str) -> Session | None:
        with self._lock:
            key = self._key_by_id.get(session_id)
            return self._sessions.get(key) if key else None

    def sessions_of_device(self, dev_id: str, state: State) -> list[Session]:
        with self._lock:
            return [self._sessions[k] for k in self._by_device.get((dev_id, state), {})]

    def sessions_of_account(self, account: str, state: State) -> list[Session]:
        with self._lock:
            return [self._sessions[k] for k in self._by_account.get((account, state), {})]

    # Alerts and device data
    def add_alert(self, record: AlertRecord) -> None:
        with self._lock:
            self._alerts[record.dev_id].append(record)

    def alerts_of(self, dev_id: str, limit: int = 50) -> list[AlertRecord]:
        with self._lock:
            return list(self._alerts.get(dev_id, ()))[-limit:]

    def put_data(self, dev_id: str, key: str, content_type: str, body: bytes) -> None:
        with self._lock:
            self._data[(dev_id, key)] = (content_type, body)

    def get_data(self, dev_id: str, key: str) -> tuple[str, bytes] | None:
        return self._data.get((dev_id, key))
