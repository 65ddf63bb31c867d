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


def template_source(name: str) -> str:
    loader = templates.env.loader
    assert loader is not None
    return loader.get_source(templates.env, name)[0]


#: Context names whose value must not outlive the answer in any cache.
SECRETS = ("csrf", "secret")


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A rendered page; one that carries a CSRF token or a secret is never stored."""
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    if any(key in context for key in SECRETS):
        response.headers["Cache-Control"] = "no-store"
    return response


def render_error(request: Request, status: int, error: str, title: str, detail: str) -> str:
    context = {"title": f"{status} {title}", "error": error, "detail": detail}
    return templates.get_template("error.html").render(request=request, **context)
