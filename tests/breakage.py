"""Deliberately broken servers, for testing the conformance kit: test-only ASGI
wrappers around the lab's app, each breaking one clause of the change request.

A :class:`Switchable` app sits in front of the real one; a test sets which
breakage is in force, runs the kit, and clears it. Each breakage is a small
ASGI middleware that rewrites requests or answers on the way through; the lab's
own code is never changed.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

from dmlab.protocol.notification import describe

ASGIApp = Callable[..., Any]
Scope = dict[str, Any]
COMMANDS = "application/vnd.omadm-cmd+json"


async def _body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def call(
    app: ASGIApp, scope: Scope, body: bytes
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run ``app`` on a request; its status, headers and body."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status, headers, out = 500, [], b""

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, headers, out
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            out += message.get("body", b"")

    await app(scope, receive, send)
    return status, headers, out


async def answer(
    send: Any, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    kept = [(k, v) for k, v in (headers or []) if k.lower() != b"content-length"]
    kept.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": kept})
    await send({"type": "http.response.body", "body": body})


async def reply(send: Any, result: tuple[int, list[tuple[bytes, bytes]], bytes]) -> None:
    status, headers, body = result
    await answer(send, status, body, headers)


def _header(scope: Scope, name: bytes) -> bytes:
    return next((v for k, v in scope["headers"] if k.lower() == name), b"")


def _with_header(scope: Scope, name: bytes, value: bytes | None) -> Scope:
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != name]
    if value is not None:
        headers.append((name, value))
    return {**scope, "headers": headers}


class Breakage:
    """Rewrite one kind of exchange; everything else goes through untouched."""

    method: str = ""
    path: str = ""  # a regex over the path

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def matches(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["method"] == self.method
            and re.fullmatch(self.path, scope["path"]) is not None
        )

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if not self.matches(scope):
            await self.app(scope, receive, send)
            return
        await self.handle(scope, await _body(receive), send)

    async def handle(self, scope: Scope, body: bytes, send: Any) -> None:
        raise NotImplementedError


class IdleNextAnswers200(Breakage):
    """An idle ``POST /sessions/next`` answers 200 (with an empty object) instead of 204."""

    method, path = "POST", "/sessions/next"

    async def handle(self, scope: Scope, body: bytes, send: Any) -> None:
        status, headers, out = await call(self.app, scope, body)
        if status == 204:
            status, out = 200, b"{}"
            headers = [*headers, (b"content-type", b"application/json")]
        await answer(send, status, out, headers)


class PutKeepsTheOldId(Breakage):
    """``PUT`` answers further commands under the id it was sent to (the server's new
    id is kept behind the scenes, so the session still works)."""

    method, path = "PUT", "/sessions/id/[^/]+"

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self.current: dict[str, str] = {}  # the id the client uses -> the server's id

    async def handle(self, scope: Scope, body: bytes, send: Any) -> None:
        shown = scope["path"].rsplit("/", 1)[-1]
        real = self.current.get(shown, shown)
        scope = {
            **scope,
            "path": f"/sessions/id/{real}",
            "raw_path": f"/sessions/id/{real}".encode(),
        }
        status, headers, out = await call(self.app, scope, body)
        if status == 200:
            package = json.loads(out)
            self.current[shown] = package["SessionID"]
            package["SessionID"] = shown
            out = json.dumps(package).encode()
            headers = [
                (k, f"/sessions/id/{shown}".encode() if k.lower() == b"location" else v)
                for k, v in headers
            ]
        await answer(send, status, out, headers)


class NoSingularDelete(Breakage):
    """The CR's singular ``DELETE /session/id/{sessionId}`` is missing (404)."""

    method, path = "DELETE", "/session/id/[^/]+"

    async def handle(self, scope: Scope, body: bytes, send: Any) -> None:
        await answer(send, 404, b'{"error": "not-found"}', [(b"content-type", b"application/json")])


class FormAnswersJson(Breakage):
    """``GET /devices/new`` answers JSON, not an HTML form."""

    method, path = "GET", "/devices/new"

    async def handle(self, scope: Scope, body: bytes, send: Any) -> None:
        status, headers, out = await call(self.app, scope, body)
        if status == 200:
            out = b'{"fields": ["devId", "name", "man", "mod"]}'
            headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
            headers.append((b"content-type", b"application/json"))
        await answer(send, status, out, headers)


class AcceptIgnored(Breakage):
    """The browser entry point ignores the browser component's Accept header."""

    method, path = "POST", "/devices/[^/]+/sessions"

    async def handle(self, scope: Scope, body: bytes, send: Any) -> None:
        accept = _header(scope, b"accept").replace(COMMANDS.encode(), b"application/json")
        status, headers, out = await call(self.app, _with_header(scope, b"accept", accept), body)
        await answer(send, status, out, headers)


