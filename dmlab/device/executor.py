"""Run a package 2 against the management tree, without doing any I/O itself.

Everything that leaves the device goes through a :class:`DevicePort` the caller
supplies (the HTTPS client in a running lab, an in-memory fake in tests), so the
command semantics can be tested and read on their own.

Lab choices made here, each the lab's reading where the brief is silent:

* A remote answer outside 2xx to HGET, HPUT or HPOST is a ``500`` (command
  failed); so is any exception from the port. The remote code is kept in
  :attr:`Executor.history`, not in the status, because a device ``404`` means
  "no such node", not "the server said 404".
* HGET stores text (UTF-8) or, for a JSON content type, the decoded JSON: an
  object becomes a subtree, unless the ClientURI names an existing leaf, which
  keeps the JSON text. A body that cannot be decoded as its type is a ``415``.
  Without a ClientURI the device picks the place (specification §3.1) and returns
  it in the status's ``URI``: a new node ``EXT//Downloads/<n>`` (lab choice
  hget-place), at most :data:`MAX_DOWNLOADS` of them (then ``409``).
* DEFAULT (specification §3.10) keeps one ServerURI per MOID, a later DEFAULT
  replacing it, and answers ``200`` (lab choice default-status);
  :meth:`Executor.fetch_default` fetches from it, as an HGET without ClientURI,
  when the device needs an MO it lacks, and reports to nobody.
* A command the device does not know gets ``501`` and the rest of the package
  runs (lab choice unknown-command).
* HPUT/HPOST and SUB notifications send the specification's MO serialization
  (:mod:`.serialize`), as ``application/json``; a receiver that answers ``415`` with
  ``OMADM-Accept`` gets one retry in the first listed type the device can write, and
  if it lists none the command's status is ``406`` Not Acceptable (specification
  §4.2). A SUB notification for a deleted node sends ``[]``.
* A ClientURI may carry the query ``?cv=<validator>`` (specification §10): GET, HPUT
  and HPOST answer ``304`` and send nothing when the MO instance's cache validator
  is still that one. Other query fields are not implemented (``501``).
* EXEC on a FUMO operation answers ``202`` and reports by a generic alert
  (:func:`dmlab.protocol.alerts.generic_alert`, lab choice ``fumo-alert``), sent to
  the EXEC's ServerURI when it has one (specification §3.5), else to the device's
  server's ``/alert``. ``SourceURI`` is the operation node
  (``urn:oma:mo:oma-fumo:1.0/fw1/DownloadAndUpdate``). EXEC while a job runs on the
  same instance, or Update with nothing to install, is a ``409`` at once.
* A firmware package is a JSON object (:func:`firmware_package` makes one):
  ``{"version": "2.0.0", "name": ..., "image": <base64>, "size": n, "sha256": hex}``;
  only ``version`` is required; ``size`` and ``sha256`` are checked against the
  decoded image when present. A package that fails the checks is corrupted (402).
  An Update installs ``Update/PkgData`` when the server wrote one, else the
  package an earlier Download fetched; a successful install empties PkgData.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol import media
from ..protocol.alerts import FUMO_ALERT_TYPES, generic_alert
from ..protocol.firmware import Package, PackageError, parse_package
from ..protocol.messages import Alert, Command, Status
from . import serialize
from .objects import DEVINFO, EXT, FUMO, FUMO_OPERATIONS, FumoResult, FumoState
from .tree import ClientURI, ManagementTree, NodeNotFound, NotAllowed, TreeError

if TYPE_CHECKING:
    from .mo import ServiceObject

logger = logging.getLogger(__name__)


class DevicePort(Protocol):
    """The device's way out: HTTP, its browser component and new-session alerts."""

    async def http_get(self, url: str) -> tuple[int, bytes, str]:
        """GET a URL: (status, body, content type)."""
        ...

    async def http_send(
        self, method: str, url: str, body: bytes, content_type: str
    ) -> tuple[int, str]:
        """PUT or POST a body; the HTTP status and the ``OMADM-Accept`` header ("" if none)."""
        ...

    async def show(self, url: str) -> None:
        """Open the browser component on the URL."""
        ...

    async def alert(self, alert: Alert, url: str | None = None) -> None:
        """Send a generic alert in a new session: to ``url`` (an EXEC's ServerURI), or
        without one to the device's server (``POST /alert``)."""
        ...


