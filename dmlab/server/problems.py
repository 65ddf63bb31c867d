"""Errors as answers: RFC 9457 problem details for programs, an HTML page for browsers.

Every refusal has a *problem type*, declared once in :data:`PROBLEM_TYPES` (status,
title, what it means). Its ``type`` URI points at that declaration on ``/docs``.
Whatever raises (a route's :class:`Problem`, the core's domain errors, Starlette's
404/405, content negotiation, an unexpected exception) is answered here, in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ..caps import OverCap
from ..core import errors
from ..protocol import media
from ..store import StorageFault
from ..trace import MAX_PATH, cut
from .headers import add_standard_headers
from .negotiation import NotAcceptable, negotiate
from .pages import render_error

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True, slots=True)
class ProblemType:
    name: str
    status: int
    title: str
    meaning: str


PROBLEM_TYPES: dict[str, ProblemType] = {
    p.name: p
    for p in (
        ProblemType("bad-request", 400, "Bad request", "The request breaks a rule of the API."),
        ProblemType(
            "bad-json",
            400,
            "Body is not JSON",
            "The body is not valid JSON "
            "(or nests deeper than the lab allows, or holds NaN or a lone surrogate).",
        ),
        ProblemType("bad-form", 400, "Form cannot be read", "The urlencoded form is malformed."),
        ProblemType(
            "bad-dev-id",
            400,
            "Not a usable devId",
            "The devId is malformed, or collides with a fixed path under /devices/ (such as new).",
        ),
        ProblemType(
            "status-mismatch",
            400,
            "Statuses do not match the commands",
            "A package 3 carries one status per command of the package 2, in order (none for END).",
        ),
        ProblemType(
            "unauthorized",
            401,
            "Credentials required",
            "Valid HTTP Basic credentials are required: an account's or a device's.",
        ),
        ProblemType(
            "signed-out",
            401,
            "Signed out",
            "The browser forgot its credentials (/logout); sign in again at /login.",
        ),
        ProblemType("forbidden", 403, "Forbidden", "The caller is known but may not do this."),
        ProblemType(
            "csrf",
            403,
            "CSRF token missing or wrong",
            "A form must carry the "
            "token of the page it came from; reload the page and submit again.",
        ),
        ProblemType(
            "not-found",
            404,
            "Not found",
            "No such resource, or not one the caller may see (the two are not told apart).",
        ),
        ProblemType(
            "method-not-allowed",
            405,
            "Method not allowed",
            "The resource exists; Allow lists its methods.",
        ),
        ProblemType(
            "not-acceptable",
            406,
            "Not acceptable",
            "None of the media types the "
            "resource offers is acceptable by the request's Accept header.",
        ),
        ProblemType(
            "conflict",
            409,
            "Conflict",
            "The resource's state does not allow this "
            "(already registered, not started, already ended).",
        ),
        ProblemType(
            "spent-session",
            409,
            "Session id spent",
            "That session id was already "
            "answered; the session continues under the id the last package 2 named.",
        ),
        ProblemType(
            "session-expired",
            409,
            "Session expired",
            "The session ended as expired: it was not started within its time to live, or "
            "its device sent nothing for longer than the server's active TTL "
            "(--active-ttl). POST /sessions/next gets the next pending session.",
        ),
        ProblemType(
            "precondition-failed",
            412,
            "Precondition failed",
            "If-Match or If-None-Match does not hold: the resource changed since it was read.",
        ),
        ProblemType("too-large", 413, "Body too large", "The body is larger than the lab reads."),
        ProblemType(
            "unsupported-media-type",
            415,
            "Unsupported media type",
            "The body's Content-Type is not one this operation reads.",
        ),
        ProblemType(
            "too-many-attempts",
            429,
            "Too many failed logins",
            "This name is locked out for a while after repeated failures; see Retry-After.",
        ),
        ProblemType(
            "over-cap",
            429,
            "Over a cap",
            "The caller (a device or an account) has as many of these open at once as the "
            "server allows (the caps on /docs); try again after Retry-After seconds.",
        ),
        ProblemType(
            "storage-unavailable",
            503,
            "Storage unavailable",
            "The server cannot use its storage now (full, read-only or failing); nothing "
            "was changed. Retry after Retry-After seconds.",
        ),
        ProblemType(
            "internal-error",
            500,
            "Internal error",
            "The server failed; the connection is closed after this answer.",
        ),
    )
}

#: Each domain error of the core, as a problem type (most specific class first).
DOMAIN_PROBLEMS: dict[type[errors.DomainError], str] = {
    errors.StatusMismatch: "status-mismatch",
    errors.InvalidDevId: "bad-dev-id",
    errors.Invalid: "bad-request",
    errors.NotFound: "not-found",
    errors.Forbidden: "forbidden",
    errors.SpentSession: "spent-session",
    errors.Expired: "session-expired",
    errors.Conflict: "conflict",
    errors.PreconditionFailed: "precondition-failed",
}


class Problem(Exception):
    """An HTTP refusal of a type in :data:`PROBLEM_TYPES`, with a readable detail."""

    def __init__(self, kind: str, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.type = PROBLEM_TYPES[kind]
        self.detail = detail
        self.headers = dict(headers or {})

    @property
    def status(self) -> int:
        return self.type.status


def type_uri(request: Request, kind: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/docs#problem-{kind}"


def problem_response(request: Request, problem: Problem) -> Response:
    kind = problem.type
    request.scope.setdefault("state", {})["trace_response"] = f"{kind.name}: {problem.detail}"
    headers = problem.headers
    # A browser gets a page; everyone else problem details, even when it named only
    # application/json (a problem is JSON too: RFC 9457 §3).
    if negotiate(request, (PROBLEM_JSON, media.JSON, media.HTML), strict=False) == media.HTML:
        page = render_error(request, kind.status, kind.name, kind.title, problem.detail)
        response: Response = HTMLResponse(page, status_code=kind.status, headers=headers)
    else:
        body = {
            "type": type_uri(request, kind.name),
            "title": kind.title,
            "status": kind.status,
            "detail": problem.detail,
            "instance": _instance(request),
        }
        response = JSONResponse(
            body, status_code=kind.status, headers=headers, media_type=PROBLEM_JSON
        )
    add_standard_headers(response.headers.raw, negotiated=True)
    return response


def _instance(request: Request) -> str:
    """The path as received, percent-encoded (a URI reference, whatever it holds), and
    at most MAX_PATH characters: a 15 KiB path is not echoed (nor cut inside an escape)."""
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    path = raw.decode("latin-1")[:MAX_PATH]
    return path[: path.rfind("%")] if "%" in path[-2:] else path


async def handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(request, exc)


async def handle_domain_error(request: Request, exc: Exception) -> Response:
    """The one place the core's refusals become HTTP answers."""
    assert isinstance(exc, errors.DomainError)
    kind = next(k for cls, k in DOMAIN_PROBLEMS.items() if isinstance(exc, cls))
    return problem_response(request, Problem(kind, str(exc)))