class OtherAccountsVisible(Breakage):
    """An account's session listings also show every other account's sessions."""

    path = "/sessions/(pending|completed)"

    def __init__(self, app: ASGIApp, accounts: list[tuple[str, str]]) -> None:
        super().__init__(app)
        self.accounts = accounts

    def matches(self, scope: Scope) -> bool:
        return scope.get("method") == "GET" and super().matches({**scope, "method": ""})

    async def handle(self, scope: Scope, body: bytes, send: Any) -> None:
        status, headers, out = await call(self.app, scope, body)
        asking = _basic_user(_header(scope, b"authorization"))
        if status != 200 or asking not in {name for name, _ in self.accounts}:
            await answer(send, status, out, headers)
            return
        listing = json.loads(out)
        for name, password in self.accounts:
            if name != asking:
                auth = b"Basic " + base64.b64encode(f"{name}:{password}".encode())
                _, _, theirs = await call(
                    self.app, _with_header(scope, b"authorization", auth), b""
                )
                listing["Sessions"] += json.loads(theirs)["Sessions"]
        await answer(send, status, json.dumps(listing).encode(), headers)


def _basic_user(header: bytes) -> str:
    try:
        return base64.b64decode(header.split(b" ", 1)[1]).decode().split(":", 1)[0]
    except (IndexError, ValueError):
        return ""


class Switchable:
    """The lab's app, behind whichever breakage a test puts in force."""

    def __init__(self, app: ASGIApp) -> None:
        self.inner = app
        self.current: ASGIApp = app

    def use(self, make: Callable[[ASGIApp], ASGIApp] | None) -> None:
        self.current = make(self.inner) if make else self.inner

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await self.current(scope, receive, send)


# --- generic breakages: one rewrite each, for the matrix that fails every purpose ---------

Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]


class Rewrite(Breakage):
    """Rewrite matching requests (``request``), their answers (``response``), or
    answer them without the lab at all (``instead``)."""

    def __init__(
        self,
        app: ASGIApp,
        method: str,
        path: str,
        *,
        request: Callable[[Scope, bytes], tuple[Scope, bytes]] | None = None,
        response: Callable[[Answer], Answer] | None = None,
        instead: Answer | None = None,
    ) -> None:
        super().__init__(app)
        self.method, self.path = method, path
        self._request, self._response, self._instead = request, response, instead

    async def handle(self, scope: Scope, body: bytes, send: Any) -> None:
        if self._instead is not None:
            await reply(send, self._instead)
            return
        if self._request:
            scope, body = self._request(scope, body)
        result = await call(self.app, scope, body)
        if self._response:
            result = self._response(result)
        await reply(send, result)


def rewrite(method: str, path: str, **how: Any) -> Callable[[ASGIApp], ASGIApp]:
    return lambda app: Rewrite(app, method, path, **how)


JSON_TYPE = [(b"content-type", b"application/json")]


def accepting(method: str, path: str) -> Callable[[ASGIApp], ASGIApp]:
    """Every refusal (4xx) on the route becomes ``200 {}``: wrong actors, other
    accounts' devices and sessions, unknown and spent ids, bad bodies all "work"."""

    def accept(result: Answer) -> Answer:
        return (200, JSON_TYPE, b"{}") if 400 <= result[0] < 500 else result

    return rewrite(method, path, response=accept)


def on_json(fn: Callable[[Any], Any], status: int = 200) -> Callable[[Answer], Answer]:
    """Rewrite a JSON answer's body with ``fn`` (other answers pass)."""

    def change(result: Answer) -> Answer:
        code, headers, body = result
        if code != status:
            return result
        return code, headers, json.dumps(fn(json.loads(body))).encode()

    return change


def drop_last_command(package: dict[str, Any]) -> dict[str, Any]:
    return {**package, "CMD": package["CMD"][:-1]}


def without_header(name: bytes) -> Callable[[Answer], Answer]:
    def strip(result: Answer) -> Answer:
        status, headers, body = result
        return status, [(k, v) for k, v in headers if k.lower() != name], body

    return strip


def retyped(old: bytes, new: bytes) -> Callable[[Answer], Answer]:
    def change(result: Answer) -> Answer:
        status, headers, body = result
        return (
            status,
            [
                (k, new if k.lower() == b"content-type" and v.startswith(old) else v)
                for k, v in headers
            ],
            body,
        )

    return change


def request_header(
    name: bytes, value: bytes | None
) -> Callable[[Scope, bytes], tuple[Scope, bytes]]:
    return lambda scope, body: (_with_header(scope, name, value), body)


class LeakyListings(Breakage):
    """Every session listing also shows every account's sessions, whoever asks."""

    method, path = "GET", "/sessions/(pending|completed)"

    def __init__(self, app: ASGIApp, accounts: list[tuple[str, str]]) -> None:
        super().__init__(app)
        self.accounts = accounts

    async def handle(self, scope: Scope, body: bytes, send: Any) -> None:
        status, headers, out = await call(self.app, scope, body)
        if status != 200:
            await answer(send, status, out, headers)
            return
        listing = json.loads(out)
        for name, password in self.accounts:
            auth = b"Basic " + base64.b64encode(f"{name}:{password}".encode())
            _, _, theirs = await call(self.app, _with_header(scope, b"authorization", auth), b"")
            listing["Sessions"] += json.loads(theirs)["Sessions"]
        await answer(send, status, json.dumps(listing).encode(), headers)


