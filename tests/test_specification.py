"""Issue 17: the lab follows the DM 2.0 specification wherever the CR leans on it, and says
where it follows the CR or chooses. One test (at least) per point of the issue; the
end-to-end specification-shaped device lives in test_spec_device.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import ssl
from pathlib import Path

import httpx
import pytest

from dmlab.device import DMACC, VirtualDevice
from dmlab.device.objects import noti_credentials
from dmlab.protocol import AlertType, ProtocolError, Report, Status, media, provenance
from dmlab.protocol.alerts import fumo_operation, generic_alert, result_code
from dmlab.protocol.messages import STATUS_TEXT, Alert, parse_commands
from dmlab.protocol.notification import Notification, encode, notification_key
from dmlab.runtime.tls import LabCA
from dmlab.store import Round
from dmlab.store.rows import rounds_from as rows_from
from dmlab.store.rows import rounds_json

DOCS = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
NOW = 1_800_000_000


class _Server:
    """A MockTransport server that answers every package 1 with 204 and keeps it."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(204)


def _device(server: _Server, **kwargs: object) -> VirtualDevice:
    return VirtualDevice(
        "IMEI:1",
        "device-password",
        "https://dm.example",
        transport=httpx.MockTransport(server),
        clock=lambda: NOW,
        **kwargs,  # type: ignore[arg-type]
    )


# --- point 4: DMAcc 1.2 and the notification secret ---------------------------------------


def test_point4_device_verifies_with_its_dmacc_auth_noti_secret_and_data() -> None:
    secret, data = b"noti-secret", b"noti-auth-data"

    async def scenario() -> tuple[list[str], list[tuple[str, str]]]:
        server = _Server()
        device = _device(server, noti_secret=secret, noti_data=data)
        assert noti_credentials(device.tree, "dmlab") == (secret, data)
        n = Notification("dmlab", notification_id=7, timestamp=NOW)
        # the lab's derived key and the secret without its auth data: both dropped
        await device.on_notification(encode(n, notification_key("device-password")))
        await device.on_notification(encode(n, secret))
        # the specification's digest: SHA-256(secret | message, digest zeroed | auth data)
        await device.on_notification(encode(n, secret, data))
        await device.aclose()
        return [r.url.path for r in server.requests], device.dropped

    paths, dropped = asyncio.run(scenario())
    assert paths == ["/sessions/next"]
    assert [reason for reason, _ in dropped] == ["digest", "digest"]


def test_point4_digest_is_sha256_over_secret_message_and_auth_data() -> None:
    n = Notification("dmlab", notification_id=1, timestamp=NOW)
    data = encode(n, b"S", b"D")
    at = data.index(bytes([0x1D, 19])) + 2  # SHA256-DIGEST's value follows its header
    zeroed = data[:at] + bytes(32) + data[at + 32 :]
    assert data[at : at + 32] == hashlib.sha256(b"S" + zeroed + b"D").digest()


def test_point4_without_auth_noti_the_device_ignores_notifications() -> None:
    async def scenario() -> tuple[int, list[tuple[str, str]]]:
        server = _Server()
        device = _device(server)
        device.tree.delete(f"{DMACC}/dmlab/Auth/Noti", force=True)
        n = Notification("dmlab", notification_id=1, timestamp=NOW)
        await device.on_notification(encode(n, notification_key("device-password")))
        await device.aclose()
        return len(server.requests), device.dropped

    sent, dropped = asyncio.run(scenario())
    assert sent == 0
    assert dropped == [("digest", "no DMAcc Auth/Noti for this server")]


def test_point4_derived_key_is_a_named_lab_choice_with_the_spec_as_other_option() -> None:
    c = provenance.choice("notification-secret")
    assert "derived" in c.reading and "stores no device password" in c.why
    assert "dmacc" in c.other and "specification" in c.other
    # a default device carries the derived key in its DMAcc, with empty auth data
    device = VirtualDevice(
        "IMEI:2", "pw", "https://dm.example", transport=httpx.MockTransport(_Server())
    )
    assert noti_credentials(device.tree, "dmlab") == (notification_key("pw"), b"")
    asyncio.run(device.aclose())


# --- point 8: TLS floor ---------------------------------------------------------------------


def test_point8_tls_floor_is_1_2_documented_as_a_deliberate_deviation() -> None:
    ca = LabCA.create()
    assert ca.server_context().minimum_version == ssl.TLSVersion.TLSv1_2
    assert ca.client_context().minimum_version == ssl.TLSVersion.TLSv1_2
    floor = provenance.choice("tls-floor")
    assert "TLS 1.2" in floor.reading and "RFC 8996" in floor.why and "1.1" in floor.other
    spec = [p for p in provenance.POINTS if p.topic == "Transport" and p.source == provenance.SPEC]
    assert any("TLS 1.1" in p.rule for p in spec)
    text = DOCS.read_text()
    assert "| tls-floor | Transport |" in text and "RFC 8996" in text


# --- the protocol document ----------------------------------------------------------------


def test_protocol_document_is_generated_from_the_registry() -> None:
    assert DOCS.read_text() == provenance.markdown(), (
        "docs/protocol.md drifted: python -m dmlab.protocol.provenance > docs/protocol.md"
    )


