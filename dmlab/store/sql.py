"""What the SQLite and PostgreSQL stores share: every query that reads the same in
both databases, written once, in ``?`` placeholders (``PostgresStore`` rewrites them
to psycopg's ``%s``). A subclass gives the connection handling (``transaction()``,
``_one``, ``_all``, ``_execute``) and the little SQL that really
differs, each piece with its reason where it is defined."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, ClassVar, TypeVar

from ..trace import Exchange
from .base import Page
from .model import Account, AlertRecord, Device, Session, State
from .rows import (
    DEVICE_COLUMNS,
    SESSION_COLUMNS,
    SESSION_ROW,
    alert_from,
    alert_json,
    device_from,
    session_from,
    session_row,
)

__all__ = ["TRACE_COLUMNS", "TRACE_UPSERT", "SQLStore", "SchemaVersionError", "trace_row"]

T = TypeVar("T")
_log = logging.getLogger(__name__)

#: The upsert's update of every ``sessions`` column but the key.
_SESSION_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in SESSION_ROW.split(", ")[1:])
#: A ``sessions`` row's placeholders, ``position`` (the fifth) left to the store.
_SESSION_MARKS = ", ".join(
    "{position}" if c == "position" else "?" for c in SESSION_ROW.split(", ")
)
_DEVICE_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in DEVICE_COLUMNS.split(", ")[1:])
_DEVICE_MARKS = ", ".join("?" for _ in DEVICE_COLUMNS.split(", "))

#: A kept exchange's columns, in the order of :func:`trace_row`.
TRACE_COLUMNS = (
    "seq, time, source, target, dev_id, method, path, status, session, request, response, elapsed"
)
#: Keep one exchange (a number already kept is written over, as the in-memory trace does).
TRACE_UPSERT = (
    f"INSERT INTO trace ({TRACE_COLUMNS}) "
    f"VALUES ({', '.join('?' for _ in TRACE_COLUMNS.split(', '))}) ON CONFLICT (seq) "
    f"DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in TRACE_COLUMNS.split(', ')[1:])}"
)


def trace_row(exchange: Exchange) -> tuple[Any, ...]:
    """The ``trace`` row an exchange is kept as (``TRACE_COLUMNS``' order)."""
    e = exchange
    return (e.seq, e.time, e.source, e.target, e.dev_id, e.method, e.path, e.status,
            e.session, e.request, e.response, e.elapsed)  # fmt: skip


#: The partial indexes of one state's sessions by device (schema: SQLite 6 and 7,
#: PostgreSQL 8 and 9). A device's pending or active sessions are a few entries there,
#: where ``sessions_by_device`` keeps them beside the device's whole history: at a
#: million stored sessions a page of devices (each one's pending and active count)
#: read one index page per device of a deep index (benchmarks/growth.py).
_OF_DEVICE = {State.PENDING: "sessions_pending", State.ACTIVE: "sessions_active"}


class SchemaVersionError(RuntimeError):
    """The database was written by a newer dmlab: its schema is unknown here, and
    writing to it could corrupt what that version relies on."""


class SQLStore:
    """The store contract in SQL. Methods called outside ``transaction()`` each run in
    a transaction of their own; inside one, they join it."""

    #: Where ``_warn`` says a row was skipped (a path or "PostgreSQL database …").
    _where: str
    _alerts_per_device: int

    #: The column that keeps devices in registration order: SQLite's ``rowid``, a
    #: ``BIGSERIAL`` in PostgreSQL (which has no rowid).
    _DEVICE_ORDER: ClassVar[str]
    #: ``sessions`` read on one of the partial indexes below: SQLite must be told (it
    #: would pick the covering ``sessions_by_device``, whose entries sit among the
    #: device's whole history); PostgreSQL picks it itself from the literal state.
    _INDEXED: ClassVar[str] = "sessions"
    #: The ``position`` of a session that enters a state: see :meth:`_new_position`.
    _NEXT_POSITION: ClassVar[str]
    #: How :meth:`_page` reads: marks first, or rows and marks in one statement.
    _MARKS_FIRST: ClassVar[bool]

    # What a subclass provides ---------------------------------------------------------
    def transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        raise NotImplementedError

    def _all(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        """One statement inside the open ``transaction()``."""
        raise NotImplementedError

    def _new_position(self, session: Session) -> None:
        """Run before ``put_session``'s upsert, in its transaction: whatever
        ``_NEXT_POSITION`` needs (nothing where it is a sequence)."""

    def _rows(self, columns: str, rest: str, params: tuple[Any, ...]) -> list[Any]:
        """``SELECT columns FROM rest``; a subclass whose rows may not be readable at
        all returns what it can of each (see ``SQLiteStore``)."""
        return self._all(f"SELECT {columns} FROM {rest}", params)

    def _writing(self) -> AbstractContextManager[Any]:
        """Where a store method writes: a transaction of its own, or a nested level of
        the open one (PostgreSQL: the open one itself, see ``PostgresStore``)."""
        return self.transaction()

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._writing():
            self._execute(sql, params)

    def _listing(
        self, what: str, columns: str, rest: str, params: tuple[Any, ...], decode: Callable[..., T]
    ) -> list[T]:
        """``SELECT columns FROM rest``, decoded; a row that cannot be read (text that
        is not UTF-8, JSON or values this code does not know) is skipped with a
        warning instead of failing the whole listing."""
        return self._decoded(what, self._rows(columns, rest, params), decode)

    def _decoded(self, what: str, rows: list[Any], decode: Callable[..., T]) -> list[T]:
        decoded: list[T] = []
        for row in rows:
            try:
                decoded.append(decode(row))
            except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                continue
        if len(decoded) < len(rows):
            _log.warning(
                "%s: skipped %d unreadable %s row(s)", self._where, len(rows) - len(decoded), what
            )
        return decoded

    # Accounts ------------------------------------------------------------------------
    def put_account(self, account: Account) -> None:
        self._write(
            "INSERT INTO accounts (name, password_hash) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash",
            (account.name, account.password_hash),
        )

    def get_account(self, name: str) -> Account | None:
        row = self._one("SELECT name, password_hash FROM accounts WHERE name = ?", (name,))
        return None if row is None else Account(*row)

    # Devices -------------------------------------------------------------------------
    def put_device(self, device: Device) -> None:
        # An upsert, not a delete and insert (SQLite's INSERT OR REPLACE): that would
        # cascade to the device's sessions, alerts and data, and move it to the end
        # of the registration order.
        self._write(
            f"INSERT INTO devices ({DEVICE_COLUMNS}) VALUES ({_DEVICE_MARKS}) "
            f"ON CONFLICT (dev_id) DO UPDATE SET {_DEVICE_UPDATE}",
            (
                device.dev_id,
                device.account,
                device.secret_hash,
                device.notify_key,
                device.man,
                device.mod,
                device.name,
                device.registered_at,
            ),
        )

    def get_device(self, dev_id: str) -> Device | None:
        row = self._one(f"SELECT {DEVICE_COLUMNS} FROM devices WHERE dev_id = ?", (dev_id,))
        return None if row is None else device_from(row)

    def delete_device(self, dev_id: str) -> None:
        """Its sessions (and their ids), alerts and data go with it, by cascade."""
        self._write("DELETE FROM devices WHERE dev_id = ?", (dev_id,))

    def devices_of(self, account: str) -> list[Device]:
        return self._listing(
            "device",
            DEVICE_COLUMNS,
            f"devices WHERE account = ? ORDER BY {self._DEVICE_ORDER}",
            (account,),
            device_from,
        )

    def devices_page(self, account: str, after: int, limit: int) -> Page[Device]:
        return self._page(
            "device", DEVICE_COLUMNS, "devices", self._DEVICE_ORDER, "account = ?", (account,),
            after, limit, False, device_from,
        )  # fmt: skip

    def _page(
        self,
        what: str,
        columns: str,
        table: str,
        mark: str,
        where: str,
        params: tuple[Any, ...],
        after: int,
        limit: int,
        newest_first: bool,
        decode: Callable[..., T],
    ) -> Page[T]:
        """Keyset paging on the index that ends in ``mark``: ``limit + 1`` rows (or
        marks) tell whether another page follows. In one statement, rows with their
        marks; or (``_MARKS_FIRST``) first the page's marks, read on the index alone,
        then its rows (an unreadable row, skipped, never ends a walk either way)."""
        if newest_first:
            bound, order = (f" AND {mark} < ?", "DESC") if after else ("", "DESC")
        else:
            bound, order = f" AND {mark} > ?", "ASC"
        bounded = (*params, after) if bound else params
        ordered = f"{table} WHERE {where}{bound} ORDER BY {mark} {order} LIMIT ?"
        if not self._MARKS_FIRST:
            rows = self._rows(f"{mark}, {columns}", ordered, (*bounded, limit + 1))
            kept = rows[:limit]
            items = self._decoded(what, [row[1:] for row in kept], decode)
            return Page(items, kept[-1][0] if len(rows) > limit else None)
        marks = [
            row[0] for row in self._all(f"SELECT {mark} FROM {ordered}", (*bounded, limit + 1))
        ]
        kept = marks[:limit]
        if not kept:
            return Page([], None)
        items = self._listing(
            what,
            columns,
            f"{table} WHERE {where} AND {mark} BETWEEN ? AND ? ORDER BY {mark} {order}",
            (*params, min(kept), max(kept)),
            decode,
        )
        return Page(items, kept[-1] if len(marks) > limit else None)

    # Sessions ------------------------------------------------------------------------
    def put_session(self, session: Session) -> None:
        """One upsert (and the session's ids): a session that stays in its state keeps
        its ``position``, one that enters another gets the next."""
        with self._writing():
            self._new_position(session)
            row = session_row(session, 0)
            self._execute(
                f"INSERT INTO sessions ({SESSION_ROW}) VALUES ({self._session_marks}) "
                f"ON CONFLICT (key) DO UPDATE SET {_SESSION_UPDATE}",
                (*row[:4], session.key, session.state.value, *row[5:]),
            )
            ids = session.ids
            self._execute(
                "INSERT INTO session_ids (id, key) VALUES "
                + ", ".join("(?, ?)" for _ in ids)
                + " ON CONFLICT (id) DO UPDATE SET key = excluded.key",
                tuple(value for sid in ids for value in (sid, session.key)),
            )

    @property
    def _session_marks(self) -> str:
        kept = "(SELECT position FROM sessions WHERE key = ? AND state = ?)"
        return _SESSION_MARKS.format(position=f"COALESCE({kept}, {self._NEXT_POSITION})")

    def get_session(self, key: str) -> Session | None:
        row = self._one(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE key = ?", (key,))
        return None if row is None else session_from(row)

    def session_by_id(self, session_id: str) -> Session | None:
        """The session that has (or had) this id, current or spent."""
        row = self._one(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE key = "
            "(SELECT key FROM session_ids WHERE id = ?)",
            (session_id,),
        )
        return None if row is None else session_from(row)

    def sessions_of_device(self, dev_id: str, state: State) -> list[Session]:
        """In the order they entered ``state``: pending ones form a FIFO queue per device.
        Pending and active ones are read on their state's index alone (``_OF_DEVICE``)."""
        index = _OF_DEVICE.get(state)
        if index is None:
            return self._sessions(
                "dev_id = ? AND state = ? ORDER BY position", (dev_id, state.value)
            )
        return self._listing(
            "session",
            SESSION_COLUMNS,
            f"{self._INDEXED.format(index=index)} WHERE dev_id = ? "
            f"AND state = '{state.value}' ORDER BY position",
            (dev_id,),
            session_from,
        )

    def sessions_of_account(self, account: str, state: State) -> list[Session]:
        return self._sessions("account = ? AND state = ? ORDER BY position", (account, state.value))

    def _sessions(self, where: str, params: tuple[Any, ...]) -> list[Session]:
        return self._listing(
            "session", SESSION_COLUMNS, f"sessions WHERE {where}", params, session_from
        )

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
        where, params = self._scope(dev_id, account)
        return self._page(
            "session", SESSION_COLUMNS, "sessions", "position", f"{where} AND state = ?",
            (*params, state.value), after, limit, newest_first, session_from,
        )  # fmt: skip

    @staticmethod
    def _scope(dev_id: str | None, account: str | None) -> tuple[str, tuple[str]]:
        """The condition that reads one device's or one account's index."""
        if dev_id is not None:
            return "dev_id = ?", (dev_id,)
        if account is not None:
            return "account = ?", (account,)
        raise TypeError("a device or an account is needed")

    def count_pending(self, *, dev_id: str | None = None, account: str | None = None) -> int:
        where, params = self._scope(dev_id, account)
        # The state written out, not bound: a generic plan (PostgreSQL) could not use
        # the partial index of pending sessions.
        table = "sessions" if dev_id is None else self._INDEXED.format(index="sessions_pending")
        row = self._one(f"SELECT count(*) FROM {table} WHERE {where} AND state = 'pending'", params)
        return 0 if row is None else int(row[0])

    def due_sessions(self, until: float, limit: int) -> list[Session]:
        return self._sessions(
            "state = 'pending' AND expires_at IS NOT NULL AND expires_at <= ? "
            "ORDER BY expires_at LIMIT ?",
            (until, max(limit, 0)),
        )

    def idle_sessions(self, until: float, limit: int) -> list[Session]:
        """Active sessions whose idle deadline is at or before ``until``, the earliest
        first, at most ``limit`` (an indexed range, whatever else is stored)."""
        return self._sessions(
            "state = 'active' AND idle_until <= ? ORDER BY idle_until LIMIT ?",
            (until, max(limit, 0)),
        )

    # Alerts and device data ----------------------------------------------------------
    def add_alert(self, record: AlertRecord) -> None:
        """Keeps the newest ``alerts_per_device`` of the device, like a bounded deque."""
        with self._writing():
            self._execute(
                "INSERT INTO alerts (dev_id, at, session_key, alert) VALUES (?, ?, ?, ?)",
                (record.dev_id, record.at, record.session_key, alert_json(record.alert)),
            )
            self._execute(
                "DELETE FROM alerts WHERE dev_id = ? AND id <= (SELECT id FROM alerts "
                "WHERE dev_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (record.dev_id, record.dev_id, self._alerts_per_device),
            )

    def alerts_of(self, dev_id: str, limit: int = 50) -> list[AlertRecord]:
        """The newest ``limit`` alerts of a device, oldest first."""
        rows = self._all(
            "SELECT dev_id, alert, at, session_key FROM alerts WHERE dev_id = ? "
            "ORDER BY id DESC LIMIT ?",
            (dev_id, max(limit, 0)),  # SQLite would read a negative LIMIT as "no limit"
        )
        return [AlertRecord(d, alert_from(a), at, key) for d, a, at, key in reversed(rows)]

    def put_data(self, dev_id: str, key: str, content_type: str, body: bytes) -> None:
        self._write(
            "INSERT INTO data (dev_id, key, content_type, body) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (dev_id, key) DO UPDATE SET content_type = excluded.content_type, "
            "body = excluded.body",
            (dev_id, key, content_type, bytes(body)),
        )

    def get_data(self, dev_id: str, key: str) -> tuple[str, bytes] | None:
        row = self._one(
            "SELECT content_type, body FROM data WHERE dev_id = ? AND key = ?", (dev_id, key)
        )
        return None if row is None else (row[0], bytes(row[1]))

    def clear_trace(self) -> None:
        self._write("DELETE FROM trace", ())
