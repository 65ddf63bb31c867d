"""Several server processes on one PostgreSQL database behave as one server: two
``python -m dmlab serve`` on different ports, sharing the database and the data
directory (the lab CA), with a client talking to either."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_cli import ACCOUNT

from helpers import BROWSER_ACCEPT, START_TIMEOUT, Process, csrf_of, free_port

DEV_IDS = iter(f"IMEI:49015420323{n:04d}" for n in range(10_000))


@pytest.fixture(scope="module")
def pair(postgres_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two servers' URLs, started one after the other (the first creates the CA)."""
    import psycopg

    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute("CREATE DATABASE dmlab_workers_pair")
    database = postgres_server.rsplit("/", 1)[0] + "/dmlab_workers_pair"
    tmp = tmp_path_factory.mktemp("pair")
    processes: list[Process] = []
    urls = []
    try:
        for _ in range(2):
            process = Process.start(
                "serve",
                "--port",
                str(free_port()),
                "--data",
                str(tmp / "data"),
                "--account",
                ":".join(ACCOUNT),
                "--database",
                database,
                cwd=tmp,
            )
            processes.append(process)
            urls.append(process.expect(r"dmlab serving (https://\S+) ", START_TIMEOUT)[1])
        yield urls
    finally:
        codes = [process.terminate() for process in processes]
    assert codes == [0, 0], "\n".join(line for p in processes for line in p.lines)


def _client(url: str, ca: Path, **kwargs: object) -> httpx.Client:
    verify = ssl.create_default_context(cafile=str(ca))
    return httpx.Client(base_url=url, verify=verify, timeout=30, **kwargs)  # type: ignore[arg-type]


