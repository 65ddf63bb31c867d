"""HTML pages for browsers, rendered with Jinja2 (every value is escaped)."""

from __future__ import annotations

from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("dmlab.server", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def render(name: str, **context: Any) -> str:
    return _env.get_template(name).render(**context)


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(name, **context), status_code=status_code)


def render_error(request: Request, status: int, error: str, detail: str) -> str:
    return render(
        "error.html", title=f"{status} {error}", status=status, error=error, detail=detail
    )
