"""The JSON messages of a DM 2.0 session: commands, statuses and alerts.

A package 2 is ``{"SessionID": …, "CMD": [[name, arg, ...], ...]}``; a package 3 is
``{"Status": [{"sc": 200, "Data": ...}, ...], "Alert": [...]}``. Each body is a
typed model (pydantic), and the model is the one place its shape and limits are
written: parsing (:func:`parse`) and the JSON Schema in ``/openapi.json`` both come
from it. Parsing is strict: anything not of this shape raises
:class:`ProtocolError`, which the server answers with ``400`` and a device with a
``400`` status.

Why pydantic (not msgspec): it is already in the dependency tree (through
openapi-spec-validator and schemathesis); its JSON Schema output is 2020-12
(``prefixItems``, ``const``), which OpenAPI 3.1 uses as is; and bodies are parsed
first by the lab's own depth-limited JSON reader, so the validator only sees
plain Python values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, TypeVar, get_args

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)
from pydantic.dataclasses import dataclass as wire_dataclass
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema


class ProtocolError(ValueError):
    """A message does not have the shape the protocol requires."""


#: Most commands in one package 2, statuses in one package 3, alerts in one message.
MAX_COMMANDS: Final = 1000
MAX_STATUSES: Final = 1000
MAX_ALERTS: Final = 100
#: Most MOIDs in one package 1's MOS, and instances listed for one MOID.
MAX_MOS: Final = 100
MAX_INSTANCES: Final = 1000

# Argument counts: (least, most); None means "any number more" (HPUT/HPOST
# send one or more ClientURIs). The order beyond GET, HGET, HPOST and END is
# the lab's choice (protocol brief §3): ServerURI first for the H-commands,
# ClientURI first for EXEC and SUB/UNSUB.
ARITY: Final[dict[str, tuple[int, int | None]]] = {
    "GET": (1, 1),  # ClientURI
    "HGET": (1, 2),  # ServerURI [, ClientURI]
    "HPUT": (2, None),  # ServerURI, ClientURI...
    "HPOST": (2, None),  # ServerURI, ClientURI...
    "DELETE": (1, 1),  # ClientURI
    "EXEC": (1, 2),  # ClientURI [, ServerURI]
    "SHOW": (1, 1),  # ServerURI
    "CONT": (1, 1),  # ServerURI
    "END": (0, 0),
    "SUB": (2, 2),  # ClientURI, ServerURI
    "UNSUB": (2, 2),  # ClientURI, ServerURI
    "DEFAULT": (2, 2),  # MOID, ServerURI (lab choice argument-order)
}

#: A command name the lab does not know is still a command (lab choice
#: unknown-command): relayed by the server, answered 501 by the lab's device.
COMMAND_NAME: Final = re.compile(r"[A-Z][A-Z0-9_-]{0,31}")
#: Most arguments a command the lab does not know may carry.
MAX_UNKNOWN_ARGS: Final = 16

Mark = Literal[
    "critical", "fatal", "harmless", "indeterminate", "informational", "minor", "warning"
]
MARKS: Final = frozenset(get_args(Mark))

#: Status codes a device may report, with their DM 2.0 meaning (406 is HTTP's Not
#: Acceptable in DM 2.0, not SyncML's "optional feature not supported").
STATUS_TEXT: Final[dict[int, str]] = {
    200: "OK",
    202: "Accepted for processing",
    304: "Not modified",
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Command not allowed",
    406: "Not Acceptable",
    409: "Conflict",
    415: "Unsupported media type",
    500: "Command failed",
    501: "Command not implemented",
}


class AlertType:
    """Alert type URNs (brief §2), with DM 1.2's numeric codes beside them."""

    SERVER_INITIATED: Final = "urn:oma:at:dm:2.0:ServerInitiatedMgmt"
    CLIENT_INITIATED: Final = "urn:oma:at:dm:2.0:ClientInitiatedMgmt"
    BOOTSTRAP_COMPLETE: Final = "urn:oma:at:dm:2.0:BootstrapComplete"
    # FUMO results: DM 2.0-style names (lab choice fumo-alert; see protocol.alerts).
    FUMO_DOWNLOAD_AND_UPDATE: Final = "urn:oma:at:fumo:1.0:DownloadAndUpdate"
    FUMO_DOWNLOAD: Final = "urn:oma:at:fumo:1.0:Download"
    FUMO_UPDATE: Final = "urn:oma:at:fumo:1.0:Update"

    #: Types that ask for a management session rather than report an event.
    SESSION_OPENERS: Final = frozenset({SERVER_INITIATED, CLIENT_INITIATED, BOOTSTRAP_COMPLETE})


