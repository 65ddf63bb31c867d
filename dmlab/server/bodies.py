"""Careful body reading: bounded size, declared media type, strict JSON."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from ..protocol import media
from ..protocol.strictjson import parse_json
from .problems import Problem

#: The largest request body the server reads; larger ones get a 413.
MAX_BODY = 256 * 1024


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Problem("bad-request", "Content-Length is not a number")
        if int(declared) > limit:
            raise Problem("too-large", f"the body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Problem("too-large", f"the body is larger than {limit} bytes")
    return bytes(body)


def _unsupported(allowed: str, content_type: str) -> Problem:
    return Problem(
        "unsupported-media-type", f"send {allowed}, not {content_type or 'no content type'}"
    )


def check_json(body: bytes) -> Any:
    """A JSON body's value; a 400 problem if it is not strict JSON."""
    try:
        return parse_json(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem("bad-json", f"the body is not valid JSON: {exc}") from None


async def read_json(
    request: Request, allowed: frozenset[str] = media.DEVICE_BODY_TYPES, *, optional: bool = False
) -> Any:
    """The request's JSON body; ``None`` for an empty optional body."""
    return json_of(await read_body(request), request, allowed, optional=optional)


def json_of(
    body: bytes,
    request: Request,
    allowed: frozenset[str] = media.DEVICE_BODY_TYPES,
    *,
    optional: bool = False,
) -> Any:
    """:func:`read_json` for a body already read."""
    if not body and optional:
        return None
    content_type = media.base(request.headers.get("content-type"))
    if content_type not in allowed:
        raise _unsupported(", ".join(sorted(allowed)), content_type)
    return check_json(body)


async def read_fields(request: Request) -> dict[str, Any]:
    """An urlencoded form (what an HTML form posts) or a JSON object, as one dictionary;
    an empty body (whatever its type) is no fields."""
    content_type = media.base(request.headers.get("content-type"))
    body = await read_body(request)
    if not body:
        return {}
    if content_type == media.JSON:
        value = check_json(body)
        if not isinstance(value, dict):
            raise Problem("bad-request", "the body must be a JSON object")
        return value
    if content_type != media.FORM:
        raise _unsupported(f"{media.FORM} or {media.JSON}", content_type)
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=50
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise Problem("bad-form", f"the form cannot be read: {exc}") from None
    return dict(pairs)
