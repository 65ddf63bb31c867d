"""Devices (CR x.1.2) and the browser entry point ``POST /devices/{devId}/sessions``
(lab choice browser-entry; under its other reading the entry is ``POST /sessions/next``,
:mod:`.entry`, and this resource takes scripts' JSON only).

Browsers get HTML and post forms; scripts send ``Accept: application/json``.
HTML forms cannot send PUT or DELETE, so the device page's forms POST with a
hidden ``_method`` field, which this module treats exactly like the real verb.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ...core import devids
from ...core.devices import text_fields
from ...core.jobs import PLANNERS, job_from_request
from ...protocol import ProtocolError, media
from ...protocol.provenance import PAGE_DEFAULT
from ...store import Device, Origin
from ..auth import Principal
from ..bodies import read_fields
from ..conditions import etag_of, expectation, not_modified
from ..context import Services, authenticate, csrf_for, note, owned_device, services
from ..negotiation import FLOW_3, negotiate, wants_html
from ..operation import (
    ACCOUNT,
    BOTH,
    COMMANDS_200,
    DEVICES,
    END_204,
    ENTRY,
    ETAG,
    NOT_MODIFIED_304,
    QUEUE_CAPS,
    REDIRECT_303,
    Operation,
    empty,
    html_page,
    json_answer,
    problems,
    ref,
)
from ..pages import page
from ..paging import LINK, PAGE_QUERY, next_url, page_headers, page_request
from ..problems import Problem, bad_request
from .common import base_url, commands_answer


def device_json(svc: Services, device: Device) -> dict[str, Any]:
    info = {
        "devId": device.dev_id,
        "name": device.name,
        "man": device.man,
        "mod": device.mod,
        "account": device.account,
        "registered": device.registered_at,
        "pending": svc.engine.pending_count(device.dev_id),
    }
    if svc.choices.is_("active-listing", "own-resource"):
        info["active"] = svc.engine.active_count(device.dev_id)
    return info


def device_url(dev_id: str) -> str:
    return f"/devices/{quote(dev_id)}"


def fixed_paths(request: Request) -> set[str]:
    """The names under /devices/ that are paths of their own (``new``, and any route
    added later): a devId spelled so would be shadowed by them."""
    fixed = set()
    for route in request.app.routes:
        path = getattr(route, "path", "")
        head = path.removeprefix("/devices/").partition("/")[0]
        if path.startswith("/devices/") and head and "{" not in head:
            fixed.add(head)
    return fixed


def check_csrf(request: Request, principal: Principal, fields: dict[str, Any]) -> None:
    """Forms need the token, whatever they accept (a cross-site page can post a form
    with ``Accept: application/json``: both are CORS-safelisted); JSON bodies need
    none, as a cross-site page cannot send them without the server's CORS consent."""
    if media.base(request.headers.get("content-type")) == media.FORM:
        token = fields.get("csrf", "")
        # compared as bytes: compare_digest refuses str with non-ASCII characters
        if not isinstance(token, str) or not hmac.compare_digest(
            token.encode(), csrf_for(request, principal).encode()
        ):
            raise Problem(
                "csrf",
                "the form's CSRF token is missing or wrong; reload the page and submit again",
            )


async def list_devices(request: Request) -> Response:
    """One page of the account's devices, in registration order (lab choice paging)."""
    principal = authenticate(request, "account")
    asked = page_request(request, "devices")
    svc = services(request)
    svc.engine.sweep_expired()  # so that each device's pending count is current
    found = svc.store.devices_page(principal.account, asked.after, asked.limit)
    devices = [device_json(svc, d) for d in found.items]
    following = next_url(request, asked, found)
    response: Response
    note(request, response=f"{len(devices)} device(s)" + (", more" if following else ""))
    if wants_html(request):
        response = page(
            request,
            "devices.html",
            title="Devices",
            account=principal.account,
            devices=devices,
            next=following,
        )
    else:
        body: dict[str, Any] = {"Devices": devices}
        if following:
            body["Next"] = following
        response = JSONResponse(body)
    response.headers.update(page_headers(following))
    return response


async def registration_form(request: Request) -> Response:
    principal = authenticate(request, "account")
    negotiate(request, (media.HTML,))
    return page(
        request,
        "device_new.html",
        title="Register a device",
        csrf=csrf_for(request, principal),
        values={},
    )


