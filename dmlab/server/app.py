"""Assemble a DM server: services, routes, error handling and the trace."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette

from ..caps import Caps
from ..choices import Choices
from ..core.devices import Devices
from ..core.limits import SessionLimits
from ..core.sessions import SessionEngine, new_session_id
from ..core.unit import Unit
from ..events import EventBus
from ..store import MemoryStore, Store
from ..trace import Trace
from .auth import Authenticator, AuthMiddleware, SharedThrottle
from .context import Services
from .dispatch import IndexedRouter
from .expiry import sweeping
from .headers import StandardHeaders
from .notifier import Notifier
from .operation import served
from .problems import EXCEPTION_HANDLERS
from .routes import alert, devices, docs, entry, events, notifications, resources, sessions
from .routes import choices as choice_routes
from .tracing import TraceMiddleware


def build_services(
    *,
    store: Store | None = None,
    server_id: str = "dmlab",
    trace: Trace | None = None,
    events: EventBus | None = None,
    ids: Callable[[], str] = new_session_id,
    clock: Callable[[], float] = time.time,
    hash_cost: dict[str, int] | None = None,
    first_notification_id: int | None = None,
    choices: Choices | None = None,
    caps: Caps | None = None,
    limits: SessionLimits | None = None,
) -> Services:
    caps = caps if caps is not None else Caps()
    choices = choices if choices is not None else Choices()
    store = store if store is not None else MemoryStore()
    trace = trace if trace is not None else Trace(clock=clock)
    # A store that several processes share (PostgreSQL) also holds what would
    # otherwise differ per process: the notification mailboxes, the CSRF key and
    # the event log.
    shared: Any = store if hasattr(store, "shared_secret") else None
    events = events if events is not None else EventBus(clock=clock, log=shared)
    notifier = Notifier(
        server_id,
        trace,
        events,
        clock=clock,
        first_id=first_notification_id,
        shared=shared,
        caps=caps,
    )
    # Lab choice notification-transport=none: no package 0 reaches any device.
    notifier.sends = not choices.is_("notification-transport", "none")
    unit = Unit(store, events)
    throttle = None if shared is None else SharedThrottle(shared)
    auth = Authenticator(store, cost=hash_cost, throttle=throttle)
    extra = {} if shared is None else {"csrf_key": shared.shared_secret("csrf")}
    return Services(
        store=store,
        auth=auth,
        engine=SessionEngine(
            unit, notifier, ids=ids, clock=clock, choices=choices, caps=caps, limits=limits
        ),
        devices=Devices(unit, notifier, auth.device_verifier),
        notifier=notifier,
        trace=trace,
        events=events,
        server_id=server_id,
        choices=choices,
        caps=caps,
        **extra,
    )


def follow_others(services: Services) -> Callable[[], None]:
    """On a store that other processes share, they deliver notifications and publish
    events too: listen for both (one connection and thread), waking this process's
    long-polls and delivering the events to its subscribers. Returns the function
    that stops listening (nothing to stop for a store of one process)."""
    store: Any = services.store
    if not hasattr(store, "follow"):
        return lambda: None

    def catch_up() -> None:  # after a lost connection: what its NOTIFYs would have said
        services.notifier.wake_all()
        services.events.relay()

    stop: Callable[[], None] = store.follow(
        notifications=services.notifier.wake,
        events=services.events.relay,
        polls=services.notifier.polled_elsewhere,
        on_reconnect=catch_up,
    )
    services.events.relay()  # any logged between the bus's start and the LISTEN
    return stop


def create_app(services: Services) -> Starlette:
    app = Starlette(exception_handlers=EXCEPTION_HANDLERS)
    app.router = IndexedRouter(
        [
            route
            for route in (
                *sessions.routes,
                *entry.routes,
                *devices.routes,
                *alert.routes,
                *resources.routes,
                *notifications.routes,
                *events.routes,
                *docs.routes,
                *choice_routes.routes,
            )
            if served(route, services.choices)
        ],
        lifespan=sweeping,
    )
    app.state.services = services
    app.add_middleware(StandardHeaders)
    app.add_middleware(AuthMiddleware, auth=services.auth)
    app.add_middleware(TraceMiddleware, trace=services.trace)
    return app


def close_streams(app: Starlette) -> None:
    """End the app's open streams (``/events``, and ``/notifications`` under
    notification-transport=sse), so a server shutdown does not wait for them."""
    events.close_streams(app)
    notifications.closing(app).close()
