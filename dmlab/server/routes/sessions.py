"""Sessions (CR x.1.1): list, start, report results, abort."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...protocol import Report, summarize_statuses
from ...store import Session, State
from ..auth import Principal
from ..conditions import etag_of, expectation, not_modified
from ..context import authenticate, note, offload, principal_device, services
from ..operation import (
    BOTH,
    COMMANDS_200,
    DEVICE,
    END_204,
    ETAG,
    NOT_MODIFIED_304,
    REPORT_BODY,
    SESSIONS,
    Operation,
    empty,
    json_answer,
)
from ..paging import LINK, PAGE_QUERY, next_url, page_headers, page_request
from .common import (
    base_url,
    commands_answer,
    follows_specification,
    opening_summary,
    read_report,
)


def _tagger(request: Request) -> Callable[[Session], str]:
    """The session resource's tag: that of its brief, what ``GET`` answers."""
    engine = services(request).engine
    return lambda session: etag_of(engine.brief(session))


def _listing(request: Request, state: State) -> Response:
    """One page of the caller's sessions in ``state`` (lab choice paging): a device's
    own, or every session of an account's devices (lab choice listing-scope)."""
    principal = authenticate(request, "device", "account")
    asked = page_request(request, state.value)
    engine = services(request).engine
    dev_id = principal.name if principal.kind == "device" else None
    account = None if dev_id else principal.account
    if state is State.PENDING:
        page = engine.pending_page(
            dev_id=dev_id, account=account, after=asked.after, limit=asked.limit
        )
    elif state is State.ACTIVE:
        page = engine.active_page(
            dev_id=dev_id, account=account, after=asked.after, limit=asked.limit
        )
    else:
        page = engine.completed_page(
            dev_id=dev_id, account=account, after=asked.after, limit=asked.limit
        )
    following = next_url(request, asked, page)
    note(request, response=f"{len(page.items)} {state.value}" + (", more" if following else ""))
    body: dict[str, Any] = {"Sessions": [engine.brief(s) for s in page.items]}
    if following:
        body["Next"] = following
    return JSONResponse(body, headers=page_headers(following))


async def pending(request: Request) -> Response:
    return _listing(request, State.PENDING)


async def completed(request: Request) -> Response:
    return _listing(request, State.COMPLETED)


async def active(request: Request) -> Response:
    return _listing(request, State.ACTIVE)


async def _opening_report(request: Request) -> Report:
    """The optional package 1 body: alerts such as ServerInitiatedMgmt, and MOS."""
    report = await read_report(request, optional=True)
    note(request, request=opening_summary(report))
    return report


async def start_next(request: Request) -> Response:
    principal = authenticate(request, "device")
    report = await read_report(request, optional=True)
    return await offload(request, lambda: open_next(request, principal, report))


def open_next(request: Request, principal: Principal, report: Report) -> Response:
    """Start the device's oldest pending session, whose package 1 was ``report``."""
    dev_id = principal.name
    note(request, request=opening_summary(report))
    svc = services(request)
    session = svc.engine.start_next(
        dev_id,
        base_url(request),
        end_completes=follows_specification(request),
        resume=True,  # lab choice session-resume: an active session's round comes again
    )
    if session is None:
        note(request, response="nothing pending")
        return Response(status_code=204)
    _record_opening_alerts(request, principal, session, report)
    return commands_answer(request, session)


async def start(request: Request) -> Response:
    principal = authenticate(request, "device")
    session_id = request.path_params["session_id"]
    note(request, session=session_id)
    report = await _opening_report(request)

    def work() -> Response:
        session = services(request).engine.start(
            principal.name,
            session_id,
            base_url(request),
            end_completes=follows_specification(request),
        )
        _record_opening_alerts(request, principal, session, report)
        return commands_answer(request, session)

    return await offload(request, work)


async def report(request: Request) -> Response:
    principal = authenticate(request, "device")
    session_id = request.path_params["session_id"]
    note(request, session=session_id)
    report = await read_report(request)
    note(request, request=f"Status {summarize_statuses(report.statuses)}")
    svc = services(request)
    expect = expectation(request, _tagger(request))

    def work() -> Response:
        session = svc.engine.report(
            principal.name,
            session_id,
            report,
            base_url(request),
            expect,
            end_completes=follows_specification(request),
        )
        return commands_answer(request, session)

    return await offload(request, work)


async def show(request: Request) -> Response:
    """A session's brief (where a 201 or 202 points), with its tag for If-Match."""
    principal = authenticate(request, "device", "account")
    session_id = request.path_params["session_id"]
    note(request, session=session_id)
    dev_id = principal.name if principal.kind == "device" else None
    engine = services(request).engine
    session = engine.visible(dev_id, principal.account, session_id)
    tag = _tagger(request)(session)
    if not_modified(request, tag):
        return Response(status_code=304, headers={"ETag": tag})
    note(request, response=session.state.value)
    return JSONResponse(engine.brief(session), headers={"ETag": tag})


