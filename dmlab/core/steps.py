"""What a job planner answers: the next package 2, or the end with a reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..protocol import Command
from ..store import JobSpec, Round


@dataclass(frozen=True, slots=True)
class Step:
    """The next package 2, or the end of the session with a reason."""

    commands: tuple[Command, ...] | None
    reason: str = ""


#: ``planner(job, rounds reported so far, server base URL) -> Step``.
Planner = Callable[[JobSpec, tuple[Round, ...], str], Step]
