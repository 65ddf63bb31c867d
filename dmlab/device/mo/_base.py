"""What every service MO shares: running an EXEC now or in the background, and
reporting the result by a generic alert (lab choice ``service-exec-async``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ...protocol.alerts import generic_alert
from ...protocol.messages import Alert, Status
from ..tree import ClientURI, ManagementTree, Node, NotAllowed, TreeError

if TYPE_CHECKING:
    from ..executor import Behaviour, DevicePort

logger = logging.getLogger(__name__)


class ExecContext(Protocol):
    """What a service MO needs from the device's executor."""

    port: DevicePort
    behaviour: Behaviour

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...

    def log(self, line: str) -> None: ...


class ServiceError(TreeError):
    """An EXEC refused at once (the status code is the DM status, e.g. 409)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an operation ended: the MO's result code, and what the alert carries."""

    code: int
    ok: bool
    target_uri: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Operation:
    """An accepted EXEC: the node run, the alert type reporting it, the work."""

    source: ClientURI
    alert_type: str
    work: Callable[[ExecContext], Awaitable[Outcome]]
    #: Operations on the same key do not overlap (a second one is a 409).
    key: str = ""


def leaf(name: str, value: Any, acl: str = "r") -> Node:
    return Node.leaf(name, value, acl=acl)


def interior(name: str, *children: Node, acl: str = "r", permanent: bool = False) -> Node:
    return Node.interior(name, *children, acl=acl, permanent=permanent)


def operations(*names: str) -> Node:
    """An ``Operations`` node whose children are executable."""
    return interior("Operations", *(leaf(n, None, acl="x") for n in names))


class ServiceObject:
    """One MO with behaviour. Subclasses build their nodes and map an executed
    node to an :class:`Operation` in :meth:`prepare`."""

    moid: ClassVar[str]

    def __init__(self, tree: ManagementTree) -> None:
        self.tree = tree
        self._busy: set[str] = set()

    def prepare(self, uri: ClientURI) -> Operation:
        raise NotImplementedError

    async def exec(self, ctx: ExecContext, uri: ClientURI, server_uri: str | None) -> Status:
        """Run the operation now (no ServerURI) or answer 202 and report by alert."""
        operation = self.prepare(uri)
        key = operation.key or str(uri)
        if key in self._busy:
            raise ServiceError(409, f"an operation is already running on {key}")
        self._busy.add(key)
        if server_uri is None:
            try:
                outcome = await self._run(ctx, operation)
            finally:
                self._busy.discard(key)
            return Status(200 if outcome.ok else 500)
        ctx.spawn(self._run_and_report(ctx, operation, key, server_uri))
        return Status(202)

    async def _run(self, ctx: ExecContext, operation: Operation) -> Outcome:
        try:
            outcome = await operation.work(ctx)
        except Exception as exc:
            logger.exception("%s failed", operation.source)
            ctx.log(f"{operation.source} failed ({type(exc).__name__}: {exc})")
            outcome = Outcome(1400, ok=False)
        ctx.log(f"{operation.source} -> {outcome.code}")
        return outcome

    async def _run_and_report(
        self, ctx: ExecContext, operation: Operation, key: str, server_uri: str
    ) -> None:
        try:
            outcome = await self._run(ctx, operation)
        finally:
            self._busy.discard(key)
        await self.report(ctx, result_alert(operation, outcome), server_uri)

    @staticmethod
    async def report(ctx: ExecContext, alert: Alert, server_uri: str) -> None:
        """Send a generic alert to the EXEC's ServerURI; a failure is logged, never raised."""
        try:
            await ctx.port.alert(alert, server_uri)
        except Exception as exc:
            ctx.log(f"alert {alert} failed ({type(exc).__name__}: {exc})")
        else:
            ctx.log(f"alert {alert}")

    @staticmethod
    async def pause(ctx: ExecContext) -> None:
        """A step of real work takes time (``Behaviour.step_delay``)."""
        await asyncio.sleep(ctx.behaviour.step_delay)

    def set(self, uri: ClientURI, value: Any) -> None:
        self.tree.set(uri, value, force=True)

    def refuse(self, uri: ClientURI) -> NotAllowed:
        return NotAllowed(f"{uri} is not an operation of {self.moid}")


def result_alert(operation: Operation, outcome: Outcome) -> Alert:
    """The generic alert reporting an operation (lab choice ``service-alert-data``)."""
    return generic_alert(
        operation.alert_type,
        str(operation.source),
        result=outcome.code,
        data=outcome.data,
        ok=outcome.ok,
        target_uri=outcome.target_uri,
    )
