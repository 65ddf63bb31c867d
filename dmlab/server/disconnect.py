"""Waiting on a client's behalf: the wait ends as soon as the client hangs up."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import anyio
from starlette.requests import Request

T = TypeVar("T")


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T | None:
    """``work``'s result; ``None`` if the client disconnects first (``work`` is then cancelled).

    Nothing polls: the request's ``receive`` blocks until the server reports the
    disconnect, and that wakes this task like any other event.
    """
    result: T | None = None
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass  # the (empty) request body of a GET
            group.cancel_scope.cancel()

        group.start_soon(watch)
        result = await work
        group.cancel_scope.cancel()
    return result
