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
