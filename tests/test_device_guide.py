"""The device side, implemented from the documentation alone.

``/docs`` has a section for people writing their own device. This test reads that
section as text, takes the recipe's parameters from it (the key's label, the header
layout, the option framing, the digest option's number), re-implements the package 0
check with nothing but ``hashlib`` (no import of dmlab's codec), and verifies a real
DM Notification that a running lab sends to a registered device.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from typing import Any

import pytest

from dmlab import Lab
from dmlab.protocol import media

from helpers import Clients, Registered


@pytest.fixture(scope="module")
def guide(lab: Lab, clients_module: Any) -> str:
    page = clients_module.anonymous(accept="text/html").get("/docs")
    assert page.status_code == 200
    section = re.search(r'<section class="guide" id="device">(.*?)</section>', page.text, re.S)
    assert section, "no device guide on /docs"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", section.group(1))).split())


@pytest.fixture(scope="module")
def clients_module(lab: Lab) -> Iterator[Clients]:
    clients = Clients(lab)
    yield clients
    clients.close()


def recipe(guide: str) -> dict[str, Any]:
    """The parameters of the documented recipe, read from its text."""
    found = {
        "label": re.search(r'key = SHA-256\( "([^"]+)" \|\| 0x00 \|\| UTF-8\(secret\) \)', guide),
        "digest": re.search(
            r"digest = SHA-256\( key \|\| message-with-digest-zeroed \|\| auth-data \)", guide
        ),
        "version": re.search(r"bits 15–12 the version \(this server sends (\d+)\)", guide),
        "count": re.search(r"bits 11–7 the number of options, bits 6–0 zero", guide),
        "ext8": re.search(r"(\d+) means one more byte follows and the value is \1 plus", guide),
        "ext16": re.search(
            r"(\d+) means two more bytes follow and the value is (\d+) plus that 16-bit", guide
        ),
        "reserved": re.search(r"(\d+) is invalid", guide),
        "order": re.search(r"The delta's extra bytes come first, then the length's", guide),
        "digest_option": re.search(r"(\d+) SHA256-DIGEST (\d+) bytes", guide),
        "auth_data": re.search(r"the auth data is empty", guide),
    }
    missing = [name for name, match in found.items() if match is None]
    assert not missing, f"the guide no longer states: {missing}"
    return {
        "label": found["label"].group(1).encode("ascii") + b"\0",  # type: ignore[union-attr]
        "version": int(found["version"].group(1)),  # type: ignore[union-attr]
        "ext8": int(found["ext8"].group(1)),  # type: ignore[union-attr]
        "ext16": int(found["ext16"].group(1)),  # type: ignore[union-attr]
        "ext16_base": int(found["ext16"].group(2)),  # type: ignore[union-attr]
        "reserved": int(found["reserved"].group(1)),  # type: ignore[union-attr]
        "digest_option": int(found["digest_option"].group(1)),  # type: ignore[union-attr]
        "digest_size": int(found["digest_option"].group(2)),  # type: ignore[union-attr]
    }


def test_the_guide_states_the_recipe_exactly(guide: str) -> None:
    r = recipe(guide)
    # what the documented recipe says, spelled out once more
    assert r["label"] == b"dmlab notification key\x00"
    assert "64 6d 6c 61 62 20 6e 6f 74 69 66 69 63 61 74 69 6f 6e 20 6b 65 79 00" in guide
    assert (r["ext8"], r["ext16"], r["ext16_base"], r["reserved"]) == (13, 14, 269, 15)
    assert (r["digest_option"], r["digest_size"]) == (4, 32)
    for words in ('Authorization: Basic base64(devId ":" secret)', "OMADM-DevID: devId"):
        assert words in guide
    for body_type in media.DEVICE_BODY_TYPES:
        assert body_type in guide


def read_nibble(r: dict[str, Any], nibble: int, data: bytes, pos: int) -> tuple[int, int]:
    if nibble < r["ext8"]:
        return nibble, pos
    if nibble == r["ext8"]:
        return r["ext8"] + data[pos], pos + 1
    if nibble == r["ext16"]:
        return r["ext16_base"] + int.from_bytes(data[pos : pos + 2], "big"), pos + 2
    raise ValueError("reserved nibble")


def check(r: dict[str, Any], data: bytes, secret: str) -> dict[int, bytes]:
    """The documented check, on its own: the options if the digest holds, else ValueError."""
    header = int.from_bytes(data[:2], "big")
    version, count, reserved = header >> 12, (header >> 7) & 0x1F, header & 0x7F
    if version != r["version"] or reserved:
        raise ValueError("header")
    options: dict[int, bytes] = {}
    pos, number, digest_at = 2, 0, None
    for _ in range(count):
        first = data[pos]
        delta, pos = read_nibble(r, first >> 4, data, pos + 1)
        length, pos = read_nibble(r, first & 0x0F, data, pos)
        number += delta
        if number == r["digest_option"]:
            digest_at = pos
        options[number] = data[pos : pos + length]
        pos += length
    if pos != len(data) or digest_at is None:
        raise ValueError("framing")
    key = hashlib.sha256(r["label"] + secret.encode("utf-8")).digest()
    zeroed = data[:digest_at] + bytes(r["digest_size"]) + data[digest_at + r["digest_size"] :]
    if hashlib.sha256(key + zeroed + b"").digest() != options[r["digest_option"]]:
        raise ValueError("digest")
    return options


def test_a_real_notification_checks_out_by_the_guide(
    guide: str, lab: Lab, register: Any, clients: Any
) -> None:
    r = recipe(guide)
    device: Registered = register(attach=False)
    queued = clients.account().post(f"/devices/{device.dev_id}/sessions", json={"job": "inventory"})
    assert queued.status_code == 202
    answer = clients.of(device).get("/notifications", params={"wait": 5})
    assert answer.status_code == 200
    assert media.base(answer.headers["content-type"]) == media.NOTIFICATION
    data = answer.content

    options = check(r, data, device.secret)
    assert options[1].decode("utf-8") == clients.anonymous().get("/").json()["server"]
    # the check can fail: a changed byte, or another secret
    tampered = bytearray(data)
    tampered[-1] ^= 0x01
    for bad, secret in ((bytes(tampered), device.secret), (data, device.secret + "x")):
        with pytest.raises(ValueError):
            check(r, bad, secret)
