"""Entity tags and conditional requests (RFC 9110 §8.8.3, §13).

A resource's tag is a strong validator of its JSON representation: a digest of the
value that representation serialises, so any change to that representation changes it.
Preconditions of a PUT or DELETE are evaluated inside the core's unit of work, against
the resource as it is there, so a check and the change it guards cannot be split by
another writer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request

from ..core.errors import PreconditionFailed

T = TypeVar("T")


def etag_of(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


def _tags(header: str) -> list[str]:
    # Entity tags hold no commas (etagc excludes them), so a split is exact enough.
    return [t.strip() for t in header.split(",") if t.strip()]


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def if_match_holds(header: str, current: str) -> bool:
    """``If-Match`` (§13.1.1): strong comparison; a weak tag never matches."""
    tags = _tags(header)
    return "*" in tags or current in tags


def if_none_match_holds(header: str, current: str) -> bool:
    """``If-None-Match`` (§13.1.2): weak comparison; false when any tag matches."""
    tags = _tags(header)
    return not ("*" in tags or _opaque(current) in {_opaque(t) for t in tags})


def expectation(request: Request, tag_of: Callable[[T], str]) -> Callable[[T], None] | None:
    """The preconditions of a state-changing request, as a check the core runs on the
    current resource (``None`` when the request has none). A failed one is a 412."""
    if_match = request.headers.get("if-match")
    if_none_match = request.headers.get("if-none-match")
    if if_match is None and if_none_match is None:
        return None

    def check(current: T) -> None:
        tag = tag_of(current)
        if if_match is not None and not if_match_holds(if_match, tag):
            raise PreconditionFailed(f"If-Match does not hold: the current tag is {tag}")
        if if_none_match is not None and not if_none_match_holds(if_none_match, tag):
            raise PreconditionFailed(f"If-None-Match does not hold: the current tag is {tag}")

    return check


def not_modified(request: Request, tag: str) -> bool:
    """Whether a GET's ``If-None-Match`` names the current tag (answer 304)."""
    header = request.headers.get("if-none-match")
    return header is not None and not if_none_match_holds(header, tag)
