"""Sequence diagrams of trace exchanges: Mermaid text, a self-contained SVG, plain text.

One solid arrow per request, one dashed return arrow with the status and the
server's summary; a DM Notification (package 0) is a server → device arrow with
no return, since it travels outside any HTTP exchange.

The trace records an exchange when its answer goes out, so a notification sent
*while* answering a request (queueing a session notifies the device) comes
first in the trace. The diagram draws it where it happened: between that
request's arrow and its return. "While" is read from the clock: the request of
the same session that was in flight when the notification went out
(``Exchange.started`` to ``Exchange.time``), whoever sent it.

Two kinds of picture: the lab's diagram (every party, the notebook's own reads
of the session lists left out: they inspect the flow, they are not part of it),
and the CR's figure (:meth:`SequenceDiagram.figure`): only the parties the CR
names, under the CR's names.

Three renderings of the same arrows, for three readers: SVG for notebooks, pages and
slides (self-contained, no JavaScript), Mermaid text for documents that render it
(``save("x.mmd")``), and a text listing that nbval compares. A notebook shows the SVG:
JupyterLab's Mermaid renderer writes the picture it draws back into the notebook, so a
``text/vnd.mermaid`` output marks a notebook modified the moment it is opened.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape as _xml
from http import HTTPStatus
from pathlib import Path
from typing import Any

from .trace import ROLES, Exchange, shortener

__all__ = [
    "CR_PARTIES",
    "Arrow",
    "SequenceDiagram",
    "arrows",
    "is_inspection",
    "lifelines",
    "mermaid",
    "png",
    "svg",
    "text",
]

#: Roles that stand for one device; with several devices each gets its own lifeline.
DEVICE_ROLES = ("device", "browser-component")
#: Longest label drawn; the trace table has the rest.
MAX_LABEL = 90
#: The parties of the CR's flows (x.2), under the CR's own names.
CR_PARTIES: Mapping[str, str] = {
    "device": "DM Client",
    "browser-component": "Browser component",
    "browser": "Browser",
    "server": "DM Server",
}


def is_inspection(exchange: Exchange) -> bool:
    """An operator's read (``GET /sessions/pending`` and the like): a look at the
    flow from outside, not a step of it."""
    return exchange.source == "operator" and exchange.method in ("GET", "HEAD")


@dataclass(frozen=True, slots=True)
class Arrow:
    """One arrow of the diagram; ``kind`` is "request", "return" or "notify"."""

    source: str
    target: str
    label: str
    kind: str
    seq: int
    # Where the two lifelines stand (the trace's role order), for ``lifelines()``.
    ranks: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)

    @property
    def dashed(self) -> bool:
        return self.kind == "return"

    def __str__(self) -> str:
        line = {"request": "->", "return": "-->", "notify": "-)"}[self.kind]
        return f"{self.source} {line} {self.target}: {self.label}"


# --- from exchanges to arrows -------------------------------------------------


def _clip(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _lifeline_namer(exchanges: Sequence[Exchange], names: Mapping[str, str]) -> Any:
    devices = {
        e.dev_id
        for e in exchanges
        if e.dev_id and (e.source in DEVICE_ROLES or e.target in DEVICE_ROLES)
    }
    several = len(devices) > 1

    def name(role: str, dev_id: str) -> str:
        shown = names.get(role, role)
        if several and role in DEVICE_ROLES and dev_id:
            return f"{shown} {dev_id}"
        return shown

    return name


def _status(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def _ordered(exchanges: Sequence[Exchange]) -> list[tuple[str, Exchange]]:
    """(kind, exchange) steps; a notification moves inside the request that was being
    answered, for its session, when it went out."""
    requests = [e for e in exchanges if e.method != "NOTIFY"]
    inside: dict[int, list[Exchange]] = {}
    moved: set[int] = set()
    for note in exchanges:
        if note.method != "NOTIFY" or not note.session:
            continue
        for request in requests:
            if (
                request.seq > note.seq
                and request.session == note.session
                and request.started < note.time <= request.time
            ):
                inside.setdefault(request.seq, []).append(note)
                moved.add(note.seq)
                break
    steps: list[tuple[str, Exchange]] = []
    for exchange in exchanges:
        if exchange.method == "NOTIFY":
            if exchange.seq not in moved:
                steps.append(("notify", exchange))
            continue
        steps.append(("request", exchange))
        steps += [("notify", n) for n in inside.get(exchange.seq, [])]
        steps.append(("return", exchange))
    return steps


def _rank(role: str) -> int:
    return ROLES.index(role) if role in ROLES else len(ROLES)


def arrows(exchanges: Iterable[Exchange], names: Mapping[str, str] | None = None) -> list[Arrow]:
    """The diagram's arrows, in drawing order; ``names`` renames roles (``CR_PARTIES``)."""
    exchanges = list(exchanges)
    short = shortener(exchanges)
    name = _lifeline_namer(exchanges, names or {})
    out = []
    for kind, e in _ordered(exchanges):
        client = name(e.source, e.dev_id)
        server = name(e.target, e.dev_id)
        ranks = (_rank(e.source), _rank(e.target))
        if kind == "notify":
            label = "package 0" + (f" · {e.request}" if e.request else "")
            out.append(Arrow(client, server, short(_clip(label)), kind, e.seq, ranks))
        elif kind == "request":
            label = f"{e.method} {e.path}" + (f" · {e.request}" if e.request else "")
            out.append(Arrow(client, server, short(_clip(label)), kind, e.seq, ranks))
        else:
            label = _status(e.status) + (f" · {e.response}" if e.response else "")
            out.append(Arrow(server, client, short(_clip(label)), kind, e.seq, ranks[::-1]))
    return out


