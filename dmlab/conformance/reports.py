"""A run written down three ways: JUnit XML for CI, a self-contained HTML page
for people, JSON for programs (the DataFrame is on :class:`Result` itself).

The HTML page has no external assets (no script, style sheet, font or image from
elsewhere): it must open from a CI artifact or a mail attachment, offline.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html import escape
from itertools import groupby
from pathlib import Path

from .purposes import Verdict, clause_key
from .results import VERDICT_ORDER, Outcome, Result

#: Colours of the verdicts in the HTML report.
COLOURS = {
    Verdict.PASS: "#1b7f3b",
    Verdict.FAIL: "#b00020",
    Verdict.WARN: "#9c6500",
    Verdict.INCONCLUSIVE: "#5c5c8a",
    Verdict.NA: "#666666",
}


def junit(result: Result) -> str:
    """JUnit XML: one testcase per purpose, named by id and clause; FAIL is a
    failure, INCONCLUSIVE and N/A are skipped, WARN passes with its reason in
    system-out (CI tools show it without turning the build red)."""
    counts = result.counts()
    suite = ET.Element(
        "testsuite",
        name=f"dmlab conformance ({result.side})",
        tests=str(len(result.outcomes)),
        failures=str(counts.get(Verdict.FAIL, 0)),
        errors="0",
        skipped=str(counts.get(Verdict.INCONCLUSIVE, 0) + counts.get(Verdict.NA, 0)),
        time=f"{result.seconds:.3f}",
    )
    ET.SubElement(
        ET.SubElement(suite, "properties"), "property", name="target", value=result.target
    )
    for o in result.outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"conformance.{result.side}.{o.purpose.clause}",
            name=o.purpose.name,
            time=f"{o.seconds:.3f}",
        )
        deciding = o.deciding.http_text() if o.deciding else ""
        if o.verdict is Verdict.FAIL:
            failure = ET.SubElement(case, "failure", message=o.reason, type="FAIL")
            failure.text = f"{o.purpose.rule}\nCR: {o.purpose.cr}\n\n{deciding}"
        elif o.verdict in (Verdict.INCONCLUSIVE, Verdict.NA):
            ET.SubElement(case, "skipped", message=f"{o.verdict.value}: {o.reason}")
        elif o.verdict is Verdict.WARN:
            out = ET.SubElement(case, "system-out")
            out.text = f"WARN: {o.reason}\n{o.purpose.rule}\n\n{deciding}"
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def to_json(result: Result) -> str:
    return json.dumps(result.to_json(), indent=1, ensure_ascii=False) + "\n"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:80em}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#eef3f8}
.v{font-weight:bold;white-space:nowrap}
pre{background:#f6f6f6;padding:.5em;overflow:auto;white-space:pre-wrap;word-break:break-all;max-height:30em}
table.clause{table-layout:fixed;width:100%}
table.clause th:nth-child(1){width:9em}table.clause th:nth-child(2){width:10em}
table.clause th:nth-child(4){width:6.5em}table.clause th:nth-child(5){width:45%}
details{margin:.2em 0}
blockquote{margin:.3em 0;padding-left:.6em;border-left:3px solid #ccc;color:#444}
.ex-decisive{border-left:4px solid #b00020}
"""


def _verdict(v: Verdict) -> str:
    return f'<span class="v" style="color:{COLOURS[v]}">{escape(v.value)}</span>'


def _exchanges(o: Outcome) -> str:
    if not o.exchanges:
        return "<p>No exchange.</p>"
    parts = []
    for i, exchange in enumerate(o.exchanges):
        decisive = i == o.decisive
        label = ("deciding: " if decisive else "") + escape(exchange.summary())
        parts.append(
            f"<details{' open' if decisive else ''}{' class=ex-decisive' if decisive else ''}>"
            f"<summary>{label}</summary><pre>{escape(exchange.http_text())}</pre></details>"
        )
    return "".join(parts)


def html(result: Result, title: str = "dmlab conformance report") -> str:
    """One self-contained page: a summary, then a table per clause, and under
    each verdict the exchanges that led to it (the deciding one open)."""
    counts = result.counts()
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{escape(result.side)} side, target <code>{escape(result.target)}</code>, "
        f"{len(result.outcomes)} test purposes in {result.seconds:.1f} s: "
        + ", ".join(f"{_verdict(v)} {counts.get(v, 0)}" for v in VERDICT_ORDER)
        + f". Overall: {_verdict(Verdict.PASS if result.ok else Verdict.FAIL)}.</p>",
        "<h2>By clause</h2><table><tr><th>clause</th>"
        + "".join(f"<th>{escape(v.value)}</th>" for v in VERDICT_ORDER)
        + "</tr>",
    ]
    for clause, c in result.by_clause():
        out.append(
            f'<tr><td><a href="#clause-{escape(clause)}">{escape(clause)}</a></td>'
            + "".join(f"<td>{c.get(v, 0)}</td>" for v in VERDICT_ORDER)
            + "</tr>"
        )
    out.append("</table>")
    ordered = sorted(result.outcomes, key=lambda o: clause_key(o.purpose.clause))
    for clause, group in groupby(ordered, key=lambda o: o.purpose.clause):
        out.append(f'<h2 id="clause-{escape(clause)}">Clause {escape(clause)}</h2>')
        out.append(
            '<table class="clause"><tr><th>test purpose</th><th>resource</th><th>checks</th>'
            "<th>verdict</th><th>why, and the exchanges</th></tr>"
        )
        for o in group:
            p = o.purpose
            out.append(
                f'<tr id="{escape(p.id)}"><td><code>{escape(p.id)}</code></td>'
                f"<td><code>{escape(p.resource)}</code></td>"
                f"<td>{escape(p.title)}<blockquote>{escape(p.cr)}</blockquote>"
                f"<details><summary>preconditions, steps, rule</summary><ul>"
                + "".join(f"<li>pre: {escape(x)}</li>" for x in p.pre)
                + "".join(f"<li>step: {escape(x)}</li>" for x in p.steps)
                + f"<li>rule: {escape(p.rule)}</li></ul></details></td>"
                f"<td>{_verdict(o.verdict)}</td>"
                f"<td>{escape(o.reason)}{_exchanges(o)}</td></tr>"
            )
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write(
    result: Result, *, junit_path: str | None, html_path: str | None, json_path: str | None
) -> None:
    for path, render in ((junit_path, junit), (html_path, html), (json_path, to_json)):
        if path:
            Path(path).write_text(render(result), encoding="utf-8")