async def abort(request: Request) -> Response:
    principal = authenticate(request, "device", "account")
    session_id = request.path_params["session_id"]
    note(request, session=session_id)
    dev_id = principal.name if principal.kind == "device" else None
    expect = expectation(request, _tagger(request))
    engine = services(request).engine
    session = engine.abort(dev_id, principal.account, session_id, expect)
    note(request, response="aborted")
    return JSONResponse(engine.brief(session))


def _record_opening_alerts(
    request: Request, principal: Principal, session: Session, report: Report
) -> None:
    if report.alerts:
        device = principal_device(request, principal)
        services(request).engine.record_alerts(device, report.alerts, session.key)


_LISTING = {
    200: json_answer(
        "SessionList",
        "One page of the sessions, oldest first (a device sees its own, an account every "
        "session of its devices).",
        headers=LINK,
    ),
    400: "400",
}
_package_2 = {
    200: COMMANDS_200,
    400: "400",
    404: "404",
    406: "406",
    409: "409",
    413: "413",
    415: "415",
}
_abort = {
    "who": BOTH,
    "responses": {
        200: json_answer("SessionBrief", "The aborted session."),
        404: "404",
        409: "409",
        412: "412",
    },
    "devid_header": True,
}
_ABORT = (
    "Abort a started or pending session (DM 1.2's alert 1223); honours `If-Match` and "
    "`If-None-Match` against the session's `ETag`."
)

routes = [
    Operation(
        "GET",
        "/sessions/pending",
        pending,
        "List pending management sessions.",
        SESSIONS,
        who=BOTH,
        responses=_LISTING,
        query=PAGE_QUERY,
        devid_header=True,
    ),
    Operation(
        "GET",
        "/sessions/completed",
        completed,
        "List completed sessions with their brief result (OK or failure).",
        SESSIONS,
        who=BOTH,
        responses=_LISTING,
        query=PAGE_QUERY,
        devid_header=True,
    ),
    # Sessions in progress, which the CR lists nowhere (lab choice active-listing).
    Operation(
        "GET",
        "/sessions/active",
        active,
        "List sessions started and not yet ended, each with its idle deadline (`Expires`).",
        SESSIONS,
        who=BOTH,
        responses=_LISTING,
        query=PAGE_QUERY,
        devid_header=True,
        when={"active-listing": ("own-resource",)},
    ),
    Operation(
        "POST",
        "/sessions/next",
        start_next,
        "Start the oldest pending session and get its first commands. A device whose "
        "session is in progress gets that session's current commands again, under its "
        "current id (lab choice session-resume).",
        SESSIONS,
        who=DEVICE,
        body=REPORT_BODY,
        body_required=False,
        responses={**_package_2, 204: empty("Nothing is pending.")},
        devid_header=True,
        # Under browser-entry=sessions-next, routes/entry.py serves this resource.
        when={"browser-entry": ("device-sessions",)},
    ),
    Operation(
        "GET",
        "/sessions/id/{session_id}",
        show,
        "A session's brief (where a 201 or 202 points), with its `ETag`.",
        SESSIONS,
        who=BOTH,
        responses={
            200: json_answer("SessionBrief", "The session.", headers=ETAG),
            304: NOT_MODIFIED_304,
            404: "404",
        },
        devid_header=True,
    ),
    Operation(
        "POST",
        "/sessions/id/{session_id}",
        start,
        "Start that pending session and get its first commands.",
        SESSIONS,
        who=DEVICE,
        body=REPORT_BODY,
        body_required=False,
        responses={**_package_2, 204: END_204},
        devid_header=True,
    ),
    Operation(
        "PUT",
        "/sessions/id/{session_id}",
        report,
        "Report one status per command; get the next commands under a new session id, "
        "or 204 at the end. Honours `If-Match` and `If-None-Match` against the session's "
        "`ETag`.",
        SESSIONS,
        who=DEVICE,
        body=REPORT_BODY,
        responses={**_package_2, 204: END_204, 412: "412"},
        devid_header=True,
    ),
    # The plural spelling, like the CR's other session resources (lab choice abort-path).
    Operation(
        "DELETE",
        "/sessions/id/{session_id}",
        abort,
        _ABORT,
        SESSIONS,
        when={"abort-path": ("both",)},
        **_abort,
    ),
    # The CR spells the abort resource with a singular "session".
    Operation(
        "DELETE",
        "/session/id/{session_id}",
        abort,
        _ABORT,
        SESSIONS,
        operation_id="abort_as_the_cr_spells_it",
        **_abort,
    ),
]
