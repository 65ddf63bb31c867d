"""A device written to the DM 2.0 specification, with plain httpx and no dmlab client code,
runs sessions against the lab's server (issue 17).

It long-polls for package 0 (the lab's transport, a lab choice) and checks it by hand:
its own reading of the header and options, and the digest as the specification defines
it, keyed by the lab's derived Auth/Noti secret (lab choice notification-secret). Then it
speaks the specification's packages: package 1 as ``initiation+json`` with MOS, package 3
with ``URI``, a generic alert whose ``Data`` is an object; it meets DEFAULT and a command
it does not know in package 2. The CR's differences stay: the package 2 answer carries
``SessionID``, package 3 is a PUT to ``/sessions/id/{id}``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest

from dmlab import Lab

from helpers import ACCOUNT, Registered, queue, session_of

INITIATION = "application/vnd.oma.dm.initiation+json"
REQUEST = "application/vnd.oma.dm.request+json"
RESPONSE = "application/vnd.oma.dm.response+json"
DEVINFO = "urn:oma:mo:oma-dm-devinfo:1.0"
FUMO = "urn:oma:mo:oma-fumo:1.0"
STORE = "urn:oma:mo:example-store:1.0"  # where this device keeps what HGET brings


def read_package0(data: bytes) -> dict[str, Any]:
    """The device's own reader: 2-byte header, options by 4-bit delta and length
    (extension bytes as the lab frames them)."""
    word = int.from_bytes(data[:2], "big")
    count, pos, number, options = (word >> 7) & 0x1F, 2, 0, {}
    for _ in range(count):
        delta, length = data[pos] >> 4, data[pos] & 0x0F
        pos += 1
        extended = []
        for nibble in (delta, length):
            if nibble == 13:
                extended.append(data[pos] + 13)
                pos += 1
            elif nibble == 14:
                extended.append(int.from_bytes(data[pos : pos + 2], "big") + 269)
                pos += 2
            else:
                extended.append(nibble)
        number += extended[0]
        options[number] = (pos, data[pos : pos + extended[1]])
        pos += extended[1]
    return {"version": word >> 12, "options": options}


def check_digest(data: bytes, secret: bytes, auth_data: bytes) -> bool:
    """SHA-256(secret | message with the digest zeroed | auth data), specification §2.1.2.2."""
    at, digest = read_package0(data)["options"][4]
    zeroed = data[:at] + bytes(32) + data[at + 32 :]
    return hashlib.sha256(secret + zeroed + auth_data).digest() == digest


class SpecDevice:
    """Packages as the specification has them, over the CR's resources."""

    def __init__(self, lab: Lab, registered: Registered) -> None:
        self.dev_id = registered.dev_id
        self.http = httpx.Client(
            base_url=lab.url,
            auth=(registered.dev_id, registered.secret),
            headers={"OMADM-DevID": registered.dev_id},
            verify=lab.ca.client_context(),
            timeout=30.0,
        )
        # lab choice notification-secret: the Auth/Noti secret derived from the password
        self.noti_secret = hashlib.sha256(
            b"dmlab notification key\0" + registered.secret.encode()
        ).digest()
        self.defaults: dict[str, str] = {}
        self.stored: list[str] = []

    def package1(self, path: str, alerts: list[dict[str, Any]]) -> httpx.Response:
        body = {
            "MOS": [
                {"MOID": DEVINFO, "MIID": [""]},
                {"MOID": FUMO, "MIID": ["fw1"]},
            ],
            "Alert": alerts,
        }
        return self.http.post(
            path,
            content=json.dumps(body),
            headers={"Content-Type": INITIATION, "Accept": REQUEST},
        )

    def execute(self, command: list[str]) -> dict[str, Any]:
        name, *params = command
        if name == "GET" and params[0].endswith("/DevInfo/DmV"):
            return {"sc": 200, "Data": "2.0"}
        if name == "HGET" and len(params) == 1:  # no ClientURI: the device picks the place
            fetched = self.http.get(params[0])
            if fetched.status_code != 200:
                return {"sc": 500}
            place = f"{STORE}/item{len(self.stored) + 1}/"
            self.stored.append(place)
            return {"sc": 200, "URI": [place]}
        if name == "DEFAULT":
            moid, server_uri = params
            self.defaults[moid] = server_uri
            return {"sc": 200}
        return {"sc": 501}  # a command this device does not know

    def run(self, answer: httpx.Response) -> list[list[dict[str, Any]]]:
        """Packages 2 and 3 until the server ends the session; the statuses sent."""
        sent: list[list[dict[str, Any]]] = []
        while answer.status_code == 200:
            package2 = answer.json()
            commands = package2["CMD"]
            statuses = [self.execute(c) for c in commands if c[0] != "END"]
            if commands[-1][0] == "END":  # specification: no package 3 after END
                break
            sent.append(statuses)
            answer = self.http.put(
                f"/sessions/id/{package2['SessionID']}",
                content=json.dumps({"Status": statuses}),
                headers={"Content-Type": RESPONSE, "Accept": REQUEST},
            )
        else:
            assert answer.status_code == 204, answer.text
        return sent


