"""The server's OpenAPI 3.1 document, generated from the app's own routes.

One source of truth: the paths and methods come from ``app.routes``, so a route
cannot exist without being described (it shows up in :func:`undocumented`);
what each operation means is the table :data:`OPERATIONS`, keyed by
``(method, route path)``; and the message bodies are JSON Schemas built from
the protocol model (``ARITY``, ``MARKS``, the media types) and the limits the
routes enforce, so the document and the server cannot drift apart silently.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter
from starlette.routing import BaseRoute, Route

from ..protocol import media
from ..protocol.messages import AlertReport, CommandList, Commands, Report, adapter
from ..protocol.resources import DeviceList, RegisteredDevice, SessionList
from .jobs import PLANNERS
from .negotiation import MAX_BODY
from .routes.devices import DEV_ID, MAX_TEXT
from .routes.resources import DATA_KEY, MAX_WAIT

OPENAPI_VERSION = "3.1.0"

#: Path parameters as the CR spells them (Starlette routes use snake case).
PARAM_NAMES = {"dev_id": "devId", "session_id": "sessionId"}

#: Methods Starlette adds by itself (HEAD beside every GET): not separate operations.
IMPLICIT_METHODS = frozenset({"HEAD"})

ACCOUNT = "accountBasic"
DEVICE = "deviceBasic"


REF = "#/components/schemas/{model}"


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


# Message bodies -----------------------------------------------------------------


def _full(pattern: re.Pattern[str]) -> str:
    """A route's ``fullmatch`` regex as an anchored JSON Schema pattern."""
    return f"^(?:{pattern.pattern})$"


