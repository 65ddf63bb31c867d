"""Jobs for the existing OMA DM services, beside FUMO's ``firmware-update``.

Each job is declared once here (name, service, parameters with defaults, the
DM 1.2 way of doing the same); the job list of the API, the OpenAPI document
and the control panel come from :data:`SERVICE_JOBS` through ``PLANNERS``.
Every job runs over the CR's resources and DM 2.0 commands only, and reports
its result later by a generic alert to ``/alert`` (EXEC with a ServerURI). Two
lab resources serve what DM 2.0's HGET needs to write: ``/software/…`` (SCOMO's
descriptor and package) and ``/values/{text}`` (a literal for a leaf).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..protocol import Command, ProtocolError
from ..protocol.firmware import is_version
from ..protocol.services import (
    DCMO,
    DIAGMON,
    DIAGMON_INSTANCE,
    LAWMO,
    LAWMO_INSTANCE,
    SCOMO,
    SCOMO_INSTANCE,
)
from ..store import JobSpec, Round
from .steps import Step

#: A name a job parameter may carry into a ClientURI or a URL path.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: A number a threshold may be.
NUMBER = re.compile(r"-?[0-9]{1,9}")

Checker = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Param:
    default: str
    meaning: str
    valid: Checker
    rule: str  # what ``valid`` accepts, in words


@dataclass(frozen=True, slots=True)
class ServiceJob:
    """One job an account may queue by name."""

    name: str
    service: str  # SCOMO, LAWMO, DiagMon, DCMO
    operation: str
    params: Mapping[str, Param]
    #: How a DM 1.2 server does the same (package 2 commands; the later generic alert).
    dm12: str
    planner: Callable[[JobSpec, tuple[Round, ...], str], Step]

    def value(self, spec: JobSpec, key: str) -> str:
        return str(spec.params.get(key, self.params[key].default))

    def plan(self, spec: JobSpec, done: tuple[Round, ...], base_url: str) -> Step:
        return self.planner(spec, done, base_url)

    def check(self, params: Mapping[str, Any]) -> None:
        """Refuse unknown or malformed parameters with a readable reason."""
        for key, value in params.items():
            if key not in self.params:
                known = ", ".join(self.params) or "none"
                raise ProtocolError(f"{self.name} takes no parameter {key!r} (it takes: {known})")
            param = self.params[key]
            if not param.valid(str(value)):
                raise ProtocolError(f"{self.name}: {key} must be {param.rule}")


def _name(text: str) -> bool:
    return bool(NAME.fullmatch(text))


def _names(text: str) -> bool:
    items = text.split(",")
    return 1 <= len(items) <= 16 and all(_name(item) for item in items)


def _one_of(*options: str) -> Checker:
    return lambda text: text in options


def _threshold(text: str) -> bool:
    return text == "" or bool(NUMBER.fullmatch(text))


NAME_RULE = "1 to 64 letters, digits or ._- (starting with a letter or digit)"


def _first(done: tuple[Round, ...]) -> Any:
    statuses = done[0].statuses or ()
    return statuses[0] if statuses else None


def _async(uri: str, base_url: str) -> Command:
    """EXEC with a ServerURI: 202 now, the result by generic alert to /alert."""
    return Command.of("EXEC", uri, f"{base_url}/alert")


# SCOMO ---------------------------------------------------------------------------

SCOMO_ROOT = f"{SCOMO}/{SCOMO_INSTANCE}"
DEPLOYED = f"{SCOMO_ROOT}/Inventory/Deployed"


def _inventory(done: tuple[Round, ...]) -> dict[str, Any] | Step:
    """The rounds every SCOMO job shares: first GET the Deployed inventory, then (its
    own round done) end. Between them: the inventory the job decides on, or the Step
    that ends the session because the device could not report it."""
    if not done:
        return Step((Command.of("GET", DEPLOYED),))
    if len(done) > 1:
        return Step(None)
    status = _first(done)
    if status is None or not status.ok or not isinstance(status.data, dict):
        return Step(None, "the device could not report its SCOMO inventory")
    return status.data


def _software_install(spec: JobSpec, done: tuple[Round, ...], base_url: str) -> Step:
    """Read the Deployed inventory; unless the version is there, HGET the delivery
    descriptor into Download/<PkgID> and EXEC its DownloadInstall."""
    job = SERVICE_JOBS["software-install"]
    name, version = job.value(spec, "name"), job.value(spec, "version")
    inventory = _inventory(done)
    if isinstance(inventory, Step):
        return inventory
    component = inventory.get(name)
    if isinstance(component, dict) and component.get("Version") == version:
        return Step(None, f"{name} {version} is already installed")
    node = f"{SCOMO_ROOT}/Download/{name}-{version}"
    return Step(
        (
            Command.of("HGET", f"{base_url}/software/{name}/{version}", node),
            _async(f"{node}/Operations/DownloadInstall", base_url),
            Command.of("END"),
        )
    )


def _software_remove(spec: JobSpec, done: tuple[Round, ...], base_url: str) -> Step:
    """Read the Deployed inventory; if the component is there, EXEC its Remove."""
    name = SERVICE_JOBS["software-remove"].value(spec, "name")
    inventory = _inventory(done)
    if isinstance(inventory, Step):
        return inventory
    if name not in inventory:
        return Step(None, f"{name} is not installed")
    return Step((_async(f"{DEPLOYED}/{name}/Operations/Remove", base_url), Command.of("END")))


# LAWMO ---------------------------------------------------------------------------

LAWMO_ROOT = f"{LAWMO}/{LAWMO_INSTANCE}"


def _one_round(commands: Callable[[JobSpec, str], tuple[Command, ...]]) -> Callable[..., Step]:
    def planner(spec: JobSpec, done: tuple[Round, ...], base_url: str) -> Step:
        return Step(None) if done else Step((*commands(spec, base_url), Command.of("END")))

    planner.__doc__ = commands.__doc__
    return planner


def _lock(spec: JobSpec, base_url: str) -> tuple[Command, ...]:
    """EXEC FullyLock (or PartiallyLock)."""
    mode = SERVICE_JOBS["lock"].value(spec, "mode")
    operation = "FullyLock" if mode == "full" else "PartiallyLock"
    return (_async(f"{LAWMO_ROOT}/Operations/{operation}", base_url),)


def _unlock(spec: JobSpec, base_url: str) -> tuple[Command, ...]:
    """EXEC UnLock."""
    return (_async(f"{LAWMO_ROOT}/Operations/UnLock", base_url),)


def _wipe(spec: JobSpec, base_url: str) -> tuple[Command, ...]:
    """Mark each item ToBeWiped (HGET of the text 'true'), then EXEC Wipe; or EXEC
    FactoryReset."""
    job = SERVICE_JOBS["wipe"]
    if job.value(spec, "reset") == "true":
        return (_async(f"{LAWMO_ROOT}/Operations/FactoryReset", base_url),)
    marks = tuple(
        Command.of(
            "HGET", f"{base_url}/values/true", f"{LAWMO_ROOT}/AvailableWipeList/{item}/ToBeWiped"
        )
        for item in job.value(spec, "items").split(",")
    )
    return (*marks, _async(f"{LAWMO_ROOT}/Operations/Wipe", base_url))


# DiagMon and DCMO ----------------------------------------------------------------


def _diagnostics(spec: JobSpec, base_url: str) -> tuple[Command, ...]:
    """EXEC Collect on a function; with trap=true also set its Threshold (HGET, if
    given) and EXEC ArmTrap, whose alert comes whenever the trap fires."""
    job = SERVICE_JOBS["diagnostics"]
    function = f"{DIAGMON}/{DIAGMON_INSTANCE}/Functions/{job.value(spec, 'function')}"
    commands = [_async(f"{function}/Operations/Collect", base_url)]
    if job.value(spec, "trap") == "true":
        threshold = job.value(spec, "threshold")
        if threshold:
            commands.append(
                Command.of("HGET", f"{base_url}/values/{threshold}", f"{function}/Threshold")
            )
        commands.append(_async(f"{function}/Operations/ArmTrap", base_url))
    return tuple(commands)


def _capability(spec: JobSpec, base_url: str) -> tuple[Command, ...]:
    """EXEC Enable or Disable on the capability's DCMO instance."""
    job = SERVICE_JOBS["capability"]
    operation = "Enable" if job.value(spec, "enable") == "true" else "Disable"
    return (_async(f"{DCMO}/{job.value(spec, 'name')}/Operations/{operation}", base_url),)