async def handle_not_acceptable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotAcceptable)
    offered = ", ".join(exc.offers)
    return problem_response(request, Problem("not-acceptable", f"this resource offers {offered}"))


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
    problem = Problem(_HTTP_ERRORS.get(exc.status_code, "bad-request"), detail, headers)
    return problem_response(request, problem)


#: Seconds a client is asked to wait when the storage is full, read-only or failing.
STORAGE_RETRY_AFTER = 30


async def handle_storage_fault(request: Request, exc: Exception) -> Response:
    """Disk full, read-only, I/O error: a 503 the client can retry, not a 500. The
    transaction rolled back, so nothing half-done was kept."""
    assert isinstance(exc, StorageFault)
    problem = Problem(
        "storage-unavailable",
        f"the server cannot use its storage now ({exc.kind}); nothing was changed. "
        f"Try again in {STORAGE_RETRY_AFTER} s",
        {"Retry-After": str(STORAGE_RETRY_AFTER)},
    )
    return problem_response(request, problem)


async def handle_over_cap(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OverCap)
    problem = Problem("over-cap", str(exc), {"Retry-After": str(exc.retry_after)})
    return problem_response(request, problem)


async def handle_server_error(request: Request, exc: Exception) -> Response:
    """A 500 as a problem, closing the connection: whatever broke may have left the
    exchange half-read, and a kept-alive client must not reuse it. (Starlette then
    re-raises the exception, and the server logs it.)"""
    problem = Problem(
        "internal-error", "the server failed to answer this request", {"Connection": "close"}
    )
    return problem_response(request, problem)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in getattr(request.app, "routes", ()):
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(request.scope["path"]):
            methods.update(route_methods)
    return sorted(methods)


def not_found(what: str) -> Problem:
    return Problem("not-found", what)


def bad_request(detail: str) -> Problem:
    return Problem("bad-request", detail)


EXCEPTION_HANDLERS = {
    Problem: handle_problem,
    errors.DomainError: handle_domain_error,
    NotAcceptable: handle_not_acceptable,
    HTTPException: handle_http_exception,
    StorageFault: handle_storage_fault,
    OverCap: handle_over_cap,
    Exception: handle_server_error,
}