@pytest.fixture
def device(lab: Lab, register) -> SpecDevice:  # type: ignore[no-untyped-def]
    made = SpecDevice(lab, register(attach=False))
    yield made
    made.http.close()


def test_a_specification_shaped_device_runs_a_server_initiated_session(
    lab: Lab, device: SpecDevice
) -> None:
    url_of_package = f"{lab.url}/firmware/2.0.0/url"
    queued = queue(
        lab,
        device.dev_id,
        notify=True,
        commands=[
            ["GET", f"{DEVINFO}//DevInfo/DmV"],
            ["HGET", url_of_package],
            ["DEFAULT", FUMO, url_of_package],
            ["FROB", "urn:oma:mo:example:1.0//x"],
        ],
    )
    # package 0, checked the specification's way
    polled = device.http.get("/notifications", params={"wait": 5})
    assert polled.status_code == 200
    package0 = read_package0(polled.content)
    assert package0["options"][1][1] == b"dmlab"  # SERVER-ID
    assert check_digest(polled.content, device.noti_secret, b"")
    assert not check_digest(polled.content, b"another secret", b"")
    notification_id = int.from_bytes(package0["options"][3][1], "big")

    # package 1: initiation+json with MOS and the alert carrying the NOTIFICATION-ID
    answer = device.package1(
        "/sessions/next",
        [
            {
                "AlertType": "urn:oma:at:dm:2.0:ServerInitiatedMgmt",
                "Data": {"NOTIFICATION-ID": notification_id},
            }
        ],
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["SessionID"] == queued["SessionID"]  # the CR's field
    assert answer.headers["content-type"].startswith(REQUEST)  # the TS's package 2 type
    assert [c[0] for c in answer.json()["CMD"]] == ["GET", "HGET", "DEFAULT", "FROB"]

    sent = device.run(answer)
    assert sent == [
        [
            {"sc": 200, "Data": "2.0"},
            {"sc": 200, "URI": [f"{STORE}/item1/"]},
            {"sc": 200},
            {"sc": 501},
        ]
    ]
    assert device.defaults == {FUMO: url_of_package}
    done = session_of(lab, queued["SessionID"])
    assert done["State"] == "completed" and done["Result"] == "failure"  # FROB failed


def test_a_specification_shaped_device_reports_a_generic_alert_with_object_data(
    lab: Lab, device: SpecDevice
) -> None:
    alert = {
        "AlertType": "urn:oma:at:fumo:1.0:DownloadAndUpdate",
        "SourceURI": f"{FUMO}/fw1/DownloadAndUpdate",
        "Mark": "informational",
        "DataType": "int",
        "Data": {"DM1x": 200},
    }
    answer = device.package1("/alert", [alert])
    assert answer.status_code == 204  # a generic alert is never answered
    record = lab.services.store.alerts_of(device.dev_id, 1)[0]
    assert record.alert.to_json() == alert
    assert all(s["DevID"] != device.dev_id for s in lab.operators[ACCOUNT[0]].pending())


def test_a_specification_shaped_device_sends_no_package3_after_end(
    lab: Lab, device: SpecDevice
) -> None:
    # Specification §2.4, §3.9: a package 2 holding END gets no package 3; the server
    # completes the session as it hands END out (its Accept names only the TS's type).
    queued = queue(lab, device.dev_id, commands=[["GET", f"{DEVINFO}//DevInfo/DmV"], ["END"]])
    answer = device.package1("/alert", [{"AlertType": "urn:oma:at:dm:2.0:ClientInitiatedMgmt"}])
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith(REQUEST)  # package 2, the TS's type
    assert answer.json()["SessionID"] == queued["SessionID"]
    assert device.run(answer) == []  # nothing sent after END
    done = session_of(lab, queued["SessionID"])
    assert (done["State"], done["Result"], done["Rounds"]) == ("completed", "OK", 1)
    # a later PUT for it is a conflict: the session is over
    late = device.http.put(
        f"/sessions/id/{queued['SessionID']}",
        content=json.dumps({"Status": [{"sc": 200}]}),
        headers={"Content-Type": RESPONSE},
    )
    assert late.status_code == 409


def test_a_session_over_several_rounds_ends_on_end_too(lab: Lab, device: SpecDevice) -> None:
    # the firmware-update job: round 1 reads FwV and State, round 2 ends with END
    queued = queue(lab, device.dev_id, job="firmware-update", version="2.0.0")
    answer = device.package1(
        "/sessions/next", [{"AlertType": "urn:oma:at:dm:2.0:ClientInitiatedMgmt"}]
    )
    first = answer.json()
    statuses = [{"sc": 200, "Data": "1.0.0"}, {"sc": 200, "Data": 10}]
    answer = device.http.put(
        f"/sessions/id/{first['SessionID']}",
        content=json.dumps({"Status": statuses}),
        headers={"Content-Type": RESPONSE, "Accept": REQUEST},
    )
    assert answer.status_code == 200, answer.text
    assert [c[0] for c in answer.json()["CMD"]] == ["HGET", "EXEC", "END"]
    done = session_of(lab, queued["SessionID"])
    assert (done["State"], done["Result"], done["Rounds"]) == ("completed", "OK", 2)
