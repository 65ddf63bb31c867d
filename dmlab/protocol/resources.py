"""The JSON bodies of the CR's resources beyond the session packages: a session as
listings show it, and a device as ``/devices`` shows it.

Like :mod:`.messages`, each body is a model, and the model is the one place its
fields are written: the server builds its answers through them and
``/openapi.json`` takes their JSON Schema.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class State(StrEnum):
    PENDING = "pending"  # queued, waiting for the device to start it
    ACTIVE = "active"  # started; the device holds a live session id
    COMPLETED = "completed"  # ended, with a result


class Result(StrEnum):
    """The CR's brief result, plus the two ways a session ends without one."""

    OK = "OK"
    FAILURE = "failure"
    ABORTED = "aborted"
    EXPIRED = "expired"


class Origin(StrEnum):
    """Which of the CR's four flows (x.2.1 to x.2.4) opened a session."""

    SERVER = "server-initiated"
    CLIENT = "client-initiated"
    BROWSER_COMPONENT = "browser-component-initiated"
    BROWSER = "browser-initiated"


class Body(BaseModel):
    """An answer body: built by the server, so it refuses fields it does not declare.
    Python names where the wire's would shadow a type; the wire names are aliases."""

    model_config = ConfigDict(
        extra="forbid",
        use_enum_values=True,
        validate_by_name=True,
        validate_by_alias=True,
        field_title_generator=lambda name, info: info.alias or name,
    )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class SessionBrief(Body):
    """A session as listings show it; ``Result`` is the CR's brief result (OK or
    failure, or how it ended without one). ``Rounds`` and ``IDs`` appear once the
    session has started (those so far while it runs), ``Result``, ``Ended`` and
    ``Reason`` once it has ended, ``Expires`` when it has a time
    to live: a pending session's (queued with ``ttl``), or an active one's idle
    deadline (``--active-ttl``), which every round moves on."""

    session_id: str = Field(alias="SessionID", description="the id in force")
    dev_id: str = Field(alias="DevID")
    job: str = Field(alias="Job")
    origin: Origin = Field(alias="Origin")
    state: State = Field(alias="State")
    created: float = Field(alias="Created", description="seconds since the epoch")
    result: Result | None = Field(None, alias="Result")
    ended: float | None = Field(None, alias="Ended")
    rounds: Annotated[int, Field(ge=0)] | None = Field(None, alias="Rounds")
    ids: list[str] | None = Field(None, alias="IDs", description="every id it had, in order")
    reason: str | None = Field(None, alias="Reason")
    expires: float | None = Field(
        None,
        alias="Expires",
        description="seconds since the epoch: when a pending session expires unstarted, "
        "or an active one idle",
    )


#: A paged listing's pointer to its next page (lab choice paging).
NEXT_DESCRIPTION = (
    "the next page's URL (also in the Link header); absent on the last page, and only "
    "its absence ends the list"
)


class SessionList(Body):
    """One page of sessions, oldest first."""

    sessions: list[SessionBrief] = Field(alias="Sessions")
    next: str | None = Field(None, alias="Next", description=NEXT_DESCRIPTION)


class DeviceInfo(Body):
    """A registered device; ``pending`` counts its queued sessions, ``active`` those in
    progress (lab choice active-listing)."""

    devId: str
    name: str
    man: str
    mod: str
    account: str
    registered: float = Field(description="seconds since the epoch")
    pending: int = Field(ge=0)
    active: int = Field(0, ge=0)


class RegisteredDevice(DeviceInfo):
    """The new device, with its secret: shown this once, the server keeps a hash."""

    secret: str


class DeviceList(Body):
    """One page of devices, in registration order."""

    devices: list[DeviceInfo] = Field(alias="Devices")
    next: str | None = Field(None, alias="Next", description=NEXT_DESCRIPTION)
