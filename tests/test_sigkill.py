"""SIGKILL under load (issue 10): 50 devices run sessions against ``python -m dmlab
serve``; the server is killed at a random moment, restarted, and every answer it
had acknowledged is reconciled against what it kept. Zero sessions may be lost.

Acknowledged means: a registration answered 201, a queued session answered with
its id, a round answered with the next id, an END answered 204 with its result.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import signal
import ssl
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dmlab.device import VirtualDevice
from dmlab.store import State
from dmlab.store.sqlite import SQLiteStore

from helpers import START_TIMEOUT, Process

DEVICES = 50
OPERATOR = ("ops", "ops-password")
DEVINFO = "urn:oma:mo:oma-dm-devinfo:1.0"


@dataclass
class Acks:
    devices: set[str] = field(default_factory=set)
    queued: set[str] = field(default_factory=set)  # first ids of queued sessions
    ids: set[str] = field(default_factory=set)  # ids handed out for a next round
    completed: dict[str, str] = field(default_factory=dict)  # last id -> OMADM-Result
    devices_done: set[str] = field(default_factory=set)  # that finished a session

    async def hook(self, response: httpx.Response) -> None:
        """Every answer a device got: note what the server acknowledged."""
        request = response.request
        if request.method == "PUT" and response.status_code == 204:
            self.completed[request.url.path.rsplit("/", 1)[1]] = response.headers["omadm-result"]
        elif request.method in ("PUT", "POST") and response.status_code in (200, 201):
            await response.aread()
            self.ids.add(response.json()["SessionID"])


def serve(data: Path, port: int) -> tuple[Process, str]:
    """``serve`` on ``port`` (0: any free one), and its URL once it serves."""
    process = Process.start(
        "serve",
        "--port",
        str(port),
        "--data",
        str(data),
        "--account",
        ":".join(OPERATOR),
        cwd=data.parent,
    )
    return process, process.expect(r"dmlab serving (https://127\.0\.0\.1:\d+)", START_TIMEOUT)[1]


async def load(
    url: str, context: ssl.SSLContext, acks: Acks, stop: asyncio.Event, going: asyncio.Event
) -> None:
    limits = httpx.Limits(max_connections=60)
    timeout = httpx.Timeout(30.0)  # a loaded machine; the server must just not lose things
    async with (
        httpx.AsyncClient(
            base_url=url, verify=context, auth=OPERATOR, limits=limits, timeout=timeout
        ) as ops,
        httpx.AsyncClient(
            base_url=url,
            verify=context,
            limits=limits,
            timeout=timeout,
            event_hooks={"response": [acks.hook]},
        ) as shared,
    ):

        async def register(n: int) -> VirtualDevice:
            dev_id = f"IMEI:{350000000000000 + n}"
            registered = await ops.post("/devices/new", json={"devId": dev_id})
            assert registered.status_code == 201, registered.text
            acks.devices.add(dev_id)
            return VirtualDevice(dev_id, registered.json()["secret"], url, client=shared)

        async def run(device: VirtualDevice) -> None:
            while not stop.is_set():
                queued = await ops.post(
                    f"/devices/{device.dev_id}/sessions",
                    json={"CMD": [["GET", f"{DEVINFO}//DevInfo/FwV"], ["END"]], "notify": False},
                )
                if queued.status_code == 202:
                    acks.queued.add(queued.json()["SessionID"])
                if await device.start_next() is not None:
                    acks.devices_done.add(device.dev_id)
                    if len(acks.devices_done) == DEVICES:
                        going.set()

        devices = await asyncio.gather(*(register(n) for n in range(DEVICES)))
        tasks = [asyncio.create_task(run(device)) for device in devices]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_no_acknowledged_session_is_lost_to_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server, url = serve(data, 0)
    context = ssl.create_default_context(cafile=str(data / "ca.pem"))
    acks = Acks()

    async def run() -> None:
        stop, going = asyncio.Event(), asyncio.Event()
        loader = asyncio.create_task(load(url, context, acks, stop, going))
        # A random moment once every device has run a session: some answered,
        # some in flight.
        await asyncio.wait(
            {loader, asyncio.ensure_future(going.wait())}, return_when="FIRST_COMPLETED"
        )
        if loader.done():
            loader.result()  # registration failed: say why
        await asyncio.sleep(random.uniform(0.0, 1.5))
        os.kill(server.popen.pid, signal.SIGKILL)
        server.popen.wait()
        stop.set()
        await loader

    try:
        with warnings.catch_warnings():
            # Requests cut off by the kill leave transports for the collector: say
            # nothing of them here, rather than in whichever test runs next.
            warnings.simplefilter("ignore", ResourceWarning)
            asyncio.run(asyncio.wait_for(run(), 60))
            gc.collect()
    finally:
        if server.popen.poll() is None:
            server.popen.kill()
        server.popen.wait()
        server.close()
    assert len(acks.devices) == DEVICES and acks.completed and acks.queued

    # Restarted: it starts cleanly on what the killed one left …
    # (on the port it had, as a restarted server would be)
    restarted, _ = serve(data, int(url.rsplit(":", 1)[1]))
    try:
        with httpx.Client(base_url=url, verify=context, auth=OPERATOR) as ops:
            completed, following = [], "/sessions/completed"
            while following:  # every page (lab choice paging)
                page = ops.get(following).json()
                completed += page["Sessions"]
                following = page.get("Next")
    finally:
        assert restarted.terminate() == 0
    listed = {i for s in completed for i in s["IDs"]}
    assert set(acks.completed) <= listed

    # … and every acknowledged answer is there.
    with SQLiteStore(data / "dmlab.sqlite3") as store:
        lost_devices = [d for d in acks.devices if store.get_device(d) is None]
        lost = [i for i in acks.queued | acks.ids if store.session_by_id(i) is None]
        wrong = {}
        for last_id, result in acks.completed.items():
            session = store.session_by_id(last_id)
            if session is None or session.state is not State.COMPLETED or session.result != result:
                wrong[last_id] = session
    assert (lost_devices, lost, wrong) == ([], [], {})
    print(
        f"reconciled {len(acks.devices)} devices, {len(acks.queued)} queued sessions, "
        f"{len(acks.ids)} round ids, {len(acks.completed)} completed: none lost"
    )

    # Finding 10: the data directory and the database files are owner-only.
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("dmlab.sqlite3", "dmlab.sqlite3-wal", "dmlab.sqlite3-shm"):
        if (data / name).exists():
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
