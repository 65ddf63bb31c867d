"""The store interface every backend offers (in memory for notebooks, SQLite for
the standalone server). The session engine does all of its reads and writes for
one transition inside one ``transaction()``, which is what makes it atomic."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from .model import Account, AlertRecord, Device, Session, State

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, read on an index from where the previous one ended
    (keyset): it costs the page, never the items before it. ``after`` is what the
    next page starts after, ``None`` on the last page."""

    items: list[T]
    after: int | None


class StorageFault(RuntimeError):
    """The storage cannot do its job now: full, read-only, failing or damaged.

    Nothing half-done is kept (the transaction rolled back); the server answers
    503 with Retry-After, and refuses to start while it lasts (one line).
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind  # "full", "read-only", "io", "corrupt", "busy"
        self.detail = detail


class Store(Protocol):
    def transaction(self) -> AbstractContextManager[None]: ...

    def put_account(self, account: Account) -> None: ...
    def get_account(self, name: str) -> Account | None: ...

    def put_device(self, device: Device) -> None: ...
    def get_device(self, dev_id: str) -> Device | None: ...
    def delete_device(self, dev_id: str) -> None: ...
    def devices_of(self, account: str) -> list[Device]: ...

    def put_session(self, session: Session) -> None: ...
    def add_sessions(self, sessions: Iterable[Session]) -> None:
        """New sessions, many at once, as ``put_session`` one by one; a key or id
        already stored fails the whole call and adds nothing."""

    def get_session(self, key: str) -> Session | None: ...
    def session_by_id(self, session_id: str) -> Session | None:
        """The session that has (or had) this id, current or spent."""

    def sessions_of_device(self, dev_id: str, state: State) -> list[Session]:
        """Oldest first: pending sessions form a FIFO queue per device."""

    def sessions_of_account(self, account: str, state: State) -> list[Session]: ...

    def devices_page(self, account: str, after: int, limit: int) -> Page[Device]:
        """The account's devices registered after mark ``after`` (0: from the first), in
        registration order, at most ``limit``."""

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
        """Sessions of a device (``dev_id``) or of an account in ``state``, in the order
        they entered it, after mark ``after`` (0: from the first), at most ``limit``.
        ``newest_first``: the other way round, before mark ``after`` (0: from the newest)."""

    def count_pending(self, *, dev_id: str | None = None, account: str | None = None) -> int:
        """How many sessions of a device or an account are pending (expired ones not
        yet moved out included): what the caps on pending sessions count."""

    def due_sessions(self, until: float, limit: int) -> list[Session]:
        """Pending sessions whose time to live ended at or before ``until``, the earliest
        first, at most ``limit``: what the engine moves out as expired."""

    def idle_sessions(self, until: float, limit: int) -> list[Session]:
        """Active sessions whose ``idle_until`` is at or before ``until``, the earliest
        first, at most ``limit``: what the idle sweep expires (``--active-ttl``)."""

    def add_alert(self, record: AlertRecord) -> None: ...
    def alerts_of(self, dev_id: str, limit: int = 50) -> list[AlertRecord]: ...

    def put_data(self, dev_id: str, key: str, content_type: str, body: bytes) -> None: ...
    def get_data(self, dev_id: str, key: str) -> tuple[str, bytes] | None: ...
