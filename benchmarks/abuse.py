"""A shared server under abuse (issue 10): what an attacker on loopback costs everyone else.

Against ``python -m dmlab serve`` in a subprocess (real scrypt, SQLite, TLS), on
127.0.0.1 only, bounded in count and time. Each figure is a ratio against a
baseline measured in the same run:

- flood:     a cached device's median latency during a wrong-secret flood on 40
             registered names (9 tries each, under the per-address allowance),
             against the same device idle. Target <= 3x.
- oracle:    a failed login for a registered name against one for an unknown name
             (medians). Target ~1x: timing does not tell which names exist.
- restart:   N devices' first requests right after a restart, against the same
             requests on the warm server (wall time of the burst). Target: no queue
             behind hashing (a small ratio, not N x 60 ms).
- 404s:      server RSS and database growth per 1,000 unauthenticated 404s with
             15 KiB paths. Target <= 1 MiB each.
- slowloris: how long until every slowloris connection (trickling header lines) is
             closed, against the default header timeout; and a legitimate request's
             latency meanwhile, against idle.
- queue:     with N sessions pending for one device (its cap raised to allow them:
             ``--pending-per-device``), that device's ``POST /sessions/next`` and its
             account's ``GET /sessions/pending`` (medians), against the same requests
             with a short queue. Target ~1x: a request reads a page, not the queue.
             Then the default cap's refusal (429) of one session too many.
- abandoned: devices start sessions (the server acknowledges each with its first
             round) and the server is SIGKILLed, five times over. After the restart:
             how many of those active sessions an account can see, what the device
             records count, whether a device that lost its place gets its session
             back, and how long after their idle deadline (``--active-ttl``) the rest
             read as expired in the database (the sweep's delay, against the TTL).

    .venv/bin/python benchmarks/abuse.py
    .venv/bin/python benchmarks/abuse.py --devices 5 --flood 20 --not-found 50 --slowloris 5
    .venv/bin/python benchmarks/abuse.py --only queue --queue 5000
    .venv/bin/python benchmarks/abuse.py --only abandoned --crashes 5 --per-crash 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
OPERATOR = ("ops", "ops-password")
HOST = "127.0.0.1"  # the only target this script ever uses
PAGE = 100  # sessions in a listing's default page (lab choice paging): the short queue's size


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """``python -m dmlab serve`` on a free loopback port, in its own process."""

    def __init__(self, data: Path, port: int, *extra: str) -> None:
        self.data, self.port, self.extra = data, port, extra
        self.url = f"https://{HOST}:{port}"
        self.popen: subprocess.Popen[str] | None = None

    def start(self) -> Server:
        command = [sys.executable, "-m", "dmlab", "serve", "--port", str(self.port)]
        command += ["--data", str(self.data), "--account", ":".join(OPERATOR), *self.extra]
        self.popen = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            if re.search(r"dmlab serving https://", line):
                return self
        raise RuntimeError(f"the server did not start (exit {self.popen.wait()})")

    def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.popen is not None:
            self.popen.send_signal(signum)
            self.popen.wait(30)
            assert self.popen.stdout is not None
            self.popen.stdout.close()

    def rss(self) -> int:
        assert self.popen is not None
        status = Path(f"/proc/{self.popen.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) * 1024  # type: ignore[index]

    def disk(self) -> int:
        return sum(
            (self.data / name).stat().st_size
            for name in ("dmlab.sqlite3", "dmlab.sqlite3-wal")
            if (self.data / name).exists()
        )


def client(server: Server, context: ssl.SSLContext, **kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, verify=context, timeout=60.0, **kwargs)  # type: ignore[arg-type]


async def timed(request: object) -> float:
    started = time.perf_counter()
    answer = await request  # type: ignore[misc]
    assert answer.status_code < 500, answer.status_code
    return time.perf_counter() - started


async def median_ms(make: object, count: int) -> float:
    return 1000 * statistics.median([await timed(make()) for _ in range(count)])  # type: ignore[operator]


async def register(server: Server, context: ssl.SSLContext, count: int) -> dict[str, str]:
    async with client(server, context, auth=OPERATOR) as ops:

        async def one(n: int) -> tuple[str, str]:
            dev_id = f"IMEI:{990000000000000 + n}"
            answer = await ops.post("/devices/new", json={"devId": dev_id})
            assert answer.status_code == 201, answer.text
            return dev_id, answer.json()["secret"]

        return dict(await asyncio.gather(*(one(n) for n in range(count))))


async def flood(
    server: Server, context: ssl.SSLContext, devices: dict[str, str], flood: int, samples: int
) -> None:
    names = list(devices)[:40]
    legit_id = list(devices)[-1]
    async with client(server, context, auth=(legit_id, devices[legit_id])) as legit:
        await legit.get("/sessions/pending")  # cached from here on
        idle = await median_ms(lambda: legit.get("/sessions/pending"), samples)

        async def attack() -> None:
            async with client(server, context) as attacker:
                sends = [
                    attacker.get("/sessions/pending", auth=(names[n % len(names)], "wrong"))
                    for n in range(flood)
                ]
                for start in range(0, len(sends), 20):
                    await asyncio.gather(*sends[start : start + 20])

        attacking = asyncio.create_task(attack())
        await asyncio.sleep(0.2)
        during = []
        while not attacking.done() and len(during) < samples:
            during.append(await timed(legit.get("/sessions/pending")))
        await attacking
    flooded = 1000 * statistics.median(during) if during else idle
    print(
        f"flood     legit median idle {idle:.1f} ms, during {flood} wrong secrets on "
        f"{len(names)} names {flooded:.1f} ms: ratio {flooded / idle:.2f}x (target <= 3)"
    )


async def oracle(
    server: Server, context: ssl.SSLContext, devices: dict[str, str], samples: int
) -> None:
    """One failed login per name (a name's allowance is never reached)."""
    known_names = list(devices)[41 : 41 + samples]
    known, unknown = [], []
    async with client(server, context) as probe:
        for n, name in enumerate(known_names):  # interleaved: load from elsewhere hits both
            known.append(await timed(probe.get("/devices", auth=(name, "x"))))
            unknown.append(await timed(probe.get("/devices", auth=(f"IMEI:{10**14 + n}", "x"))))
    k, u = 1000 * statistics.median(known), 1000 * statistics.median(unknown)
    print(
        f"oracle    failed login, registered name {k:.1f} ms, unknown name {u:.1f} ms: "
        f"ratio {k / u:.2f}x (target ~1)"
    )


async def first_requests(server: Server, context: ssl.SSLContext, devices: dict[str, str]) -> float:
    """Wall time of every device's request at once, each on a new connection."""

    async def one(dev_id: str, secret: str) -> None:
        async with client(server, context, auth=(dev_id, secret)) as device:
            assert (await device.get("/sessions/pending")).status_code == 200

    started = time.perf_counter()
    await asyncio.gather(*(one(d, s) for d, s in devices.items()))
    return time.perf_counter() - started


async def not_found(server: Server, context: ssl.SSLContext, count: int) -> None:
    path = "/" + "a" * (15 * 1024)
    async with client(server, context) as anon:
        for n in range(50):  # warm-up: code paths and buffers, not counted
            await anon.get(f"{path}-warm-{n}")
        rss, disk = server.rss(), server.disk()
        for start in range(0, count, 25):
            answers = await asyncio.gather(
                *(anon.get(f"{path}{n}") for n in range(start, min(start + 25, count)))
            )
            assert all(a.status_code == 404 for a in answers)
    scale = 1000 / count
    mib = 1024 * 1024
    rss_growth = max(server.rss() - rss, 0) * scale / mib
    disk_growth = max(server.disk() - disk, 0) * scale / mib
    print(
        f"404s      per 1,000 unauthenticated 404s with 15 KiB paths: RSS +{rss_growth:.2f} MiB, "
        f"database +{disk_growth:.2f} MiB (target <= 1 MiB each; ratio "
        f"{max(rss_growth, disk_growth):.2f})"
    )


async def slowloris(
    server: Server,
    context: ssl.SSLContext,
    count: int,
    header_timeout: float,
    legit: tuple[str, str],
) -> None:
    async def one() -> float:
        reader, writer = await asyncio.open_connection(HOST, server.port, ssl=context)
        started = time.perf_counter()
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        try:
            while not reader.at_eof() and time.perf_counter() - started < 3 * header_timeout:
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
                try:
                    await asyncio.wait_for(reader.read(65536), 1.0)
                except TimeoutError:
                    continue
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            closed = time.perf_counter() - started
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 5)
        return closed

    async with client(server, context, auth=legit) as device:
        await device.get("/sessions/pending")
        idle = await median_ms(lambda: device.get("/sessions/pending"), 10)
        held = asyncio.gather(*(one() for _ in range(count)))
        await asyncio.sleep(1.0)
        during = await median_ms(lambda: device.get("/sessions/pending"), 10)
        closed = await held
    print(
        f"slowloris {count} connections all closed within {max(closed):.1f} s "
        f"(header timeout {header_timeout:g} s; ratio {max(closed) / header_timeout:.2f}); "
        f"legit median idle {idle:.1f} ms, meanwhile {during:.1f} ms"
    )


