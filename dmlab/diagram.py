"""Sequence diagrams of trace exchanges: Mermaid text, a self-contained SVG, plain text.

One solid arrow per request, one dashed return arrow with the status and the
server's summary; a DM Notification (package 0) is a server → device arrow with
no return, since it travels outside any HTTP exchange.

The trace records an exchange when its answer goes out, so a notification sent
*while* answering a request (queueing a session notifies the device) comes
first in the trace. The diagram draws it where it happened: between that
request's arrow and its return.

Three renderings of the same arrows, for three readers: Mermaid for JupyterLab
(which renders ``text/vnd.mermaid`` natively), SVG for static pages and viewers
without JavaScript, and a text listing that nbval compares.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape as _xml
from http import HTTPStatus
from typing import Any

from .trace import ROLES, Exchange

__all__ = ["Arrow", "SequenceDiagram", "arrows", "lifelines", "mermaid", "svg", "text"]

#: Roles that stand for one device; with several devices each gets its own lifeline.
DEVICE_ROLES = ("device", "browser-component")
#: Session ids are 16 hex characters; eight are plenty to tell sessions apart.
SHORT_ID = 8
#: Longest label drawn; the trace table has the rest.
MAX_LABEL = 90


@dataclass(frozen=True, slots=True)
class Arrow:
    """One arrow of the diagram; ``kind`` is "request", "return" or "notify"."""

    source: str
    target: str
    label: str
    kind: str
    seq: int

    @property
    def dashed(self) -> bool:
        return self.kind == "return"

    def __str__(self) -> str:
        line = {"request": "->", "return": "-->", "notify": "-)"}[self.kind]
        return f"{self.source} {line} {self.target}: {self.label}"


# --- from exchanges to arrows -------------------------------------------------


def _shortener(exchanges: Sequence[Exchange]) -> Any:
    """Replace every session id that appears in the exchanges by its short form."""
    ids = sorted({e.session for e in exchanges if len(e.session) > SHORT_ID}, key=len, reverse=True)
    if not ids:
        return lambda text: text
    pattern = re.compile("|".join(re.escape(i) for i in ids))
    return lambda text: pattern.sub(lambda m: m.group(0)[:SHORT_ID] + "…", text)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _lifeline_namer(exchanges: Sequence[Exchange]) -> Any:
    devices = {
        e.dev_id
        for e in exchanges
        if e.dev_id and (e.source in DEVICE_ROLES or e.target in DEVICE_ROLES)
    }
    several = len(devices) > 1

    def name(role: str, dev_id: str) -> str:
        if several and role in DEVICE_ROLES and dev_id:
            return f"{role} {dev_id}"
        return role

    return name


def _status(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def _ordered(exchanges: Sequence[Exchange]) -> list[tuple[str, Exchange]]:
    """(kind, exchange) steps; notifications move inside the request that caused them."""
    steps: list[tuple[str, Exchange]] = []
    held: list[Exchange] = []
    for exchange in exchanges:
        if exchange.method == "NOTIFY":
            held.append(exchange)
            continue
        caused = [
            n
            for n in held
            if n.session and n.session == exchange.session and exchange.source not in DEVICE_ROLES
        ]
        steps += [("notify", n) for n in held if n not in caused]
        held = []
        steps.append(("request", exchange))
        steps += [("notify", n) for n in caused]
        steps.append(("return", exchange))
    steps += [("notify", n) for n in held]
    return steps


def arrows(exchanges: Iterable[Exchange]) -> list[Arrow]:
    """The diagram's arrows, in drawing order."""
    exchanges = list(exchanges)
    short = _shortener(exchanges)
    name = _lifeline_namer(exchanges)
    out = []
    for kind, e in _ordered(exchanges):
        client = name(e.source, e.dev_id)
        server = name(e.target, e.dev_id)
        if kind == "notify":
            label = "package 0" + (f" · {e.request}" if e.request else "")
            out.append(Arrow(client, server, short(_clip(label)), kind, e.seq))
        elif kind == "request":
            label = f"{e.method} {e.path}" + (f" · {e.request}" if e.request else "")
            out.append(Arrow(client, server, short(_clip(label)), kind, e.seq))
        else:
            label = _status(e.status) + (f" · {e.response}" if e.response else "")
            out.append(Arrow(server, client, short(_clip(label)), kind, e.seq))
    return out