#: DM 1.2 alert codes and the DM 2.0 / REST counterpart the lab maps them to.
DM12_ALERT_CODES: Final[dict[int, str]] = {
    1200: AlertType.SERVER_INITIATED,
    1201: AlertType.CLIENT_INITIATED,
    1223: "session abort",
    1224: "client event",
    1226: "generic alert",
}

#: Wire models refuse fields they do not know, and take Python names or wire names.
#: JSON Schema titles are the wire names.
WIRE: Final = ConfigDict(
    extra="forbid",
    validate_by_name=True,
    validate_by_alias=True,
    field_title_generator=lambda name, info: info.alias or name,
)

Text = Annotated[StrictStr, Field(min_length=1)]


def _arity_text(least: int, most: int | None) -> str:
    if least == most:
        return f"{least}"
    return f"{least} or more" if most is None else f"{least} to {most}"


@dataclass(frozen=True, slots=True)
class Command:
    """One management command: its name and positional arguments.

    On the wire a JSON array, ``[name, argument, ...]``: the name is upper case,
    each argument a non-empty string. A name outside the specification's commands
    (:attr:`known`) is still a command: one status answers it (lab choice
    unknown-command)."""

    name: str
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not COMMAND_NAME.fullmatch(self.name):
            raise ProtocolError(
                f"a command name is 1 to 32 upper-case letters, digits, - or _: {self.name!r}"
            )
        least, most = ARITY.get(self.name, (0, MAX_UNKNOWN_ARGS))
        if len(self.args) < least or (most is not None and len(self.args) > most):
            want = _arity_text(least, most)
            raise ProtocolError(f"{self.name} takes {want} argument(s), got {len(self.args)}")
        for arg in self.args:
            if not isinstance(arg, str) or not arg:
                raise ProtocolError(f"{self.name} arguments must be non-empty strings")

    @property
    def known(self) -> bool:
        """Whether the command is one of the specification's (DM 2.0 §3)."""
        return self.name in ARITY

    @classmethod
    def of(cls, name: str, *args: str) -> Command:
        return cls(name, tuple(args))

    @classmethod
    def from_json(cls, value: Any) -> Command:
        if isinstance(value, Command):
            return value
        if not isinstance(value, (list, tuple)) or not value or not isinstance(value[0], str):
            raise ProtocolError("a command is a list: [name, argument, ...]")
        return cls(value[0], tuple(value[1:]))

    def to_json(self) -> list[str]:
        return [self.name, *self.args]

    def __str__(self) -> str:
        return " ".join(self.to_json())

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.from_json,
            ref="Command",
            serialization=core_schema.plain_serializer_function_ser_schema(cls.to_json),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """A tuple-like array: ``prefixItems`` names the command, a plain ``items``
        covers every element (what code generators can read); ``ARITY`` becomes one
        ``if``/``then`` per command, which validators apply and generators skip."""
        arity = ", ".join(f"{n} {_arity_text(*a)}" for n, a in ARITY.items())
        return {
            "title": "Command",
            "description": "One management command: `[name, argument, ...]`. Arguments per "
            f"command: {arity}. The argument order beyond GET, HGET, HPOST and END is the "
            "lab's choice (argument-order). Another upper-case name is relayed with up to "
            f"{MAX_UNKNOWN_ARGS} arguments; devices answer it 501 (unknown-command).",
            "type": "array",
            "prefixItems": [
                {"type": "string", "pattern": f"^{COMMAND_NAME.pattern}$", "examples": list(ARITY)}
            ],
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "allOf": [
                {
                    "if": {"prefixItems": [{"const": name}]},
                    "then": {"minItems": 1 + least}
                    | ({} if most is None else {"maxItems": 1 + most}),
                }
                for name, (least, most) in ARITY.items()
            ],
            "examples": [["GET", "./DevInfo/FwV"], ["END"]],
        }