_NAME_PARAM = Param("dmlab-notes", "the software component", _name, NAME_RULE)
_BOOL = _one_of("true", "false")

SERVICE_JOBS: dict[str, ServiceJob] = {
    job.name: job
    for job in (
        ServiceJob(
            "software-install",
            "SCOMO",
            "download and install a component",
            {
                "name": _NAME_PARAM,
                "version": Param("1.0.0", "its version", is_version, "like 1.2.3"),
            },
            "Add ./SCOMO/Download/<x> (PkgID, PkgURL…), Exec <x>/Operations/DownloadInstall; "
            "later alert 1226 urn:oma:at:scomo:1.0:OperationComplete",
            _software_install,
        ),
        ServiceJob(
            "software-remove",
            "SCOMO",
            "remove a deployed component",
            {"name": _NAME_PARAM},
            "Exec ./SCOMO/Inventory/Deployed/<x>/Operations/Remove; later alert 1226 "
            "urn:oma:at:scomo:1.0:OperationComplete",
            _software_remove,
        ),
        ServiceJob(
            "lock",
            "LAWMO",
            "lock the device (full or partial)",
            {"mode": Param("full", "full or partial", _one_of("full", "partial"), "full|partial")},
            "Exec ./LAWMO/Operations/FullyLock (or PartiallyLock); later alert 1226 "
            "urn:oma:at:lawmo:1.0:OperationComplete",
            _one_round(_lock),
        ),
        ServiceJob(
            "unlock",
            "LAWMO",
            "unlock the device",
            {},
            "Exec ./LAWMO/Operations/UnLock; later alert 1226 urn:oma:at:lawmo:1.0:OperationComplete",
            _one_round(_unlock),
        ),
        ServiceJob(
            "wipe",
            "LAWMO",
            "wipe the marked data (or factory reset)",
            {
                "items": Param(
                    "Contacts,Photos", "wipe list items", _names, "a comma list of names"
                ),
                "reset": Param("false", "reset instead of wiping items", _BOOL, "true|false"),
            },
            "Replace ./LAWMO/AvailableWipeList/<x>/ToBeWiped per item, Exec …/Operations/Wipe "
            "(or Exec …/FactoryReset); later alert 1226 urn:oma:at:lawmo:1.0:OperationComplete",
            _one_round(_wipe),
        ),
        ServiceJob(
            "diagnostics",
            "DiagMon",
            "take a reading; arm a trap",
            {
                "function": Param("Battery", "what to read", _name, NAME_RULE),
                "trap": Param("false", "also arm the function's trap", _BOOL, "true|false"),
                "threshold": Param("", "the trap's threshold", _threshold, "an integer"),
            },
            "Exec on the DiagMon function (Replace of its threshold); later alert 1226 with the "
            "reading, and alert 1226 again when an armed trap fires",
            _one_round(_diagnostics),
        ),
        ServiceJob(
            "capability",
            "DCMO",
            "enable or disable a capability",
            {
                "name": Param("Camera", "the capability", _name, NAME_RULE),
                "enable": Param("false", "enable (true) or disable (false)", _BOOL, "true|false"),
            },
            "Exec ./DCMO/<x>/Operations/Disable (or Enable); later alert 1226 "
            "urn:oma:at:dcmo:1.0:OperationComplete",
            _one_round(_capability),
        ),
    )
}
