"""PostgreSQL storage faults answer as SQLite's do (issue 10, "Faults with clear
answers"): a lost connection, a server shut down, a read-only database, a full
disk or a pool with no connection to give is a 503 problem with Retry-After that
changes nothing, and the server serves again once PostgreSQL does.

Every fault here is real: a throwaway cluster (tests/conftest.py), its backends
terminated, the cluster stopped and started, a database made read-only, a
tablespace on a tmpfs filled up. Waits are ordered by answers, each bounded by a
generous ``DEADLINE`` that only turns a bug into a failure instead of a hang."""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import errors
from psycopg_pool import PoolTimeout

from dmlab.events import Event
from dmlab.protocol import media
from dmlab.runtime import LabCA, ServerThread
from dmlab.server import build_services, create_app, follow_others
from dmlab.server.problems import STORAGE_RETRY_AFTER
from dmlab.store.postgres import PostgresStore, storage_fault
from dmlab.trace import Trace

from helpers import HASH_COST, new_dev_id, problem, tiny_tmpfs

#: Upper bound for the server to come back once PostgreSQL has (the pool reconnects
#: with a backoff of its own); far above what it takes on an idle machine.
DEADLINE = 120.0
ACCOUNT = ("demo", "demo-password")


# The mapping, error by error ---------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (errors.DiskFull("could not extend file: No space left on device"), "full"),
        (
            errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
            "read-only",
        ),
        (
            errors.AdminShutdown("terminating connection due to administrator command"),
            "unavailable",
        ),
        (errors.CannotConnectNow("the database system is starting up"), "unavailable"),
        (psycopg.OperationalError("server closed the connection unexpectedly"), "unavailable"),
        (PoolTimeout("couldn't get a connection after 10.00 sec"), "unavailable"),
        (errors.TooManyConnections("sorry, too many clients already"), "busy"),
        (errors.QueryCanceled("canceling statement due to statement timeout"), "busy"),
        (errors.IoError("could not read block 0"), "io"),
        (errors.DataCorrupted("invalid page in block 0"), "corrupt"),
    ],
    ids=lambda value: value if isinstance(value, str) else type(value).__name__,
)
def test_each_storage_error_is_a_fault_of_its_kind(error: psycopg.Error, kind: str) -> None:
    fault = storage_fault("PostgreSQL database x on h:5432", error)
    assert fault is not None and fault.kind == kind
    assert "\n" not in str(fault) and str(fault).startswith("PostgreSQL database x on h:5432")


@pytest.mark.parametrize(
    "error",
    [errors.UniqueViolation("duplicate key"), errors.UndefinedTable("no such table"), ValueError()],
)
def test_a_statements_own_error_is_not_a_fault(error: Exception) -> None:
    assert storage_fault("x", error) is None


# A server on PostgreSQL ----------------------------------------------------------------
def admin(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    """A superuser connection to the cluster's ``postgres`` database."""
    return psycopg.connect(dsn.rsplit("/", 1)[0] + "/postgres", autocommit=True)


def database_of(dsn: str) -> str:
    return dsn.rsplit("/", 1)[1]


def terminate(dsn: str) -> None:
    """Drop every connection to the database, as a restart or a network cut would."""
    with admin(dsn) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database_of(dsn),),
        )


@pytest.fixture(scope="module")
def ca() -> LabCA:
    return LabCA.create()


@contextlib.contextmanager
def serving(dsn: str, ca: LabCA, seen: queue.Queue[Event] | None = None) -> Iterator[httpx.Client]:
    """What ``dmlab serve --database DSN`` runs (the trace kept in the store, listening
    for other processes' notifications and events), with account ``demo``, over HTTPS;
    a short pool timeout so that a test is not all waiting. ``seen`` gets every event
    the server's subscribers get."""
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(PostgresStore(dsn, timeout=3.0))
        services = build_services(store=store, hash_cost=HASH_COST, trace=Trace(sink=store))
        services.add_account(*ACCOUNT)
        if seen is not None:
            services.events.subscribe(seen.put)
        stack.callback(follow_others(services))
        server = stack.enter_context(ServerThread(create_app(services), ca))
        yield stack.enter_context(
            httpx.Client(
                base_url=server.url,
                verify=ca.client_context(),
                auth=ACCOUNT,
                headers={"Accept": "application/json"},
                timeout=DEADLINE,
            )
        )


