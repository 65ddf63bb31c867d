"""What every route needs: the services of one server, and who is asking."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.to_thread
from starlette.requests import Request

from ..caps import Caps
from ..choices import Choices
from ..core import devids
from ..core.devices import Devices
from ..core.errors import InvalidDevId
from ..core.sessions import SessionEngine
from ..events import EventBus
from ..protocol import media
from ..store import Account, Device, StorageFault, Store
from ..trace import Trace
from .auth import Authenticator, LockedOut, Principal, csrf_token
from .negotiation import FLOW_3, JSON_OR_HTML, preferred
from .notifier import Notifier
from .problems import Problem, not_found

T = TypeVar("T")


@dataclass
class Services:
    store: Store
    auth: Authenticator
    engine: SessionEngine
    devices: Devices
    notifier: Notifier
    trace: Trace
    events: EventBus
    server_id: str
    #: The lab's readings of the CR in force (lab choices with options).
    choices: Choices = field(default_factory=Choices)
    #: How much one device or account may hold open at once (dmlab/caps.py).
    caps: Caps = field(default_factory=Caps)
    csrf_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def add_account(self, name: str, password: str) -> Account:
        if not name or ":" in name or len(name) > 64:
            raise ValueError("an account name is 1 to 64 characters without a colon")
        account = Account(name, self.auth.hash(password))
        self.store.put_account(account)
        return account


def services(request: Request) -> Services:
    return request.app.state.services


async def offload(request: Request, work: Callable[[], T]) -> T:
    """Run a route's store-bound part (``work``: engine and store calls, and building
    the answer) where it does not stall the event loop. On a store across the network
    (``remote``: PostgreSQL, several round trips a request) that is a worker thread,
    so the loop serves other connections while this one waits; on an in-process store
    (SQLite, memory: microseconds of work) it runs inline, cheaper than a thread hop."""
    if getattr(services(request).store, "remote", False):
        return await anyio.to_thread.run_sync(work)
    return work()


def note(request: Request, /, **fields: Any) -> None:
    """Annotate this exchange for the trace (who, device, session, summaries)."""
    request.scope.setdefault("state", {}).setdefault("trace", {}).update(fields)


REALM = 'Basic realm="dmlab", charset="UTF-8"'


def authenticate(request: Request, *kinds: str) -> Principal:
    """The caller, if its credentials are valid and of an allowed kind; else 401/403."""
    # AuthMiddleware has checked the credentials already, off the event loop.
    principal = request.scope.get("state", {}).get("auth")
    if isinstance(principal, StorageFault):
        raise principal  # the credentials could not be checked: 503, as any fault
    if isinstance(principal, LockedOut):
        locked = principal
        note(request, source=_guess_role(request))
        raise Problem(
            "too-many-attempts",
            f"too many failed logins for this name; try again in {locked.retry_after:.0f} s",
            {"Retry-After": str(max(1, round(locked.retry_after)))},
        )
    if principal is None:
        note(request, source=_guess_role(request))
        raise Problem(
            "unauthorized",
            "valid credentials are required (HTTP Basic: an "
            "account's name and password, or a device's DevID and secret)",
            {"WWW-Authenticate": REALM},
        )
    claimed = request.headers.get(media.DEVID_HEADER)
    if claimed is not None:
        # Whoever sends it, it must be a DevID (the document's pattern); an account's
        # request may carry one, a device's must carry its own.
        try:
            named = devids.canonical(claimed)
        except InvalidDevId:
            raise Problem(
                "bad-dev-id", f"the {media.DEVID_HEADER} header is not a DevID: {devids.HINT}"
            ) from None
        if principal.kind == "device" and named != principal.name:
            raise Problem(
                "unauthorized",
                f"the {media.DEVID_HEADER} header names another device",
                {"WWW-Authenticate": REALM},
            )
    note(
        request,
        source=_role(request, principal),
        dev_id=principal.name if principal.kind == "device" else "",
    )
    if principal.kind not in kinds:
        wanted = " or ".join(kinds)
        raise Problem("forbidden", f"this resource is for {wanted} credentials")
    return principal


def principal_device(request: Request, principal: Principal) -> Device:
    """The calling device's record: the one its credentials were checked against in
    this request (read once), or, where authentication did not read it, read now."""
    if principal.device is not None:
        return principal.device
    device = services(request).store.get_device(principal.name)
    assert device is not None
    return device


def owned_device(request: Request, principal: Principal, dev_id: str) -> Device:
    """The device, if the caller owns it (or is it); otherwise a 404 that reveals nothing."""
    device = services(request).store.get_device(devids.lookup(dev_id))
    visible = device is not None and (
        device.dev_id == principal.name
        if principal.kind == "device"
        else device.account == principal.account
    )
    if not visible:
        raise not_found(f"no device {dev_id}")
    assert device is not None
    note(request, dev_id=device.dev_id)
    return device


def csrf_for(request: Request, principal: Principal) -> str:
    return csrf_token(services(request).csrf_key, principal.account)


def _role(request: Request, principal: Principal) -> str:
    if principal.kind == "device":
        # The path as routed (the scope's, not ``request.url``: building a URL per
        # request to read its path cost more than the rest of this function).
        on_device = request.scope["path"].startswith("/devices/")
        if on_device and preferred(request.headers.get("accept"), FLOW_3) == media.COMMANDS:
            return "browser-component"
        return "device"
    return _guess_role(request)


def _guess_role(request: Request) -> str:
    html = preferred(request.headers.get("accept"), JSON_OR_HTML) == media.HTML
    return "browser" if html else "operator"
