"""The runtime plumbing against real sockets, real TLS and real threads."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import stat
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from dmlab.runtime import LabCA, LoopThread, ServerThread


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"hello {request.url.scheme} {request.app.state.greeting}")


def make_app(shut_down: list[str] | None = None) -> Starlette:
    """The hello app; its lifespan shutdown is noted in `shut_down` (skipped on a forced exit)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.greeting = "from lifespan"
        yield
        if shut_down is not None:
            shut_down.append("lifespan")

    return Starlette(routes=[Route("/", hello)], lifespan=lifespan)


@pytest.fixture(scope="module")
def ca() -> LabCA:
    return LabCA.create()


@pytest.fixture
def server(ca: LabCA) -> Iterator[ServerThread]:
    with ServerThread(make_app(), ca) as server:
        yield server


def dmlab_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dmlab-")]


@pytest.fixture(autouse=True)
def no_lingering_threads() -> Iterator[None]:
    yield
    assert dmlab_threads() == []


# --- ServerThread -------------------------------------------------------------------------------


def test_serves_https_to_a_client_that_trusts_the_lab_ca(server: ServerThread, ca: LabCA) -> None:
    with httpx.Client(verify=ca.client_context()) as client:
        response = client.get(server.url + "/")
    assert response.status_code == 200
    assert response.text == "hello https from lifespan"  # lifespan ran, and TLS was used
    assert server.url == f"https://127.0.0.1:{server.port}"


def test_localhost_name_is_covered_too(server: ServerThread, ca: LabCA) -> None:
    with httpx.Client(verify=ca.client_context()) as client:
        assert client.get(f"https://localhost:{server.port}/").status_code == 200


def test_client_without_the_lab_ca_fails_verification(server: ServerThread) -> None:
    with httpx.Client() as client:  # certifi's roots only
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(server.url)


def test_other_ca_fails_verification(server: ServerThread) -> None:
    with httpx.Client(verify=LabCA.create().client_context()) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(server.url)


def test_plain_http_gets_no_http_answer(server: ServerThread) -> None:
    # The TLS handshake fails on the server, which closes the connection without a byte.
    with httpx.Client() as client:
        with pytest.raises(
            httpx.RemoteProtocolError, match="disconnected without sending a response"
        ):
            client.get(f"http://127.0.0.1:{server.port}/")


