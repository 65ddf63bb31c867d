"""What a session does, round by round.

A job is a function of what has happened so far: given the job's parameters and
the rounds already reported, it returns the next package 2, or ``None`` when the
session is done. Keeping jobs pure makes a session resumable from its record.
"""

from __future__ import annotations

from typing import Any

from ..protocol import Command, ProtocolError, parse_commands
from ..protocol.firmware import is_version
from ..protocol.strictjson import parse_json
from ..store import JobSpec, Round
from .service_jobs import SERVICE_JOBS
from .steps import Planner, Step

DEVINFO = "urn:oma:mo:oma-dm-devinfo:1.0"
FUMO = "urn:oma:mo:oma-fumo:1.0"
FUMO_IDLE = 10
DEFAULT_FIRMWARE = "2.0.0"


__all__ = ["PLANNERS", "Planner", "Step", "is_version", "job_from_request", "next_step"]


def _explicit(spec: JobSpec, done: tuple[Round, ...], base_url: str) -> Step:
    return Step(spec.commands) if not done else Step(None)


#: The inventory's one package, the same for every session (commands are immutable):
#: a stored session holds this tuple rather than a copy of it.
_INVENTORY = (
    Command.of("GET", f"{DEVINFO}//"),
    Command.of("GET", f"{FUMO}/*/State"),
    Command.of("END"),
)


def _inventory(spec: JobSpec, done: tuple[Round, ...], base_url: str) -> Step:
    return Step(None) if done else Step(_INVENTORY)


def _firmware_update(spec: JobSpec, done: tuple[Round, ...], base_url: str) -> Step:
    """Read the firmware version and FUMO state; if an update is due, point
    DownloadAndUpdate/PkgURL at the package (HGET) and run it (EXEC). The result
    comes later in a generic alert to ``/alert``."""
    version = spec.params.get("version", DEFAULT_FIRMWARE)
    instance = spec.params.get("instance", "fw1")
    if not done:
        return Step(
            (
                Command.of("GET", f"{DEVINFO}//DevInfo/FwV"),
                Command.of("GET", f"{FUMO}/{instance}/State"),
            )
        )
    if len(done) > 1:
        return Step(None)
    fw, state = done[0].statuses or ()
    if not (fw.ok and state.ok):
        return Step(None, "device could not report its firmware state")
    if fw.data == version:
        return Step(None, f"already on firmware {version}")
    if state.data != FUMO_IDLE:
        return Step(None, f"FUMO busy (State {state.data})")
    node = f"{FUMO}/{instance}/DownloadAndUpdate"
    return Step(
        (
            Command.of("HGET", f"{base_url}/firmware/{version}/url", f"{node}/PkgURL"),
            Command.of("EXEC", node, f"{base_url}/alert"),
            Command.of("END"),
        )
    )


PLANNERS: dict[str, Planner] = {
    "commands": _explicit,
    "inventory": _inventory,
    "firmware-update": _firmware_update,
    # The existing OMA DM services (SCOMO, LAWMO, DiagMon, DCMO): see service_jobs.py.
    **{name: job.plan for name, job in SERVICE_JOBS.items()},
}


def job_from_request(fields: dict[str, Any]) -> JobSpec:
    """A job from a request body: ``{"CMD": [...]}``, or ``{"job": name, "params": {...}}``
    (forms send ``job`` and ``version``, or ``commands`` as JSON text)."""

    if "CMD" in fields or "commands" in fields:
        raw = fields.get("CMD", fields.get("commands"))
        if isinstance(raw, str):
            try:
                raw = parse_json(raw)
            except ValueError:
                raise ProtocolError("commands must be a JSON list of commands") from None
        if isinstance(raw, dict) and "CMD" in raw:
            raw = raw["CMD"]
        return JobSpec("commands", {}, parse_commands(raw))
    name = fields.get("job")
    if not isinstance(name, str) or name not in PLANNERS or name == "commands":
        known = ", ".join(n for n in PLANNERS if n != "commands")
        raise ProtocolError(f'name a job ({known}) or give "CMD"')
    params = fields.get("params", {})
    if not isinstance(params, dict):
        raise ProtocolError('"params" must be an object')
    takes_version = name == "firmware-update" or "version" in getattr(
        SERVICE_JOBS.get(name), "params", {}
    )
    if takes_version and isinstance(fields.get("version"), str) and fields["version"]:
        params = {**params, "version": fields["version"]}
    for key, value in params.items():
        if not isinstance(value, (str, int)) or len(str(value)) > 100:
            raise ProtocolError(f"job parameter {key!r} must be a short string or number")
    if name == "firmware-update" and not is_version(str(params.get("version", DEFAULT_FIRMWARE))):
        raise ProtocolError("version must look like 1.2.3")
    if name in SERVICE_JOBS:
        SERVICE_JOBS[name].check(params)
    return JobSpec(name, params)


def next_step(spec: JobSpec, done: tuple[Round, ...], base_url: str) -> Step:
    return PLANNERS[spec.name](spec, done, base_url)