def model_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas of the wire models, named as the components they become."""
    models: dict[str, Any] = {
        "Commands": Commands,
        "CommandList": CommandList,
        "Report": Report,
        "AlertReport": AlertReport,
        "SessionList": SessionList,
        "DeviceList": DeviceList,
        "RegisteredDevice": RegisteredDevice,
    }
    keyed, defs = TypeAdapter.json_schemas(
        [(name, "validation", adapter(model)) for name, model in models.items()],
        ref_template=REF,
    )
    schemas = dict(defs.get("$defs", {}))
    for (name, _), schema in keyed.items():
        if name not in schemas:
            schemas[name] = schema
    # docstrings say ``code``; Markdown (as /docs and generators read it) says `code`
    return json.loads(json.dumps(schemas).replace("``", "`"))


SCHEMAS: dict[str, dict[str, Any]] = {
    **model_schemas(),
    "Problem": {
        "description": "Every refusal: a short error name and a readable detail.",
        "type": "object",
        "required": ["error", "detail"],
        "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    },
    "Registration": {
        "type": "object",
        "required": ["devId"],
        "properties": {
            "devId": {
                "type": "string",
                "pattern": _full(DEV_ID),
                "examples": ["IMEI:490154203237518"],
            },
            **{k: {"type": "string", "maxLength": MAX_TEXT} for k in ("name", "man", "mod")},
            "csrf": {"type": "string", "description": "required on form posts"},
        },
    },
    "DeviceUpdate": {
        "description": "The fields to change; `devId` cannot change.",
        "type": "object",
        "properties": {
            "devId": {"type": "string"},
            **{k: {"type": "string", "maxLength": MAX_TEXT} for k in ("name", "man", "mod")},
        },
    },
    "DeviceForm": {
        "description": "An HTML form's stand-in for PUT or DELETE.",
        "type": "object",
        "required": ["_method", "csrf"],
        "properties": {
            "_method": {"enum": ["PUT", "DELETE"]},
            "csrf": {"type": "string"},
            **{k: {"type": "string", "maxLength": MAX_TEXT} for k in ("name", "man", "mod")},
        },
    },
    "SessionRequest": {
        "description": "What the session is for: explicit commands, or a named job. "
        "`notify: false` queues without a DM Notification; `ttl` (seconds) "
        "expires a session the device never starts.",
        "type": "object",
        "properties": {
            "CMD": ref("CommandList"),
            "job": {"enum": [j for j in PLANNERS if j != "commands"]},
            "params": {"type": "object", "additionalProperties": {"type": ["string", "integer"]}},
            "notify": {"type": "boolean", "default": True},
            "ttl": {"type": "number", "minimum": 0},
        },
        "example": {"job": "inventory", "notify": False},
    },
    "SessionRequestForm": {
        "description": "The device page's form: a job (and firmware version), with the CSRF token.",
        "type": "object",
        "required": ["csrf"],
        "properties": {
            "csrf": {"type": "string"},
            "job": {"enum": [j for j in PLANNERS if j != "commands"]},
            "version": {"type": "string"},
            "commands": {"type": "string", "description": "a JSON list of commands"},
            "notify": {"enum": ["true", "false"]},
            "ttl": {"type": "string"},
        },
    },
    "FirmwarePackage": {
        "type": "object",
        "required": ["version", "size", "sha256", "image"],
        "properties": {
            "version": {"type": "string"},
            "size": {"type": "integer"},
            "sha256": {"type": "string"},
            "image": {"type": "string", "contentEncoding": "base64"},
        },
    },
    "Home": {
        "type": "object",
        "required": ["server", "resources"],
        "properties": {
            "server": {"type": "string"},
            "resources": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["method", "path", "purpose"],
                    "properties": {
                        "method": {"type": "string"},
                        "path": {"type": "string"},
                        "purpose": {"type": "string"},
                    },
                },
            },
        },
    },
    "Html": {"type": "string", "description": "an HTML page"},
}


# Responses ------------------------------------------------------------------------

PROBLEM_CONTENT = {media.JSON: {"schema": ref("Problem")}, media.HTML: {"schema": ref("Html")}}

#: Shared refusals; the text says when each happens.
COMMON_RESPONSES: dict[str, dict[str, Any]] = {
    "400": {
        "description": "The request is malformed (a bad body, field or parameter).",
        "content": PROBLEM_CONTENT,
    },
    "401": {
        "description": "No valid credentials (or `OMADM-DevID` names another device).",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        "content": PROBLEM_CONTENT,
    },
    "403": {
        "description": "Credentials of the wrong kind, or a form without its CSRF token.",
        "content": PROBLEM_CONTENT,
    },
    "404": {
        "description": "No such resource, or one the caller may not see.",
        "content": PROBLEM_CONTENT,
    },
    "405": {"description": "Not allowed here.", "content": PROBLEM_CONTENT},
    "409": {
        "description": "The session is not in a state that allows this (e.g. a spent id).",
        "content": PROBLEM_CONTENT,
    },
    "413": {
        "description": f"The body is larger than {MAX_BODY} bytes.",
        "content": PROBLEM_CONTENT,
    },
    "415": {
        "description": "The body's media type is not one this resource reads.",
        "content": PROBLEM_CONTENT,
    },
    "429": {
        "description": "Too many failed logins for this name; wait `Retry-After` seconds.",
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
        "content": PROBLEM_CONTENT,
    },
}


def _json(
    schema: str, description: str, *, html: bool = False, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    content = {media.JSON: {"schema": ref(schema)}}
    if html:
        content[media.HTML] = {"schema": ref("Html")}
    response: dict[str, Any] = {"description": description, "content": content}
    if headers:
        response["headers"] = {
            k: {"description": v, "schema": {"type": "string"}} for k, v in headers.items()
        }
    return response


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {media.HTML: {"schema": ref("Html")}}}


def _empty(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if headers:
        response["headers"] = {
            k: {"description": v, "schema": {"type": "string"}} for k, v in headers.items()
        }
    return response


COMMANDS_200 = {
    "description": "Package 2: the commands, under the session id in force.",
    "headers": {
        "Location": {
            "description": "/sessions/id/{the id to report to}",
            "schema": {"type": "string"},
        }
    },
    "content": {media.COMMANDS: {"schema": ref("Commands")}},
}
END_204 = _empty(
    "The session has ended (no commands follow).",
    {"OMADM-Result": "the brief result: OK or failure"},
)
REDIRECT_303 = _empty("Browsers go on to the next page.", {"Location": "the next page"})

REPORT_BODY = {
    media.DM20_RESPONSE: {"schema": ref("Report")},
    media.JSON: {"schema": ref("Report")},
}


# Operations -----------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """What the routes cannot say about themselves."""

    summary: str
    tag: str
    who: tuple[str, ...] = ()  # security schemes, any of them
    body: dict[str, Any] | None = None  # media type -> {"schema": ...}
    body_required: bool = True
    responses: Mapping[int, dict[str, Any] | str] = field(default_factory=dict)
    query: tuple[dict[str, Any], ...] = ()
    devid_header: bool = False  # a device names itself in OMADM-DevID


SESSIONS = "Sessions (CR x.1.1)"
DEVICES = "Devices (CR x.1.2)"
ALERT = "Alert (CR x.1.3)"
ENTRY = "Browser entry point (lab choice)"
DATA = "Data resources (lab choice)"
PEOPLE = "Pages for people"

BOTH = (DEVICE, ACCOUNT)
_listing = {
    200: _json(
        "SessionList",
        "The sessions (a device sees its own, an account every session of its devices).",
    )
}
_abort = Op(
    "Abort a started or pending session (DM 1.2's alert 1223).",
    SESSIONS,
    BOTH,
    responses={200: _json("SessionBrief", "The aborted session."), 404: "404", 409: "409"},
    devid_header=True,
)


def _form_or_json(form: str, json_schema: str) -> dict[str, Any]:
    return {media.FORM: {"schema": ref(form)}, media.JSON: {"schema": ref(json_schema)}}


OPERATIONS: dict[tuple[str, str], Op] = {
    ("GET", "/sessions/pending"): Op(
        "List pending management sessions.", SESSIONS, BOTH, responses=_listing, devid_header=True
    ),
    ("GET", "/sessions/completed"): Op(
        "List completed sessions with their brief result (OK or failure).",
        SESSIONS,
        BOTH,
        responses=_listing,
        devid_header=True,
    ),
    ("POST", "/sessions/next"): Op(
        "Start the oldest pending session and get its first commands.",
        SESSIONS,
        (DEVICE,),
        body=REPORT_BODY,
        body_required=False,
        responses={
            200: COMMANDS_200,
            204: _empty("Nothing is pending."),
            400: "400",
            413: "413",
            415: "415",
        },
        devid_header=True,
    ),
    ("POST", "/sessions/id/{session_id}"): Op(
        "Start that pending session and get its first commands.",
        SESSIONS,
        (DEVICE,),
        body=REPORT_BODY,
        body_required=False,
        responses={
            200: COMMANDS_200,
            204: END_204,
            400: "400",
            404: "404",
            409: "409",
            413: "413",
            415: "415",
        },
        devid_header=True,
    ),
    ("PUT", "/sessions/id/{session_id}"): Op(
        "Report one status per command; get the next commands under a new session id, "
        "or 204 at the end.",
        SESSIONS,
        (DEVICE,),
        body=REPORT_BODY,
        responses={
            200: COMMANDS_200,
            204: END_204,
            400: "400",
            404: "404",
            409: "409",
            413: "413",
            415: "415",
        },
        devid_header=True,
    ),
    ("DELETE", "/sessions/id/{session_id}"): _abort,
    ("DELETE", "/session/id/{session_id}"): _abort,
    ("GET", "/devices"): Op(
        "List the account's devices.",
        DEVICES,
        (ACCOUNT,),
        responses={200: _json("DeviceList", "The devices.", html=True)},
    ),
    ("GET", "/devices/new"): Op(
        "The device registration form.", DEVICES, (ACCOUNT,), responses={200: _html("The form.")}
    ),
    ("POST", "/devices/new"): Op(
        "Register a device; the answer carries its secret, shown this once.",
        DEVICES,
        (ACCOUNT,),
        body=_form_or_json("Registration", "Registration"),
        responses={
            201: _json(
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
    ("GET", "/devices/{dev_id}"): Op(
        "Device information (for browsers, with the forms to update it and request a session).",
        DEVICES,
        (ACCOUNT,),
        responses={200: _json("DeviceInfo", "The device.", html=True), 404: "404"},
    ),
    ("PUT", "/devices/{dev_id}"): Op(
        "Update device information.",
        DEVICES,
        (ACCOUNT,),
        body=_form_or_json("DeviceUpdate", "DeviceUpdate"),
        responses={
            200: _json("DeviceInfo", "Updated."),
            303: REDIRECT_303,
            400: "400",
            404: "404",
            413: "413",
            415: "415",
        },
    ),
    ("DELETE", "/devices/{dev_id}"): Op(
        "Unregister a device.",
        DEVICES,
        (ACCOUNT,),
        responses={204: _empty("Unregistered."), 303: REDIRECT_303, 404: "404"},
    ),
    ("POST", "/devices/{dev_id}"): Op(
        "An HTML form's PUT or DELETE (`_method`), CSRF-checked.",
        DEVICES,
        (ACCOUNT,),
        body={media.FORM: {"schema": ref("DeviceForm")}, media.JSON: {"schema": ref("DeviceForm")}},
        responses={
            200: _json("DeviceInfo", "Updated (JSON)."),
            204: _empty("Unregistered."),
            303: REDIRECT_303,
            400: "400",
            404: "404",
            405: "405",
            413: "413",
            415: "415",
        },
    ),
    ("POST", "/devices/{dev_id}/sessions"): Op(
        "Ask for a session: the device's browser component (Accept "
        f"`{media.COMMANDS}`) gets the commands now (flow 3); anyone else queues it and the "
        "device is notified (flow 4 from a browser, flow 1 from a script).",
        ENTRY,
        BOTH,
        body=_form_or_json("SessionRequestForm", "SessionRequest"),
        responses={
            201: {**COMMANDS_200, "description": "Flow 3: the session has begun; package 2."},
            202: _json(
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
    ("POST", "/alert"): Op(
        "Report a device event; a session-opening alert may get commands back under a "
        "new session id.",
        ALERT,
        (DEVICE,),
        body={
            media.DM20_RESPONSE: {"schema": ref("AlertReport")},
            media.JSON: {"schema": ref("AlertReport")},
        },
        responses={
            200: COMMANDS_200,
            204: _empty("Recorded; no session follows (a generic alert, or nothing pending)."),
            400: "400",
            413: "413",
            415: "415",
        },
        devid_header=True,
    ),
    ("GET", "/"): Op(
        "The front page: the resources this server offers.",
        PEOPLE,
        responses={200: _json("Home", "The resources.", html=True)},
    ),
    ("GET", "/firmware/{version}"): Op(
        "A firmware package (what FUMO downloads).",
        DATA,
        BOTH,
        responses={200: _json("FirmwarePackage", "The package."), 404: "404"},
        devid_header=True,
    ),
    ("GET", "/firmware/{version}/url"): Op(
        "The package's URL as text: a FUMO job HGETs it into DownloadAndUpdate/PkgURL.",
        DATA,
        BOTH,
        responses={
            200: {
                "description": "The URL.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            404: "404",
        },
        devid_header=True,
    ),
    ("GET", "/data/{key}"): Op(
        "The data a device delivered under a key (a device reads its own).",
        DATA,
        BOTH,
        responses={
            200: {
                "description": "The data, in the media type it was sent with.",
                "content": {"*/*": {"schema": {}}},
            },
            400: "400",
            404: "404",
        },
        devid_header=True,
    ),
    ("PUT", "/data/{key}"): Op(
        "Where HPUT and SUB deliver a device's data.",
        DATA,
        (DEVICE,),
        body={"*/*": {"schema": {}}},
        body_required=False,
        responses={204: _empty("Stored."), 400: "400", 413: "413"},
        devid_header=True,
    ),
    ("POST", "/data/{key}"): Op(
        "Where HPOST delivers a device's data.",
        DATA,
        (DEVICE,),
        body={"*/*": {"schema": {}}},
        body_required=False,
        responses={204: _empty("Stored."), 400: "400", 413: "413"},
        devid_header=True,
    ),
    ("GET", "/devices/{dev_id}/data/{key}"): Op(
        "The data one of the account's devices delivered under a key.",
        DATA,
        BOTH,
        responses={
            200: {
                "description": "The data, in the media type it was sent with.",
                "content": {"*/*": {"schema": {}}},
            },
            400: "400",
            404: "404",
        },
        devid_header=True,
    ),
    ("GET", "/notifications"): Op(
        "Long-poll for the next DM Notification (package 0): how a device in another "
        "process, or behind NAT, is reached.",
        DATA,
        (DEVICE,),
        query=(
            {
                "name": "wait",
                "in": "query",
                "required": False,
                "description": f"seconds to wait, at most {MAX_WAIT:g}",
                "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT},
            },
        ),
        responses={
            200: {
                "description": "One DM Notification.",
                "content": {
                    media.NOTIFICATION: {
                        "schema": {"type": "string", "contentMediaType": media.NOTIFICATION}
                    }
                },
            },
            204: _empty("None arrived in time."),
            400: "400",
        },
        devid_header=True,
    ),
    ("GET", "/events"): Op(
        "The account's lab events (session queued, started, completed...) as "
        "Server-Sent Events; `Last-Event-ID` replays what a reconnecting client missed.",
        DATA,
        (ACCOUNT,),
        query=(
            {
                "name": "lastEventId",
                "in": "query",
                "required": False,
                "description": "as the Last-Event-ID header",
                "schema": {"type": "string"},
            },
        ),
        responses={
            200: {
                "description": "An endless event stream.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            503: _empty("The server is shutting down.", {"Retry-After": "seconds"}),
        },
    ),
    ("GET", "/openapi.json"): Op(
        "This document.",
        PEOPLE,
        responses={
            200: {
                "description": "OpenAPI 3.1.",
                "content": {media.JSON: {"schema": {"type": "object"}}},
            }
        },
    ),
    ("GET", "/docs"): Op(
        "This document as a page.", PEOPLE, responses={200: _html("The API, readable.")}
    ),
    ("GET", "/login"): Op(
        "Sign in (HTTP Basic) and go on to the devices.",
        PEOPLE,
        (ACCOUNT,),
        responses={303: REDIRECT_303},
    ),
    ("GET", "/logout"): Op(
        "Sign out: a 401 makes the browser forget the credentials it cached.",
        PEOPLE,
        responses={
            401: {
                **COMMON_RESPONSES["401"],
                "description": "Always: the browser drops its cached credentials.",
            }
        },
    ),
}


# The document --------------------------------------------------------------------


def openapi_path(route_path: str) -> str:
    """A Starlette route path with the CR's parameter names."""
    return re.sub(
        r"\{(\w+)(?::\w+)?\}", lambda m: "{" + PARAM_NAMES.get(m[1], m[1]) + "}", route_path
    )


