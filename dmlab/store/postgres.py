"""A PostgreSQL store, for several server processes sharing one database: the same
contract as ``MemoryStore`` and ``SQLiteStore`` (tests/test_store.py holds all three
to it), on psycopg 3 with a connection pool.

Atomic transitions across processes. The session engine does a read-modify-write
inside one ``transaction()`` (read a session, check its state, put the next one).
Under PostgreSQL's default READ COMMITTED, two workers could both read "pending" and
both start the session. Two ways out: SERIALIZABLE transactions, which fail one of
the two with a serialization error that the *caller* must retry — but a ``with``
block cannot be re-run by the store, and the engine publishes events and builds
answers around it; or locks taken before the first read. This store takes one
transaction-scoped advisory lock at the start of every ``transaction()``: exactly the
guarantee SQLite's ``BEGIN IMMEDIATE`` gives the other store (one writer at a time,
readers never blocked), so the engine needs no retry logic and behaves the same on
both. The price is that write transactions are serial across workers; each is a few
statements on indexed rows (well under a millisecond on loopback), which
benchmarks/sessions.py measures. Reads outside ``transaction()`` take no lock.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from ..events import Event
from ..trace import Exchange
from .base import StorageFault
from .model import Session
from .rows import (
    SESSION_ROW,
    chunked,
    session_row,
)
from .sql import TRACE_COLUMNS, TRACE_UPSERT, SchemaVersionError, SQLStore, trace_row

__all__ = ["SCHEMA_VERSION", "PostgresStore", "storage_fault"]

T = TypeVar("T")

#: The schema this code writes, kept in the one-row table ``dmlab_schema``.
SCHEMA_VERSION = 9

_log = logging.getLogger(__name__)

#: Seconds a caller waits for a pooled connection while the server is known to be
#: down (it would otherwise wait the pool's whole ``timeout``, on the event loop).
FAIL_FAST = 0.5

#: The advisory lock every write transaction holds ("dmlab" in ASCII).
_WRITE_LOCK = 0x646D6C6162
#: How every outermost transaction begins (two statements: a pipeline sends one per message).
_BEGIN = "BEGIN"
_LOCK = f"SELECT pg_advisory_xact_lock({_WRITE_LOCK:d})"

_SCHEMA_1 = (
    "CREATE TABLE accounts (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL)",
    # `seq` keeps registration order (devices_of), as SQLite's rowid does.
    """CREATE TABLE devices (
        dev_id TEXT PRIMARY KEY,
        seq BIGSERIAL NOT NULL,
        account TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        notify_key BYTEA NOT NULL,
        man TEXT NOT NULL,
        mod TEXT NOT NULL,
        name TEXT NOT NULL,
        registered_at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX devices_by_account ON devices (account, seq)",
    # `position`: when the session entered its current state (see SQLiteStore).
    "CREATE SEQUENCE session_position",
    """CREATE TABLE sessions (
        key TEXT PRIMARY KEY,
        dev_id TEXT NOT NULL REFERENCES devices (dev_id) ON DELETE CASCADE,
        account TEXT NOT NULL,
        state TEXT NOT NULL,
        position BIGINT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        origin TEXT NOT NULL,
        result TEXT,
        session_id TEXT NOT NULL,
        started_at DOUBLE PRECISION,
        ended_at DOUBLE PRECISION,
        expires_at DOUBLE PRECISION,
        reason TEXT NOT NULL,
        job TEXT NOT NULL,
        rounds TEXT NOT NULL
    )""",
    "CREATE INDEX sessions_by_device ON sessions (dev_id, state, position)",
    "CREATE INDEX sessions_by_account ON sessions (account, state, position)",
    """CREATE TABLE session_ids (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL REFERENCES sessions (key) ON DELETE CASCADE
    )""",
    "CREATE INDEX session_ids_by_key ON session_ids (key)",
    """CREATE TABLE alerts (
        id BIGSERIAL PRIMARY KEY,
        dev_id TEXT NOT NULL REFERENCES devices (dev_id) ON DELETE CASCADE,
        at DOUBLE PRECISION NOT NULL,
        session_key TEXT,
        alert TEXT NOT NULL
    )""",
    "CREATE INDEX alerts_by_device ON alerts (dev_id, id)",
    """CREATE TABLE data (
        dev_id TEXT NOT NULL REFERENCES devices (dev_id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        content_type TEXT NOT NULL,
        body BYTEA NOT NULL,
        PRIMARY KEY (dev_id, key)
    )""",
    """CREATE TABLE trace (
        seq BIGINT PRIMARY KEY,
        time DOUBLE PRECISION NOT NULL,
        source TEXT NOT NULL,
        target TEXT NOT NULL,
        dev_id TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        status INTEGER NOT NULL,
        session TEXT NOT NULL,
        request TEXT NOT NULL,
        response TEXT NOT NULL
    )""",
)