def _ca(pair: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "pair0" / "data" / "ca.pem"


def test_a_device_polling_one_server_is_woken_by_a_session_queued_on_the_other(
    pair: list[str], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    a, b = pair
    ca = _ca(pair, tmp_path_factory)
    dev_id = next(DEV_IDS)
    with _client(b, ca, auth=ACCOUNT, headers={"Accept": "application/json"}) as operator:
        secret = operator.post("/devices/new", json={"devId": dev_id}).json()["secret"]
        device = Process.start(
            "device", "--server", a, "--cafile", str(ca), "--dev-id", dev_id,
            "--secret", secret, cwd=tmp_path,
        )  # fmt: skip
        try:
            # The device's first long-poll is waiting on A (its 204 would come after 25 s).
            queued = operator.post(f"/devices/{dev_id}/sessions", json={"job": "inventory"})
            assert queued.status_code == 202, queued.text
            device.expect(rf"^{re.escape(dev_id)} GET /notifications -> 200$", START_TIMEOUT)
            started = device.expect(rf"^{re.escape(dev_id)} POST /sessions/next -> 200 session")
            assert started
            device.expect(rf"^{re.escape(dev_id)} PUT /sessions/id/\S+ -> 204$")
            completed = operator.get("/sessions/completed").json()["Sessions"]
            assert [s["Result"] for s in completed if queued.json()["SessionID"] in s["IDs"]] == [
                "OK"
            ]
        finally:
            assert device.terminate() == 0, "\n".join(device.lines)


def test_a_csrf_token_from_one_server_is_accepted_by_the_other(
    pair: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    a, b = pair
    ca = _ca(pair, tmp_path_factory)
    dev_id = next(DEV_IDS)
    with _client(a, ca, auth=ACCOUNT) as on_a, _client(b, ca, auth=ACCOUNT) as on_b:
        form = on_a.get("/devices/new", headers={"Accept": BROWSER_ACCEPT})
        assert form.status_code == 200, form.text
        posted = on_b.post(
            "/devices/new",
            data={"devId": dev_id, "csrf": csrf_of(form.text)},
            headers={"Accept": "application/json"},
        )
        assert posted.status_code == 201, posted.text
        assert on_a.get(f"/devices/{dev_id}", headers={"Accept": "application/json"}).is_success


def test_a_device_deleted_on_one_server_cannot_log_in_on_the_other(
    pair: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A's verified-credentials cache checks the stored record on every use."""
    a, b = pair
    ca = _ca(pair, tmp_path_factory)
    dev_id = next(DEV_IDS)
    with _client(b, ca, auth=ACCOUNT, headers={"Accept": "application/json"}) as operator:
        secret = operator.post("/devices/new", json={"devId": dev_id}).json()["secret"]
        with _client(a, ca, auth=(dev_id, secret)) as device:
            assert device.get("/notifications").status_code == 204  # now in A's cache
            assert operator.delete(f"/devices/{dev_id}").status_code == 204
            assert device.get("/notifications").status_code == 401


def test_a_lockout_earned_on_one_server_holds_on_the_other(
    pair: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from dmlab.server.auth import FREE_FAILURES

    a, b = pair
    ca = _ca(pair, tmp_path_factory)
    wrong = ("guesser", "not-the-password")
    with _client(a, ca, auth=wrong) as on_a, _client(b, ca, auth=wrong) as on_b:
        for _ in range(FREE_FAILURES + 1):
            assert on_a.get("/devices").status_code == 401
        # The last failure locked (guesser, 127.0.0.1) for 2 s, on every server.
        refused = on_b.get("/devices")
        assert refused.status_code == 429, refused.text
        assert "Retry-After" in refused.headers


def test_workers_need_postgresql(tmp_path: Path) -> None:
    process = Process.start(
        "serve", "--workers", "2", "--port", str(free_port()), "--data", str(tmp_path / "d"),
        cwd=tmp_path,
    )  # fmt: skip
    process.expect(r"--workers needs --database postgresql://", START_TIMEOUT)
    assert process.popen.wait(START_TIMEOUT) == 2
    process.close()


def test_racing_starts_on_two_workers(new_database: Callable[[], str], tmp_path: Path) -> None:
    """tests/test_concurrency.py's fleet against ``serve --workers 2``: every session
    completed exactly once, none lost, none seen by another device."""
    from test_concurrency import ACCOUNTS, check, fleet

    from dmlab.server import build_services
    from dmlab.store.postgres import PostgresStore

    database = new_database()
    accounts = [f"--account={name}:{password}" for name, password in ACCOUNTS]
    process = Process.start(
        "serve", "--workers", "2", "--port", str(free_port()), "--data", str(tmp_path / "d"),
        "--database", database, *accounts, cwd=tmp_path,
    )  # fmt: skip
    try:
        url = process.expect(r"dmlab serving (https://\S+) with 2 workers", START_TIMEOUT)[1]
        verify = ssl.create_default_context(cafile=str(tmp_path / "d" / "ca.pem"))

        async def main() -> Any:
            async with httpx.AsyncClient(
                verify=verify, timeout=60, limits=httpx.Limits(max_connections=50)
            ) as client:
                return await fleet(client, url, 40)

        out = asyncio.run(main())
    finally:
        code = process.terminate()
    assert code == 0, "\n".join(process.lines)
    assert len(process.lines) >= 1
    with PostgresStore(database) as store:
        # Who started what is checked from the store (the events stayed in each worker).
        check(build_services(store=store), out, None)
    assert len(out.raced) == 8


def test_two_processes_number_one_trace(new_database: Callable[[], str]) -> None:
    """Each server keeps its exchanges in the database; their numbers come from it,
    so one process's records never overwrite another's and all share one order."""
    from dmlab.store.postgres import PostgresStore
    from dmlab.trace import Trace

    database = new_database()
    with PostgresStore(database) as one, PostgresStore(database) as other:
        traces = [Trace(sink=one), Trace(sink=other)]
        for i in range(4):
            traces[i % 2].record(source="device", method="GET", path=f"/{i}", status=200)
        kept = one.load_trace(10)
    assert [e.path for e in kept] == ["/0", "/1", "/2", "/3"]
    assert [e.seq for e in kept] == sorted({e.seq for e in kept})