def route_operations(routes: Iterable[BaseRoute]) -> list[tuple[str, str, Route]]:
    """``(method, route path, route)`` for every operation the routes serve."""
    return [
        (method, route.path, route)
        for route in routes
        if isinstance(route, Route)
        for method in sorted((route.methods or set()) - IMPLICIT_METHODS)
    ]


def undocumented(routes: Iterable[BaseRoute]) -> list[str]:
    """Operations without an entry in :data:`OPERATIONS`, and routes of kinds this
    module cannot describe (a mount, a websocket): each is a gap in the document."""
    gaps = [f"{m} {p}" for m, p, _ in route_operations(routes) if (m, p) not in OPERATIONS]
    gaps += [
        f"{type(r).__name__} {getattr(r, 'path', '?')}" for r in routes if not isinstance(r, Route)
    ]
    return gaps


def _parameters(method: str, path: str, op: Op) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name in re.findall(r"\{(\w+)", path):
        schema: dict[str, Any] = {"type": "string", "minLength": 1}
        if name == "dev_id":
            schema = {"type": "string", "pattern": _full(DEV_ID)}
        elif name == "key":
            schema = {"type": "string", "pattern": _full(DATA_KEY)}
        elif name == "version":
            schema = {"type": "string", "examples": ["2.0.0"]}
        params.append(
            {"name": PARAM_NAMES.get(name, name), "in": "path", "required": True, "schema": schema}
        )
    params.extend(op.query)
    if op.devid_header:
        params.append(
            {
                "name": media.DEVID_HEADER,
                "in": "header",
                "required": False,
                "description": "a device names its DevID; it must match the credentials",
                "schema": {"type": "string", "pattern": _full(DEV_ID)},
            }
        )
    return params


