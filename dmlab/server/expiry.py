"""The idle sweep: one periodic task per server process, never a timer per session.

Every ``SessionLimits.sweep_every`` seconds the engine's :meth:`expire_idle` runs on a
worker thread (an indexed query and a few writes: nothing on the event loop), and
once at start-up before the first request, so sessions left active by a crash expire
right after the restart. Several processes on one database each sweep; the store's
write lock and the engine's re-check make the extra sweeps no-ops.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread
from starlette.applications import Starlette

from ..core.sessions import SessionEngine
from ..store import StorageFault

_log = logging.getLogger("dmlab.expiry")


async def sweep_once(engine: SessionEngine) -> int:
    """Expire what is due now; a storage fault is logged and tried again next time."""
    try:
        return await anyio.to_thread.run_sync(engine.expire_idle)
    except StorageFault as fault:
        _log.warning("idle sweep skipped: %s", fault)
        return 0


async def _sweep_forever(engine: SessionEngine) -> None:
    while True:
        await anyio.sleep(engine.limits.sweep_every)
        await sweep_once(engine)


@contextlib.asynccontextmanager
async def sweeping(app: Starlette) -> AsyncIterator[None]:
    """The app's lifespan: sweep at start-up, then periodically until shutdown."""
    engine: SessionEngine = app.state.services.engine
    await sweep_once(engine)
    async with anyio.create_task_group() as group:
        group.start_soon(_sweep_forever, engine)
        yield
        group.cancel_scope.cancel()
