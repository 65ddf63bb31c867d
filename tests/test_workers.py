"""Several server processes on one PostgreSQL database behave as one server: two
``python -m dmlab serve`` on different ports, sharing the database and the data
directory (the lab CA), with a client talking to either."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import re
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import (
    ACCOUNT,
    BROWSER_ACCEPT,
    START_TIMEOUT,
    Process,
    csrf_of,
    https_client,
    operator_client,
    run_device,
)

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
                "0",
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


def _ca(pair: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "pair0" / "data" / "ca.pem"


def test_a_device_polling_one_server_is_woken_by_a_session_queued_on_the_other(
    pair: list[str], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    a, b = pair
    ca = _ca(pair, tmp_path_factory)
    dev_id = next(DEV_IDS)
    with operator_client(b, ca) as operator:
        secret = operator.post("/devices/new", json={"devId": dev_id}).json()["secret"]
        device = run_device(a, ca, dev_id, secret, cwd=tmp_path)
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
    with https_client(a, ca, auth=ACCOUNT) as on_a, https_client(b, ca, auth=ACCOUNT) as on_b:
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
    with operator_client(b, ca) as operator:
        secret = operator.post("/devices/new", json={"devId": dev_id}).json()["secret"]
        with https_client(a, ca, auth=(dev_id, secret)) as device:
            assert device.get("/notifications").status_code == 204  # now in A's cache
            assert operator.delete(f"/devices/{dev_id}").status_code == 204
            assert device.get("/notifications").status_code == 401


def test_a_devices_new_poll_on_one_server_ends_its_poll_on_the_other(
    pair: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """One long-poll per device for the whole server (``--polls-per-device 1``): of the
    device's polls on A and on B, the later one ends the earlier at once (204), as a
    second poll on one server does; the one left gets the device's next notification.
    Before, each server kept its own and both waited out their 20 s, and a poll whose
    connection had died unseen could take the notification."""
    a, b = pair
    ca = _ca(pair, tmp_path_factory)
    dev_id = next(DEV_IDS)
    answers: queue.Queue[tuple[str, int]] = queue.Queue()
    with operator_client(b, ca) as operator:
        secret = operator.post("/devices/new", json={"devId": dev_id}).json()["secret"]

        def poll(url: str) -> None:
            with https_client(url, ca, auth=(dev_id, secret)) as device:
                answers.put((url, device.get("/notifications", params={"wait": 20}).status_code))

        threads = [threading.Thread(target=poll, args=(url,)) for url in (a, b)]
        for thread in threads:
            thread.start()
        ended, status = answers.get(timeout=12)  # well before either poll's 20 s
        assert status == 204
        queued = operator.post(f"/devices/{dev_id}/sessions", json={"job": "inventory"})
        assert queued.status_code == 202, queued.text
        assert answers.get(timeout=12) == ({a: b, b: a}[ended], 200)
        for thread in threads:
            thread.join(10)


def test_a_lockout_earned_on_one_server_holds_on_the_other(
    pair: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from dmlab.server.auth import FREE_FAILURES

    a, b = pair
    ca = _ca(pair, tmp_path_factory)
    wrong = ("guesser", "not-the-password")
    with https_client(a, ca, auth=wrong) as on_a, https_client(b, ca, auth=wrong) as on_b:
        for _ in range(FREE_FAILURES + 1):
            assert on_a.get("/devices").status_code == 401
        # The last failure locked (guesser, 127.0.0.1) for 2 s, on every server.
        refused = on_b.get("/devices")
        assert refused.status_code == 429, refused.text
        assert "Retry-After" in refused.headers


def test_workers_need_postgresql(tmp_path: Path) -> None:
    process = Process.start(
        "serve", "--workers", "2", "--port", "0", "--data", str(tmp_path / "d"),
        cwd=tmp_path,
    )  # fmt: skip
    process.expect(r"--workers needs --database postgresql://", START_TIMEOUT)
    assert process.popen.wait(START_TIMEOUT) == 2
    process.close()


def test_racing_starts_on_two_workers(new_database: Callable[[], str], tmp_path: Path) -> None:
    """tests/test_concurrency.py's fleet against ``serve --workers 2``: every session
    completed exactly once, none lost, none seen by another device."""
    from test_concurrency import ACCOUNTS, CHOICES, check, fleet

    from dmlab.events import REPLAY_SIZE
    from dmlab.server import build_services
    from dmlab.store.postgres import PostgresStore

    database = new_database()
    accounts = [f"--account={name}:{password}" for name, password in ACCOUNTS]
    process = Process.start(
        "serve", "--workers", "2", "--port", "0", "--data", str(tmp_path / "d"),
        "--database", database, *accounts,
        *(f"--choice={key}={value}" for key, value in CHOICES.items()), cwd=tmp_path,
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
        # Every worker's events are in the one log: each session started once, over all.
        logged = store.events_after(0, None, REPLAY_SIZE)
        assert len(logged) < REPLAY_SIZE, "the log was trimmed: run fewer devices"
        started = Counter(e.data["key"] for e in logged if e.kind == "session.started")
        check(build_services(store=store), out, started)
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


class Stream:
    """``GET /events`` read in a thread until ``wanted`` frames about ``dev_ids`` came."""

    def __init__(
        self, client: httpx.Client, dev_ids: set[str], wanted: int, last_event_id: str = ""
    ) -> None:
        self.frames: list[dict[str, Any]] = []
        self.ready = threading.Event()
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self._thread = threading.Thread(
            target=self._read, args=(client, headers, dev_ids, wanted), daemon=True
        )
        self._thread.start()
        assert self.ready.wait(START_TIMEOUT), "the stream did not start"

    def _read(
        self, client: httpx.Client, headers: dict[str, str], dev_ids: set[str], wanted: int
    ) -> None:
        with client.stream("GET", "/events", headers=headers) as response:
            assert response.status_code == 200
            frame: dict[str, Any] = {}
            for line in response.iter_lines():
                self.ready.set()  # the first comment comes once the subscription is in place
                if line and not line.startswith(":"):
                    field, _, value = line.partition(": ")
                    frame[field] = value
                elif not line:
                    data = json.loads(frame["data"]) if "data" in frame else {}
                    if data.get("devId") in dev_ids:
                        self.frames.append({"id": int(frame["id"]), **data})
                    frame = {}
                    if len(self.frames) == wanted:
                        return
        self.ready.set()

    def result(self) -> list[tuple[int, str, str]]:
        self._thread.join(START_TIMEOUT)
        assert not self._thread.is_alive(), f"only these came: {self.frames}"
        assert all(frame["id"] == frame["seq"] for frame in self.frames)
        return [(frame["id"], frame["kind"], frame["devId"]) for frame in self.frames]


def test_each_server_streams_every_servers_events_in_one_order(
    pair: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Events published on A and on B reach the streams of both, in the same order,
    under the same numbers; a reconnect to B with an id A sent replays the rest."""
    a, b = pair
    ca = _ca(pair, tmp_path_factory)
    x, y = next(DEV_IDS), next(DEV_IDS)
    json_accept = {"Accept": "application/json"}
    with (
        https_client(a, ca, auth=ACCOUNT, headers=json_accept) as on_a,
        https_client(b, ca, auth=ACCOUNT, headers=json_accept) as on_b,
    ):
        streams = [Stream(on_a, {x, y}, 4), Stream(on_b, {x, y}, 4)]
        assert on_b.post("/devices/new", json={"devId": x}).status_code == 201
        assert on_a.post("/devices/new", json={"devId": y}).status_code == 201
        for client, dev_id in ((on_b, x), (on_a, y)):
            queued = client.post(
                f"/devices/{dev_id}/sessions", json={"job": "inventory", "notify": False}
            )
            assert queued.status_code == 202, queued.text
        seen = [stream.result() for stream in streams]
        assert seen[0] == seen[1]
        assert [(kind, dev_id) for _, kind, dev_id in seen[0]] == [
            ("device.registered", x),
            ("device.registered", y),
            ("session.queued", x),
            ("session.queued", y),
        ]
        numbers = [seq for seq, _, _ in seen[0]]
        assert numbers == sorted(set(numbers))

        resumed = Stream(on_b, {x, y}, 3, last_event_id=str(numbers[0])).result()
        assert resumed == seen[0][1:]


