"""Answers shared by the routes that hand out commands."""

from __future__ import annotations

import functools
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...protocol import ProtocolError, Report, commands_json, media, summarize_commands
from ...protocol.messages import AlertReport, parse
from ...store import Session, State
from ..bodies import read_json
from ..context import note
from ..negotiation import negotiate
from ..problems import bad_request

#: ``JSONResponse.render``'s encoder, made once: ``json.dumps`` with its options builds a
#: new one for every answer.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


class CommandsResponse(JSONResponse):
    media_type = media.COMMANDS

    def render(self, content: Any) -> bytes:
        return _ENCODER.encode(content).encode("utf-8")


#: A package 2's types: the CR's first (what ``*/*`` or no Accept gets), then DM 2.0's.
PACKAGE_2 = (media.COMMANDS, media.DM20_REQUEST)


def follows_specification(request: Request) -> bool:
    """Whether the device asks for package 2 in the DM 2.0 specification's type and not
    in the CR's: it then sends no package 3 after END (lab choice end-report), and its
    package 2 comes labelled the specification's way."""
    # Neither acceptable: a 406, raised before the engine changes anything.
    return negotiate(request, PACKAGE_2) == media.DM20_REQUEST


def commands_answer(request: Request, session: Session, status_code: int = 200) -> Response:
    """A package 2 (``SessionID`` + ``CMD``), or ``204`` if the session already ended.

    A session completed by handing out END (:func:`follows_specification`) still
    gets that last package: its round is the one without statuses."""
    note(request, session=session.session_id)
    handed_out = bool(session.rounds) and session.rounds[-1].statuses is None
    if session.state is State.COMPLETED and not handed_out:
        note(request, response=f"end ({session.result.value if session.result else ''})")
        return Response(status_code=204, headers={"OMADM-Result": _result(session)})
    commands = session.rounds[-1].commands
    note(request, response=f"SessionID {session.session_id}: {summarize_commands(commands)}")
    return CommandsResponse(
        {"SessionID": session.session_id, "CMD": commands_json(commands)},
        status_code=status_code,
        headers={"Location": f"/sessions/id/{session.session_id}"},
        media_type=media.DM20_REQUEST if follows_specification(request) else media.COMMANDS,
    )


def base_url(request: Request) -> str:
    """The server's URL as this request reached it (Starlette's ``base_url``)."""
    scope = request.scope
    host = next((value for name, value in scope["headers"] if name == b"host"), None)
    server = scope.get("server")
    root = scope.get("app_root_path", scope.get("root_path", ""))
    return _base_url(scope.get("scheme", "http"), host, server and tuple(server), root)


@functools.lru_cache(maxsize=64)
def _base_url(scheme: str, host: bytes | None, server: tuple[str, int] | None, root: str) -> str:
    """Starlette's ``Request.base_url`` of a request with these parts, remembered: it
    builds and parses two URLs, every request, for what is nearly always one answer."""
    scope = {
        "type": "http",
        "scheme": scheme,
        "server": server,
        "path": root,
        "root_path": root,
        "query_string": b"",
        "headers": [] if host is None else [(b"host", host)],
    }
    return str(Request(scope).base_url).rstrip("/")


def _result(session: Session) -> str:
    return session.result.value if session.result else ""


def opening_summary(report: Report) -> str:
    """A package 1 for the trace: its alerts, and the MOs it lists (``MOS``)."""
    parts = [str(a) for a in report.alerts]
    if report.mos:
        listed = ", ".join(
            f"{(m.moid or '?').removeprefix('urn:oma:mo:')}[{','.join(m.miid)}]" for m in report.mos
        )
        parts.append(f"MOS {listed}")
    return " ".join(parts)


async def read_report(
    request: Request, model: type[Report] | type[AlertReport] = Report, *, optional: bool = False
) -> Report:
    """A package 1 or 3 body (statuses and alerts) read as ``model``; a malformed
    one is a 400, and an empty one, where ``optional``, is an empty report."""
    return report_of(await read_json(request, optional=optional), model)


def report_of(body: Any, model: type[Report] | type[AlertReport] = Report) -> Report:
    """:func:`read_report` for a JSON value already read (``None``: no body)."""
    if body is None:
        return Report()
    try:
        message: Report | AlertReport = parse(model, body)
    except ProtocolError as exc:
        raise bad_request(str(exc)) from None
    return Report(message.statuses, message.alerts, message.mos)
