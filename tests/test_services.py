"""The existing OMA DM services (SCOMO, LAWMO, DiagMon, DCMO) run end to end over
HTTPS: each job queued by name through ``POST /devices/{devId}/sessions``, run by
a virtual device over the CR's resources, its result reported by generic alert
to ``POST /alert`` — success and each failure path, with the MO's result codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dmlab import Lab, compat
from dmlab.core.jobs import PLANNERS
from dmlab.core.service_jobs import SERVICE_JOBS
from dmlab.device import Behaviour
from dmlab.protocol.services import (
    DCMO,
    DCMO_ALERT,
    DIAGMON,
    DIAGMON_ALERT,
    DIAGMON_TRAP_ALERT,
    LAWMO,
    LAWMO_ALERT,
    SCOMO,
    SCOMO_ALERT,
    DcmoResult,
    DownloadStatus,
    LawmoResult,
    LawmoState,
    ScomoResult,
)
from dmlab.widgets.panel import JOBS

from helpers import Registered, by_dev, problem

SCOMO_ROOT = f"{SCOMO}/SCOMO1"
DEPLOYED = f"{SCOMO_ROOT}/Inventory/Deployed"
LAWMO_STATE = f"{LAWMO}/LAWMO1/State"

README = Path(__file__).resolve().parent.parent / "README.md"


def run(lab: Lab, registered: Registered, job: str, **params: Any) -> dict[str, Any]:
    """Queue the job (the device is notified), let everything settle, and return
    the generic alert the device reported, as the server stored it."""
    before = len(generic_alerts(lab, registered.dev_id))
    lab.operator.request_session(registered.dev_id, job=job, **params)
    lab.settle()
    alerts = generic_alerts(lab, registered.dev_id)
    assert len(alerts) == before + 1, [str(a) for a in alerts]
    return alerts[0].to_json()


def generic_alerts(lab: Lab, dev_id: str) -> list[Any]:
    """The device's generic alerts, newest first (session openers left out)."""
    records = lab.services.store.alerts_of(dev_id, 1000)  # oldest first
    return [r.alert for r in reversed(records) if not r.alert.opens_session]


def completed(lab: Lab, dev_id: str) -> dict[str, Any]:
    return by_dev(lab.operator.completed(), dev_id)[-1]  # the newest


def tree(registered: Registered, uri: str) -> Any:
    assert registered.device is not None
    return registered.device.get(uri)


# SCOMO ---------------------------------------------------------------------------


def test_software_install_then_remove(lab: Lab, register) -> None:
    phone = register()
    alert = run(lab, phone, "software-install", name="notes", version="1.2.0")
    assert alert == {
        "AlertType": SCOMO_ALERT,
        "SourceURI": f"{SCOMO_ROOT}/Download/notes-1.2.0/Operations/DownloadInstall",
        "TargetURI": f"{DEPLOYED}/notes",
        "Mark": "informational",
        "DataType": "int",
        "Data": {"DM1x": ScomoResult.SUCCESSFUL},
    }
    component = tree(phone, f"{DEPLOYED}/notes")
    assert component["Version"] == "1.2.0" and component["State"] == 20  # active
    assert tree(phone, f"{SCOMO_ROOT}/Download") == {}  # consumed
    assert completed(lab, phone.dev_id)["Rounds"] == 2

    # The same version again: the job reads the inventory and stops there.
    lab.operator.request_session(
        phone.dev_id, job="software-install", name="notes", version="1.2.0"
    )
    lab.settle()
    assert completed(lab, phone.dev_id)["Rounds"] == 1

    alert = run(lab, phone, "software-remove", name="notes")
    assert alert["Data"] == {"DM1x": ScomoResult.SUCCESSFUL}
    assert alert["SourceURI"] == f"{DEPLOYED}/notes/Operations/Remove"
    assert tree(phone, DEPLOYED) == {}


def test_software_download_fails(lab: Lab, register) -> None:
    phone = register(behaviour=Behaviour(download_fails=True))
    alert = run(lab, phone, "software-install")
    assert alert["Data"] == {"DM1x": ScomoResult.DOWNLOAD_FAILED}
    assert alert["Mark"] == "critical"
    download = tree(phone, f"{SCOMO_ROOT}/Download/dmlab-notes-1.0.0/Status")
    assert download == DownloadStatus.DOWNLOAD_FAILED
    assert tree(phone, DEPLOYED) == {}


