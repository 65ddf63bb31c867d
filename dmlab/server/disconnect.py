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
    disconnect, and that wakes this task like any other event. What ``work`` raises
    is raised as it is (not in the task group's ExceptionGroup), so that a refusal
    or a storage fault is answered as such.
    """
    result: T | None = None
    try:
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while (await request.receive())["type"] != "http.disconnect":
                    pass  # the (empty) request body of a GET
                group.cancel_scope.cancel()

            group.start_soon(watch)
            result = await work
            group.cancel_scope.cancel()
    except BaseExceptionGroup as raised:
        if len(raised.exceptions) == 1:
            raise raised.exceptions[0] from None
        raise
    return result
