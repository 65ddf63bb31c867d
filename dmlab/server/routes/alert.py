"""Alert (CR x.1.3): a device reports an event, and may get commands back."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ...protocol import Report
from ...protocol.messages import AlertReport
from ..auth import Principal
from ..context import authenticate, note, offload, principal_device, services
from ..operation import ALERT, ALERT_BODY, COMMANDS_200, DEVICE, Operation, empty
from .common import (
    base_url,
    commands_answer,
    follows_specification,
    opening_summary,
    read_report,
)


async def alert(request: Request) -> Response:
    """Record every alert. A session-opening alert (client- or server-initiated)
    starts the device's oldest pending session, if there is one, or a new one (lab
    choice alert-opens); a generic alert (such as a FUMO result) is recorded and
    answered with ``204``."""
    principal = authenticate(request, "device")
    report = await read_report(request, AlertReport)
    note(request, request="Alert " + opening_summary(report))
    return await offload(request, lambda: _alert(request, principal, report))


def _alert(request: Request, principal: Principal, report: Report) -> Response:
    device = principal_device(request, principal)
    session = services(request).engine.take_alerts(
        device, report.alerts, base_url(request), end_completes=follows_specification(request)
    )
    if session is None:
        note(request, response="recorded; no session")
        return Response(status_code=204)
    return commands_answer(request, session)


routes = [
    Operation(
        "POST",
        "/alert",
        alert,
        "Report a device event; a session-opening alert may get commands back under a "
        "new session id.",
        ALERT,
        who=DEVICE,
        body=ALERT_BODY,
        responses={
            200: COMMANDS_200,
            204: empty("Recorded; no session follows (a generic alert, or nothing pending)."),
            400: "400",
            406: "406",
            413: "413",
            415: "415",
        },
        devid_header=True,
    )
]