def lifelines(drawn: Sequence[Arrow]) -> list[str]:
    """Lifelines present, in the trace's role order (devices left, server right)."""
    rank: dict[str, int] = {}
    for a in drawn:
        rank[a.source], rank[a.target] = a.ranks
    return sorted(rank, key=lambda line: (rank[line], line))


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


Names = Mapping[str, str] | None


def mermaid(exchanges: Iterable[Exchange], *, names: Names = None, title: str = "") -> str:
    """Mermaid ``sequenceDiagram`` text (participants get ids P1, P2…, so no name is syntax)."""
    drawn = arrows(exchanges, names)
    lines = lifelines(drawn)
    ids = {line: f"P{i}" for i, line in enumerate(lines, 1)}
    # A title goes in the YAML front matter, which every Mermaid diagram type reads
    # (a JSON string is a YAML string, so a colon in it is no syntax).
    out = ["---", f"title: {json.dumps(title, ensure_ascii=False)}", "---"] if title else []
    out.append("sequenceDiagram")
    out += [f"    participant {ids[line]} as {_mermaid_text(line, colon=True)}" for line in lines]
    heads = {"request": "->>", "return": "-->>", "notify": "-)"}
    for a in drawn:
        out.append(f"    {ids[a.source]}{heads[a.kind]}{ids[a.target]}: {_mermaid_text(a.label)}")
    return "\n".join(out) + "\n"


def text(exchanges: Iterable[Exchange], *, names: Names = None, title: str = "") -> str:
    """One arrow per line: what a reader (and nbval) compares."""
    drawn = arrows(exchanges, names)
    head = (
        f"sequence diagram: {len(drawn)} arrows; lifelines: {', '.join(lifelines(drawn)) or 'none'}"
    )
    return "\n".join([*([title] if title else []), head, *(str(a) for a in drawn)])


# SVG geometry, in px. The font is monospace so a label's width is its length
# times CHAR_W (a little above the 0.6 em of common monospace faces).
FONT_SIZE = 12
CHAR_W = 7.4
ROW_H = 30
HEAD_H = 34
MARGIN = 20
MIN_GAP = 140
BOX_PAD = 12
TITLE_H = 28
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


