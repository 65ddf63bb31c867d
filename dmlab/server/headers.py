"""Headers every answer needs, added in one place as the answer goes out.

- ``X-Content-Type-Options: nosniff`` on everything: a body is what its type says.
- On HTML, a Content-Security-Policy that allows only what the pages use (one inline
  stylesheet, known by its hash; forms posting back here) and no framing at all.
- ``Vary: Accept`` on every answer whose form was negotiated (``negotiate()`` marks it).
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .pages import template_source


def _style_hash() -> str:
    """The CSP source for the pages' one inline ``<style>`` (base.html), computed from the
    template itself so an edited stylesheet stays allowed."""
    found = re.search(r"<style>(.*?)</style>", template_source("base.html"), re.S)
    assert found, "base.html has its stylesheet inline"
    digest = hashlib.sha256(found.group(1).encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        f"style-src {_style_hash()}",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)


def add_standard_headers(headers: MutableHeaders, *, negotiated: bool) -> None:
    """Idempotent: also applied to the 500 answer, which Starlette sends from outside
    every middleware."""
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if headers.get("content-type", "").startswith("text/html"):
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    vary = [v.strip().lower() for v in headers.get("vary", "").split(",")]
    if negotiated and "accept" not in vary:
        headers.add_vary_header("Accept")


class StandardHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                negotiated = bool(scope.get("state", {}).get("vary_accept"))
                add_standard_headers(MutableHeaders(scope=message), negotiated=negotiated)
            await send(message)

        await self.app(scope, receive, send_with_headers)
