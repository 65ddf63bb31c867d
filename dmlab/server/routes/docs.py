"""The API described (``/openapi.json``, ``/docs``) and signing in and out for people.

``/docs`` is rendered on the server from the same document ``/openapi.json``
serves, so it works without internet access and without JavaScript.

HTTP Basic has no logout: a browser keeps sending the credentials it cached.
``/logout`` answers ``401`` with a challenge for the same realm, which makes
the browser forget them; ``/login`` is any page that demands them.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ...protocol import media
from ..context import REALM, authenticate, note, services
from ..guide import device_guide
from ..negotiation import wants_html
from ..openapi import build_document
from ..operation import ACCOUNT, COMMON_RESPONSES, PEOPLE, REDIRECT_303, Operation, html_page
from ..pages import page
from ..problems import PROBLEM_TYPES, Problem, problem_response
from .common import base_url


def document(request: Request) -> dict[str, Any]:
    return build_document(request.app.routes, base_url(request))


async def openapi_json(request: Request) -> Response:
    """The OpenAPI 3.1 document, generated from the routes being served."""
    return JSONResponse(document(request))


def _schema_view(schema: dict[str, Any] | None) -> dict[str, str]:
    """A schema as the page shows it: a link to a named schema, or its JSON."""
    if not schema:
        return {"ref": "", "json": "any"}
    if set(schema) == {"$ref"}:
        return {"ref": schema["$ref"].rsplit("/", 1)[-1], "json": ""}
    return {"ref": "", "json": json.dumps(schema, indent=1, ensure_ascii=False)}


def _content_view(content: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [
        {"media": media_type, **_schema_view(spec.get("schema"))}
        for media_type, spec in (content or {}).items()
    ]


def docs_view(doc: dict[str, Any]) -> dict[str, Any]:
    """Flatten the document for the template (resolving shared responses)."""
    shared = doc["components"]["responses"]
    schemes = doc["components"]["securitySchemes"]
    operations = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            responses = []
            for code, response in op["responses"].items():
                if "$ref" in response:
                    response = shared[response["$ref"].rsplit("/", 1)[-1]]
                responses.append(
                    {
                        "code": code,
                        "description": response["description"],
                        "headers": sorted(response.get("headers", {})),
                        "content": _content_view(response.get("content")),
                    }
                )
            body = op.get("requestBody")
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "id": f"{method}-{path}",
                    "summary": op["summary"],
                    "description": op.get("description", ""),
                    "tag": op["tags"][0],
                    "who": [
                        schemes[name]["description"] for s in op.get("security", []) for name in s
                    ],
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "description": p.get("description", ""),
                            **_schema_view(p.get("schema")),
                        }
                        for p in op.get("parameters", [])
                    ],
                    "body": _content_view(body["content"]) if body else [],
                    "problem_types": op.get("x-problem-types", []),
                    "body_required": bool(body and body.get("required")),
                    "responses": responses,
                }
            )
    schemas = [
        {"name": name, "json": json.dumps(schema, indent=1, ensure_ascii=False)}
        for name, schema in doc["components"]["schemas"].items()
    ]
    return {
        "problems": list(PROBLEM_TYPES.values()),
        "info": doc["info"],
        "tags": [t["name"] for t in doc["tags"]],
        "operations": operations,
        "schemas": schemas,
    }


async def docs(request: Request) -> Response:
    """The document as a readable page, with no script and nothing fetched from elsewhere."""
    view = docs_view(document(request))
    guide = device_guide(services(request).server_id)
    return page(request, "docs.html", title="The dmlab API", g=guide, **view)


async def login(request: Request) -> Response:
    """Demands an account's credentials (the browser asks the person), then goes on."""
    principal = authenticate(request, "account")
    note(request, response=f"signed in as {principal.account}")
    return RedirectResponse("/devices", status_code=303)


async def logout(request: Request) -> Response:
    """Always 401 with a challenge: the browser drops the credentials it cached for the realm."""
    note(request, response="signed out")
    headers = {"WWW-Authenticate": REALM, "Cache-Control": "no-store"}
    if not wants_html(request):
        detail = "credentials forgotten; sign in again at /login"
        return problem_response(request, Problem("signed-out", detail, headers))
    response = page(request, "logout.html", status_code=401, title="Signed out")
    response.headers.update(headers)
    return response


routes = [
    Operation(
        "GET",
        "/openapi.json",
        openapi_json,
        "This document.",
        PEOPLE,
        responses={
            200: {
                "description": "OpenAPI 3.1.",
                "content": {media.JSON: {"schema": {"type": "object"}}},
            }
        },
    ),
    Operation(
        "GET",
        "/docs",
        docs,
        "This document as a page, with what a device must do to take part.",
        PEOPLE,
        responses={200: html_page("The API, readable.")},
    ),
    Operation(
        "GET",
        "/login",
        login,
        "Sign in (HTTP Basic) and go on to the devices.",
        PEOPLE,
        who=ACCOUNT,
        responses={303: REDIRECT_303},
    ),
    Operation(
        "GET",
        "/logout",
        logout,
        "Sign out: a 401 makes the browser forget the credentials it cached.",
        PEOPLE,
        responses={
            401: {
                **COMMON_RESPONSES["401"],
                "description": "Always: the browser drops its cached credentials.",
            }
        },
    ),
]
