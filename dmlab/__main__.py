"""Command line: ``python -m dmlab serve``, ``python -m dmlab device`` and
``python -m dmlab conform server|device``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .conformance.cli import add_parser as add_conform_parser


def _account(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name or not password:
        raise argparse.ArgumentTypeError("an account is NAME:PASSWORD")
    return name, password


def _choice(text: str) -> tuple[str, str]:
    """``ID=VALUE``, checked against the registry of lab choices now, not at start."""
    from .choices import Choices, UnknownChoice

    try:
        chosen = Choices.parse([text])
    except UnknownChoice as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    key = text.partition("=")[0].strip()
    return key, chosen[key]


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number from 1 up, not {text!r}")
    return value


#: ``--database`` value that starts a PostgreSQL cluster for this run only.
THROWAWAY = "throwaway-postgresql"


def _open_store(database: str | None, data: Path, exits: contextlib.ExitStack) -> Any:
    """SQLite in the data directory by default; PostgreSQL for a ``postgresql://`` URL
    (or a throwaway cluster), so that several servers can share one database."""
    if database is None:
        from .store.sqlite import SQLiteStore

        return exits.enter_context(SQLiteStore(data / "dmlab.sqlite3"))
    from .store.postgres import PostgresStore

    if database == THROWAWAY:
        from .runtime.postgres import throwaway_postgres

        database = exits.enter_context(throwaway_postgres())
        print(f"dmlab started a throwaway PostgreSQL: {database}", flush=True)
    return exits.enter_context(PostgresStore(database))


def _caps(args: argparse.Namespace) -> Any:
    from .caps import Caps, declared

    return Caps(**{name: getattr(args, name) for name, *_ in declared()})


def worker_options(args: argparse.Namespace, worker: int) -> list[str]:
    """The limits worker ``worker`` (0-based) of ``serve --workers N`` is started with:
    its share of ``--max-connections`` and of each divided cap (``dmlab/caps.py`` says
    why those are divided), the other caps whole."""
    from .caps import declared, option, share, shares

    caps = share(_caps(args), worker, args.workers)
    return [
        f"--max-connections={shares(args.max_connections, args.workers)[worker]}",
        *(f"{option(name)}={getattr(caps, name)}" for name, *_ in declared()),
    ]


def serve(args: argparse.Namespace) -> int:
    """Run the DM server standalone: HTTPS only, state and CA kept in --data."""
    if args.workers > 1:
        return supervise(args)
    from .choices import Choices
    from .core.limits import from_arguments
    from .runtime import LabCA, ServerThread
    from .runtime.limits import ConnectionLimits
    from .server import build_services, close_streams, create_app, follow_others
    from .server.auth import verify_secret
    from .store import StorageFault
    from .store.sqlite import SchemaVersionError
    from .trace import Trace

    data = Path(args.data)
    exits = contextlib.ExitStack()
    try:
        # The directory holds the CA key and per-device notification keys: owner only.
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        data.chmod(0o700)
        ca = LabCA.load_or_create(data)
        ca.write_ca(data / "ca.pem")
        store = _open_store(args.database, data, exits)
        if hasattr(store, "check"):
            store.check()  # damaged, full or read-only: refuse now, not on the first write
        # The trace is kept in the store too: a restart shows what happened before it.
        services = build_services(
            store=store,
            server_id=args.server_id,
            trace=Trace(sink=store),
            choices=Choices(dict(args.choice)),
            caps=_caps(args),
            limits=from_arguments(args),
        )
        if args.listen_fd is not None:
            print(f"dmlab worker {os.getpid()} started", flush=True)
        # Other processes on this database deliver notifications and publish events too.
        exits.callback(follow_others(services))
        for name, password in args.account:
            existing = store.get_account(name)
            if existing is None or not verify_secret(password, existing.password_hash):
                services.add_account(name, password)
    except (StorageFault, SchemaVersionError, sqlite3.Error, OSError) as exc:
        exits.close()
        # One clear line, no traceback: what is wrong and where.
        print(f"dmlab: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    app = create_app(services)
    limits = ConnectionLimits(
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        handshake_timeout=args.header_timeout,
        max_connections=args.max_connections,
    )
    given = None if args.listen_fd is None else socket.socket(fileno=args.listen_fd)
    server = ServerThread(app, ca, port=args.port, limits=limits, sock=given)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    if given is None:
        print(f"dmlab serving {server.url} (CA certificate: {data / 'ca.pem'})", flush=True)
    try:
        stop.wait()
    finally:
        close_streams(app)
        server.stop()
        exits.close()
    return 0


def supervise(args: argparse.Namespace) -> int:
    """``serve --workers N``: bind the port here, prepare the data directory and the
    database once, then run N ``serve`` processes that each serve the inherited socket
    (the kernel hands every accepted connection to one of them). uvicorn's own
    ``--workers`` would need the app as an import string; ours is built from options.
    Forwards SIGTERM/SIGINT, and restarts a worker that dies."""
    from .runtime.threads import HOST, bind

    if args.database is None:
        print(
            "dmlab: cannot start: --workers needs --database postgresql://… (or "
            f"{THROWAWAY}): a SQLite file is one process's store",
            file=sys.stderr,
            flush=True,
        )
        return 2
    from .caps import divided, option

    for name, flag in [("max_connections", "--max-connections")] + [
        (cap, option(cap)) for cap in divided()
    ]:
        if getattr(args, name) < args.workers:
            print(
                f"dmlab: cannot start: {flag} {getattr(args, name)} is shared by "
                f"--workers {args.workers}, at least one each (give {flag} "
                f"{args.workers} or more)",
                file=sys.stderr,
                flush=True,
            )
            return 2
    exits = contextlib.ExitStack()
    try:
        sock = bind(HOST, args.port)
    except RuntimeError as exc:
        print(f"dmlab: {exc}", file=sys.stderr, flush=True)
        return 1
    exits.callback(sock.close)
    database = args.database
    if database == THROWAWAY:
        from .runtime.postgres import throwaway_postgres

        database = exits.enter_context(throwaway_postgres())
        print(f"dmlab started a throwaway PostgreSQL: {database}", flush=True)
    # The CA, the schema and the accounts are made here, once, before any worker starts.
    from .core.limits import from_arguments, to_arguments
    from .runtime import LabCA
    from .server import build_services
    from .server.auth import verify_secret
    from .store.postgres import PostgresStore

    data = Path(args.data)
    try:
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        data.chmod(0o700)
        LabCA.load_or_create(data).write_ca(data / "ca.pem")
        with PostgresStore(database) as store:
            services = build_services(store=store, server_id=args.server_id)
            for name, password in args.account:
                existing = store.get_account(name)
                if existing is None or not verify_secret(password, existing.password_hash):
                    services.add_account(name, password)
    except Exception as exc:  # the database or the directory: one clear line, no traceback
        exits.close()
        print(f"dmlab: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    command = [
        sys.executable, "-m", "dmlab", "serve", "--data", args.data, "--database", database,
        "--server-id", args.server_id, "--header-timeout", str(args.header_timeout),
        "--body-timeout", str(args.body_timeout), "--listen-fd", str(sock.fileno()),
        *(f"--choice={key}={value}" for key, value in args.choice),
        *to_arguments(from_arguments(args)),
    ]  # fmt: skip
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    # --max-connections and the account caps on waits are the server's: each worker
    # takes its share (the kernel hands every connection to one of them), so that all
    # together never hold more.
    def spawn(i: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*command, *worker_options(args, i)], pass_fds=[sock.fileno()])

    with exits:
        # Connections that arrive before a worker is up wait in the socket's backlog.
        workers = [spawn(i) for i in range(args.workers)]
        print(
            f"dmlab serving https://{HOST}:{sock.getsockname()[1]} with {args.workers} "
            f"workers (CA certificate: {Path(args.data) / 'ca.pem'})",
            flush=True,
        )
        while not stop.wait(0.5):
            for i, worker in enumerate(workers):
                if worker.poll() is not None:
                    print(f"dmlab: worker {worker.pid} exited ({worker.returncode}); restarting")
                    time.sleep(1.0)  # a worker that cannot start must not spin
                    workers[i] = spawn(i)
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        codes = []
        for worker in workers:
            try:
                codes.append(worker.wait(15))
            except subprocess.TimeoutExpired:
                worker.kill()
                codes.append(worker.wait())
    # A worker still starting when asked to stop dies of the SIGTERM itself (its handler
    # is not set yet): it had nothing to finish, so that is a clean stop too.
    return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1


def device(args: argparse.Namespace) -> int:
    """Run one virtual device as its own process, logging each exchange on a line."""
    import httpx

    from .device import SessionFailed, VirtualDevice
    from .protocol import AlertType

    context = ssl.create_default_context(cafile=args.cafile)

    def log(line: str) -> None:
        print(line, flush=True)

    async def main() -> None:
        dev = VirtualDevice(
            args.dev_id,
            args.secret,
            args.server,
            verify=context,
            server_id=args.server_id,
            on_exchange=log,
            on_event=lambda kind, data: log(f"{kind} {data}"),
            services=True,
            choices=dict(args.choice),
        )
        # SIGTERM (a service manager, a test) ends the device like Ctrl-C: the
        # work in flight is cancelled and the client closed, and the exit is 0.
        main_task = asyncio.current_task()
        assert main_task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
        try:
            # Readings not given with --choice: the server's (GET /choices), if it says.
            stated = await dev.adopt_server_choices(keep=dict(args.choice))
            if stated:
                log(
                    f"{args.dev_id} follows the server: "
                    + ", ".join(f"{k}={v}" for k, v in stated.items())
                )
            # A device that restarts asks for its work first: the session it was in
            # when it stopped comes back (lab choice session-resume).
            try:
                await dev.resume()
            except (httpx.TransportError, SessionFailed) as exc:
                log(f"{args.dev_id} could not resume ({exc})")
            # Lab choice notification-transport: long-poll, event stream, or a timer.
            tasks = [asyncio.create_task(dev.listen(period=args.call_in))]
            if args.alert_now:
                await dev.fire_alert(AlertType.CLIENT_INITIATED, trigger="ui")
            if args.browser_component:
                await dev.browser_component(job="inventory")
            if args.every:
                tasks.append(asyncio.create_task(dev.every(args.every)))
            if args.once:
                for task in tasks:
                    task.cancel()
                await dev.settle()
                return
            await asyncio.gather(*tasks)
        finally:
            await dev.aclose()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(main())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .core import limits as session_limits
    from .runtime.limits import ConnectionLimits

    defaults = ConnectionLimits()
    parser = argparse.ArgumentParser(prog="dmlab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    s = commands.add_parser("serve", help="run the DM server over HTTPS")
    s.add_argument(
        "--port",
        type=int,
        default=8443,
        help="the HTTPS port on 127.0.0.1 (0: any free one; the 'dmlab serving' line says which)",
    )
    s.add_argument("--data", required=True, help="directory for the CA and the state")
    s.add_argument(
        "--account",
        type=_account,
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        help="an account to create (repeatable)",
    )
    s.add_argument(
        "--server-id", default="dmlab", help="the SERVER-ID notifications carry (DMAcc SrvID)"
    )
    s.add_argument(
        "--header-timeout",
        type=float,
        default=defaults.header_timeout,
        metavar="SECONDS",
        help="close a connection whose TLS handshake or request head takes longer",
    )
    s.add_argument(
        "--body-timeout",
        type=float,
        default=defaults.body_timeout,
        metavar="SECONDS",
        help="close a connection whose request body takes longer",
    )
    s.add_argument(
        "--max-connections",
        type=int,
        default=defaults.max_connections,
        help="open connections at most, over all --workers (each takes an equal share); "
        "one more is answered 503 and closed (default: 1000, or half the process' file "
        "descriptors if fewer)",
    )
    session_limits.add_arguments(s)
    s.add_argument(
        "--database",
        metavar="URL",
        help="postgresql://USER@HOST:PORT/DB to keep state in PostgreSQL (default: SQLite "
        f"in --data); '{THROWAWAY}' starts a temporary local PostgreSQL for this run",
    )
    s.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="N server processes behind the one port (needs --database postgresql://…)",
    )
    s.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)  # a worker's inherited socket
    s.add_argument(
        "--choice",
        type=_choice,
        action="append",
        default=[],
        metavar="ID=VALUE",
        help="a lab choice's option, e.g. session-ids=stable (repeatable; GET /choices lists them)",
    )
    from .caps import declared, option

    for name, default, counts, over in declared():
        s.add_argument(
            option(name),
            dest=name,
            type=_at_least_one,
            default=default,
            metavar="N",
            help=f"{counts}, at most (over it: {over})".replace("`", "").replace("%", "%%"),
        )
    s.set_defaults(run=serve)

    d = commands.add_parser("device", help="run a virtual device against a server")
    d.add_argument("--server", required=True, help="the server's https:// URL")
    d.add_argument("--cafile", required=True, help="the lab CA certificate (DIR/ca.pem)")
    d.add_argument("--dev-id", required=True)
    d.add_argument("--secret", required=True)
    d.add_argument("--server-id", default="dmlab")
    d.add_argument(
        "--every", type=float, default=0.0, help="fire a client-initiated alert every SECONDS"
    )
    d.add_argument("--alert-now", action="store_true", help="fire one alert at start")
    d.add_argument(
        "--browser-component",
        action="store_true",
        help="start one session through the browser component at start (flow 3)",
    )
    d.add_argument("--once", action="store_true", help="exit after --alert-now's session")
    d.add_argument(
        "--choice",
        type=_choice,
        action="append",
        default=[],
        metavar="ID=VALUE",
        help="a reading the device must follow: notification-transport=long-poll|sse|none, "
        "browser-entry=…, end-report=… (repeatable; by default the device follows the "
        "server's GET /choices)",
    )
    d.add_argument(
        "--call-in",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="under notification-transport=none: POST /sessions/next every SECONDS",
    )
    d.set_defaults(run=device)
    add_conform_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