async def register(request: Request) -> Response:
    principal = authenticate(request, "account")
    html = wants_html(request)
    fields = await read_fields(request)
    check_csrf(request, principal, fields)
    dev_id = devids.canonical(fields.get("devId"))
    if dev_id in fixed_paths(request):
        raise Problem("bad-dev-id", f"{dev_id} is a path of its own under /devices/")
    svc = services(request)
    device, secret = svc.devices.register(principal.account, dev_id, text_fields(fields))
    note(request, dev_id=dev_id, request=f"register {dev_id}", response="registered")
    # The secret is shown once, here: no cache may keep it.
    headers = {"Location": device_url(device.dev_id), "Cache-Control": "no-store"}
    if html:
        response = page(
            request,
            "device_registered.html",
            status_code=201,
            title="Device registered",
            dev_id=device.dev_id,
            secret=secret,
            account=principal.account,
        )
        response.headers.update(headers)
        return response
    return JSONResponse({**device_json(svc, device), "secret": secret}, 201, headers)


async def show_device(request: Request) -> Response:
    principal = authenticate(request, "account")
    svc = services(request)
    device = owned_device(request, principal, request.path_params["dev_id"])
    info = device_json(svc, device)
    if not wants_html(request):
        tag = etag_of(info)
        if not_modified(request, tag):
            return Response(status_code=304, headers={"ETag": tag})
        return JSONResponse(info, headers={"ETag": tag})
    # The first page of its pending sessions, and the newest completed ones.
    pending = svc.engine.pending_page(dev_id=device.dev_id, limit=PAGE_DEFAULT)
    newest = svc.engine.completed_page(dev_id=device.dev_id, limit=20, newest_first=True)
    sessions = [svc.engine.brief(s) for s in pending.items]
    sessions += [svc.engine.brief(s) for s in reversed(newest.items)]
    alerts = [r.alert.to_json() for r in svc.store.alerts_of(device.dev_id, 10)]
    return page(
        request,
        "device.html",
        title=f"Device {device.dev_id}",
        device=info,
        csrf=csrf_for(request, principal),
        sessions=sessions,
        alerts=alerts,
        jobs=[j for j in PLANNERS if j != "commands"],
        # Where the session form posts: lab choice browser-entry.
        entry=(
            "/sessions/next"
            if svc.choices.is_("browser-entry", "sessions-next")
            else f"{device_url(device.dev_id)}/sessions"
        ),
    )


def _tag_of(svc: Services) -> Any:
    return lambda device: etag_of(device_json(svc, device))


async def update_device(request: Request, fields: dict[str, Any] | None = None) -> Response:
    principal = authenticate(request, "account")
    html = wants_html(request)
    svc = services(request)
    dev_id = request.path_params["dev_id"]
    if fields is None:
        fields = await read_fields(request)
        check_csrf(request, principal, fields)
    expect = expectation(request, _tag_of(svc))
    updated = svc.devices.update(principal.account, dev_id, fields, expect)
    changed = sorted(k for k in fields if k in ("name", "man", "mod"))
    note(request, dev_id=updated.dev_id, request="update " + ", ".join(changed), response="updated")
    if html:
        return RedirectResponse(device_url(updated.dev_id), status_code=303)
    info = device_json(svc, updated)
    return JSONResponse(info, headers={"ETag": etag_of(info)})


async def delete_device(request: Request) -> Response:
    principal = authenticate(request, "account")
    html = wants_html(request)
    svc = services(request)
    expect = expectation(request, _tag_of(svc))
    device = svc.devices.unregister(principal.account, request.path_params["dev_id"], expect)
    note(request, dev_id=device.dev_id, response="unregistered")
    if html:
        return RedirectResponse("/devices", status_code=303)
    return Response(status_code=204)


async def device_form_post(request: Request) -> Response:
    """An HTML form's stand-in for PUT or DELETE (``_method``)."""
    principal = authenticate(request, "account")
    fields = await read_fields(request)
    check_csrf(request, principal, fields)
    method = str(fields.pop("_method", "")).upper()
    fields.pop("csrf", None)
    if method == "PUT":
        return await update_device(request, fields)
    if method == "DELETE":
        return await delete_device(request)
    # A 405 names what is allowed (RFC 9110 15.5.6): this resource's methods.
    raise Problem(
        "method-not-allowed",
        "POST to a device needs _method=PUT or _method=DELETE",
        {"Allow": "DELETE, GET, HEAD, POST, PUT"},
    )


