"""Content negotiation (RFC 9110 §12.5.1): q-values, wildcards and specificity.

Accept is parsed by ``python-mimeparse``; this module adds what it leaves out:
media types are case-insensitive, a malformed range is ignored rather than fatal,
``q=0`` means "not acceptable", and every negotiated answer says ``Vary: Accept``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import mimeparse
from starlette.requests import Request

from ..protocol import media

Range = tuple[str, str, dict[str, str]]


class NotAcceptable(Exception):
    """Nothing the resource offers is acceptable (a 406)."""

    def __init__(self, offers: Sequence[str]) -> None:
        super().__init__(", ".join(offers))
        self.offers = tuple(offers)


def parse_accept(header: str | None) -> list[Range] | None:
    """The media ranges of an Accept header; ``None`` when it is absent or blank
    (then anything is acceptable)."""
    if header is None or not header.strip():
        return None
    ranges = []
    for item in header.lower().split(","):
        if item.strip():
            try:
                ranges.append(mimeparse.parse_media_range(item))
            except ValueError:
                continue  # a malformed range names nothing
    return ranges


def preferred(header: str | None, offers: Sequence[str]) -> str | None:
    """The offer the client prefers: highest q, then the most specific matching range,
    then the earlier offer. ``None`` if every offer has q=0 or matches nothing."""
    return _preferred(header, tuple(offers))


# A fleet sends the same few Accept headers over and over, and parsing one took ~6 %
# of a request's time; the answer depends on nothing else. Bounded: a client choosing
# a new header each time only pushes the others out.
@functools.lru_cache(maxsize=256)
def _preferred(header: str | None, offers: tuple[str, ...]) -> str | None:
    ranges = parse_accept(header)
    if ranges is None:
        return offers[0] if offers else None
    best: tuple[float, float, int] | None = None
    chosen = None
    for position, offer in enumerate(offers):
        q, fitness = mimeparse.quality_and_fitness_parsed(offer, ranges)
        key = (q, fitness, -position)
        if q > 0 and (best is None or key > best):
            best, chosen = key, offer
    return chosen


def negotiate(request: Request, offers: Sequence[str], *, strict: bool = True) -> str:
    """The media type to answer with, marking the answer ``Vary: Accept``. Nothing
    acceptable: :class:`NotAcceptable` (a 406), or with ``strict=False`` (for error
    answers, RFC 9110 §12.1) the first offer."""
    request.scope.setdefault("state", {})["vary_accept"] = True
    chosen = preferred(request.headers.get("accept"), offers)
    if chosen is None:
        if strict:
            raise NotAcceptable(offers)
        chosen = offers[0]
    return chosen


#: What a resource with both a JSON and an HTML form offers; JSON first, for
#: programs that send no Accept or ``*/*``.
JSON_OR_HTML = (media.JSON, media.HTML)
#: The browser entry point: commands (flow 3) only where the caller prefers them,
#: never through a wildcard alone (``*/*`` is an operator's script: flow 1).
FLOW_3 = (media.JSON, media.HTML, media.COMMANDS)


def wants_html(request: Request) -> bool:
    """Whether to answer a page: text/html is preferred to JSON (406 if neither is acceptable)."""
    return negotiate(request, JSON_OR_HTML) == media.HTML
