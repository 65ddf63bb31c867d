"""Verdicts, one per test purpose, and the run they make up."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..diagram import SequenceDiagram
from ..trace import Exchange as Arrowed
from .purposes import TestPurpose, Verdict, clause_key
from .wire import Exchange, json_or_none, media_type

if TYPE_CHECKING:
    import pandas as pd

VERDICT_ORDER = (Verdict.PASS, Verdict.FAIL, Verdict.WARN, Verdict.INCONCLUSIVE, Verdict.NA)


@dataclass
class Outcome:
    """A test purpose's verdict, why, and the exchanges behind it."""

    purpose: TestPurpose
    verdict: Verdict
    reason: str
    exchanges: list[Exchange] = field(default_factory=list)
    decisive: int | None = None  # index of the exchange that decided the verdict
    seconds: float = 0.0

    @property
    def deciding(self) -> Exchange | None:
        if self.decisive is None or not self.exchanges:
            return None
        return self.exchanges[self.decisive]

    def diagram(self) -> SequenceDiagram:
        """The exchanges behind the verdict as a sequence diagram (dmlab.diagram)."""
        return SequenceDiagram(_arrowed(i, e) for i, e in enumerate(self.exchanges, 1))

    def line(self) -> str:
        """One line per purpose, as the CLI prints them while running."""
        return f"{self.verdict.value:<12} {self.purpose.name} {self.purpose.title}" + (
            f": {self.reason}" if self.verdict is not Verdict.PASS and self.reason else ""
        )

    def to_json(self) -> dict[str, Any]:
        p = self.purpose
        return {
            "id": p.id,
            "clause": p.clause,
            "resource": p.resource,
            "title": p.title,
            "cr": p.cr,
            "strength": p.strength,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "decisive": self.decisive,
            "exchanges": [e.to_json() for e in self.exchanges],
        }


_SESSION_PATH = re.compile(r"/sessions?/id/([^/?]+)")


def _arrowed(seq: int, e: Exchange) -> Arrowed:
    """One kit exchange as a trace record, so dmlab.diagram can draw it."""
    in_path = _SESSION_PATH.search(e.target)
    answer = json_or_none(e.response_body)
    session = in_path[1] if in_path else ""
    if not session and isinstance(answer, dict) and isinstance(answer.get("SessionID"), str):
        session = answer["SessionID"]
    return Arrowed(
        seq,
        0.0,
        e.role,
        "server" if e.status is not None else "unknown",
        e.dev_id,
        e.method,
        e.target.split("?", 1)[0],
        e.status or 0,
        session,
        _summary(e.request_body, dict(e.request_headers).get("content-type", "")),
        e.error or _summary(e.response_body, e.header("content-type")),
    )


def _summary(body: str, content_type: str) -> str:
    """A body in a few words for an arrow's label, as the server's own trace words them."""
    if not body:
        return ""
    if media_type(content_type) == "text/html":
        return "HTML page"
    value = json_or_none(body)
    if not isinstance(value, dict):
        return body.split("\n", 1)[0][:60]
    words = []
    if isinstance(value.get("SessionID"), str):
        words.append(f"SessionID {value['SessionID']}")
    if isinstance(value.get("CMD"), list):
        words.append(
            "CMD " + " ".join(str(c[0]) for c in value["CMD"] if isinstance(c, list) and c)
        )
    if isinstance(value.get("Status"), list):
        words.append(
            "Status " + " ".join(str(s.get("sc")) for s in value["Status"] if isinstance(s, dict))
        )
    if isinstance(value.get("Alert"), list):
        words.append(
            "Alert "
            + " ".join(
                str(a.get("AlertType", "")).rsplit(":", 1)[-1]
                for a in value["Alert"]
                if isinstance(a, dict)
            )
        )
    if isinstance(value.get("devId"), str) and not words:
        words.append(f"devId {value['devId']}")
    return "; ".join(words) or ", ".join(sorted(value))[:60]


@dataclass
class Result:
    """A whole run: one outcome per selected test purpose, in order."""

    side: str
    target: str
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Nothing FAILed (the CLI's exit status 0)."""
        return not any(o.verdict is Verdict.FAIL for o in self.outcomes)

    def counts(self) -> Counter[Verdict]:
        return Counter(o.verdict for o in self.outcomes)

    def verdicts(self) -> dict[str, str]:
        return {o.purpose.id: o.verdict.value for o in self.outcomes}

    def outcome(self, purpose_id: str) -> Outcome:
        return next(o for o in self.outcomes if o.purpose.id == purpose_id)

    def by_clause(self) -> list[tuple[str, Counter[Verdict]]]:
        clauses: dict[str, Counter[Verdict]] = {}
        for o in self.outcomes:
            clauses.setdefault(o.purpose.clause, Counter())[o.verdict] += 1
        return sorted(clauses.items(), key=lambda item: clause_key(item[0]))

    @property
    def frame(self) -> pd.DataFrame:
        """One row per test purpose: id, clause, resource, title, verdict, reason."""
        import pandas as pd

        rows = [
            {
                "id": o.purpose.id,
                "clause": o.purpose.clause,
                "resource": o.purpose.resource,
                "title": o.purpose.title,
                "strength": o.purpose.strength,
                "verdict": o.verdict.value,
                "reason": o.reason,
                "exchanges": len(o.exchanges),
                "seconds": round(o.seconds, 3),
            }
            for o in self.outcomes
        ]
        columns = [
            "id",
            "clause",
            "resource",
            "title",
            "strength",
            "verdict",
            "reason",
            "exchanges",
            "seconds",
        ]
        return pd.DataFrame(rows, columns=columns).set_index("id")

    def summary(self) -> pd.DataFrame:
        """Verdicts counted per clause (rows in the CR's order), with a total row."""
        import pandas as pd

        names = [v.value for v in VERDICT_ORDER]
        rows = {
            clause: [counts.get(v, 0) for v in VERDICT_ORDER] for clause, counts in self.by_clause()
        }
        total = self.counts()
        rows["total"] = [total.get(v, 0) for v in VERDICT_ORDER]
        frame = pd.DataFrame.from_dict(rows, orient="index", columns=names)
        frame.index.name = "clause"
        return frame

    def summary_text(self) -> str:
        """The summary table as the CLI prints it."""
        names = [v.value for v in VERDICT_ORDER]
        width = max([len("clause"), *(len(c) for c, _ in self.by_clause()), len("total")])
        head = "clause".ljust(width) + "".join(f"{n:>14}" for n in names)
        lines = [head, "-" * len(head)]
        for clause, counts in [*self.by_clause(), ("total", self.counts())]:
            lines.append(
                clause.ljust(width) + "".join(f"{counts.get(v, 0):>14}" for v in VERDICT_ORDER)
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "target": self.target,
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
            "counts": {v.value: self.counts().get(v, 0) for v in VERDICT_ORDER},
            "outcomes": [o.to_json() for o in self.outcomes],
        }

    def __repr__(self) -> str:
        counts = ", ".join(
            f"{v.value} {n}"
            for v, n in sorted(self.counts().items(), key=lambda i: VERDICT_ORDER.index(i[0]))
        )
        return f"<conformance {self.side} result: {len(self.outcomes)} purposes; {counts}>"
