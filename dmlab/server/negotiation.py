"""Content negotiation and careful body reading."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from ..protocol import media

#: The largest request body the server reads; larger ones get a 413.
MAX_BODY = 256 * 1024
#: The deepest nesting of arrays and objects a JSON body may have. DM bodies need
#: about 5 (a GET status's Data holds a subtree); without a limit, 1000 nested
#: brackets made json.loads (or whatever walked the value later) hit Python's
#: recursion limit: a 500, or a connection dropped without an answer.
MAX_DEPTH = 32


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range")
    return value


def _check_text(value: Any) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a string holds a lone surrogate") from None


def parse_json(text: str | bytes) -> Any:
    """Strict ``json.loads``: at most ``MAX_DEPTH`` levels, no NaN or Infinity (not JSON;
    a JSON answer that echoed them would fail), no lone surrogates (``"\\ud800"``
    parses, but no UTF-8 page, store or answer can hold it). Each is a ``ValueError``."""
    try:
        value = json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    _check_text(value)
    if not isinstance(value, (list, dict)):
        return value
    level, depth = [value], 0
    while level:  # containers only, one nesting level at a time
        depth += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        below: list[Any] = []
        for item in level:
            for child in [*item, *item.values()] if isinstance(item, dict) else item:
                if isinstance(child, (list, dict)):
                    below.append(child)
                else:
                    _check_text(child)
        level = below
    return value


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


async def read_json(
    request: Request, allowed: frozenset[str] = media.DEVICE_BODY_TYPES, *, optional: bool = False
) -> Any:
    """The request's JSON body; ``None`` for an empty optional body."""
    from .problems import Problem

    body = await read_body(request)
    if not body and optional:
        return None
    content_type = media.base(request.headers.get("content-type"))
    if content_type not in allowed:
        raise Problem(
            415,
            "unsupported-media-type",
            f"send {', '.join(sorted(allowed))}, not {content_type or 'no content type'}",
        )
    try:
        return parse_json(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "bad-json", f"the body is not valid JSON: {exc}") from None


async def read_fields(request: Request) -> dict[str, Any]:
    """An urlencoded form (what an HTML form posts) or a JSON object, as one dictionary;
    an empty body (whatever its type) is no fields."""
    from .problems import Problem

    content_type = media.base(request.headers.get("content-type"))
    body = await read_body(request)
    if not body:
        return {}
    if content_type == media.JSON:
        try:
            value = parse_json(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Problem(400, "bad-json", f"the body is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise Problem(400, "bad-request", "the body must be a JSON object")
        return value
    if content_type != media.FORM:
        raise Problem(
            415,
            "unsupported-media-type",
            f"send {media.FORM} or {media.JSON}, not {content_type or 'no content type'}",
        )
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=50
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise Problem(400, "bad-form", f"the form cannot be read: {exc}") from None
    return dict(pairs)
