"""HTTP by the book (issue 9): problem details, content negotiation, entity tags and
preconditions, Location, devIds, security headers, a 500 that closes the connection;
and the web-free core that the routes call."""

from __future__ import annotations

import ast
import base64
import hashlib
import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from dmlab.protocol import media

from helpers import (
    BROWSER_ACCEPT,
    PROBLEM_JSON,
    csrf_of,
    element_text,
    html,
    new_dev_id,
    problem,
)

ROOT = Path(__file__).resolve().parent.parent


# RFC 9457 problem details ------------------------------------------------------------
def test_errors_are_problem_details_documented_on_docs(clients):
    for accept in (media.JSON, PROBLEM_JSON, "*/*", ""):
        client = clients.account(accept=accept)
        body = problem(client.get("/devices/IMEI:404404404"), 404, "not-found")
        assert body["title"] == "Not found" and body["instance"] == "/devices/IMEI:404404404"
    # Each type URI points at its explanation on /docs.
    docs = html(clients.browser().get("/docs"), 200)
    kind = body["type"].rpartition("#")[2]
    assert f'id="{kind}"' in docs
    # A browser gets a page with the same problem named.
    page = html(clients.browser().get("/devices/IMEI:404404404"), 404)
    assert element_text(page, "error") == "not-found"


def test_every_problem_type_raised_is_documented(clients):
    """Every problem type the server can name has its anchor on /docs."""
    from dmlab.server.problems import DOMAIN_PROBLEMS, PROBLEM_TYPES

    docs = html(clients.browser().get("/docs"), 200)
    assert set(DOMAIN_PROBLEMS.values()) <= set(PROBLEM_TYPES)
    for name in PROBLEM_TYPES:
        assert f'id="problem-{name}"' in docs, name


# Content negotiation ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json;q=0, text/html", media.HTML),
        ("text/*", media.HTML),
        ("TEXT/HTML", media.HTML),
        ("*/*", media.JSON),
        ("", media.JSON),
        ("text/html;q=0.5, application/*;q=0.9", media.JSON),
        ("application/json, text/html;q=0.1", media.JSON),
    ],
)
def test_accept_q_values_and_wildcards_choose_the_form(register, clients, accept, expected):
    phone = register(attach=False)
    answer = clients.account(accept=accept).get(f"/devices/{phone.dev_id}")
    assert answer.status_code == 200, answer.text
    assert media.base(answer.headers["content-type"]) == expected
    assert "accept" in answer.headers["vary"].lower()


def test_nothing_acceptable_is_406(register, clients):
    phone = register(attach=False)
    for path in (f"/devices/{phone.dev_id}", "/devices", "/"):
        problem(clients.account(accept="image/png").get(path), 406, "not-acceptable")
    problem(clients.account(accept="text/html;q=0, application/json;q=0").get("/"), 406)
    # The registration form is a page only.
    problem(clients.account(accept=media.JSON).get("/devices/new"), 406, "not-acceptable")


def test_a_device_that_accepts_no_package_2_type_gets_406_and_nothing_starts(
    lab, register, clients
):
    phone = register(attach=False)
    clients.account().post(
        f"/devices/{phone.dev_id}/sessions", json={"job": "inventory", "notify": False}
    )
    device = clients.device(phone.dev_id, phone.secret)
    refused = device.post("/sessions/next", headers={"Accept": "image/png"})
    problem(refused, 406, "not-acceptable")
    assert len(device.get("/sessions/pending").json()["Sessions"]) == 1  # still pending
    spec = device.post("/sessions/next", headers={"Accept": media.DM20_REQUEST})
    assert spec.status_code == 200
    assert media.base(spec.headers["content-type"]) == media.DM20_REQUEST
    assert "accept" in spec.headers["vary"].lower()


def test_flow_3_only_when_commands_are_acceptable(lab, register, clients):
    phone = register(attach=False)
    device = clients.device(phone.dev_id, phone.secret)
    path = f"/devices/{phone.dev_id}/sessions"
    refused = f"{media.COMMANDS};q=0, {media.JSON}"
    queued = device.post(path, json={"job": "inventory"}, headers={"Accept": refused})
    assert queued.status_code == 202, queued.text  # flow 1, not flow 3
    assert media.base(queued.headers["content-type"]) == media.JSON
    assert "accept" in queued.headers["vary"].lower()
    begun = device.post(path, json={"job": "inventory"}, headers={"Accept": media.COMMANDS})
    assert begun.status_code == 201 and "CMD" in begun.json()
    assert begun.headers["location"] == f"/sessions/id/{begun.json()['SessionID']}"
    # An account's script sending */* queues (flow 1); it does not ask for commands.
    script = clients.account(accept="*/*").post(path, json={"job": "inventory"})
    assert script.status_code == 202, script.text


