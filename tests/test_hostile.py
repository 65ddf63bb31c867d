"""Hostile input, beyond ``test_bad_input``'s table: deep or non-standard JSON,
command lists and statuses of the wrong shape, guessed ids, path tricks, markup in
device fields, CSRF games, forged notifications, plain HTTP on the TLS port and
expired or malformed credentials. Each gets its answer, and (except where a page
is the point) the server's state is the same afterwards."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dmlab import Lab
from dmlab.protocol import media
from dmlab.protocol.notification import Notification, encode, notification_key
from dmlab.protocol.strictjson import MAX_DEPTH
from dmlab.server.bodies import MAX_BODY
from dmlab.store import State

from helpers import (
    BROWSER_ACCEPT,
    HASH_COST,
    RIVAL,
    Clients,
    commands,
    csrf_of,
    html,
    new_name,
    problem,
    put_status,
    queue,
)

DM = media.DM20_RESPONSE
FUMO_STATUS = [{"sc": 200}, {"sc": 202}]  # what the active round (HGET, EXEC, END) wants


@dataclass
class World:
    clients: Clients
    dev: str
    secret: str
    rival_dev: str
    rival_secret: str
    pending: str
    active: str
    spent: str
    rival_active: str


@pytest.fixture(scope="module")
def world(lab: Lab) -> Iterator[World]:
    clients = Clients(lab)
    dev_id = new_name("dev")
    secret = lab.operator.register(dev_id)["secret"]
    dev = lab.attach_device(dev_id, secret)  # alive: it takes notifications
    rival = lab.operators[RIVAL[0]].register(new_name("rival-dev"))
    device = clients.device(dev.dev_id, secret)
    rival_device = clients.device(rival["devId"], rival["secret"])

    def start_fumo(client: httpx.Client, dev_id: str, account: str) -> tuple[str, str]:
        first = queue(lab, dev_id, account=account, job="firmware-update", version="2.0.0")[
            "SessionID"
        ]
        package = commands(client.post(f"/sessions/id/{first}"))
        second = commands(
            put_status(
                client,
                package["SessionID"],
                [{"sc": 200, "Data": "1.0.0"}, {"sc": 200, "Data": 10}],
            )
        )
        return first, second["SessionID"]

    spent, active = start_fumo(device, dev.dev_id, "demo")
    _, rival_active = start_fumo(rival_device, rival["devId"], RIVAL[0])
    pending = queue(lab, dev.dev_id, job="inventory")["SessionID"]
    yield World(
        clients,
        dev.dev_id,
        secret,
        rival["devId"],
        rival["secret"],
        pending,
        active,
        spent,
        rival_active,
    )
    clients.close()


def state(lab: Lab) -> dict[str, Any]:
    lab.settle()
    store = lab.services.store
    accounts = sorted(lab.operators)
    return {
        "devices": {a: store.devices_of(a) for a in accounts},
        "sessions": {
            (a, s.value): store.sessions_of_account(a, s) for a in accounts for s in State
        },
        "alerts": {
            d.dev_id: store.alerts_of(d.dev_id) for a in accounts for d in store.devices_of(a)
        },
        "runs": {d: len(v.runs) for d, v in lab.devices.items()},
    }


def nested(depth: int, leaf: Any = 1) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def deep_text(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# 1. JSON that parses badly, deeply or not at all as JSON ------------------------------
JSON_CASES = {
    # (who, method, path, body bytes, content type) -> status, error
    "deep-array-next": (
        "device",
        "POST",
        "/sessions/next",
        deep_text(100_000),
        DM,
        400,
        "bad-json",
    ),
    "deep-array-report": (
        "device",
        "PUT",
        "/sessions/id/{active}",
        deep_text(5_000),
        DM,
        400,
        "bad-json",
    ),
    "deep-data-in-status": (
        "device",
        "PUT",
        "/sessions/id/{active}",
        json.dumps({"Status": [{"sc": 200, "Data": nested(MAX_DEPTH)}, {"sc": 202}]}).encode(),
        DM,
        400,
        "bad-json",
    ),
    "deep-data-in-alert-900": (
        "device",
        "POST",
        "/alert",
        json.dumps({"Alert": [{"AlertType": "x", "Data": nested(900)}]}).encode(),
        DM,
        400,
        "bad-json",
    ),
    "deep-cmd-queue": (
        "account",
        "POST",
        "/devices/{dev}/sessions",
        b'{"notify": false, "CMD": ' + deep_text(5_000) + b"}",
        media.JSON,
        400,
        "bad-json",
    ),
    "deep-register": (
        "account",
        "POST",
        "/devices/new",
        b'{"devId": ' + deep_text(2_000) + b"}",
        media.JSON,
        400,
        "bad-json",
    ),
    "nan-in-alert": (
        "device",
        "POST",
        "/alert",
        b'{"Alert": [{"AlertType": "x", "Data": NaN}]}',
        DM,
        400,
        "bad-json",
    ),
    "infinity-in-status": (
        "device",
        "PUT",
        "/sessions/id/{active}",
        b'{"Status": [{"sc": 200, "Data": -Infinity}, {"sc": 202}]}',
        DM,
        400,
        "bad-json",
    ),
    "1e999-in-alert": (
        "device",
        "POST",
        "/alert",
        b'{"Alert": [{"AlertType": "x", "Data": 1e999}]}',
        DM,
        400,
        "bad-json",
    ),
    "lone-surrogate-in-alert": (
        "device",
        "POST",
        "/alert",
        b'{"Alert": [{"AlertType": "x", "Data": "\\ud800"}]}',
        DM,
        400,
        "bad-json",
    ),
    "lone-surrogate-key": (
        "account",
        "PUT",
        "/devices/{dev}",
        b'{"\\udc00": 1}',
        media.JSON,
        400,
        "bad-json",
    ),
    "lone-surrogate-name": (
        "account",
        "PUT",
        "/devices/{dev}",
        b'{"name": "a\\udfffb"}',
        media.JSON,
        400,
        "bad-json",
    ),
    "empty-report": ("device", "PUT", "/sessions/id/{active}", b"", DM, 400, "bad-json"),
    "json-null-report": ("device", "PUT", "/sessions/id/{active}", b"null", DM, 400, None),
    "json-string-alert": ("device", "POST", "/alert", b'"Alert"', DM, 400, None),
    # wrong media types not in the table already
    "alert-as-form": (
        "device",
        "POST",
        "/alert",
        b"Alert=x",
        media.FORM,
        415,
        "unsupported-media-type",
    ),
    "report-as-multipart": (
        "device",
        "PUT",
        "/sessions/id/{active}",
        b"--x--",
        "multipart/form-data; boundary=x",
        415,
        None,
    ),
    "report-as-html": (
        "device",
        "PUT",
        "/sessions/id/{active}",
        json.dumps({"Status": FUMO_STATUS}).encode(),
        "text/html",
        415,
        None,
    ),
    "register-as-json-patch": (
        "account",
        "POST",
        "/devices/new",
        b'{"devId": "IMEI:55555555"}',
        "application/json-patch+json",
        415,
        None,
    ),
    "queue-as-xml": (
        "account",
        "POST",
        "/devices/{dev}/sessions",
        b"<job>inventory</job>",
        "application/xml",
        415,
        None,
    ),
}


def client_of(world: World, who: str) -> httpx.Client:
    c = world.clients
    return {
        "device": lambda: c.device(world.dev, world.secret),
        "account": lambda: c.account(),
        "rival": lambda: c.account(RIVAL[0]),
        "browser": lambda: c.browser(),
    }[who]()


def fill(path: str, world: World) -> str:
    return path.format(
        dev=world.dev,
        active=world.active,
        pending=world.pending,
        spent=world.spent,
        rival_active=world.rival_active,
        rival_dev=world.rival_dev,
    )


@pytest.mark.parametrize("case", list(JSON_CASES.values()), ids=list(JSON_CASES))
def test_hostile_json(lab: Lab, world: World, case: tuple) -> None:
    who, method, path, body, content_type, status, error = case
    before = state(lab)
    answer = client_of(world, who).request(
        method, fill(path, world), content=body, headers={"Content-Type": content_type}
    )
    problem(answer, status, error)
    assert state(lab) == before


def test_a_chunked_body_past_the_limit_is_cut_off(lab: Lab, world: World) -> None:
    """No Content-Length to refuse up front: the server stops reading at the limit."""
    before = state(lab)

    def chunks() -> Iterator[bytes]:
        yield b'{"Alert": [{"AlertType": "x", "Data": "'
        for _ in range(MAX_BODY // 4096 + 2):
            yield b"a" * 4096
        yield b'"}]}'

    answer = client_of(world, "device").post(
        "/alert", content=chunks(), headers={"Content-Type": DM}
    )
    problem(answer, 413, "too-large")
    assert state(lab) == before


# 2. Command lists of the wrong length or shape (queued by an account) --------------------
FWV = "urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/FwV"
BAD_COMMANDS = {
    "string": "GET x",
    "empty": [],
    "empty-command": [[]],
    "object": {"GET": FWV},
    "null": None,
    "number": 7,
    "not-a-command-name": [["FROB?", FWV]],
    "unknown-with-too-many-arguments": [["FROB", *[FWV] * 17]],
    "missing-argument": [["GET"]],
    "extra-arguments": [["GET", FWV, FWV, FWV, FWV]],
    "argument-not-string": [["GET", 5]],
    "argument-empty": [["GET", ""]],
    "name-not-string": [[1, FWV]],
    "end-with-argument": [["END", FWV]],
    "end-not-last": [["END"], ["GET", FWV]],
    "nested-command": [[["GET", FWV]]],
    "command-as-object": [{"name": "GET", "uri": FWV}],
}


@pytest.mark.parametrize("cmd", list(BAD_COMMANDS.values()), ids=list(BAD_COMMANDS))
def test_command_lists_of_the_wrong_shape(lab: Lab, world: World, cmd: Any) -> None:
    before = state(lab)
    answer = world.clients.account().post(
        f"/devices/{world.dev}/sessions", json={"CMD": cmd, "notify": False}
    )
    problem(answer, 400, "bad-request")
    assert state(lab) == before


def test_too_many_commands_is_too_large(lab: Lab, world: World) -> None:
    before = state(lab)
    answer = world.clients.account().post(
        f"/devices/{world.dev}/sessions", json={"CMD": [["GET", FWV]] * 5000, "notify": False}
    )
    problem(answer, 413, "too-large")
    assert state(lab) == before


# 3. Statuses that do not match the commands sent (the active round wants 2) -------------
BAD_STATUSES = {
    "three": [{"sc": 200}, {"sc": 202}, {"sc": 200}],
    "none": [],
    "status-for-end-too": [{"sc": 200}, {"sc": 202}, {"sc": 200}],
    "sc-as-string": [{"sc": "200"}, {"sc": 202}],
    "sc-as-bool": [{"sc": True}, {"sc": 202}],
    "sc-as-float": [{"sc": 200.5}, {"sc": 202}],
    "sc-null": [{"sc": None}, {"sc": 202}],
    "sc-missing": [{"Data": 1}, {"sc": 202}],
    "sc-99": [{"sc": 99}, {"sc": 202}],
    "sc-1000": [{"sc": 1000}, {"sc": 202}],
    "sc-negative": [{"sc": -200}, {"sc": 202}],
    "status-not-object": [200, 202],
    "status-unknown-field": [{"sc": 200, "Cmd": "HGET"}, {"sc": 202}],
    "status-not-list": {"sc": 200},
}


@pytest.mark.parametrize("statuses", list(BAD_STATUSES.values()), ids=list(BAD_STATUSES))
def test_statuses_that_do_not_match(lab: Lab, world: World, statuses: Any) -> None:
    before = state(lab)
    device = client_of(world, "device")
    problem(put_status(device, world.active, statuses), 400)
    assert state(lab) == before


# 4. Spent or guessed session ids ----------------------------------------------------------
ID_CASES = {
    # (who, method, path) -> status
    "rival-active-id-report": ("device", "PUT", "/sessions/id/{rival_active}", 404),
    "rival-active-id-start": ("device", "POST", "/sessions/id/{rival_active}", 404),
    "rival-active-id-abort": ("device", "DELETE", "/session/id/{rival_active}", 404),
    "rival-active-id-by-account": ("account", "DELETE", "/sessions/id/{rival_active}", 404),
    "spent-id-abort-by-device": ("device", "DELETE", "/sessions/id/{spent}", 409),
    "uppercase-of-real-id": ("device", "POST", "/sessions/id/{upper}", 404),
    "prefix-of-real-id": ("device", "POST", "/sessions/id/{prefix}", 404),
    "real-id-plus-char": ("device", "PUT", "/sessions/id/{active}0", 404),
    "dotdot-next": ("device", "POST", "/sessions/id/..%2Fnext", 404),
    "encoded-nul": ("device", "POST", "/sessions/id/%00", 404),
    "id-with-nul-suffix": ("device", "PUT", "/sessions/id/{active}%00", 404),
    "very-long-id": ("device", "POST", "/sessions/id/" + "a" * 8000, 404),
    "sql-ish-id": ("device", "POST", "/sessions/id/'%20OR%20'1'='1", 404),
    "guessed-hex-ids": ("device", "POST", "guess", 404),
}


@pytest.mark.parametrize("case", list(ID_CASES.values()), ids=list(ID_CASES))
def test_spent_and_guessed_ids(lab: Lab, world: World, case: tuple) -> None:
    who, method, path, status = case
    client = client_of(world, who)
    before = state(lab)
    paths = (
        [f"/sessions/id/{n:016x}" for n in range(0, 2**64, 2**58)]
        if path == "guess"
        else [
            path.format(
                rival_active=world.rival_active,
                spent=world.spent,
                active=world.active,
                upper=world.active.upper(),
                prefix=world.active[:8],
            )
        ]
    )
    for each in paths:
        body = json.dumps({"Status": FUMO_STATUS}).encode() if method == "PUT" else None
        answer = client.request(
            method, each, content=body, headers={"Content-Type": DM} if body else {}
        )
        problem(answer, status)
    assert state(lab) == before


# 5. Path tricks in devId ---------------------------------------------------------------------
DEVID_PATHS = {
    "encoded-slash-suffix": "/devices/{dev}%2F..",
    "encoded-dotdot": "/devices/%2e%2e",
    "dotdot-slash-dotdot": "/devices/..%2F..%2Fetc",
    "encoded-nul": "/devices/%00",
    "nul-suffix": "/devices/{dev}%00",
    "very-long": "/devices/" + "I" * 10_000,
    "unicode-digits": "/devices/IMEI:%EF%BC%91%EF%BC%92%EF%BC%93",
    "trailing-space": "/devices/{dev}%20",
    "case-changed": "/devices/{dev_upper}",
    "rival-device": "/devices/{rival_dev}",
}


@pytest.mark.parametrize("path", list(DEVID_PATHS.values()), ids=list(DEVID_PATHS))
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "POST-session"])
def test_path_tricks_in_devid(lab: Lab, world: World, path: str, method: str) -> None:
    path = path.format(dev=world.dev, dev_upper=world.dev.upper(), rival_dev=world.rival_dev)
    client = world.clients.account()
    before = state(lab)
    if method == "GET":
        answer = client.get(path)
    elif method == "PUT":
        answer = client.put(path, json={"name": "pwned"})
    elif method == "DELETE":
        answer = client.delete(path)
    else:
        answer = client.post(path + "/sessions", json={"job": "inventory", "notify": False})
    problem(answer, 404, "not-found")
    assert state(lab) == before


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_an_encoded_slash_as_devid_reaches_no_device(lab: Lab, world: World, method: str) -> None:
    """``/devices/%2F`` is ``/devices//`` to the router: Starlette redirects to the
    slash-less path, the device list, and nothing is read or changed on the way."""
    before = state(lab)
    answer = world.clients.account().request(method, "/devices/%2F")
    assert answer.status_code == 307 and answer.headers["location"].endswith("/devices")
    assert state(lab) == before


@pytest.mark.parametrize(
    "dev_id",
    [
        "IMEI:123\x00456",
        "IMEI:１２３４５６",
        "IMEI:123456\n",
        "<b>IMEI:1</b>",
        "IMEI:1;DROP TABLE devices",
        "IMEI:" + "9" * 96,
    ],
)
def test_devids_that_cannot_be_registered(lab: Lab, world: World, dev_id: str) -> None:
    before = state(lab)
    problem(world.clients.account().post("/devices/new", json={"devId": dev_id}), 400, "bad-dev-id")
    assert state(lab) == before


# 6. Markup in device fields: escaped in every page --------------------------------------------
PAYLOADS = {
    "name": "<script>alert('n')</script>",
    "man": '"><img src=x onerror=alert(1)>',
    "mod": "{{ 7*7 }}{% raw %}</td></tr></table><svg onload=alert(2)>",
}


def test_markup_in_device_fields_is_escaped_everywhere(lab: Lab, world: World) -> None:
    browser = world.clients.browser()
    account = world.clients.account()
    token = csrf_of(html(browser.get("/devices/new"), 200))
    dev_id = new_name("xss")
    registered = html(
        browser.post("/devices/new", data={"devId": dev_id, "csrf": token, **PAYLOADS}), 201
    )
    stored = account.get(f"/devices/{dev_id}").json()
    assert {k: stored[k] for k in PAYLOADS} == PAYLOADS  # kept as text, verbatim
    secret = registered.split('id="secret">')[1].split("<")[0]
    # The device itself sends markup in an alert, which the device page lists.
    device = world.clients.device(dev_id, secret)
    alert = {"AlertType": "<script>alert('t')</script>", "Data": "<iframe src=javascript:alert(3)>"}
    assert (
        device.post(
            "/alert", content=json.dumps({"Alert": [alert]}), headers={"Content-Type": DM}
        ).status_code
        == 204
    )
    queued = html(
        browser.post(
            f"/devices/{dev_id}/sessions",
            data={
                "job": "inventory",
                "notify": "false",
                "csrf": csrf_of(html(browser.get(f"/devices/{dev_id}"), 200)),
            },
        ),
        202,
    )
    pages = {
        "list": html(browser.get("/devices"), 200),
        "device": html(browser.get(f"/devices/{dev_id}"), 200),
        "form": html(browser.get("/devices/new"), 200),
        "registered": registered,
        "queued": queued,
        "error": html(browser.get("/devices/<script>alert('p')</script>"), 404),
        "error-405": html(browser.request("PATCH", "/devices/<svg onload=alert(4)>"), 405),
    }
    raw = [
        *PAYLOADS.values(),
        *alert.values(),
        "<script>alert('p')</script>",
        "<svg onload=alert(4)>",
    ]
    for name, page in pages.items():
        for payload in raw:
            assert payload not in page, (name, payload)
        for tag in ("<script>alert", "<img", "<svg", "<iframe"):
            assert tag not in page.lower(), (name, tag)
    assert "&lt;script&gt;alert(&#39;n&#39;)&lt;/script&gt;" in pages["list"]
    assert "&lt;script&gt;alert(&#39;n&#39;)&lt;/script&gt;" in pages["device"]
    assert "&lt;iframe src=javascript:alert(3)&gt;" in pages["device"]
    assert "&lt;script&gt;alert(&#39;p&#39;)&lt;/script&gt;" in pages["error"]
    assert "{{ 7*7 }}" in pages["device"] and "49" not in pages["device"].split("{{ 7*7 }}")[0][-5:]
    lab.operator.unregister(dev_id)


# 7. Forms and CSRF (beyond the table's missing and wrong tokens) -------------------------------
CSRF_CASES = {
    "update-wrong-token": ("/devices/{dev}", {"_method": "PUT", "name": "pwned", "csrf": "0" * 32}),
    "update-empty-token": ("/devices/{dev}", {"_method": "PUT", "name": "pwned", "csrf": ""}),
    "delete-non-ascii-token": ("/devices/{dev}", {"_method": "DELETE", "csrf": "é" * 32}),
    "delete-uppercase-token": ("/devices/{dev}", {"_method": "DELETE", "csrf": "{upper}"}),
    "delete-token-prefix": ("/devices/{dev}", {"_method": "DELETE", "csrf": "{prefix}"}),
    "session-long-token": (
        "/devices/{dev}/sessions",
        {"job": "inventory", "csrf": "{token}" * 100},
    ),
    "register-token-plus-space": ("/devices/new", {"devId": "IMEI:66666666", "csrf": "{token} "}),
}


@pytest.mark.parametrize("case", list(CSRF_CASES.values()), ids=list(CSRF_CASES))
def test_forms_without_the_right_csrf_token(lab: Lab, world: World, case: tuple) -> None:
    path, form = case
    browser = world.clients.browser()
    token = csrf_of(html(browser.get("/devices/new"), 200))
    fields = {
        k: v.format(token=token, upper=token.upper(), prefix=token[:31]) for k, v in form.items()
    }
    before = state(lab)
    page = html(browser.post(path.format(dev=world.dev), data=fields), 403)
    assert 'id="error">csrf<' in page
    assert state(lab) == before


def test_a_cross_site_form_cannot_smuggle_json(lab: Lab, world: World) -> None:
    """A page elsewhere can post text/plain (CORS-safelisted) that looks like JSON."""
    before = state(lab)
    answer = world.clients.anonymous(accept=BROWSER_ACCEPT).post(
        "/devices/new",
        content=b'{"devId": "IMEI:77777777", "x": "=y"}',
        headers={"Content-Type": "text/plain"},
        auth=("demo", "demo-password"),
    )
    assert answer.status_code == 415
    assert state(lab) == before


# 8. Forged, stale and replayed notifications, through the device's guard ---------------------
def test_forged_stale_and_replayed_notifications_are_dropped(lab: Lab, world: World) -> None:
    phone = lab.devices[world.dev]
    key = notification_key(world.secret)
    now = int(time.time())
    good = encode(Notification("dmlab", notification_id=4242, timestamp=now), key)
    forged = {
        "digest": encode(Notification("dmlab", notification_id=4243, timestamp=now), b"k" * 32),
        "digest ": encode(
            Notification("dmlab", notification_id=4244, timestamp=now),
            notification_key(world.rival_secret),
        ),  # another device's key
        "wrong-server": encode(Notification("evil", notification_id=4245, timestamp=now), key),
        "stale": encode(Notification("dmlab", notification_id=4246, timestamp=now - 3600), key),
        "stale ": encode(Notification("dmlab", notification_id=4247, timestamp=now + 3600), key),
        "stale  ": encode(Notification("dmlab", notification_id=4248), key),  # no timestamp
        "malformed": b"\x00",
        "malformed ": b"\xff" * 2048,
        "malformed  ": good[:-3],
        "digest  ": good[:-1] + bytes([good[-1] ^ 1]),  # one bit flipped
    }
    dropped_before = len(phone.dropped)
    before = state(lab)
    for expected, package in forged.items():
        assert phone.receive(package) is None
        assert phone.dropped[-1][0] == expected.strip(), (expected, phone.dropped[-1])
    assert len(phone.dropped) == dropped_before + len(forged)
    assert state(lab) == before  # no session started, the pending one still pending

    # The real one: the device asks for its work, and the session it has in progress
    # comes first (lab choice session-resume); the pending one waits its turn.
    run = phone.receive(good)
    assert run is not None and run.ids[0] == world.active and run.result == "OK"
    after = state(lab)
    assert phone.receive(good) is None  # an exact replay
    assert phone.dropped[-1][0] == "replayed"
    assert state(lab) == after


# 9. Plain HTTP to the TLS port ------------------------------------------------------------------
def test_plain_http_gets_no_http_answer(lab: Lab) -> None:
    with socket.create_connection(("127.0.0.1", lab.server.port), timeout=5) as sock:
        sock.sendall(b"GET /sessions/pending HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            answer = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert not answer.startswith(b"HTTP/"), answer
    with pytest.raises(httpx.TransportError):
        httpx.get(lab.url.replace("https://", "http://") + "/sessions/pending", timeout=5)


def test_a_client_that_does_not_trust_the_lab_ca_is_refused(lab: Lab) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(lab.url + "/sessions/pending", timeout=5)


# 10. Expired or wrong credentials -----------------------------------------------------------
def _basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


def test_expired_and_wrong_credentials(lab: Lab, world: World) -> None:
    anon = world.clients.anonymous()
    operator = lab.operator
    got: dict[str, int] = {}

    # A device that was unregistered, then registered again under the same DevID.
    dev_id = new_name("expired")
    old = operator.register(dev_id)["secret"]
    assert anon.get("/sessions/pending", auth=(dev_id, old)).status_code == 200  # (now cached)
    operator.unregister(dev_id)
    got["unregistered device's secret"] = anon.get(
        "/sessions/pending", auth=(dev_id, old)
    ).status_code
    new = operator.register(dev_id)["secret"]
    got["old secret after re-registration"] = anon.get(
        "/sessions/pending", auth=(dev_id, old)
    ).status_code
    assert anon.get("/sessions/pending", auth=(dev_id, new)).status_code == 200
    operator.unregister(dev_id)

    # An account whose password was changed (after a successful, cached login).
    name = new_name("acct")
    lab.services.add_account(name, "first-password")
    assert anon.get("/devices", auth=(name, "first-password")).status_code == 200
    lab.services.add_account(name, "second-password")
    got["account's old password"] = anon.get("/devices", auth=(name, "first-password")).status_code
    assert anon.get("/devices", auth=(name, "second-password")).status_code == 200

    before = state(lab)
    headers = {
        "device secret with a trailing space": _basic(f"{world.dev}:{world.secret} ".encode()),
        "device secret, truncated": _basic(f"{world.dev}:{world.secret[:-1]}".encode()),
        "device secret under the account's name": _basic(f"demo:{world.secret}".encode()),
        "account password as a device secret": _basic(f"{world.dev}:demo-password".encode()),
        "account name in another case": _basic(b"DEMO:demo-password"),
        "rival's secret for this device": _basic(f"{world.dev}:{world.rival_secret}".encode()),
        "no colon": _basic(b"demo"),
        "empty user and password": _basic(b":"),
        "not base64": "Basic !!!not-base64!!!",
        "not UTF-8": "Basic " + base64.b64encode(b"demo:\xff\xfe").decode(),
        "Bearer scheme": "Bearer demo-password",
        "Digest scheme": 'Digest username="demo"',
        "Basic without a token": "Basic",
        "empty header": "",
        "8 KiB password": _basic(b"demo:" + b"p" * 8192),
    }
    for label, value in headers.items():
        answer = anon.get("/sessions/pending", headers={"Authorization": value})
        problem(answer, 401, "unauthorized")
        assert answer.headers["WWW-Authenticate"].startswith("Basic ")
        got[label] = answer.status_code
    assert state(lab) == before
    assert set(got.values()) == {401}, got


# 11. Brute force: the login throttle ------------------------------------------------------
def test_login_throttle() -> None:
    """Five free failures per (name, address); each further one doubles the wait
    (429 with Retry-After), correct credentials included; other names are not
    affected, and the wait ends."""
    from dmlab.server import auth

    now = [1_000_000.0]
    throttle = auth.Throttle(clock=lambda: now[0])
    with Lab(hash_cost=HASH_COST) as lab:
        lab.services.auth.throttle = throttle
        lab.add_account("victim", "right-password")
        anon = httpx.Client(
            base_url=lab.url, verify=lab.ca.client_context(), headers={"Accept": media.JSON}
        )
        try:
            for _ in range(auth.FREE_FAILURES + 1):
                problem(anon.get("/devices", auth=("victim", "wrong")), 401)
            locked = anon.get("/devices", auth=("victim", "right-password"))
            problem(locked, 429)
            assert int(locked.headers["Retry-After"]) == 2
            assert anon.get("/devices", auth=("demo", "demo-password")).status_code == 200
            now[0] += 2.5
            problem(anon.get("/devices", auth=("victim", "wrong")), 401)
            assert int(anon.get("/devices", auth=("victim", "x")).headers["Retry-After"]) == 4
            now[0] += 4.5
            assert anon.get("/devices", auth=("victim", "right-password")).status_code == 200
        finally:
            anon.close()