def serve_knows(option: str) -> bool:
    """Whether this checkout's ``dmlab serve`` has ``option`` (an older one, measured
    for a before figure, may not)."""
    helped = subprocess.run(
        [sys.executable, "-m", "dmlab", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return option in helped.stdout


async def fill(ops: httpx.AsyncClient, dev_id: str, count: int) -> None:
    """Queue ``count`` sessions for ``dev_id`` (20 requests in flight)."""
    gate = asyncio.Semaphore(20)

    async def one() -> None:
        async with gate:
            answer = await ops.post(
                f"/devices/{dev_id}/sessions", json={"job": "inventory", "notify": False}
            )
            assert answer.status_code == 202, answer.text

    await asyncio.gather(*(one() for _ in range(count)))


async def queue_depth(
    server: Server, context: ssl.SSLContext, devices: dict[str, str], depth: int, samples: int
) -> None:
    (short, short_secret), (deep, deep_secret) = list(devices.items())[-2:]
    async with (
        client(server, context, auth=OPERATOR) as ops,
        client(server, context, auth=(short, short_secret)) as few,
        client(server, context, auth=(deep, deep_secret)) as many,
    ):
        # Each POST /sessions/next starts one, so each queue holds a session per sample;
        # the short queue holds a full page more, so both listings answer a full page.
        await fill(ops, short, samples + PAGE)
        list_short = await median_ms(lambda: ops.get("/sessions/pending"), samples)
        next_short = await median_ms(lambda: few.post("/sessions/next"), samples)
        await fill(ops, deep, depth + samples)
        list_deep = await median_ms(lambda: ops.get("/sessions/pending"), samples)
        next_deep = await median_ms(lambda: many.post("/sessions/next"), samples)
    print(
        f"queue     {depth} pending for one device: its POST /sessions/next {next_deep:.1f} ms "
        f"({PAGE + samples} pending: {next_short:.1f} ms), ratio {next_deep / next_short:.2f}x; "
        f"the account's GET /sessions/pending {list_deep:.1f} ms ({PAGE + samples} pending: "
        f"{list_short:.1f} ms), ratio {list_deep / list_short:.2f}x"
    )


async def over_the_cap(server: Server, context: ssl.SSLContext, dev_id: str) -> None:
    """Under the default caps: queue until refused; the refusal and what it says."""
    async with client(server, context, auth=OPERATOR) as ops:
        queued = 0
        while queued <= 100_000:
            answer = await ops.post(
                f"/devices/{dev_id}/sessions", json={"job": "inventory", "notify": False}
            )
            if answer.status_code != 202:
                break
            queued += 1
        listed = (await ops.get("/sessions/pending", params={"limit": 1})).status_code
    print(
        f"cap       one device: {queued} queued, then {answer.status_code} "
        f"(Retry-After {answer.headers.get('retry-after', '-')}); the listing still answers "
        f"{listed}; ratio refused/queued {1 / max(queued, 1):.3f}"
    )


async def abandoned(args: argparse.Namespace) -> None:
    """Finding 5: active sessions left by crashes (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        # An older checkout, measured for a before figure, has no --active-ttl.
        extra = ("--active-ttl", str(args.active_ttl)) if serve_knows("--active-ttl") else ()
        server = Server(data, free_port(), *extra).start()
        context = ssl.create_default_context(cafile=str(data / "ca.pem"))
        devices = await register(server, context, args.per_crash)
        acknowledged: dict[str, list[str]] = {dev_id: [] for dev_id in devices}
        began = time.time()
        try:
            for _ in range(args.crashes):
                queued: dict[str, str] = {}
                async with client(server, context, auth=OPERATOR) as ops:
                    for dev_id in devices:
                        body = {"job": "inventory", "notify": False}
                        answer = await ops.post(f"/devices/{dev_id}/sessions", json=body)
                        assert answer.status_code == 202, answer.text
                        queued[dev_id] = answer.json()["SessionID"]
                for dev_id, secret in devices.items():
                    async with client(server, context, auth=(dev_id, secret)) as dev:
                        answer = await dev.post(f"/sessions/id/{queued[dev_id]}")
                        assert answer.status_code == 200, answer.text  # acknowledged
                        acknowledged[dev_id].append(answer.json()["SessionID"])
                last_ack = time.time()
                server.stop(signal.SIGKILL)
                server = Server(data, server.port, *extra).start()
            total = sum(len(ids) for ids in acknowledged.values())
            async with client(server, context, auth=OPERATOR) as ops:
                listed = await ops.get("/sessions/active")
                shown = len(listed.json()["Sessions"]) if listed.status_code == 200 else 0
                pending = len((await ops.get("/sessions/pending")).json()["Sessions"])
                done = (await ops.get("/sessions/completed")).json()["Sessions"]
                # "expired", or under the CR's brief result a failure whose Reason says so.
                gone = sum(
                    1
                    for c in done
                    if "expired" in (c.get("Result"), str(c.get("Reason", "")).split(";")[0])
                )
                records = [(await ops.get(f"/devices/{d}")).json() for d in devices]
            counted = sum(r.get("active", 0) for r in records)
            print(
                f"abandoned {total} acknowledged active sessions after {args.crashes} SIGKILLs "
                f"in {time.time() - began:.0f} s: "
                f"GET /sessions/active {listed.status_code}, {shown} listed "
                f"({gone} already expired); "
                f"GET /sessions/pending lists {pending}; the device records count "
                f"{counted} active, {sum(r['pending'] for r in records)} pending"
            )
            dev_id, secret = next(iter(devices.items()))
            async with client(server, context, auth=(dev_id, secret)) as dev:
                again = await dev.post("/sessions/next")
                got = again.json()["SessionID"] if again.status_code == 200 else "nothing"
                ended = ""
                if again.status_code == 200:
                    due = sum(1 for c in again.json()["CMD"] if c[0] != "END")
                    end = await dev.put(
                        f"/sessions/id/{got}",
                        json={"Status": [{"sc": 200}] * due},
                        headers={"Content-Type": "application/vnd.oma.dm.response+json"},
                    )
                    ended = f", and its report then answered {end.status_code}"
            print(
                f"abandoned a device that lost its place: POST /sessions/next answered "
                f"{again.status_code} ({'one of its active sessions' if got in acknowledged[dev_id] else got})"
                f"{ended}"
            )
            # The rest, read in the database itself: no request looks at them, so only
            # the sweep can expire them.
            deadline = last_ack + args.active_ttl
            waited_until = deadline + 3 * args.active_ttl + 5
            expired, after = 0, float("nan")
            left = total - (1 if ended else 0)
            while time.time() < waited_until:
                with contextlib.closing(
                    sqlite3.connect(f"file:{data / 'dmlab.sqlite3'}?mode=ro", uri=True)
                ) as db:
                    expired = db.execute(
                        "SELECT count(*) FROM sessions WHERE result = 'expired'"
                    ).fetchone()[0]
                if expired >= left:
                    after = time.time() - deadline
                    break
                await asyncio.sleep(0.25)
            print(
                f"abandoned {expired} of {left} read as expired in the database "
                + (
                    f"{after:.1f} s after their idle deadline (TTL {args.active_ttl:g} s): "
                    f"ratio {max(after, 0) / args.active_ttl:.2f} of the TTL"
                    if expired >= left
                    else f"after waiting {waited_until - deadline:.0f} s past the deadline"
                )
            )
        finally:
            server.stop()


async def main(args: argparse.Namespace) -> None:
    if args.only == "queue":
        return await main_queue(args)
    if args.only == "abandoned":
        return await abandoned(args)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        # Only the slowloris server gets --header-timeout: a short one (the smoke test's 1 s)
        # would also close the first phases' honest handshakes on a loaded machine.
        server = Server(data, free_port()).start()
        try:
            context = ssl.create_default_context(cafile=str(data / "ca.pem"))
            devices = await register(server, context, max(args.devices, 41 + args.samples))
            await oracle(server, context, devices, args.samples)
            await flood(server, context, devices, args.flood, args.samples)
            warm = await first_requests(server, context, devices)
            server.stop()
            server = Server(data, server.port).start()
            cold = await first_requests(server, context, devices)
            print(
                f"restart   {len(devices)} devices' first requests: warm {warm:.2f} s, "
                f"after a restart {cold:.2f} s: ratio {cold / warm:.2f}x (each new connection)"
            )
            await not_found(server, context, args.not_found)
            first = next(iter(devices.items()))
            server.stop()
            server = Server(data, server.port, "--header-timeout", str(args.header_timeout)).start()
            await slowloris(server, context, args.slowloris, args.header_timeout, first)
        finally:
            server.stop()
    await main_queue(args)
    await abandoned(args)


async def main_queue(args: argparse.Namespace) -> None:
    """Finding 4 on a server of its own: a deep queue, then the default cap."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        raised = ("--pending-per-device", str(max(args.queue, PAGE) + args.samples))
        capped = serve_knows("--pending-per-device")
        server = Server(data, free_port(), *(raised if capped else ())).start()
        try:
            context = ssl.create_default_context(cafile=str(data / "ca.pem"))
            devices = await register(server, context, 3)
            await queue_depth(server, context, devices, args.queue, args.samples)
            if capped:
                server.stop()
                server = Server(data, server.port).start()
                await over_the_cap(server, context, next(iter(devices)))
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--flood", type=int, default=360)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--not-found", type=int, default=1000)
    parser.add_argument("--slowloris", type=int, default=200)
    parser.add_argument("--header-timeout", type=float, default=10.0)
    parser.add_argument("--queue", type=int, default=5000, help="pending sessions of one device")
    parser.add_argument("--only", choices=("queue", "abandoned"), help="measure only this")
    parser.add_argument("--crashes", type=int, default=5)
    parser.add_argument("--per-crash", type=int, default=20, help="devices (one session each)")
    parser.add_argument(
        "--active-ttl", type=float, default=60.0, help="longer than the crashes take"
    )
    asyncio.run(main(parser.parse_args()))
