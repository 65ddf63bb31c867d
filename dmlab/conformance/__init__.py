"""The conformance kit: test purposes keyed to the change request's clauses, run
against any server (``python -m dmlab conform server``) or any device
(``python -m dmlab conform device``), with JUnit, HTML, JSON and DataFrame reports.

It is a client of what it checks: it talks HTTP only, and never imports the lab's
server or core.
"""

from .device import CheckingServer
from .purposes import PURPOSES, TestPurpose, Verdict, select
from .results import Outcome, Result
from .server import run

__all__ = [
    "PURPOSES",
    "CheckingServer",
    "Outcome",
    "Result",
    "TestPurpose",
    "Verdict",
    "run",
    "select",
]
