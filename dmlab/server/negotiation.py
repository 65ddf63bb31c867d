"""Content negotiation and careful body reading."""

from __future__ import annotations

import json
from typing import Any

from urllib.parse import parse_qsl
from starlette.requests import Request

from ..protocol import media

#: The largest request body the server reads; larger ones get a 413.
MAX_BODY = 256 * 1024


def accepts(request: Request, media_type: str) -> bool:
    return media_type in request.headers.get("accept", "").lower()


def wants_html(request: Request) -> bool:
    """Browsers send ``Accept: text/html,...``; scripts and devices do not."""
    accept = request.headers.get("accept", "").lower()
    return "text/html" in accept and media.JSON not in accept and media.COMMANDS not in accept


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    from .problems import Problem

    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Problem(400, "bad-request", "Content-Length is not a number")
        if int(declared) > limit:
            raise Problem(413, "too-large", f"the body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Problem(413, "too-large", f"the body is larger than {limit} bytes")
    return bytes(body)


async def read_json(request: Request, allowed: frozenset[str] = media.DEVICE_BODY_TYPES,
                    *, optional: bool = False) -> Any:
    """The request's JSON body; ``None`` for an empty optional body."""
    from .problems import Problem

    body = await read_body(request)
    if not body and optional:
        return None
    content_type = media.base(request.headers.get("content-type"))
    if content_type not in allowed:
        raise Problem(415, "unsupported-media-type",
                      f"send {', '.join(sorted(allowed))}, not {content_type or 'no content type'}")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "bad-json", f"the body is not valid JSON: {exc}") from None


async def read_fields(request: Request) -> dict[str, Any]:
    """An urlencoded form (what an HTML form posts) or a JSON object, as one dictionary."""
    from .problems import Problem

    content_type = media.base(request.headers.get("content-type"))
    if content_type == media.JSON:
        value = await read_json(request, frozenset({media.JSON}))
        if not isinstance(value, dict):
            raise Problem(400, "bad-request", "the body must be a JSON object")
        return value
    if content_type != media.FORM:
        raise Problem(415, "unsupported-media-type",
                      f"send {media.FORM} or {media.JSON}, not {content_type or 'no content type'}")
    body = await read_body(request)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Problem(400, "bad-form", f"the form cannot be read: {exc}") from None
    return dict(pairs)