@dataclass(frozen=True, slots=True)
class Behaviour:
    """Knobs a lab turns to make a device fail or take its time."""

    update_fails: bool = False
    #: FUMO and SCOMO downloads fail (FUMO 503, SCOMO 1402).
    download_fails: bool = False
    #: Seconds between FUMO state changes (and between service MO steps).
    step_delay: float = 0.0
    #: Bytes SCOMO can install into; a bigger package fails with 1406.
    free_space: int = 1 << 20
    #: SCOMO's Remove fails (1408).
    remove_fails: bool = False
    #: LAWMO cannot lock or unlock (1402, 1403, 1404).
    lock_fails: bool = False
    #: LAWMO refuses Wipe and FactoryReset (1406, wipe not performed).
    wipe_refused: bool = False
    #: DCMO's capabilities (one instance each); any other is unknown (404).
    capabilities: tuple[str, ...] = ("Camera", "Bluetooth", "USB")
    #: DCMO's Enable and Disable fail (1400).
    capability_fails: bool = False
    #: DiagMon's functions; any other is unknown (404).
    diagnostics: tuple[str, ...] = ("Battery", "Signal", "Storage")


@dataclass(slots=True)
class ExecutionResult:
    """The outcome of one package 2: the package 3 statuses, and what the session does next."""

    statuses: list[Status] = field(default_factory=list)
    ended: bool = False
    continue_to: str | None = None
    shown: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.statuses)