def test_the_event_log_keeps_the_newest_and_replays_one_accounts(
    new_database: Callable[[], str],
) -> None:
    from dmlab.events import Event
    from dmlab.store.postgres import PostgresStore

    with PostgresStore(new_database()) as store:
        assert store.last_event_seq() == 0
        for i in range(5):
            account = "demo" if i % 2 == 0 else "rival"
            event = Event(0, "device.updated", account, f"dev{i}", 1.0, {"n": i})
            assert store.append_events([event], keep=3) == [i + 1]
        assert [e.seq for e in store.events_after(0, None, 10)] == [3, 4, 5]
        assert [(e.seq, e.data) for e in store.events_after(3, "demo", 10)] == [(5, {"n": 4})]
        assert [e.seq for e in store.events_after(0, None, 2)] == [3, 4]
        assert store.last_event_seq() == 5
        # Whatever number a client sends as Last-Event-ID, the query takes it.
        assert store.events_after(10**30, "demo", 10) == []
        assert len(store.events_after(-(10**30), "demo", 10)) == 2


def test_max_connections_is_the_servers_total_over_its_workers(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    """``--workers 2 --max-connections 2``: one connection each, so of three held
    connections at least one is refused, however the kernel spread them (each worker
    held 2 before, so all three were served)."""
    process = Process.start(
        "serve", "--workers", "2", "--max-connections", "2", "--port", "0",
        "--data", str(tmp_path / "d"), "--database", new_database(), cwd=tmp_path,
    )  # fmt: skip
    held: list[ssl.SSLSocket] = []
    try:
        url = process.expect(r"dmlab serving (https://\S+) with 2 workers", START_TIMEOUT)[1]
        for _ in range(2):
            process.expect(r"dmlab worker \d+ started", START_TIMEOUT)
        port = int(url.rsplit(":", 1)[1])
        context = ssl.create_default_context(cafile=str(tmp_path / "d" / "ca.pem"))
        statuses = []
        for _ in range(3):
            raw = socket.create_connection(("127.0.0.1", port), timeout=START_TIMEOUT)
            held.append(context.wrap_socket(raw, server_hostname="127.0.0.1"))
            statuses.append(_status(held[-1]))
    finally:
        for sock in held:
            sock.close()
        code = process.terminate()
    assert code == 0, "\n".join(process.lines)
    assert statuses.count(503) >= 1, statuses
    assert all(status in (200, 503) for status in statuses), statuses


def _status(sock: ssl.SSLSocket) -> int:
    """The status of the answer to one request (a refused connection answers at once)."""
    head = b""
    with contextlib.suppress(OSError):
        sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
    with contextlib.suppress(OSError):
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


def test_max_connections_are_shared_out_evenly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dmlab.__main__ import main
    from dmlab.caps import shares

    assert shares(1000, 2) == [500, 500]
    assert shares(5, 3) == [2, 2, 1]
    assert shares(2, 2) == [1, 1]
    # Fewer than one each is refused before anything starts (nothing listens there).
    code = main(
        ["serve", "--workers", "3", "--max-connections", "2", "--data", str(tmp_path / "d"),
         "--database", "postgresql://nowhere/x"]
    )  # fmt: skip
    assert code == 2
    assert "--max-connections 2 is shared by --workers 3" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_the_account_caps_on_waits_are_shared_out_among_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each worker enforces its share of --polls-per-account and --streams-per-account
    (dmlab/caps.py says why), the others whole: before, each took the whole cap, so two
    workers let twice the cap through."""
    from dmlab.__main__ import build_parser, main, worker_options

    args = build_parser().parse_args(
        ["serve", "--workers", "3", "--data", "d", "--polls-per-account", "500",
         "--streams-per-account", "16", "--max-connections", "10"]
    )  # fmt: skip
    assert [worker_options(args, i) for i in range(3)] == [
        ["--max-connections=4", "--polls-per-device=1", "--polls-per-account=167",
         "--streams-per-account=6", "--pending-per-device=100", "--pending-per-account=100000"],
        ["--max-connections=3", "--polls-per-device=1", "--polls-per-account=167",
         "--streams-per-account=5", "--pending-per-device=100", "--pending-per-account=100000"],
        ["--max-connections=3", "--polls-per-device=1", "--polls-per-account=166",
         "--streams-per-account=5", "--pending-per-device=100", "--pending-per-account=100000"],
    ]  # fmt: skip
    code = main(
        ["serve", "--workers", "3", "--streams-per-account", "2", "--data",
         str(tmp_path / "d"), "--database", "postgresql://nowhere/x"]
    )  # fmt: skip
    assert code == 2
    assert "--streams-per-account 2 is shared by --workers 3" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_two_workers_hold_the_account_cap_on_event_streams_between_them(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    """``--workers 2 --streams-per-account 2``: of five streams held open at once, at
    most two are served, however the kernel spreads them (each worker took 2 before,
    so up to four were)."""
    process = Process.start(
        "serve", "--workers", "2", "--streams-per-account", "2", "--port", "0",
        "--data", str(tmp_path / "d"), "--database", new_database(),
        "--account", ":".join(ACCOUNT), cwd=tmp_path,
    )  # fmt: skip
    statuses = []
    try:
        url = process.expect(r"dmlab serving (https://\S+) with 2 workers", START_TIMEOUT)[1]
        for _ in range(2):
            process.expect(r"dmlab worker \d+ started", START_TIMEOUT)
        with contextlib.ExitStack() as held:
            for _ in range(5):
                client = held.enter_context(
                    https_client(url, tmp_path / "d" / "ca.pem", auth=ACCOUNT)
                )
                stream = held.enter_context(client.stream("GET", "/events"))
                statuses.append(stream.status_code)
    finally:
        code = process.terminate()
    assert code == 0, "\n".join(process.lines)
    assert 1 <= statuses.count(200) <= 2 and statuses.count(429) >= 3, statuses
