"""``python -m dmlab conform server|device``: the kit from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import reports
from .purposes import Side, select


def _pair(what: str) -> Any:
    def parse(text: str) -> tuple[str, str]:
        name, sep, secret = text.partition(":") if what == "account" else text.rpartition(":")
        if not sep or not name or not secret:
            raise argparse.ArgumentTypeError(
                "an account is NAME:PASSWORD" if what == "account" else "a device is DEVID:SECRET"
            )
        return name, secret

    return parse


def add_parser(commands: Any) -> None:
    conform = commands.add_parser("conform", help="check a server or a device against the CR")
    sides = conform.add_subparsers(dest="side", required=True)

    s = sides.add_parser("server", help="check a DM 2.0 server at URL, clause by clause")
    s.add_argument("url", help="the server's https:// URL")
    s.add_argument("--cafile", help="the CA certificate that signs the server's (PEM)")
    s.add_argument(
        "--account",
        type=_pair("account"),
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        help="an account to test with; a second one enables the isolation checks",
    )
    s.add_argument(
        "--device",
        type=_pair("device"),
        action="append",
        default=[],
        metavar="DEVID:SECRET",
        help="a registered device to use where the kit cannot register its own",
    )
    s.add_argument(
        "--only", metavar="PATTERN", help="test purposes: ids, prefixes or globs, comma-separated"
    )
    s.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    s.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    s.add_argument("--json", metavar="FILE", help="write a JSON report")
    s.set_defaults(run=server)

    d = sides.add_parser("device", help="run a checking server for a device to connect to")
    d.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    d.add_argument("--data", required=True, help="directory for the CA certificate")
    d.add_argument("--server-id", default="dmlab", help="the server id the device expects")
    d.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the device")
    d.add_argument("--only", metavar="PATTERN")
    d.add_argument("--junit", metavar="FILE")
    d.add_argument("--html", metavar="FILE")
    d.add_argument("--json", metavar="FILE")
    d.set_defaults(run=device)


def _finish(result: Any, args: argparse.Namespace) -> int:
    print()
    print(result.summary_text())
    print(f"{len(result.outcomes)} test purposes in {result.seconds:.1f} s", flush=True)
    reports.write(result, junit_path=args.junit, html_path=args.html, json_path=args.json)
    return 0 if result.ok else 1


def _nothing_selected(side: Side, only: str | None) -> bool:
    if only and not select(side, only):
        print(f"no {side} test purpose matches --only {only!r}", file=sys.stderr)
        return True
    return False


def server(args: argparse.Namespace) -> int:
    from .server import run

    if _nothing_selected("server", args.only):
        return 2
    if not args.account:
        print("note: without --account only the TLS purposes can be decided", file=sys.stderr)
    result = run(
        args.url,
        cafile=args.cafile,
        accounts=args.account,
        devices=args.device,
        only=args.only,
        on_outcome=lambda o: print(o.line(), flush=True),
    )
    return _finish(result, args)


def device(args: argparse.Namespace) -> int:
    from .device import CheckingServer

    if _nothing_selected("device", args.only):
        return 2
    with CheckingServer(
        args.data, port=args.port, server_id=args.server_id, only=args.only
    ) as checking:
        for line in checking.instructions():
            print(line, flush=True)
        result = checking.wait(args.timeout, on_outcome=lambda o: print(o.line(), flush=True))
    return _finish(result, args)