class _Failed(Exception):
    """A command failed for a reason outside the tree."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _tree_value(value: Any) -> Any:
    """JSON as the tree holds it: objects become subtrees, other non-scalars JSON text."""
    if isinstance(value, dict):
        return {key: _tree_value(item) for key, item in value.items()}
    if (
        value is None
        or isinstance(value, str)
        or (isinstance(value, int) and not isinstance(value, bool))
    ):
        return value
    return json.dumps(value)


def _is_json(content_type: str) -> bool:
    base = media.base(content_type)
    return base == media.JSON or base.endswith("+json")


Handler = Callable[[tuple[str, ...], ExecutionResult], Awaitable[Status]]


#: Command name → the Executor method that runs it. Looked up per command rather than
#: bound per instance: ten bound methods were a tenth of an idle device's memory.
#: Most nodes HGET without ClientURI keeps under EXT//Downloads, and most MOIDs
#: DEFAULT remembers: both grow at the server's word, so both are bounded.
MAX_DOWNLOADS = 64
MAX_DEFAULTS = 64
#: Lines :attr:`Executor.history` keeps, the oldest going first.
HISTORY_SIZE = 1000

_HANDLERS: dict[str, str] = {
    "GET": "_get",
    "HGET": "_hget",
    "HPUT": "_hput",
    "HPOST": "_hpost",
    "DELETE": "_delete",
    "EXEC": "_exec",
    "SHOW": "_show",
    "CONT": "_cont",
    "SUB": "_sub",
    "UNSUB": "_unsub",
    "DEFAULT": "_default",
}


class Executor:
    """Executes commands for one device; keeps its background work and subscriptions.

    ``run`` answers each command in order; work that must not hold the session
    (FUMO jobs, SHOW, SUB notifications) runs in tasks that :meth:`drain` awaits.
    """

    def __init__(
        self,
        tree: ManagementTree,
        port: DevicePort,
        behaviour: Behaviour = Behaviour(),
        services: Mapping[str, ServiceObject] | None = None,
    ) -> None:
        self.tree = tree
        self.port = port
        self.behaviour = behaviour
        #: Management objects with behaviour (:mod:`dmlab.device.mo`), by MOID: EXEC
        #: on their nodes is theirs to run.
        self.services: Mapping[str, ServiceObject] = services or {}
        # A fleet of 100,000 idle devices pays for every empty container here: a deque
        # is 760 bytes before its first item, a set 216, a dict 64. So the history is a
        # list cut to HISTORY_SIZE, the sets are dicts (keys only), the SUB outbox comes
        # with the first SUB notification.
        #: One line per command and per background event, newest last.
        self.history: list[str] = []
        self._tasks: dict[asyncio.Task[None], None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subs: dict[tuple[str, str], Callable[[str], None]] = {}
        self._outbox: deque[tuple[str, list[serialize.Entry]]] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._packages: dict[str, Package] = {}
        self._busy: dict[str, None] = {}
        #: DEFAULT: MOID -> the ServerURI to fetch it from when it is missing
        self.defaults: dict[str, str] = {}

    # -- running a package ---------------------------------------------------

    async def run(self, commands: Sequence[Command]) -> ExecutionResult:
        """One status per command before END, in order; END stops the package."""
        self._adopt_loop()
        result = ExecutionResult()
        for command in commands:
            if command.name == "END":
                result.ended = True
                self._log("END")
                break
            result.statuses.append(await self.execute(command, result))
        return result

    async def execute(self, command: Command, result: ExecutionResult | None = None) -> Status:
        """One command's status; no failure escapes as an exception."""
        result = ExecutionResult() if result is None else result
        method = _HANDLERS.get(command.name)
        handler: Handler | None = getattr(self, method) if method else None
        note = ""
        try:
            status = Status(501) if handler is None else await handler(command.args, result)
        except (TreeError, _Failed) as exc:
            status, note = Status(exc.status), str(exc)
        except Exception as exc:  # the port failed (network, browser): expected in a lab
            logger.debug("command %s failed", command, exc_info=True)
            status, note = Status(500), f"{type(exc).__name__}: {exc}"
        self._log(f"{command} -> {status.sc}" + (f" ({note})" if note else ""))
        return status

    async def drain(self) -> None:
        """Wait for all background work, including work that work starts.

        Finished tasks are skipped here rather than left to the done callback that
        drops them from ``_tasks``: on Python 3.12+ gathering only finished tasks
        completes without yielding to the loop, so that callback would never run
        and this loop would spin.
        """
        self._adopt_loop()
        loop = asyncio.get_running_loop()
        while pending := [t for t in self._tasks if not t.done() and t.get_loop() is loop]:
            await asyncio.gather(*pending, return_exceptions=True)

    def close(self) -> None:
        """Drop this executor's SUB subscriptions from the tree."""
        for (uri, _), callback in self._subs.items():
            self.tree.unsubscribe(uri, callback)
        self._subs.clear()

    @property
    def subscriptions(self) -> list[tuple[str, str]]:
        """``(ClientURI, ServerURI)`` pairs."""
        return list(self._subs)

    def _log(self, line: str) -> None:
        self.history.append(line)
        if len(self.history) > HISTORY_SIZE:
            del self.history[0]

    # The service MOs' way in (``ExecContext``): background work and the history.
    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return self._spawn(coro)

    def log(self, line: str) -> None:
        self._log(line)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks[task] = None  # a task nobody references may be garbage collected
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    def _adopt_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._kick()

    # -- commands ------------------------------------------------------------

    def _unchanged(self, client_uri: str) -> tuple[str, bool]:
        """The ClientURI without its query, and whether its ``cv`` names the MO
        instance's current cache validator (then the command answers 304)."""
        uri, _, query = client_uri.partition("?")
        if not query:
            return uri, False
        fields = dict(part.partition("=")[::2] for part in query.split("&"))
        if set(fields) != {"cv"}:
            raise _Failed(501, f"ClientURI query {query!r}: only cv is implemented")
        parsed = ClientURI.parse(uri)
        if parsed.wildcard:
            raise _Failed(400, "cv names one MO instance, not '*'")
        return uri, fields["cv"] == serialize.cache_validator(
            self.tree, parsed.moid, parsed.instance
        )

    async def _get(self, args: tuple[str, ...], result: ExecutionResult) -> Status:
        uri, unchanged = self._unchanged(args[0])
        return Status(304) if unchanged else Status(200, self.tree.get(uri))

    async def _hget(self, args: tuple[str, ...], result: ExecutionResult) -> Status:
        server_uri = args[0]
        client_uri = args[1] if len(args) > 1 else self._download_place()
        self.tree.check(client_uri, "w")  # fail before fetching anything
        code, body, content_type = await self.port.http_get(server_uri)
        if not 200 <= code < 300:
            raise _Failed(500, f"{server_uri} answered {code}")
        try:
            text = body.decode("utf-8")
            value = _tree_value(json.loads(text)) if _is_json(content_type) else text
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError alike
            raise _Failed(
                415, f"cannot decode {media.base(content_type) or 'body'}: {exc}"
            ) from None
        if (
            isinstance(value, dict)
            and client_uri in self.tree
            and self.tree.node(client_uri).is_leaf
        ):
            value = text
        self.tree.set(client_uri, value)
        # Without a ClientURI the device chose the place, and says where (URI).
        return Status(200) if len(args) > 1 else Status(200, uri=(client_uri,))

    def _download_place(self) -> str:
        """A new node under EXT//Downloads for an HGET without ClientURI."""
        downloads = ClientURI(EXT, "", ("Downloads",))
        taken = self.tree.get(downloads, force=True)
        if len(taken) >= MAX_DOWNLOADS:
            raise _Failed(409, f"{downloads} holds {MAX_DOWNLOADS} downloads; DELETE some")
        number = next(str(n) for n in range(1, MAX_DOWNLOADS + 2) if str(n) not in taken)
        return str(downloads.child(number))

    async def _default(self, args: tuple[str, ...], result: ExecutionResult) -> Status:
        moid, server_uri = args
        ClientURI(moid, "")  # an MOID is a URN: refuse anything else with 400
        if moid not in self.defaults and len(self.defaults) >= MAX_DEFAULTS:
            raise _Failed(409, f"DEFAULT already remembers {MAX_DEFAULTS} MOIDs")
        self.defaults[moid] = server_uri  # one ServerURI per MOID: the new one replaces
        return Status(200)

    async def fetch_default(self, moid: str) -> tuple[str, ...]:
        """Fetch a missing MO from the ServerURI a DEFAULT named for its MOID, the way
        HGET without ClientURI does; where it went, or ``()``. No status is sent."""
        server_uri = self.defaults.get(moid)
        if server_uri is None:
            return ()
        status = await self.execute(Command.of("HGET", server_uri))
        self._log(f"DEFAULT {moid} fetched -> {status.sc}")
        return status.uri

    async def _hput(self, args: tuple[str, ...], result: ExecutionResult) -> Status:
        return await self._send("PUT", args)

    async def _hpost(self, args: tuple[str, ...], result: ExecutionResult) -> Status:
        return await self._send("POST", args)

    async def _send(self, method: str, args: tuple[str, ...]) -> Status:
        checked = [self._unchanged(uri) for uri in args[1:]]
        if all(unchanged for _, unchanged in checked):
            return Status(304)  # the server's copy is current: nothing to send
        items = serialize.entries(self.tree, [uri for uri, _ in checked])
        code = await self._deliver(method, args[0], items)
        if code == 406:
            return Status(406)
        if not 200 <= code < 300:
            raise _Failed(500, f"{args[0]} answered {code}")
        return Status(200)

    async def _deliver(self, method: str, url: str, items: list[serialize.Entry]) -> int:
        """Send an MO serialization; after a 415 with ``OMADM-Accept``, once more in the
        first listed type the device writes. 406 when it writes none of them."""
        kind = media.JSON
        code, accept = await self.port.http_send(method, url, serialize.to_json(items), kind)
        if code == 415 and accept:
            chosen = serialize.choose(accept)
            if chosen is None:
                return 406
            if chosen != kind:
                code, _ = await self.port.http_send(
                    method, url, serialize.WRITERS[chosen](items), chosen
                )
        return code

    async def _delete(self, args: tuple[str, ...], result: ExecutionResult) -> Status:
        self.tree.delete(args[0])
        return Status(200)

    async def _show(self, args: tuple[str, ...], result: ExecutionResult) -> Status:
        result.shown.append(args[0])
        self._spawn(self._background(f"SHOW {args[0]}", self.port.show(args[0])))
        return Status(200)

    async def _cont(self, args: tuple[str, ...], result: ExecutionResult) -> Status:
        result.continue_to = args[0]
        return Status(200)

    # -- SUB / UNSUB ---------------------------------------------------------

    async def _sub(self, args: tuple[str, ...], result: ExecutionResult) -> Status:
        uri = ClientURI.parse(args[0])
        self.tree.get(uri)  # one may subscribe to what one may read
        key = (str(uri), args[1])
        if key not in self._subs:

            def changed(_: str) -> None:
                self._notify(*key)

            self._subs[key] = changed
            self.tree.subscribe(uri, changed)
        return Status(200)

    async def _unsub(self, args: tuple[str, ...], result: ExecutionResult) -> Status:
        key = (str(ClientURI.parse(args[0])), args[1])
        callback = self._subs.pop(key, None)
        if callback is None:
            raise NodeNotFound(f"no subscription of {args[1]} to {key[0]}")
        self.tree.unsubscribe(key[0], callback)
        return Status(200)

    def _notify(self, client_uri: str, server_uri: str) -> None:
        """A subscribed subtree changed, maybe in another thread: queue its PUT.

        The body is taken now, so each change is reported as it was; one sender
        task sends the queue in order.
        """
        try:
            items = serialize.entries(self.tree, [client_uri])
        except TreeError:
            items = []  # the subscribed node is gone
        if self._outbox is None:
            self._outbox = deque()
        self._outbox.append((server_uri, items))
        self._kick()

    def _kick(self) -> None:
        """Start the sender in the executor's loop, from whatever thread we are on."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = self._loop
        if running is not None and (running is loop or loop is None or loop.is_closed()):
            self._loop = running
            if self._outbox and (self._sender is None or self._sender.done()):
                self._sender = self._spawn(self._send_outbox())
        elif loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._kick)
            except RuntimeError:  # closed meanwhile: the next run() or drain() sends
                pass
        # else: no loop yet; the next run() or drain() sends the queue

    async def _send_outbox(self) -> None:
        outbox = self._outbox
        while outbox:
            url, items = outbox.popleft()
            try:
                code = await self._deliver("PUT", url, items)
            except Exception as exc:
                self._log(f"SUB notify {url} failed ({type(exc).__name__}: {exc})")
            else:
                self._log(f"SUB notify {url} -> {code}")

    async def _background(self, what: str, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception as exc:
            self._log(f"{what} failed ({type(exc).__name__}: {exc})")

    # -- EXEC and FUMO -------------------------------------------------------

    async def _exec(self, args: tuple[str, ...], result: ExecutionResult) -> Status:
        uri = ClientURI.parse(args[0])
        target = args[1] if len(args) > 1 else None
        node = self.tree.node(uri)
        if "x" not in node.acl:
            raise NotAllowed(f"{uri} is not executable")
        if uri.moid in self.services:
            return await self.services[uri.moid].exec(self, uri, target)
        if uri.moid != FUMO or len(uri.path) != 1 or uri.path[0] not in FUMO_OPERATIONS:
            raise _Failed(501, f"the device cannot run {uri}")
        instance, operation = uri.instance, uri.path[0]
        if instance in self._busy:
            raise _Failed(409, f"a firmware job is running on {instance}")
        if (
            operation == "Update"
            and instance not in self._packages
            and not self._pkg_data(instance)
        ):
            raise _Failed(409, "nothing to update: no downloaded package and no PkgData")
        self._busy[instance] = None
        self._spawn(self._fumo_job(instance, operation, target))
        return Status(202)

    def _pkg_data(self, instance: str) -> str:
        value = self.tree.get(ClientURI(FUMO, instance, ("Update", "PkgData")), force=True)
        return value if isinstance(value, str) else ""

    async def _fumo_job(self, instance: str, operation: str, target: str | None) -> None:
        try:
            code = await self._fumo_steps(instance, operation)
        except Exception as exc:
            logger.exception("firmware job on %s failed", instance)
            self._log(f"FUMO {instance} {operation} failed ({type(exc).__name__}: {exc})")
            code = FumoResult.UNDEFINED_ERROR
        finally:
            self._busy.pop(instance, None)
        alert = generic_alert(
            FUMO_ALERT_TYPES[operation],
            str(ClientURI(FUMO, instance, (operation,))),
            result=int(code),
            ok=code == FumoResult.SUCCESSFUL,
        )
        await self._background(f"alert {alert}", self.port.alert(alert, target))
        self._log(f"FUMO {instance} {operation} -> {int(code)}; alert {alert}")

    async def _state(self, instance: str, state: FumoState) -> None:
        self.tree.set(ClientURI(FUMO, instance, ("State",)), int(state), force=True)
        self._log(f"FUMO {instance} State {int(state)} ({state.name.lower()})")
        await asyncio.sleep(self.behaviour.step_delay)

    async def _fumo_steps(self, instance: str, operation: str) -> FumoResult:
        if operation == "Update":
            await self._state(instance, FumoState.UPDATING)
            data = self._pkg_data(instance)
            if not data:
                package = self._packages[instance]  # _exec checked there is one
            else:  # PkgData written by the server wins over an earlier download
                try:
                    package = parse_package(data)
                except PackageError as exc:
                    self._log(f"FUMO {instance} PkgData: {exc}")
                    await self._state(instance, FumoState.UPDATE_FAILED)
                    return FumoResult.CORRUPTED_PACKAGE
        else:
            await self._state(instance, FumoState.DOWNLOADING)
            downloaded = await self._download(instance, operation)
            if isinstance(downloaded, FumoResult):
                await self._state(instance, FumoState.DOWNLOAD_FAILED)
                return downloaded
            package = self._packages[instance] = downloaded
            await self._state(instance, FumoState.DOWNLOAD_COMPLETE)
            if operation == "Download":
                return FumoResult.SUCCESSFUL
            await self._state(instance, FumoState.UPDATING)
        if self.behaviour.update_fails:
            await self._state(instance, FumoState.UPDATE_FAILED)
            return FumoResult.UPDATE_FAILED
        self._install(instance, package)
        await self._state(instance, FumoState.UPDATE_SUCCESSFUL)
        return FumoResult.SUCCESSFUL

    async def _download(self, instance: str, operation: str) -> Package | FumoResult:
        url = self.tree.get(ClientURI(FUMO, instance, (operation, "PkgURL")), force=True)
        if not isinstance(url, str) or not url:
            return FumoResult.BAD_URL
        if self.behaviour.download_fails:
            self._log(f"FUMO {instance} download of {url} fails (behaviour)")
            return FumoResult.NETWORK_ERROR
        try:
            code, body, _ = await self.port.http_get(url)
        except Exception as exc:
            self._log(f"FUMO {instance} download of {url} failed ({type(exc).__name__}: {exc})")
            return FumoResult.NETWORK_ERROR
        if not 200 <= code < 300:
            self._log(f"FUMO {instance} download of {url} answered {code}")
            return FumoResult.DOWNLOAD_SERVER_ERROR
        try:
            return parse_package(body)
        except PackageError as exc:
            self._log(f"FUMO {instance} package from {url}: {exc}")
            return FumoResult.CORRUPTED_PACKAGE

    def _install(self, instance: str, package: Package) -> None:
        self._packages.pop(instance, None)
        self.tree.set(ClientURI(FUMO, instance, ("PkgVersion",)), package.version, force=True)
        if package.name is not None:
            self.tree.set(ClientURI(FUMO, instance, ("PkgName",)), package.name, force=True)
        self.tree.set(ClientURI(FUMO, instance, ("Update", "PkgData")), "", force=True)
        try:
            self.tree.set(ClientURI(DEVINFO, "", ("DevInfo", "FwV")), package.version, force=True)
        except NodeNotFound:  # a tree without DevInfo: nothing else to update
            pass
