"""A SQLite store for the standalone server: the same interface as ``MemoryStore``,
but what is committed outlives the process.

One connection serves every thread, behind a re-entrant lock: the server calls the
store from its event loop thread and the lab from others, and SQLite itself only
ever sees one caller at a time. ``transaction()`` holds that lock from ``BEGIN`` to
``COMMIT``, so a transition of the session engine is atomic both for other threads
and, on disk, against a crash.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..trace import Exchange, exchange_from_row
from .base import StorageFault
from .model import Session
from .rows import SESSION_ROW, chunked, session_row
from .sql import TRACE_COLUMNS, TRACE_UPSERT, SchemaVersionError, SQLStore, trace_row

_SESSION_MARKS = ", ".join("?" for _ in SESSION_ROW.split(", "))

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "SchemaVersionError"]

_log = logging.getLogger(__name__)
T = TypeVar("T")

#: The schema this code writes, kept in ``PRAGMA user_version``.
SCHEMA_VERSION = 7


#: How often the WAL is checkpointed and truncated (seconds), besides after a fault.
CHECKPOINT_EVERY = 60.0
#: Below this much free space beside the database, the server does not start.
MIN_FREE = 16 * 1024 * 1024
#: Databases up to this size get a full ``integrity_check`` at start-up (it also
#: compares every index with its table, which ``quick_check`` does not).
FULL_CHECK_UP_TO = 256 * 1024 * 1024

# SQLite primary result codes that mean "the storage", not "the statement".
_FAULTS = {5: "busy", 8: "read-only", 10: "io", 11: "corrupt", 13: "full", 14: "io", 26: "corrupt"}
_FAULT_WORDS = {
    "busy": "is locked by another process",
    "read-only": "is read-only",
    "io": "cannot be read or written (I/O error)",
    "corrupt": "is damaged",
    "full": "has no space left (disk full)",
}


# Extended result codes whose primary code says less than they do.
_EXTENDED_FAULTS = {
    # SQLITE_IOERR_SHMSIZE: the -shm file could not grow, which SQLite's
    # documentation says "may indicate that the underlying filesystem volume is out
    # of space" (what a fresh start on a full disk meets first, in WAL mode).
    4874: "full",
}


def storage_fault(path: str, exc: sqlite3.Error) -> StorageFault | None:
    """The :class:`StorageFault` an SQLite error stands for, if it is one."""
    code = getattr(exc, "sqlite_errorcode", None)
    kind = _EXTENDED_FAULTS.get(code) or _FAULTS.get(code & 0xFF) if isinstance(code, int) else None
    if kind is None:
        text = str(exc).lower()
        kind = next(
            (
                k
                for k, words in (
                    ("full", "disk is full"),
                    ("read-only", "readonly"),
                    ("io", "disk i/o error"),
                    ("corrupt", "malformed"),
                    ("corrupt", "not a database"),
                )
                if words in text
            ),
            None,
        )
    if kind is None:
        return None
    return StorageFault(kind, f"{path} {_FAULT_WORDS[kind]}: {exc}")


_SCHEMA_1 = (
    """CREATE TABLE accounts (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL
    )""",
    # No foreign key to accounts: MemoryStore accepts a device of any account.
    """CREATE TABLE devices (
        dev_id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        notify_key BLOB NOT NULL,
        man TEXT NOT NULL,
        mod TEXT NOT NULL,
        name TEXT NOT NULL,
        registered_at REAL NOT NULL
    )""",
    # Entries are (account, rowid): devices_of() reads them in registration order.
    "CREATE INDEX devices_by_account ON devices (account)",
    # `position` is when the session entered its current state (a global counter,
    # see `counters`): listings are in that order, as MemoryStore's are. Ordering by
    # created_at instead would list completed sessions by creation, not completion,
    # and would leave sessions created within one clock tick in no defined order.
    """CREATE TABLE sessions (
        key TEXT PRIMARY KEY,
        dev_id TEXT NOT NULL REFERENCES devices (dev_id) ON DELETE CASCADE,
        account TEXT NOT NULL,
        state TEXT NOT NULL,
        position INTEGER NOT NULL,
        created_at REAL NOT NULL,
        origin TEXT NOT NULL,
        result TEXT,
        session_id TEXT NOT NULL,
        started_at REAL,
        ended_at REAL,
        expires_at REAL,
        reason TEXT NOT NULL,
        job TEXT NOT NULL,
        rounds TEXT NOT NULL
    )""",
    "CREATE INDEX sessions_by_device ON sessions (dev_id, state, position)",
    "CREATE INDEX sessions_by_account ON sessions (account, state, position)",
    # Every id a session has had, spent ones included, so that a late report on a
    # spent id finds its session and gets a 409 rather than a 404.
    """CREATE TABLE session_ids (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL REFERENCES sessions (key) ON DELETE CASCADE
    ) WITHOUT ROWID""",
    # Without it, deleting a session would scan every id to cascade.
    "CREATE INDEX session_ids_by_key ON session_ids (key)",
    """CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        dev_id TEXT NOT NULL REFERENCES devices (dev_id) ON DELETE CASCADE,
        at REAL NOT NULL,
        session_key TEXT,
        alert TEXT NOT NULL
    )""",
    "CREATE INDEX alerts_by_device ON alerts (dev_id, id)",
    """CREATE TABLE data (
        dev_id TEXT NOT NULL REFERENCES devices (dev_id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        content_type TEXT NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (dev_id, key)
    )""",
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "INSERT INTO counters (name, value) VALUES ('session_position', 0)",
)


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    """An empty database gets the first schema."""
    for statement in _SCHEMA_1:
        conn.execute(statement)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Version 2 keeps the trace (one row per exchange, by ``seq``), so a restarted
    server still shows what happened before: see ``Trace(sink=store)``."""
    conn.execute("""CREATE TABLE trace (
        seq INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        source TEXT NOT NULL,
        target TEXT NOT NULL,
        dev_id TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        status INTEGER NOT NULL,
        session TEXT NOT NULL,
        request TEXT NOT NULL,
        response TEXT NOT NULL
    )""")


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Version 3 keeps how long each exchange took (HAR timings; where the diagram
    draws a notification); older rows read as 0, "not known"."""
    conn.execute("ALTER TABLE trace ADD COLUMN elapsed REAL NOT NULL DEFAULT 0")


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """Version 4 indexes the pending sessions that have a time to live by when it ends,
    so moving out the expired ones reads only those (lab choice paging: no listing
    may cost every pending session)."""
    conn.execute(
        "CREATE INDEX IF NOT EXISTS sessions_expiring ON sessions (expires_at) "
        "WHERE state = 'pending' AND expires_at IS NOT NULL"
    )


def _migrate_4_to_5(conn: sqlite3.Connection) -> None:
    """Version 5 gives each active session an idle deadline (``--active-ttl``), indexed
    for the sweep that expires them. Sessions left active by an older dmlab get the
    deadline the default (300 s, a literal: migrations never change) gives from their
    start, so none stays active forever."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(sessions)")}
    if "idle_until" not in columns:
        conn.execute("ALTER TABLE sessions ADD COLUMN idle_until REAL")
    conn.execute(
        "UPDATE sessions SET idle_until = COALESCE(started_at, created_at) + 300 "
        "WHERE state = 'active' AND idle_until IS NULL"
    )
    conn.execute(
        "CREATE INDEX IF NOT EXISTS sessions_idle ON sessions (idle_until) WHERE state = 'active'"
    )