def register(client: httpx.Client) -> httpx.Response:
    return client.post("/devices/new", json={"devId": new_dev_id()})


def storage_503(answer: httpx.Response) -> str:
    """Assert a storage fault's answer; its detail."""
    body = problem(answer, 503, "storage-unavailable")
    assert answer.headers["retry-after"] == str(STORAGE_RETRY_AFTER)
    return str(body["detail"])


def until_served(request: Callable[[], httpx.Response], status: int) -> list[str]:
    """Repeat ``request`` until it answers ``status``; every answer before must be a
    storage fault's 503 (never a 500). The faults' details, in order."""
    faults: list[str] = []
    deadline = time.monotonic() + DEADLINE
    while (answer := request()).status_code != status:
        faults.append(storage_503(answer))
        assert time.monotonic() < deadline, f"not served again within {DEADLINE} s: {faults}"
    return faults


def test_a_read_only_database_answers_503_and_the_server_recovers(
    new_database: Callable[[], str], ca: LabCA
) -> None:
    dsn = new_database()
    with serving(dsn, ca) as client:
        assert register(client).status_code == 201
        with admin(dsn) as conn:
            conn.execute(
                f"ALTER DATABASE {database_of(dsn)} SET default_transaction_read_only = on"
            )
        terminate(dsn)  # new sessions only take the setting
        deadline = time.monotonic() + DEADLINE
        while "(read-only)" not in (detail := storage_503(register(client))):
            assert "(unavailable)" in detail, detail  # one of the dead connections
            assert time.monotonic() < deadline, detail
        before = client.get("/devices").json()
        assert "(read-only)" in storage_503(register(client))
        with admin(dsn) as conn:
            conn.execute(f"ALTER DATABASE {database_of(dsn)} RESET default_transaction_read_only")
        terminate(dsn)
        until_served(lambda: register(client), 201)
        after = client.get("/devices").json()
    # Nothing the refused registrations tried was kept; the one after them was.
    assert len(after["Devices"]) == len(before["Devices"]) + 1


def test_lost_connections_answer_503_then_the_pool_heals(
    new_database: Callable[[], str], ca: LabCA
) -> None:
    dsn = new_database()
    with serving(dsn, ca) as client:
        assert register(client).status_code == 201
        terminate(dsn)
        first = register(client)
        assert "(unavailable)" in storage_503(first)  # not a 500, not a traceback
        until_served(lambda: register(client), 201)


def test_a_server_shut_down_answers_503_and_is_used_again_once_it_is_back(ca: LabCA) -> None:
    """Requests and the listener (notifications and events of other processes) both
    come back: an event published after the restart reaches the subscribers."""
    from dmlab.runtime.postgres import PostgresNotFound, throwaway_cluster

    try:
        cluster_context = throwaway_cluster()
        cluster = cluster_context.__enter__()
    except PostgresNotFound as missing:
        pytest.skip(f"PostgreSQL tests need a server: {missing}")
    try:
        seen: queue.Queue[Event] = queue.Queue()
        with serving(cluster.dsn, ca, seen) as client:
            assert register(client).status_code == 201
            assert seen.get(timeout=DEADLINE).kind == "device.registered"
            cluster.stop("fast")  # sessions get "terminating connection", then it is gone
            assert "(unavailable)" in storage_503(register(client))
            assert "(unavailable)" in storage_503(client.get("/devices"))  # reads too
            assert "(unavailable)" in storage_503(register(client))  # and again
            cluster.start()
            added: list[str] = []

            def register_one() -> httpx.Response:
                answer = register(client)
                added.append(answer.request.read().decode())
                return answer

            until_served(register_one, 201)
            assert client.get("/devices").status_code == 200
            event = seen.get(timeout=DEADLINE)  # relayed by the listener, reconnected
            assert event.kind == "device.registered" and event.dev_id in added[-1]
    finally:
        cluster_context.__exit__(None, None, None)


