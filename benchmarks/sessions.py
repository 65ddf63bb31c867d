"""Client-initiated DM sessions over real HTTPS, against a bare-Starlette baseline.

Why a baseline: on one 2-core machine the absolute rate says more about the
machine (TLS, httpx, uvicorn, one GIL shared by client and server) than about
dmlab. The same number of HTTPS exchanges, with the same body sizes, through the
same ServerThread, TLS and httpx clients but without any DM logic, is what dmlab
could reach at best; the ratio between the two is the figure that matters: one ratio
per round (both sides measured back to back), printed as the median and the spread,
with the 1-minute load average. With the server in this process, the process's CPU
time per session of each side is printed too: the rates move with whatever else loads
the machine, the CPU per session much less, and it is what dmlab's code changes. It is
split into the server thread's part and, of that, the app's (:class:`AppClock`): the
rest of the process is the clients, the rest of the server thread uvicorn and TLS.

One session is: ``POST /alert`` (ClientInitiatedMgmt) → package 2 with the
inventory commands → the device executes them → one ``PUT /sessions/id/{id}``
with the statuses → ``204`` (completed). Sessions are queued beforehand
(``notify=False``), outside the measured part. Both sides are warmed up, then
measured in rounds at the same concurrency (one connection per device).

    .venv/bin/python benchmarks/sessions.py                # 50 devices x 20 sessions
    .venv/bin/python benchmarks/sessions.py --devices 5 --sessions-per-device 2

``--app-only`` calls the two ASGI apps directly instead, with one device's captured
requests (no uvicorn, TLS or httpx; one thread): the CPU the server's own code costs per
session, the figure a change to the request path moves. It is stable within a process,
but on the 2-core VM it was measured on, not between processes: the same code took
415–899 µs per session in different processes (same hash seed, ASLR off, either core)
while the bare app stayed at 56–84 µs. Compare runs side by side, several processes each.

``--database sqlite|postgresql://…`` measures ``python -m dmlab serve`` in a process of
its own (``--workers N`` of them on PostgreSQL) instead of a server in this process;
the baseline stays in this process. "Scaling out" in the README has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dmlab.caps import Caps, option
from dmlab.core.devices import new_secret
from dmlab.device import VirtualDevice
from dmlab.protocol import media
from dmlab.protocol.notification import notification_key
from dmlab.runtime.threads import ServerThread
from dmlab.runtime.tls import LabCA
from dmlab.server import build_services, create_app
from dmlab.store import Account, Device, JobSpec, Origin

ACCOUNT = "bench"


@dataclass
class Bodies:
    """The bytes of one real dmlab session, replayed by the baseline."""

    alert: bytes = b""
    commands: bytes = b""
    status: bytes = b""
    #: The requests' own headers (``--app-only`` replays them, credentials included).
    alert_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    status_headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def capture(self, response: httpx.Response) -> None:
        """An httpx response hook: keep the bytes of the session it belongs to."""
        await response.aread()
        request = response.request
        if request.url.path == "/alert":
            self.alert, self.commands = request.content, response.content
            self.alert_headers = request.headers.raw
        elif request.method == "PUT":
            self.status, self.status_headers = request.content, request.headers.raw


@dataclass
class Figures:
    sessions: int
    exchanges: int
    seconds: float
    #: CPU seconds this process spent meanwhile (server thread and clients alike).
    cpu: float = 0.0
    #: Of which the server's thread (``ServerThread.cpu_seconds``); the rest is the
    #: clients' (devices or baseline workers, httpx and TLS included).
    server_cpu: float = 0.0
    #: Of the server thread's, what the app's coroutine ran for (:class:`AppClock`); the
    #: rest is uvicorn reading and parsing requests, the TLS reads and the event loop.
    app_cpu: float = 0.0

    @property
    def cpu_per_session(self) -> float:
        """Microseconds of this process's CPU per session: less swayed by other
        processes' load than the rates (for a server in this process only)."""
        return self.cpu / self.sessions * 1e6

    @property
    def server_cpu_per_session(self) -> float:
        return self.server_cpu / self.sessions * 1e6

    @property
    def app_cpu_per_session(self) -> float:
        return self.app_cpu / self.sessions * 1e6

    @property
    def sessions_per_s(self) -> float:
        return self.sessions / self.seconds

    @property
    def exchanges_per_s(self) -> float:
        return self.exchanges / self.seconds


#: The server's two CPU clocks, in seconds: its thread's, and its app's (:class:`AppClock`).
ServerClocks = Callable[[], tuple[float, float]]