def _migrate_5_to_6(conn: sqlite3.Connection) -> None:
    """Version 6 indexes the pending sessions alone, by device: a page of devices
    counts each one's pending sessions, and in ``sessions_by_device`` those entries
    sit beside each device's whole history, one page apart per device once the
    history is long; here they stay together in a few pages (benchmarks/growth.py)."""
    conn.execute(
        "CREATE INDEX IF NOT EXISTS sessions_pending ON sessions (dev_id, position) "
        "WHERE state = 'pending'"
    )


def _migrate_6_to_7(conn: sqlite3.Connection) -> None:
    """Version 7 indexes the active sessions alone, by device, as version 6 does the
    pending ones: a page of devices also counts each one's active sessions."""
    conn.execute(
        "CREATE INDEX IF NOT EXISTS sessions_active ON sessions (dev_id, position) "
        "WHERE state = 'active'"
    )


#: ``MIGRATIONS[n]`` takes a database from version ``n`` to ``n + 1``.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    0: _migrate_0_to_1,
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
    4: _migrate_4_to_5,
    5: _migrate_5_to_6,
    6: _migrate_6_to_7,
}


class SQLiteStore(SQLStore):
    """Keeps everything in one SQLite file, indexed so that no lookup scans other
    devices' sessions. Methods called outside ``transaction()`` each run in a
    transaction of their own; inside one, they join it."""

    _DEVICE_ORDER = "rowid"
    _INDEXED = "sessions INDEXED BY {index}"
    #: SQLite has no sequences: a counter row, moved on by :meth:`_new_position`.
    _NEXT_POSITION = "(SELECT value FROM counters WHERE name = 'session_position')"
    #: A statement is a function call here, but each costs by its columns (Python's
    #: sqlite3 describes them on every execute): an empty page, the usual case, ends
    #: at the index-only read of its marks, at half the cost of reading rows.
    _MARKS_FIRST = True

    def __init__(
        self, path: str | os.PathLike[str], *, alerts_per_device: int = 200, timeout: float = 5.0
    ) -> None:
        if alerts_per_device < 0:
            raise ValueError("alerts_per_device must not be negative")
        self.path = self._where = os.fspath(path)
        self._alerts_per_device = alerts_per_device
        self._lock = threading.RLock()
        self._depth = 0  # transaction nesting; only touched by the lock's owner
        self._faulted = False  # a storage fault since the last checkpoint
        self._checkpointed = time.monotonic()
        # The file holds per-device notification keys: owner only. SQLite gives
        # the WAL and shared-memory files the database file's mode.
        if self.path != ":memory:" and not os.path.exists(self.path):
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        # isolation_level=None: no implicit BEGINs; transaction() says when.
        # `timeout` is how long BEGIN IMMEDIATE waits for another process' write.
        conn = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            # WAL: readers in other processes do not block the server's writes.
            conn.execute("PRAGMA journal_mode = WAL")
            # In WAL mode a commit has written its pages to the WAL file (to the OS)
            # before COMMIT returns, so NORMAL keeps every committed change when the
            # process is killed, even with SIGKILL; only a power cut or OS crash may
            # lose the last commits (never corrupting the file). FULL would fsync on
            # every commit, on the server's event loop thread, to also survive a
            # power cut: more than a lab needs, whose devices retry anyway.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # After a checkpoint the WAL is cut back to this size (bytes).
            conn.execute("PRAGMA journal_size_limit = 67108864")
            self._conn: sqlite3.Connection | None = conn
            self._migrate()
            self._restrict_files()
        except sqlite3.Error as exc:
            conn.close()
            self._conn = None
            fault = storage_fault(self.path, exc)
            if fault is None:
                raise
            raise fault from exc
        except BaseException:
            conn.close()
            self._conn = None
            raise

    def _restrict_files(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            if self.path != ":memory:" and os.path.exists(self.path + suffix):
                os.chmod(self.path + suffix, 0o600)

    def check(self, *, min_free: int = MIN_FREE) -> None:
        """Start-up check: raise :class:`StorageFault` (one clear line) if the file
        is damaged, the disk is (nearly) full, or a write does not go through."""
        with self._lock:
            conn = self._db()
            try:
                problems = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
                if problems == ["ok"] and os.path.getsize(self.path) <= FULL_CHECK_UP_TO:
                    problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            except sqlite3.Error as exc:
                self._raise_fault(exc)
                raise
        if problems != ["ok"]:
            first = " ".join(" ".join(problems).split())[:200]  # one line
            raise StorageFault(
                "corrupt",
                f"{self.path} is damaged (PRAGMA integrity_check: {first}): "
                "restore a backup, or move the file aside to start afresh",
            )
        directory = os.path.dirname(os.path.abspath(self.path))
        stat = os.statvfs(directory)
        if stat.f_bavail * stat.f_frsize < min_free:
            raise StorageFault(
                "full",
                f"{directory} has less than {min_free // (1024 * 1024)} MiB free: "
                "free some space first",
            )
        with self.transaction():  # the write probe
            self._db().execute(
                "INSERT INTO counters (name, value) VALUES ('write_probe', 1) "
                "ON CONFLICT (name) DO UPDATE SET value = value + 1"
            )
        self.checkpoint()

    def checkpoint(self) -> None:
        """Move the WAL into the database and cut it back (after a fault, the WAL
        would otherwise keep the size it grew to until the disk filled)."""
        with self._lock:
            if self._conn is None or self._depth:
                return
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error as exc:
                _log.warning("%s: checkpoint failed: %s", self.path, exc)
                return
            self._faulted = False
            self._checkpointed = time.monotonic()

    # Lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (waiting for a transaction in another thread to end)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._db().execute("PRAGMA user_version").fetchone()[0]

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError(f"the store {self.path!r} is closed")
        return self._conn

    def _migrate(self) -> None:
        # Inside one write transaction: two processes opening a new file at once
        # cannot both create the schema, and a failed migration leaves none of it.
        with self.transaction():
            conn = self._db()
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{self.path} has store schema version {version}, but this dmlab only "
                    f"knows versions up to {SCHEMA_VERSION}: it was written by a newer "
                    "dmlab. Upgrade dmlab, or use another data directory."
                )
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                version += 1
                conn.execute(f"PRAGMA user_version = {version:d}")

    # Transactions --------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Re-entrant. The outermost level is ``BEGIN IMMEDIATE`` … ``COMMIT`` (taking
        the write lock up front, so a read-modify-write never fails half-way with
        "database is locked"); inner levels are savepoints, so they never commit
        early, and one that raises undoes only its own writes."""
        with self._lock:
            conn = self._db()
            if self._depth == 0:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    self._depth = 1
                    try:
                        yield
                    except BaseException:
                        self._depth = 0
                        self._rollback(conn)
                        raise
                    self._depth = 0
                    try:
                        conn.execute("COMMIT")
                    except BaseException:
                        self._rollback(conn)
                        raise
                except sqlite3.Error as exc:
                    self._raise_fault(exc)
                    raise
                if self._faulted or time.monotonic() - self._checkpointed > CHECKPOINT_EVERY:
                    self.checkpoint()
            else:
                name = f"level{self._depth}"
                conn.execute(f"SAVEPOINT {name}")
                self._depth += 1
                try:
                    yield
                except BaseException:
                    self._depth -= 1
                    if conn.in_transaction:
                        conn.execute(f"ROLLBACK TO {name}")
                        conn.execute(f"RELEASE {name}")
                    raise
                self._depth -= 1
                conn.execute(f"RELEASE {name}")

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        # Some errors (a full disk, say) make SQLite roll back on its own.
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the error that made us roll back is the one to report

    def _raise_fault(self, exc: sqlite3.Error) -> None:
        """Raise a storage fault as :class:`StorageFault` (and owe a checkpoint);
        return for any other error, for the caller to re-raise as it is."""
        fault = storage_fault(self.path, exc)
        if fault is not None:
            self._faulted = True
            raise fault from exc

    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            try:
                return self._db().execute(sql, params).fetchone()
            except sqlite3.Error as exc:
                self._raise_fault(exc)
                raise

    def _all(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                self._raise_fault(exc)
                raise

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        self._db().execute(sql, params)

    def _new_position(self, session: Session) -> None:
        self._execute(
            "UPDATE counters SET value = value + 1 WHERE name = 'session_position' "
            "AND NOT EXISTS (SELECT 1 FROM sessions WHERE key = ? AND state = ?)",
            (session.key, session.state.value),
        )

    def _rows(self, columns: str, rest: str, params: tuple[Any, ...]) -> list[Any]:
        """SQLite hands back whatever text was stored, and text that is not UTF-8
        stops ``fetchall()`` at that row: then the rows are read one by one, an
        unreadable one as ``None`` (which no decoder accepts)."""
        try:
            return super()._rows(columns, rest, params)
        except sqlite3.OperationalError:
            pass
        table = rest.split()[0]
        rows: list[Any] = []
        for (rowid,) in self._all(f"SELECT {table}.rowid FROM {rest}", params):
            try:
                rows.append(self._one(f"SELECT {columns} FROM {table} WHERE rowid = ?", (rowid,)))
            except sqlite3.OperationalError:
                rows.append(None)
        return rows

    def add_sessions(self, sessions: Iterable[Session]) -> None:
        """New sessions, many at once (an import; a benchmark's stored history): the
        rows ``put_session`` would write one by one, in their order, in one transaction.
        A key or id already stored fails the whole call and adds nothing."""
        with self.transaction():
            conn = self._db()
            for chunk in chunked(sessions, 10_000):
                (last,) = conn.execute(
                    "UPDATE counters SET value = value + ? WHERE name = 'session_position' "
                    "RETURNING value",
                    (len(chunk),),
                ).fetchone()
                first = last - len(chunk) + 1
                conn.executemany(
                    f"INSERT INTO sessions ({SESSION_ROW}) VALUES ({_SESSION_MARKS})",
                    (session_row(s, first + i) for i, s in enumerate(chunk)),
                )
                conn.executemany(
                    "INSERT INTO session_ids (id, key) VALUES (?, ?)",
                    ((sid, s.key) for s in chunk for sid in s.ids),
                )

    # The trace (a ``TraceSink``) ----------------------------------------------------------
    def append_trace(self, exchange: Exchange, limit: int) -> None:
        """Keep one exchange, and only the newest ``limit`` (as the in-memory trace)."""
        with self.transaction():
            conn = self._db()
            conn.execute(TRACE_UPSERT, trace_row(exchange))
            conn.execute("DELETE FROM trace WHERE seq <= ?", (exchange.seq - limit,))

    def load_trace(self, limit: int) -> list[Exchange]:
        """The newest ``limit`` exchanges, oldest first. A row that is not a valid
        exchange (bad UTF-8, wrong types) is skipped with one warning: the trace is
        a record of the past, never a reason not to start."""
        # Text read as bytes: SQLite hands back whatever was stored, and a decode
        # error inside fetchall() would lose every row, not just the bad one.
        columns = ", ".join(
            c if c in ("seq", "time", "status", "elapsed") else f"CAST({c} AS BLOB)"
            for c in TRACE_COLUMNS.split(", ")
        )
        rows = self._all(f"SELECT {columns} FROM trace ORDER BY seq DESC LIMIT ?", (max(limit, 0),))
        exchanges = [exchange_from_row(row) for row in reversed(rows)]
        kept = [e for e in exchanges if e is not None]
        if len(kept) < len(exchanges):
            _log.warning(
                "%s: skipped %d unreadable trace row(s)", self.path, len(exchanges) - len(kept)
            )
        return kept
