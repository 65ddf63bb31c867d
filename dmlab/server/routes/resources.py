"""Resources the CR implies but does not name: what devices fetch and upload
during a session (firmware packages, HGET sources, HPUT/HPOST targets), the
long-poll notification channel, and the front page."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ...caps import describe
from ...core.service_jobs import NAME
from ...protocol import media
from ...protocol.firmware import is_version, lab_package
from ..bodies import check_json, read_body
from ..context import authenticate, note, owned_device, services
from ..disconnect import unless_disconnected
from ..negotiation import wants_html
from ..operation import (
    BOTH,
    DATA,
    DEVICE,
    PEOPLE,
    Operation,
    empty,
    json_answer,
    over_cap,
    resource_rows,
    text_answer,
)
from ..pages import page
from ..problems import Problem, not_found
from .common import base_url

DATA_KEY = re.compile(r"[A-Za-z0-9._-]{1,100}")
VALUE = re.compile(r"[A-Za-z0-9.-]{1,64}")
#: Longest wait a long-poll may ask for, in seconds.
MAX_WAIT = 30.0
WAIT_RULE = f"wait is a number of seconds from 0 to {MAX_WAIT:g}"


async def home(request: Request) -> Response:
    """The resources this server offers, from the declarations of its routes."""
    resources = resource_rows(request.app.routes)
    if wants_html(request):
        return page(request, "index.html", title="dmlab DM 2.0 server", resources=resources)
    return JSONResponse({"server": services(request).server_id, "resources": resources})


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


def _software(request: Request) -> tuple[str, str]:
    name, version = request.path_params["name"], request.path_params["version"]
    if not NAME.fullmatch(name) or not is_version(version):
        raise not_found(f"no software {name} {version}")
    return name, version


async def software(request: Request) -> Response:
    """SCOMO's delivery descriptor: a software-install job HGETs it into
    Download/<PkgID> (lab choice scomo-descriptor)."""
    authenticate(request, "device", "account")
    name, version = _software(request)
    note(request, response=f"descriptor {name} {version}")
    return JSONResponse(
        {
            "PkgID": f"{name}-{version}",
            "Name": name,
            "PkgURL": f"{base_url(request)}/software/{name}/{version}/package",
            "Description": f"{name} {version}",
            "EnvType": "dmlab",
            "PkgType": media.JSON,
        }
    )


async def software_package(request: Request) -> Response:
    """The package SCOMO downloads (the firmware package's format)."""
    authenticate(request, "device", "account")
    name, version = _software(request)
    note(request, response=f"package {name} {version}")
    return Response(lab_package(version, name), media_type=media.JSON)


async def value(request: Request) -> Response:
    """A literal as text/plain, so an HGET can write it into a leaf: DM 2.0 has no
    command that carries a value (lab choice lawmo-wipe-selection)."""
    authenticate(request, "device", "account")
    text = request.path_params["text"]
    if not VALUE.fullmatch(text):
        raise Problem("bad-request", "a value is 1 to 64 letters, digits or .-")
    return PlainTextResponse(text)


def _data_key(request: Request) -> str:
    key = request.path_params["key"]
    if not DATA_KEY.fullmatch(key):
        raise Problem("bad-request", "a data key is 1 to 100 letters, digits or ._-")
    return key


async def put_data(request: Request) -> Response:
    """Where HPUT, HPOST and SUB deliver a device's data."""
    principal = authenticate(request, "device")
    key = _data_key(request)
    body = await read_body(request)
    content_type = media.base(request.headers.get("content-type")) or "application/octet-stream"
    if content_type == media.JSON:
        check_json(body)  # depth-limited: 100,000 nested brackets are a 400, not a 500
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
        wait = float(request.query_params.get("wait", "0"))
    except ValueError:
        raise Problem("bad-request", WAIT_RULE) from None
    # NaN fails both comparisons (no deadline would ever pass); a negative wait is
    # outside the documented range, as is one beyond MAX_WAIT.
    if not 0 <= wait <= MAX_WAIT:
        raise Problem("bad-request", WAIT_RULE)
    package = await unless_disconnected(
        request, services(request).notifier.wait(principal.name, wait, account=principal.account)
    )
    if package is None:
        return Response(status_code=204)
    note(request, response=f"DM Notification ({len(package)} bytes)")
    return Response(package, media_type=media.NOTIFICATION)


def _stored_data(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"*/*": {"schema": {}}}}


