"""The server's limits on sessions, declared once.

Each field is one limit: its default, and the command-line option that sets it
(``python -m dmlab serve --active-ttl 600``). ``serve``'s options, ``Lab(...)``'s
parameters and the README's table of serve options are made from these fields, so
a default is written nowhere else. (The caps on what a device or an account holds
open at once are declared the same way in :mod:`dmlab.caps`; the connection limits
in ``dmlab.runtime.limits.ConnectionLimits``.)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["SessionLimits", "add_arguments", "from_arguments", "to_arguments"]


def _limit(default: float, flag: str, metavar: str, help: str) -> Any:
    return field(default=default, metadata={"flag": flag, "metavar": metavar, "help": help})


@dataclass(frozen=True, slots=True)
class SessionLimits:
    #: An active session whose device sends nothing for this long completes as
    #: expired: a device that crashed or lost its place must not hold work forever.
    active_ttl: float = _limit(
        300.0,
        "--active-ttl",
        "SECONDS",
        "an active session whose device sends nothing for this long completes as expired",
    )

    def __post_init__(self) -> None:
        if not self.active_ttl > 0:
            raise ValueError(
                f"active_ttl must be a positive number of seconds, not {self.active_ttl}"
            )

    @property
    def sweep_every(self) -> float:
        """How often the server looks for idle sessions: a quarter of the TTL, between
        50 ms and 30 s (a session may outlive its deadline by that much, unless it is
        looked at: every read and write of a session checks its deadline first)."""
        return min(30.0, max(0.05, self.active_ttl / 4))


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per limit, with its default."""
    for f in fields(SessionLimits):
        parser.add_argument(
            f.metadata["flag"],
            dest=f.name,
            type=_positive,
            default=f.default,
            metavar=f.metadata["metavar"],
            help=f"{f.metadata['help']} (default: {f.default:g})",
        )


def from_arguments(args: argparse.Namespace) -> SessionLimits:
    return SessionLimits(**{f.name: getattr(args, f.name) for f in fields(SessionLimits)})


def to_arguments(limits: SessionLimits) -> list[str]:
    """The options that give ``limits`` again (``serve --workers`` passes them on)."""
    return [f"{f.metadata['flag']}={getattr(limits, f.name)!r}" for f in fields(SessionLimits)]
