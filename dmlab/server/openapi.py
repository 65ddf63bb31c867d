"""The server's OpenAPI 3.1 document, generated from the app's own routes.

One source of truth: every route is an :class:`~.operation.Operation` that carries
its own description, so a route cannot exist without being described (a plain one
shows up in :func:`undocumented`); the message bodies are the JSON Schemas of the
wire models (:mod:`dmlab.protocol.messages`, :mod:`dmlab.protocol.resources`) and
of the limits the routes enforce, so the document and the server cannot drift
apart silently.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter
from starlette.routing import BaseRoute, Route

from .._version import __version__
from ..core.devices import MAX_TEXT
from ..core.devids import SHAPE as DEV_ID
from ..core.jobs import PLANNERS
from ..protocol import media
from ..protocol.messages import AlertReport, CommandList, Commands, Report, adapter
from ..protocol.resources import DeviceList, RegisteredDevice, SessionList
from .operation import (
    COMMON_RESPONSES,
    PARAM_NAMES,
    REF,
    SCHEMES,
    TAGS,
    Doc,
    Operation,
    openapi_path,
    ref,
)
from .problems import PROBLEM_TYPES
from .routes.resources import DATA_KEY

OPENAPI_VERSION = "3.1.0"

#: Methods Starlette adds by itself (HEAD beside every GET): not separate operations.
IMPLICIT_METHODS = frozenset({"HEAD"})


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


TEXT = {k: {"type": "string", "maxLength": MAX_TEXT} for k in ("name", "man", "mod")}
CSRF = {"type": "string", "description": "the token the page carried"}
JOBS = [j for j in PLANNERS if j != "commands"]


def _form(json_schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A form's schema: the JSON body's fields plus the CSRF token a form needs (a
    schema of its own, not ``allOf``: generators tell the two bodies apart by type)."""
    return {
        "description": f"{description} Forms need the page's CSRF token.",
        "type": "object",
        "required": [*json_schema.get("required", ()), "csrf"],
        "properties": {**json_schema["properties"], "csrf": CSRF},
    }


#: What a request for a session names (JSON, and the page's form).
SESSION_FIELDS: dict[str, Any] = {
    "CMD": ref("CommandList"),
    "job": {"enum": JOBS},
    "params": {"type": "object", "additionalProperties": {"type": ["string", "integer"]}},
    "notify": {"type": "boolean", "default": True},
    "ttl": {"type": "number", "minimum": 0},
}
SESSION_FORM_FIELDS: dict[str, Any] = {
    "csrf": CSRF,
    "job": {"enum": JOBS},
    "version": {"type": "string"},
    "commands": {"type": "string", "description": "a JSON list of commands"},
    "notify": {"enum": ["true", "false"]},
    "ttl": {"type": "string"},
}

REGISTRATION: dict[str, Any] = {
    "description": "A device to register (JSON: no CSRF token, as a cross-site page "
    "cannot send JSON without the server's CORS consent).",
    "type": "object",
    "required": ["devId"],
    "properties": {
        "devId": {
            "type": "string",
            "pattern": _full(DEV_ID),
            "examples": ["IMEI:490154203237518"],
        },
        **TEXT,
    },
}
DEVICE_UPDATE: dict[str, Any] = {
    "description": "The fields to change; `devId` cannot change.",
    "type": "object",
    "properties": {"devId": {"type": "string"}, **TEXT},
}
DEVICE_METHOD: dict[str, Any] = {
    "description": "A PUT or DELETE sent as a POST (`_method`), with the update's fields.",
    "type": "object",
    "required": ["_method"],
    "properties": {"_method": {"enum": ["PUT", "DELETE"]}, **TEXT},
}


