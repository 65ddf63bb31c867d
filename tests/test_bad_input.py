"""Bad input, table-driven: each request gets its status and a problem body
(RFC 9457 ``application/problem+json``, or an HTML page for a browser), and leaves the
server's state exactly as it was.

One world of sessions is shared by the whole table (a device with a pending, an
active, a spent and a completed session id); since no case may change anything,
a case that did would fail its own state check."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from dmlab.protocol import media
from dmlab.server.bodies import MAX_BODY
from dmlab.store import State

from helpers import (
    RIVAL,
    Clients,
    commands,
    csrf_of,
    element_text,
    html,
    new_name,
    problem,
    put_status,
    queue,
)

BIG = MAX_BODY + 1
DEVINFO_FWV = "urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/FwV"


@dataclass
class World:
    clients: Clients
    names: dict[str, str]  # placeholders for paths and bodies
    secrets: dict[str, str] = field(default_factory=dict)
    victim: str = ""  # an account whose password cases get wrong


@pytest.fixture(scope="module")
def world(lab):
    clients = Clients(lab)
    demo = lab.operator
    dev = demo.register(new_name("dev"), name="table")
    other = lab.operators[RIVAL[0]].register(new_name("rival-dev"))
    device = clients.device(dev["devId"], dev["secret"])

    pending = queue(lab, dev["devId"], job="inventory")["SessionID"]
    active_job = queue(lab, dev["devId"], job="firmware-update", version="2.0.0")["SessionID"]
    first = commands(device.post(f"/sessions/id/{active_job}"))
    second = commands(
        put_status(
            device, first["SessionID"], [{"sc": 200, "Data": "1.0.0"}, {"sc": 200, "Data": 10}]
        )
    )
    done = queue(lab, dev["devId"], commands=[["GET", DEVINFO_FWV]])["SessionID"]
    assert (
        put_status(
            device, commands(device.post(f"/sessions/id/{done}"))["SessionID"], [{"sc": 200}]
        ).status_code
        == 204
    )
    victim = new_name("victim")
    lab.add_account(victim, "the-right-one")
    token = csrf_of(html(clients.browser().get("/devices/new"), 200))
    names = {
        "dev": dev["devId"],
        "other_dev": other["devId"],
        "pending": pending,
        "active": second["SessionID"],
        "spent": first["SessionID"],
        "completed": done,
        "csrf": token,
    }
    yield World(clients, names, {"dev": dev["secret"], "other_dev": other["secret"]}, victim)
    clients.close()


def state(lab, world: World) -> dict[str, Any]:
    """Everything a case could disturb, read from the server's store: each account's
    devices and sessions in every state (active ones included, which no listing
    shows), and the alerts recorded for the table's devices."""
    lab.settle()
    store = lab.services.store
    accounts = sorted(lab.operators)
    return {
        "devices": {a: sorted(d.dev_id for d in store.devices_of(a)) for a in accounts},
        "sessions": {
            (a, s.value): store.sessions_of_account(a, s) for a in accounts for s in State
        },
        "alerts": {k: store.alerts_of(world.names[k]) for k in ("dev", "other_dev")},
    }


@dataclass(frozen=True)
class Case:
    who: str  # account | rival | device | other-device | browser | anon | victim-wrong | ...
    method: str
    path: str
    status: int
    error: str | None = None
    json: Any = None
    raw: bytes | None = None
    content_type: str | None = None
    form: dict[str, str] | None = None
    accept: str | None = None
    devid_header: str | None = None


def fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    return value


J = media.JSON
DM = media.DM20_RESPONSE
FUMO_STATUS = [{"sc": 200}, {"sc": 202}]  # what the active round (HGET, EXEC, END) wants


def padded(body: dict[str, Any], size: int) -> bytes:
    text = json.dumps(body).encode()
    return text + b" " * (size - len(text))