def lifelines(drawn: Sequence[Arrow]) -> list[str]:
    """Lifelines present, in the trace's role order (devices left, server right)."""
    present = {a.source for a in drawn} | {a.target for a in drawn}

    def order(line: str) -> tuple[int, str]:
        role = line.split(" ", 1)[0]
        return (ROLES.index(role) if role in ROLES else len(ROLES), line)

    return sorted(present, key=order)


# --- renderings ------------------------------------------------------------------

# Characters Mermaid reads as syntax inside a message or a participant label,
# written as its own entity codes (``#59;`` and so on), which it turns back.
_MERMAID_ESCAPES = {
    ";": "#59;",
    "#": "#35;",
    "<": "#lt;",
    ">": "#gt;",
    ":": "#58;",
    "%": "#37;",
    "\n": " ",
    "\r": " ",
}
_MERMAID_LABEL = re.compile("[" + re.escape("".join(_MERMAID_ESCAPES)) + "]")
_MERMAID_MESSAGE = re.compile(
    "[" + re.escape("".join(c for c in _MERMAID_ESCAPES if c != ":")) + "]"
)


def _mermaid_text(text: str, *, colon: bool = False) -> str:
    # One pass, so the "#" and ";" of a code just written are not escaped again.
    pattern = _MERMAID_LABEL if colon else _MERMAID_MESSAGE
    return pattern.sub(lambda m: _MERMAID_ESCAPES[m.group(0)], text)


def mermaid(exchanges: Iterable[Exchange]) -> str:
    """Mermaid ``sequenceDiagram`` text (participants get ids P1, P2…, so no name is syntax)."""
    drawn = arrows(exchanges)
    lines = lifelines(drawn)
    ids = {line: f"P{i}" for i, line in enumerate(lines, 1)}
    out = ["sequenceDiagram"]
    out += [f"    participant {ids[line]} as {_mermaid_text(line, colon=True)}" for line in lines]
    heads = {"request": "->>", "return": "-->>", "notify": "-)"}
    for a in drawn:
        out.append(f"    {ids[a.source]}{heads[a.kind]}{ids[a.target]}: {_mermaid_text(a.label)}")
    return "\n".join(out) + "\n"


def text(exchanges: Iterable[Exchange]) -> str:
    """One arrow per line: what a reader (and nbval) compares."""
    drawn = arrows(exchanges)
    head = (
        f"sequence diagram: {len(drawn)} arrows; lifelines: {', '.join(lifelines(drawn)) or 'none'}"
    )
    return "\n".join([head, *(str(a) for a in drawn)])


# SVG geometry, in px. The font is monospace so a label's width is its length
# times CHAR_W (a little above the 0.6 em of common monospace faces).
FONT_SIZE = 12
CHAR_W = 7.4
ROW_H = 30
HEAD_H = 34
MARGIN = 20
MIN_GAP = 140
BOX_PAD = 12
COLOURS = {"request": "#1f4e79", "return": "#666666", "notify": "#9c4f00", "error": "#b00020"}


