"""A staged firmware rollout: groups of devices, one after another, stopping by
itself when a group's failure rate crosses a threshold.

Outcomes come from what the protocol offers: each device's FUMO generic alert
(``alert.received`` on the lab's event stream, ``Data`` = the FUMO result code).
A session's brief result cannot tell, since the session ends once EXEC is
accepted (``202``), long before the update succeeds or fails.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .device.objects import FumoResult
from .events import Event
from .protocol.alerts import fumo_operation, result_code

if TYPE_CHECKING:
    from .runtime import Lab

Group = tuple[str, list[str]]


@dataclass
class GroupOutcome:
    name: str
    devices: list[str]
    #: devId → FUMO result code (None: no report before the timeout, counted as failed).
    codes: dict[str, int | None] = field(default_factory=dict)
    #: devId → seconds from "session queued" to "alert received".
    seconds: dict[str, float] = field(default_factory=dict)
    decision: str = "not run"

    @property
    def ran(self) -> bool:
        return bool(self.codes)

    @property
    def failed(self) -> int:
        return sum(code != FumoResult.SUCCESSFUL for code in self.codes.values())

    @property
    def failure_rate(self) -> float:
        return self.failed / len(self.codes) if self.codes else float("nan")


def split_groups(dev_ids: Iterable[str], shares: Sequence[float], seed: int) -> list[Group]:
    """Shuffle with a fixed seed and cut into groups of the given shares (the last takes the rest)."""
    order = list(dev_ids)
    random.Random(seed).shuffle(order)
    sizes = [round(len(order) * share) for share in shares[:-1]]
    sizes.append(len(order) - sum(sizes))
    groups, start = [], 0
    for share, size in zip(shares, sizes, strict=False):
        groups.append((f"{share:.0%}", order[start : start + size]))
        start += size
    return groups


def staged_rollout(
    lab: Lab,
    groups: Sequence[Group],
    *,
    version: str,
    max_failure_rate: float,
    timeout: float = 30.0,
    parallel: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> list[GroupOutcome]:
    """Update ``groups`` one after another with the ``firmware-update`` job, queued
    through the operator's API; stop once a group's failure rate *exceeds*
    ``max_failure_rate``. ``progress(done, total)`` is called while waiting."""
    total = sum(len(members) for _, members in groups)
    changed = threading.Condition()
    watched: set[str] = set()
    queued_at: dict[str, float] = {}
    reported: dict[str, tuple[int | None, float]] = {}

    def on_event(event: Event) -> None:
        if event.dev_id not in watched:
            return
        with changed:
            if event.kind == "session.queued":
                queued_at.setdefault(event.dev_id, event.at)
            elif (
                event.kind == "alert.received"
                and fumo_operation(str(event.data.get("alert_type"))) == "DownloadAndUpdate"
            ):
                reported.setdefault(event.dev_id, (result_code(event.data.get("data")), event.at))
                changed.notify_all()

    outcomes = [GroupOutcome(name, list(members)) for name, members in groups]
    unsubscribe = lab.events.subscribe(on_event)
    done = 0
    try:
        for index, outcome in enumerate(outcomes):
            with changed:
                watched.update(outcome.devices)
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                list(
                    pool.map(
                        lambda dev_id: lab.operator.request_session(
                            dev_id, job="firmware-update", version=version
                        ),
                        outcome.devices,
                    )
                )
            deadline = time.monotonic() + timeout
            while True:
                with changed:
                    finished = sum(d in reported for d in outcome.devices)
                    if finished == len(outcome.devices) or time.monotonic() >= deadline:
                        break
                    changed.wait(0.05)
                if progress:
                    progress(done + finished, total)
            with changed:
                for dev_id in outcome.devices:
                    code, at = reported.get(dev_id, (None, None))
                    outcome.codes[dev_id] = code
                    if at is not None and dev_id in queued_at:
                        outcome.seconds[dev_id] = at - queued_at[dev_id]
            done += len(outcome.devices)
            if progress:
                progress(done, total)
            if outcome.failure_rate > max_failure_rate:
                outcome.decision = f"stop: {outcome.failure_rate:.1%} > {max_failure_rate:.0%}"
                break
            outcome.decision = "continue" if index < len(outcomes) - 1 else "done"
    finally:
        unsubscribe()
    return outcomes
