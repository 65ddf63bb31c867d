"""The end-to-end suite against ``python -m dmlab serve --database postgresql://…
--workers 2``: a module marked ``on_workers`` runs its tests twice, against the
in-process lab and against two server processes on one PostgreSQL database, whose
kernel hands each connection to either. Only what the tests use of a :class:`Lab` is
here: operators and virtual devices talk HTTPS to the servers; accounts are written
straight into the shared database, as ``serve --account`` would.

A test that needs what only an in-process lab has (its trace, its services, a
notification handed to an attached device) is marked ``in_process`` with the reason.
"""

from __future__ import annotations

import ssl
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dmlab.device import Behaviour, VirtualDevice
from dmlab.runtime.lab import DEFAULT_ACCOUNT, Device, Operator
from dmlab.runtime.threads import LoopThread
from dmlab.server import Services, build_services
from dmlab.store.postgres import PostgresStore

from helpers import HASH_COST, START_TIMEOUT, Process

T = TypeVar("T")

#: The ``lab`` fixture's parameters in a module marked ``on_workers``.
VARIANTS = ("in-process", "2-workers")


class FileCA:
    """The servers' CA certificate as a file (what ``serve`` writes to ``DIR/ca.pem``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.path))

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(self.path.read_bytes())
        return path


class WorkersLab:
    """A lab whose server is ``serve --workers 2`` in other processes."""

    def __init__(self, url: str, ca: Path, database: str) -> None:
        self.url = url
        self.ca = FileCA(ca)
        self._store = PostgresStore(database, pool_size=2)
        self._services: Services = build_services(store=self._store, hash_cost=HASH_COST)
        self.devices_loop = LoopThread("workers-lab-devices").start()
        self.operators: dict[str, Operator] = {}
        self.devices: dict[str, Device] = {}
        self.add_account(*DEFAULT_ACCOUNT)

    @property
    def operator(self) -> Operator:
        return self.operators[DEFAULT_ACCOUNT[0]]

    def add_account(self, name: str, password: str) -> Operator:
        self._services.add_account(name, password)
        operator = Operator(self.url, name, password, self.ca.client_context())
        self.operators[name] = operator
        return operator

    def attach_device(
        self,
        dev_id: str,
        secret: str,
        *,
        account: str | None = None,
        behaviour: Behaviour = Behaviour(),
        fw_version: str = "1.0.0",
    ) -> Device:
        owner = account or DEFAULT_ACCOUNT[0]

        async def make() -> VirtualDevice:
            return VirtualDevice(
                dev_id,
                secret,
                self.url,
                verify=self.ca.client_context(),
                man="dmlab",
                mod="Virtual Device",
                fw_version=fw_version,
                behaviour=behaviour,
                services=True,
            )

        device = Device(self, self.run(make()), owner)
        self.devices[dev_id] = device
        return device

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return self.devices_loop.run(coro, timeout=timeout)

    def settle(self, timeout: float = 30) -> None:
        """Wait for what the devices started (FUMO jobs and the like)."""
        for device in list(self.devices.values()):
            self.run(device.virtual.settle(), timeout=timeout)

    def close(self) -> None:
        for device in self.devices.values():
            self.run(device.virtual.aclose(), timeout=5)
        for operator in self.operators.values():
            operator.close()
        self.devices_loop.stop()
        self._store.close()


def serve_workers(database: str, data: Path) -> Iterator[tuple[str, Path]]:
    """``serve --workers 2`` on ``database``, until the generator is closed: its URL
    and CA file, once both workers have started."""
    process = Process.start(
        "serve", "--workers", "2", "--port", "0", "--data", str(data / "data"),
        "--database", database, "--account", ":".join(DEFAULT_ACCOUNT), cwd=data,
    )  # fmt: skip
    try:
        url = process.expect(r"dmlab serving (https://\S+) with 2 workers", START_TIMEOUT)[1]
        for _ in range(2):
            process.expect(r"dmlab worker \d+ started", START_TIMEOUT)
        yield url, data / "data" / "ca.pem"
    finally:
        code = process.terminate()
    assert code == 0, "\n".join(process.lines)


def parametrize(metafunc: pytest.Metafunc) -> None:
    """Run a test of an ``on_workers`` module on both variants (unless ``in_process``)."""
    if "lab" not in metafunc.fixturenames:
        return
    definition = metafunc.definition
    if definition.get_closest_marker("on_workers") is None:
        return
    variants = VARIANTS[:1] if definition.get_closest_marker("in_process") else VARIANTS
    metafunc.parametrize("lab", variants, indirect=True, scope="module")