def test_software_install_fails_for_lack_of_space(lab: Lab, register) -> None:
    phone = register(behaviour=Behaviour(free_space=1024))  # the package is 4 KiB
    alert = run(lab, phone, "software-install")
    assert alert["Data"] == {"DM1x": ScomoResult.INSTALL_OUT_OF_MEMORY}
    status = tree(phone, f"{SCOMO_ROOT}/Download/dmlab-notes-1.0.0/Status")
    assert status == DownloadStatus.INSTALL_FAILED_WITH_DATA
    assert tree(phone, DEPLOYED) == {}
    # The session itself succeeded: the EXEC was accepted (202).
    assert completed(lab, phone.dev_id)["Result"] == "OK"


def test_software_remove_fails_and_remove_of_nothing(lab: Lab, register) -> None:
    phone = register(behaviour=Behaviour(remove_fails=True))
    run(lab, phone, "software-install")
    alert = run(lab, phone, "software-remove")
    assert alert["Data"] == {"DM1x": ScomoResult.REMOVE_FAILED}
    assert tree(phone, f"{DEPLOYED}/dmlab-notes/Status") == 20  # remove failed
    lab.operator.request_session(phone.dev_id, job="software-remove", name="absent")
    lab.settle()
    assert completed(lab, phone.dev_id)["Rounds"] == 1


# LAWMO ---------------------------------------------------------------------------


def test_lock_partial_lock_unlock(lab: Lab, register) -> None:
    phone = register()
    alert = run(lab, phone, "lock")
    assert alert["AlertType"] == LAWMO_ALERT
    assert alert["SourceURI"] == f"{LAWMO}/LAWMO1/Operations/FullyLock"
    assert alert["Data"] == {"DM1x": LawmoResult.SUCCESSFUL}
    assert tree(phone, LAWMO_STATE) == LawmoState.FULLY_LOCKED
    run(lab, phone, "lock", mode="partial")
    assert tree(phone, LAWMO_STATE) == LawmoState.PARTIALLY_LOCKED
    alert = run(lab, phone, "unlock")
    assert alert["SourceURI"] == f"{LAWMO}/LAWMO1/Operations/UnLock"
    assert tree(phone, LAWMO_STATE) == LawmoState.UNLOCKED


def test_lock_and_unlock_fail(lab: Lab, register) -> None:
    phone = register(behaviour=Behaviour(lock_fails=True))
    assert run(lab, phone, "lock")["Data"] == {"DM1x": LawmoResult.FULLY_LOCK_FAILED}
    assert run(lab, phone, "lock", mode="partial")["Data"] == {
        "DM1x": LawmoResult.PARTIALLY_LOCK_FAILED
    }
    assert run(lab, phone, "unlock")["Data"] == {"DM1x": LawmoResult.UNLOCK_FAILED}
    assert tree(phone, LAWMO_STATE) == LawmoState.UNLOCKED


def test_wipe_of_the_wipe_list_and_factory_reset(lab: Lab, register) -> None:
    phone = register()
    assert phone.device is not None
    lawmo = phone.device.virtual.services[LAWMO]
    alert = run(lab, phone, "wipe", items="Contacts,Photos")
    assert alert["Data"] == {"DM1x": LawmoResult.WIPE_SUCCESSFUL, "Wiped": "Contacts,Photos"}
    assert lawmo.user_data["Contacts"] == lawmo.user_data["Photos"] == 0  # type: ignore[attr-defined]
    assert lawmo.user_data["Messages"] > 0  # type: ignore[attr-defined]
    assert tree(phone, f"{LAWMO}/LAWMO1/AvailableWipeList/Contacts/ToBeWiped") == "false"
    alert = run(lab, phone, "wipe", reset="true")
    assert alert["SourceURI"].endswith("/Operations/FactoryReset")
    assert alert["Data"] == {"DM1x": LawmoResult.SUCCESSFUL}
    assert set(lawmo.user_data.values()) == {0}  # type: ignore[attr-defined]


