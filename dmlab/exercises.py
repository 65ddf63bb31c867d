"""Check cells for the notebooks' exercises: compare the learner's answer with
what the lab actually did, and say so in one line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Verdict", "check"]


@dataclass(frozen=True)
class Verdict:
    holds: bool
    message: str

    def __repr__(self) -> str:
        return ("✓ your answer holds: " if self.holds else "✗ not yet: ") + self.message


def check(answer: Any, observed: Any, what: str) -> Verdict:
    """Whether ``answer`` equals what the lab ``observed``; ``what`` names it in words."""
    if answer is Ellipsis or answer is None:
        return Verdict(False, f"write your answer in the cell above ({what}: ?)")
    holds = answer == observed
    return Verdict(holds, f"you said {answer!r}; {what}: {observed!r}")