# Entity tags and preconditions ----------------------------------------------------------
def test_device_etag_if_match_and_if_none_match(register, clients):
    phone = register(attach=False)
    account = clients.account()
    url = f"/devices/{phone.dev_id}"
    first = account.get(url)
    tag = first.headers["etag"]
    assert tag.startswith('"') and not tag.startswith("W/")
    assert account.get(url, headers={"If-None-Match": tag}).status_code == 304
    problem(account.put(url, json={"name": "x"}, headers={"If-Match": '"stale"'}), 412)
    problem(account.put(url, json={"name": "x"}, headers={"If-Match": "W/" + tag}), 412)
    problem(account.put(url, json={"name": "x"}, headers={"If-None-Match": "*"}), 412)
    assert account.get(url).json()["name"] == "test"  # nothing was applied
    updated = account.put(url, json={"name": "first editor"}, headers={"If-Match": tag})
    assert updated.status_code == 200 and updated.headers["etag"] != tag
    # The second editor still holds the old tag: refused, not silently overwritten.
    late = account.put(url, json={"name": "second editor"}, headers={"If-Match": tag})
    problem(late, 412, "precondition-failed")
    assert account.get(url).json()["name"] == "first editor"
    problem(account.delete(url, headers={"If-Match": tag}), 412)
    problem(account.delete(url, headers={"If-None-Match": "*"}), 412)
    current = account.get(url).headers["etag"]
    assert account.delete(url, headers={"If-Match": current}).status_code == 204


def test_session_etag_and_preconditions(lab, register, clients):
    phone = register(attach=False)
    account = clients.account()
    queued = account.post(f"/devices/{phone.dev_id}/sessions", json={"job": "inventory"})
    location = queued.headers["location"]
    shown = account.get(location)
    assert shown.status_code == 200 and shown.json()["State"] == "pending"
    tag = shown.headers["etag"]
    session_id = queued.json()["SessionID"]
    problem(account.delete(f"/session/id/{session_id}", headers={"If-Match": '"old"'}), 412)
    device = clients.device(phone.dev_id, phone.secret)
    started = device.post(location)
    assert started.status_code == 200
    # Started since the account read it: its tag moved on.
    problem(account.delete(location, headers={"If-Match": tag}), 412)
    now = account.get(location).headers["etag"]
    assert now != tag
    statuses = {"Status": [{"sc": 200}, {"sc": 200}]}
    problem(device.put(location, json=statuses, headers={"If-Match": tag}), 412)
    assert device.put(location, json=statuses, headers={"If-Match": now}).status_code == 204


# Location ------------------------------------------------------------------------------
def test_form_registration_answers_location_and_no_store(clients):
    browser = clients.browser()
    token = csrf_of(html(browser.get("/devices/new"), 200))
    dev_id = new_dev_id()
    answer = browser.post("/devices/new", data={"devId": dev_id, "csrf": token})
    html(answer, 201)
    assert answer.headers["location"] == f"/devices/{quote(dev_id)}"
    assert answer.headers["cache-control"] == "no-store"


# DevIDs -------------------------------------------------------------------------------
@pytest.mark.parametrize("dev_id", ["new", "NEW"])
def test_devids_that_are_fixed_paths_are_refused(lab, clients, dev_id):
    answer = clients.account().post("/devices/new", json={"devId": dev_id})
    if dev_id == "new":
        problem(answer, 400, "bad-dev-id")
    else:  # free text is case-sensitive: NEW is not the path new
        assert answer.status_code == 201
        assert clients.account().get("/devices/NEW").json()["devId"] == "NEW"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("imei:490154203237518", "IMEI:490154203237518"),
        ("Imei:049015420323751", "IMEI:049015420323751"),
        ("meid:a0000000002329", "MEID:A0000000002329"),
        ("esn:8f3a21bc", "ESN:8F3A21BC"),
        (
            "URN:UUID:1B4E28BA-2FA1-11D2-883F-0016D3CCA427",
            "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        ),
    ],
)
def test_devids_are_compared_in_one_canonical_form(lab, clients, given, stored):
    account = clients.account()
    made = account.post("/devices/new", json={"devId": given})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["devId"] == stored and made.headers["location"] == f"/devices/{quote(stored)}"
    # The other spelling is the same device: a conflict, and readable under either.
    problem(account.post("/devices/new", json={"devId": stored}), 409, "conflict")
    assert account.get(f"/devices/{given}").json()["devId"] == stored
    # The device may sign in and name itself in any spelling.
    device = clients.device(given, body["secret"])
    assert device.get("/sessions/pending").status_code == 200


