"""Devices (CR x.1.2) and the browser entry point ``POST /devices/{devId}/sessions``.

Browsers get HTML and post forms; scripts send ``Accept: application/json``.
HTML forms cannot send PUT or DELETE, so the device page's forms POST with a
hidden ``_method`` field, which this module treats exactly like the real verb.
"""

from __future__ import annotations

import dataclasses
import hmac
import re
import time
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ...protocol import ProtocolError, media
from ...protocol.notification import notification_key
from ...store import Device, Origin
from ..auth import Principal, new_secret
from ..context import authenticate, csrf_for, note, owned_device, services
from ..jobs import PLANNERS, job_from_request
from ..negotiation import accepts, read_fields, wants_html
from ..operation import (
    ACCOUNT,
    BOTH,
    COMMANDS_200,
    DEVICES,
    END_204,
    ENTRY,
    REDIRECT_303,
    Operation,
    empty,
    html_page,
    json_answer,
    ref,
)
from ..pages import page
from ..problems import Problem, bad_request, conflict
from .common import base_url, commands_answer

#: DevIDs such as IMEI:490154203237518 or urn:uuid:…; no slashes, dots-only
#: segments or percent signs, so a DevID can never play tricks with paths.
DEV_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._-]{2,99}")
TEXT_FIELDS = ("name", "man", "mod")
MAX_TEXT = 100


def device_json(svc: Any, device: Device) -> dict[str, Any]:
    return {
        "devId": device.dev_id,
        "name": device.name,
        "man": device.man,
        "mod": device.mod,
        "account": device.account,
        "registered": device.registered_at,
        "pending": len(svc.engine.pending(device.dev_id)),
    }


def _check_csrf(request: Request, principal: Principal, fields: dict[str, Any]) -> None:
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
                403,
                "csrf",
                "the form's CSRF token is missing or wrong; reload the page and submit again",
            )


def _text_fields(fields: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key in TEXT_FIELDS:
        value = fields.get(key, "")
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise bad_request(f"{key} must be text of at most {MAX_TEXT} characters")
        out[key] = value.strip()
    return out


async def list_devices(request: Request) -> Response:
    principal = authenticate(request, "account")
    svc = services(request)
    devices = [device_json(svc, d) for d in svc.store.devices_of(principal.account)]
    note(request, response=f"{len(devices)} device(s)")
    if wants_html(request):
        return page(
            request, "devices.html", title="Devices", account=principal.account, devices=devices
        )
    return JSONResponse({"Devices": devices})


async def registration_form(request: Request) -> Response:
    principal = authenticate(request, "account")
    return page(
        request,
        "device_new.html",
        title="Register a device",
        csrf=csrf_for(request, principal),
        values={},
    )


async def register(request: Request) -> Response:
    principal = authenticate(request, "account")
    fields = await read_fields(request)
    _check_csrf(request, principal, fields)
    dev_id = fields.get("devId", "")
    if not isinstance(dev_id, str) or not DEV_ID.fullmatch(dev_id):
        raise bad_request(
            "devId is required: 3 to 100 characters of letters, digits and "
            ":._- (e.g. IMEI:490154203237518 or urn:uuid:…)"
        )
    text = _text_fields(fields)
    svc = services(request)
    secret = new_secret()
    device = Device(
        dev_id=dev_id,
        account=principal.account,
        secret_hash=svc.auth.device_verifier(secret),
        notify_key=notification_key(secret),
        registered_at=time.time(),
        **text,
    )
    with svc.store.transaction():
        if svc.store.get_device(dev_id) is not None:
            raise conflict(f"device {dev_id} is already registered")
        svc.store.put_device(device)
    note(request, dev_id=dev_id, request=f"register {dev_id}", response="registered")
    svc.events.publish("device.registered", account=principal.account, dev_id=dev_id)
    location = f"/devices/{quote(dev_id)}"
    if wants_html(request):
        return page(
            request,
            "device_registered.html",
            status_code=201,
            title="Device registered",
            dev_id=dev_id,
            secret=secret,
            account=principal.account,
        )
    return JSONResponse(
        {**device_json(svc, device), "secret": secret},
        status_code=201,
        headers={"Location": location},
    )


async def show_device(request: Request) -> Response:
    principal = authenticate(request, "account")
    svc = services(request)
    device = owned_device(request, principal, request.path_params["dev_id"])
    info = device_json(svc, device)
    if not wants_html(request):
        return JSONResponse(info)
    sessions = [s.brief() for s in svc.engine.pending(device.dev_id)]
    sessions += [s.brief() for s in svc.engine.completed(device.dev_id)[-20:]]
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
    )


