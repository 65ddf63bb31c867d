"""A kept-alive connection closed under a request: why benchmarks/sessions.py once died
with ``httpx.RemoteProtocolError: Server disconnected without sending a response``.

uvicorn closes a connection idle for ``timeout_keep_alive`` seconds; httpx keeps an idle
pooled connection for ``keepalive_expiry`` seconds. Both were 5 s. A client whose
connection had been idle for just under its 5 s sent its next request on it as the
server's 5 s timer closed it: the request was lost without an answer. The benchmark
alternates dmlab and baseline rounds, so each side's connections sit idle for as long
as the other side's round takes, about 5 s on a loaded machine.

The two fixes, each tested here: the server keeps an idle connection longer than pooled
clients do (so the client retires it first), and the device sends an idempotent request
once more when its connection closes before an answer (RFC 9112 § 9.3.1.1), never a POST.
The race itself is reproduced deterministically by a server that closes the connection
on a chosen request instead of answering it.

A longer keep-alive then showed a second way a kept-alive connection was closed under a
client: the limits layer timed an idle connection as a slow request head once it had
answered a second request, and closed it with a 408 after ``header_timeout`` (10 s).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import h11
import httpx
import pytest

from dmlab.device import VirtualDevice
from dmlab.protocol import media
from dmlab.runtime import LabCA, ServerThread
from dmlab.runtime.limits import ConnectionLimits

DEV_ID = "IMEI:490154203237518"


def test_the_server_keeps_an_idle_connection_longer_than_pooled_clients_do() -> None:
    """So an httpx (5 s) or aiohttp (15 s) pool retires its connection before the server
    closes it, and never sends a request into a closing connection."""
    httpx_expiry = httpx.AsyncClient()._transport._pool._keepalive_expiry  # type: ignore[attr-defined]
    assert httpx_expiry is not None
    assert ConnectionLimits().keep_alive > max(httpx_expiry, 15.0)


async def client_port(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """Answers with the client's port: which connection the request came on."""
    if scope["type"] == "http":
        while (await receive()).get("more_body"):
            pass
        port = str(scope["client"][1]).encode()
        headers = [(b"content-length", str(len(port)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": port})


def test_an_idle_connection_is_not_timed_as_a_slow_head_after_several_answers() -> None:
    """Requests with a body, the head and the body in writes of their own (as httpx
    sends them), then a quiet connection: it stays open past the head timeout."""
    limits = ConnectionLimits(header_timeout=0.5, body_timeout=0.5, handshake_timeout=0.5)
    ca = LabCA.create()
    with ServerThread(client_port, ca, lifespan="off", limits=limits) as server:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=5.0)
        with ca.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            for _ in range(2):  # (the old code timed the idle after every second one)
                sock.sendall(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n")
                sock.sendall(b"{}")
                answer = b""
                while not answer.endswith(b"\r\n\r\n%d" % sock.getsockname()[1]):
                    answer += sock.recv(65536)  # the whole answer: head, and the port
                assert answer.startswith(b"HTTP/1.1 200 ")
            sock.settimeout(limits.header_timeout * 3)  # well past the head timeout
            with pytest.raises(TimeoutError):
                sock.recv(65536)  # neither a 408 nor a close: the keep-alive timer's turn


@dataclass
class DroppingServer:
    """Plain HTTP/1.1 that answers like a DM server, except that it closes the
    connection without an answer on the requests ``drop`` picks: what a client sees
    when the server's keep-alive timer closes the connection as its request arrives."""

    drop: Callable[[int, str], bool]  # (request number on this connection, method)
    seen: list[str] = field(default_factory=list)
    url: str = ""

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        number = 0
        try:
            while True:
                request: h11.Request | None = None
                while True:  # one whole request
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await reader.read(65536)
                        if not data:
                            return
                        conn.receive_data(data)
                    elif isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.EndOfMessage):
                        break
                assert request is not None
                number += 1
                method = request.method.decode()
                self.seen.append(f"{method} {request.target.decode()}")
                if self.drop(number, method):
                    return  # closed without an answer
                status, headers, body = self.answer(method)
                writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
                writer.write(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                await writer.drain()
                conn.start_next_cycle()
        finally:
            writer.close()

    @staticmethod
    def answer(method: str) -> tuple[int, list[tuple[str, str]], bytes]:
        if method == "POST":  # package 2: one command
            body = json.dumps({"SessionID": "s1", "CMD": [["GET", "./DevInfo/Man"]]}).encode()
            return (
                200,
                [
                    ("Content-Type", media.COMMANDS),
                    ("Location", "/sessions/id/s1"),
                    ("Content-Length", str(len(body))),
                ],
                body,
            )
        if method == "PUT":  # the statuses: the session ends
            return 204, [("OMADM-Result", "OK")], b""
        return 200, [("Content-Length", "2")], b"ok"


async def served(drop: Callable[[int, str], bool], device_does: Callable) -> DroppingServer:  # type: ignore[type-arg]
    """Run ``device_does(device)`` against a :class:`DroppingServer`; its log of requests."""
    dropping = DroppingServer(drop)
    server = await asyncio.start_server(dropping.connection, "127.0.0.1", 0)
    dropping.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    device = VirtualDevice(DEV_ID, "secret", dropping.url)
    try:
        await device_does(device)
    finally:
        await device.aclose()
        server.close()
        await server.wait_closed()
    return dropping


def test_a_put_whose_connection_closes_before_an_answer_is_sent_again() -> None:
    async def session(device: VirtualDevice) -> None:
        run = await device.fire_alert(trigger="test")
        assert run is not None and run.result == "OK"

    # The second request on a connection is dropped: the PUT after the POST /alert.
    server = asyncio.run(served(lambda number, _: number == 2, session))
    assert server.seen == ["POST /alert", "PUT /sessions/id/s1", "PUT /sessions/id/s1"]


def test_a_post_whose_connection_closes_before_an_answer_is_not_sent_again() -> None:
    """The server may have started the session: sending the alert again could start a
    second one. The device reports the failure instead."""

    async def alert_on_a_pooled_connection(device: VirtualDevice) -> None:
        assert await device.http_get("/firmware") == (200, b"ok", "")
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await device.fire_alert(trigger="test")

    server = asyncio.run(served(lambda _, method: method == "POST", alert_on_a_pooled_connection))
    assert server.seen == ["GET /firmware", "POST /alert"]
