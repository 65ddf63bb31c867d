"""Connection limits (issue 10, finding 3 and the wire part of 10): slow heads and
bodies are closed, a connection over the cap is refused cleanly, a flood of one
fault is one log line, Content-Length + Transfer-Encoding closes, bare LF is refused.

The limits are set to a fraction of a second here; each test waits for the
server to act with a generous socket timeout as the upper bound, never a sleep
that orders events."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from dmlab.runtime import LabCA, ServerThread
from dmlab.runtime.limits import ConnectionLimits, OncePerMinute

LIMITS = ConnectionLimits(
    header_timeout=0.5, body_timeout=0.5, handshake_timeout=0.5, max_connections=4
)
#: How long a test waits for the server to act: far above every limit above.
PATIENCE = 5.0


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """Reads the body, then answers; ``/slow`` takes longer than every limit."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await asyncio.sleep(1.2)
    answer = b"got %d bytes" % len(body)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(answer)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def ca() -> LabCA:
    return LabCA.create()


@pytest.fixture(scope="module")
def server(ca: LabCA) -> Iterator[ServerThread]:
    with ServerThread(app, ca, lifespan="off", limits=LIMITS) as running:
        yield running


def tls(server: ServerThread, ca: LabCA) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE)
    return ca.client_context().wrap_socket(raw, server_hostname="127.0.0.1")


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (fails the test if it does not in time)."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def answer(sock: socket.socket) -> bytes:
    """One complete answer (head and Content-Length body) on a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_the_defaults_close_a_slowloris_within_15_seconds() -> None:
    limits = ConnectionLimits()
    assert max(limits.header_timeout, limits.body_timeout, limits.handshake_timeout) <= 15


def test_a_connection_that_never_sends_a_request_is_closed(server, ca) -> None:
    with tls(server, ca) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""  # closed, without an answer nobody asked for
        assert time.monotonic() - started < PATIENCE


def test_a_half_sent_head_is_answered_408(server, ca) -> None:
    with tls(server, ca) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 408 ")


def test_an_idle_kept_alive_connection_is_left_to_the_keep_alive_timer(server, ca) -> None:
    """After an answer, a quiet connection is not timed as a slow head (a pooled
    client would race a 408 with its next request); a new head is."""
    with tls(server, ca) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer(sock).startswith(b"HTTP/1.1 200 ")
        sock.settimeout(LIMITS.header_timeout * 3)  # well past the head timeout
        with pytest.raises(TimeoutError):
            sock.recv(65536)  # still open: keep-alive (5 s) has not expired
        sock.settimeout(PATIENCE)
        sock.sendall(b"GET / HTTP/1.1\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 408 ")


def test_a_slowloris_head_is_closed_though_it_keeps_sending(server, ca) -> None:
    with tls(server, ca) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(0.1)
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < PATIENCE and not closed:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                closed = sock.recv(65536) == b""  # data means the 408, then EOF
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                closed = True
            else:
                closed = True
        assert closed, "the slow head was never closed"


def test_a_slow_body_is_closed(server, ca) -> None:
    with tls(server, ca) as sock:
        sock.sendall(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        started = time.monotonic()
        assert read_all(sock) == b""  # no answer: the body never came
        assert time.monotonic() - started < PATIENCE


def test_a_handshake_that_never_starts_is_closed(server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE) as raw:
        started = time.monotonic()
        assert read_all(raw) == b""
        assert time.monotonic() - started < PATIENCE


def test_a_slow_answer_is_not_a_slow_client(server, ca) -> None:
    """The limits time the client, not the app: a long-poll outlives them."""
    with tls(server, ca) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        slow = answer(sock)
        assert slow.startswith(b"HTTP/1.1 200 ") and slow.endswith(b"got 0 bytes")
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        assert answer(sock).endswith(b"got 3 bytes")  # still kept alive


def test_a_connection_over_the_cap_is_refused_with_a_problem(server, ca) -> None:
    held = [tls(server, ca) for _ in range(LIMITS.max_connections)]
    try:
        for sock in held:  # each is open and served (uvicorn has counted it)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert answer(sock).startswith(b"HTTP/1.1 200 ")
        with tls(server, ca) as extra:
            refused = read_all(extra)
        assert refused.startswith(b"HTTP/1.1 503 ")
        assert b"Retry-After: 5" in refused and b'"type":"about:blank"' in refused
    finally:
        for sock in held:
            sock.close()


def test_content_length_with_transfer_encoding_closes_the_connection(server, ca) -> None:
    with tls(server, ca) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )
        closed = read_all(sock)  # returns: the server closed after answering
        assert closed.startswith(b"HTTP/1.1 200 ") and b"connection: close" in closed.lower()
        assert closed.endswith(b"got 3 bytes")  # read by Transfer-Encoding


@pytest.mark.parametrize(
    "head",
    [b"GET / HTTP/1.1\nHost: x\n\n", b"GET / HTTP/1.1\r\nHost: x\n\r\n"],
    ids=["all bare", "one bare"],
)
def test_bare_lf_is_refused(server, ca, head: bytes) -> None:
    with tls(server, ca) as sock:
        sock.sendall(head)
        assert read_all(sock).startswith(b"HTTP/1.1 400 ")


def test_a_head_split_across_reads_is_not_mistaken_for_bare_lf(server, ca) -> None:
    with tls(server, ca) as sock:
        for part in (b"GET / HTTP/1.1\r", b"\nHost: x\r", b"\n\r", b"\n"):
            sock.sendall(part)
        assert answer(sock).startswith(b"HTTP/1.1 200 ")


def test_a_flood_of_one_fault_is_one_line_a_minute() -> None:
    logger = logging.getLogger("test.flood")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    limiter = OncePerMinute()
    logger.addHandler(handler)
    logger.addFilter(limiter)
    try:
        for n in range(10_000):
            logger.error("socket.accept() out of system resource\nsocket: <fd=%d>", n)
        logger.error("another kind of fault")
        assert [r.getMessage().split("\n")[0] for r in records] == [
            "socket.accept() out of system resource",
            "another kind of fault",
        ]
    finally:
        logger.removeHandler(handler)
        logger.removeFilter(limiter)
