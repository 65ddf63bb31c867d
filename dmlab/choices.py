"""The lab's readings of the CR, switchable: which option of each choice is in force.

The registry itself is data in :mod:`dmlab.protocol.provenance` (``CHOICES``: every place
the CR and the specification are silent, with its id, clause, question, options, default,
why, and where it acts). This module is how the rest of the lab asks it: a
:class:`Choices` is a validated set of options in force, built from
``Lab(choices={...})`` or ``python -m dmlab serve --choice ID=VALUE``; the README table
and ``GET /choices`` are rendered here from the same rows.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .protocol.provenance import CHOICES, LabChoice, Option, choice

__all__ = [
    "CHOICES",
    "Choices",
    "LabChoice",
    "Option",
    "UnknownChoice",
    "markdown_table",
    "marker",
]

SWITCHABLE: tuple[LabChoice, ...] = tuple(c for c in CHOICES if c.options)


class UnknownChoice(ValueError):
    """An id or value nobody declared; the message lists the valid ones."""


class Choices(Mapping[str, str]):
    """The option in force for every switchable choice (defaults unless overridden)."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        chosen = {c.id: c.default for c in SWITCHABLE}
        for key, value in (overrides or {}).items():
            found = next((c for c in SWITCHABLE if c.id == key), None)
            if found is None:
                valid = ", ".join(c.id for c in SWITCHABLE)
                raise UnknownChoice(f"no switchable lab choice {key!r}; valid ones: {valid}")
            if value not in {o.value for o in found.options}:
                valid = ", ".join(o.value for o in found.options)
                raise UnknownChoice(f"choice {key!r} has no option {value!r}; valid ones: {valid}")
            chosen[key] = value
        self._chosen = chosen

    @classmethod
    def parse(cls, assignments: Iterable[str]) -> Choices:
        """From ``ID=VALUE`` strings (the command line's ``--choice``)."""
        overrides: dict[str, str] = {}
        for text in assignments:
            key, sep, value = text.partition("=")
            if not sep:
                raise UnknownChoice(f"--choice takes ID=VALUE, not {text!r}")
            overrides[key.strip()] = value.strip()
        return cls(overrides)

    def __getitem__(self, key: str) -> str:
        return self._chosen[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._chosen)

    def __len__(self) -> int:
        return len(self._chosen)

    def __repr__(self) -> str:
        return f"Choices({self._chosen!r})"

    def is_(self, key: str, value: str) -> bool:
        """Whether ``key`` is set to ``value`` (a typo in either is an error, not False)."""
        if value not in {o.value for o in choice(key).options}:
            raise UnknownChoice(f"choice {key!r} has no option {value!r}")
        return self._chosen[key] == value

    def departures(self) -> list[tuple[str, Option]]:
        """The options in force that depart from the CR's text."""
        return [
            (c.id, c.option(self._chosen[c.id]))
            for c in SWITCHABLE
            if c.option(self._chosen[c.id]).departs
        ]

    def describe(self) -> list[dict[str, Any]]:
        """Every choice as ``GET /choices`` shows it, with the option in force."""
        return [_row(c, self._chosen.get(c.id, "")) for c in CHOICES]


def _row(c: LabChoice, in_force: str) -> dict[str, Any]:
    return {
        "id": c.id,
        "topic": c.topic,
        "clause": c.clause,
        "question": c.question,
        "reading": c.reading,
        "other": c.other,
        "why": c.why,
        "where": c.where,
        "default": c.default,
        "inForce": in_force,
        "options": [
            {
                "value": o.value,
                "wire": o.wire,
                "departs": o.departs,
                "purposes": list(o.purposes),
                "risk": o.risk,
            }
            for o in c.options
        ],
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table() -> str:
    """The README's table of choices (``python -m dmlab.choices`` rewrites it there)."""
    lines = [
        "| choice id | question or topic | options (default first) | why the default |",
        "|---|---|---|---|",
    ]
    for c in CHOICES:
        if c.options:
            options = "; ".join(
                f"`{o.value}`: {o.wire}" + (" (departs from the CR)" if o.departs else "")
                for o in c.options
            )
        else:
            options = f"fixed: {c.reading}" + (f" (other: {c.other})" if c.other else "")
        lines.append(
            f"| `{c.id}` | {_cell(c.question or c.topic)} | {_cell(options)} | {_cell(c.why)} |"
        )
    return "\n".join(lines) + "\n"


START = "<!-- choices-table:start (generated by python -m dmlab.choices) -->"
END = "<!-- choices-table:end -->"


def with_table(readme: str) -> str:
    """``readme`` with the block between the markers replaced by the current table."""
    start, end = readme.index(START) + len(START), readme.index(END)
    return readme[:start] + "\n" + markdown_table() + readme[end:]


def marker(choice_id: str) -> str:
    """What a notebook's ▸ lab choice marker says of a choice, from the registry: the lab's
    reading, the other readings, and the options when it is switchable."""
    c = choice(choice_id)
    text = f"The lab's reading: {c.reading}."
    if c.other:
        text += f" Other readings: {c.other}."
    if c.options:
        values = ", ".join(
            f"`{o.value}`" + (" (default)" if o.value == c.default else "") for o in c.options
        )
        text += f" Switchable: {values}."
    return text


#: A marker's generated text in a notebook's Markdown: ``<!-- choice:ID -->…<!-- /choice -->``
#: (the comments do not render; ``python -m dmlab.choices`` refills what is between them).
MARKER_SPAN = re.compile(r"<!-- choice:([a-z0-9-]+) -->(.*?)<!-- /choice -->", re.DOTALL)


def with_markers(markdown: str) -> str:
    """``markdown`` with every marker span refilled from the registry."""
    return MARKER_SPAN.sub(
        lambda m: f"<!-- choice:{m[1]} -->{marker(m[1])}<!-- /choice -->", markdown
    )


def _notebook_markers(path: Path, *, write: bool) -> bool:
    """Refill the marker spans of a notebook's Markdown cells; whether any was stale."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    stale = False
    for cell in notebook["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"])
        fresh = with_markers(source)
        if fresh != source:
            stale = True
            cell["source"] = fresh.splitlines(keepends=True)
    if stale and write:
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return stale


def main(argv: list[str]) -> int:
    """Rewrite the README's table and the notebooks' marker spans (``--check``: exit 1 if
    either is stale, changing nothing)."""
    root = Path(__file__).resolve().parents[1]
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    fresh = with_table(text)
    check = "--check" in argv
    stale = [
        path.name
        for path in sorted((root / "notebooks").glob("*.ipynb"))
        if _notebook_markers(path, write=not check)
    ]
    if check:
        for name in stale:
            print(f"{name}: a ▸ lab choice marker differs from the registry", file=sys.stderr)
        return 0 if fresh == text and not stale else 1
    readme.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
