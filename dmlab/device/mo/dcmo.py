"""DCMO, device capability management: enable and disable a capability such as
the camera. One instance per capability (``urn:oma:mo:oma-dcmo:1.0/Camera/…``,
lab choice ``mo-instance-names``); a capability the device lacks has no instance,
so an EXEC on it is a 404 at once. Results: ``urn:oma:at:dcmo:1.0:OperationComplete``.
"""

from __future__ import annotations

from ...protocol.services import DCMO, DCMO_ALERT, DCMO_OPERATIONS, DcmoResult
from ..tree import ClientURI, ManagementTree
from ._base import ExecContext, Operation, Outcome, ServiceObject, interior, leaf, operations

#: DCMO's Group of the capabilities the lab knows.
GROUPS = {"Camera": "HARDWARE", "Bluetooth": "CONNECTIVITY", "WLAN": "CONNECTIVITY", "USB": "IO"}


class Dcmo(ServiceObject):
    moid = DCMO

    def __init__(self, tree: ManagementTree, *, capabilities: tuple[str, ...]) -> None:
        super().__init__(tree)
        for name in capabilities:
            tree.add_instance(
                DCMO,
                name,
                interior(
                    "",
                    leaf("Property", name),
                    leaf("Group", GROUPS.get(name, "HARDWARE")),
                    leaf("Description", f"the device's {name}"),
                    leaf("Attached", "true"),
                    leaf("Enabled", "true"),
                    operations(*DCMO_OPERATIONS),
                    permanent=True,
                ),
            )

    def enabled(self, capability: str) -> bool:
        return self.tree.get(ClientURI(DCMO, capability, ("Enabled",)), force=True) == "true"

    def prepare(self, uri: ClientURI) -> Operation:
        if len(uri.path) != 2 or uri.path[0] != "Operations" or uri.path[1] not in DCMO_OPERATIONS:
            raise self.refuse(uri)
        enable = uri.path[1] == "Enable"
        return Operation(
            uri, DCMO_ALERT, lambda ctx: self._switch(ctx, uri.instance, enable), key=uri.instance
        )

    async def _switch(self, ctx: ExecContext, capability: str, enable: bool) -> Outcome:
        await self.pause(ctx)
        if ctx.behaviour.capability_fails:
            ctx.log(f"DCMO {capability} cannot be switched (behaviour)")
            return Outcome(DcmoResult.CLIENT_ERROR, ok=False)
        self.set(ClientURI(DCMO, capability, ("Enabled",)), "true" if enable else "false")
        return Outcome(DcmoResult.SUCCESSFUL, ok=True)