async def request_session(request: Request) -> Response:
    """The browser entry point (flows 3 and 4 of the CR).

    With ``Accept: application/vnd.omadm-cmd+json`` the caller is the device's
    browser component: the session starts now and the commands come back at once.
    Otherwise the session is queued, the device is notified, and the answer is 202.
    """
    principal = authenticate(request, "account", "device")
    answer = negotiate(request, FLOW_3)
    device = owned_device(request, principal, request.path_params["dev_id"])
    fields = await read_fields(request)
    check_csrf(request, principal, fields)
    return enter(request, principal, device, fields, answer)


async def queue_session(request: Request) -> Response:
    """Queue a session for a script (lab choice browser-entry=sessions-next: browsers
    and the browser component POST to ``/sessions/next``; this resource is the
    ``queue-resource`` alone, JSON in and out)."""
    principal = authenticate(request, "account", "device")
    answer = negotiate(request, (media.JSON,))
    device = owned_device(request, principal, request.path_params["dev_id"])
    if media.base(request.headers.get("content-type")) == media.FORM:
        raise Problem(
            "unsupported-media-type",
            "send application/json; a browser's form goes to POST /sessions/next "
            "(lab choice browser-entry=sessions-next)",
        )
    return enter(request, principal, device, await read_fields(request), answer)


def enter(
    request: Request, principal: Principal, device: Device, fields: dict[str, Any], answer: str
) -> Response:
    """A session asked for through the browser entry, whichever resource it is: begun now
    for the device's browser component (``answer`` is the command type), else queued and
    the device notified (a page for a browser, JSON for a script)."""
    svc = services(request)
    try:
        job = job_from_request(fields)
    except ProtocolError as exc:
        raise bad_request(str(exc)) from None
    note(request, request=f"job {job.describe()}")
    if answer == media.COMMANDS:
        if principal.kind != "device":
            # Only the device's own browser component can run the commands and
            # report on them; begun for anyone else, the session would hang active.
            raise Problem(
                "forbidden",
                f"commands ({media.COMMANDS}) are for the device's "
                "browser component, which signs in with the device's credentials",
            )
        session = svc.engine.begin(device, job, Origin.BROWSER_COMPONENT, base_url(request))
        return commands_answer(request, session, status_code=201)
    notify = fields.get("notify", True) not in (False, "false", "0", "no")
    ttl = fields.get("ttl")
    if ttl is not None and (
        isinstance(ttl, bool)
        or not isinstance(ttl, (int, float, str))
        or not str(ttl).replace(".", "", 1).isdigit()
        # "999…9" is all digits, yet an infinite (or overflowing) float
        or len(str(ttl)) > 20
    ):
        raise bad_request("ttl is a number of seconds")
    # A person's browser makes it flow 4; an operator's script asks the server
    # to manage the device, which is flow 1 (server-initiated).
    origin = Origin.BROWSER if answer == media.HTML else Origin.SERVER
    session = svc.engine.queue(
        device, job, origin, notify=notify, ttl=float(ttl) if ttl is not None else None
    )
    note(
        request,
        session=session.session_id,
        response=f"queued {session.session_id}" + ("; device notified" if notify else ""),
    )
    location = f"/sessions/id/{session.session_id}"
    if answer == media.HTML:
        response = page(
            request,
            "session_queued.html",
            status_code=202,
            title="Session queued",
            session=svc.engine.brief(session),
        )
        response.headers["Location"] = location
        return response
    return JSONResponse(svc.engine.brief(session), status_code=202, headers={"Location": location})


def _bodies(form: str, json_schema: str) -> dict[str, Any]:
    """A form (what the pages post, CSRF token included) or JSON (what scripts send)."""
    return {media.FORM: {"schema": ref(form)}, media.JSON: {"schema": ref(json_schema)}}