def test_wipe_refused(lab: Lab, register) -> None:
    phone = register(behaviour=Behaviour(wipe_refused=True))
    assert run(lab, phone, "wipe")["Data"] == {"DM1x": LawmoResult.WIPE_NOT_PERFORMED}
    assert run(lab, phone, "wipe", reset="true")["Data"] == {"DM1x": LawmoResult.WIPE_NOT_PERFORMED}
    assert phone.device is not None
    assert phone.device.virtual.services[LAWMO].user_data["Contacts"] > 0  # type: ignore[attr-defined]


def test_wipe_of_an_item_not_in_the_list_fails_the_session(lab: Lab, register) -> None:
    phone = register()
    lab.operator.request_session(phone.dev_id, job="wipe", items="Contacts,Nothing")
    lab.settle()
    session = completed(lab, phone.dev_id)
    assert session["Result"] == "failure"  # HGET into a missing node: 404


# DiagMon -------------------------------------------------------------------------


def test_diagnostics_reading_and_a_trap_that_reports_later(lab: Lab, register) -> None:
    phone = register()
    alert = run(lab, phone, "diagnostics", function="Battery", trap="true", threshold="20")
    assert alert["AlertType"] == DIAGMON_ALERT
    assert alert["Data"] == {"DM1x": 1200, "Value": 87, "Unit": "%"}
    assert tree(phone, f"{DIAGMON}/DIAGMON1/Functions/Battery/Trap") == "armed"
    assert phone.device is not None
    diagmon = phone.device.virtual.services[DIAGMON]
    # Above the threshold: nothing to report.
    assert lab.run(diagmon.change("Battery", 50)) is None  # type: ignore[attr-defined]
    lab.run(diagmon.change("Battery", 9))  # type: ignore[attr-defined]
    lab.settle()
    trap = generic_alerts(lab, phone.dev_id)[0].to_json()
    assert trap == {
        "AlertType": DIAGMON_TRAP_ALERT,
        "SourceURI": f"{DIAGMON}/DIAGMON1/Functions/Battery",
        "Mark": "warning",
        "Data": {"Value": 9, "Threshold": 20},
    }
    assert tree(phone, f"{DIAGMON}/DIAGMON1/Functions/Battery/Trap") == "disarmed"


def test_diagnostics_of_an_unknown_function(lab: Lab, register) -> None:
    phone = register(behaviour=Behaviour(diagnostics=("Battery",)))
    lab.operator.request_session(phone.dev_id, job="diagnostics", function="Signal")
    lab.settle()
    assert completed(lab, phone.dev_id)["Result"] == "failure"
    assert generic_alerts(lab, phone.dev_id) == []
    assert phone.device is not None
    assert phone.device.runs[-1].rounds[0][1][0].sc == 404


# DCMO ----------------------------------------------------------------------------


def test_capability_disable_and_enable(lab: Lab, register) -> None:
    phone = register()
    alert = run(lab, phone, "capability", name="Camera", enable="false")
    assert alert == {
        "AlertType": DCMO_ALERT,
        "SourceURI": f"{DCMO}/Camera/Operations/Disable",
        "Mark": "informational",
        "DataType": "int",
        "Data": {"DM1x": DcmoResult.SUCCESSFUL},
    }
    assert tree(phone, f"{DCMO}/Camera/Enabled") == "false"
    run(lab, phone, "capability", name="Camera", enable="true")
    assert tree(phone, f"{DCMO}/Camera/Enabled") == "true"


def test_capability_fails_and_unknown_capability(lab: Lab, register) -> None:
    phone = register(behaviour=Behaviour(capability_fails=True, capabilities=("Camera",)))
    assert run(lab, phone, "capability")["Data"] == {"DM1x": DcmoResult.CLIENT_ERROR}
    assert tree(phone, f"{DCMO}/Camera/Enabled") == "true"
    lab.operator.request_session(phone.dev_id, job="capability", name="Bluetooth")
    lab.settle()
    assert completed(lab, phone.dev_id)["Result"] == "failure"
    assert phone.device is not None
    assert phone.device.runs[-1].rounds[0][1][0].sc == 404


