"""Nobody in: device secrets and account passwords are stored only as salted scrypt
hashes, compared in constant time, and never written to the trace, the event
stream, the logs, the SQLite file or the notebooks' stored outputs (apart from the
one page that shows a new device's secret to the person who registered it)."""

from __future__ import annotations

import asyncio
import base64
import configparser
import hmac
import inspect
import json
import logging
import re
import time
from pathlib import Path

import httpx
import pytest

from dmlab import Lab
from dmlab.core import devices
from dmlab.events import Event
from dmlab.protocol import media
from dmlab.protocol.notification import notification_key
from dmlab.server import auth, build_services, create_app
from dmlab.server.auth import hash_secret, verify_secret
from dmlab.server.routes import devices as device_routes
from dmlab.store.sqlite import SQLiteStore

from helpers import BROWSER_ACCEPT, HASH_COST, csrf_of, html

ROOT = Path(__file__).resolve().parent.parent
TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{22}(?![A-Za-z0-9_-])")
PASSWORD = "hunter2-but-longer"


def spellings(user: str, secret: str) -> list[str]:
    """The secret as it could leak: itself, and inside a Basic Authorization header."""
    return [secret, base64.b64encode(f"{user}:{secret}".encode()).decode()]


def test_hashes_are_salted_scrypt() -> None:
    one, two = hash_secret("s3cret", cost=HASH_COST), hash_secret("s3cret", cost=HASH_COST)
    assert one != two  # salted
    for encoded in (one, two):
        scheme, n, r, p, salt, digest = encoded.split("$")
        assert (scheme, n, r, p) == ("scrypt", "16", "8", "1")
        assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(digest)) == 32
        assert "s3cret" not in encoded
        assert verify_secret("s3cret", encoded) and not verify_secret("s3cret ", encoded)
    assert hash_secret("x").split("$")[1:4] == [str(2**14), "8", "1"]  # the default cost
    assert not verify_secret("x", "md5$whatever") and not verify_secret("x", "")


