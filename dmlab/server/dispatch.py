"""Route matching that tries only the routes that can match, with Starlette's answer.

Starlette's router tries every route in order (a regex each) until one matches in
path and method: ``PUT /sessions/id/{id}`` tried 7 routes, ``POST /alert`` 18. A
route whose path starts with a fixed segment (``/alert``, ``/sessions/…``) can only
match a path with that first segment, and only a route that allows the method can
match fully. So the routes are indexed once, derived from the route list, by (first
segment, method), in their declared order; routes with a parameter in their first
segment, or of another kind, are in every entry. The first full match among an
entry's routes is the first full match among all routes, since the others cannot
match fully and the order is kept. Anything else (no full match: a ``405``, a
``404``, a slash redirect) is left to Starlette's own loop over every route, so
what answers a request never differs from ``starlette.routing.Router``.
"""

from __future__ import annotations

from typing import Any

from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send


def first_segment(path: str) -> str | None:
    """The fixed first segment of a route's path (``""`` for ``/``), ``None`` if it
    holds a parameter."""
    segment = path.split("/", 2)[1] if path.startswith("/") else "{"
    return None if "{" in segment else segment


class IndexedRouter(Router):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._indexed: list[BaseRoute] | None = None
        self._index: dict[tuple[str | None, str], tuple[BaseRoute, ...]] = {}

    def candidates(self, segment: str, method: str) -> tuple[BaseRoute, ...] | None:
        """The routes, in order, that can fully match a path with this first segment
        under this method; ``None``: a method no route names (Starlette decides)."""
        if self._indexed != self.routes:  # built on first use, again if routes change
            self._build()
        entry = self._index.get((segment, method))
        return entry if entry is not None else self._index.get((None, method))

    def _build(self) -> None:
        """One entry per fixed first segment and method the routes name, and one
        (``None``) for any other first segment: bounded by the route list, whatever
        paths clients send."""
        routes = list(self.routes)
        fixed = {first_segment(r.path) for r in routes if isinstance(r, Route)}
        methods = {m for r in routes if isinstance(r, Route) for m in r.methods or ()}
        self._index = {
            (segment, method): tuple(
                route
                for route in routes
                if not isinstance(route, Route)
                or (
                    first_segment(route.path) in (None, segment)
                    and (not route.methods or method in route.methods)
                )
            )
            for segment in fixed | {None}
            for method in methods
        }
        self._indexed = routes

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route_path = get_route_path(scope)
            if route_path.startswith("/"):
                found = self.candidates(route_path.split("/", 2)[1], scope["method"])
                for route in found or ():
                    match, child_scope = route.matches(scope)
                    if match is Match.FULL:
                        scope.setdefault("router", self)
                        scope["route"] = route
                        scope.update(child_scope)
                        await route.handle(scope, receive, send)
                        return
        await super().app(scope, receive, send)
