"""One declaration per operation, and the document agreeing with the behaviour.

Every route declares itself (``dmlab.server.operation.Operation``); the README's API
table, the front page, notebook 01's table and ``/openapi.json`` come from those
declarations. Where the reviewer found the document and the server disagreeing, each
point is checked here from both sides: what the document says, and what the running
server does.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from dmlab import Lab
from dmlab.protocol import media
from dmlab.server import build_services, create_app, tables
from dmlab.server.operation import markdown_table, resource_rows
from dmlab.server.problems import PROBLEM_TYPES

from helpers import csrf_of, html, problem

PROBLEMS = [{"name": p.name, "status": p.status} for p in PROBLEM_TYPES.values()]
STATUS = {p.name: p.status for p in PROBLEM_TYPES.values()}


@pytest.fixture(scope="module")
def doc(lab: Lab) -> dict[str, Any]:
    return httpx.get(f"{lab.url}/openapi.json", verify=lab.ca.client_context()).json()


def body_schema(doc: dict[str, Any], path: str, method: str, media_type: str) -> Any:
    schema = doc["paths"][path][method]["requestBody"]["content"][media_type]["schema"]
    return Draft202012Validator({**schema, "components": doc["components"]})


def test_readme_api_table_is_generated_from_the_declarations() -> None:
    readme = tables.README.read_text(encoding="utf-8")
    start = readme.index(tables.START) + len(tables.START)
    block = readme[start : readme.index(tables.END)]
    assert block.strip() == markdown_table(create_app(build_services()).routes).strip(), (
        "README's API table drifted from the routes' declarations; regenerate it with "
        "python -m dmlab.server.tables"
    )
    assert tables.main(["--check"]) == 0


def test_the_table_changes_when_a_declaration_does() -> None:
    """The generated table is not a constant: a changed summary shows in it."""
    routes = create_app(build_services()).routes
    before = markdown_table(routes)
    alert = next(r for r in routes if getattr(r, "path", "") == "/alert")
    saved = alert.doc  # type: ignore[attr-defined]
    try:
        alert.doc = type(saved)(**{**saved.__dict__, "summary": "Something else."})  # type: ignore[attr-defined]
        after = markdown_table(routes)
    finally:
        alert.doc = saved  # type: ignore[attr-defined]
    assert before != after and "Something else." in after


def test_front_page_lists_every_declared_operation(lab: Lab, clients: Any) -> None:
    served = clients.anonymous().get("/").json()["resources"]
    assert served == resource_rows(lab.app.routes)
    documented = {
        (m.upper(), p)
        for p, ops in httpx.get(f"{lab.url}/openapi.json", verify=lab.ca.client_context())
        .json()["paths"]
        .items()
        for m in ops
    }
    assert {(r["method"], r["path"]) for r in served} == documented
    page = html(clients.anonymous(accept="text/html").get("/"), 200)
    assert "<code>POST /alert</code>" in page and "<td>device</td>" in page


# The document and the behaviour agree ----------------------------------------------


def test_wait_below_the_documented_minimum_is_refused(
    lab: Lab, doc: dict[str, Any], clients: Any, register: Any
) -> None:
    (wait,) = doc["paths"]["/notifications"]["get"]["parameters"][:1]
    assert wait["name"] == "wait" and wait["schema"]["minimum"] == 0
    phone = clients.of(register(attach=False))
    for value in ("-1", "-0.001", "-inf", "31", "1e400"):
        problem(phone.get("/notifications", params={"wait": value}), 400, "bad-request")
    assert phone.get("/notifications", params={"wait": "0"}).status_code == 204


def test_every_body_type_the_server_reads_is_documented_on_alert(
    lab: Lab, doc: dict[str, Any], clients: Any, register: Any
) -> None:
    documented = set(doc["paths"]["/alert"]["post"]["requestBody"]["content"])
    assert media.DM20_REQUEST in documented
    phone = clients.of(register(attach=False))
    for content_type in sorted(documented):
        answer = phone.post(
            "/alert",
            content=b'{"Alert": [{"AlertType": "urn:x:test"}]}',
            headers={"Content-Type": content_type},
        )
        assert answer.status_code == 204, (content_type, answer.text)
    undocumented = phone.post(
        "/alert",
        content=b'{"Alert": [{"AlertType": "urn:x:test"}]}',
        headers={"Content-Type": "text/plain"},
    )
    problem(undocumented, 415)


def test_method_override_needs_csrf_on_forms_only_as_documented(
    lab: Lab, doc: dict[str, Any], clients: Any, register: Any
) -> None:
    """A JSON ``{"_method": "PUT"}`` carries no CSRF token (a cross-site page cannot send
    JSON); a form must. The document says exactly that, per media type."""
    path = "/devices/{devId}"
    as_json = body_schema(doc, path, "post", media.JSON)
    as_form = body_schema(doc, path, "post", media.FORM)
    assert as_json.is_valid({"_method": "PUT", "name": "x"})
    assert not as_form.is_valid({"_method": "PUT", "name": "x"})
    assert as_form.is_valid({"_method": "PUT", "name": "x", "csrf": "token"})

    device = register(attach=False)
    account = clients.account()
    updated = account.post(f"/devices/{device.dev_id}", json={"_method": "PUT", "name": "json"})
    assert updated.status_code == 200 and updated.json()["name"] == "json"
    browser = clients.browser()
    refused = browser.post(f"/devices/{device.dev_id}", data={"_method": "PUT", "name": "form"})
    assert refused.status_code == 403
    token = csrf_of(html(browser.get(f"/devices/{device.dev_id}"), 200))
    done = browser.post(
        f"/devices/{device.dev_id}", data={"_method": "PUT", "name": "form", "csrf": token}
    )
    assert done.status_code == 303
    assert account.get(f"/devices/{device.dev_id}").json()["name"] == "form"


@pytest.mark.parametrize(
    ("method", "path", "form", "json_body"),
    [
        ("post", "/devices/new", {"devId": "IMEI:1"}, {"devId": "IMEI:1"}),
        ("put", "/devices/{devId}", {"name": "x"}, {"name": "x"}),
        ("post", "/devices/{devId}/sessions", {"job": "inventory"}, {"job": "inventory"}),
    ],
)
def test_forms_need_the_csrf_token_json_does_not(
    doc: dict[str, Any], method: str, path: str, form: Any, json_body: Any
) -> None:
    assert body_schema(doc, path, method, media.JSON).is_valid(json_body)
    assert not body_schema(doc, path, method, media.FORM).is_valid(form)
    assert body_schema(doc, path, method, media.FORM).is_valid({**form, "csrf": "t"})


def test_an_empty_body_is_no_fields_as_documented(
    lab: Lab, doc: dict[str, Any], clients: Any, register: Any
) -> None:
    """The form-or-JSON bodies are optional in the document; without one, the server
    reads no fields (so the answer is about the fields, not the media type)."""
    assert doc["paths"]["/devices/new"]["post"]["requestBody"]["required"] is False
    account = clients.account()
    problem(account.post("/devices/new"), 400, "bad-dev-id")  # devId is required
    device = register(attach=False)
    unchanged = account.put(f"/devices/{device.dev_id}")
    assert unchanged.status_code == 200 and unchanged.json()["name"] == "test"


def test_deeply_nested_json_data_is_a_400_not_a_500(lab: Lab, clients: Any, register: Any) -> None:
    phone = clients.of(register(attach=False))
    deep = b"[" * 100_000 + b"]" * 100_000
    for method in ("PUT", "POST"):
        answer = phone.request(
            method, "/data/deep", content=deep, headers={"Content-Type": media.JSON}
        )
        problem(answer, 400, "bad-json")
    assert phone.put("/data/flat", json={"a": [1]}).status_code == 204


def test_omadm_devid_must_be_a_devid_whoever_sends_it(
    lab: Lab, doc: dict[str, Any], clients: Any, register: Any
) -> None:
    """The document gives ``OMADM-DevID`` the DevID pattern on every operation that
    takes it; a value outside it is a 400 for an account as for a device."""
    operation = doc["paths"]["/sessions/pending"]["get"]
    (header,) = [p for p in operation["parameters"] if p["name"] == media.DEVID_HEADER]
    pattern = re.compile(header["schema"]["pattern"])
    assert "400" in operation["responses"]
    malformed = ["", "x", "IMEI:12/..", "%41%42%43", "a" * 101, "IMEI:12ab"]
    assert not any(pattern.search(v) for v in malformed[:-1])  # the last breaks IMEI's digits

    account = clients.account()
    device = register(attach=False)
    phone = clients.of(device)
    for value in malformed:
        for caller in (account, phone):
            answer = caller.get("/sessions/pending", headers={media.DEVID_HEADER: value})
            problem(answer, 400, "bad-dev-id")
    # a DevID on an account's request is allowed; a device must name itself
    assert (
        account.get("/sessions/pending", headers={media.DEVID_HEADER: device.dev_id}).status_code
        == 200
    )
    assert phone.get("/sessions/pending", headers={media.DEVID_HEADER: device.dev_id}).is_success
    other = "IMEI:" + "1" * 15 if device.dev_id != "IMEI:" + "1" * 15 else "IMEI:2"
    problem(phone.get("/sessions/pending", headers={media.DEVID_HEADER: other}), 401)


def test_each_operation_names_the_problem_types_it_answers(
    lab: Lab, doc: dict[str, Any], clients: Any, register: Any
) -> None:
    """Derived from the statuses each operation declares; a real refusal's type is among
    them, and /docs links each to its definition."""
    names = {p["name"] for p in PROBLEMS}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            listed = op["x-problem-types"]
            assert set(listed) <= names, (method, path)
            errors = {code for code in op["responses"] if code >= "400"}
            assert {str(STATUS[t]) for t in listed} == errors & {str(s) for s in STATUS.values()}
    phone = clients.of(register(attach=False))
    deep = phone.put(
        "/data/deep", content=b"[" * 100 + b"]" * 100, headers={"Content-Type": media.JSON}
    )
    assert problem(deep, 400)["type"].endswith("#problem-bad-json")
    assert "bad-json" in doc["paths"]["/data/{key}"]["put"]["x-problem-types"]
    page = html(clients.anonymous(accept="text/html").get("/docs"), 200)
    assert '<a href="#problem-bad-dev-id"><code>bad-dev-id</code></a>' in page