def test_plain_http_raw_socket_sees_no_http_bytes(server: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(4096):
                received += chunk
    assert not received.startswith(b"HTTP/")


def test_port_is_the_bound_port(server: ServerThread, ca: LabCA) -> None:
    assert server.port != 0
    # Whatever is listening there speaks TLS with our certificate.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with ca.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_two_servers_at_once(ca: LabCA) -> None:
    with ServerThread(make_app(), ca) as one, ServerThread(make_app(), ca) as two:
        assert one.port != two.port
        with httpx.Client(verify=ca.client_context()) as client:
            assert client.get(one.url).status_code == 200
            assert client.get(two.url).status_code == 200
        assert len(dmlab_threads()) == 2


def test_explicit_port(ca: LabCA) -> None:
    with socket.socket() as probe:  # find a free port, then let it go
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with ServerThread(make_app(), ca, port=port) as server:
        assert server.port == port


def test_busy_port_raises_naming_the_port(ca: LabCA) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = ServerThread(make_app(), ca, port=port)
        with pytest.raises(RuntimeError, match=f"127.0.0.1:{port}"):
            server.start()
    assert dmlab_threads() == []
    server.stop()  # nothing to stop: still fine


def test_port_held_by_another_server_thread(server: ServerThread, ca: LabCA) -> None:
    with pytest.raises(RuntimeError, match=str(server.port)):
        ServerThread(make_app(), ca, port=server.port).start()
    assert len(dmlab_threads()) == 1


def test_failed_lifespan_startup_raises_and_leaves_no_thread(ca: LabCA) -> None:
    @contextlib.asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise ValueError("no database")
        yield

    server = ServerThread(Starlette(lifespan=broken), ca, lifespan="on", log_level="critical")
    with pytest.raises(RuntimeError, match=r"stopped during startup \(SystemExit"):
        server.start()
    assert not server.running


def burn_cpu(seconds: float) -> None:
    """Keep the calling thread on a core for ``seconds`` of its own CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def burn(request: Request) -> PlainTextResponse:
    burn_cpu(0.05)
    return PlainTextResponse("burnt")


def test_cpu_seconds_is_the_serving_threads_alone(ca: LabCA) -> None:
    """benchmarks/sessions.py splits its process's CPU with it: the server's part and
    the clients' part must not leak into each other."""
    server = ServerThread(Starlette(routes=[Route("/burn", burn)]), ca)
    with pytest.raises(RuntimeError, match="not running"):
        server.cpu_seconds()
    with server:
        before = server.cpu_seconds()
        burn_cpu(0.05)  # this thread's CPU, not the server's
        idle = server.cpu_seconds() - before
        with httpx.Client(verify=ca.client_context()) as client:
            assert client.get(server.url + "/burn").text == "burnt"
        busy = server.cpu_seconds() - before - idle
    assert idle < 0.025 <= 0.05 <= busy
    with pytest.raises(RuntimeError, match="not running"):
        server.cpu_seconds()


def test_stop_is_idempotent_and_joins(ca: LabCA) -> None:
    server = ServerThread(make_app(), ca).start()
    (thread,) = dmlab_threads()
    server.stop()
    assert not thread.is_alive()
    server.stop()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


def test_stop_with_an_open_keep_alive_connection(ca: LabCA) -> None:
    shut_down: list[str] = []
    server = ServerThread(make_app(shut_down), ca).start()
    with httpx.Client(verify=ca.client_context()) as client:
        assert client.get(server.url).status_code == 200
        # The idle connection is still open on the client side. It is aborted after a short
        # grace, so the shutdown stays graceful (the lifespan ends) rather than being forced
        # (which skips the lifespan) after a generous wait.
        server.stop(timeout=30)
    assert not server.forced
    assert shut_down == ["lifespan"]
    assert dmlab_threads() == []


def slow_app(entered: threading.Event, release: threading.Event, shut_down: list[str]) -> Starlette:
    async def slow(request: Request) -> PlainTextResponse:
        entered.set()
        while not release.is_set():  # a thread-safe event, looked at from the server's loop
            await asyncio.sleep(0.01)
        return PlainTextResponse("finished")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        shut_down.append("lifespan")

    return Starlette(routes=[Route("/", slow)], lifespan=lifespan)


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_stop_lets_a_request_in_flight_finish(ca: LabCA) -> None:
    entered, release, shut_down = threading.Event(), threading.Event(), []
    server = ServerThread(slow_app(entered, release, shut_down), ca).start()
    port = server.port
    with LoopThread() as lt, httpx.Client(verify=ca.client_context()) as client:
        pending = lt.submit(asyncio.to_thread(client.get, server.url))
        assert entered.wait(30), "the request never reached the app"
        stopping = lt.submit(asyncio.to_thread(server.stop, 60))
        # uvicorn closes its listening socket when the shutdown begins: only then may the
        # request finish, so it is surely still in flight while the server shuts down.
        deadline = time.monotonic() + 30
        while not refuses_connections(port):
            assert time.monotonic() < deadline, "the server never began to shut down"
            time.sleep(0.01)
        release.set()
        assert pending.result(timeout=30).text == "finished"
        stopping.result(timeout=90)
    assert shut_down == ["lifespan"]


def test_stop_forces_a_request_that_never_finishes(ca: LabCA) -> None:
    entered, release, shut_down = threading.Event(), threading.Event(), []
    server = ServerThread(slow_app(entered, release, shut_down), ca).start()
    with LoopThread() as lt, httpx.Client(verify=ca.client_context()) as client:
        pending = lt.submit(asyncio.to_thread(client.get, server.url))
        assert entered.wait(30), "the request never reached the app"
        server.stop(timeout=0.3)  # the request never finishes: any grace runs out
        with pytest.raises(httpx.RemoteProtocolError):
            pending.result(timeout=30)
    assert server.forced
    assert shut_down == []  # uvicorn skips the lifespan shutdown on force_exit
    release.set()


def test_can_restart_after_stop(ca: LabCA) -> None:
    server = ServerThread(make_app(), ca)
    for _ in range(2):
        with server:
            with httpx.Client(verify=ca.client_context()) as client:
                assert client.get(server.url).status_code == 200


def test_start_twice_refused(server: ServerThread) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        server.start()


def test_requires_a_lab_ca() -> None:
    with pytest.raises(TypeError, match="LabCA"):
        ServerThread(make_app(), None)  # type: ignore[arg-type]


def test_works_from_inside_a_running_loop(ca: LabCA) -> None:
    # A Jupyter kernel calls us from a coroutine on its own running loop.
    async def cell() -> str:
        with ServerThread(make_app(), ca) as server:
            async with httpx.AsyncClient(verify=ca.client_context()) as client:
                response = await client.get(server.url)
        return response.text

    assert asyncio.run(cell()) == "hello https from lifespan"


# --- LabCA --------------------------------------------------------------------------------------


def test_contexts(ca: LabCA) -> None:
    server_ctx, client_ctx = ca.server_context(), ca.client_context()
    assert server_ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert client_ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert client_ctx.check_hostname and client_ctx.verify_mode == ssl.CERT_REQUIRED
    assert len(client_ctx.get_ca_certs()) == 1  # the lab CA only, no system roots


def test_load_or_create_keeps_the_ca(tmp_path: Path) -> None:
    first = LabCA.load_or_create(tmp_path / "data")
    files = {
        name: (tmp_path / "data" / name).read_bytes()
        for name in ("ca.pem", "ca-key.pem", "server.pem")
    }
    second = LabCA.load_or_create(tmp_path / "data")
    assert first.ca_pem == second.ca_pem == files["ca.pem"]
    assert {
        name: (tmp_path / "data" / name).read_bytes() for name in files
    } == files  # nothing regenerated
    for name in ("ca-key.pem", "server.pem"):
        assert stat.S_IMODE((tmp_path / "data" / name).stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "data").iterdir() if p.name.startswith(".")] == []


