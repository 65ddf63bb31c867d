"""Request times as the store grows: does a year of history slow every session down?

Why: a lab server left running keeps every completed session. Listing pending
work, starting a session and reporting its results must not scan that history,
so their times should stay flat from 1,000 to 1,000,000 stored sessions (target:
largest/smallest ≤ 1.2 at 1,000x the data).

How the stores are filled. One store per size, each filled before anything is
timed: one account, 10,000 devices, and that many completed sessions (one
inventory round each) round-robin over the devices. The sessions are written by
the store's bulk load, ``Store.add_sessions``: the same rows ``put_session``
writes one by one (tests/test_store.py holds the two equal), in batches, through
the store API and not through HTTP, which would take hours for a million. The
store's trace also gets what a server that ran those sessions would have kept:
two exchanges per session, up to the trace's limit (100,000). Then a server is
built on each store as ``dmlab serve`` builds it (the trace kept in the store)
and requests go through its ASGI app in process (``httpx.ASGITransport``).

What is timed. Each figure is the median of many requests, measured in rounds
that alternate between the sizes (load from elsewhere on a shared machine then
hits every size alike). A size's figure is the median of its rounds' medians; the
ratio is the median of the rounds' ratios (largest size over smallest, paired).
Beside each wall-clock time, the CPU time the request cost (this process, and the
store's PostgreSQL server processes where they run on this machine): on a loaded
machine the wall clock includes waiting for a core, the CPU time does not.

- ``GET /sessions/pending`` as a device (its own pending sessions),
- ``POST /sessions/next`` as a device with one pending session (queued untimed),
- ``PUT /sessions/id/{id}`` as that device, reporting its statuses (completes it),
- ``GET /sessions/pending`` as the account (all 10,000 devices'; a quarter of the samples),
- ``GET /sessions/completed`` as the account: its first page, as a client asks for it
  (no ``limit``: the default page, 100; a quarter of the samples),
- ``GET /devices`` as the account: its first page likewise (a quarter of the samples).

The listings answer a page (lab choice paging), so every answer timed here is the same
size at every size: only the stored history differs. A device's own completed listing
is not timed: its first page itself grows with the history (from 0 to 100 sessions).

    .venv/bin/python benchmarks/growth.py           # SQLite and a throwaway PostgreSQL
    .venv/bin/python benchmarks/growth.py --sizes 1000 100000 1000000 --database sqlite
    .venv/bin/python benchmarks/growth.py --sizes 100 1000 --devices 50 --database memory
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dmlab.protocol import Command, Report, Status, media
from dmlab.protocol.notification import notification_key
from dmlab.server import Services, build_services, create_app
from dmlab.store import (
    Account,
    Device,
    JobSpec,
    MemoryStore,
    Origin,
    Result,
    Round,
    Session,
    SQLiteStore,
    State,
    Store,
)
from dmlab.trace import Trace

ACCOUNT, PASSWORD = "growth", "growth-password"
SERVER_URL = "https://dmlab.growth"
CHEAP_HASH = {"n": 2, "r": 1, "p": 1}  # 10,000 devices at the real cost would take minutes
COMMANDS = (
    Command.of("GET", "urn:oma:mo:oma-dm-devinfo:1.0//"),
    Command.of("GET", "urn:oma:mo:oma-fumo:1.0/*/State"),
    Command.of("END"),
)
STATUSES = (
    Status(200, data={"DevInfo": {"DevID": "IMEI:0", "FwV": "1.0.0", "Man": "dmlab"}}),
    Status(200, data={"fw1": {"State": 10}}),
)
REPORT = media.DM20_RESPONSE, json.dumps(Report(STATUSES).to_json()).encode()
BATCH = 50_000  # sessions per add_sessions() call (one transaction each) while filling
TRACE_LIMIT = 100_000  # Trace()'s default limit, what `dmlab serve` keeps
DATABASES = "memory, sqlite, postgresql://…, throwaway-postgresql"


def dev_id(i: int) -> str:
    return f"IMEI:{360000000000000 + i}"


def secret(i: int) -> str:
    return f"growth-secret-{i:06d}"


def stored_session(n: int, devices: int, now: float) -> Session:
    key = f"done{n:012x}"
    return Session(
        key=key,
        dev_id=dev_id(n % devices),
        account=ACCOUNT,
        job=JobSpec("inventory"),
        origin=Origin.SERVER,
        state=State.COMPLETED,
        result=Result.OK,
        session_id=key,
        rounds=(Round(key, COMMANDS, STATUSES),),
        created_at=now,
        started_at=now,
        ended_at=now,
    )


def fill(store: Store, size: int, devices: int, secret_hashes: list[str], label: str) -> None:
    """The account, its devices, ``size`` completed sessions and the trace they left."""
    store.put_account(Account(ACCOUNT, secret_hashes[-1]))
    with store.transaction():
        for i in range(devices):
            store.put_device(
                Device(
                    dev_id=dev_id(i),
                    account=ACCOUNT,
                    secret_hash=secret_hashes[i],
                    notify_key=notification_key(secret(i)),
                )
            )
    start, now = time.perf_counter(), time.time()
    for first in range(0, size, BATCH):
        stop = min(first + BATCH, size)
        store.add_sessions(stored_session(n, devices, now) for n in range(first, stop))
        print(
            f"  {label}: {stop} sessions stored ({time.perf_counter() - start:.0f} s)", flush=True
        )
    fill_trace(store, min(2 * size, TRACE_LIMIT), devices, now)
    settle(store)
    print(f"  {label}: filled in {time.perf_counter() - start:.0f} s", flush=True)


def fill_trace(store: Store, count: int, devices: int, now: float) -> None:
    """The exchanges a server keeps in its store for the sessions it ran: ``POST
    /sessions/next`` and ``PUT`` for each, the newest ``count``. Written with SQL
    (the rows ``append_trace`` writes; one at a time, 100,000 would take minutes on
    PostgreSQL), and the store's trace numbering moved past them."""
    rows = [
        (
            n + 1, now, "device", "server", dev_id(n // 2 % devices),
            *(("POST", "/sessions/next", 200) if n % 2 == 0 else ("PUT", f"/sessions/id/done{n // 2:012x}", 204)),
            f"done{n // 2:012x}", "", "SessionID: GET, GET, END" if n % 2 == 0 else "", 0.002,
        )
        for n in range(count)
    ]  # fmt: skip
    columns = "seq, time, source, target, dev_id, method, path, status, session, request, response, elapsed"
    if isinstance(store, SQLiteStore):
        with contextlib.closing(sqlite3.connect(store.path)) as lite, lite:
            lite.executemany(f"INSERT INTO trace ({columns}) VALUES ({', '.join('?' * 12)})", rows)
    elif hasattr(store, "dsn"):
        import psycopg

        with (
            psycopg.connect(store.dsn) as conn,
            conn.cursor().copy(f"COPY trace ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        with psycopg.connect(store.dsn, autocommit=True) as pg:
            pg.execute("SELECT setval('trace_seq', %s)", (count + 1,))


def settle(store: Store) -> None:
    """What the store of a server that grew over months has had done long ago, done
    now (timing right after a bulk load would measure the catching up): SQLite's WAL
    checkpointed; PostgreSQL's tables vacuumed and analyzed (autovacuum's work) and
    their pages written out (a checkpoint, where the role may)."""
    if isinstance(store, SQLiteStore):
        store.checkpoint()
    elif hasattr(store, "dsn"):
        import psycopg

        with psycopg.connect(store.dsn, autocommit=True) as pg:
            pg.execute("VACUUM (ANALYZE) accounts, devices, sessions, session_ids, trace")
            with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
                pg.execute("CHECKPOINT")


Time = tuple[float, float]  # one request's wall-clock and CPU seconds
Figures = dict[str, Time]  # per figure: the median wall-clock and CPU milliseconds


class Server:
    """A server built on one filled store, and the requests timed against it."""

    def __init__(self, store: Store, devices: int, samples: int) -> None:
        sink: Any = store if hasattr(store, "append_trace") else None  # what serve keeps
        self.services: Services = build_services(
            store=store, hash_cost=CHEAP_HASH, trace=Trace(sink=sink)
        )
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(self.services)), base_url=SERVER_URL
        )
        self.samples = samples
        step = max(devices // samples, 1)
        self.picks = list(range(0, devices, step))
        self.records = {i: store.get_device(dev_id(i)) for i in self.picks}
        self.dsn: str | None = getattr(store, "dsn", None)
        self.backends: list[str] = []

    def find_backends(self) -> None:
        """The /proc files of this store's PostgreSQL server processes (its pool's
        connections, named by ``application_name``), if the server runs here."""
        if self.dsn is None:
            return
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as pg:
            rows = pg.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = "
                "current_setting('application_name') AND pid <> pg_backend_pid()"
            ).fetchall()
        self.backends = [f"/proc/{pid}/schedstat" for (pid,) in rows]

    def cpu(self) -> float:
        """CPU seconds spent so far by this process and this store's server processes:
        the work a request costs, which waiting for a core on a loaded machine is not."""
        total = time.process_time()
        for path in self.backends:
            with contextlib.suppress(OSError), open(path) as stat:
                total += int(stat.read().split()[0]) / 1e9
        return total

    @staticmethod
    def as_device(i: int) -> dict[str, Any]:
        return {"auth": (dev_id(i), secret(i)), "headers": {"OMADM-DevID": dev_id(i)}}

    async def timed(self, request: Awaitable[httpx.Response], status: int) -> tuple[Time, Any]:
        cpu = self.cpu()
        start = time.perf_counter()
        response = await request
        elapsed = time.perf_counter() - start
        if response.status_code != status:
            raise RuntimeError(f"expected {status}, got {response.status_code}: {response.text}")
        return (elapsed, self.cpu() - cpu), response

    async def device_pending(self, i: int) -> tuple[Time]:
        return (
            (await self.timed(self.client.get("/sessions/pending", **self.as_device(i)), 200))[0],
        )

    async def session(self, i: int) -> tuple[Time, Time]:
        """A pending session queued (untimed), started and reported: both times."""
        record = self.records[i]
        assert record is not None
        self.services.engine.queue(record, JobSpec("inventory"), Origin.SERVER, notify=False)
        started, answer = await self.timed(
            self.client.post("/sessions/next", **self.as_device(i)), 200
        )
        content_type, body = REPORT
        device = self.as_device(i)
        device["headers"] = {**device["headers"], "Content-Type": content_type}
        put = self.client.put(answer.headers["location"], content=body, **device)
        reported, _ = await self.timed(put, 204)
        return started, reported

    async def account_get(self, path: str) -> tuple[Time]:
        return ((await self.timed(self.client.get(path, auth=(ACCOUNT, PASSWORD)), 200))[0],)

    async def account_pending(self, i: int) -> tuple[Time]:
        return await self.account_get("/sessions/pending")

    async def account_completed(self, i: int) -> tuple[Time]:
        return await self.account_get("/sessions/completed")

    async def account_devices(self, i: int) -> tuple[Time]:
        return await self.account_get("/devices")

    async def warm_up(self) -> None:
        """The authenticator's cache and the code paths, as a running server has them."""
        for i in self.picks:
            await self.device_pending(i)
        await self.account_pending(0)

    async def close(self) -> None:
        await self.client.aclose()


#: What is timed: (name, a "|" between two times one call gives; 1/share of the
#: samples; the call, on a server and a device index).
FIGURES: list[tuple[str, int, Callable[[Server, int], Awaitable[tuple[Time, ...]]]]] = [
    ("device GET /sessions/pending", 1, Server.device_pending),
    ("device POST /sessions/next|device PUT /sessions/id/{id}", 1, Server.session),
    ("account GET /sessions/pending", 4, Server.account_pending),
    ("account GET /sessions/completed", 4, Server.account_completed),
    ("account GET /devices", 4, Server.account_devices),
]


async def round_of(servers: list[Server], samples: int) -> list[Figures]:
    """One round: every request made on each server in turn (one size after the
    other, request by request), so a burst of load from elsewhere hits all sizes."""
    picks = servers[0].picks
    times: list[dict[str, list[Time]]] = [{} for _ in servers]
    for name, share, call in FIGURES:
        for server in servers:
            server.find_backends()
        for n in range(max(samples // share, 3)):
            for server, kept in zip(servers, times, strict=True):
                got = await call(server, picks[n % len(picks)])
                for part, value in zip(name.split("|"), got, strict=True):
                    kept.setdefault(part, []).append(value)
    return [
        {
            name: (
                statistics.median(wall for wall, _ in values) * 1000,
                statistics.median(cpu for _, cpu in values) * 1000,
            )
            for name, values in kept.items()
        }
        for kept in times
    ]


@contextlib.contextmanager
def stores(database: str, sizes: list[int], directory: str) -> Iterator[dict[int, Store]]:
    """One empty store per size on ``database``; closed (and dropped) on exit."""
    with contextlib.ExitStack() as stack:
        if database == "memory":
            yield {size: MemoryStore() for size in sizes}
        elif database == "sqlite":
            made = {
                size: SQLiteStore(os.path.join(directory, f"growth-{size}.sqlite3"))
                for size in sizes
            }
            for store in made.values():
                stack.callback(store.close)
            yield dict(made)
        elif database == "throwaway-postgresql" or database.startswith(
            ("postgresql:", "postgres:")
        ):
            if database == "throwaway-postgresql":
                from dmlab.runtime.postgres import throwaway_postgres

                database = stack.enter_context(throwaway_postgres())
                print(f"  throwaway PostgreSQL: {database}", flush=True)
            yield {size: stack.enter_context(postgres_schema(database, size)) for size in sizes}
        else:
            raise SystemExit(f"growth.py: --database {database!r}: expected one of {DATABASES}")


@contextlib.contextmanager
def postgres_schema(dsn: str, size: int) -> Iterator[Store]:
    """A PostgresStore in a schema of its own (``dmlab_growth_<size>``), dropped after:
    the sizes share one database without sharing tables."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    from dmlab.store.postgres import PostgresStore

    schema = f"dmlab_growth_{size}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        conninfo = make_conninfo(dsn, options=f"-c search_path={schema}", application_name=schema)
        with PostgresStore(conninfo) as store:
            yield store
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


async def grow(
    database: str, sizes: list[int], devices: int, samples: int, rounds: int, directory: str
) -> dict[int, list[Figures]]:
    label = "postgresql" if "postgres" in database else database
    hashes = build_services(hash_cost=CHEAP_HASH).auth
    secret_hashes = [hashes.hash(secret(i)) for i in range(devices)] + [hashes.hash(PASSWORD)]
    results: dict[int, list[Figures]] = {size: [] for size in sizes}
    with stores(database, sizes, directory) as made:
        servers = {}
        for size, store in made.items():
            fill(store, size, devices, secret_hashes, f"{label} {size}")
            servers[size] = Server(store, devices, samples)
            await servers[size].warm_up()
        await round_of(list(servers.values()), max(samples // 10, 3))  # the code paths, untimed
        for r in range(rounds):
            before = load()
            for size, figures in zip(
                sizes, await round_of(list(servers.values()), samples), strict=True
            ):
                results[size].append(figures)
                shown = "   ".join(
                    f"{name} {wall:7.3f} ms (cpu {cpu:.3f})"
                    for name, (wall, cpu) in figures.items()
                )
                print(
                    f"{label:<10} round {r + 1} load {before} stored {size:>7}   {shown}",
                    flush=True,
                )
        for server in servers.values():
            await server.close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1000, 100000, 1000000],
        help="stored completed sessions, one store each (default 1000 100000 1000000)",
    )
    parser.add_argument("--devices", type=int, default=10000, help="devices (default 10000)")
    parser.add_argument(
        "--samples",
        type=int,
        default=100,
        help="requests per figure and round; the account listing takes a quarter (default 100)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument(
        "--database",
        nargs="+",
        default=["sqlite", "throwaway-postgresql"],
        help=f"where the stores are: {DATABASES} (default sqlite throwaway-postgresql); "
        "a postgresql:// database gets one schema per size, dropped after",
    )
    args = parser.parse_args(argv)
    sizes = sorted(set(args.sizes))
    print(
        f"median request time through the ASGI app; {args.devices} devices, one account; "
        f"{args.rounds} alternating rounds of {args.samples} requests per figure"
    )
    with tempfile.TemporaryDirectory(prefix="dmlab-growth-") as directory:
        for database in args.database:
            results = asyncio.run(
                grow(database, sizes, args.devices, args.samples, args.rounds, directory)
            )
            label = "postgresql" if "postgres" in database else database
            small, large = results[sizes[0]], results[sizes[-1]]
            for name in small[0]:
                # Paired: a round's sizes ran request by request, under the same load.
                ratios = [
                    [b[name][k] / a[name][k] for a, b in zip(small, large, strict=True)]
                    for k in (0, 1)
                ]
                shown = "  ".join(
                    f"{s}: {statistics.median(f[name][0] for f in results[s]):.3f} ms "
                    f"(cpu {statistics.median(f[name][1] for f in results[s]):.3f})"
                    for s in sizes
                )
                print(
                    f"{label:<10} ratio {name}: {statistics.median(ratios[0]):.2f} "
                    f"(rounds {min(ratios[0]):.2f}-{max(ratios[0]):.2f}; "
                    f"cpu {statistics.median(ratios[1]):.2f}; {sizes[-1]} vs {sizes[0]} stored)"
                    f"   {shown}   target <= 1.2"
                )


if __name__ == "__main__":
    main()
