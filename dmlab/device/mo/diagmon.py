"""DiagMon, diagnostics and monitoring: a one-shot reading, and a trap that
reports later when a reading falls below its threshold. Only the MOID is
OMA's for certain; the tree below is the lab's (lab choice ``diagmon-tree``)::

    urn:oma:mo:oma-diagmon:1.0/DIAGMON1/Functions/<name>/
        Value, Unit, Threshold (rw), Trap ("armed" | "disarmed"),
        Operations/{Collect, ArmTrap, DisarmTrap}

``Collect`` reports the reading in ``urn:oma:at:diagmon:1.0:OperationComplete``;
an armed trap that fires sends ``urn:oma:at:diagmon:1.0:Trap`` and disarms.
"""

from __future__ import annotations

from typing import Any

from ...protocol.alerts import generic_alert
from ...protocol.messages import Alert, Status
from ...protocol.services import (
    DIAGMON,
    DIAGMON_ALERT,
    DIAGMON_INSTANCE,
    DIAGMON_OPERATIONS,
    DIAGMON_TRAP_ALERT,
    DiagMonResult,
)
from ..tree import ClientURI, ManagementTree
from ._base import ExecContext, Operation, Outcome, ServiceObject, interior, leaf, operations

#: Known functions: unit, first reading, default trap threshold.
FUNCTIONS: dict[str, tuple[str, int, int]] = {
    "Battery": ("%", 87, 15),
    "Signal": ("dBm", -71, -110),
    "Storage": ("bytes", 0, 65536),  # first reading: the device's free space
}


class DiagMon(ServiceObject):
    moid = DIAGMON

    def __init__(
        self, tree: ManagementTree, *, functions: tuple[str, ...], free_space: int
    ) -> None:
        super().__init__(tree)
        self.instance = DIAGMON_INSTANCE
        #: Where an armed trap reports: the ServerURI of its ArmTrap.
        self._traps: dict[str, tuple[ExecContext, str]] = {}
        nodes = []
        for name in functions:
            unit, first, threshold = FUNCTIONS.get(name, ("", 0, 0))
            value = free_space if name == "Storage" else first
            nodes.append(
                interior(
                    name,
                    leaf("Value", value),
                    leaf("Unit", unit),
                    leaf("Threshold", threshold, acl="rw"),
                    leaf("Trap", "disarmed"),
                    operations(*DIAGMON_OPERATIONS),
                )
            )
        tree.add_instance(
            DIAGMON,
            self.instance,
            interior("", interior("Functions", *nodes, permanent=True), permanent=True),
        )

    def uri(self, *path: str) -> ClientURI:
        return ClientURI(DIAGMON, self.instance, path)

    def reading(self, name: str) -> Any:
        return self.tree.get(self.uri("Functions", name, "Value"), force=True)

    def prepare(self, uri: ClientURI) -> Operation:
        path = uri.path
        if (
            len(path) != 4
            or path[0] != "Functions"
            or path[2] != "Operations"
            or path[3] not in DIAGMON_OPERATIONS
        ):
            raise self.refuse(uri)
        name, operation = path[1], path[3]
        if operation == "Collect":
            return Operation(uri, DIAGMON_ALERT, lambda ctx: self._collect(ctx, name))
        arm = operation == "ArmTrap"
        return Operation(uri, DIAGMON_ALERT, lambda ctx: self._trap(ctx, name, arm))

    async def exec(self, ctx: ExecContext, uri: ClientURI, server_uri: str | None) -> Status:
        """ArmTrap's report is the trap itself, whenever it fires: 202 and no
        OperationComplete alert (the ServerURI is where the trap will report)."""
        operation = self.prepare(uri)
        if uri.path[3] == "ArmTrap" and server_uri is not None:
            self._traps[uri.path[1]] = (ctx, server_uri)
            await operation.work(ctx)
            return Status(202)
        return await super().exec(ctx, uri, server_uri)

    async def _collect(self, ctx: ExecContext, name: str) -> Outcome:
        await self.pause(ctx)
        value = self.reading(name)
        unit = self.tree.get(self.uri("Functions", name, "Unit"), force=True)
        return Outcome(
            DiagMonResult.SUCCESSFUL,
            ok=True,
            target_uri=str(self.uri("Functions", name, "Value")),
            data={"Value": value, "Unit": unit},
        )

    async def _trap(self, ctx: ExecContext, name: str, arm: bool) -> Outcome:
        self.set(self.uri("Functions", name, "Trap"), "armed" if arm else "disarmed")
        if not arm:
            self._traps.pop(name, None)
        return Outcome(DiagMonResult.SUCCESSFUL, ok=True)

    async def change(self, name: str, value: int) -> Alert | None:
        """The world changed a reading (the battery ran down). An armed trap whose
        threshold the value falls below fires: the alert is sent and returned."""
        uri = self.uri("Functions", name)
        self.set(uri.child("Value"), value)
        threshold = _as_int(self.tree.get(uri.child("Threshold"), force=True))
        armed = self._traps.get(name)
        if armed is None or threshold is None or value >= threshold:
            return None
        ctx, server_uri = self._traps.pop(name)
        self.set(uri.child("Trap"), "disarmed")
        alert = generic_alert(
            DIAGMON_TRAP_ALERT,
            str(uri),
            data={"Value": value, "Threshold": threshold},
            mark="warning",
        )
        await self.report(ctx, alert, server_uri)
        return alert


def _as_int(value: Any) -> int | None:
    """A threshold as the tree holds it: an integer, or text a server HGET wrote."""
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None