def test_serve_refuses_a_read_only_or_unreachable_database_in_one_line(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    dsn = new_database()
    PostgresStore(dsn).close()  # migrated
    with admin(dsn) as conn:
        conn.execute(f"ALTER DATABASE {database_of(dsn)} SET default_transaction_read_only = on")
    nobody = dsn.rsplit(":", 1)[0] + ":1/" + database_of(dsn)  # port 1: nothing listens
    for database, words in ((dsn, "is read-only"), (nobody, "cannot be reached")):
        refused = subprocess.run(
            [sys.executable, "-m", "dmlab", "serve", "--data", str(tmp_path), "--port", "0",
             "--database", database],
            capture_output=True, text=True, timeout=DEADLINE, check=False,
        )  # fmt: skip
        assert refused.returncode == 1, refused.stderr
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dmlab: cannot start: "), lines
        assert words in lines[0] and "Traceback" not in refused.stderr


# A full disk: a tablespace on a tiny tmpfs ---------------------------------------------
def test_a_full_disk_answers_503_and_freeing_space_lets_writes_in_again(
    new_database: Callable[[], str], ca: LabCA
) -> None:
    dsn = new_database()
    name = database_of(dsn)
    with admin(dsn) as conn:
        data_directory = str(conn.execute("SHOW data_directory").fetchone()[0])  # type: ignore[index]
    with tiny_tmpfs("4m", os.stat(data_directory).st_uid) as top:
        space = f"{name}_small"
        with admin(dsn) as conn:
            conn.execute(f"CREATE TABLESPACE {space} LOCATION '{top}'")
            conn.execute(f"ALTER DATABASE {name} SET default_tablespace = {space}")
        try:
            with serving(dsn, ca) as client:  # dmlab's tables are made on the tmpfs
                registered = register(client).json()
                device, secret = registered["devId"], registered["secret"]
                with psycopg.connect(dsn, autocommit=True) as filler:
                    filler.execute("CREATE TABLE filler (b BYTEA)")
                    filler.execute("ALTER TABLE filler ALTER b SET STORAGE EXTERNAL")
                    with pytest.raises(errors.DiskFull):
                        for _ in range(1000):  # 64 MiB: far more than the 4 MiB there are
                            filler.execute("INSERT INTO filler VALUES (%s)", (os.urandom(65536),))

                    def upload() -> httpx.Response:
                        return client.put(
                            "/data/report",
                            content=os.urandom(200_000),  # new pages: the disk must give them
                            headers={"Content-Type": "application/octet-stream",
                                     media.DEVID_HEADER: device},
                            auth=(device, secret),
                        )  # fmt: skip

                    assert "(full)" in storage_503(upload())
                    filler.execute("DROP TABLE filler")
                until_served(upload, 204)
        finally:
            with admin(dsn) as conn:
                conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
                conn.execute(f"DROP TABLESPACE {space}")


def test_a_throwaway_cluster_whose_port_was_taken_starts_on_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The port a throwaway cluster picks can be taken before PostgreSQL binds it (a
    parallel suite, a client's outgoing connection): it starts on another one."""
    import socket

    from dmlab.runtime import postgres

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    picks = iter([taken.getsockname()[1]])
    free = postgres._free_port
    monkeypatch.setattr(postgres, "_free_port", lambda: next(picks, None) or free())
    try:
        with postgres.throwaway_cluster() as cluster:
            assert cluster.port != taken.getsockname()[1]
            with psycopg.connect(cluster.dsn) as connection:
                assert connection.execute("SELECT 1").fetchone() == (1,)
    except postgres.PostgresNotFound as missing:
        pytest.skip(f"PostgreSQL tests need a server: {missing}")
    finally:
        taken.close()