def _end_last(commands: tuple[Command, ...]) -> tuple[Command, ...]:
    if any(c.name == "END" for c in commands[:-1]):
        raise ValueError("END may only be the last command")
    return commands


CommandList = Annotated[
    tuple[Command, ...],
    Field(
        min_length=1,
        max_length=MAX_COMMANDS,
        description="An ordered list of commands; END may only be the last one.",
    ),
    AfterValidator(_end_last),
]


@wire_dataclass(frozen=True, slots=True, config=WIRE)
class Commands:
    """Package 2: the commands of one round under the session id in force (a new id
    every round)."""

    session_id: Annotated[Text, Field(alias="SessionID")]
    commands: Annotated[CommandList, Field(alias="CMD")]


@wire_dataclass(frozen=True, slots=True, config=WIRE)
class Status:
    """The result of one command: an HTTP-like code, data for GET (``Data`` carries a
    GET's value: lab choice get-data), and ``URI``, where the device put what it
    fetched (specification §6.4: an HGET without ClientURI)."""

    sc: Annotated[StrictInt, Field(ge=100, le=599)]
    data: Annotated[Any, Field(alias="Data")] = None
    uri: Annotated[tuple[Text, ...], Field(alias="URI", max_length=100)] = ()

    @property
    def ok(self) -> bool:
        """2xx, or 304 (the server's cached copy is still good): the command did its job."""
        return 200 <= self.sc < 300 or self.sc == 304

    @classmethod
    def from_json(cls, value: Any) -> Status:
        return parse(Status, value)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = dump(Status, self)
        if self.uri:
            body["URI"] = list(self.uri)
        else:
            body.pop("URI", None)
        return body


@wire_dataclass(frozen=True, slots=True, config=WIRE)
class Alert:
    """A device event (brief §2); only ``AlertType`` is required. Session-opening
    types (ClientInitiatedMgmt, ServerInitiatedMgmt, BootstrapComplete) ask for a
    session; anything else (such as a FUMO result) is a generic alert."""

    alert_type: Annotated[
        Text,
        Field(
            alias="AlertType",
            examples=[AlertType.CLIENT_INITIATED, AlertType.FUMO_DOWNLOAD_AND_UPDATE],
        ),
    ]
    source_uri: Annotated[StrictStr | None, Field(alias="SourceURI")] = None
    target_uri: Annotated[StrictStr | None, Field(alias="TargetURI")] = None
    mark: Annotated[Mark | None, Field(alias="Mark")] = None
    data_type: Annotated[StrictStr | None, Field(alias="DataType")] = None
    data: Annotated[Any, Field(alias="Data")] = None

    @property
    def opens_session(self) -> bool:
        return self.alert_type in AlertType.SESSION_OPENERS

    @classmethod
    def from_json(cls, value: Any) -> Alert:
        return parse(Alert, value)

    def to_json(self) -> dict[str, Any]:
        return dump(Alert, self)

    def __str__(self) -> str:
        short = self.alert_type.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
        data = self.data
        if isinstance(data, dict) and len(data) == 1:  # {"DM1x": 200} reads as 200
            (data,) = data.values()
        return short if data is None else f"{short}({data})"


@wire_dataclass(frozen=True, slots=True, config=WIRE)
class MO:
    """One entry of package 1's ``MOS`` (specification §6.2): a supported MOID, its
    instances' MIIDs (required), and where its DDF is published."""

    miid: Annotated[tuple[StrictStr, ...], Field(alias="MIID", max_length=MAX_INSTANCES)]
    moid: Annotated[Text | None, Field(alias="MOID")] = None
    ddf: Annotated[StrictStr | None, Field(alias="DDF")] = None

    def to_json(self) -> dict[str, Any]:
        return dump(MO, self)


