"""The JSON messages of a DM 2.0 session: commands, statuses and alerts.

A package 2 is ``{"CMD": [[name, arg, ...], ...]}``; a package 3 is
``{"Status": [{"sc": 200, "Data": ...}, ...], "Alert": [...]}``. Parsing is
strict: anything that is not of this shape raises :class:`ProtocolError`,
which the server turns into a ``400`` and a device into a ``400`` status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Final


class ProtocolError(ValueError):
    """A message does not have the shape the protocol requires."""


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
}

MARKS: Final = frozenset(
    {"fatal", "critical", "minor", "warning", "informational", "harmless", "indeterminate"}
)

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


@dataclass(frozen=True, slots=True)
class Command:
    """One management command: its name and positional arguments."""

    name: str
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in ARITY:
            raise ProtocolError(f"unknown command {self.name!r}")
        least, most = ARITY[self.name]
        if len(self.args) < least or (most is not None and len(self.args) > most):
            want = (
                f"{least}"
                if least == most
                else f"{least} or more"
                if most is None
                else f"{least} to {most}"
            )
            raise ProtocolError(f"{self.name} takes {want} argument(s), got {len(self.args)}")
        for arg in self.args:
            if not isinstance(arg, str) or not arg:
                raise ProtocolError(f"{self.name} arguments must be non-empty strings")

    @classmethod
    def of(cls, name: str, *args: str) -> Command:
        return cls(name, tuple(args))

    @classmethod
    def from_json(cls, value: Any) -> Command:
        if not isinstance(value, list) or not value or not isinstance(value[0], str):
            raise ProtocolError("a command is a list: [name, argument, ...]")
        return cls(value[0].upper(), tuple(value[1:]))

    def to_json(self) -> list[str]:
        return [self.name, *self.args]

    def __str__(self) -> str:
        return " ".join(self.to_json())


def parse_commands(value: Any) -> tuple[Command, ...]:
    """Validate a ``CMD`` list: non-empty, and ``END`` only as the last command."""
    if not isinstance(value, list) or not value:
        raise ProtocolError('"CMD" must be a non-empty list of commands')
    if len(value) > 1000:
        raise ProtocolError('"CMD" holds more than 1000 commands')
    commands = tuple(Command.from_json(item) for item in value)
    if any(c.name == "END" for c in commands[:-1]):
        raise ProtocolError("END may only be the last command")
    return commands


def commands_json(commands: tuple[Command, ...] | list[Command]) -> list[list[str]]:
    return [c.to_json() for c in commands]


def expects_status(commands: tuple[Command, ...] | list[Command]) -> int:
    """How many statuses a package 3 must carry for these commands (END gets none)."""
    return sum(1 for c in commands if c.name != "END")


@dataclass(frozen=True, slots=True)
class Status:
    """The result of one command: an HTTP-like code, and data for GET."""

    sc: int
    data: Any = None

    def __post_init__(self) -> None:
        if isinstance(self.sc, bool) or not isinstance(self.sc, int) or not 100 <= self.sc <= 599:
            raise ProtocolError('"sc" must be an integer status code from 100 to 599')

    @property
    def ok(self) -> bool:
        return 200 <= self.sc < 300

    @classmethod
    def from_json(cls, value: Any) -> Status:
        if not isinstance(value, dict) or "sc" not in value:
            raise ProtocolError('a status is an object with "sc"')
        unknown = set(value) - {"sc", "Data"}
        if unknown:
            raise ProtocolError(f"unknown status field(s): {', '.join(sorted(unknown))}")
        return cls(value["sc"], value.get("Data"))

    def to_json(self) -> dict[str, Any]:
        return {"sc": self.sc} if self.data is None else {"sc": self.sc, "Data": self.data}


@dataclass(frozen=True, slots=True)
class Alert:
    """A device event (brief §2). Only ``AlertType`` is required."""

    alert_type: str
    source_uri: str | None = None
    target_uri: str | None = None
    mark: str | None = None
    data_type: str | None = None
    data: Any = None

    _FIELDS: ClassVar[dict[str, str]] = {
        "AlertType": "alert_type",
        "SourceURI": "source_uri",
        "TargetURI": "target_uri",
        "Mark": "mark",
        "DataType": "data_type",
        "Data": "data",
    }

    def __post_init__(self) -> None:
        if not isinstance(self.alert_type, str) or not self.alert_type:
            raise ProtocolError('"AlertType" must be a non-empty string')
        if self.mark is not None and (not isinstance(self.mark, str) or self.mark not in MARKS):
            raise ProtocolError(f'"Mark" must be one of {", ".join(sorted(MARKS))}')
        for name in ("source_uri", "target_uri", "data_type"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ProtocolError(f"alert field {name} must be a string")

    @property
    def opens_session(self) -> bool:
        return self.alert_type in AlertType.SESSION_OPENERS

    @classmethod
    def from_json(cls, value: Any) -> Alert:
        if not isinstance(value, dict):
            raise ProtocolError("an alert is a JSON object")
        unknown = set(value) - set(cls._FIELDS)
        if unknown:
            raise ProtocolError(f"unknown alert field(s): {', '.join(sorted(unknown))}")
        if "AlertType" not in value:
            raise ProtocolError('an alert needs "AlertType"')
        return cls(**{cls._FIELDS[k]: v for k, v in value.items()})

    def to_json(self) -> dict[str, Any]:
        return {
            k: getattr(self, a) for k, a in self._FIELDS.items() if getattr(self, a) is not None
        }

    def __str__(self) -> str:
        short = self.alert_type.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
        data = self.data
        if isinstance(data, dict) and len(data) == 1:  # {"DM1x": 200} reads as 200
            (data,) = data.values()
        return short if data is None else f"{short}({data})"


@dataclass(frozen=True, slots=True)
class Report:
    """A package 3 (or the body of a package 1): statuses and alerts."""

    statuses: tuple[Status, ...] = ()
    alerts: tuple[Alert, ...] = field(default=())

    @classmethod
    def from_json(cls, value: Any) -> Report:
        if not isinstance(value, dict):
            raise ProtocolError("the body must be a JSON object")
        unknown = set(value) - {"Status", "Alert"}
        if unknown:
            raise ProtocolError(f"unknown field(s): {', '.join(sorted(unknown))}")
        statuses, alerts = value.get("Status", []), value.get("Alert", [])
        if not isinstance(statuses, list):
            raise ProtocolError('"Status" must be a list')
        if not isinstance(alerts, list):
            raise ProtocolError('"Alert" must be a list')
        if len(statuses) > 1000 or len(alerts) > 100:
            raise ProtocolError("too many statuses or alerts in one message")
        return cls(
            tuple(Status.from_json(s) for s in statuses),
            tuple(Alert.from_json(a) for a in alerts),
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"Status": [s.to_json() for s in self.statuses]}
        if self.alerts:
            body["Alert"] = [a.to_json() for a in self.alerts]
        return body


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
