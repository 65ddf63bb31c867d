"""LAWMO, lock and wipe: full and partial lock, unlock, wipe of the items marked
in the wipe list, factory reset. ``State`` is 10 fully locked, 20 partially
locked, 30 unlocked; every operation ends with ``urn:oma:at:lawmo:1.0:OperationComplete``.

The device's user data is modelled as a count of entries per wipe list item, so
a wipe has something to remove and a notebook something to show.
"""

from __future__ import annotations

from ...protocol.services import (
    LAWMO,
    LAWMO_ALERT,
    LAWMO_INSTANCE,
    LAWMO_OPERATIONS,
    LawmoResult,
    LawmoState,
)
from ..tree import ClientURI, ManagementTree
from ._base import ExecContext, Operation, Outcome, ServiceObject, interior, leaf, operations

#: What a new device holds, per wipe list item (entries).
USER_DATA = {"Contacts": 120, "Messages": 480, "Photos": 36, "SDCard": 12}

TRUE = "true"


class Lawmo(ServiceObject):
    moid = LAWMO

    def __init__(self, tree: ManagementTree) -> None:
        super().__init__(tree)
        self.instance = LAWMO_INSTANCE
        self.user_data = dict(USER_DATA)
        wipe_list = interior(
            "AvailableWipeList",
            *(
                interior(item, leaf("ListItemName", item), leaf("ToBeWiped", "false", acl="rw"))
                for item in USER_DATA
            ),
            permanent=True,
        )
        tree.add_instance(
            LAWMO,
            self.instance,
            interior(
                "",
                leaf("State", int(LawmoState.UNLOCKED)),
                wipe_list,
                interior("LAWMOConfig", leaf("NotifyUser", "false", acl="rw"), permanent=True),
                operations(*LAWMO_OPERATIONS),
                permanent=True,
            ),
        )

    def uri(self, *path: str) -> ClientURI:
        return ClientURI(LAWMO, self.instance, path)

    @property
    def state(self) -> LawmoState:
        return LawmoState(self.tree.get(self.uri("State"), force=True))

    def prepare(self, uri: ClientURI) -> Operation:
        if len(uri.path) != 2 or uri.path[0] != "Operations" or uri.path[1] not in LAWMO_OPERATIONS:
            raise self.refuse(uri)
        name = uri.path[1]
        work = {
            "FullyLock": lambda ctx: self._lock(
                ctx, LawmoState.FULLY_LOCKED, LawmoResult.FULLY_LOCK_FAILED
            ),
            "PartiallyLock": lambda ctx: self._lock(
                ctx, LawmoState.PARTIALLY_LOCKED, LawmoResult.PARTIALLY_LOCK_FAILED
            ),
            "UnLock": lambda ctx: self._lock(ctx, LawmoState.UNLOCKED, LawmoResult.UNLOCK_FAILED),
            "Wipe": self._wipe,
            "FactoryReset": self._factory_reset,
        }[name]
        return Operation(uri, LAWMO_ALERT, work, key="lawmo")

    async def _lock(self, ctx: ExecContext, state: LawmoState, failure: LawmoResult) -> Outcome:
        await self.pause(ctx)
        if ctx.behaviour.lock_fails:
            ctx.log(f"LAWMO cannot change State to {int(state)} (behaviour)")
            return Outcome(failure, ok=False)
        self.set(self.uri("State"), int(state))
        return Outcome(LawmoResult.SUCCESSFUL, ok=True)

    def _marked(self) -> list[str]:
        wipe_list = self.tree.get(self.uri("AvailableWipeList"), force=True)
        return [
            item
            for item, fields in wipe_list.items()
            if isinstance(fields, dict) and str(fields.get("ToBeWiped", "")).lower() == TRUE
        ]

    async def _wipe(self, ctx: ExecContext) -> Outcome:
        marked = self._marked()
        await self.pause(ctx)
        if ctx.behaviour.wipe_refused or not marked:
            why = "refused (behaviour)" if marked else "nothing marked ToBeWiped"
            ctx.log(f"LAWMO wipe not performed: {why}")
            return Outcome(LawmoResult.WIPE_NOT_PERFORMED, ok=False)
        for item in marked:
            self.user_data[item] = 0
            self.set(self.uri("AvailableWipeList", item, "ToBeWiped"), "false")
        return Outcome(LawmoResult.WIPE_SUCCESSFUL, ok=True, data={"Wiped": ",".join(marked)})

    async def _factory_reset(self, ctx: ExecContext) -> Outcome:
        await self.pause(ctx)
        if ctx.behaviour.wipe_refused:
            ctx.log("LAWMO factory reset not performed (behaviour)")
            return Outcome(LawmoResult.WIPE_NOT_PERFORMED, ok=False)
        for item in self.user_data:
            self.user_data[item] = 0
        self.set(self.uri("State"), int(LawmoState.UNLOCKED))
        return Outcome(LawmoResult.SUCCESSFUL, ok=True)