async def timed(work: Awaitable[Any], sessions: int, clocks: ServerClocks) -> Figures:
    """Run ``work`` (``sessions`` sessions of two exchanges each) and measure it: wall
    clock, this process's CPU, and the server thread's and its app's parts of that CPU."""
    start, cpu, (server, app) = time.perf_counter(), time.process_time(), clocks()
    await work
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    server_now, app_now = clocks()
    return Figures(sessions, 2 * sessions, seconds, cpu, server_now - server, app_now - app)


class AppClock:
    """An ASGI app that runs another and adds up the thread CPU time of its coroutine's
    steps, each from its resumption to its next suspension: what other connections do
    between two steps is not counted. The response's writes (h11 framing, TLS
    encryption) are made inside the app's sends, so they count as the app's; reading
    and parsing requests, TLS reads and the event loop do not.

    Why: the server thread's CPU alone cannot tell dmlab's code from the HTTP and TLS
    work both sides share, and ``--app-only`` measures the app hot in the caches, as it
    never runs in a server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.nanoseconds = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _TimedSteps(self.app(scope, receive, send), self)

    def seconds(self) -> float:
        return self.nanoseconds / 1e9


class _TimedSteps:
    """Awaits an awaitable step by step, timing each step on the thread's CPU clock."""

    def __init__(self, awaitable: Awaitable[None], clock: AppClock) -> None:
        self.steps, self.clock = awaitable.__await__(), clock

    def __await__(self) -> Generator[Any, Any, None]:
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            began = time.thread_time_ns()
            try:
                step = self.steps.send(sent) if thrown is None else self.steps.throw(thrown)
            except StopIteration:
                return
            finally:
                self.clock.nanoseconds += time.thread_time_ns() - began
            try:
                sent, thrown = (yield step), None
            except BaseException as exc:  # cancellation, passed on to the app
                sent, thrown = None, exc


def new_client(base_url: str, ca: LabCA | ssl.SSLContext, **extra: Any) -> httpx.AsyncClient:
    """The same client for dmlab devices and baseline workers: one connection each."""
    verify = ca.client_context() if isinstance(ca, LabCA) else ca
    return httpx.AsyncClient(base_url=base_url, verify=verify, timeout=30.0, **extra)


class DmlabSide:
    """The dmlab server and its devices, set up (and warmed up) once for every round."""

    def __init__(self, ca: LabCA, devices: int, sessions: int) -> None:
        # The default scrypt cost: each device pays it once, in the warm-up (the
        # authenticator remembers verified credentials).
        self.services = build_services(server_id="dmlab", caps=queue_room(sessions))
        self.app_clock = AppClock(create_app(self.services))
        self.server = ServerThread(self.app_clock, ca).start()
        self.fill(ca, self.server.url, devices, sessions)

    def fill(
        self,
        ca: LabCA | ssl.SSLContext,
        url: str,
        devices: int,
        sessions: int,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.services.store.put_account(Account(ACCOUNT, self.services.auth.hash("password")))
        self.clients: list[httpx.AsyncClient] = []
        self.fleet: list[VirtualDevice] = []
        for i in range(devices):
            dev_id, secret = f"IMEI:{490154200000000 + i}", new_secret()
            record = Device(
                dev_id=dev_id,
                account=ACCOUNT,
                secret_hash=self.services.auth.hash(secret),
                notify_key=notification_key(secret),
            )
            self.services.store.put_device(record)
            for _ in range(sessions):  # queueing is not part of what is measured
                self.services.engine.queue(
                    record, JobSpec("inventory"), Origin.CLIENT, notify=False
                )
            client = new_client(url, ca, transport=transport)
            self.clients.append(client)
            self.fleet.append(VirtualDevice(dev_id, secret, url, client=client))

    async def warm_up(self, bodies: Bodies) -> None:
        """One session per device (TLS handshakes, auth cache); the first one's bytes are
        captured for the baseline to replay."""
        self.clients[0].event_hooks["response"].append(bodies.capture)
        await one_session(self.fleet[0])
        self.clients[0].event_hooks["response"].remove(bodies.capture)
        await asyncio.gather(*(one_session(d) for d in self.fleet[1:]))

    async def measure(self, per_device: int) -> Figures:
        async def sessions_of(device: VirtualDevice) -> None:
            for _ in range(per_device):
                await one_session(device)

        work = asyncio.gather(*(sessions_of(d) for d in self.fleet))
        return await timed(work, len(self.fleet) * per_device, self.clocks)

    def clocks(self) -> tuple[float, float]:
        return self.server.cpu_seconds(), self.app_clock.seconds()

    async def close(self) -> None:
        for device in self.fleet:
            await device.aclose()
        for client in self.clients:
            await client.aclose()
        self.server.stop()


class ServedSide(DmlabSide):
    """``python -m dmlab serve`` in processes of its own, on SQLite or PostgreSQL."""

    def __init__(self, database: str, workers: int, devices: int, sessions: int) -> None:
        from dmlab.store.postgres import PostgresStore
        from dmlab.store.sqlite import SQLiteStore

        self.data = Path(tempfile.mkdtemp(prefix="dmlab-bench-"))
        sqlite = database == "sqlite"
        store: Any = SQLiteStore(self.data / "dmlab.sqlite3") if sqlite else PostgresStore(database)
        self.services = build_services(store=store, server_id="dmlab", caps=queue_room(sessions))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, "-m", "dmlab", "serve", "--port", str(port)]
        command += ["--data", str(self.data), "--workers", str(workers)]
        command += [option("pending_per_device"), str(queue_room(sessions).pending_per_device)]
        command += [] if sqlite else ["--database", database]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"dmlab serving (https://\S+)", line)
        if match is None:
            self.process.kill()
            raise SystemExit(f"the server did not start: {line!r}")
        verify = ssl.create_default_context(cafile=str(self.data / "ca.pem"))
        self.fill(verify, match[1], devices, sessions)
        store.close()

    def clocks(self) -> tuple[float, float]:
        return 0.0, 0.0  # the server's processes are not this one (no CPU figures printed)

    async def close(self) -> None:
        for device in self.fleet:
            await device.aclose()
        for client in self.clients:
            await client.aclose()
        self.process.terminate()
        self.process.wait(30)


