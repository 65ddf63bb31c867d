"""Resources the CR implies but does not name: what devices fetch and upload
during a session (firmware packages, HGET sources, HPUT/HPOST targets), the
long-poll notification channel, and the front page."""

from __future__ import annotations

import asyncio
import json
import re

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ...protocol import media
from ...protocol.firmware import lab_package
from ..context import authenticate, note, owned_device, services
from ..jobs import is_version
from ..negotiation import read_body, wants_html
from ..pages import page
from ..problems import Problem, not_found
from .common import base_url

DATA_KEY = re.compile(r"[A-Za-z0-9._-]{1,100}")
#: Longest wait a long-poll may ask for, in seconds.
MAX_WAIT = 30.0
POLL_INTERVAL = 0.05

RESOURCES = [
    ("GET", "/sessions/pending", "list pending management sessions"),
    ("GET", "/sessions/completed", "list completed sessions with their brief result"),
    ("POST", "/sessions/next", "start the next pending session; get its commands"),
    ("POST", "/sessions/id/{sessionId}", "start that pending session; get its commands"),
    ("PUT", "/sessions/id/{sessionId}", "report statuses; maybe get more commands under a new id"),
    ("DELETE", "/session/id/{sessionId}", "abort a session (also /sessions/id/…)"),
    ("GET", "/devices", "list the account's devices"),
    ("GET", "/devices/new", "device registration form (HTML)"),
    ("POST", "/devices/new", "register a device"),
    ("GET", "/devices/{devId}", "device information (and update form)"),
    ("PUT", "/devices/{devId}", "update device information"),
    ("DELETE", "/devices/{devId}", "unregister a device"),
    ("POST", "/alert", "report a device event; maybe get commands"),
    ("POST", "/devices/{devId}/sessions", "browser entry point: ask for a session (lab choice)"),
]


async def home(request: Request) -> Response:
    if wants_html(request):
        return page(request, "index.html", title="dmlab DM 2.0 server", resources=RESOURCES)
    return JSONResponse(
        {
            "server": services(request).server_id,
            "resources": [{"method": m, "path": p, "purpose": d} for m, p, d in RESOURCES],
        }
    )


async def firmware(request: Request) -> Response:
    authenticate(request, "device", "account")
    version = request.path_params["version"]
    if not is_version(version):
        raise not_found(f"no firmware {version}")
    note(request, response=f"firmware {version}")
    return Response(lab_package(version), media_type=media.JSON)


async def firmware_url(request: Request) -> Response:
    """The package's URL as text: a FUMO job HGETs it into DownloadAndUpdate/PkgURL."""
    authenticate(request, "device", "account")
    version = request.path_params["version"]
    if not is_version(version):
        raise not_found(f"no firmware {version}")
    return PlainTextResponse(f"{base_url(request)}/firmware/{version}")


def _data_key(request: Request) -> str:
    key = request.path_params["key"]
    if not DATA_KEY.fullmatch(key):
        raise Problem(400, "bad-request", "a data key is 1 to 100 letters, digits or ._-")
    return key


async def put_data(request: Request) -> Response:
    """Where HPUT, HPOST and SUB deliver a device's data."""
    principal = authenticate(request, "device")
    key = _data_key(request)
    body = await read_body(request)
    content_type = media.base(request.headers.get("content-type")) or "application/octet-stream"
    if content_type == media.JSON:
        try:
            json.loads(body)
        except ValueError:
            raise Problem(400, "bad-json", "the body is not valid JSON") from None
    services(request).store.put_data(principal.name, key, content_type, body)
    note(request, request=f"{len(body)} bytes of {content_type}", response="stored")
    return Response(status_code=204)


async def get_data(request: Request) -> Response:
    principal = authenticate(request, "device", "account")
    key = _data_key(request)
    if principal.kind == "device":
        dev_id = principal.name
    else:
        dev_id = owned_device(request, principal, request.path_params.get("dev_id", "")).dev_id
    found = services(request).store.get_data(dev_id, key)
    if found is None:
        raise not_found(f"no data {key}")
    content_type, body = found
    return Response(body, media_type=content_type)


async def notifications(request: Request) -> Response:
    """Long-poll for the next DM Notification (``?wait=`` seconds, at most 30)."""
    principal = authenticate(request, "device")
    try:
        wait = min(float(request.query_params.get("wait", "0")), MAX_WAIT)
    except ValueError:
        raise Problem(400, "bad-request", "wait is a number of seconds") from None
    if wait != wait:  # NaN: no deadline would ever pass, the poll would never end
        raise Problem(400, "bad-request", "wait is a number of seconds")
    notifier = services(request).notifier
    deadline = asyncio.get_running_loop().time() + max(wait, 0.0)
    while True:
        package = notifier.take(principal.name)
        if package is not None:
            note(request, response=f"DM Notification ({len(package)} bytes)")
            return Response(package, media_type=media.NOTIFICATION)
        if asyncio.get_running_loop().time() >= deadline or await request.is_disconnected():
            return Response(status_code=204)
        await asyncio.sleep(POLL_INTERVAL)


routes = [
    Route("/", home, methods=["GET"]),
    Route("/firmware/{version}", firmware, methods=["GET"]),
    Route("/firmware/{version}/url", firmware_url, methods=["GET"]),
    Route("/data/{key}", get_data, methods=["GET"]),
    Route("/data/{key}", put_data, methods=["PUT", "POST"]),
    Route("/devices/{dev_id}/data/{key}", get_data, methods=["GET"]),
    Route("/notifications", notifications, methods=["GET"]),
]
