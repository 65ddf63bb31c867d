"""The trace as HAR 1.2: the spec's required fields, and a real HAR consumer
(Playwright's HAR router, which Chromium then loads pages from) accepts it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dmlab import Lab
from dmlab.har import har

from helpers import CHROMIUM

#: HAR 1.2's required members, object by object (softwareishard.com/blog/har-12-spec).
REQUIRED = {
    "log": {"version", "creator", "entries"},
    "creator": {"name", "version"},
    "entry": {"startedDateTime", "time", "request", "response", "cache", "timings"},
    "request": {
        "method",
        "url",
        "httpVersion",
        "cookies",
        "headers",
        "queryString",
        "headersSize",
        "bodySize",
    },
    "response": {
        "status",
        "statusText",
        "httpVersion",
        "cookies",
        "headers",
        "content",
        "redirectURL",
        "headersSize",
        "bodySize",
    },
    "content": {"size", "mimeType"},
    "timings": {"send", "wait", "receive"},
}
FAKE = "https://dmlab.test"  # only the HAR can answer for this host


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    with Lab() as lab:
        phone = lab.add_device("IMEI:490154203237518")
        marker = lab.trace.last_seq
        lab.operator.http.get("/devices/new", headers={"Accept": "text/html"})
        lab.operator.request_session(phone.dev_id, job="inventory")
        lab.settle()
        lab.operator.http.get("/no/such/thing")
        path = lab.trace.to_har(
            tmp_path_factory.mktemp("har") / "t.har", base_url=FAKE, since=marker
        )
        return path, lab.trace.since(marker)


def test_har_1_2_required_fields_and_types(recorded: tuple[Path, list[Any]]) -> None:
    path, exchanges = recorded
    document = json.loads(path.read_text(encoding="utf-8"))
    log = document["log"]
    assert REQUIRED["log"] <= set(log) and log["version"] == "1.2"
    assert REQUIRED["creator"] <= set(log["creator"])
    http = [e for e in exchanges if e.method != "NOTIFY"]
    assert len(log["entries"]) == len(http) >= 5
    assert "1 DM Notification(s)" in log["comment"]
    for entry, exchange in zip(log["entries"], http, strict=True):
        assert REQUIRED["entry"] <= set(entry)
        assert REQUIRED["request"] <= set(entry["request"])
        assert REQUIRED["response"] <= set(entry["response"])
        assert REQUIRED["content"] <= set(entry["response"]["content"])
        assert REQUIRED["timings"] <= set(entry["timings"])
        assert all(entry["timings"][k] >= 0 for k in ("send", "wait", "receive"))
        assert entry["time"] == pytest.approx(sum(entry["timings"][k] for k in REQUIRED["timings"]))
        assert entry["time"] > 0  # the server timed each request
        assert entry["request"]["url"] == FAKE + exchange.path
        assert entry["response"]["status"] == exchange.status
        assert entry["startedDateTime"].endswith("+00:00")
        custom = (
            set(entry) - REQUIRED["entry"] - {"comment", "pageref", "serverIPAddress", "connection"}
        )
        assert all(k.startswith("_") for k in custom), custom
    statuses = [(e["request"]["method"], e["response"]["status"]) for e in log["entries"]]
    assert ("GET", 200) in statuses and ("GET", 404) in statuses and ("PUT", 204) in statuses


def test_an_empty_trace_is_an_empty_archive() -> None:
    assert har([], base_url=FAKE)["log"]["entries"] == []


def test_chromium_loads_pages_from_the_har(recorded: tuple[Path, list[Any]]) -> None:
    """Playwright's HAR router parses the file and answers Chromium's requests from it:
    the statuses come back as recorded, and a URL the HAR lacks is not answered."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no browser: {CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    path, _ = recorded
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context()
            context.route_from_har(path, not_found="abort")
            page = context.new_page()
            assert page.goto(f"{FAKE}/devices/new").status == 200
            status = "url => fetch(url).then(r => r.status, e => 'failed: ' + e.message)"
            assert page.evaluate(status, "/no/such/thing") == 404
            assert page.evaluate(status, "/never/recorded").startswith("failed")
        finally:
            browser.close()
