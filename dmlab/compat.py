"""The CR's backward-compatibility question, answered from runs.

The CR asks whether its resources "can serve existing OMA Device Management
Service[s]". :func:`run_all` runs every operation of FUMO, SCOMO, LAWMO, DiagMon
and DCMO through the API on one virtual device, and :func:`table` reads the
answer off the trace: per operation, the CR resources used, the device's round
trips and body bytes, what it needed that the CR does not define, the result
code the MO reported, and how DM 1.2 did the same.

Counts are deterministic (fixed DevID, fixed-length ids, a fixed script), so
the README's table (between the ``services-table`` markers) is regenerated and
compared by a test: ``python -m dmlab.compat --write README.md`` rewrites it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.service_jobs import SERVICE_JOBS
from .device import Behaviour
from .protocol.services import DIAGMON
from .server.operation import openapi_path, operations
from .trace import Exchange

if TYPE_CHECKING:
    import pandas as pd

    from .runtime.lab import Device, Lab

DEV_ID = "IMEI:490154203237518"
#: Who the device is on the trace's lifelines.
DEVICE_ROLES = frozenset({"device", "browser-component"})
MARKERS = ("<!-- services-table:start -->", "<!-- services-table:end -->")

FUMO_DM12 = (
    "Replace ./FUMO/<x>/DownloadAndUpdate/PkgURL, Exec …/DownloadAndUpdate; later alert 1226 "
    "org.openmobilealliance.dm.firmwareupdate.downloadandupdate"
)


@dataclass(frozen=True, slots=True)
class Step:
    """One operation of the script: a job queued by the account, then maybe
    something the world does to the device (a battery running down)."""

    service: str
    operation: str
    job: str
    params: dict[str, Any] = field(default_factory=dict)
    then: Callable[[Lab, Device], object] | None = None


def _battery_runs_down(lab: Lab, device: Device) -> object:
    return lab.run(device.virtual.services[DIAGMON].change("Battery", 9))  # type: ignore[attr-defined]


#: Every operation, in the order they run on one device.
SCRIPT: tuple[Step, ...] = (
    Step("FUMO", "DownloadAndUpdate", "firmware-update", {"version": "2.0.0"}),
    Step("SCOMO", "DownloadInstall", "software-install"),
    Step("SCOMO", "Remove", "software-remove"),
    Step("LAWMO", "FullyLock", "lock"),
    Step("LAWMO", "PartiallyLock", "lock", {"mode": "partial"}),
    Step("LAWMO", "UnLock", "unlock"),
    Step("LAWMO", "Wipe (2 items)", "wipe"),
    Step("LAWMO", "FactoryReset", "wipe", {"reset": "true"}),
    Step("DiagMon", "Collect", "diagnostics"),
    Step(
        "DiagMon",
        "Collect + ArmTrap, trap fires",
        "diagnostics",
        {"trap": "true", "threshold": "20"},
        then=_battery_runs_down,
    ),
    Step("DCMO", "Disable", "capability"),
    Step("DCMO", "Enable", "capability", {"enable": "true"}),
)


@dataclass
class Run:
    """One operation as the trace saw it."""

    step: Step
    exchanges: list[Exchange]
    templates: dict[int, tuple[str, bool]]  # seq -> ("METHOD /path", is a CR resource)

    @property
    def device(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.source in DEVICE_ROLES]

    @property
    def notifications(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == "NOTIFY"]

    def used(self, cr: bool) -> list[str]:
        counts = Counter(self.templates[e.seq][0] for e in self.device)
        seen = dict.fromkeys(self.templates[e.seq][0] for e in self.device)
        return [
            f"{name} ×{counts[name]}" if counts[name] > 1 else name
            for name in seen
            if any(self.templates[e.seq] == (name, cr) for e in self.device)
        ]

    @property
    def alerts(self) -> list[str]:
        return [e.request.removeprefix("Alert ") for e in self.device if e.path == "/alert"]

    def row(self) -> dict[str, Any]:
        device = self.device
        nbytes = sum(e.request_bytes + e.response_bytes for e in device)
        nbytes += sum(e.request_bytes for e in self.notifications)
        outside = self.used(cr=False)
        alerts = self.alerts
        if alerts:
            outside.append("generic alert type and result codes (the MO's)")
        job = SERVICE_JOBS.get(self.step.job)
        return {
            "service": self.step.service,
            "operation": self.step.operation,
            "job": self.step.job + "".join(f" {k}={v}" for k, v in self.step.params.items()),
            "CR resources": ", ".join(self.used(cr=True)),
            "round trips": len(device),
            "bytes": nbytes,
            "outside the CR": "; ".join(outside) or "—",
            "result": ", ".join(_result(a) for a in alerts) or "—",
            "DM 1.2": job.dm12 if job else FUMO_DM12,
        }


def _result(alert: str) -> str:
    """The result code an alert's summary shows (``OperationComplete(1200)``, or
    ``{…'DM1x': 1200}``); an alert without one (a trap) by its name."""
    code = re.search(r"'DM1x': (\d+)", alert) or re.fullmatch(r"\w+\((\d+)\)", alert)
    return code[1] if code else alert.split("(", 1)[0]


def _templates(lab: Lab) -> Callable[[Exchange], tuple[str, bool]]:
    """An exchange's resource as the server declares it, and whether the CR names it."""
    declared = operations(lab.app.routes)

    def template(exchange: Exchange) -> tuple[str, bool]:
        for op in declared:
            if op.method == exchange.method and op.path_regex.match(exchange.path):
                return f"{op.method} {openapi_path(op.path)}", "(CR " in op.doc.tag
        return f"{exchange.method} {exchange.path}", False

    return template