class AppSide(DmlabSide):
    """``--app-only``: dmlab's app without a server. Its one device reaches it through
    ``httpx.ASGITransport``, only to run the session whose requests are replayed."""

    def __init__(self, ca: LabCA, sessions: int) -> None:
        self.services = build_services(server_id="dmlab", caps=queue_room(sessions))
        self.app = create_app(self.services)
        self.fill(ca, "https://dmlab.bench", 1, sessions, httpx.ASGITransport(app=self.app))

    async def close(self) -> None:
        for device in self.fleet:
            await device.aclose()
        for client in self.clients:
            await client.aclose()


async def asgi_exchange(
    app: ASGIApp, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, dict[bytes, bytes]]:
    """One request straight into an ASGI app: its status and headers (the body is dropped)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 443),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    answer: dict[str, Any] = {}

    async def receive() -> Message:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client never hangs up
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer["status"], answer["headers"] = message["status"], dict(message["headers"])

    await app(scope, receive, send)
    return answer["status"], answer["headers"]


async def replay_session(app: ASGIApp, bodies: Bodies) -> None:
    """The captured session's two requests, the second to where the first's answer points."""
    status, headers = await asgi_exchange(app, "POST", "/alert", bodies.alert_headers, bodies.alert)
    location = headers.get(b"location", b"").decode()
    second, _ = await asgi_exchange(app, "PUT", location, bodies.status_headers, bodies.status)
    if (status, second) != (200, 204):
        raise RuntimeError(f"the replayed session was answered {status}, {second}")


async def app_only(args: argparse.Namespace) -> float:
    """``--app-only``: CPU per session of each app called directly, alternating rounds."""
    per_round = args.devices * args.sessions_per_device
    bodies = Bodies()
    side = AppSide(LabCA.create(), 1 + WARM_UP + args.rounds * per_round)
    try:
        await side.warm_up(bodies)
        apps = {"dmlab": side.app, "baseline": baseline_app(bodies)}
        for app in apps.values():
            for _ in range(WARM_UP):
                await replay_session(app, bodies)
        cpu: dict[str, list[float]] = {name: [] for name in apps}
        for number in range(args.rounds):
            order = list(apps) if number % 2 == 0 else list(apps)[::-1]
            for name in order:
                began = time.thread_time()
                for _ in range(per_round):
                    await replay_session(apps[name], bodies)
                cpu[name].append((time.thread_time() - began) / per_round * 1e6)
            print(
                f"round {number + 1}   dmlab {cpu['dmlab'][-1]:6.0f} us/session   "
                f"baseline {cpu['baseline'][-1]:5.0f} us/session",
                flush=True,
            )
    finally:
        await side.close()
    ours, theirs = (statistics.median(cpu[name]) for name in apps)
    print(
        f"the apps alone, CPU per session over {args.rounds} rounds of {per_round} sessions: "
        f"dmlab median {ours:.0f} us (min {min(cpu['dmlab']):.0f}), baseline median "
        f"{theirs:.0f} us (min {min(cpu['baseline']):.0f}); dmlab's own code "
        f"{ours - theirs:.0f} us a session"
    )
    return ours


#: Sessions each app runs before its rounds (imports, caches, the auth cache).
WARM_UP = 5


def queue_room(sessions: int) -> Caps:
    """Every device's sessions are queued before the rounds, more than the default cap
    (``--pending-per-device``) lets one device hold: the cap is raised to fit them."""
    return Caps(pending_per_device=max(sessions, Caps().pending_per_device))


async def one_session(device: VirtualDevice) -> None:
    run = await device.fire_alert(trigger="bench")
    if run is None or run.result != "OK" or len(run.rounds) != 1:
        raise RuntimeError(f"{device.dev_id}: session did not complete as expected: {run!r}")


def baseline_app(bodies: Bodies) -> Starlette:
    """The same two exchanges with no DM logic: read the body, answer canned bytes."""

    async def alert(request: Request) -> Response:
        await request.body()
        return Response(
            bodies.commands,
            media_type=media.COMMANDS,
            headers={"Location": "/sessions/id/0123456789abcdef"},
        )

    async def report(request: Request) -> Response:
        await request.body()
        return Response(status_code=204, headers={"OMADM-Result": "OK"})

    return Starlette(
        routes=[
            Route("/alert", alert, methods=["POST"]),
            Route("/sessions/id/{session_id}", report, methods=["PUT"]),
        ]
    )


class BaselineSide:
    """A bare Starlette app on the same ServerThread and TLS, with the same clients."""

    HEADERS: ClassVar[dict[str, str]] = {"Content-Type": media.DM20_RESPONSE}

    def __init__(self, ca: LabCA, devices: int, bodies: Bodies) -> None:
        self.bodies = bodies
        self.app_clock = AppClock(baseline_app(bodies))
        self.server = ServerThread(self.app_clock, ca).start()
        self.clients = [
            new_client(
                self.server.url,
                ca,
                auth=(f"IMEI:{i}", "secret"),
                headers={media.DEVID_HEADER: f"IMEI:{i}"},
            )
            for i in range(devices)
        ]

    async def session(self, client: httpx.AsyncClient) -> None:
        first = await client.post("/alert", content=self.bodies.alert, headers=self.HEADERS)
        first.json()  # a device parses its commands too
        second = await client.put(
            first.headers["location"], content=self.bodies.status, headers=self.HEADERS
        )
        if (first.status_code, second.status_code) != (200, 204):
            raise RuntimeError(f"baseline answered {first.status_code}, {second.status_code}")

    async def warm_up(self) -> None:
        await asyncio.gather(*(self.session(c) for c in self.clients))

    async def measure(self, per_device: int) -> Figures:
        async def sessions_of(client: httpx.AsyncClient) -> None:
            for _ in range(per_device):
                await self.session(client)

        work = asyncio.gather(*(sessions_of(c) for c in self.clients))
        return await timed(work, len(self.clients) * per_device, self.clocks)

    def clocks(self) -> tuple[float, float]:
        return self.server.cpu_seconds(), self.app_clock.seconds()

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        self.server.stop()


async def main_async(args: argparse.Namespace) -> float:
    ca = LabCA.create()
    bodies = Bodies()
    sessions = 1 + args.rounds * args.sessions_per_device
    dmlab = (
        DmlabSide(ca, args.devices, sessions)
        if args.database is None
        else ServedSide(args.database, args.workers, args.devices, sessions)
    )
    baseline: BaselineSide | None = None
    rounds: list[tuple[Figures, Figures, float]] = []  # dmlab, baseline, load average
    try:
        await dmlab.warm_up(bodies)
        baseline = BaselineSide(ca, args.devices, bodies)
        await baseline.warm_up()
        # Each round measures both sides back to back, in alternating order (ABBA), and
        # yields one ratio: on a shared machine, load from elsewhere then hits both sides
        # of a round alike instead of skewing it. The median ratio is the figure.
        for number in range(args.rounds):
            load = os.getloadavg()[0]
            sides = [("dmlab", dmlab), ("baseline", baseline)]
            figures = {
                name: await side.measure(args.sessions_per_device)
                for name, side in (sides if number % 2 == 0 else sides[::-1])
            }
            rounds.append((figures["dmlab"], figures["baseline"], load))
            ours, theirs = figures["dmlab"], figures["baseline"]
            print(
                f"round {number + 1}   dmlab {ours.sessions_per_s:7.1f} sessions/s "
                f"({ours.seconds:5.2f} s)   baseline {theirs.sessions_per_s:7.1f} sessions/s "
                f"({theirs.seconds:5.2f} s)   ratio {ours.exchanges_per_s / theirs.exchanges_per_s:.2f}"
                f"   load {load:.2f}"
                + (
                    f"   cpu/session {ours.cpu_per_session:.0f} / {theirs.cpu_per_session:.0f} us"
                    f" (server thread {ours.server_cpu_per_session:.0f}"
                    f" / {theirs.server_cpu_per_session:.0f}, in the app"
                    f" {ours.app_cpu_per_session:.0f} / {theirs.app_cpu_per_session:.0f})"
                    if args.database is None
                    else ""
                ),
                flush=True,
            )
    finally:
        await dmlab.close()
        if baseline is not None:
            await baseline.close()
    print(
        f"bodies (bytes): alert {len(bodies.alert)}, commands {len(bodies.commands)}, "
        f"status {len(bodies.status)}; {args.rounds} rounds, medians below"
    )
    for name, index in (("dmlab", 0), ("baseline", 1)):
        f = sorted((r[index] for r in rounds), key=lambda f: f.seconds)[len(rounds) // 2]
        print(
            f"{name:<9} sessions/s {f.sessions_per_s:8.1f}   exchanges/s {f.exchanges_per_s:8.1f}"
            f"   ({args.devices} devices x {args.sessions_per_device} sessions, "
            f"{f.exchanges} exchanges in {f.seconds:.2f} s)"
        )
    ratios = sorted(d.exchanges_per_s / b.exchanges_per_s for d, b, _ in rounds)
    median = statistics.median(ratios)
    print(
        f"ratio (dmlab exchanges/s / baseline exchanges/s, per round) median {median:.2f}"
        f"   min {ratios[0]:.2f}   max {ratios[-1]:.2f}   over {len(ratios)} rounds"
        f"   load {statistics.median(r[2] for r in rounds):.2f}   target >= 0.9"
    )
    if args.database is None:
        # Both sides in this process: its CPU per session says where the ratio comes
        # from, and moves less than the rates when the machine is loaded by others.
        # The server thread's share says which side of the exchange a difference is on,
        # the app's share of that whether it is the app's code or the HTTP and TLS around it.
        def middle(figure: Callable[[Figures], float], index: int) -> float:
            return statistics.median(figure(r[index]) for r in rounds)

        ours, theirs = (middle(lambda f: f.cpu_per_session, i) for i in (0, 1))
        served = [middle(lambda f: f.server_cpu_per_session, i) for i in (0, 1)]
        in_app = [middle(lambda f: f.app_cpu_per_session, i) for i in (0, 1)]
        print(
            f"cpu per session (this process, median) dmlab {ours:.0f} us   baseline "
            f"{theirs:.0f} us   ratio (baseline / dmlab) {theirs / ours:.2f}   of which the "
            f"server thread: dmlab {served[0]:.0f} us, baseline {served[1]:.0f} us   of which "
            f"in the app: dmlab {in_app[0]:.0f} us, baseline {in_app[1]:.0f} us"
        )
    return median


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=50, help="concurrent devices (default 50)")
    parser.add_argument(
        "--sessions-per-device",
        type=int,
        default=20,
        help="measured sessions per device and round, one after another (default 20)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds, each measuring dmlab and the baseline back to back; the median of "
        "their ratios counts (default 5)",
    )
    parser.add_argument(
        "--app-only",
        action="store_true",
        help="call both ASGI apps directly (no uvicorn, TLS or httpx), devices x sessions "
        "per round, and print the CPU each costs per session",
    )
    parser.add_argument(
        "--database",
        metavar="sqlite|URL",
        help="measure `dmlab serve` in processes of its own: on SQLite, or on this "
        "postgresql:// database (default: a server in this process, in memory)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="with a postgresql:// --database: serve processes"
    )
    args = parser.parse_args(argv)
    if args.workers > 1 and (args.database or "sqlite") == "sqlite":
        parser.error("--workers needs --database postgresql://…")
    if args.app_only and args.database:
        parser.error("--app-only measures the app in this process, without a --database")
    asyncio.run(app_only(args) if args.app_only else main_async(args))


if __name__ == "__main__":
    main()
