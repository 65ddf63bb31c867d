"""The OpenAPI document: complete (every route, nothing else), valid OpenAPI 3.1,
its schemas in step with the protocol model, and readable at /docs offline."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from starlette.routing import Route

from dmlab import Lab
from dmlab.protocol import Command, ProtocolError, Report, media
from dmlab.protocol.messages import ARITY, MARKS
from dmlab.server import build_services, create_app
from dmlab.server.openapi import IMPLICIT_METHODS, build_document, openapi_path, undocumented
from dmlab.server.operation import Operation

from helpers import Registered

CR_RESOURCES = [  # the change request's own table, spelled as it spells it
    ("get", "/sessions/pending"),
    ("get", "/sessions/completed"),
    ("post", "/sessions/next"),
    ("post", "/sessions/id/{sessionId}"),
    ("put", "/sessions/id/{sessionId}"),
    ("delete", "/session/id/{sessionId}"),
    ("get", "/devices"),
    ("get", "/devices/new"),
    ("post", "/devices/new"),
    ("get", "/devices/{devId}"),
    ("put", "/devices/{devId}"),
    ("delete", "/devices/{devId}"),
    ("post", "/alert"),
]


@pytest.fixture(scope="module")
def app_and_doc() -> tuple[Any, dict[str, Any]]:
    app = create_app(build_services())
    return app, build_document(app.routes, "https://127.0.0.1:1")


def schema_validator(doc: dict[str, Any], name: str) -> Draft202012Validator:
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    )


def test_every_route_is_documented_and_nothing_else(
    app_and_doc: tuple[Any, dict[str, Any]],
) -> None:
    app, doc = app_and_doc
    served = {
        (m.lower(), openapi_path(r.path))
        for r in app.routes
        if isinstance(r, Route)
        for m in (r.methods or set()) - IMPLICIT_METHODS
    }
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented
    assert undocumented(app.routes) == []
    # every route is a declaration: one method, its own description
    assert all(
        isinstance(r, Operation)
        and r.methods == {r.method} | ({"HEAD"} if r.method == "GET" else set())
        for r in app.routes
    )
    assert set(CR_RESOURCES) <= documented
    assert {("get", "/alert")} - documented  # sanity: a made-up operation is not there
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[a-z_]+", i) for i in ids), ids


def test_a_new_route_without_a_description_is_a_gap() -> None:
    async def secret_feature(request: Any) -> Any: ...

    routes = [*create_app(build_services()).routes, Route("/x/{dev_id}", secret_feature)]
    assert undocumented(routes) == ["GET /x/{dev_id}"]
    doc = build_document(routes)
    assert doc["paths"]["/x/{devId}"]["get"]["summary"] == "Undocumented."


def test_document_is_valid_openapi_31(app_and_doc: tuple[Any, dict[str, Any]]) -> None:
    _, doc = app_and_doc
    errors = [e.message for e in OpenAPIV31SpecValidator(doc).iter_errors()]
    assert errors == []
    assert doc["openapi"].startswith("3.1")
    assert {
        s["type"] + "/" + s["scheme"] for s in doc["components"]["securitySchemes"].values()
    } == {"http/basic"}


def test_media_types_of_the_protocol(app_and_doc: tuple[Any, dict[str, Any]]) -> None:
    _, doc = app_and_doc
    paths = doc["paths"]
    report = paths["/sessions/id/{sessionId}"]["put"]
    assert set(report["requestBody"]["content"]) == set(media.DEVICE_BODY_MEDIA)
    assert media.DM20_RESPONSE in report["requestBody"]["content"]
    assert report["responses"]["200"]["content"] == {
        media.COMMANDS: {"schema": {"$ref": "#/components/schemas/Commands"}},
        media.DM20_REQUEST: {"schema": {"$ref": "#/components/schemas/Commands"}},
    }
    # every type the server reads is documented (DM 2.0's request type included)
    assert set(paths["/alert"]["post"]["requestBody"]["content"]) == media.DEVICE_BODY_TYPES
    assert media.DM20_REQUEST in paths["/alert"]["post"]["requestBody"]["content"]
    assert media.DM20_INITIATION in paths["/alert"]["post"]["requestBody"]["content"]
    assert set(paths["/devices/new"]["post"]["requestBody"]["content"]) == {media.FORM, media.JSON}
    assert set(paths["/devices"]["get"]["responses"]["200"]["content"]) == {media.JSON, media.HTML}
    assert set(paths["/devices/{devId}/sessions"]["post"]["responses"]) >= {
        "201",
        "202",
        "401",
        "403",
    }
    assert doc["components"]["responses"]["401"]["headers"]["WWW-Authenticate"]
    # who may call what
    assert paths["/sessions/next"]["post"]["security"] == [{"deviceBasic": []}]
    assert paths["/devices"]["get"]["security"] == [{"accountBasic": []}]
    assert paths["/"]["get"]["security"] == []


@pytest.mark.parametrize("name", sorted(ARITY))
def test_command_schema_agrees_with_the_model(
    app_and_doc: tuple[Any, dict[str, Any]], name: str
) -> None:
    _, doc = app_and_doc
    command = schema_validator(doc, "Command")
    for count in range(5):
        value = [name, *(f"urn:x/{i}" for i in range(count))]
        try:
            Command.from_json(value)
            model_accepts = True
        except ProtocolError:
            model_accepts = False
        assert command.is_valid(value) == model_accepts, value
    assert not command.is_valid([name, ""])
    assert not command.is_valid([name, 1])


def test_report_and_alert_schemas_agree_with_the_model(
    app_and_doc: tuple[Any, dict[str, Any]],
) -> None:
    _, doc = app_and_doc
    report = schema_validator(doc, "Report")
    good = [
        {"Status": [{"sc": 200, "Data": "1.4.2"}, {"sc": 202}]},
        {
            "Status": [],
            "Alert": [
                {"AlertType": "urn:oma:at:dm:2.0:ClientInitiatedMgmt", "Mark": m}
                for m in sorted(MARKS)
            ],
        },
        {},
    ]
    bad = [
        {"Status": [{"sc": True}]},
        {"Status": [{"sc": 99}]},
        {"Status": [{"code": 200}]},
        {"Status": {"sc": 200}},
        {"Alert": [{"Mark": "fatal"}]},
        {"Alert": [{"AlertType": "x", "Mark": "serious"}]},
        {"Alert": [{"AlertType": "x", "Mark": []}]},  # once a TypeError (a 500)
        {"Alert": [{"AlertType": "x", "SourceURI": 1}]},
        {"Extra": []},
        [],
    ]
    for value in good:
        Report.from_json(value)
        assert report.is_valid(value), value
    for value in bad:
        with pytest.raises(ProtocolError):
            Report.from_json(value)
        assert not report.is_valid(value), value


def test_real_answers_conform(lab: Lab, register: Any, clients: Any) -> None:
    """What the running server actually sends matches the document's schemas."""
    doc = httpx.get(f"{lab.url}/openapi.json", verify=lab.ca.client_context()).json()
    device: Registered = register(attach=False)
    operator = clients.account()
    queued = operator.post(
        f"/devices/{device.dev_id}/sessions", json={"job": "inventory", "notify": False}
    )
    assert schema_validator(doc, "SessionBrief").is_valid(queued.json())
    phone = clients.of(device)
    package = phone.post("/sessions/next")
    assert package.headers["content-type"] == media.COMMANDS
    schema_validator(doc, "Commands").validate(package.json())
    listing = operator.get("/sessions/pending").json()
    schema_validator(doc, "SessionList").validate(listing)
    schema_validator(doc, "DeviceList").validate(operator.get("/devices").json())
    problem = operator.get("/devices/IMEI:0000000000")
    assert problem.status_code == 404
    schema_validator(doc, "Problem").validate(problem.json())


def test_openapi_json_is_served_from_the_running_app(lab: Lab) -> None:
    response = httpx.get(f"{lab.url}/openapi.json", verify=lab.ca.client_context())
    assert response.status_code == 200
    assert response.headers["content-type"] == media.JSON
    assert response.json() == json.loads(json.dumps(build_document(lab.app.routes, lab.url)))
    assert response.json()["servers"] == [{"url": lab.url}]


def test_docs_page_lists_every_operation_offline(lab: Lab) -> None:
    response = httpx.get(
        f"{lab.url}/docs", verify=lab.ca.client_context(), headers={"Accept": "text/html"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media.HTML)
    page = response.text
    doc = build_document(lab.app.routes, lab.url)
    for path, methods in doc["paths"].items():
        for method, _op in methods.items():
            assert f"<code>{method.upper()} {path}</code>" in page, (method, path)
    for name in doc["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    for media_type in (media.COMMANDS, media.DM20_RESPONSE, media.FORM, media.HTML):
        assert f"<code>{media_type}</code>" in page
    # nothing to fetch from elsewhere: no script, no stylesheet link, no absolute URL
    assert "<script" not in page and "<link" not in page
    assert re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", page) == []
