"""Background threads that keep async work off the caller's event loop.

A Jupyter kernel already runs an asyncio loop in its main thread, so neither `uvicorn.run()` nor
`asyncio.run()` can be called from a cell.  Each class here owns a private loop in a daemon
thread instead, and offers a blocking, thread-safe surface to the caller.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

import uvicorn
from anyio.from_thread import BlockingPortal, start_blocking_portal

from .limits import ConnectionLimits, install_log_limits
from .tls import LabCA

__all__ = ["LoopThread", "ServerThread"]

T = TypeVar("T")

#: The lab only listens on loopback: its certificate names 127.0.0.1 and localhost, nothing else.
HOST = "127.0.0.1"

# How often `start()` looks at the server while it comes up: short enough to be unnoticeable.
POLL_INTERVAL = 0.01

# How long a closing TLS connection may wait for the client's close_notify during shutdown. On
# loopback a client that answers does so within milliseconds; an idle pooled client never does.
TLS_CLOSE_GRACE = 0.25

# How long `ServerThread.stop()` waits once it has forced the exit. uvicorn notices within
# 0.1 s and aborts what is left, so this only matters on a machine under heavy load.
FORCED_EXIT_TIMEOUT = 10.0


class _LabServer(uvicorn.Server):
    """`uvicorn.Server` that does not wait on clients that never finish the TLS close.

    uvicorn closes idle keep-alive connections at shutdown, and asyncio then waits up to 30 s
    for the client's TLS close_notify.  An idle httpx pool (say, in a notebook) never sends it,
    so `stop()` would hang until `force_exit`, and the abandoned transports would be reported
    as unclosed when the loop is closed.  Connections still closing after a short grace are
    aborted instead; requests in flight are left to finish as uvicorn intends.
    """

    handshake_timeout = 60.0

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn passes no ssl_handshake_timeout to create_server (asyncio waits 60 s):
        # bound the handshake of the server this loop is about to create.
        loop = asyncio.get_running_loop()
        create = functools.partial(loop.create_server, ssl_handshake_timeout=self.handshake_timeout)
        setattr(loop, "create_server", create)  # noqa: B010 - an instance attribute, removed below
        try:
            await super().startup(sockets)
        finally:
            delattr(loop, "create_server")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        reaper = asyncio.create_task(self._abort_stuck_connections())
        try:
            await super().shutdown(sockets)
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
        # After `force_exit`, whatever is left goes too: no transport outlives the loop.
        for transport in self._transports():
            transport.abort()
        await asyncio.sleep(0)  # let the resulting connection_lost callbacks run

    async def _abort_stuck_connections(self) -> None:
        closing: set[asyncio.Transport] = set()
        while True:
            await asyncio.sleep(TLS_CLOSE_GRACE)
            if self.force_exit:
                # Forced: no connection is waited for. uvicorn still awaits
                # `asyncio.Server.wait_closed()`, which on Python 3.12+ waits for every
                # connection, so one left open (a request that never ends) would hang it.
                for transport in self._transports():
                    transport.abort()
                continue
            now_closing = {t for t in self._transports() if t.is_closing()}
            for transport in now_closing & closing:  # closing for at least one full grace period
                transport.abort()
            closing = now_closing

    def _transports(self) -> list[asyncio.Transport]:
        transports = (getattr(c, "transport", None) for c in list(self.server_state.connections))
        return [t for t in transports if t is not None]


class ServerThread:
    """An ASGI app served over HTTPS by a real `uvicorn.Server` in a daemon thread.

    Real sockets and real TLS, so what the lab shows is what a device would see on the wire.
    The listening socket is bound in `start()`, in the caller's thread: a busy port is reported
    right there, rather than as a `sys.exit` inside uvicorn's thread.
    """

    def __init__(
        self,
        app: Any,
        ca: LabCA,
        *,
        port: int = 0,
        lifespan: Literal["auto", "on", "off"] = "auto",
        log_level: str = "warning",
        name: str = "dmlab-server",
        limits: ConnectionLimits | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        """``sock``: a listening socket to serve on instead of binding ``port`` (a
        worker of ``serve --workers``, handed its parent's socket)."""
        if not isinstance(ca, LabCA):
            # Without a CA there is no TLS, and plain HTTP is never served.
            raise TypeError(f"ServerThread needs a LabCA, got {type(ca).__name__}")
        self.app = app
        self.ca = ca
        self.name = name
        self._requested_port = port
        self._lifespan = lifespan
        self._log_level = log_level
        self.limits = limits or ConnectionLimits()
        self._server: _LabServer | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._given = sock
        self._port: int | None = None
        self._error: BaseException | None = None
        #: Whether the last `stop()` had to force the exit: a connection or the lifespan held it.
        self.forced = False

    @property
    def port(self) -> int:
        """The port actually bound (the kernel picks one when constructed with `port=0`)."""
        if self._port is None:
            raise RuntimeError("the server is not running: call start() first")
        return self._port

    @property
    def url(self) -> str:
        """The base URL, e.g. `https://127.0.0.1:50123`; there is never an `http://` one."""
        return f"https://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def cpu_seconds(self) -> float:
        """The CPU time the serving thread has used so far, while it runs (a benchmark's
        split of its process's CPU between the server and its clients)."""
        ident = self._thread.ident if self._thread is not None and self.running else None
        if ident is None:
            raise RuntimeError(f"{self.name} is not running")
        return time.clock_gettime(time.pthread_getcpuclockid(ident))

    def start(self, timeout: float = 10.0) -> ServerThread:
        """Bind, serve in a new thread, and return once uvicorn accepts connections."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already running on port {self._port}")
        sock = self._given if self._given is not None else bind(HOST, self._requested_port)
        config = uvicorn.Config(
            self.app,
            ssl_context_factory=self._ssl_context,
            lifespan=self._lifespan,
            log_level=self._log_level,
            access_log=False,
            **self.limits.uvicorn_options(),
        )
        config.load()  # here, not in the thread: a bad app or certificate raises in the caller
        if config.ssl is None:  # pragma: no cover - the factory above always provides one
            sock.close()
            raise RuntimeError("refusing to serve without TLS")

        install_log_limits()
        self._server = _LabServer(config)
        self._server.handshake_timeout = self.limits.handshake_timeout
        self._socket = sock
        self._port = sock.getsockname()[1]
        self._error = None
        self._thread = threading.Thread(
            target=self._run, name=f"{self.name}:{self._port}", daemon=True
        )
        self._thread.start()

        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                port, error = self._port, self._error
                self._cleanup()
                raise RuntimeError(
                    f"{self.name} on port {port} stopped during startup ({error!r})"
                ) from error
            if time.monotonic() > deadline:
                port = self._port
                self.stop()
                raise RuntimeError(f"{self.name} on port {port} did not start within {timeout} s")
            time.sleep(POLL_INTERVAL)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to shut down gracefully for `timeout` s, then force it; idempotent."""
        thread, server = self._thread, self._server
        if thread is None or server is None:
            return
        server.should_exit = True
        thread.join(timeout)
        self.forced = thread.is_alive()
        if self.forced:
            # Open connections or a slow lifespan shutdown: stop waiting for them.
            server.force_exit = True
            thread.join(FORCED_EXIT_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(
                f"{self.name} on port {self._port} did not stop within"
                f" {timeout + FORCED_EXIT_TIMEOUT} s"
            )
        self._cleanup()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not running"
        return f"<{type(self).__name__} {self.name} {where}>"

    def _ssl_context(
        self, config: uvicorn.Config, default: Callable[[], ssl.SSLContext]
    ) -> ssl.SSLContext:
        # uvicorn calls this with its default factory, which needs certificate files; the lab CA
        # builds the context from memory instead.  ALPN mirrors what uvicorn would set.
        context = self.ca.server_context()
        alpn: list[str] | None = getattr(config.http_protocol_class, "alpn_protocols", None)
        if alpn:
            context.set_alpn_protocols(alpn)
        return context

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            # `Server.run` makes a fresh event loop in this thread; the caller's loop is untouched.
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # uvicorn reports a failed lifespan startup with sys.exit
            self._error = exc
        finally:
            self._socket.close()

    def _cleanup(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self._port = None


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (a busy port raises ``RuntimeError`` with one clear line)."""
    # IPPROTO_TCP, not 0: accepted sockets inherit the protocol, and asyncio sets
    # TCP_NODELAY only on sockets that say they are TCP. Without it, Nagle's
    # algorithm meets the client's delayed ACK and every TLS answer waits ~40 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if os.name == "posix":
            # Lets a restarted standalone server reuse its port while old connections sit in
            # TIME_WAIT; a port with a live listener is still refused.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()  # listening now makes "busy" certain; asyncio only adjusts the backlog
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


class LoopThread:
    """An event loop in a daemon thread, reached through anyio's blocking portal.

    Device simulations are coroutines; running them here keeps them alive between notebook cells
    and off the kernel's own loop, which must stay free to handle messages and widgets.
    """

    def __init__(self, name: str = "dmlab-loop") -> None:
        self.name = name
        self._portal: BlockingPortal | None = None
        self._thread: threading.Thread | None = None
        self._exit = contextlib.ExitStack()
        # Orders submissions against `stop()`: nothing is scheduled on a loop that will not run it.
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> LoopThread:
        with self._lock:
            if self._portal is not None:
                raise RuntimeError(f"{self.name} is already running")
            self._portal = self._exit.enter_context(start_blocking_portal(name=self.name))
            self._thread = self._portal.call(threading.current_thread)
        return self

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule `coro` on the loop; the returned future can be waited on from any thread,
        and cancelling it cancels the coroutine."""
        with self._lock:
            if self._portal is None:
                coro.close()  # never awaited: close it so Python does not warn about it
                raise RuntimeError(f"{self.name} is not running: call start() first")
            return self._portal.start_task_soon(_awaited, coro)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop and block until its result; its exception is re-raised here.

        On timeout the coroutine is cancelled and `TimeoutError` raised.
        """
        if self._thread is not None and threading.current_thread() is self._thread:
            coro.close()
            # Blocking the loop's own thread while waiting for that loop would hang forever.
            raise RuntimeError(
                f"{self.name}.run() called from its own loop thread: await the coroutine instead"
            )
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel whatever is still pending, close the loop and join the thread; idempotent."""
        with self._lock:
            portal, thread = self._portal, self._thread
            self._portal = self._thread = None
        if portal is None or thread is None:
            return
        portal.start_task_soon(portal.stop, True)  # cancel_remaining: the portal's tasks end
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(
                f"{self.name} did not stop within {timeout} s (a callback is blocking its loop)"
            )
        self._exit.close()  # the portal's own exit: its thread has ended already

    def __enter__(self) -> LoopThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {'running' if self.running else 'stopped'}>"


async def _awaited(coro: Coroutine[Any, Any, T]) -> T:
    return await coro