def run_step(lab: Lab, device: Device, step: Step) -> Run:
    """Queue one job through the operator (flow 1), let the device run it and
    report, then do what the step says the world does."""
    marker = lab.trace.last_seq
    lab.operators[device.account].request_session(device.dev_id, job=step.job, **step.params)
    lab.settle()
    if step.then is not None:
        step.then(lab, device)
        lab.settle()
    exchanges = [e for e in lab.trace.since(marker) if e.dev_id == device.dev_id]
    template = _templates(lab)
    return Run(step, exchanges, {e.seq: template(e) for e in exchanges})


def run_all(lab: Lab, device: Device, script: Sequence[Step] = SCRIPT) -> list[Run]:
    return [run_step(lab, device, step) for step in script]


def table(runs: Sequence[Run]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([run.row() for run in runs])


def markdown(runs: Sequence[Run]) -> str:
    """The README's table: one row per operation, resources in backticks."""
    columns = ["service", "operation", "CR resources", "round trips", "bytes", "outside the CR"]
    columns += ["result", "DM 1.2"]
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in (run.row() for run in runs):
        cells = (RESOURCE.sub(r"`\1`", str(row[c])).replace("|", "\\|") for c in columns)
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


#: A resource as the table names it: ``POST /sessions/next``.
RESOURCE = re.compile(r"((?:GET|PUT|POST|DELETE) /[^\s,;]*)")


def generate() -> str:
    """Run the script in a fresh lab and return the README block (deterministic)."""
    from .runtime.lab import Lab

    with Lab(hash_cost={"n": 2**4, "r": 8, "p": 1}) as lab:
        device = lab.add_device(DEV_ID, name="phone", behaviour=Behaviour(step_delay=0.01))
        return markdown(run_all(lab, device))


def replace_block(readme: str, block: str) -> str:
    start, end = MARKERS
    before, rest = readme.split(start, 1)
    _, after = rest.split(end, 1)
    return f"{before}{start}\n{block}\n{end}{after}"


def readme_block(readme: str) -> str:
    start, end = MARKERS
    return readme.split(start, 1)[1].split(end, 1)[0].strip("\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dmlab.compat", description=__doc__)
    parser.add_argument("--write", metavar="README", help="rewrite the table in this file")
    args = parser.parse_args(argv)
    block = generate()
    if args.write:
        path = Path(args.write)
        path.write_text(replace_block(path.read_text(encoding="utf-8"), block), encoding="utf-8")
    else:
        sys.stdout.write(block + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