def test_client_with_old_ca_file_trusts_restarted_server(tmp_path: Path) -> None:
    ca_file = LabCA.load_or_create(tmp_path).write_ca(tmp_path / "exported-ca.pem")
    restarted = LabCA.load_or_create(tmp_path)
    client_ctx = ssl.create_default_context(cafile=ca_file)
    with ServerThread(make_app(), restarted) as server:
        with httpx.Client(verify=client_ctx) as client:
            assert client.get(server.url).status_code == 200


def test_load_or_create_reissues_server_cert_for_new_hosts(tmp_path: Path) -> None:
    first = LabCA.load_or_create(tmp_path)
    old_server = (tmp_path / "server.pem").read_bytes()
    second = LabCA.load_or_create(tmp_path, hosts=("127.0.0.1", "localhost", "dmlab.test"))
    assert second.ca_pem == first.ca_pem
    assert (tmp_path / "server.pem").read_bytes() != old_server


def test_load_or_create_refuses_half_a_ca(tmp_path: Path) -> None:
    LabCA.load_or_create(tmp_path)
    (tmp_path / "ca-key.pem").unlink()
    with pytest.raises(RuntimeError, match=r"ca-key\.pem"):
        LabCA.load_or_create(tmp_path)
    assert not (tmp_path / "ca-key.pem").exists()


# --- LoopThread ---------------------------------------------------------------------------------


async def add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


async def fail() -> None:
    raise ValueError("device exploded")


def test_loop_thread_runs_coroutines() -> None:
    with LoopThread() as lt:
        assert lt.run(add(1, 2)) == 3
        assert lt.run(asyncio.sleep(0, "in thread")) == "in thread"
        thread_name = lt.run(_thread_name())
    assert thread_name == "dmlab-loop"


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


async def _thread_name() -> str:
    return threading.current_thread().name


def test_loop_thread_propagates_exceptions() -> None:
    with LoopThread() as lt:
        with pytest.raises(ValueError, match="device exploded"):
            lt.run(fail())


def test_loop_thread_submit_returns_futures() -> None:
    with LoopThread() as lt:
        futures = [lt.submit(add(i, i)) for i in range(10)]
        assert [f.result(timeout=5) for f in futures] == [2 * i for i in range(10)]
        failing = lt.submit(fail())
        assert isinstance(failing.exception(timeout=5), ValueError)


def test_loop_thread_timeout_cancels() -> None:
    with LoopThread() as lt:
        cancelled = threading.Event()

        async def slow() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        with pytest.raises(TimeoutError):
            lt.run(slow(), timeout=0.05)
        assert cancelled.wait(5)


def test_loop_thread_refuses_run_from_its_own_thread() -> None:
    with LoopThread() as lt:

        async def reentrant() -> None:
            lt.run(add(1, 1))

        with pytest.raises(RuntimeError, match="own loop thread"):
            lt.run(reentrant())


def test_loop_thread_stop_cancels_pending_and_joins() -> None:
    lt = LoopThread().start()
    loop = lt.run(_running_loop())
    pending = lt.submit(asyncio.sleep(60))
    background_cancelled = threading.Event()

    async def background() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            background_cancelled.set()
            raise

    async def spawn() -> asyncio.Task[None]:  # a task of its own, as a device's executor makes
        return asyncio.get_running_loop().create_task(background())

    task = lt.run(spawn())
    (thread,) = dmlab_threads()
    lt.stop()
    assert not thread.is_alive()
    assert loop.is_closed()
    assert pending.cancelled()
    assert task.cancelled() and background_cancelled.is_set()
    lt.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        lt.run(add(1, 1))  # and the coroutine is closed, not left un-awaited


def test_loop_thread_used_from_inside_a_running_loop() -> None:
    async def cell() -> int:
        with LoopThread() as lt:
            return lt.run(add(20, 22))

    assert asyncio.run(cell()) == 42


def test_loop_thread_drives_requests_against_server_thread(server: ServerThread, ca: LabCA) -> None:
    async def devices(n: int) -> list[int]:
        async with httpx.AsyncClient(verify=ca.client_context()) as client:
            responses = await asyncio.gather(*(client.get(server.url) for _ in range(n)))
        return [r.status_code for r in responses]

    with LoopThread() as lt:
        assert lt.run(devices(20), timeout=10) == [200] * 20


def test_loop_thread_restarts_after_stop() -> None:
    lt = LoopThread()
    for _ in range(2):
        with lt:
            assert lt.run(add(1, 2)) == 3
        assert not lt.running