def test_leading_zeros_are_significant_and_imei_is_digits(lab, clients):
    account = clients.account()
    assert account.post("/devices/new", json={"devId": "IMEI:0777000111"}).status_code == 201
    assert account.post("/devices/new", json={"devId": "IMEI:777000111"}).status_code == 201
    problem(account.post("/devices/new", json={"devId": "IMEI:12AB"}), 400, "bad-dev-id")


# Security headers ----------------------------------------------------------------------
def test_pages_carry_csp_nosniff_and_no_store_with_tokens(register, clients):
    phone = register(attach=False)
    browser = clients.browser()
    for path in ("/", "/devices", "/devices/new", f"/devices/{phone.dev_id}", "/docs"):
        page = browser.get(path)
        assert page.status_code == 200
        assert page.headers["x-content-type-options"] == "nosniff"
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "script-src" not in csp and "unsafe-inline" not in csp
        # The page's one inline stylesheet is the one the policy allows, by hash.
        styles = re.findall(r"<style>(.*?)</style>", page.text, re.S)
        assert len(styles) == 1
        digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
        assert f"style-src 'sha256-{digest}'" in csp
    for path in ("/devices/new", f"/devices/{phone.dev_id}"):  # pages with a CSRF token
        assert browser.get(path).headers["cache-control"] == "no-store"
    registered = clients.account().post("/devices/new", json={"devId": new_dev_id()})
    assert registered.headers["cache-control"] == "no-store"  # the secret
    assert clients.account().get("/devices").headers["x-content-type-options"] == "nosniff"


# A 500 --------------------------------------------------------------------------------
def test_a_500_is_a_problem_and_closes_the_connection(fresh_lab, monkeypatch):
    def broken(*args: object) -> list:
        raise RuntimeError("the store broke")

    monkeypatch.setattr(fresh_lab.services.store, "devices_page", broken)
    with httpx.Client(
        base_url=fresh_lab.url,
        auth=("demo", "demo-password"),
        verify=fresh_lab.ca.client_context(),
        headers={"Accept": media.JSON},
    ) as client:
        answer = client.get("/devices")
        problem(answer, 500, "internal-error")
        assert answer.headers["connection"] == "close"
        # The next request on the same client is answered, not a transport error.
        assert client.get("/sessions/pending").status_code == 200
    with httpx.Client(
        base_url=fresh_lab.url,
        auth=("demo", "demo-password"),
        verify=fresh_lab.ca.client_context(),
        headers={"Accept": BROWSER_ACCEPT},
    ) as browser:
        html(browser.get("/devices"), 500)


# The web-free core ---------------------------------------------------------------------
def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            dots = "." * node.level
            names.add(f"{dots}{node.module or ''}")
    return names


def test_the_core_knows_nothing_of_http():
    core = sorted((ROOT / "dmlab" / "core").glob("*.py"))
    assert {"sessions.py", "devices.py", "errors.py"} <= {p.name for p in core}
    for path in core:
        for name in _imports(path):
            assert not name.startswith(("starlette", "httpx", "uvicorn", "..server")), (
                path.name,
                name,
            )
            assert not name.startswith("dmlab.server"), (path.name, name)


def _module_graph() -> dict[str, set[str]]:
    """dmlab's modules and the dmlab modules each imports when it is loaded (module
    level; ``if TYPE_CHECKING`` blocks left out)."""
    modules = {}
    for path in (ROOT / "dmlab").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        edges: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            for item in ast.walk(node):
                if isinstance(item, ast.ImportFrom):
                    base = package[: len(package) - item.level + 1] if item.level else []
                    stem = ".".join([*base, *([item.module] if item.module else [])])
                    for alias in item.names:
                        target = f"{stem}.{alias.name}"
                        edges.add(target if target in modules else stem)
                elif isinstance(item, ast.Import):
                    edges.update(alias.name for alias in item.names)
        graph[name] = edges & set(modules)
    return graph


def test_no_import_cycles_and_no_imports_that_dodge_one():
    """No module of dmlab imports a module that (indirectly) imports it, counting imports
    inside functions (the usual way to dodge a cycle); the server and the core import at
    the top only."""
    graph = _module_graph()
    seen: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        for target in graph[name]:
            assert target not in path, " -> ".join([*path, target])
            if target not in seen:
                seen.add(target)
                visit(target, (*path, target))

    for name in sorted(graph):
        if name not in seen:
            seen.add(name)
            visit(name, (name,))
    # Only the server reaches into its route modules (the runtime asks the server package).
    for name, targets in graph.items():
        if not name.startswith("dmlab.server"):
            assert not any(t.startswith("dmlab.server.routes") for t in targets), name
    for folder in ("server", "core"):
        for path in sorted((ROOT / "dmlab" / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    inner = [
                        n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))
                    ]
                    assert not inner, (path.name, node.name)