def _gaps(lines: list[str], drawn: Sequence[Arrow]) -> list[float]:
    """Distance between neighbouring lifelines: wide enough for every label above them."""
    gaps = [float(MIN_GAP)] * max(len(lines) - 1, 0)
    index = {line: i for i, line in enumerate(lines)}
    for line in lines[:-1]:  # the boxes themselves must fit
        i = index[line]
        need = (len(line) + len(lines[i + 1])) * CHAR_W / 2 + 2 * BOX_PAD + 10
        gaps[i] = max(gaps[i], need)
    spans = sorted(drawn, key=lambda a: abs(index[a.source] - index[a.target]))
    for a in spans:
        lo, hi = sorted((index[a.source], index[a.target]))
        if lo == hi:
            continue
        need = len(a.label) * CHAR_W + 24
        have = sum(gaps[lo:hi])
        if have < need:
            for i in range(lo, hi):
                gaps[i] += (need - have) / (hi - lo)
    return [round(g, 1) for g in gaps]


def svg(exchanges: Iterable[Exchange]) -> str:
    """A self-contained SVG (no script, no external font or style sheet)."""
    drawn = arrows(exchanges)
    lines = lifelines(drawn)
    widths = [len(line) * CHAR_W + 2 * BOX_PAD for line in lines]
    left = MARGIN + (widths[0] / 2 if widths else 0)
    xs = [left]
    for gap in _gaps(lines, drawn):
        xs.append(round(xs[-1] + gap, 1))
    x_of = dict(zip(lines, xs, strict=False))
    width = round((xs[-1] + widths[-1] / 2 + MARGIN) if lines else 2 * MARGIN, 1)
    top = MARGIN + HEAD_H
    height = top + ROW_H * (len(drawn) + 1) + HEAD_H + MARGIN
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="{FONT_SIZE}">',
        "<defs>",
        *(
            f'<marker id="head-{kind}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
            f'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10'
            f'{" z" if kind != "notify" else ""}" fill="{colour if kind != "notify" else "none"}" '
            f'stroke="{colour}"/></marker>'
            for kind, colour in COLOURS.items()
        ),
        "</defs>",
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    bottom = height - MARGIN - HEAD_H
    for line, x, w in zip(lines, xs, widths, strict=False):
        out.append(
            f'<line x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" stroke="#999" stroke-dasharray="2,3"/>'
        )
        for y in (MARGIN, bottom):
            out.append(
                f'<rect x="{round(x - w / 2, 1)}" y="{y}" width="{round(w, 1)}" height="{HEAD_H - 6}" '
                f'rx="4" fill="#eef3f8" stroke="#1f4e79"/>'
            )
            out.append(
                f'<text x="{x}" y="{y + (HEAD_H - 6) / 2 + 4}" text-anchor="middle">{_xml(line)}</text>'
            )
    for row, a in enumerate(drawn, 1):
        y = top + ROW_H * row
        x1, x2 = x_of[a.source], x_of[a.target]
        error = a.kind == "return" and a.label[:1] in "45"
        kind = "error" if error else a.kind
        colour = COLOURS[kind]
        dash = ' stroke-dasharray="6,4"' if a.dashed else ""
        out.append(
            f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{colour}"{dash} '
            f'marker-end="url(#head-{kind})"/>'
        )
        out.append(
            f'<text x="{round((x1 + x2) / 2, 1)}" y="{y - 5}" text-anchor="middle" '
            f'fill="{colour}" stroke="white" stroke-width="4" paint-order="stroke">{_xml(a.label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


class SequenceDiagram:
    """A sequence diagram that shows itself in Jupyter (Mermaid, SVG, or text)."""

    def __init__(self, exchanges: Iterable[Exchange]) -> None:
        self.exchanges = list(exchanges)

    @classmethod
    def of(cls, trace: Any, since: int = 0) -> SequenceDiagram:
        """The exchanges of ``trace`` after ``since`` (a ``trace.last_seq`` marker)."""
        return cls(trace.since(since))

    @property
    def arrows(self) -> list[Arrow]:
        return arrows(self.exchanges)

    def mermaid(self) -> str:
        return mermaid(self.exchanges)

    def svg(self) -> str:
        return svg(self.exchanges)

    def text(self) -> str:
        return text(self.exchanges)

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {
            "text/vnd.mermaid": self.mermaid(),
            "image/svg+xml": self.svg(),
            "text/plain": self.text(),
        }