SCHEMAS: dict[str, dict[str, Any]] = {
    **model_schemas(),
    "ChoiceList": {
        "description": "The lab's choices (dmlab/protocol/provenance.py), each with its "
        "options and the one in force.",
        "type": "object",
        "required": ["Choices"],
        "properties": {
            "Choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "topic", "reading", "why", "default", "inForce", "options"],
                    "properties": {
                        **{
                            k: {"type": "string"}
                            for k in [
                                "id",
                                "topic",
                                "clause",
                                "question",
                                "reading",
                                "other",
                                "why",
                                "where",
                                "default",
                                "inForce",
                            ]
                        },
                        "options": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "value": {"type": "string"},
                                    "wire": {"type": "string"},
                                    "departs": {"type": "boolean"},
                                    "purposes": {"type": "array", "items": {"type": "string"}},
                                    "risk": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            }
        },
    },
    "Problem": {
        "description": "Every refusal, as RFC 9457 problem details; `type` is one of the "
        "problem types listed on /docs (`/docs#problem-<name>`).",
        "type": "object",
        "required": ["type", "title", "status", "detail", "instance"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string", "format": "uri-reference"},
        },
    },
    "Registration": REGISTRATION,
    "RegistrationForm": _form(REGISTRATION, "The registration page's form."),
    "DeviceUpdate": DEVICE_UPDATE,
    "DeviceUpdateForm": _form(DEVICE_UPDATE, "The device page's update form."),
    "DeviceMethod": DEVICE_METHOD,
    "DeviceMethodForm": _form(DEVICE_METHOD, "An HTML form's stand-in for PUT or DELETE."),
    "SessionRequest": {
        "description": "What the session is for: explicit commands, or a named job. "
        "`notify: false` queues without a DM Notification; `ttl` (seconds) "
        "expires a session the device never starts.",
        "type": "object",
        "properties": SESSION_FIELDS,
        "example": {"job": "inventory", "notify": False},
    },
    "SessionEntry": {
        "description": "A request for a session at `POST /sessions/next` (lab choice "
        "browser-entry=sessions-next): an account names the device in `devId`; the "
        "device's browser component names none (it asks for itself).",
        "type": "object",
        "properties": {"devId": {"type": "string", "pattern": _full(DEV_ID)}, **SESSION_FIELDS},
        "example": {"devId": "IMEI:490154203237518", "job": "inventory"},
    },
    "SessionEntryForm": {
        "description": "The device page's form under browser-entry=sessions-next: the "
        "device, a job (and firmware version), with the CSRF token.",
        "type": "object",
        "required": ["csrf", "devId"],
        "properties": {"devId": {"type": "string"}, **SESSION_FORM_FIELDS},
    },
    "SessionRequestForm": {
        "description": "The device page's form: a job (and firmware version), with the CSRF token.",
        "type": "object",
        "required": ["csrf"],
        "properties": SESSION_FORM_FIELDS,
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
    "SoftwareDescriptor": {
        "type": "object",
        "required": ["PkgID", "Name", "PkgURL"],
        "properties": {
            k: {"type": "string"}
            for k in ("PkgID", "Name", "PkgURL", "Description", "EnvType", "PkgType")
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
                    "required": ["method", "path", "who", "purpose", "group"],
                    "properties": {
                        "method": {"type": "string"},
                        "path": {"type": "string"},
                        "who": {"type": "string"},
                        "group": {"type": "string"},
                        "purpose": {"type": "string"},
                    },
                },
            },
        },
    },
    "Html": {"type": "string", "description": "an HTML page"},
}


# The document --------------------------------------------------------------------


def route_operations(routes: Iterable[BaseRoute]) -> list[tuple[str, str, Route]]:
    """``(method, route path, route)`` for every operation the routes serve."""
    return [
        (method, route.path, route)
        for route in routes
        if isinstance(route, Route)
        for method in sorted((route.methods or set()) - IMPLICIT_METHODS)
    ]


def undocumented(routes: Iterable[BaseRoute]) -> list[str]:
    """Routes that are not declared :class:`Operation` s (a plain route, a mount, a
    websocket): each is a gap in the document."""
    gaps = [f"{m} {p}" for m, p, r in route_operations(routes) if not isinstance(r, Operation)]
    gaps += [
        f"{type(r).__name__} {getattr(r, 'path', '?')}" for r in routes if not isinstance(r, Route)
    ]
    return gaps


def _parameters(path: str, op: Doc) -> list[dict[str, Any]]:
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
                "description": "a device names its DevID: that of its credentials (another "
                "is a 401); on any request, a value that is no DevID is a 400 (bad-dev-id)",
                "schema": {"type": "string", "pattern": _full(DEV_ID)},
            }
        )
    return params


def _responses(op: Doc) -> dict[str, Any]:
    out: dict[str, Any] = {}
    codes = dict(op.responses)
    if op.who:
        codes.setdefault(401, "401")
        codes.setdefault(403, "403")
        codes.setdefault(429, "429")
    if op.devid_header:
        codes.setdefault(400, "400")
    for code in sorted(codes):
        spec = codes[code]
        out[str(code)] = (
            {"$ref": f"#/components/responses/{spec}"} if isinstance(spec, str) else spec
        )
    return out


def _operation(method: str, path: str, route: Route, op: Doc) -> dict[str, Any]:
    doc = inspect.getdoc(route.endpoint) or ""
    operation: dict[str, Any] = {
        "operationId": op.operation_id or f"{method.lower()} {openapi_path(path)}",
        "summary": op.summary,
        "tags": [op.tag],
        "responses": _responses(op),
    }
    if doc and doc.strip() != op.summary:
        operation["description"] = doc
    params = _parameters(path, op)
    if params:
        operation["parameters"] = params
    operation["security"] = [{SCHEMES[caller]: []} for caller in op.who]
    # The problem types this operation can answer: those of the statuses it declares.
    operation["x-problem-types"] = [
        name for name, p in PROBLEM_TYPES.items() if str(p.status) in operation["responses"]
    ]
    if op.body is not None:
        operation["requestBody"] = {"required": op.body_required, "content": op.body}
    return operation


def build_document(routes: Iterable[BaseRoute], server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document for these routes (normally ``app.routes``)."""
    routes = list(routes)
    paths: dict[str, dict[str, Any]] = {}
    for method, path, route in route_operations(routes):
        # Undocumented, yet served: say so in the document rather than hide it.
        op = route.doc if isinstance(route, Operation) else Doc("Undocumented.", "Undocumented")
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
        "tags": [{"name": t} for t in TAGS],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "responses": COMMON_RESPONSES,
            "securitySchemes": {
                SCHEMES["account"]: {
                    "type": "http",
                    "scheme": "basic",
                    "description": "an account: `name:password`",
                },
                SCHEMES["device"]: {
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
