"""A client generated from ``/openapi.json`` runs a whole session.

openapi-python-client (pinned in the test extras) writes a Python package from the
running lab's document; the test imports it and, with that package alone, registers
a device as an account, queues a session, opens it with ``POST /alert`` as the
device, reports one status per command with ``PUT`` and reads
``GET /sessions/completed``. Nothing of dmlab's own client code is used: if the
document leaves out a body, a media type or an answer, this fails.
"""

from __future__ import annotations

import base64
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from dmlab import Lab
from dmlab.protocol import AlertType
from dmlab.runtime.lab import DEFAULT_ACCOUNT

from helpers import new_dev_id

PACKAGE = "dmlab_client"


@pytest.fixture(scope="module")
def generated(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, imported (generated once per test module: ~2 s)."""
    where = tmp_path_factory.mktemp("client")
    document = where / "openapi.json"
    document.write_bytes(
        httpx.get(f"{lab.url}/openapi.json", verify=lab.ca.client_context()).content
    )
    config = where / "config.yml"
    config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    generator = Path(sys.executable).with_name("openapi-python-client")
    run = subprocess.run(
        [
            *(str(generator), "generate", "--path", str(document), "--meta", "none"),
            *("--config", str(config), "--output-path", str(where / PACKAGE)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def module(name: str) -> Any:
    """``dmlab_client.<name>``, imported (every generated module must import)."""
    return importlib.import_module(f"{PACKAGE}.{name}")


def operation(operation_id: str) -> Any:
    """The generated module of one operation, wherever its tag put it."""
    api = Path(module("api").__file__).parent
    (found,) = api.glob(f"*/{operation_id}.py")
    return module(f"api.{found.parent.name}.{operation_id}")


def test_every_generated_module_imports(generated: ModuleType) -> None:
    root = Path(generated.__file__).parent
    names = sorted(
        ".".join(p.relative_to(root).with_suffix("").parts)
        for p in root.rglob("*.py")
        if p.name != "__init__.py"
    )
    assert "api.alert_cr_x_1_3.alert" in names  # POST /alert is generated
    for name in names:
        module(name)


def test_a_generated_client_runs_a_session(generated: ModuleType, lab: Lab) -> None:
    models = module("models")
    client_module = module("client")
    account_name, password = DEFAULT_ACCOUNT
    verify = lab.ca.client_context()

    def basic(user: str, secret: str) -> Any:
        token = base64.b64encode(f"{user}:{secret}".encode()).decode()
        return client_module.AuthenticatedClient(
            base_url=lab.url,
            token=token,
            prefix="Basic",
            verify_ssl=verify,
            raise_on_unexpected_status=True,
        )

    with basic(account_name, password) as account:
        run_session(models, account, basic)


def run_session(models: Any, account: Any, basic: Any) -> None:
    # 1. register a device, as the account
    dev_id = new_dev_id()
    registered = operation("register").sync(
        client=account, body=models.Registration(dev_id=dev_id, name="generated")
    )
    assert isinstance(registered, models.RegisteredDevice), registered
    assert registered.dev_id == dev_id and registered.secret
    # 2. queue a session for it, without a notification
    queued = operation("request_session").sync(
        dev_id,
        client=account,
        body=models.SessionRequest(job=models.SessionRequestJob("inventory"), notify=False),
    )
    assert isinstance(queued, models.SessionBrief), queued
    # 3. the device opens it with a client-initiated alert
    with basic(dev_id, registered.secret) as device:
        rounds = report_every_round(models, device, dev_id)
    # 5. the account reads the completed session and its brief result
    listing = operation("completed").sync(client=account)
    assert isinstance(listing, models.SessionList), listing
    (done,) = [s for s in listing.sessions if s.dev_id == dev_id]
    assert str(done.result) == "OK" and done.rounds == rounds
    assert done.to_dict()["IDs"][0] == queued.session_id


def report_every_round(models: Any, device: Any, dev_id: str) -> int:
    package = operation("alert").sync(
        client=device,
        body=models.AlertReport(alert=[models.Alert(alert_type=AlertType.CLIENT_INITIATED)]),
        omadm_dev_id=dev_id,
    )
    rounds = 0
    # 4. one status per command, PUT, until the server answers 204
    while package is not None:
        assert isinstance(package, models.Commands), package
        statuses = [models.Status(sc=200) for c in package.cmd if c[0] != "END"]
        package = operation("report").sync(
            package.session_id,
            client=device,
            body=models.Report(status=statuses),
            omadm_dev_id=dev_id,
        )
        rounds += 1
        assert rounds < 10
    return rounds
