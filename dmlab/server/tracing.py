"""ASGI middleware that records every exchange in the trace.

Routes annotate the exchange (who, which device, which session, one-line
summaries) through ``note()``; the middleware adds method, path and status once
the answer has gone out, so refusals are traced like everything else.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..trace import Trace
from .auth import Principal


class TraceMiddleware:
    def __init__(self, app: ASGIApp, trace: Trace) -> None:
        self.app = app
        self.trace = trace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        recorded = False
        arrived = self.trace.now()
        sizes = [0, 0]  # body bytes received, sent

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            state = scope.get("state", {})
            fields = state.get("trace", {})
            # Callers without valid credentials are sampled, not all kept: a flood
            # of them must not fill the trace (memory and disk) or push out the rest.
            keep = (
                self.trace.record
                if isinstance(state.get("auth"), Principal)
                else self.trace.record_unauthenticated
            )
            keep(
                source=fields.get("source", "unknown"),
                dev_id=fields.get("dev_id", ""),
                method=scope["method"],
                path=scope["path"],
                status=status,
                session=fields.get("session", ""),
                request=fields.get("request", ""),
                response=fields.get("response", "") or state.get("trace_response", ""),
                elapsed=max(self.trace.now() - arrived, 0.0),
                request_bytes=sizes[0],
                response_bytes=sizes[1],
            )

        async def receive_and_count() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                sizes[0] += len(message.get("body", b""))
            return message

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            # Record before the answer is complete on the wire: a client that has its
            # answer (and reads the trace next) must find the exchange there. An answer
            # without a body (204, 304, HEAD, Content-Length: 0) is complete with its
            # headers, so it is recorded before they go.
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", ()))
                if (
                    status in (204, 304)
                    or scope["method"] == "HEAD"
                    or headers.get(b"content-length") == b"0"
                ):
                    record()
            elif message["type"] == "http.response.body":
                sizes[1] += len(message.get("body", b""))
                if not message.get("more_body", False):
                    record()
            await send(message)

        try:
            await self.app(scope, receive_and_count, send_and_watch)
        finally:
            record()