def svg(exchanges: Iterable[Exchange], *, names: Names = None, title: str = "") -> str:
    """A self-contained SVG (no script, no external font or style sheet)."""
    drawn = arrows(exchanges, names)
    lines = lifelines(drawn)
    widths = [len(line) * CHAR_W + 2 * BOX_PAD for line in lines]
    left = MARGIN + (widths[0] / 2 if widths else 0)
    xs = [left]
    for gap in _gaps(lines, drawn):
        xs.append(round(xs[-1] + gap, 1))
    x_of = dict(zip(lines, xs, strict=False))
    width = round((xs[-1] + widths[-1] / 2 + MARGIN) if lines else 2 * MARGIN, 1)
    width = max(width, round(len(title) * CHAR_W * 1.2 + 2 * MARGIN, 1))
    head = MARGIN + (TITLE_H if title else 0)  # where the lifelines' boxes start
    top = head + HEAD_H
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
    if title:
        out.append(
            f'<text x="{MARGIN}" y="{MARGIN + FONT_SIZE}" font-size="{round(FONT_SIZE * 1.2)}" '
            f'font-weight="bold">{_xml(title)}</text>'
        )
    bottom = height - MARGIN - HEAD_H
    for line, x, w in zip(lines, xs, widths, strict=False):
        out.append(
            f'<line x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" stroke="#999" stroke-dasharray="2,3"/>'
        )
        for y in (head, bottom):
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
        # A white halo under the label keeps it legible across lifelines: drawn as a
        # text of its own (rasterisers such as CairoSVG ignore ``paint-order``).
        at = f'x="{round((x1 + x2) / 2, 1)}" y="{y - 5}" text-anchor="middle"'
        out.append(
            f'<text {at} fill="white" stroke="white" stroke-width="4">{_xml(a.label)}</text>'
        )
        out.append(f'<text {at} fill="{colour}">{_xml(a.label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def png(svg_text: str, *, scale: float = 2.0) -> bytes:
    """Rasterise an SVG with CairoSVG (no browser, no network); ``scale`` 2 suits slides."""
    try:
        import cairosvg
    except ImportError as exc:  # pragma: no cover - cairosvg is a lab dependency
        raise RuntimeError(
            "saving a diagram as PNG needs CairoSVG: pip install 'dmlab-oma[lab]' "
            "(and the cairo library: apt-get install libcairo2)"
        ) from exc
    return bytes(cairosvg.svg2png(bytestring=svg_text.encode("utf-8"), scale=scale))


class SequenceDiagram:
    """A sequence diagram that shows itself in Jupyter (SVG, or text), saves as SVG/PNG/Mermaid.

    ``names`` renames lifelines by role (``CR_PARTIES`` for the CR's figures);
    ``title`` is drawn above the lifelines.
    """

    def __init__(
        self, exchanges: Iterable[Exchange], *, names: Names = None, title: str = ""
    ) -> None:
        self.exchanges = list(exchanges)
        self.names = dict(names or {})
        self.title = title

    @classmethod
    def of(cls, trace: Any, since: int = 0, *, inspection: bool = False) -> SequenceDiagram:
        """The exchanges of ``trace`` after ``since`` (a ``trace.last_seq`` marker),
        without the operator's reads unless ``inspection`` (see :func:`is_inspection`)."""
        return cls(e for e in trace.since(since) if inspection or not is_inspection(e))

    @classmethod
    def figure(cls, trace: Any, since: int = 0, *, title: str = "") -> SequenceDiagram:
        """The CR's figure of a flow: only exchanges between the parties the CR names
        (:data:`CR_PARTIES`), under those names. Everything else (the operator, the
        notebook's own calls) is left out."""
        keep: Callable[[Exchange], bool] = lambda e: (  # noqa: E731
            e.source in CR_PARTIES and e.target in CR_PARTIES
        )
        return cls(filter(keep, trace.since(since)), names=CR_PARTIES, title=title)

    @property
    def arrows(self) -> list[Arrow]:
        return arrows(self.exchanges, self.names)

    def mermaid(self) -> str:
        return mermaid(self.exchanges, names=self.names, title=self.title)

    def svg(self) -> str:
        return svg(self.exchanges, names=self.names, title=self.title)

    def text(self) -> str:
        return text(self.exchanges, names=self.names, title=self.title)

    def png(self, *, scale: float = 2.0) -> bytes:
        return png(self.svg(), scale=scale)

    def save(self, path: str | Path) -> Path:
        """Write the diagram in the format its suffix names: ``.svg``, ``.png`` or ``.mmd``."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".svg":
            path.write_text(self.svg(), encoding="utf-8")
        elif suffix == ".png":
            path.write_bytes(self.png())
        elif suffix == ".mmd":
            path.write_text(self.mermaid(), encoding="utf-8")
        else:
            raise ValueError(
                f"cannot save a diagram as {suffix or 'a file without a suffix'!r}: "
                "use .svg, .png or .mmd"
            )
        return path

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {
            "image/svg+xml": self.svg(),
            "text/plain": self.text(),
        }