async def update_device(request: Request, fields: dict[str, Any] | None = None) -> Response:
    principal = authenticate(request, "account")
    svc = services(request)
    device = owned_device(request, principal, request.path_params["dev_id"])
    if fields is None:
        fields = await read_fields(request)
        _check_csrf(request, principal, fields)
    if "devId" in fields and fields["devId"] != device.dev_id:
        raise bad_request("devId cannot change; unregister and register again")
    changes = {k: v for k, v in _text_fields(fields).items() if k in fields}
    with svc.store.transaction():
        current = svc.store.get_device(device.dev_id)
        if current is None:
            raise Problem(404, "not-found", f"no device {device.dev_id}")
        updated = dataclasses.replace(current, **changes)  # type: ignore[arg-type]
        svc.store.put_device(updated)
    note(request, request="update " + ", ".join(sorted(changes)), response="updated")
    svc.events.publish("device.updated", account=principal.account, dev_id=device.dev_id)
    if wants_html(request):
        return RedirectResponse(f"/devices/{quote(device.dev_id)}", status_code=303)
    return JSONResponse(device_json(svc, updated))


async def delete_device(request: Request) -> Response:
    principal = authenticate(request, "account")
    svc = services(request)
    device = owned_device(request, principal, request.path_params["dev_id"])
    svc.store.delete_device(device.dev_id)
    svc.notifier.forget(device.dev_id)
    note(request, response="unregistered")
    svc.events.publish("device.unregistered", account=principal.account, dev_id=device.dev_id)
    if wants_html(request):
        return RedirectResponse("/devices", status_code=303)
    return Response(status_code=204)


async def device_form_post(request: Request) -> Response:
    """An HTML form's stand-in for PUT or DELETE (``_method``)."""
    principal = authenticate(request, "account")
    fields = await read_fields(request)
    _check_csrf(request, principal, fields)
    method = str(fields.pop("_method", "")).upper()
    fields.pop("csrf", None)
    if method == "PUT":
        return await update_device(request, fields)
    if method == "DELETE":
        return await delete_device(request)
    # A 405 names what is allowed (RFC 9110 15.5.6): this resource's methods.
    raise Problem(
        405,
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
    svc = services(request)
    device = owned_device(request, principal, request.path_params["dev_id"])
    fields = await read_fields(request)
    _check_csrf(request, principal, fields)
    try:
        job = job_from_request(fields)
    except ProtocolError as exc:
        raise bad_request(str(exc)) from None
    note(request, request=f"job {job.describe()}")
    if accepts(request, media.COMMANDS):
        if principal.kind != "device":
            # Only the device's own browser component can run the commands and
            # report on them; begun for anyone else, the session would hang active.
            raise Problem(
                403,
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
    origin = Origin.BROWSER if wants_html(request) else Origin.SERVER
    session = svc.engine.queue(
        device, job, origin, notify=notify, ttl=float(ttl) if ttl is not None else None
    )
    note(
        request,
        session=session.session_id,
        response=f"queued {session.session_id}" + ("; device notified" if notify else ""),
    )
    location = f"/sessions/id/{session.session_id}"
    if wants_html(request):
        response = page(
            request,
            "session_queued.html",
            status_code=202,
            title="Session queued",
            session=session.brief(),
        )
        response.headers["Location"] = location
        return response
    return JSONResponse(session.brief(), status_code=202, headers={"Location": location})


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
        responses={200: json_answer("DeviceList", "The devices.", html=True)},
    ),
    Operation(
        "GET",
        "/devices/new",
        registration_form,
        "The device registration form.",
        DEVICES,
        who=ACCOUNT,
        responses={200: html_page("The form.")},
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
                headers={"Location": "the device's page"},
            ),
            400: "400",
            409: "409",
            413: "413",
            415: "415",
        },
    ),
    Operation(
        "GET",
        "/devices/{dev_id}",
        show_device,
        "Device information (for browsers, with the forms to update it and request a session).",
        DEVICES,
        who=ACCOUNT,
        responses={200: json_answer("DeviceInfo", "The device.", html=True), 404: "404"},
    ),
    Operation(
        "PUT",
        "/devices/{dev_id}",
        update_device,
        "Update device information.",
        DEVICES,
        who=ACCOUNT,
        body=_bodies("DeviceUpdateForm", "DeviceUpdate"),
        body_required=False,
        responses={
            200: json_answer("DeviceInfo", "Updated."),
            303: REDIRECT_303,
            400: "400",
            404: "404",
            413: "413",
            415: "415",
        },
    ),
    Operation(
        "DELETE",
        "/devices/{dev_id}",
        delete_device,
        "Unregister a device.",
        DEVICES,
        who=ACCOUNT,
        responses={204: empty("Unregistered."), 303: REDIRECT_303, 404: "404"},
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
            200: json_answer("DeviceInfo", "Updated (JSON)."),
            204: empty("Unregistered."),
            303: REDIRECT_303,
            400: "400",
            404: "404",
            405: "405",
            413: "413",
            415: "415",
        },
    ),
    Operation(
        "POST",
        "/devices/{dev_id}/sessions",
        request_session,
        "Ask for a session: the device's browser component (Accept "
        f"`{media.COMMANDS}`) gets the commands now (flow 3); anyone else queues it and the "
        "device is notified (flow 4 from a browser, flow 1 from a script).",
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
            400: "400",
            404: "404",
            413: "413",
            415: "415",
        },
    ),
]
