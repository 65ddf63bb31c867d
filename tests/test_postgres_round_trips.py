"""How many times the PostgreSQL store waits on the network (issue 15, "fewer
PostgreSQL round trips"), and that batching writes keeps transactions whole.

Round trips are counted on the wire: the store connects through a loopback proxy
that counts turns, a turn being the client sending after the server has answered
(what a pipeline of queued statements and one Sync costs once, and a statement
sent alone costs every time)."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from dmlab.protocol import Alert, AlertType, Command
from dmlab.store import Account, AlertRecord, Device, JobSpec, Origin, Round, Session, State
from dmlab.store.postgres import PostgresStore


class TurnCounter:
    """A TCP proxy to one PostgreSQL server that counts the client's turns."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self.turns = 0
        self._answered: dict[int, bool] = {}  # per connection: the server spoke last
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            key = id(client)
            self._answered[key] = True
            threading.Thread(
                target=self._pump, args=(client, server, key, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, key, False), daemon=True
            ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, key: int, upstream: bool) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    if upstream and self._answered[key]:
                        self.turns += 1
                    self._answered[key] = not upstream
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_RDWR)  # ends the other direction's pump
            except OSError:
                pass
            src.close()

    def count(self, action: Callable[[], object]) -> int:
        """The turns ``action`` took (nothing else may use the proxy meanwhile)."""
        before = self.turns
        action()
        return self.turns - before

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def counted(new_database: Callable[[], str]) -> Iterator[tuple[PostgresStore, TurnCounter]]:
    dsn = new_database()
    parts = urlsplit(dsn)
    proxy = TurnCounter(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
    # One pooled connection: every call waits on the same, already open one.
    with PostgresStore(urlunsplit(parts._replace(netloc=netloc)), pool_size=1) as store:
        store.put_device(Device("IMEI:1", "acme", "h", b"k"))
        yield store, proxy
    proxy.close()


def _session(key: str, **fields: object) -> Session:
    return Session(key, "IMEI:1", "acme", JobSpec("inventory"), Origin.SERVER, **fields)  # type: ignore[arg-type]


def test_a_session_transition_is_two_round_trips(
    counted: tuple[PostgresStore, TurnCounter],
) -> None:
    """Read the session, put the next one (upsert and ids), keep an alert and commit:
    the read waits once (BEGIN and the lock go with it), the writes go with the
    COMMIT. It was thirteen (one per statement, a SAVEPOINT and RELEASE per call)."""
    store, proxy = counted
    store.put_session(_session("k1"))

    def transition() -> None:
        with store.transaction():
            current = store.get_session("k1")
            assert current is not None
            store.put_session(
                dataclasses.replace(
                    current,
                    state=State.ACTIVE,
                    session_id="k2",
                    rounds=(Round("k2", (Command.of("END"),)),),
                )
            )
            store.add_alert(AlertRecord("IMEI:1", Alert(AlertType.CLIENT_INITIATED), 1.0, "k1"))

    assert proxy.count(transition) <= 2
    assert store.session_by_id("k2") == store.get_session("k1")
    assert store.get_session("k1").state is State.ACTIVE  # type: ignore[union-attr]
    assert len(store.alerts_of("IMEI:1")) == 1
    # A write alone is one round trip: BEGIN, lock, statements and COMMIT together.
    assert proxy.count(lambda: store.put_account(Account("a", "h"))) == 1
    assert proxy.count(lambda: store.put_session(_session("k3"))) == 1


def test_a_refused_write_fails_the_whole_transaction(
    counted: tuple[PostgresStore, TurnCounter],
) -> None:
    """A write sent queued and refused (here a session of an unknown device) is
    reported by the transaction, which commits nothing; the next one works."""
    store, _ = counted
    with pytest.raises(psycopg.IntegrityError), store.transaction():
        store.put_account(Account("before", "h"))
        store.put_session(dataclasses.replace(_session("orphan"), dev_id="IMEI:unknown"))
        store.put_account(Account("after", "h"))
    assert store.get_account("before") is None and store.get_account("after") is None
    assert store.get_session("orphan") is None
    store.put_account(Account("next", "h"))
    assert store.get_account("next") is not None


def test_an_inner_level_that_raises_undoes_only_its_own_writes(
    counted: tuple[PostgresStore, TurnCounter],
) -> None:
    store, _ = counted
    with store.transaction():
        store.put_account(Account("kept", "h"))
        with pytest.raises(KeyError), store.transaction():
            store.put_account(Account("undone", "h"))
            raise KeyError("inner")
        # A refused write inside an inner level that raises is undone with it.
        with pytest.raises(psycopg.IntegrityError), store.transaction():
            store.put_session(dataclasses.replace(_session("orphan"), dev_id="IMEI:unknown"))
            store.get_session("orphan")  # a read: the refusal is reported here
        store.put_account(Account("also-kept", "h"))
    assert store.get_account("kept") is not None
    assert store.get_account("also-kept") is not None
    assert store.get_account("undone") is None


def test_bulk_load_inside_a_transaction(counted: tuple[PostgresStore, TurnCounter]) -> None:
    """``add_sessions`` uses COPY, which a pipeline cannot carry; inside an open
    (pipelined) transaction it inserts the rows instead, with the same result."""
    store, _ = counted
    with store.transaction():
        store.add_sessions([_session("b1"), _session("b2")])
    store.add_sessions([_session("b3")])
    assert [s.key for s in store.sessions_of_device("IMEI:1", State.PENDING)] == ["b1", "b2", "b3"]