# The jobs as the API declares them ----------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"job": "lock", "params": {"mode": "sideways"}}, "mode must be full|partial"),
        ({"job": "software-install", "params": {"name": "../x"}}, "name must be"),
        ({"job": "software-install", "params": {"version": "latest"}}, "version must be"),
        ({"job": "capability", "params": {"colour": "red"}}, "takes no parameter 'colour'"),
        ({"job": "wipe", "params": {"items": "a,,b"}}, "items must be"),
    ],
)
def test_bad_job_parameters_are_refused(lab: Lab, register, clients, body, words) -> None:
    phone = register(attach=False)
    answer = clients.account().post(f"/devices/{phone.dev_id}/sessions", json=body)
    assert words in problem(answer, 400)["detail"]
    assert by_dev(lab.operator.pending(), phone.dev_id) == []


def test_job_names_are_declared_once() -> None:
    assert set(SERVICE_JOBS) <= set(PLANNERS)
    assert [j for j in PLANNERS if j != "commands"] == [j for j in JOBS if j != "commands"]


def test_lab_resources_refuse_bad_names(clients) -> None:
    account = clients.account()
    assert account.get("/software/..%2Fx/1.0.0").status_code == 404
    assert account.get("/software/notes/latest").status_code == 404
    assert account.get("/values/a%20b").status_code == 400
    assert account.get("/values/true").text == "true"


# The answer: the table, from runs ------------------------------------------------


def test_readme_table_is_generated_from_runs() -> None:
    """The README's table is what a fresh run produces (``python -m dmlab.compat
    --write README.md`` rewrites it)."""
    assert compat.readme_block(README.read_text(encoding="utf-8")) == compat.generate()


def test_every_service_job_is_in_the_table(fresh_lab: Lab) -> None:
    device = fresh_lab.add_device(compat.DEV_ID, behaviour=Behaviour(step_delay=0.01))
    runs = compat.run_all(fresh_lab, device)
    frame = compat.table(runs)
    assert set(SERVICE_JOBS) | {"firmware-update"} == {r.step.job for r in runs}
    assert (frame["round trips"] > 0).all()
    assert set(frame["result"]) >= {"1200", "1201"}
    assert all(frame["CR resources"].str.contains("POST /alert"))


def test_scomo_download_tries_a_transient_failure_again() -> None:
    """A dropped connection on the package download is tried again; a download agent
    that gave up at once made a busy fleet report 1402 for healthy devices."""
    import asyncio
    import json

    from dmlab.device import mo
    from dmlab.device.executor import Executor
    from dmlab.device.objects import standard_tree
    from dmlab.protocol import Command
    from dmlab.protocol.firmware import lab_package

    class Port:
        def __init__(self) -> None:
            self.failures = 1
            self.alerts: list[Any] = []

        async def http_get(self, url: str) -> tuple[int, bytes, str]:
            if url.endswith("/package"):
                if self.failures:
                    self.failures -= 1
                    raise ConnectionError("connection reset")
                return 200, lab_package("1.0.0", "notes"), "application/json"
            descriptor = {"PkgID": "notes-1.0.0", "Name": "notes", "PkgURL": f"{url}/package"}
            return 200, json.dumps(descriptor).encode(), "application/json"

        async def alert(self, alert: Any, url: str | None = None) -> None:
            self.alerts.append(alert)

    async def main() -> Port:
        tree = standard_tree("IMEI:1", "m", "M", "dmlab", "https://server")
        services = mo.install(tree, capabilities=(), diagnostics=(), free_space=1 << 20)
        port = Port()
        executor = Executor(tree, port, services=services)  # type: ignore[arg-type]
        node = f"{SCOMO_ROOT}/Download/notes-1.0.0"
        await executor.run(
            [
                Command.of("HGET", "https://server/software/notes/1.0.0", node),
                Command.of("EXEC", f"{node}/Operations/DownloadInstall", "https://server/alert"),
            ]
        )
        await executor.drain()
        return port

    port = asyncio.run(main())
    assert [a.data for a in port.alerts] == [{"DM1x": ScomoResult.SUCCESSFUL}]
    assert port.failures == 0


