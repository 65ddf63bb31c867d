"""The records a DM server keeps: accounts, devices, sessions and their rounds.

Records are frozen: a state change builds a new record and puts it back in the
store inside one transaction, so a reader never sees half a transition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..protocol import Alert, Command, Status
from ..protocol.resources import Origin, Result, SessionBrief, State

__all__ = [
    "Account",
    "AlertRecord",
    "Device",
    "JobSpec",
    "Origin",
    "Result",
    "Round",
    "Session",
    "State",
]


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
    #: While active: when it completes as expired unless the device reports (or
    #: resumes) before then; the engine moves it on with every round (``--active-ttl``).
    idle_until: float | None = None

    @property
    def ids(self) -> tuple[str, ...]:
        """Every id this session has had, in order (the pending id first)."""
        ids = [self.key] + [r.session_id for r in self.rounds]
        return tuple(dict.fromkeys(ids))

    def statuses(self) -> list[Status]:
        return [s for r in self.rounds for s in (r.statuses or ())]

    def brief(self) -> dict[str, Any]:
        """The JSON a listing shows for this session (:class:`SessionBrief`)."""
        done = self.state is State.COMPLETED
        # Started: its rounds and ids so far, so that a listing of sessions in progress
        # (GET /sessions/active) names the session as its events do (by its first id).
        started = self.state is not State.PENDING
        return SessionBrief(
            session_id=self.session_id,
            dev_id=self.dev_id,
            job=self.job.describe(),
            origin=self.origin,
            state=self.state,
            created=self.created_at,
            result=self.result if done else None,
            ended=self.ended_at if done else None,
            rounds=len(self.rounds) if started else None,
            ids=list(self.ids) if started else None,
            reason=(self.reason or None) if done else None,
            expires=self.idle_until if self.state is State.ACTIVE else self.expires_at,
        ).to_json()


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """A device event the server received, kept for the device page and widgets."""

    dev_id: str
    alert: Alert
    at: float
    session_key: str | None = None