def _responses(op: Op) -> dict[str, Any]:
    out: dict[str, Any] = {}
    codes = dict(op.responses)
    if op.who:
        codes.setdefault(401, "401")
        codes.setdefault(403, "403")
        codes.setdefault(429, "429")
    for code in sorted(codes):
        spec = codes[code]
        out[str(code)] = (
            {"$ref": f"#/components/responses/{spec}"} if isinstance(spec, str) else spec
        )
    return out


def _operation(method: str, path: str, route: Route, op: Op) -> dict[str, Any]:
    doc = inspect.getdoc(route.endpoint) or ""
    operation: dict[str, Any] = {
        "operationId": f"{method.lower()} {openapi_path(path)}",
        "summary": op.summary,
        "tags": [op.tag],
        "responses": _responses(op),
    }
    if doc and doc.strip() != op.summary:
        operation["description"] = doc
    params = _parameters(method, path, op)
    if params:
        operation["parameters"] = params
    if op.who:
        operation["security"] = [{scheme: []} for scheme in op.who]
    else:
        operation["security"] = []
    if op.body is not None:
        operation["requestBody"] = {"required": op.body_required, "content": op.body}
    return operation


def build_document(routes: Iterable[BaseRoute], server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document for these routes (normally ``app.routes``)."""
    from .. import __version__  # here: dmlab/__init__ imports the server first

    routes = list(routes)
    paths: dict[str, dict[str, Any]] = {}
    for method, path, route in route_operations(routes):
        op = OPERATIONS.get((method, path))
        if op is None:
            # Undocumented, yet served: say so in the document rather than hide it.
            op = Op("Undocumented.", "Undocumented")
        paths.setdefault(openapi_path(path), {})[method.lower()] = _operation(
            method, path, route, op
        )
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "dmlab: the RESTful OMA DM 2.0 API",
            "version": __version__,
            "description": (
                "The resources of the OMA change request (Sessions, Devices, Alert) as the lab "
                "serves them, with the lab's choices where the CR is silent: the message "
                "bodies (DM 2.0 JSON), the browser entry point, the data resources and the "
                "notification long-poll. Devices authenticate as `devId:secret`, accounts as "
                "`name:password`, both with HTTP Basic over TLS."
            ),
        },
        "tags": [{"name": t} for t in (SESSIONS, DEVICES, ALERT, ENTRY, DATA, PEOPLE)],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "responses": COMMON_RESPONSES,
            "securitySchemes": {
                ACCOUNT: {
                    "type": "http",
                    "scheme": "basic",
                    "description": "an account: `name:password`",
                },
                DEVICE: {
                    "type": "http",
                    "scheme": "basic",
                    "description": "a device: `devId:secret` (the secret follows the last colon)",
                },
            },
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
