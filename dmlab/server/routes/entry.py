"""``POST /sessions/next`` as the browser entry too (lab choice browser-entry=sessions-next).

The CR has both browser flows start a session "by sending HTTP POST request to the DM
Server" and names no resource. This reading sends them to the resource the CR already
has for starting a session, and tells the callers apart as the CR does, by what they send:

- an account (a person's browser posting the device page's form, or a script's JSON)
  names the device in ``devId``: the session is queued and the device notified (flow 4;
  flow 1 for a script); a browser gets a page;
- a device whose JSON body names a job (``job`` or ``CMD``) is its browser component:
  with the command type in Accept the session begins now (flow 3);
- any other device body is package 1, as under the default reading: the device's oldest
  pending session starts.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ...protocol import media
from ..bodies import json_of, read_body, read_fields
from ..context import authenticate, note, owned_device
from ..negotiation import FLOW_3, JSON_OR_HTML, negotiate
from ..operation import (
    BOTH,
    COMMANDS_200,
    QUEUE_CAPS,
    REPORT_BODY,
    SESSIONS,
    Operation,
    empty,
    json_answer,
    problems,
    ref,
)
from ..problems import bad_request
from .common import report_of
from .devices import check_csrf, enter
from .sessions import open_next

#: What a body that asks for a session (rather than a package 1) names.
REQUEST_KEYS = ("job", "CMD", "commands")


async def start_or_enter(request: Request) -> Response:
    """Start the oldest pending session (a DM client's package 1), or ask for one
    through the browser entry (a browser's form, a script's or a browser
    component's request naming a job)."""
    principal = authenticate(request, "device", "account")
    if principal.kind == "account":
        answer = negotiate(request, JSON_OR_HTML)
        fields = await read_fields(request)
        check_csrf(request, principal, fields)
        dev_id = fields.pop("devId", None)
        if not isinstance(dev_id, str) or not dev_id:
            raise bad_request("name the device: devId")
        device = owned_device(request, principal, dev_id)
        return enter(request, principal, device, fields, answer)
    body = await read_body(request)
    value: Any = json_of(body, request, optional=True)
    if isinstance(value, dict) and any(key in value for key in REQUEST_KEYS):
        note(request, source="browser-component")
        answer = negotiate(request, FLOW_3)
        device = owned_device(request, principal, principal.name)
        return enter(request, principal, device, value, answer)
    return open_next(request, principal, report_of(value))


_BODY: dict[str, Any] = {
    **REPORT_BODY,
    media.JSON: {
        "schema": {"oneOf": [ref("Report"), ref("SessionEntry")]},
        "x-note": "a package 1 (a DM client), or a request for a session naming a job "
        "(a script, or the browser component)",
    },
    media.FORM: {"schema": ref("SessionEntryForm")},
}

routes = [
    Operation(
        "POST",
        "/sessions/next",
        start_or_enter,
        "Start the oldest pending session and get its first commands; also the browser "
        "entry (lab choice browser-entry): a browser's form naming `devId` queues a session "
        "and notifies the device (flow 4), the browser component's job with "
        f"`{media.COMMANDS}` in Accept begins one now (flow 3).",
        SESSIONS,
        who=BOTH,
        body=_BODY,
        body_required=False,
        responses={
            200: COMMANDS_200,
            201: {**COMMANDS_200, "description": "Flow 3: the session has begun; package 2."},
            202: json_answer(
                "SessionBrief",
                "Queued; the device is notified (flow 4 from a browser, flow 1 from a script).",
                html=True,
                headers={"Location": "/sessions/id/{sessionId}"},
            ),
            204: empty("Nothing is pending."),
            **problems(400, 403, 404, 406, 409, 413, 415),
            429: QUEUE_CAPS,
        },
        devid_header=True,
        when={"browser-entry": ("sessions-next",)},
    ),
]
