"""HTML pages for browsers: Starlette's Jinja2 templates (every value is escaped)."""

from __future__ import annotations

from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.PackageLoader("dmlab.server", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def render_error(request: Request, status: int, error: str, detail: str) -> str:
    context = {"title": f"{status} {error}", "status": status, "error": error, "detail": detail}
    return templates.get_template("error.html").render(request=request, **context)