# Bodies that may be empty are not "required": an absent body reads as no fields
# (and code generators write a working client only for optional multi-type bodies).
routes = [
    Operation(
        "GET",
        "/devices",
        list_devices,
        "List the account's devices.",
        DEVICES,
        who=ACCOUNT,
        query=PAGE_QUERY,
        responses={
            200: json_answer(
                "DeviceList",
                "One page of the devices, in registration order.",
                html=True,
                headers=LINK,
            ),
            400: "400",
            406: "406",
        },
    ),
    Operation(
        "GET",
        "/devices/new",
        registration_form,
        "The device registration form.",
        DEVICES,
        who=ACCOUNT,
        responses={200: html_page("The form."), 406: "406"},
    ),
    Operation(
        "POST",
        "/devices/new",
        register,
        "Register a device; the answer carries its secret, shown this once.",
        DEVICES,
        who=ACCOUNT,
        body=_bodies("RegistrationForm", "Registration"),
        body_required=False,
        responses={
            201: json_answer(
                "RegisteredDevice",
                "Registered.",
                html=True,
                headers={"Location": "the device's page", "Cache-Control": "no-store"},
            ),
            **problems(400, 406, 409, 413, 415),
        },
    ),
    Operation(
        "GET",
        "/devices/{dev_id}",
        show_device,
        "Device information (for browsers, with the forms to update it and request a session).",
        DEVICES,
        who=ACCOUNT,
        responses={
            200: json_answer("DeviceInfo", "The device.", html=True, headers=ETAG),
            304: NOT_MODIFIED_304,
            404: "404",
            406: "406",
        },
    ),
    Operation(
        "PUT",
        "/devices/{dev_id}",
        update_device,
        "Update device information; honours `If-Match` and `If-None-Match`.",
        DEVICES,
        who=ACCOUNT,
        body=_bodies("DeviceUpdateForm", "DeviceUpdate"),
        body_required=False,
        responses={
            200: json_answer("DeviceInfo", "Updated.", headers=ETAG),
            303: REDIRECT_303,
            **problems(400, 404, 406, 412, 413, 415),
        },
    ),
    Operation(
        "DELETE",
        "/devices/{dev_id}",
        delete_device,
        "Unregister a device; honours `If-Match` and `If-None-Match`.",
        DEVICES,
        who=ACCOUNT,
        responses={
            204: empty("Unregistered."),
            303: REDIRECT_303,
            **problems(404, 406, 412),
        },
    ),
    Operation(
        "POST",
        "/devices/{dev_id}",
        device_form_post,
        "An HTML form's PUT or DELETE (`_method`); a form needs its CSRF token.",
        DEVICES,
        who=ACCOUNT,
        body=_bodies("DeviceMethodForm", "DeviceMethod"),
        body_required=False,
        responses={
            200: json_answer("DeviceInfo", "Updated (JSON).", headers=ETAG),
            204: empty("Unregistered."),
            303: REDIRECT_303,
            **problems(400, 404, 405, 406, 412, 413, 415),
        },
    ),
    Operation(
        "POST",
        "/devices/{dev_id}/sessions",
        request_session,
        "Ask for a session: the device's browser component (preferring "
        f"`{media.COMMANDS}` in Accept) gets the commands now (flow 3); anyone else queues it "
        "and the device is notified (flow 4 from a browser, flow 1 from a script).",
        ENTRY,
        who=BOTH,
        body=_bodies("SessionRequestForm", "SessionRequest"),
        body_required=False,
        responses={
            201: {**COMMANDS_200, "description": "Flow 3: the session has begun; package 2."},
            202: json_answer(
                "SessionBrief",
                "Queued.",
                html=True,
                headers={"Location": "/sessions/id/{sessionId}"},
            ),
            204: END_204,
            **problems(400, 403, 404, 406, 413, 415),
            429: QUEUE_CAPS,
        },
        when={"browser-entry": ("device-sessions",)},
    ),
    Operation(
        "POST",
        "/devices/{dev_id}/sessions",
        queue_session,
        "Queue a session for the device and notify it (a script: flow 1). Browsers and the "
        "browser component POST to `/sessions/next` (lab choice browser-entry).",
        ENTRY,
        who=BOTH,
        body={media.JSON: {"schema": ref("SessionRequest")}},
        body_required=False,
        responses={
            202: json_answer(
                "SessionBrief", "Queued.", headers={"Location": "/sessions/id/{sessionId}"}
            ),
            **problems(400, 404, 406, 413, 415),
            429: QUEUE_CAPS,
        },
        when={"browser-entry": ("sessions-next",)},
    ),
]