MOList = Annotated[tuple[MO, ...], Field(alias="MOS", max_length=MAX_MOS)]


@wire_dataclass(frozen=True, slots=True, config=WIRE)
class Report:
    """Package 3: one status per command of the round (END gets none), plus alerts.
    Package 1 uses the same shape: alerts (such as ServerInitiatedMgmt) and ``MOS``,
    the management objects the device supports (specification §6.2)."""

    statuses: Annotated[tuple[Status, ...], Field(alias="Status", max_length=MAX_STATUSES)] = ()
    alerts: Annotated[tuple[Alert, ...], Field(alias="Alert", max_length=MAX_ALERTS)] = ()
    mos: MOList = ()

    @classmethod
    def from_json(cls, value: Any) -> Report:
        return parse(Report, value)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"MOS": [m.to_json() for m in self.mos]} if self.mos else {}
        body["Status"] = [s.to_json() for s in self.statuses]
        if self.alerts:
            body["Alert"] = [a.to_json() for a in self.alerts]
        return body


@wire_dataclass(frozen=True, slots=True, config=WIRE)
class AlertReport:
    """The body of ``POST /alert``: a package 1 with at least one alert (and ``MOS``
    when the device lists its MOs), and no statuses (they belong to
    ``PUT /sessions/id/{sessionId}``)."""

    alerts: Annotated[tuple[Alert, ...], Field(alias="Alert", min_length=1, max_length=MAX_ALERTS)]
    statuses: Annotated[tuple[Status, ...], Field(alias="Status", max_length=0)] = ()
    mos: MOList = ()


M = TypeVar("M")
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def adapter(model: Any) -> TypeAdapter[Any]:
    """The (cached) pydantic adapter of a wire model or type."""
    found = _ADAPTERS.get(model)
    if found is None:
        found = _ADAPTERS[model] = TypeAdapter(model)
    return found


def describe_error(exc: ValidationError) -> str:
    """A validation failure as one readable line: ``Status.0.sc: …``."""
    error = exc.errors(include_url=False)[0]  # the first is the cause; others follow from it
    where = ".".join(str(p) for p in error["loc"])
    if error["type"] == "unexpected_keyword_argument":
        return f"unknown field {where}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def parse(model: type[M] | Any, value: Any) -> M:
    """``value`` (plain JSON data) as ``model``, or :class:`ProtocolError`."""
    try:
        return adapter(model).validate_python(value)
    except ValidationError as exc:
        raise ProtocolError(describe_error(exc)) from None


def dump(model: Any, value: Any) -> Any:
    """``value`` as JSON data, with wire names and without absent (``None``) fields."""
    return adapter(model).dump_python(value, by_alias=True, exclude_none=True)


def parse_commands(value: Any) -> tuple[Command, ...]:
    """Validate a ``CMD`` list: 1 to ``MAX_COMMANDS`` commands, ``END`` only last."""
    commands: tuple[Command, ...] = parse(CommandList, value)
    return commands


def commands_json(commands: tuple[Command, ...] | list[Command]) -> list[list[str]]:
    return [c.to_json() for c in commands]


def expects_status(commands: tuple[Command, ...] | list[Command]) -> int:
    """How many statuses a package 3 must carry for these commands (END gets none)."""
    return sum(1 for c in commands if c.name != "END")


def summarize_commands(commands: tuple[Command, ...] | list[Command]) -> str:
    """One line for the trace: ``GET×2 EXEC END``."""
    out: list[str] = []
    for c in commands:
        if out and out[-1].split("×")[0] == c.name:
            name, _, n = out[-1].partition("×")
            out[-1] = f"{name}×{int(n or 1) + 1}"
        else:
            out.append(c.name)
    return " ".join(out)


def summarize_statuses(statuses: tuple[Status, ...] | list[Status]) -> str:
    return " ".join(str(s.sc) for s in statuses) or "(none)"