_DELIVERY = {
    "who": DEVICE,
    "body": {"*/*": {"schema": {}}},
    "body_required": False,
    "responses": {204: empty("Stored."), 400: "400", 413: "413"},
    "devid_header": True,
}

#: What a stored-data read answers.
_STORED: dict[int, Any] = {
    200: _stored_data("The data, in the media type it was sent with."),
    400: "400",
    404: "404",
}


def _fetch(path: str, endpoint: Any, summary: str, responses: dict[int, Any]) -> Operation:
    """A ``GET`` of something a job's HGET fetches: a device (its credentials and
    ``OMADM-DevID``) or the account may read it."""
    return Operation(
        "GET", path, endpoint, summary, DATA, who=BOTH, responses=responses, devid_header=True
    )


routes = [
    Operation(
        "GET",
        "/",
        home,
        "The front page: the resources this server offers.",
        PEOPLE,
        responses={200: json_answer("Home", "The resources.", html=True), 406: "406"},
    ),
    _fetch(
        "/firmware/{version}",
        firmware,
        "A firmware package (what FUMO downloads).",
        {200: json_answer("FirmwarePackage", "The package."), 404: "404"},
    ),
    _fetch(
        "/firmware/{version}/url",
        firmware_url,
        "The package's URL as text: a FUMO job HGETs it into DownloadAndUpdate/PkgURL.",
        {200: text_answer("The URL."), 404: "404"},
    ),
    _fetch(
        "/software/{name}/{version}",
        software,
        "SCOMO's delivery descriptor (PkgID, Name, PkgURL…): a software-install job HGETs "
        "it into Download/<PkgID>.",
        {200: json_answer("SoftwareDescriptor", "The descriptor."), 404: "404"},
    ),
    _fetch(
        "/software/{name}/{version}/package",
        software_package,
        "A software package (what SCOMO downloads; the firmware package's format).",
        {200: json_answer("FirmwarePackage", "The package."), 404: "404"},
    ),
    _fetch(
        "/values/{text}",
        value,
        "The text itself: a job HGETs it to write a literal into a leaf (DM 2.0 has no "
        "command that carries a value).",
        {200: text_answer("The text."), 400: "400"},
    ),
    _fetch(
        "/data/{key}",
        get_data,
        "The data a device delivered under a key (a device reads its own).",
        _STORED,
    ),
    Operation(
        "PUT",
        "/data/{key}",
        put_data,
        "Where HPUT and SUB deliver a device's data.",
        DATA,
        **_DELIVERY,
    ),
    Operation(
        "POST",
        "/data/{key}",
        put_data,
        "Where HPOST delivers a device's data.",
        DATA,
        operation_id="post_data",
        **_DELIVERY,
    ),
    Operation(
        "GET",
        "/devices/{dev_id}/data/{key}",
        get_data,
        "The data one of the account's devices delivered under a key.",
        DATA,
        operation_id="get_device_data",
        who=BOTH,
        responses=_STORED,
        devid_header=True,
    ),
    Operation(
        "GET",
        "/notifications",
        notifications,
        "Long-poll for the next DM Notification (package 0): how a device in another "
        "process, or behind NAT, is reached.",
        DATA,
        who=DEVICE,
        query=(
            {
                "name": "wait",
                "in": "query",
                "required": False,
                "description": f"seconds to wait, 0 (the default: answer at once) to {MAX_WAIT:g}",
                "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT, "default": 0},
            },
        ),
        responses={
            200: {
                "description": "One DM Notification.",
                "content": {
                    media.NOTIFICATION: {
                        "schema": {"type": "string", "contentMediaType": media.NOTIFICATION}
                    }
                },
            },
            204: empty(
                "None arrived in time, or a newer poll of the same device took this one's "
                "place. " + describe("polls_per_device")
            ),
            400: "400",
            429: over_cap("polls_per_account"),
        },
        devid_header=True,
        # Lab choice notification-transport: sse streams (notifications.py), none serves neither.
        when={"notification-transport": ("long-poll",)},
    ),
]