def test_every_lab_point_names_a_declared_choice_and_every_choice_is_used() -> None:
    cited = {p.ref for p in provenance.POINTS if p.source == provenance.LAB}
    assert cited == provenance.CHOICE_IDS
    assert len(provenance.CHOICE_IDS) == len(provenance.CHOICES)  # ids are unique
    for p in provenance.POINTS:
        assert p.source in (provenance.SPEC, provenance.CR, provenance.LAB)
    with pytest.raises(KeyError):
        provenance.choice("nope")


def test_choice_ids_cited_in_code_exist() -> None:
    root = Path(__file__).resolve().parent.parent / "dmlab"
    cited = set()
    for path in root.rglob("*.py"):
        cited |= set(re.findall(r"lab choice ``?([a-z0-9]+(?:-[a-z0-9]+)+)``?", path.read_text()))
    assert cited, "the code cites no choice ids"
    assert cited <= provenance.CHOICE_IDS, cited - provenance.CHOICE_IDS


def test_every_topic_distinguishes_its_sources() -> None:
    topics = {p.topic for p in provenance.POINTS}
    for topic in ("Package 0", "Package 1", "Package 2", "Package 3", "Commands", "Transport"):
        assert topic in topics
    sources = {p.source for p in provenance.POINTS}
    assert sources == {provenance.SPEC, provenance.CR, provenance.LAB}
    # the CR's own differences are labelled as the CR's
    cr_rules = " ".join(p.rule for p in provenance.POINTS if p.source == provenance.CR)
    for mark in ("application/vnd.omadm-cmd+json", "SessionID", "PUT /sessions/id"):
        assert mark in cr_rules


# --- points 1-3, 6, 7 at the message level (end to end: test_spec_device.py) -----------------


def test_point1_lab_device_sends_initiation_json_with_mos_when_req_mos_asks() -> None:
    async def scenario() -> list[httpx.Request]:
        server = _Server()
        device = _device(server)
        key = notification_key("device-password")
        await device.on_notification(encode(Notification("dmlab", 3, timestamp=NOW), key))
        n = Notification("dmlab", notification_id=4, timestamp=NOW, req_mos=True)
        await device.on_notification(encode(n, key))
        await device.aclose()
        return server.requests

    plain, asked = asyncio.run(scenario())
    for request in (plain, asked):
        assert request.headers["content-type"] == media.DM20_INITIATION
        assert media.DM20_REQUEST in request.headers["accept"]
    assert "MOS" not in json.loads(plain.content)
    body = json.loads(asked.content)
    assert body["Alert"] == [
        {"AlertType": AlertType.SERVER_INITIATED, "Data": {"NOTIFICATION-ID": 4}}
    ]
    listed = {m["MOID"]: m for m in body["MOS"]}
    assert listed[DMACC]["MIID"] == ["dmlab"] and listed[DMACC]["DDF"].endswith("v1_2.ddf")
    assert listed["urn:oma:mo:oma-fumo:1.0"] == {"MOID": "urn:oma:mo:oma-fumo:1.0", "MIID": ["fw1"]}
    report = Report.from_json(body)  # the server's parser takes it
    assert [m.moid for m in report.mos] == list(listed)


def test_point2_status_carries_uri() -> None:
    status = Status.from_json({"sc": 200, "URI": ["urn:oma:mo:x:1.0/a/", "urn:oma:mo:x:1.0/b/"]})
    assert status.uri == ("urn:oma:mo:x:1.0/a/", "urn:oma:mo:x:1.0/b/")
    assert status.to_json() == {"sc": 200, "URI": ["urn:oma:mo:x:1.0/a/", "urn:oma:mo:x:1.0/b/"]}
    with pytest.raises(ProtocolError):
        Status.from_json({"sc": 200, "URI": "not a list"})


def test_point3_generic_alert_data_is_an_object_and_read_either_way() -> None:
    alert = generic_alert(
        AlertType.FUMO_DOWNLOAD_AND_UPDATE, "urn:x:1.0/a/Op", result=410, ok=False
    )
    assert alert.to_json()["Data"] == {"DM1x": 410} and alert.mark == "critical"
    assert alert.alert_type.startswith("urn:oma:at:")
    assert result_code(alert) == 410
    old = Alert("org.openmobilealliance.dm.firmwareupdate.downloadandupdate", data=200)
    assert result_code(old) == 200 and fumo_operation(old.alert_type) == "DownloadAndUpdate"


def test_point6_default_and_unknown_commands_parse() -> None:
    default, unknown = parse_commands([["DEFAULT", "urn:oma:mo:x:1.0", "https://s/x"], ["FROB"]])
    assert default.known and not unknown.known
    with pytest.raises(ProtocolError):
        parse_commands([["DEFAULT", "urn:oma:mo:x:1.0"]])  # MOID and ServerURI


def test_point7_status_meanings() -> None:
    assert STATUS_TEXT[406] == "Not Acceptable"
    assert Status(304).ok and not Status(406).ok


def test_point2_uri_survives_the_sql_stores_codec() -> None:
    rounds = (
        Round(
            "k1",
            parse_commands([["HGET", "https://s/x"], ["END"]]),
            (Status(200, uri=("urn:oma:mo:x:1.0//Downloads/1",)),),
        ),
    )
    assert rows_from(rounds_json(rounds)) == rounds
