"""The trace as an HTTP Archive (HAR 1.2), for Chromium DevTools and other HAR viewers.

One entry per HTTP exchange the server answered. The trace keeps one-line
summaries, not bodies or headers, so those go where HAR keeps free text
(``comment``), and sizes it does not know are -1 as HAR says. DM Notifications
(package 0) are not HTTP: they are left out and counted in the log's comment.
Fields HAR does not define start with an underscore, as the format asks.

Format: http://www.softwareishard.com/blog/har-12-spec/
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # the trace writes HAR files: it imports this module
    from .trace import Exchange

__all__ = ["har", "write_har"]


def _status_text(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def _entry(exchange: Exchange, base_url: str) -> dict[str, Any]:
    wait = round(exchange.elapsed * 1000, 3)
    return {
        "startedDateTime": _iso(exchange.started),
        "time": wait,
        "request": {
            "method": exchange.method,
            "url": base_url.rstrip("/") + exchange.path,
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": [],
            "queryString": [],
            "headersSize": -1,
            "bodySize": -1,
            "comment": exchange.request,
        },
        "response": {
            "status": exchange.status,
            "statusText": _status_text(exchange.status),
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": [],
            "content": {"size": -1, "mimeType": "", "comment": exchange.response},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "comment": exchange.response,
        },
        "cache": {},
        # The server measures from the request's arrival to its answer: all of it "wait".
        "timings": {"send": 0, "wait": wait, "receive": 0},
        "comment": f"{exchange.source} → {exchange.target}",
        "_seq": exchange.seq,
        "_source": exchange.source,
        "_devId": exchange.dev_id,
        "_session": exchange.session,
    }


def har(exchanges: Iterable[Exchange], *, base_url: str) -> dict[str, Any]:
    """The HAR 1.2 document (a dict) of ``exchanges``; URLs are ``base_url`` + path."""
    exchanges = list(exchanges)
    entries = [_entry(e, base_url) for e in exchanges if e.method != "NOTIFY"]
    notifications = len(exchanges) - len(entries)
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "dmlab", "version": __version__},
            "entries": entries,
            "comment": (
                f"{notifications} DM Notification(s) (package 0, not HTTP) left out; "
                "bodies and headers are not kept, each exchange's summary is in its comments"
            ),
        }
    }


def write_har(
    exchanges: Iterable[Exchange], path: str | os.PathLike[str], *, base_url: str
) -> Path:
    """Write :func:`har` of ``exchanges`` to ``path`` (UTF-8 JSON)."""
    path = Path(path)
    path.write_text(
        json.dumps(har(exchanges, base_url=base_url), ensure_ascii=False, indent=1),
        encoding="utf-8",
    )
    return path