def test_comparisons_are_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A code-level check: every comparison of a secret-derived value goes through
    ``hmac.compare_digest`` (scrypt digests, CSRF tokens, notification digests)."""
    calls: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    encoded = hash_secret("pw", cost=HASH_COST)
    assert verify_secret("pw", encoded) and not verify_secret("nope", encoded)
    assert len(calls) == 2
    assert "hmac.compare_digest" in inspect.getsource(device_routes.check_csrf)
    # A notification's digest, checked alone and by a device's guard.
    from dmlab.protocol import notification

    calls.clear()
    key = notification.notification_key("secret")
    signed = notification.Notification(server_id="dmlab", timestamp=int(time.time()))
    package = notification.encode(signed, key)
    assert notification.verify_digest(package, key)
    notification.NotificationGuard("dmlab", key).check(package)
    assert len(calls) == 2
    # and no plain == against a password, secret, digest or token anywhere in auth
    source = inspect.getsource(auth)
    assert not re.search(r"(password|secret|digest|token|expected|actual)\s*[!=]=", source)


def test_the_store_keeps_hashes_only(tmp_path: Path) -> None:
    """Through the API into SQLite: the file holds neither the secret nor the password,
    and the notification key is a one-way derivative of the secret."""
    db = tmp_path / "s.sqlite3"
    store = SQLiteStore(db)
    services = build_services(store=store, hash_cost=HASH_COST)
    services.add_account("acme", PASSWORD)
    app = create_app(services)

    async def main() -> str:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://dmlab.test"
        ) as client:
            answer = await client.post(
                "/devices/new",
                json={"devId": "IMEI:111111111"},
                auth=("acme", PASSWORD),
                headers={"Accept": media.JSON},
            )
            assert answer.status_code == 201
            secret = answer.json()["secret"]
            me = await client.get("/sessions/pending", auth=("IMEI:111111111", secret))
            assert me.status_code == 200
            return secret

    try:
        secret = asyncio.run(main())
        account = store.get_account("acme")
        device = store.get_device("IMEI:111111111")
        assert account is not None and device is not None
        assert account.password_hash.startswith("scrypt$") and PASSWORD not in account.password_hash
        # A device secret has 128 random bits: a salted SHA-256 verifier (see auth.py).
        assert device.secret_hash.startswith("sha256$") and secret not in device.secret_hash
        assert verify_secret(secret, device.secret_hash)
        assert (
            device.notify_key == notification_key(secret)
            and secret.encode() not in device.notify_key
        )
    finally:
        store.close()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for leak in [*spellings("IMEI:111111111", secret), *spellings("acme", PASSWORD)]:
        assert leak.encode() not in on_disk


def test_never_in_trace_events_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: uvicorn, httpx, httpcore, dmlab
    events: list[Event] = []
    with Lab(hash_cost=HASH_COST, account=("acme", PASSWORD)) as lab:
        lab.events.subscribe(events.append)
        # A person registers a device in the browser: the page shows the secret, once.
        with httpx.Client(
            base_url=lab.url,
            auth=("acme", PASSWORD),
            verify=lab.ca.client_context(),
            headers={"Accept": BROWSER_ACCEPT},
        ) as browser:
            token = csrf_of(html(browser.get("/devices/new"), 200))
            page = html(
                browser.post("/devices/new", data={"devId": "IMEI:222222222", "csrf": token}), 201
            )
        secret = re.search(r'id="secret">([^<]+)<', page)[1]  # type: ignore[index]
        phone = lab.attach_device("IMEI:222222222", secret, account="acme")
        # A server-initiated session (a DM Notification keyed by the secret), a
        # client-initiated one, and failed logins with wrong guesses.
        lab.operator.request_session(phone.dev_id, job="inventory")
        lab.settle()
        assert phone.alert() is None  # nothing pending: recorded, no session
        assert len(phone.runs) == 1
        with httpx.Client(base_url=lab.url, verify=lab.ca.client_context()) as anon:
            assert (
                anon.get("/sessions/pending", auth=("IMEI:222222222", secret[::-1])).status_code
                == 401
            )
            assert anon.get("/devices", auth=("acme", PASSWORD.upper())).status_code == 401
        trace = lab.trace.frame().to_csv()
    leaks = [
        *spellings("IMEI:222222222", secret),
        *spellings("acme", PASSWORD),
        secret[::-1],
        PASSWORD.upper(),
    ]
    stream = json.dumps([e.to_json() for e in events])
    assert "session.completed" in stream and "notification.sent" in stream
    assert "POST,/devices/new,201" in trace
    assert caplog.records  # the capture did see the run
    for leak in leaks:
        assert leak not in trace, "trace"
        assert leak not in stream, "events"
        assert leak not in caplog.text, "logs"


def _sanitizer() -> list[tuple[re.Pattern[str], str]]:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "notebooks" / "sanitize.cfg")
    return [(re.compile(config[s]["regex"]), config[s]["replace"]) for s in config.sections()]


def test_notebooks_store_no_live_secrets() -> None:
    """Decision: the page that registers a device shows its secret to that person,
    and a notebook may print it there; that secret belonged to a lab (in-memory store,
    per-run CA) that ended with the kernel, so it opens nothing. Anywhere else, a
    secret-shaped token in a stored output is a leak. The sanitizer masks every such
    token, so none of them is compared (or needed) by nbval."""
    sanitize = _sanitizer()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for notebook in notebooks:
        doc = json.loads(notebook.read_text())
        assert not any(
            not re.fullmatch(r"[a-z_]+(-[a-z]+)*", t)
            for t in TOKEN.findall(json.dumps(doc["metadata"]))
        ), notebook.name
        for cell in doc["cells"]:
            for output in cell.get("outputs", []):
                text = json.dumps(output)
                for match in TOKEN.finditer(text):
                    token = match.group(0)
                    if re.fullmatch(r"[a-z]+(-[a-z]+)+", token):
                        continue  # a word such as unsupported-media-type, not a secret
                    before = text[max(0, match.start() - 80) : match.start()]
                    assert "secret" in before, (notebook.name, token, before)
                for output_text in _texts(output):
                    for pattern, replacement in sanitize:
                        output_text = pattern.sub(replacement, output_text)
                    assert not [
                        t
                        for t in TOKEN.findall(output_text)
                        if not re.fullmatch(r"[a-z]+(-[a-z]+)+", t)
                    ], notebook.name


def _texts(output: dict) -> list[str]:
    texts = []
    if "text" in output:
        texts.append("".join(output["text"]))
    for value in output.get("data", {}).values():
        if isinstance(value, list):
            texts.append("".join(value))
        elif isinstance(value, str):
            texts.append(value)
    return texts


def test_a_new_secret_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """``dmlab device --secret -abc`` would read the secret as an option."""
    drawn = iter(["-first-draw", "_second", "third"])
    monkeypatch.setattr(devices.secrets, "token_urlsafe", lambda n: next(drawn))
    assert devices.new_secret() == "_second"