#: ``MIGRATIONS[n]`` takes a database from version ``n`` to ``n + 1``. Version 2 keeps
#: how long each exchange took (as ``SQLiteStore``'s version 3); older rows read as 0.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    0: _SCHEMA_1,
    1: ("ALTER TABLE trace ADD COLUMN elapsed DOUBLE PRECISION NOT NULL DEFAULT 0",),
    # Version 3: what several server processes share (see "Shared by every process").
    2: (
        "CREATE TABLE secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL)",
        """CREATE TABLE notifications (
            id BIGSERIAL PRIMARY KEY,
            dev_id TEXT NOT NULL,
            package BYTEA NOT NULL
        )""",
        "CREATE INDEX notifications_by_device ON notifications (dev_id, id)",
        # The login throttle's tables (dmlab.server.auth.SharedThrottle).
        """CREATE TABLE login_pairs (
            name TEXT NOT NULL,
            client TEXT NOT NULL,
            failures INTEGER NOT NULL,
            last DOUBLE PRECISION NOT NULL,
            locked_until DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (name, client)
        )""",
        "CREATE INDEX login_pairs_by_age ON login_pairs (last)",
        """CREATE TABLE login_names (
            name TEXT PRIMARY KEY,
            count INTEGER NOT NULL,
            since DOUBLE PRECISION NOT NULL,
            until DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX login_names_by_age ON login_names (since)",
    ),
    # Version 4: the trace's numbers come from the database, so that the exchanges of
    # every process share one order (and none overwrites another's row).
    3: (
        "CREATE SEQUENCE trace_seq",
        "SELECT setval('trace_seq', COALESCE((SELECT max(seq) FROM trace), 0) + 1, false)",
    ),
    # Version 5: the lab's events (``dmlab.events.EventLog``), numbered once for every
    # process, the newest kept for ``Last-Event-ID`` replay on any of them.
    4: (
        "CREATE SEQUENCE event_seq",
        """CREATE TABLE events (
            seq BIGINT PRIMARY KEY,
            kind TEXT NOT NULL,
            account TEXT NOT NULL,
            dev_id TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL,
            data TEXT NOT NULL
        )""",
    ),
    # Version 6: pending sessions with a time to live, by when it ends (SQLiteStore's 4),
    # so moving out the expired ones reads only those (lab choice paging).
    5: (
        "CREATE INDEX sessions_expiring ON sessions (expires_at) "
        "WHERE state = 'pending' AND expires_at IS NOT NULL",
    ),
    # Version 7: each active session's idle deadline (see SQLiteStore's version 5).
    6: (
        "ALTER TABLE sessions ADD COLUMN idle_until DOUBLE PRECISION",
        "UPDATE sessions SET idle_until = COALESCE(started_at, created_at) + 300 "
        "WHERE state = 'active'",
        "CREATE INDEX sessions_idle ON sessions (idle_until) WHERE state = 'active'",
    ),
    # Version 8: the pending sessions alone, by device (SQLiteStore's 6), so a page of
    # devices counting each one's pending sessions reads a few pages of index, not one
    # page per device of an index that also holds every device's history.
    7: ("CREATE INDEX sessions_pending ON sessions (dev_id, position) WHERE state = 'pending'",),
    # Version 9: the active sessions alone, by device (SQLiteStore's 7), for the same
    # page of devices, which also counts each one's active sessions.
    8: ("CREATE INDEX sessions_active ON sessions (dev_id, position) WHERE state = 'active'",),
}

# Storage faults ----------------------------------------------------------------------
# SQLSTATEs (and classes, by their first two characters) that mean "the storage", not
# "the statement": answered 503 with Retry-After, as SQLiteStore's faults are.
_FAULT_CODES = {
    "53100": "full",  # disk_full
    "25006": "read-only",  # read_only_sql_transaction (also a hot standby)
    "57P01": "unavailable",  # admin_shutdown: the server is shutting down
    "57P02": "unavailable",  # crash_shutdown
    "57P03": "unavailable",  # cannot_connect_now: starting up or shutting down
    "57014": "busy",  # query_canceled (statement_timeout)
    "55P03": "busy",  # lock_not_available
    "40P01": "busy",  # deadlock_detected
}
_FAULT_CLASSES = {
    "08": "unavailable",  # connection exception
    "53": "busy",  # insufficient resources (out of memory, too many connections)
    "58": "io",  # system error (I/O error, undefined file)
    "XX": "corrupt",  # internal error: data or index corrupted
}
_FAULT_WORDS = {
    "full": "has no space left (disk full)",
    "read-only": "is read-only",
    "unavailable": "cannot be reached (connection lost, server down, or no free connection)",
    "busy": "is too busy now",
    "io": "cannot be read or written (I/O error)",
    "corrupt": "is damaged",
}


def storage_fault(where: str, exc: BaseException) -> StorageFault | None:
    """The :class:`StorageFault` a psycopg error stands for, if it is one. A broken
    connection has no SQLSTATE (the server never answered): an ``OperationalError``
    without one is the connection, as is the pool's ``PoolTimeout``."""
    if not isinstance(exc, psycopg.Error):
        return None
    code = exc.sqlstate or ""
    kind = _FAULT_CODES.get(code) or _FAULT_CLASSES.get(code[:2])
    if kind is None and not code and isinstance(exc, psycopg.OperationalError):
        kind = "unavailable"
    if kind is None:
        return None
    reason = " ".join(str(exc).split())[:300]  # one line
    return StorageFault(kind, f"{where} {_FAULT_WORDS[kind]}: {reason}")


def describe_dsn(dsn: str) -> str:
    """``PostgreSQL database D on H:P``: where, without user or password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "the PostgreSQL database"
    where = f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}"
    return f"PostgreSQL database {parts.get('dbname') or parts.get('user') or '?'} on {where}"


_PSYCOPG: dict[str, Any] = {}


def _psycopg(sql: str) -> Any:
    """A shared query (``?`` placeholders, see ``SQLStore``) as psycopg takes it
    (``%s``); none of them holds a ``?`` or ``%`` of its own."""
    query = _PSYCOPG.get(sql)
    if query is None:
        query = _PSYCOPG[sql] = sql.replace("?", "%s")
    return query


#: The LISTEN/NOTIFY channel that says "a notification waits for this device".
NOTIFICATIONS_CHANNEL = "dmlab_notifications"
#: The LISTEN/NOTIFY channel that says "events up to this number are in the log".
EVENTS_CHANNEL = "dmlab_events"
#: The LISTEN/NOTIFY channel that says "this device long-polls here now" (its polls on
#: other processes end: one poll per device for the whole server).
POLLS_CHANNEL = "dmlab_polls"


class PostgresStore(SQLStore):
    """Keeps everything in one PostgreSQL database that several processes may share.
    Methods called outside ``transaction()`` each run in a transaction of their own;
    inside one, they join it (on the same connection, held by the calling thread)."""

    _DEVICE_ORDER = "seq"
    _NEXT_POSITION = "nextval('session_position')"
    _MARKS_FIRST = False  # a statement is a round trip: rows and marks in one

    #: Every call waits on the network: servers run them off the event loop.
    remote = True

    def __init__(
        self,
        dsn: str,
        *,
        alerts_per_device: int = 200,
        pool_size: int = 8,
        timeout: float = 10.0,
    ) -> None:
        if alerts_per_device < 0:
            raise ValueError("alerts_per_device must not be negative")
        self.dsn = dsn
        self._where = describe_dsn(dsn)
        self._alerts_per_device = alerts_per_device
        self._local = threading.local()  # .conn and .depth of this thread's transaction
        #: Set by a lost connection, cleared by the next statement that goes through:
        #: meanwhile a caller waits FAIL_FAST s for a connection, not ``timeout``
        #: (the store is called on the server's event loop).
        self._down = threading.Event()
        self._checking = threading.Lock()
        self._pool: ConnectionPool | None = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            timeout=timeout,
            open=False,
            kwargs={"autocommit": True},
        )
        try:
            with self._faults():
                # One connection first: a server that is not there is one clear error
                # now, not the pool's retries (each logged) until ``timeout``.
                psycopg.connect(dsn, connect_timeout=max(1, round(timeout))).close()
                self._pool.open(wait=True, timeout=timeout)
                self._migrate()
        except BaseException:
            self.close()
            raise

    # Lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _pool_or_raise(self) -> ConnectionPool:
        if self._pool is None:
            raise psycopg.InterfaceError("the PostgreSQL store is closed")
        return self._pool

    def _connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """A pooled connection; while the server is known to be down, only a short wait."""
        return self._pool_or_raise().connection(FAIL_FAST if self._down.is_set() else None)

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """Turn psycopg's storage errors into :class:`StorageFault` (any other error,
        a constraint say, is raised as it is). After a lost connection, the pool's
        idle connections are checked (off this thread): they died with it, and each
        would otherwise fail one more request."""
        try:
            yield
        except psycopg.Error as exc:
            fault = storage_fault(self._where, exc)
            if fault is None:
                raise
            if fault.kind == "unavailable":
                self._lost()
            raise fault from exc
        self._down.clear()

    def _lost(self) -> None:
        self._down.set()
        pool = self._pool
        if pool is None or not self._checking.acquire(blocking=False):
            return  # closed, or a check is under way

        def check() -> None:
            try:
                pool.check()
            except Exception:
                pass  # the next request tells what is wrong
            finally:
                self._checking.release()

        threading.Thread(target=check, name="postgres-check", daemon=True).start()

    def check(self) -> None:
        """Start-up check: raise :class:`StorageFault` (one clear line) if a write does
        not go through (a read-only database or standby, a full disk)."""
        with self.transaction():
            self._local.conn.execute("UPDATE dmlab_schema SET version = version")

    @property
    def schema_version(self) -> int:
        row = self._one("SELECT version FROM dmlab_schema", ())
        return 0 if row is None else int(row[0])

    def _migrate(self) -> None:
        with self.transaction():
            conn = self._local.conn
            conn.execute("CREATE TABLE IF NOT EXISTS dmlab_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM dmlab_schema").fetchone()
            if row is None:
                conn.execute("INSERT INTO dmlab_schema (version) VALUES (0)")
            version = 0 if row is None else int(row[0])
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the database has store schema version {version}, but this dmlab only "
                    f"knows versions up to {SCHEMA_VERSION}: upgrade dmlab"
                )
            while version < SCHEMA_VERSION:
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
                conn.execute("UPDATE dmlab_schema SET version = %s", (version,))

    # Transactions ----------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Re-entrant per thread. The outermost level takes a pooled connection, begins
        and takes the write lock (see the module docstring), in pipeline mode: BEGIN,
        the lock, savepoints and every write are sent queued, together with the next
        read or the COMMIT, so that none costs a round trip of its own (a session
        transition was about ten: one per statement, and a SAVEPOINT and a RELEASE for
        each nested level). Inner levels are savepoints, so one that raises undoes only
        its own writes; a write that the database refuses is reported at the next
        read or at the commit, and fails the transaction as a whole."""
        yield from self._transaction(pipelined=True)

    def _transaction(self, *, pipelined: bool) -> Iterator[None]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None:
            yield from self._savepoint(conn)
            return
        with self._faults(), self._connection() as conn:
            self._local.conn, self._local.depth, self._local.pipeline = conn, 0, None
            try:
                with conn.pipeline() if pipelined else nullcontext() as pipeline:
                    self._local.pipeline = pipeline
                    try:
                        conn.execute(_BEGIN)
                        conn.execute(_LOCK)
                        yield
                        done = conn.execute("COMMIT")
                    except BaseException:
                        self._sync_quietly()  # what is queued fails with the transaction
                        raise
                # Out of the pipeline: the COMMIT went out and its answer is in.
                if done.statusmessage != "COMMIT":
                    raise RuntimeError(
                        f"the transaction failed and was rolled back ({self._where})"
                    )
            except BaseException:
                with suppress(psycopg.Error):  # a lost connection: the pool discards it
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._local.conn = self._local.pipeline = None

    def _savepoint(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        depth = self._local.depth = self._local.depth + 1
        name = f"level{depth}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self._sync_quietly()  # a queued write that failed is part of what is undone
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        else:
            conn.execute(f"RELEASE {name}")
        finally:
            self._local.depth = depth - 1

    def _sync_quietly(self) -> None:
        """Send what is queued and read the answers, ignoring the error one holds: the
        caller is already failing, and rolls it back."""
        if self._local.pipeline is not None:
            with suppress(psycopg.Error):
                self._local.pipeline.sync()

    @contextmanager
    def _joined(self) -> Iterator[psycopg.Connection[Any]]:
        """The open transaction's connection (no savepoint: a failure fails it all),
        or a new transaction's."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self.transaction():
            yield self._local.conn

    def _writing(self) -> AbstractContextManager[Any]:
        return self._joined()

    def _run(self, use: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None:
            return use(conn)  # inside transaction(), whose _faults() sees what fails
        with self._faults(), self._connection() as pooled:
            return use(pooled)

    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        query = _psycopg(sql)
        return self._run(lambda conn: conn.execute(query, params).fetchone())

    def _all(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        query = _psycopg(sql)
        return self._run(lambda conn: conn.execute(query, params).fetchall())

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        self._local.conn.execute(_psycopg(sql), params)

    def add_sessions(self, sessions: Iterable[Session]) -> None:
        """New sessions, many at once (an import; a benchmark's stored history): the
        rows ``put_session`` would write one by one, in their order, in one transaction
        (``COPY``). A key or id already stored fails the whole call and adds nothing."""
        with self._unpipelined():
            conn = self._local.conn
            for chunk in chunked(sessions, 10_000):
                # The chunk's positions: a block of the sequence, taken under the write lock.
                (last,) = conn.execute(
                    "SELECT setval('session_position', nextval('session_position') + %s)",
                    (len(chunk) - 1,),
                ).fetchone()
                first = last - len(chunk) + 1
                rows = (session_row(s, first + i) for i, s in enumerate(chunk))
                ids = ((sid, s.key) for s in chunk for sid in s.ids)
                with conn.cursor() as cursor:
                    if self._local.pipeline is not None:  # joined a pipelined transaction
                        cursor.executemany(
                            f"INSERT INTO sessions ({SESSION_ROW}) VALUES "
                            f"({', '.join('%s' for _ in SESSION_ROW.split(', '))})",
                            rows,
                        )
                        cursor.executemany("INSERT INTO session_ids (id, key) VALUES (%s, %s)", ids)
                        continue
                    with cursor.copy(f"COPY sessions ({SESSION_ROW}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                    with cursor.copy("COPY session_ids (id, key) FROM STDIN") as copy:
                        for pair in ids:
                            copy.write_row(pair)

    @contextmanager
    def _unpipelined(self) -> Iterator[None]:
        """A transaction outside pipeline mode, which cannot carry COPY (inside an open
        transaction: that one)."""
        yield from self._transaction(pipelined=False)

    # The trace (a ``TraceSink``) -----------------------------------------------------
    def append_trace(self, exchange: Exchange, limit: int) -> None:
        """Keep one exchange, and only the newest ``limit`` (as the in-memory trace).

        One statement in a transaction of its own, without the write lock: a trace row
        is written once under a number no other process holds (``next_trace_seq``),
        nothing reads it to decide a write, and the trim only drops rows older than
        the newest ``limit``. It was six round trips with the lock, for every request."""
        with self._faults(), self._connection() as conn:
            conn.execute(
                _psycopg(f"WITH trimmed AS (DELETE FROM trace WHERE seq <= ?) {TRACE_UPSERT}"),
                (exchange.seq - limit, *trace_row(exchange)),
            )

    def next_trace_seq(self) -> int:
        """The next exchange's number, unique over every process on this database."""
        row = self._one("SELECT nextval('trace_seq')", ())
        assert row is not None
        return int(row[0])

    def load_trace(self, limit: int) -> list[Exchange]:
        """The newest ``limit`` exchanges, oldest first."""
        rows = self._all(
            f"SELECT {TRACE_COLUMNS} FROM trace ORDER BY seq DESC LIMIT %s",
            (max(limit, 0),),
        )
        return [Exchange(*row) for row in reversed(rows)]

    # Shared by every process ---------------------------------------------------------
    # Several servers on one database behave as one: a secret they all sign with, and
    # notification mailboxes that any of them fills and any of them empties.
    def shared_secret(self, name: str) -> bytes:
        """32 random bytes made once per database and then the same for every process."""
        with self.transaction():
            conn = self._local.conn
            conn.execute(
                "INSERT INTO secrets (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                (name, secrets.token_bytes(32)),
            )
            row = conn.execute("SELECT value FROM secrets WHERE name = %s", (name,)).fetchone()
        return bytes(row[0])

    def put_notification(self, dev_id: str, package: bytes, keep: int) -> None:
        """Queue a package for the device (its newest ``keep`` stay) and wake every
        process listening on ``NOTIFICATIONS_CHANNEL`` (delivered at commit)."""
        with self.transaction():
            conn = self._local.conn
            conn.execute(
                "INSERT INTO notifications (dev_id, package) VALUES (%s, %s)",
                (dev_id, bytes(package)),
            )
            conn.execute(
                "DELETE FROM notifications WHERE dev_id = %s AND id <= (SELECT id FROM "
                "notifications WHERE dev_id = %s ORDER BY id DESC LIMIT 1 OFFSET %s)",
                (dev_id, dev_id, keep),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (NOTIFICATIONS_CHANNEL, dev_id))

    def take_notification(self, dev_id: str) -> bytes | None:
        """The device's oldest package, removed: exactly one taker gets it (no lock
        needed, DELETE … RETURNING on one row is atomic)."""

        def take(conn: psycopg.Connection[Any]) -> Any:
            return conn.execute(
                "DELETE FROM notifications WHERE id = (SELECT id FROM notifications "
                "WHERE dev_id = %s ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) "
                "RETURNING package",
                (dev_id,),
            ).fetchone()

        row = self._run(take)
        return None if row is None else bytes(row[0])

    def forget_notifications(self, dev_id: str) -> None:
        self._write("DELETE FROM notifications WHERE dev_id = %s", (dev_id,))

    def announce_poll(self, payload: str) -> None:
        """Tell every process listening on ``POLLS_CHANNEL`` that a device's long-poll
        was admitted (``payload`` says where, when and whose; ``Notifier`` reads it);
        nothing is stored."""
        self._one("SELECT pg_notify(?, ?)", (POLLS_CHANNEL, payload))

    # The event log (``dmlab.events.EventLog``). Numbered under the write lock that
    # every transaction holds, so numbers follow commit order: a reader that sees
    # event n sees every event before it, which makes "all after the last one I saw"
    # a complete answer (gaps are rolled-back numbers, never late ones).
    def append_events(self, events: Sequence[Event], keep: int) -> list[int]:
        seqs = []
        with self._joined() as conn:
            for event in events:
                row = conn.execute(
                    "WITH added AS (INSERT INTO events (seq, kind, account, dev_id, at, data) "
                    "VALUES (nextval('event_seq'), %s, %s, %s, %s, %s) RETURNING seq), "
                    "trimmed AS (DELETE FROM events WHERE seq <= (SELECT seq FROM added) - %s) "
                    "SELECT seq, pg_notify(%s, seq::text) FROM added",
                    (
                        event.kind,
                        event.account,
                        event.dev_id,
                        event.at,
                        json.dumps(event.data, separators=(",", ":"), default=str),
                        max(keep, 1),
                        EVENTS_CHANNEL,
                    ),
                ).fetchone()
                assert row is not None
                seqs.append(int(row[0]))
        return seqs

    def events_after(self, after: int, account: str | None, limit: int) -> list[Event]:
        after = max(min(after, 2**63 - 1), -1)  # any int a client sent fits BIGINT
        rows = self._all(
            "SELECT seq, kind, account, dev_id, at, data FROM events WHERE seq > %s "
            + ("" if account is None else "AND account = %s ")
            + "ORDER BY seq LIMIT %s",
            (after, max(limit, 0)) if account is None else (after, account, max(limit, 0)),
        )
        return [Event(seq, k, a, d, at, json.loads(data)) for seq, k, a, d, at, data in rows]

    def last_event_seq(self) -> int:
        row = self._one("SELECT COALESCE(max(seq), 0) FROM events", ())
        return 0 if row is None else int(row[0])

    def follow(
        self,
        *,
        notifications: Callable[[str], None],
        events: Callable[[str], None],
        polls: Callable[[str], None] = lambda payload: None,
        on_reconnect: Callable[[], None] = lambda: None,
    ) -> Callable[[], None]:
        """Listen for what other processes announce: a notification queued for a device
        (``notifications(dev_id)``), events logged up to a number (``events(seq)``), a
        device's long-poll admitted (``polls(payload)``)."""
        return self.listen(
            {NOTIFICATIONS_CHANNEL: notifications, EVENTS_CHANNEL: events, POLLS_CHANNEL: polls},
            on_reconnect,
        )

    def listen(
        self,
        handlers: Mapping[str, Callable[[str], None]],
        on_reconnect: Callable[[], None] = lambda: None,
    ) -> Callable[[], None]:
        """Call ``handlers[channel]`` with the payload of every NOTIFY on that channel,
        from any process, on one connection and a thread of its own; returns a
        function that stops listening.

        A lost connection (PostgreSQL restarted, the network cut) is opened again,
        waiting longer between tries (up to 30 s), with one log line per outage;
        NOTIFYs sent meanwhile are lost, so ``on_reconnect`` then lets the caller
        catch up with what it may have missed."""

        def connect() -> psycopg.Connection[Any]:
            conn = psycopg.connect(self.dsn, autocommit=True)
            for channel in handlers:
                conn.execute(f"LISTEN {channel}")  # fixed identifiers, never client input
            return conn

        with self._faults():
            first = connect()
        stopped = threading.Event()

        def run() -> None:
            conn: psycopg.Connection[Any] | None = first
            delay = 0.5
            try:
                while not stopped.is_set():
                    try:
                        if conn is None:
                            conn = connect()
                            _log.warning("listening to %s again", self._where)
                            delay = 0.5
                            on_reconnect()
                        for notify in conn.notifies(timeout=0.5):
                            handlers[notify.channel](notify.payload)
                    except (psycopg.Error, StorageFault) as exc:
                        if stopped.is_set():
                            break
                        if conn is not None and conn.closed:  # lost: say so once
                            _log.warning(
                                "lost the LISTEN connection to %s (%s); reconnecting",
                                self._where,
                                " ".join(str(exc).split())[:200],
                            )
                            conn = None
                        stopped.wait(delay)
                        delay = min(delay * 2, 30.0)
            finally:
                if conn is not None:
                    conn.close()

        thread = threading.Thread(target=run, name="listen-" + ",".join(handlers), daemon=True)
        thread.start()

        def stop() -> None:
            stopped.set()
            thread.join(timeout=5)

        return stop

    # The login throttle's tables (``SharedThrottle``): (failures, last, locked_until)
    # per (name, client address), (count, since, until) per name.
    def login_pair(self, name: str, client: str) -> tuple[int, float, float] | None:
        return self._one(
            "SELECT failures, last, locked_until FROM login_pairs WHERE name = %s AND client = %s",
            (name, client),
        )

    def put_login_pair(self, name: str, client: str, pair: tuple[int, float, float]) -> None:
        self._write(
            "INSERT INTO login_pairs (name, client, failures, last, locked_until) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name, client) DO UPDATE SET "
            "failures = excluded.failures, last = excluded.last, "
            "locked_until = excluded.locked_until",
            (name, client, *pair),
        )

    def login_name(self, name: str) -> tuple[int, float, float] | None:
        return self._one("SELECT count, since, until FROM login_names WHERE name = %s", (name,))

    def put_login_name(self, name: str, entry: tuple[int, float, float]) -> None:
        self._write(
            "INSERT INTO login_names (name, count, since, until) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET count = excluded.count, "
            "since = excluded.since, until = excluded.until",
            (name, *entry),
        )

    def trim_logins(self, keep: int) -> int:
        """Keep the newest ``keep`` rows of each table (all if negative); the rows left."""
        with self.transaction():
            conn = self._local.conn
            if keep >= 0:
                # Indexed: finds the (keep+1)-th newest row, removes it and older ones.
                conn.execute(
                    "DELETE FROM login_pairs WHERE last <= (SELECT last FROM login_pairs "
                    "ORDER BY last DESC LIMIT 1 OFFSET %s)",
                    (keep,),
                )
                conn.execute(
                    "DELETE FROM login_names WHERE since <= (SELECT since FROM login_names "
                    "ORDER BY since DESC LIMIT 1 OFFSET %s)",
                    (keep,),
                )
            row = conn.execute(
                "SELECT (SELECT count(*) FROM login_pairs) + (SELECT count(*) FROM login_names)"
            ).fetchone()
        return int(row[0])