def _unreadable(who: str, method: str, path: str, raw: bytes, content_type: str) -> Case:
    """A body that is not JSON at all, sent as ``content_type``: a 400 ``bad-json``."""
    return Case(who, method, path, 400, "bad-json", raw=raw, content_type=content_type)


CASES: dict[str, Case] = {
    # 400: the body cannot be read -------------------------------------------------
    "malformed-json-report": _unreadable(
        "device", "PUT", "/sessions/id/{active}", b'{"Status": [', J
    ),
    "malformed-json-alert": _unreadable("device", "POST", "/alert", b"{nope", DM),
    "malformed-json-next": _unreadable("device", "POST", "/sessions/next", b"[", J),
    "malformed-json-start": _unreadable(
        "device", "POST", "/sessions/id/{pending}", b'{"Alert": [}', DM
    ),
    "malformed-json-register": _unreadable("account", "POST", "/devices/new", b'{"devId":', J),
    "malformed-json-request": _unreadable(
        "account", "POST", "/devices/{dev}/sessions", b"{'job': 'inventory'}", J
    ),
    "malformed-json-update": _unreadable("account", "PUT", "/devices/{dev}", b'{"name": "x",}', J),
    "not-utf8-json": _unreadable(
        "device", "PUT", "/sessions/id/{active}", b'{"Status": "\xff\xfe"}', J
    ),
    "json-array-register": Case(
        "account", "POST", "/devices/new", 400, json=[{"devId": "IMEI:123456"}]
    ),
    "report-not-object": Case("device", "PUT", "/sessions/id/{active}", 400, json=FUMO_STATUS),
    # 400: statuses -----------------------------------------------------------------
    "status-count-short": Case(
        "device",
        "PUT",
        "/sessions/id/{active}",
        400,
        "status-mismatch",
        json={"Status": [{"sc": 200}]},
    ),
    "status-count-long": Case(
        "device",
        "PUT",
        "/sessions/id/{active}",
        400,
        "status-mismatch",
        json={"Status": [*FUMO_STATUS, {"sc": 200}]},
    ),
    "status-for-end": Case(
        "device",
        "PUT",
        "/sessions/id/{active}",
        400,
        "status-mismatch",
        json={"Status": [*FUMO_STATUS, {"sc": 200}]},
    ),
    "status-none": Case("device", "PUT", "/sessions/id/{active}", 400, "status-mismatch", json={}),
    "status-sc-string": Case(
        "device",
        "PUT",
        "/sessions/id/{active}",
        400,
        "bad-request",
        json={"Status": [{"sc": "200"}, {"sc": 202}]},
    ),
    "status-sc-bool": Case(
        "device", "PUT", "/sessions/id/{active}", 400, json={"Status": [{"sc": True}, {"sc": 202}]}
    ),
    "status-sc-out-of-range": Case(
        "device", "PUT", "/sessions/id/{active}", 400, json={"Status": [{"sc": 999}, {"sc": 202}]}
    ),
    "status-without-sc": Case(
        "device", "PUT", "/sessions/id/{active}", 400, json={"Status": [{"Data": "x"}, {"sc": 202}]}
    ),
    "status-extra-field": Case(
        "device",
        "PUT",
        "/sessions/id/{active}",
        400,
        json={"Status": [{"sc": 200, "Cmd": "HGET"}, {"sc": 202}]},
    ),
    "status-not-list": Case(
        "device", "PUT", "/sessions/id/{active}", 400, json={"Status": {"sc": 200}}
    ),
    "status-not-object": Case(
        "device", "PUT", "/sessions/id/{active}", 400, json={"Status": [200, 202]}
    ),
    "report-unknown-field": Case(
        "device", "PUT", "/sessions/id/{active}", 400, json={"Status": FUMO_STATUS, "Results": []}
    ),
    "report-bad-alert": Case(
        "device",
        "PUT",
        "/sessions/id/{active}",
        400,
        json={"Status": FUMO_STATUS, "Alert": [{"Mark": "fatal"}]},
    ),
    # 400: commands and jobs ----------------------------------------------------------
    # an unknown command is relayed (lab choice unknown-command); a name that is no
    # command name at all is refused
    "bad-command-name": Case(
        "account",
        "POST",
        "/devices/{dev}/sessions",
        400,
        json={"CMD": [["FROB IT", "./x"]], "notify": False},
    ),
    "bad-command-name-component": Case(
        "device",
        "POST",
        "/devices/{dev}/sessions",
        400,
        json={"CMD": [["RE/BOOT"]]},
        accept=media.COMMANDS,
    ),
    "end-not-last": Case(
        "account",
        "POST",
        "/devices/{dev}/sessions",
        400,
        json={"CMD": [["END"], ["GET", DEVINFO_FWV]], "notify": False},
    ),
    "command-arity": Case(
        "account", "POST", "/devices/{dev}/sessions", 400, json={"CMD": [["GET"]], "notify": False}
    ),
    "command-not-list": Case(
        "account",
        "POST",
        "/devices/{dev}/sessions",
        400,
        json={"CMD": ["GET " + DEVINFO_FWV], "notify": False},
    ),
    "command-empty-arg": Case(
        "account",
        "POST",
        "/devices/{dev}/sessions",
        400,
        json={"CMD": [["GET", ""]], "notify": False},
    ),
    "cmd-empty": Case(
        "account", "POST", "/devices/{dev}/sessions", 400, json={"CMD": [], "notify": False}
    ),
    "cmd-form-not-json": Case(
        "browser",
        "POST",
        "/devices/{dev}/sessions",
        400,
        form={"commands": "GET everything", "csrf": "{csrf}"},
    ),
    "unknown-job": Case(
        "account", "POST", "/devices/{dev}/sessions", 400, json={"job": "reboot", "notify": False}
    ),
    "job-named-commands": Case(
        "account", "POST", "/devices/{dev}/sessions", 400, json={"job": "commands", "notify": False}
    ),
    "no-job": Case("account", "POST", "/devices/{dev}/sessions", 400, json={"notify": False}),
    "unknown-job-form": Case(
        "browser",
        "POST",
        "/devices/{dev}/sessions",
        400,
        form={"job": "self-destruct", "csrf": "{csrf}"},
    ),
    "bad-firmware-version": Case(
        "account",
        "POST",
        "/devices/{dev}/sessions",
        400,
        json={"job": "firmware-update", "params": {"version": "2.x"}, "notify": False},
    ),
    "params-not-object": Case(
        "account",
        "POST",
        "/devices/{dev}/sessions",
        400,
        json={"job": "inventory", "params": ["a"], "notify": False},
    ),
    "param-too-long": Case(
        "account",
        "POST",
        "/devices/{dev}/sessions",
        400,
        json={"job": "inventory", "params": {"x": "y" * 101}, "notify": False},
    ),
    "ttl-negative": Case(
        "account",
        "POST",
        "/devices/{dev}/sessions",
        400,
        json={"job": "inventory", "ttl": "-1", "notify": False},
    ),
    "ttl-not-number": Case(
        "account",
        "POST",
        "/devices/{dev}/sessions",
        400,
        json={"job": "inventory", "ttl": "soon", "notify": False},
    ),
    "ttl-bool": Case(
        "account",
        "POST",
        "/devices/{dev}/sessions",
        400,
        json={"job": "inventory", "ttl": True, "notify": False},
    ),
    # 400: alerts ---------------------------------------------------------------------
    "alert-none": Case("device", "POST", "/alert", 400, json={"Alert": []}),
    "alert-missing": Case("device", "POST", "/alert", 400, json={}),
    "alert-with-status": Case(
        "device",
        "POST",
        "/alert",
        400,
        json={"Alert": [{"AlertType": "x"}], "Status": [{"sc": 200}]},
    ),
    "alert-without-type": Case("device", "POST", "/alert", 400, json={"Alert": [{"Data": 1}]}),
    "alert-bad-mark": Case(
        "device", "POST", "/alert", 400, json={"Alert": [{"AlertType": "x", "Mark": "apocalyptic"}]}
    ),
    "alert-unknown-field": Case(
        "device", "POST", "/alert", 400, json={"Alert": [{"AlertType": "x", "Severity": 1}]}
    ),
    # 400: devIds and device fields ------------------------------------------------------
    **{
        f"bad-devid-{name}": Case("account", "POST", "/devices/new", 400, json={"devId": dev_id})
        for name, dev_id in [
            ("slash", "IMEI:123/456"),
            ("dotdot-path", "../etc/passwd"),
            ("dotdot", ".."),
            ("dots", "..."),
            ("too-short", "ab"),
            ("empty", ""),
            ("too-long", "I" * 101),
            ("space", "IMEI 490154203237518"),
            ("percent", "%2e%2e%2f"),
            ("backslash", "a\\b\\c"),
            ("not-string", 490154203237518),
            ("null", None),
        ]
    },
    "bad-devid-form": Case(
        "browser", "POST", "/devices/new", 400, form={"devId": "a/../../b", "csrf": "{csrf}"}
    ),
    "name-too-long": Case(
        "account", "POST", "/devices/new", 400, json={"devId": "IMEI:777777777", "name": "n" * 101}
    ),
    "name-not-text": Case("account", "PUT", "/devices/{dev}", 400, json={"name": ["x"]}),
    "devid-change": Case("account", "PUT", "/devices/{dev}", 400, json={"devId": "IMEI:888888888"}),
    # 401 -------------------------------------------------------------------------------
    "anon-pending": Case("anon", "GET", "/sessions/pending", 401, "unauthorized"),
    "anon-next": Case("anon", "POST", "/sessions/next", 401, "unauthorized"),
    "anon-report": Case("anon", "PUT", "/sessions/id/{active}", 401, json={"Status": FUMO_STATUS}),
    "anon-abort": Case("anon", "DELETE", "/session/id/{pending}", 401),
    "anon-register": Case("anon", "POST", "/devices/new", 401, json={"devId": "IMEI:999999991"}),
    "anon-alert": Case("anon", "POST", "/alert", 401, json={"Alert": [{"AlertType": "x"}]}),
    "anon-browser": Case("anon-browser", "GET", "/devices", 401),
    "wrong-password": Case("victim-wrong", "GET", "/devices", 401, "unauthorized"),
    "wrong-password-browser": Case("victim-wrong-browser", "GET", "/devices/new", 401),
    "wrong-secret": Case(
        "device-wrong", "PUT", "/sessions/id/{active}", 401, json={"Status": FUMO_STATUS}
    ),
    "devid-header-of-another": Case(
        "device",
        "PUT",
        "/sessions/id/{active}",
        401,
        json={"Status": FUMO_STATUS},
        devid_header="{other_dev}",
    ),
    # 403 -------------------------------------------------------------------------------
    "device-lists-devices": Case("device", "GET", "/devices", 403, "forbidden"),
    "device-registers": Case(
        "device", "POST", "/devices/new", 403, "forbidden", json={"devId": "IMEI:999999992"}
    ),
    "device-unregisters-itself": Case("device", "DELETE", "/devices/{dev}", 403, "forbidden"),
    "device-updates-itself": Case("device", "PUT", "/devices/{dev}", 403, json={"name": "me"}),
    "account-starts-next": Case("account", "POST", "/sessions/next", 403, "forbidden"),
    "account-starts-by-id": Case("account", "POST", "/sessions/id/{pending}", 403),
    "account-reports": Case(
        "account", "PUT", "/sessions/id/{active}", 403, json={"Status": FUMO_STATUS}
    ),
    "account-alerts": Case("account", "POST", "/alert", 403, json={"Alert": [{"AlertType": "x"}]}),
    "account-asks-for-commands": Case(
        "account",
        "POST",
        "/devices/{dev}/sessions",
        403,
        "forbidden",
        json={"job": "inventory"},
        accept=media.COMMANDS,
    ),
    "form-without-csrf": Case(
        "browser", "POST", "/devices/new", 403, form={"devId": "IMEI:999999993"}
    ),
    "form-wrong-csrf-json": Case(
        "account",
        "POST",
        "/devices/new",
        403,
        "csrf",
        form={"devId": "IMEI:999999994", "csrf": "f" * 32},
    ),
    "session-form-without-csrf": Case(
        "browser", "POST", "/devices/{dev}/sessions", 403, form={"job": "inventory"}
    ),
    "delete-form-without-csrf": Case(
        "browser", "POST", "/devices/{dev}", 403, form={"_method": "DELETE"}
    ),
    "rival-csrf": Case(
        "rival-browser",
        "POST",
        "/devices/new",
        403,
        form={"devId": "IMEI:999999995", "csrf": "{csrf}"},
    ),
    # 404 -------------------------------------------------------------------------------
    "unknown-session-start": Case(
        "device", "POST", "/sessions/id/0123456789abcdef", 404, "not-found"
    ),
    "unknown-session-report": Case(
        "device", "PUT", "/sessions/id/0123456789abcdef", 404, "not-found", json={"Status": []}
    ),
    "unknown-session-abort": Case(
        "account", "DELETE", "/session/id/0123456789abcdef", 404, "not-found"
    ),
    "unknown-session-abort-plural": Case("device", "DELETE", "/sessions/id/nope", 404),
    "unknown-device": Case("account", "GET", "/devices/IMEI:000000000000009", 404, "not-found"),
    "unknown-device-html": Case("browser", "GET", "/devices/IMEI:000000000000009", 404),
    "devid-with-slash": Case("account", "GET", "/devices/IMEI:1/2", 404, "not-found"),
    "unknown-path": Case("account", "GET", "/sessions/running", 404, "not-found"),
    "rival-reads-device": Case("rival", "GET", "/devices/{dev}", 404, "not-found"),
    "rival-updates-device": Case("rival", "PUT", "/devices/{dev}", 404, json={"name": "mine"}),
    "rival-deletes-device": Case("rival", "DELETE", "/devices/{dev}", 404),
    "rival-queues-session": Case(
        "rival", "POST", "/devices/{dev}/sessions", 404, json={"job": "inventory", "notify": False}
    ),
    "rival-aborts-pending": Case("rival", "DELETE", "/session/id/{pending}", 404),
    "rival-aborts-active": Case("rival", "DELETE", "/sessions/id/{active}", 404),
    "other-device-starts": Case("other-device", "POST", "/sessions/id/{pending}", 404),
    "other-device-reports": Case(
        "other-device", "PUT", "/sessions/id/{active}", 404, json={"Status": FUMO_STATUS}
    ),
    "other-device-aborts": Case("other-device", "DELETE", "/session/id/{active}", 404),
    "other-device-reads": Case(
        "other-device",
        "POST",
        "/devices/{dev}/sessions",
        404,
        json={"job": "inventory"},
        accept=media.COMMANDS,
    ),
    # 405 -------------------------------------------------------------------------------
    "patch-session-id": Case(
        "device", "PATCH", "/sessions/id/{active}", 405, "method-not-allowed", json={}
    ),
    "patch-device": Case("account", "PATCH", "/devices/{dev}", 405, json={"name": "x"}),
    "get-alert": Case("device", "GET", "/alert", 405),
    "get-next": Case("device", "GET", "/sessions/next", 405),
    "put-pending": Case("account", "PUT", "/sessions/pending", 405, json={}),
    "post-completed": Case("account", "POST", "/sessions/completed", 405),
    "get-session-singular": Case("account", "GET", "/session/id/{pending}", 405),
    "put-session-singular": Case(
        "device", "PUT", "/session/id/{active}", 405, json={"Status": FUMO_STATUS}
    ),
    "delete-devices": Case("account", "DELETE", "/devices", 405),
    "get-device-sessions": Case("account", "GET", "/devices/{dev}/sessions", 405),
    "form-method-patch": Case(
        "browser", "POST", "/devices/{dev}", 405, form={"_method": "PATCH", "csrf": "{csrf}"}
    ),
    # 409 -------------------------------------------------------------------------------
    "duplicate-registration": Case(
        "account", "POST", "/devices/new", 409, "conflict", json={"devId": "{dev}"}
    ),
    "duplicate-registration-rival": Case(
        "rival", "POST", "/devices/new", 409, "conflict", json={"devId": "{dev}"}
    ),
    "spent-id-report": Case(
        "device",
        "PUT",
        "/sessions/id/{spent}",
        409,
        "spent-session",
        json={"Status": [{"sc": 200}, {"sc": 200}]},
    ),
    "spent-id-start": Case("device", "POST", "/sessions/id/{spent}", 409, "conflict"),
    "spent-id-abort": Case("account", "DELETE", "/session/id/{spent}", 409, "spent-session"),
    "start-active": Case("device", "POST", "/sessions/id/{active}", 409, "conflict"),
    "report-pending": Case(
        "device",
        "PUT",
        "/sessions/id/{pending}",
        409,
        "conflict",
        json={"Status": [{"sc": 200}, {"sc": 200}]},
    ),
    # Another report than the one that completed it (the same one is a retry, answered
    # again: lab choice put-retry).
    "report-completed": Case(
        "device", "PUT", "/sessions/id/{completed}", 409, json={"Status": [{"sc": 500}]}
    ),
    "start-completed": Case("device", "POST", "/sessions/id/{completed}", 409),
    "abort-completed": Case("account", "DELETE", "/sessions/id/{completed}", 409, "conflict"),
    "abort-completed-device": Case("device", "DELETE", "/session/id/{completed}", 409),
    # 413 -------------------------------------------------------------------------------
    "too-large-report": Case(
        "device",
        "PUT",
        "/sessions/id/{active}",
        413,
        "too-large",
        raw=padded({"Status": FUMO_STATUS}, BIG),
        content_type=DM,
    ),
    "too-large-alert": Case(
        "device",
        "POST",
        "/alert",
        413,
        "too-large",
        raw=padded({"Alert": [{"AlertType": "x"}]}, BIG),
        content_type=DM,
    ),
    "too-large-next": Case(
        "device", "POST", "/sessions/next", 413, raw=padded({}, BIG), content_type=DM
    ),
    "too-large-register": Case(
        "account",
        "POST",
        "/devices/new",
        413,
        raw=padded({"devId": "IMEI:999999996"}, BIG),
        content_type=J,
    ),
    "too-large-request": Case(
        "account",
        "POST",
        "/devices/{dev}/sessions",
        413,
        raw=padded({"job": "inventory", "notify": False}, BIG),
        content_type=J,
    ),
    "too-large-form": Case(
        "account",
        "POST",
        "/devices/new",
        413,
        raw=b"devId=IMEI%3A999999997&name=" + b"n" * BIG,
        content_type=media.FORM,
    ),
    # At the limit exactly the body is read, and judged on its content.
    "at-the-limit-is-read": Case(
        "device",
        "PUT",
        "/sessions/id/{active}",
        400,
        "status-mismatch",
        raw=padded({"Status": [{"sc": 200}]}, MAX_BODY),
        content_type=DM,
    ),
    # 415 -------------------------------------------------------------------------------
    "report-as-text": Case(
        "device",
        "PUT",
        "/sessions/id/{active}",
        415,
        "unsupported-media-type",
        raw=json.dumps({"Status": FUMO_STATUS}).encode(),
        content_type="text/plain",
    ),
    "report-without-type": Case(
        "device",
        "PUT",
        "/sessions/id/{active}",
        415,
        raw=json.dumps({"Status": FUMO_STATUS}).encode(),
    ),
    "report-as-form": Case(
        "device", "PUT", "/sessions/id/{active}", 415, raw=b"sc=200&sc=202", content_type=media.FORM
    ),
    "alert-as-xml": Case(
        "device",
        "POST",
        "/alert",
        415,
        "unsupported-media-type",
        raw=b"<Alert type='x'/>",
        content_type="application/xml",
    ),
    "next-as-text": Case(
        "device", "POST", "/sessions/next", 415, raw=b"{}", content_type="text/plain"
    ),
    "register-as-text": Case(
        "account",
        "POST",
        "/devices/new",
        415,
        "unsupported-media-type",
        raw=b"devId=IMEI:999999998",
        content_type="text/plain",
    ),
    "register-as-multipart": Case(
        "account",
        "POST",
        "/devices/new",
        415,
        raw=b"--x\r\n\r\n--x--",
        content_type="multipart/form-data; boundary=x",
    ),
    "request-as-cmd-json": Case(
        "account",
        "POST",
        "/devices/{dev}/sessions",
        415,
        raw=b'{"job": "inventory"}',
        content_type=media.COMMANDS,
    ),
    "update-as-text": Case(
        "account", "PUT", "/devices/{dev}", 415, raw=b"name=x", content_type="text/plain"
    ),
}


