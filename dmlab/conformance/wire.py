"""What the kit sends and sees: recorded exchanges, the actors that send them,
and the little HTML reading a browser does (forms).

Every verdict carries the exchanges that led to it, request and response, so a
reader can judge the judge. Bodies are kept as text, cut at ``MAX_BODY``
characters; credentials are never kept.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

#: Longest body excerpt kept per exchange (the reports show it as is).
MAX_BODY = 2000
#: Headers never kept in a record.
SECRET_HEADERS = frozenset({"authorization", "cookie", "set-cookie"})

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
COMMANDS = "application/vnd.omadm-cmd+json"
JSON = "application/json"
DM_RESPONSE = "application/vnd.oma.dm.response+json"  # package 3
PACKAGE_1 = "application/vnd.oma.dm.initiation+json"  # DM 2.0's package 1
FORM = "application/x-www-form-urlencoded"
DEVID_HEADER = "OMADM-DevID"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who sends a request: a label for reports, credentials, and default headers."""

    label: str  # "D", "A", "browser A", "nobody" …
    role: str  # a lifeline of dmlab.diagram: device, browser-component, browser, operator
    auth: tuple[str, str] | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Exchange:
    """One request and its answer (or the transport error instead of one)."""

    actor: str
    role: str
    method: str
    target: str  # path and query, or a description for non-HTTP probes
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    request_body: str = ""
    status: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: str = ""
    error: str = ""
    seconds: float = 0.0
    dev_id: str = ""  # the device a device's or browser component's request speaks for

    def header(self, name: str) -> str:
        name = name.lower()
        return next((v for k, v in self.response_headers if k.lower() == name), "")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        answer = f"{self.status}" if self.status is not None else (self.error or "no answer")
        return f"{self.actor}: {self.method} {self.target} -> {answer}"

    def http_text(self) -> str:
        """The exchange as a reader of HTTP would write it down."""
        lines = [f"{self.method} {self.target}  ({self.actor})"]
        lines += [f"{k}: {v}" for k, v in self.request_headers]
        if self.request_body:
            lines += ["", self.request_body]
        lines.append("")
        if self.status is None:
            lines.append(f"(no HTTP answer: {self.error or 'nothing'})")
        else:
            lines.append(f"HTTP {self.status}")
            lines += [f"{k}: {v}" for k, v in self.response_headers]
            if self.response_body:
                lines += ["", self.response_body]
        return "\n".join(lines)


#: JSON members whose values a record never keeps (a registration answer holds the secret).
_SECRET_MEMBER = re.compile(r'("(?:secret|password)"\s*:\s*)"[^"]*"', re.I)


def excerpt(data: bytes | str, content_type: str = "") -> str:
    """Text of a body for a record: binary shown as hex, secrets redacted, long bodies cut."""
    if isinstance(data, bytes):
        if data and not _is_text(content_type):
            shown = data[: MAX_BODY // 2].hex(" ")
            return f"({len(data)} bytes) {shown}"
        text = data.decode("utf-8", "replace")
    else:
        text = data
    text = _SECRET_MEMBER.sub(r'\1"(redacted)"', text)
    return text if len(text) <= MAX_BODY else text[:MAX_BODY] + f"… ({len(text)} characters)"


def _is_text(content_type: str) -> bool:
    base = content_type.split(";", 1)[0].strip().lower()
    return (
        not base
        or base.startswith("text/")
        or base.endswith(("+json", "xml"))
        or base in (JSON, FORM)
    )


def kept_headers(headers: Any) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers.items() if k.lower() not in SECRET_HEADERS]


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# --- HTML forms, read the way a browser reads them ------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)  # every named control, in order


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._select: str | None = None
        self._select_value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
            return
        if not self.forms:
            return
        form = self.forms[-1]
        name = a.get("name")
        if tag == "input" and name:
            form.names.append(name)
            if a.get("type", "text").lower() not in ("checkbox", "radio") or "checked" in a:
                form.fields[name] = a.get("value", "")
        elif tag in ("textarea",) and name:
            form.names.append(name)
            form.fields[name] = ""
        elif tag == "select" and name:
            form.names.append(name)
            self._select, self._select_value = name, None
        elif tag == "option" and self._select is not None and self._select_value is None:
            self._select_value = a.get("value")
            if self._select_value is not None:
                form.fields[self._select] = self._select_value

    def handle_data(self, data: str) -> None:
        # <option>inventory</option>: the first option's text is the select's value
        if self._select is not None and self._select_value is None and data.strip() and self.forms:
            self._select_value = data.strip()
            self.forms[-1].fields[self._select] = self._select_value

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms
