"""Caps: how much one device or one account may hold open at once.

Each cap is declared once, here, as data: its value, what it counts and what
happens over it. ``dmlab serve`` makes one option of each (``--polls-per-device``),
the routes that enforce a cap describe it in OpenAPI from here, and the README's
table is generated from here (``python -m dmlab.caps`` rewrites it), so no copy of
a number can drift from the code that enforces it.

Web-free: the server layer enforces and answers (429 with ``Retry-After``); this
module only says what the limits are.

With ``serve --workers N`` each cap still holds for the whole server, and each says how
(``across`` in its declaration, a column of the README's table):

- The pending caps are counted in the store, inside the transaction that queues: one
  count, whichever process queues.
- The account caps on waits (long-polls, event streams) are **divided**: each worker
  takes an equal share (:func:`shares`), as ``--max-connections`` is divided. What these
  caps protect is each process's own connections, coroutines and queues, and the kernel
  spreads connections over the workers, so a share per worker bounds what each holds
  and never lets more through in all. Counting them in PostgreSQL instead would put two
  database round trips (admit, release) on every wait and need a table of open waits
  cleaned after a worker dies (heartbeats), for one difference: a worker refuses at its
  share while another may still have room (the 429's ``Retry-After`` lands the retry
  wherever the kernel sends it).
- The device's cap on long-polls is 1 and cannot be divided: a device's new poll on any
  worker ends its older ones on every worker, told through PostgreSQL ``NOTIFY``
  (:class:`dmlab.server.notifier.Notifier`), so a device whose connection died unseen
  never leaves a dead poll on another process to take its next notification.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

#: Seconds a caller refused for a cap is asked to wait: every long-poll ends within
#: 30 s (its longest ``wait``), so by then a slot of a poll cap has come free.
RETRY_AFTER = 30
#: Seconds a caller refused for a pending-session cap is asked to wait: a queue drains
#: only as its device runs sessions (or they expire or are aborted), so no moment is
#: known; a minute keeps a polite script from spinning.
PENDING_RETRY_AFTER = 60


class OverCap(Exception):
    """A caller asked for more than a cap allows; ``str()`` says which and how many."""

    def __init__(self, cap: str, detail: str, retry_after: int = RETRY_AFTER) -> None:
        super().__init__(detail)
        self.cap = cap
        self.retry_after = retry_after


#: How a cap holds across ``serve --workers N`` (module docstring).
DIVIDED = "divided: each worker takes an equal share, at least 1 (as `--max-connections`)"
IN_STORE = "one count in the database, taken in the transaction that queues"
TOLD = "one for the server: a new poll on any worker ends the older ones on every worker"


def _cap(default: int, counts: str, over: str, across: str) -> Any:
    return field(default=default, metadata={"counts": counts, "over": over, "across": across})


@dataclass(frozen=True, slots=True)
class Caps:
    """The caps in force; ``Caps()`` holds the defaults."""

    polls_per_device: int = _cap(
        1,
        "long-polls (`GET /notifications?wait=…`) one device has waiting at once",
        "the oldest of that device's polls ends at once, answered 204 as if nothing came: "
        "a device whose connection died unseen polls again, and its next notification "
        "must reach the new poll, not the dead one",
        TOLD,
    )
    polls_per_account: int = _cap(
        500,
        "long-polls waiting at once from all the devices of one account",
        f"429 problem `over-cap`, `Retry-After: {RETRY_AFTER}`",
        DIVIDED,
    )
    streams_per_account: int = _cap(
        16,
        "event streams (`GET /events`) one account has open at once",
        f"429 problem `over-cap`, `Retry-After: {RETRY_AFTER}`",
        DIVIDED,
    )
    pending_per_device: int = _cap(
        100,
        "sessions one device has pending (queued, not yet started)",
        f"the request that would queue one more gets a 429 problem `over-cap`, "
        f"`Retry-After: {PENDING_RETRY_AFTER}`, and nothing is queued",
        IN_STORE,
    )
    pending_per_account: int = _cap(
        100_000,
        "sessions pending for all the devices of one account",
        f"the request that would queue one more gets a 429 problem `over-cap`, "
        f"`Retry-After: {PENDING_RETRY_AFTER}`, and nothing is queued",
        IN_STORE,
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise ValueError(f"{option(f.name)} must be at least 1")


#: The defaults, as one shared value (a frozen dataclass).
DEFAULT = Caps()


def option(name: str) -> str:
    """The command-line option of a cap: ``polls_per_device`` → ``--polls-per-device``."""
    return "--" + name.replace("_", "-")


def declared() -> list[tuple[str, int, str, str]]:
    """(name, default, what it counts, what happens over it) for every cap."""
    return [
        (f.name, int(f.default), f.metadata["counts"], f.metadata["over"])  # type: ignore[arg-type]
        for f in fields(Caps)
    ]


def shares(total: int, workers: int) -> list[int]:
    """``total`` split over ``workers`` as evenly as whole numbers go: (5, 2) → [3, 2].
    What ``serve --workers`` gives each worker of ``--max-connections`` and of every
    divided cap."""
    return [total // workers + (i < total % workers) for i in range(workers)]


def divided() -> list[str]:
    """The caps each worker of ``serve --workers N`` takes a share of."""
    return [f.name for f in fields(Caps) if f.metadata["across"] == DIVIDED]


def share(caps: Caps, worker: int, workers: int) -> Caps:
    """The caps worker ``worker`` (0-based) of ``workers`` enforces: its share of each
    divided cap, the others whole."""
    return replace(
        caps, **{name: shares(getattr(caps, name), workers)[worker] for name in divided()}
    )


def describe(name: str) -> str:
    """One sentence for OpenAPI: the cap, its default and its option."""
    for cap, default, counts, over in declared():
        if cap == name:
            return f"At most {default} {counts} (`dmlab serve {option(cap)}`); over it: {over}."
    raise KeyError(name)


def markdown_table() -> str:
    """The README's table of caps (``python -m dmlab.caps`` rewrites it there)."""
    lines = [
        "| cap (`dmlab serve` option) | default | counts | over the cap | with `--workers N` |",
        "|---|---|---|---|---|",
    ]
    across = {f.name: f.metadata["across"] for f in fields(Caps)}
    for name, default, counts, over in declared():
        lines.append(f"| `{option(name)}` | {default} | {counts} | {over} | {across[name]} |")
    return "\n".join(lines) + "\n"


START = "<!-- caps-table:start (generated by python -m dmlab.caps) -->"
END = "<!-- caps-table:end -->"


def with_table(readme: str) -> str:
    """``readme`` with the block between the markers replaced by the current table."""
    start, end = readme.index(START) + len(START), readme.index(END)
    return readme[:start] + "\n" + markdown_table() + readme[end:]


def main(argv: list[str]) -> int:
    from pathlib import Path

    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text(encoding="utf-8")
    fresh = with_table(text)
    if "--check" in argv:
        return 0 if fresh == text else 1
    readme.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