def client_for(world: World, who: str):
    c, names = world.clients, world.names
    return {
        "account": lambda: c.account(),
        "rival": lambda: c.account(RIVAL[0]),
        "browser": lambda: c.browser(),
        "rival-browser": lambda: c.browser(RIVAL[0]),
        "device": lambda: c.device(names["dev"], world.secrets["dev"]),
        "other-device": lambda: c.device(names["other_dev"], world.secrets["other_dev"]),
        "device-wrong": lambda: c.device(names["dev"], "not-the-secret"),
        "anon": lambda: c.anonymous(),
        "anon-browser": lambda: c.anonymous(accept="text/html"),
        "victim-wrong": lambda: c.account(world.victim, "a-guess"),
        "victim-wrong-browser": lambda: c.browser(world.victim, "another-guess"),
    }[who]()


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input(lab, world, case: Case):
    names = world.names
    client = client_for(world, case.who)
    headers: dict[str, str] = {}
    if case.accept:
        headers["Accept"] = case.accept
    if case.devid_header:
        headers[media.DEVID_HEADER] = fill(case.devid_header, names)
    kwargs: dict[str, Any] = {}
    path = fill(case.path, names)
    if case.json is not None:
        kwargs["content"] = json.dumps(fill(case.json, names)).encode()
        # Devices send their packages as DM 2.0 responses; everything else is JSON.
        headers["Content-Type"] = DM if path.startswith(("/sessions", "/session/", "/alert")) else J
    elif case.raw is not None:
        kwargs["content"] = case.raw
        if case.content_type:
            headers["Content-Type"] = case.content_type
    elif case.form is not None:
        kwargs["data"] = fill(case.form, names)

    before = state(lab, world)
    response = client.request(case.method, path, headers=headers, **kwargs)
    browser = "text/html" in client.headers.get("accept", "") and not case.accept
    if browser:
        page = html(response, case.status)
        if case.error is not None:
            assert element_text(page, "error") == case.error
        assert element_text(page, "detail")
    else:
        problem(response, case.status, case.error)
    if case.status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
    if case.status == 405:
        allowed = {m.strip() for m in response.headers["Allow"].split(",")}
        method = (case.form or {}).get("_method", case.method)  # an HTML form's stand-in verb
        assert method not in allowed and allowed
    assert state(lab, world) == before


def test_the_world_still_works_after_the_table(lab, world):
    """After every refusal, the active session still finishes under its id."""
    device = world.clients.device(world.names["dev"], world.secrets["dev"])
    end = put_status(device, world.names["active"], FUMO_STATUS)
    assert end.status_code == 204 and end.headers["OMADM-Result"] == "OK"
    pending = commands(device.post("/sessions/next"))
    assert pending["SessionID"] == world.names["pending"]
