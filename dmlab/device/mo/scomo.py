"""SCOMO, software component management: download, install, activate,
deactivate and remove, with an inventory of Delivered and Deployed components.

The server creates ``Download/<PkgID>`` by HGET of a descriptor (lab choice
``scomo-descriptor``); the device then adds ``Status`` and the executable
``Operations`` beside it, as a SCOMO client that adds a package's child nodes
does. Every operation ends with ``urn:oma:at:scomo:1.0:OperationComplete``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...protocol.firmware import Package, PackageError, parse_package
from ...protocol.services import (
    SCOMO,
    SCOMO_ALERT,
    SCOMO_DEPLOYED_OPERATIONS,
    SCOMO_DOWNLOAD_OPERATIONS,
    SCOMO_INSTANCE,
    DeployedState,
    DeployedStatus,
    DownloadStatus,
    ScomoResult,
)
from ..tree import ClientURI, ManagementTree, NodeNotFound
from ._base import ExecContext, Operation, Outcome, ServiceObject, interior, leaf, operations

#: A download agent tries a transient failure (no answer, 429, 5xx) again, briefly.
DOWNLOAD_ATTEMPTS = 3
RETRY_PAUSE = 0.2

#: Operations under ``Inventory/Delivered/<x>``.
DELIVERED_OPERATIONS = ("Install", "InstallInactive", "Remove")


class Scomo(ServiceObject):
    moid = SCOMO

    def __init__(self, tree: ManagementTree, *, free_space: int) -> None:
        super().__init__(tree)
        self.instance = SCOMO_INSTANCE
        #: Bytes the device can install into (``Behaviour.free_space``).
        self.free_space = free_space
        self._packages: dict[str, Package] = {}  # delivered, by PkgID
        self._sizes: dict[str, int] = {}  # deployed component → bytes it takes
        tree.add_instance(
            SCOMO,
            self.instance,
            interior(
                "",
                interior("Download", acl="rw", permanent=True),
                interior(
                    "Inventory",
                    interior("Delivered", permanent=True),
                    interior("Deployed", permanent=True),
                    permanent=True,
                ),
                permanent=True,
            ),
        )
        tree.subscribe(self.uri("Download"), self._download_added)

    def uri(self, *path: str) -> ClientURI:
        return ClientURI(SCOMO, self.instance, path)

    @property
    def used(self) -> int:
        return sum(self._sizes.values())

    def deployed(self) -> dict[str, Any]:
        """The Deployed inventory, as the device sees it."""
        value = self.tree.get(self.uri("Inventory", "Deployed"), force=True)
        return value if isinstance(value, dict) else {}

    # -- the server wrote Download/<x>: add what it cannot --------------------

    def _download_added(self, changed: str) -> None:
        uri = ClientURI.parse(changed)
        if uri.instance != self.instance or len(uri.path) != 2:
            return
        try:
            node = self.tree.node(uri)
        except NodeNotFound:
            return  # deleted
        if node.children is None or "Operations" in node.children:
            return
        self.tree.attach(uri, leaf("Status", int(DownloadStatus.IDLE)))
        self.tree.attach(uri, operations(*SCOMO_DOWNLOAD_OPERATIONS))

    # -- EXEC ----------------------------------------------------------------

    def prepare(self, uri: ClientURI) -> Operation:
        path = uri.path
        if len(path) == 4 and path[0] == "Download" and path[2] == "Operations":
            pkg, name = path[1], path[3]
            return Operation(
                uri, SCOMO_ALERT, lambda ctx: self._download(ctx, pkg, name), key=f"pkg {pkg}"
            )
        if len(path) == 5 and path[:2] == ("Inventory", "Delivered") and path[3] == "Operations":
            pkg, name = path[2], path[4]
            return Operation(
                uri, SCOMO_ALERT, lambda ctx: self._delivered(ctx, pkg, name), key=f"pkg {pkg}"
            )
        if len(path) == 5 and path[:2] == ("Inventory", "Deployed") and path[3] == "Operations":
            component, name = path[2], path[4]
            return Operation(
                uri,
                SCOMO_ALERT,
                lambda ctx: self._deployed(ctx, component, name),
                key=f"component {component}",
            )
        raise self.refuse(uri)

    async def _status(self, ctx: ExecContext, uri: ClientURI, status: int) -> None:
        self.set(uri.child("Status"), int(status))
        ctx.log(f"SCOMO {'/'.join(uri.path)} Status {int(status)}")
        await self.pause(ctx)

    async def _download(self, ctx: ExecContext, pkg: str, operation: str) -> Outcome:
        node = self.uri("Download", pkg)
        await self._status(ctx, node, DownloadStatus.DOWNLOAD_PROGRESSING)
        fetched = await self._fetch(ctx, node)
        if isinstance(fetched, ScomoResult):
            await self._status(ctx, node, DownloadStatus.DOWNLOAD_FAILED)
            return Outcome(fetched, ok=False)
        await self._status(ctx, node, DownloadStatus.DOWNLOAD_COMPLETE)
        descriptor = self.tree.get(node, force=True)
        if operation == "Download":
            self._deliver(pkg, fetched, descriptor)
            self.tree.delete(node, force=True)
            return Outcome(ScomoResult.SUCCESSFUL, ok=True, target_uri=str(self.delivered(pkg)))
        await self._status(ctx, node, DownloadStatus.INSTALL_PROGRESSING)
        active = operation == "DownloadInstall"
        result = self._install(pkg, fetched, descriptor, active=active)
        if result is not ScomoResult.SUCCESSFUL:
            await self._status(ctx, node, DownloadStatus.INSTALL_FAILED_WITH_DATA)
            return Outcome(result, ok=False)
        self.tree.delete(node, force=True)  # lab choice scomo-after-install
        return Outcome(result, ok=True, target_uri=str(self.component(fetched, descriptor)))

    async def _fetch(self, ctx: ExecContext, node: ClientURI) -> Package | ScomoResult:
        try:
            url = self.tree.get(node.child("PkgURL"), force=True)
        except NodeNotFound:
            url = None
        if not isinstance(url, str) or not url:
            return ScomoResult.DOWNLOAD_FAILED
        if ctx.behaviour.download_fails:
            ctx.log(f"SCOMO download of {url} fails (behaviour)")
            return ScomoResult.DOWNLOAD_FAILED
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                code, body, _ = await ctx.port.http_get(url)
            except Exception as exc:
                ctx.log(f"SCOMO download of {url} failed ({type(exc).__name__}: {exc})")
                code, body = 0, b""
            if code == 0 or code == 429 or code >= 500:  # transient: try again, briefly
                await asyncio.sleep(RETRY_PAUSE * attempt)
                continue
            break
        if code == 0:
            return ScomoResult.DOWNLOAD_FAILED
        if not 200 <= code < 300:
            ctx.log(f"SCOMO download of {url} answered {code}")
            return ScomoResult.DOWNLOAD_FAILED
        try:
            return parse_package(body)
        except PackageError as exc:
            ctx.log(f"SCOMO package from {url}: {exc}")
            return ScomoResult.PACKAGE_VALIDATION_FAILED

    def delivered(self, pkg: str) -> ClientURI:
        return self.uri("Inventory", "Delivered", pkg)

    def component(self, package: Package, descriptor: Any) -> ClientURI:
        return self.uri("Inventory", "Deployed", self._component_name(package, descriptor))

    @staticmethod
    def _component_name(package: Package, descriptor: Any) -> str:
        name = descriptor.get("Name") if isinstance(descriptor, dict) else None
        return str(name or package.name or "component")

    def _deliver(self, pkg: str, package: Package, descriptor: Any) -> None:
        self._packages[pkg] = package
        info = descriptor if isinstance(descriptor, dict) else {}
        self.tree.attach(
            self.uri("Inventory", "Delivered"),
            interior(
                pkg,
                leaf("PkgID", pkg),
                leaf("Name", self._component_name(package, descriptor)),
                leaf("Description", str(info.get("Description", ""))),
                leaf("State", 10),  # delivered
                leaf("Status", 10),
                operations(*DELIVERED_OPERATIONS),
            ),
        )

    def _install(self, pkg: str, package: Package, descriptor: Any, *, active: bool) -> ScomoResult:
        name = self._component_name(package, descriptor)
        size = len(package.image)
        free = self.free_space - self.used + self._sizes.get(name, 0)
        if size > free:
            return ScomoResult.INSTALL_OUT_OF_MEMORY
        info = descriptor if isinstance(descriptor, dict) else {}
        state = DeployedState.ACTIVE if active else DeployedState.INACTIVE
        self.tree.attach(
            self.uri("Inventory", "Deployed"),
            interior(
                name,
                leaf("ID", name),
                leaf("PkgIDRef", pkg),
                leaf("Name", name),
                leaf("Description", str(info.get("Description", ""))),
                leaf("Version", package.version),
                leaf("State", int(state)),
                leaf("Status", int(DeployedStatus.IDLE)),
                leaf("EnvType", str(info.get("EnvType", ""))),
                operations(*SCOMO_DEPLOYED_OPERATIONS),
            ),
        )
        self._sizes[name] = size
        return ScomoResult.SUCCESSFUL

    async def _delivered(self, ctx: ExecContext, pkg: str, operation: str) -> Outcome:
        node = self.delivered(pkg)
        package = self._packages.get(pkg)
        if operation == "Remove":
            self._packages.pop(pkg, None)
            self.tree.delete(node, force=True)
            return Outcome(ScomoResult.SUCCESSFUL, ok=True)
        if package is None:
            return Outcome(ScomoResult.INSTALL_FAILED, ok=False)
        await self.pause(ctx)
        descriptor = {"Name": self.tree.get(node.child("Name"), force=True)}
        result = self._install(pkg, package, descriptor, active=operation == "Install")
        if result is not ScomoResult.SUCCESSFUL:
            return Outcome(result, ok=False)
        self.set(node.child("State"), 20)  # installed
        return Outcome(result, ok=True, target_uri=str(self.component(package, descriptor)))

    async def _deployed(self, ctx: ExecContext, component: str, operation: str) -> Outcome:
        node = self.uri("Inventory", "Deployed", component)
        progressing, failed, code = {
            "Activate": (
                DeployedStatus.ACTIVATE_PROGRESSING,
                DeployedStatus.ACTIVATE_FAILED,
                ScomoResult.ACTIVATE_FAILED,
            ),
            "Deactivate": (
                DeployedStatus.DEACTIVATE_PROGRESSING,
                DeployedStatus.DEACTIVATE_FAILED,
                ScomoResult.DEACTIVATE_FAILED,
            ),
            "Remove": (
                DeployedStatus.REMOVE_PROGRESSING,
                DeployedStatus.REMOVE_FAILED,
                ScomoResult.REMOVE_FAILED,
            ),
        }[operation]
        await self._status(ctx, node, progressing)
        if operation == "Remove":
            if ctx.behaviour.remove_fails:
                await self._status(ctx, node, failed)
                return Outcome(code, ok=False, target_uri=str(node))
            self.tree.delete(node, force=True)
            self._sizes.pop(component, None)
            return Outcome(ScomoResult.SUCCESSFUL, ok=True, target_uri=str(node))
        state = DeployedState.ACTIVE if operation == "Activate" else DeployedState.INACTIVE
        self.set(node.child("State"), int(state))
        await self._status(ctx, node, DeployedStatus.IDLE)
        return Outcome(ScomoResult.SUCCESSFUL, ok=True, target_uri=str(node))