class CompletedListsPending(Breakage):
    """``GET /sessions/completed`` also lists the caller's pending sessions."""

    method, path = "GET", "/sessions/completed"

    async def handle(self, scope: Scope, body: bytes, send: Any) -> None:
        status, headers, out = await call(self.app, scope, body)
        pending_scope = {**scope, "path": "/sessions/pending", "raw_path": b"/sessions/pending"}
        _, _, pending = await call(self.app, pending_scope, b"")
        if status == 200:
            listing = json.loads(out)
            listing["Sessions"] += json.loads(pending)["Sessions"]
            out = json.dumps(listing).encode()
        await answer(send, status, out, headers)


class StartedStaysPending(Breakage):
    """Sessions started with ``POST /sessions/next`` are still listed as pending."""

    path = "/sessions/(next|pending)"

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self.started: list[str] = []

    def matches(self, scope: Scope) -> bool:
        return scope["type"] == "http" and re.fullmatch(self.path, scope["path"]) is not None

    async def handle(self, scope: Scope, body: bytes, send: Any) -> None:
        status, headers, out = await call(self.app, scope, body)
        if status == 200 and scope["path"].endswith("/next"):
            self.started.append(json.loads(out)["SessionID"])
        elif status == 200:
            listing = json.loads(out)
            listing["Sessions"] += [{"SessionID": s, "State": "pending"} for s in self.started]
            out = json.dumps(listing).encode()
        await answer(send, status, out, headers)


class LeakyDevices(Breakage):
    """``GET /devices`` also lists every other account's devices."""

    method, path = "GET", "/devices"

    def __init__(self, app: ASGIApp, accounts: list[tuple[str, str]]) -> None:
        super().__init__(app)
        self.accounts = accounts

    async def handle(self, scope: Scope, body: bytes, send: Any) -> None:
        scope = _with_header(scope, b"accept", b"application/json")
        status, headers, out = await call(self.app, scope, body)
        if status == 200:
            listing = json.loads(out)
            for name, password in self.accounts:
                auth = b"Basic " + base64.b64encode(f"{name}:{password}".encode())
                _, _, theirs = await call(
                    self.app, _with_header(scope, b"authorization", auth), b""
                )
                listing["Devices"] += json.loads(theirs)["Devices"]
            out = json.dumps(listing).encode()
        await answer(send, status, out, headers)


class NoNotifications(Breakage):
    """``GET /notifications`` never delivers: the server does not notify."""

    method, path = "GET", "/notifications"

    async def handle(self, scope: Scope, body: bytes, send: Any) -> None:
        await answer(send, 204)


class BadDigest(Breakage):
    """Notifications arrive with their last digest byte flipped."""

    method, path = "GET", "/notifications"

    async def handle(self, scope: Scope, body: bytes, send: Any) -> None:
        status, headers, out = await call(self.app, scope, body)
        if status == 200:
            row = next(r for r in describe(out) if r["field"] == "SHA256-DIGEST")
            at = int(row["offset"]) + len(row["bytes"]) // 2 - 1
            out = out[:at] + bytes([out[at] ^ 1]) + out[at + 1 :]
        await answer(send, status, out, headers)


class AnyDevicesSession(Breakage):
    """An idle ``POST /sessions/next`` starts another device's pending session (one
    whose secret the wrapper saw in its registration answer)."""

    def __init__(self, app: ASGIApp, accounts: list[tuple[str, str]]) -> None:
        super().__init__(app)
        self.accounts = accounts
        self.secrets: dict[str, str] = {}

    def matches(self, scope: Scope) -> bool:
        return scope["type"] == "http" and (scope["method"], scope["path"]) in {
            ("POST", "/devices/new"),
            ("POST", "/sessions/next"),
        }

    async def handle(self, scope: Scope, body: bytes, send: Any) -> None:
        result = await call(self.app, scope, body)
        if scope["path"] == "/devices/new" and result[0] == 201:
            registered = json.loads(result[2])
            self.secrets[registered["devId"]] = registered["secret"]
        elif result[0] == 204:
            result = await self._steal(scope, _header(scope, b"omadm-devid").decode()) or result
        await reply(send, result)

    async def _steal(self, scope: Scope, mine: str) -> Answer | None:
        for name, password in self.accounts:
            auth = b"Basic " + base64.b64encode(f"{name}:{password}".encode())
            listing = {
                **scope,
                "method": "GET",
                "path": "/sessions/pending",
                "raw_path": b"/sessions/pending",
            }
            _, _, out = await call(self.app, _with_header(listing, b"authorization", auth), b"")
            for session in json.loads(out)["Sessions"]:
                other = session["DevID"]
                if other != mine and other in self.secrets:
                    path = f"/sessions/id/{session['SessionID']}"
                    start = {**scope, "path": path, "raw_path": path.encode()}
                    creds = b"Basic " + base64.b64encode(f"{other}:{self.secrets[other]}".encode())
                    start = _with_header(
                        _with_header(start, b"authorization", creds), b"omadm-devid", other.encode()
                    )
                    stolen = await call(self.app, start, b"")
                    if stolen[0] == 200:
                        return stolen
        return None