def test_a_bare_virtual_device_carries_no_service_mos() -> None:
    """The MOs cost about 15 KiB per idle device (benchmarks/fleet.py): a lab's device
    carries them, a bare VirtualDevice (a 100,000-device fleet) only when asked."""
    import asyncio

    from dmlab.device import VirtualDevice

    async def main() -> tuple[list[str], list[str]]:
        bare = VirtualDevice("IMEI:1", "secret", "https://server")
        full = VirtualDevice("IMEI:2", "secret", "https://server", services=True)
        try:
            return bare.tree.moids(), full.tree.moids()
        finally:
            await bare.aclose()
            await full.aclose()

    bare, full = asyncio.run(main())
    assert SCOMO not in bare and LAWMO not in bare
    assert {SCOMO, LAWMO, DIAGMON, DCMO} <= set(full)


def test_scomo_download_deliver_install_deactivate_activate(lab: Lab, register) -> None:
    """The SCOMO operations no job names, run as explicit commands: Download puts the
    package under Inventory/Delivered; its Install deploys it; Deactivate and Activate
    switch the component's State; each reports by generic alert."""
    phone = register()
    base = lab.url
    node = f"{SCOMO_ROOT}/Download/notes-2.0.0"

    def commands(*cmds: list[str]) -> dict[str, Any]:
        lab.operator.request_session(phone.dev_id, commands=[*cmds, ["END"]])
        lab.settle()
        return generic_alerts(lab, phone.dev_id)[0].to_json()

    alert = commands(
        ["HGET", f"{base}/software/notes/2.0.0", node],
        ["EXEC", f"{node}/Operations/Download", f"{base}/alert"],
    )
    delivered = f"{SCOMO_ROOT}/Inventory/Delivered/notes-2.0.0"
    assert alert["TargetURI"] == delivered and alert["Data"]["DM1x"] == ScomoResult.SUCCESSFUL
    assert tree(phone, f"{delivered}/State") == 10  # delivered
    assert tree(phone, DEPLOYED) == {}

    alert = commands(["EXEC", f"{delivered}/Operations/InstallInactive", f"{base}/alert"])
    assert alert["TargetURI"] == f"{DEPLOYED}/notes"
    assert tree(phone, f"{DEPLOYED}/notes/State") == 10  # inactive
    assert tree(phone, f"{delivered}/State") == 20  # installed

    commands(["EXEC", f"{DEPLOYED}/notes/Operations/Activate", f"{base}/alert"])
    assert tree(phone, f"{DEPLOYED}/notes/State") == 20
    alert = commands(["EXEC", f"{DEPLOYED}/notes/Operations/Deactivate", f"{base}/alert"])
    assert alert["SourceURI"] == f"{DEPLOYED}/notes/Operations/Deactivate"
    assert tree(phone, f"{DEPLOYED}/notes/State") == 10

    # Without a ServerURI the EXEC answers with the result at once (lab choice
    # service-exec-async): 200, and no alert.
    before = len(generic_alerts(lab, phone.dev_id))
    lab.operator.request_session(
        phone.dev_id, commands=[["EXEC", f"{DEPLOYED}/notes/Operations/Activate"], ["END"]]
    )
    lab.settle()
    assert phone.device is not None
    assert phone.device.runs[-1].rounds[0][1][0].sc == 200
    assert len(generic_alerts(lab, phone.dev_id)) == before
    assert tree(phone, f"{DEPLOYED}/notes/State") == 20


def test_the_panel_queues_a_service_job_with_params(lab: Lab, register) -> None:
    from dmlab.widgets import ControlPanel

    phone = register()
    panel = ControlPanel(lab)
    try:
        panel.devices.value = (phone.dev_id,)
        panel.job.value = "lock"
        panel.params.value = '{"mode": "partial"}'
        panel.queue.click()
        assert panel.last.startswith("queued 1 lock session(s); "), panel.last
        assert tree(phone, LAWMO_STATE) == LawmoState.PARTIALLY_LOCKED
        panel.params.value = "[1]"
        panel.queue.click()
        assert panel.last.startswith("refused: the params are a JSON object")
    finally:
        panel.close()
