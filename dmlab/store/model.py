"""The records a DM server keeps: accounts, devices, sessions and their rounds.

Records are frozen: a state change builds a new record and puts it back in the
store inside one transaction, so a reader never sees half a transition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..protocol import Alert, Command, Status


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


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class Device:
    dev_id: str
    account: str
    secret_hash: str
    #: One-way derivative of the secret that keys notification digests: the
    #: server must compute digests but must not keep the secret itself.
    notify_key: bytes
    man: str = ""
    mod: str = ""
    name: str = ""
    registered_at: float = 0.0


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a session is for: a named job with parameters, or explicit commands."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    commands: tuple[Command, ...] = ()

    def describe(self) -> str:
        return self.name if self.name != "commands" else f"commands ({len(self.commands)})"


@dataclass(frozen=True, slots=True)
class Round:
    """One package 2 and, once reported, its package 3."""

    session_id: str
    commands: tuple[Command, ...]
    statuses: tuple[Status, ...] | None = None
    alerts: tuple[Alert, ...] = ()


@dataclass(frozen=True, slots=True)
class Session:
    """A management session. ``key`` is its first id and never changes; ``session_id``
    is the id in force now: each reported round spends it and assigns a new one."""

    key: str
    dev_id: str
    account: str
    job: JobSpec
    origin: Origin
    state: State = State.PENDING
    result: Result | None = None
    session_id: str = ""
    rounds: tuple[Round, ...] = ()
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    expires_at: float | None = None
    reason: str = ""

    @property
    def ids(self) -> tuple[str, ...]:
        """Every id this session has had, in order (the pending id first)."""
        ids = [self.key] + [r.session_id for r in self.rounds]
        return tuple(dict.fromkeys(ids))

    def statuses(self) -> list[Status]:
        return [s for r in self.rounds for s in (r.statuses or ())]

    def brief(self) -> dict[str, Any]:
        """The JSON a listing shows for this session."""
        body: dict[str, Any] = {
            "SessionID": self.session_id,
            "DevID": self.dev_id,
            "Job": self.job.describe(),
            "Origin": self.origin.value,
            "State": self.state.value,
            "Created": self.created_at,
        }
        if self.state is State.COMPLETED:
            body["Result"] = self.result.value if self.result else None
            body["Ended"] = self.ended_at
            body["Rounds"] = len(self.rounds)
            body["IDs"] = list(self.ids)
            if self.reason:
                body["Reason"] = self.reason
        if self.expires_at is not None:
            body["Expires"] = self.expires_at
        return body


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """A device event the server received, kept for the device page and widgets."""

    dev_id: str
    alert: Alert
    at: float
    session_key: str | None = None
