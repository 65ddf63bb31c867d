"""``python -m dmlab conform`` as a working-group member runs it: the server side
against ``python -m dmlab serve`` in its own process, the device side against
``python -m dmlab device``; exit statuses, lines and the three reports."""

from __future__ import annotations

import json
import re
import ssl
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx

from dmlab.conformance import PURPOSES

from helpers import START_TIMEOUT, Process

ACCOUNTS = ("demo:demo-password", "rival:rival-password")


def test_conform_server_against_dmlab_serve(tmp_path: Path) -> None:
    data = tmp_path / "data"
    accounts = [a for account in ACCOUNTS for a in ("--account", account)]
    serve = Process.start("serve", "--port", "0", "--data", str(data), *accounts, cwd=tmp_path)
    try:
        url = serve.expect(r"dmlab serving (https://127\.0\.0\.1:\d+)", START_TIMEOUT)[1]
        reports = {kind: tmp_path / f"r.{kind}" for kind in ("xml", "html", "json")}
        conform = Process.start(
            "conform",
            "server",
            url,
            "--cafile",
            str(data / "ca.pem"),
            *accounts,
            "--junit",
            str(reports["xml"]),
            "--html",
            str(reports["html"]),
            "--json",
            str(reports["json"]),
            cwd=tmp_path,
        )
        conform.expect(r"^PASS +TP/SESS/PEND/001 \[x\.1\.1 GET /sessions/pending\]", START_TIMEOUT)
        conform.expect(r"^total +\d+", 120)
        code = conform.popen.wait(30)
        conform.close()
        # The devices the kit registered are gone again, from both accounts.
        verify = ssl.create_default_context(cafile=str(data / "ca.pem"))
        for account in ACCOUNTS:
            name, password = account.split(":")
            listing = httpx.get(
                f"{url}/devices",
                auth=(name, password),
                verify=verify,
                headers={"Accept": "application/json"},
            )
            assert listing.status_code == 200 and listing.json()["Devices"] == [], listing.text
    finally:
        assert serve.terminate() == 0
    log = "\n".join(conform.lines)
    assert code == 0, log
    server_side = [p for p in PURPOSES if p.side == "server"]
    for p in server_side:  # one line per purpose, as it ran
        assert re.search(rf"^PASS +{re.escape(p.name)}", log, re.M), p.id

    report = json.loads(reports["json"].read_text())
    bodies = [e["response_body"] for o in report["outcomes"] for e in o["exchanges"]]
    # Registration answers are kept, without the device's secret.
    assert any(re.search(r'"secret":\s*"\(redacted\)"', b) for b in bodies)
    assert not any(re.search(r'"secret":\s*"(?!\(redacted\))', b) for b in bodies)
    verdicts = {o["id"]: o["verdict"] for o in report["outcomes"]}
    assert len(verdicts) == len(server_side)
    # The lab's own server meets every purpose, HTTP conventions included.
    assert {i for i, v in verdicts.items() if v != "PASS"} == set(), verdicts

    suite = ET.parse(reports["xml"]).getroot()
    names = [case.get("name") for case in suite.iter("testcase")]
    assert "TP/SESS/NEXT/001 [x.1.1 POST /sessions/next]" in names
    assert suite.get("failures") == "0" and len(names) == len(server_side)

    page = reports["html"].read_text()
    assert "<table" in page and "Clause x.1.1" in page and "TP/FLOW/SI/001" in page
    # Self-contained: nothing fetched from anywhere.
    assert not re.search(r"<script|<link|<img|src=|@import|url\(", page, re.I)


def test_conform_device_against_dmlab_device(tmp_path: Path) -> None:
    checking = Process.start(
        "conform",
        "device",
        "--port",
        "0",
        "--data",
        str(tmp_path / "check"),
        "--timeout",
        "60",
        "--junit",
        str(tmp_path / "d.xml"),
        cwd=tmp_path,
    )
    url = checking.expect(r"^conformance checking server (https://\S+)", START_TIMEOUT)[1]
    cafile = checking.expect(r"^CA certificate: (\S+)")[1]
    found = checking.expect(r"^device: devId (\S+) secret (\S+) server-id (\S+)")
    device = Process.start(
        "device",
        "--server",
        url,
        "--cafile",
        cafile,
        "--dev-id",
        found[1],
        "--secret",
        found[2],
        "--server-id",
        found[3],
        "--alert-now",
        "--browser-component",
        cwd=tmp_path,
    )
    try:
        checking.expect(r"^total +\d+", 90)
        code = checking.popen.wait(30)
        checking.close()
    finally:
        device.terminate()
    log = "\n".join(checking.lines)
    assert code == 0, log + "\n--- device ---\n" + "\n".join(device.lines)
    for p in PURPOSES:
        if p.side == "device":
            assert re.search(rf"^PASS +{re.escape(p.name)}", log, re.M), (p.id, log)
    suite = ET.parse(tmp_path / "d.xml").getroot()
    assert suite.get("failures") == "0"


def test_only_matching_nothing_is_an_error(tmp_path: Path) -> None:
    process = Process.start(
        "conform", "server", "https://127.0.0.1:9", "--only", "TP/NOPE", cwd=tmp_path
    )
    process.expect(r"no server test purpose matches --only 'TP/NOPE'", START_TIMEOUT)
    assert process.popen.wait(START_TIMEOUT) == 2
    process.close()
