"""One declaration per operation.

Every route the server serves is an :class:`Operation`: a Starlette ``Route`` for
one method that also carries what the route cannot say about itself: a summary,
who may call it, the request body's media types and schemas, the answers (status,
media types, schemas, headers). The router serves them; ``/openapi.json``,
``/docs``, the front page, notebook 01's resource table and the README's API table
are all generated from them (:mod:`.openapi`), so no copy can drift.

This module is the vocabulary route modules write declarations in: tags, callers,
and the shared answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.routing import BaseRoute, Route

from ..caps import describe
from ..protocol import media
from .bodies import MAX_BODY
from .problems import PROBLEM_JSON

REF = "#/components/schemas/{model}"

#: Who may call an operation; each caller is an HTTP Basic security scheme.
Caller = Literal["account", "device"]
SCHEMES: dict[str, str] = {"account": "accountBasic", "device": "deviceBasic"}
ACCOUNT: tuple[Caller, ...] = ("account",)
DEVICE: tuple[Caller, ...] = ("device",)
BOTH: tuple[Caller, ...] = ("device", "account")

# Tags: the groups /docs and the README table show, in this order.
SESSIONS = "Sessions (CR x.1.1)"
DEVICES = "Devices (CR x.1.2)"
ALERT = "Alert (CR x.1.3)"
ENTRY = "Browser entry point (lab choice)"
DATA = "Data resources (lab choice)"
PEOPLE = "Pages for people"
TAGS = (SESSIONS, DEVICES, ALERT, ENTRY, DATA, PEOPLE)


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


@dataclass(frozen=True)
class Doc:
    """What a route says about itself (see :class:`Operation`)."""

    summary: str
    tag: str
    who: tuple[Caller, ...] = ()  # any of them; () means anyone
    body: Mapping[str, Any] | None = None  # media type -> {"schema": ...}
    body_required: bool = True
    responses: Mapping[int, dict[str, Any] | str] = field(default_factory=dict)
    query: tuple[dict[str, Any], ...] = ()
    devid_header: bool = False  # a device names itself in OMADM-DevID
    #: The name code generators give the call; by default the endpoint's.
    operation_id: str = ""
    #: Served only while these lab choices have one of these options in force
    #: (``{"abort-path": ("both",)}``); empty: always served.
    when: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def browser(self) -> bool:
        """Whether a browser gets a page here (an answer offers HTML; a refusal's
        problem page, which every operation has, does not count)."""
        return any(
            isinstance(r, dict) and media.HTML in r.get("content", {}) and code < 400
            for code, r in self.responses.items()
        )


class Operation(Route):
    """A route for one method, with its :class:`Doc`."""

    def __init__(
        self,
        method: str,
        path: str,
        endpoint: Callable[..., Any],
        summary: str,
        tag: str,
        **doc: Any,
    ) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.method = method
        doc.setdefault("operation_id", endpoint.__name__)
        self.doc = Doc(summary, tag, **doc)


def served(route: BaseRoute, choices: Mapping[str, str]) -> bool:
    """Whether ``route`` is served under the lab choices in force (its ``when``)."""
    if not isinstance(route, Operation):
        return True
    return all(choices[key] in values for key, values in route.doc.when.items())


def operations(routes: Iterable[BaseRoute]) -> list[Operation]:
    """The declared operations among ``routes`` (normally ``app.routes``), in order."""
    return [r for r in routes if isinstance(r, Operation)]


#: Path parameters as the CR spells them (Starlette routes use snake case).
PARAM_NAMES = {"dev_id": "devId", "session_id": "sessionId"}


def openapi_path(route_path: str) -> str:
    """A Starlette route path with the CR's parameter names."""
    return re.sub(
        r"\{(\w+)(?::\w+)?\}", lambda m: "{" + PARAM_NAMES.get(m[1], m[1]) + "}", route_path
    )


def who_text(doc: Doc) -> str:
    """Who may call, in words: ``device, account``, ``account, browser``, ``anyone``."""
    callers = [*doc.who, *(["browser"] if doc.browser and doc.who else [])]
    return ", ".join(callers) or "anyone"


def resource_rows(routes: Iterable[BaseRoute]) -> list[dict[str, str]]:
    """One row per operation, grouped by tag: the front page's and notebook 01's table."""
    ops = sorted(operations(routes), key=lambda op: TAGS.index(op.doc.tag))
    return [
        {
            "method": op.method,
            "path": openapi_path(op.path),
            "who": who_text(op.doc),
            "purpose": op.doc.summary,
            "group": op.doc.tag,
        }
        for op in ops
    ]


def markdown_table(routes: Iterable[BaseRoute]) -> str:
    """The README's API table (``python -m dmlab.server.tables`` rewrites it there)."""
    lines = ["| Resource | Who | What it does |", "|---|---|---|"]
    group = None
    for row in resource_rows(routes):
        if row["group"] != group:
            group = row["group"]
            lines.append(f"| **{group}** | | |")
        lines.append(f"| `{row['method']} {row['path']}` | {row['who']} | {row['purpose']} |")
    return "\n".join(lines) + "\n"


