"""The indexed router picks, for every request, the route Starlette's own router picks."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from starlette.routing import Match, Route, Router

from dmlab.choices import Choices
from dmlab.server import build_services, create_app
from dmlab.server.dispatch import IndexedRouter, first_segment

PATHS = [
    "/",
    "/alert",
    "/alert/",
    "/alerts",
    "/devices",
    "/devices/",
    "/devices/new",
    "/devices/new/",
    "/devices/IMEI:1",
    "/devices/IMEI:1/sessions",
    "/devices/IMEI:1/data/k",
    "/devices/a/b/c",
    "/sessions/pending",
    "/sessions/next",
    "/sessions/id/abc",
    "/sessions/id/abc/",
    "/session/id/abc",
    "/firmware/1.0",
    "/firmware/1.0/url",
    "/software/n/1",
    "/software/n/1/package",
    "/values/x",
    "/data/k",
    "/notifications",
    "/events",
    "/openapi.json",
    "/docs",
    "/login",
    "/logout",
    "/choices",
    "/nowhere",
    "//",
    "",
]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"]


def starlette_pick(routes: list[Any], scope: dict[str, Any]) -> tuple[Any, Match]:
    """What ``Router.app`` picks: the first full match, else the first partial one."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route, match
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial, Match.PARTIAL if partial is not None else Match.NONE


def indexed_pick(router: IndexedRouter, scope: dict[str, Any]) -> tuple[Any, Match]:
    """What ``IndexedRouter.app`` picks before it hands a request to Starlette's loop."""
    path = scope["path"]
    if path.startswith("/"):
        for route in router.candidates(path.split("/", 2)[1], scope["method"]) or ():
            if route.matches(scope)[0] is Match.FULL:
                return route, Match.FULL
    return starlette_pick(router.routes, scope)  # the fallback is Router.app itself


@pytest.mark.parametrize("reading", ["spec", "cr"])
def test_every_request_is_routed_as_starlette_routes_it(reading: str) -> None:
    choices = Choices({"browser-entry": "sessions-next"}) if reading == "cr" else Choices()
    app = create_app(build_services(choices=choices))
    router = app.router
    assert isinstance(router, IndexedRouter)
    for path, method in itertools.product(PATHS, METHODS):
        scope = {"type": "http", "path": path, "root_path": "", "method": method}
        assert indexed_pick(router, scope) == starlette_pick(router.routes, scope), (method, path)


def test_fixed_path_wins_over_a_parameter_in_declared_order() -> None:
    async def endpoint(request: Any) -> None: ...

    routes = [Route("/devices/new", endpoint), Route("/devices/{dev_id}", endpoint)]
    router = IndexedRouter(routes)
    scope = {"type": "http", "path": "/devices/new", "root_path": "", "method": "GET"}
    assert indexed_pick(router, scope)[0] is routes[0]
    reversed_router = IndexedRouter(routes[::-1])
    assert indexed_pick(reversed_router, scope)[0] is routes[1]
    assert starlette_pick(Router(routes[::-1]).routes, scope)[0] is routes[1]


def test_the_index_is_bounded_by_the_routes_not_by_the_paths_asked() -> None:
    app = create_app(build_services())
    router = app.router
    assert isinstance(router, IndexedRouter)
    for n in range(200):
        router.candidates(f"made-up-{n}", "GET")
        router.candidates("alert", f"M{n}")
    segments = {first_segment(r.path) for r in router.routes if isinstance(r, Route)}
    methods = {m for r in router.routes if isinstance(r, Route) for m in r.methods or ()}
    assert len(router._index) == (len(segments | {None})) * len(methods)


def test_first_segment() -> None:
    assert first_segment("/") == ""
    assert first_segment("/alert") == "alert"
    assert first_segment("/sessions/id/{session_id}") == "sessions"
    assert first_segment("/{anything}") is None
    assert first_segment("/x{y}/z") is None
