"""Listing pages (lab choice ``paging``): ``limit`` and an opaque ``cursor`` in; the
next page's URL out, in a ``Link: <…>; rel="next"`` header (RFC 8288, what generic
HTTP pagers follow) and a ``Next`` field (what generated clients and saved JSON keep).

A cursor is where the previous page ended on the store's index (a session's place in
its state, a device's registration mark), tagged with its listing: it means nothing
to the client, which only hands it back. One that is not a listing's own is a 400.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from ..protocol.provenance import PAGE_DEFAULT, PAGE_MAX
from ..store import Page
from .problems import bad_request

__all__ = ["LINK", "PAGE_QUERY", "PageRequest", "next_url", "page_headers", "page_request"]

_MAX_MARK = 2**63 - 1  # the SQL stores' BIGINT
_MAX_CURSOR = 64  # characters: a tag and a 19-digit mark, base64url

#: The query parameters of a paged listing, for its :class:`Operation`.
PAGE_QUERY: tuple[dict[str, Any], ...] = (
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"items per page, 1 to {PAGE_MAX} ({PAGE_DEFAULT} by default); a page "
        "may hold fewer (lab choice paging)",
        "schema": {"type": "integer", "minimum": 1, "maximum": PAGE_MAX, "default": PAGE_DEFAULT},
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "where the previous page ended: copied from its `Next` (or `Link`); "
        "absent for the first page",
        "schema": {"type": "string", "minLength": 1, "maxLength": _MAX_CURSOR},
    },
)
#: The answer's header that points to the next page.
LINK = {"Link": 'the next page, `<URL>; rel="next"` (absent on the last page)'}


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Which page a request asks for: the items after ``after``, at most ``limit``."""

    listing: str
    after: int
    limit: int
    limit_given: bool


def _cursor(listing: str, after: int) -> str:
    return base64.urlsafe_b64encode(f"{listing}:{after}".encode()).decode().rstrip("=")


def _mark(listing: str, cursor: str) -> int | None:
    if len(cursor) > _MAX_CURSOR or not re.fullmatch(r"[A-Za-z0-9_-]+", cursor):
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    tag, _, number = text.partition(":")
    if tag != listing or not re.fullmatch(r"[1-9][0-9]{0,18}", number):
        return None
    mark = int(number)
    return mark if mark <= _MAX_MARK else None


def page_request(request: Request, listing: str) -> PageRequest:
    """The page ``request`` asks for in ``listing``; a bad ``limit`` or ``cursor`` is a
    400 problem that says what is expected."""
    query = request.query_params
    raw_limit = query.get("limit")
    limit = PAGE_DEFAULT
    if raw_limit is not None:
        if not re.fullmatch(r"[0-9]{1,7}", raw_limit) or not 1 <= int(raw_limit) <= PAGE_MAX:
            raise bad_request(f"limit is a whole number from 1 to {PAGE_MAX}")
        limit = int(raw_limit)
    after = 0
    cursor = query.get("cursor")
    if cursor is not None:
        mark = _mark(listing, cursor)
        if mark is None:
            raise bad_request(
                "cursor is not one this listing handed out (copy it from the previous "
                "page's Next, or leave it out to start from the first page)"
            )
        after = mark
    return PageRequest(listing, after, limit, raw_limit is not None)


def next_url(request: Request, asked: PageRequest, page: Page[Any]) -> str | None:
    """The next page's URL (a path with its query), or ``None`` after the last page."""
    if page.after is None:
        return None
    query = {"cursor": _cursor(asked.listing, page.after)}
    if asked.limit_given:
        query["limit"] = str(asked.limit)
    return f"{request.url.path}?{urlencode(query)}"


def page_headers(url: str | None) -> dict[str, str]:
    return {} if url is None else {"Link": f'<{url}>; rel="next"'}