# Answers ---------------------------------------------------------------------------

PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": ref("Problem")}, media.HTML: {"schema": ref("Html")}}

#: Shared refusals; the text says when each happens.
COMMON_RESPONSES: dict[str, dict[str, Any]] = {
    "400": {
        "description": "The request is malformed (a bad body, field or parameter).",
        "content": PROBLEM_CONTENT,
    },
    "401": {
        "description": "No valid credentials (or `OMADM-DevID` names another device).",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        "content": PROBLEM_CONTENT,
    },
    "403": {
        "description": "Credentials of the wrong kind, or a form without its CSRF token.",
        "content": PROBLEM_CONTENT,
    },
    "404": {
        "description": "No such resource, or one the caller may not see.",
        "content": PROBLEM_CONTENT,
    },
    "405": {"description": "Not allowed here.", "content": PROBLEM_CONTENT},
    "406": {
        "description": "No media type this resource offers is acceptable (`Accept`).",
        "content": PROBLEM_CONTENT,
    },
    "409": {
        "description": "The session is not in a state that allows this (e.g. a spent id).",
        "content": PROBLEM_CONTENT,
    },
    "412": {
        "description": "`If-Match` or `If-None-Match` does not hold for the current `ETag`.",
        "content": PROBLEM_CONTENT,
    },
    "413": {
        "description": f"The body is larger than {MAX_BODY} bytes.",
        "content": PROBLEM_CONTENT,
    },
    "415": {
        "description": "The body's media type is not one this resource reads.",
        "content": PROBLEM_CONTENT,
    },
    "429": {
        "description": "Too many failed logins for this name; wait `Retry-After` seconds.",
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
        "content": PROBLEM_CONTENT,
    },
}


def text_answer(description: str) -> dict[str, Any]:
    """A plain-text answer (a URL, a literal a job HGETs)."""
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def json_answer(
    schema: str, description: str, *, html: bool = False, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    content = {media.JSON: {"schema": ref(schema)}}
    if html:
        content[media.HTML] = {"schema": ref("Html")}
    response: dict[str, Any] = {"description": description, "content": content}
    if headers:
        response["headers"] = {
            k: {"description": v, "schema": {"type": "string"}} for k, v in headers.items()
        }
    return response


def html_page(description: str) -> dict[str, Any]:
    return {"description": description, "content": {media.HTML: {"schema": ref("Html")}}}


def empty(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if headers:
        response["headers"] = {
            k: {"description": v, "schema": {"type": "string"}} for k, v in headers.items()
        }
    return response


def problems(*statuses: int) -> dict[int, str]:
    """The shared problem answers for ``statuses`` (``{400: "400", …}``; each is
    described once, in ``COMMON_RESPONSES``), to spread into ``responses``."""
    return {status: str(status) for status in statuses}


def over_cap(*caps: str) -> dict[str, Any]:
    """The 429 of an operation that caps of :mod:`dmlab.caps` bound."""
    return {
        "description": " Or: ".join(
            [COMMON_RESPONSES["429"]["description"], *(describe(cap) for cap in caps)]
        ),
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
        "content": PROBLEM_CONTENT,
    }


#: The 429 of an operation that queues a session: the login lockout, or a cap on
#: pending sessions of the device or its account.
QUEUE_CAPS = over_cap("pending_per_device", "pending_per_account")

COMMANDS_200 = {
    "description": "Package 2: the commands, under the session id in force; in the DM 2.0 "
    "specification's type for a device whose Accept names only that one (it then sends no "
    "package 3 after END: lab choice end-report).",
    "headers": {
        "Location": {
            "description": "/sessions/id/{the id to report to}",
            "schema": {"type": "string"},
        }
    },
    "content": {
        media.COMMANDS: {"schema": ref("Commands")},
        media.DM20_REQUEST: {"schema": ref("Commands")},
    },
}
END_204 = empty(
    "The session has ended (no commands follow).",
    {"OMADM-Result": "the brief result: OK or failure"},
)
#: The strong validator of a resource's JSON representation (conditions.py).
ETAG = {"ETag": "strong validator of this representation (for If-Match / If-None-Match)"}
NOT_MODIFIED_304 = empty("Unchanged since the `ETag` named in `If-None-Match`.", ETAG)
REDIRECT_303 = empty("Browsers go on to the next page.", {"Location": "the next page"})

#: Package 1 and 3 bodies: every media type a device may label them with.
REPORT_BODY = {
    type_: {"schema": ref("Report"), "x-note": note}
    for type_, note in media.DEVICE_BODY_MEDIA.items()
}
ALERT_BODY = {
    type_: {"schema": ref("AlertReport"), "x-note": note}
    for type_, note in media.DEVICE_BODY_MEDIA.items()
}
