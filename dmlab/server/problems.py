"""Errors as answers: every refusal is a ``Problem`` with a status, a short error
name and a readable detail, rendered as JSON or as an HTML page."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ..trace import MAX_PATH, cut
from .negotiation import wants_html


class Problem(Exception):
    def __init__(
        self, status: int, error: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})


def problem_response(request: Request, problem: Problem) -> Response:
    state = request.scope.setdefault("state", {})
    state["trace_response"] = f"{problem.error}: {problem.detail}"
    if wants_html(request):
        from .pages import render_error

        return HTMLResponse(
            render_error(request, problem.status, problem.error, problem.detail),
            status_code=problem.status,
            headers=problem.headers,
        )
    return JSONResponse(
        {"error": problem.error, "detail": problem.detail},
        status_code=problem.status,
        headers=problem.headers,
    )


async def handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(request, exc)


_HTTP_ERRORS = {404: "not-found", 405: "method-not-allowed", 400: "bad-request"}


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (unknown path, wrong method) in the same shape."""
    assert isinstance(exc, HTTPException)
    # The path as sent, cut: a 15 KiB path is neither echoed nor parsed into
    # request.url (whose urlsplit cache would keep the last 128 such paths).
    path = cut(request.scope["path"], MAX_PATH)
    detail = {
        404: f"no resource at {path}",
        405: f"{request.method} is not allowed on {path}",
    }.get(exc.status_code, str(exc.detail))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names only the first route that matched the path; a path
        # served by several routes (one per method) allows all of their methods.
        headers["Allow"] = ", ".join(_allowed_methods(request))
    problem = Problem(exc.status_code, _HTTP_ERRORS.get(exc.status_code, "error"), detail, headers)
    return problem_response(request, problem)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in getattr(request.app, "routes", ()):
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(request.scope["path"]):
            methods.update(route_methods)
    return sorted(methods)


#: Seconds a client is asked to wait when the storage is full, read-only or failing.
STORAGE_RETRY_AFTER = 30


async def handle_storage_fault(request: Request, exc: Exception) -> Response:
    """Disk full, read-only, I/O error: a 503 the client can retry, not a 500. The
    transaction rolled back, so nothing half-done was kept."""
    from ..store import StorageFault

    assert isinstance(exc, StorageFault)
    problem = Problem(
        503,
        "storage-unavailable",
        f"the server cannot use its storage now ({exc.kind}); nothing was changed. "
        f"Try again in {STORAGE_RETRY_AFTER} s",
        {"Retry-After": str(STORAGE_RETRY_AFTER)},
    )
    return problem_response(request, problem)


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", what)


def conflict(detail: str) -> Problem:
    return Problem(409, "conflict", detail)


def bad_request(detail: str) -> Problem:
    return Problem(400, "bad-request", detail)
