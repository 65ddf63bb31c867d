"""The command executor against a fake, in-memory DevicePort."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from dmlab.device import (
    DEVINFO,
    DMACC,
    EXT,
    FUMO,
    Behaviour,
    DevicePort,
    ExecutionResult,
    Executor,
    ManagementTree,
    Node,
    PackageError,
    firmware_package,
    parse_package,
    standard_tree,
)
from dmlab.device.executor import MAX_DOWNLOADS
from dmlab.device.serialize import cache_validator
from dmlab.protocol.alerts import FUMO_ALERT_TYPES, result_code
from dmlab.protocol.media import TNDS
from dmlab.protocol.messages import (
    STATUS_TEXT,
    Alert,
    Command,
    Status,
    expects_status,
    parse_commands,
)

FWV = f"{DEVINFO}//DevInfo/FwV"
SETTINGS = f"{EXT}//Settings"
STATE = f"{FUMO}/fw1/State"
PKG = "https://dl.example/fw-2.0.0.json"
ALERTS = "https://dm.example/alerts"
JSON = "application/json"


class FakePort:
    """Serves canned responses and records everything the device sends."""

    def __init__(self) -> None:
        self.resources: dict[str, tuple[int, bytes, str]] = {}
        self.send_status: dict[str, int] = {}
        self.unreachable: set[str] = set()
        self.gets: list[str] = []
        self.sent: list[tuple[str, str, Any, str]] = []
        #: URL -> (media types taken, OMADM-Accept): other types are answered 415
        self.takes: dict[str, tuple[set[str], str]] = {}
        self.shown: list[str] = []
        self.alerts: list[Alert] = []
        self.alert_urls: list[str | None] = []
        self.gate: asyncio.Event | None = None  # when set, http_get waits for it
        self.at_gate: asyncio.Event | None = None  # set once http_get waits at the gate

    async def http_get(self, url: str) -> tuple[int, bytes, str]:
        self.gets.append(url)
        if self.gate is not None:
            if self.at_gate is not None:
                self.at_gate.set()
            await self.gate.wait()
        if url in self.unreachable:
            raise ConnectionError(f"cannot reach {url}")
        return self.resources.get(url, (404, b"not found", "text/plain"))

    async def http_send(
        self, method: str, url: str, body: bytes, content_type: str
    ) -> tuple[int, str]:
        if url in self.unreachable:
            raise ConnectionError(f"cannot reach {url}")
        if url in self.takes and content_type not in self.takes[url][0]:
            return 415, self.takes[url][1]
        decoded = json.loads(body) if content_type == JSON else body.decode()
        self.sent.append((method, url, decoded, content_type))
        return self.send_status.get(url, 200), ""

    async def show(self, url: str) -> None:
        await asyncio.sleep(0)
        if url in self.unreachable:
            raise ConnectionError("no browser")
        self.shown.append(url)

    async def alert(self, alert: Alert, url: str | None = None) -> None:
        self.alerts.append(alert)
        self.alert_urls.append(url)


def modata(body: list[dict[str, Any]]) -> dict[str, Any]:
    """An MO serialization as ``{ClientURI: MOData}``."""
    return {item["ClientURI"]: item["MOData"] for item in body}


@pytest.fixture
def tree() -> ManagementTree:
    return standard_tree(
        "IMEI:490154203237518",
        "Acme",
        "Phone 1",
        "lab-server",
        "https://dm.example/",
        secret="s3cret",
    )


@pytest.fixture
def port() -> FakePort:
    port = FakePort()
    port.resources[PKG] = (
        200,
        firmware_package("2.0.0", b"\x7fELF firmware", name="acme-fw"),
        JSON,
    )
    return port


@pytest.fixture
def executor(tree: ManagementTree, port: FakePort) -> Executor:
    return Executor(tree, port)


def cmd(*parts: str) -> Command:
    return Command.of(*parts)


def run(executor: Executor, *commands: Command, drain: bool = True) -> ExecutionResult:
    async def go() -> ExecutionResult:
        result = await executor.run(commands)
        if drain:
            await executor.drain()
        return result

    return asyncio.run(go())


def codes(result: ExecutionResult) -> list[int]:
    return [s.sc for s in result.statuses]


def test_fake_port_is_a_device_port(port: FakePort) -> None:
    typed: DevicePort = port  # checked by a type checker; here it documents the fake
    assert typed is port


# -- the package -----------------------------------------------------------


def test_one_status_per_command_in_order_and_none_for_end(executor: Executor) -> None:
    commands = parse_commands(
        [
            ["GET", FWV],
            ["GET", f"{DEVINFO}//DevInfo/Nope"],
            ["GET", f"{DEVINFO}//DevInfo/Man"],
            ["END"],
        ]
    )
    result = run(executor, *commands)
    assert result.statuses == [Status(200, "1.0.0"), Status(404), Status(200, "Acme")]
    assert len(result.statuses) == expects_status(commands)
    assert result.ended and not result.ok
    assert result.continue_to is None and result.shown == []


def test_without_end_the_session_goes_on(executor: Executor) -> None:
    result = run(executor, cmd("GET", FWV))
    assert not result.ended and result.ok


def test_nothing_after_end_runs(executor: Executor) -> None:
    # parse_commands forbids this; run() stops at END all the same
    result = run(executor, cmd("END"), cmd("GET", FWV))
    assert result.ended and result.statuses == []


def test_failing_commands_do_not_stop_the_rest(executor: Executor, port: FakePort) -> None:
    port.unreachable.add("https://down/")
    result = run(
        executor,
        cmd("HGET", "https://down/"),
        cmd("GET", FWV),
        cmd("HPUT", "https://down/", FWV),
        cmd("GET", "not a uri"),
        cmd("DELETE", FWV),
        cmd("GET", f"{FUMO}/fw1/PkgVersion"),
    )
    assert codes(result) == [500, 200, 500, 400, 405, 200]


def test_history_records_commands_and_outcomes(executor: Executor, port: FakePort) -> None:
    port.unreachable.add("https://down/")
    run(executor, cmd("GET", FWV), cmd("HGET", "https://down/"), cmd("END"))
    assert executor.history[0] == f"GET {FWV} -> 200"
    assert executor.history[1].startswith("HGET https://down/ -> 500 (ConnectionError")
    assert executor.history[-1] == "END"


# -- GET -------------------------------------------------------------------


def test_get_subtree_and_wildcard(executor: Executor) -> None:
    result = run(executor, cmd("GET", f"{DMACC}/lab-server/"), cmd("GET", f"{FUMO}/*/State"))
    account, states = (s.data for s in result.statuses)
    assert account["SrvURI"] == "https://dm.example/" and "Perm" not in account
    assert "Secret" not in account["Auth"]["Trsp"] and "Secret" not in account["Auth"]["Noti"]
    assert states == {"fw1": 10}


def test_get_errors(executor: Executor) -> None:
    result = run(
        executor,
        cmd("GET", f"{DMACC}/lab-server/Auth/Trsp/Secret"),
        cmd("GET", f"{FUMO}/fw9/State"),
        cmd("GET", f"{FUMO}/fw1//State"),
    )
    assert result.statuses == [Status(403), Status(404), Status(400)]


# -- HGET ------------------------------------------------------------------


def test_hget_stores_text(executor: Executor, port: FakePort, tree: ManagementTree) -> None:
    port.resources["https://s/motd"] = (200, "héllo".encode(), "text/plain; charset=utf-8")
    result = run(executor, cmd("HGET", "https://s/motd", f"{SETTINGS}/Motd"))
    assert codes(result) == [200]
    assert tree.get(f"{SETTINGS}/Motd") == "héllo"
    assert port.gets == ["https://s/motd"]


def test_hget_stores_json_as_subtree(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    body = {
        "APN": "lab",
        "Retries": 3,
        "Flags": [1, 2],
        "Debug": True,
        "Ports": {"Http": 80},
        "Gone": None,
    }
    port.resources["https://s/net"] = (200, json.dumps(body).encode(), "application/vnd.lab+json")
    assert codes(run(executor, cmd("HGET", "https://s/net", f"{SETTINGS}/Net"))) == [200]
    assert tree.get(f"{SETTINGS}/Net") == {
        "APN": "lab",
        "Retries": 3,
        "Flags": "[1, 2]",
        "Debug": "true",
        "Ports": {"Http": 80},
        "Gone": None,
    }


def test_hget_json_into_an_existing_leaf_keeps_the_text(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    package = firmware_package("3.0.0")
    port.resources["https://s/pkg"] = (200, package, JSON)
    assert codes(run(executor, cmd("HGET", "https://s/pkg", f"{FUMO}/fw1/Update/PkgData"))) == [200]
    assert tree.get(f"{FUMO}/fw1/Update/PkgData") == package.decode()


def test_hget_without_client_uri_says_where_it_stored_the_data(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    # Issue 17 point 2: the device picks the place and returns it in URI
    port.resources["https://s/a"] = (200, b"first", "text/plain")
    port.resources["https://s/b"] = (200, b'{"k": 1}', JSON)
    result = run(executor, cmd("HGET", "https://s/a"), cmd("HGET", "https://s/b"))
    downloads = f"{EXT}//Downloads"
    assert result.statuses == [
        Status(200, uri=(f"{downloads}/1",)),
        Status(200, uri=(f"{downloads}/2",)),
    ]
    assert result.statuses[0].to_json() == {"sc": 200, "URI": [f"{downloads}/1"]}
    assert tree.get(f"{downloads}/1") == "first" and tree.get(f"{downloads}/2") == {"k": 1}
    # the server may clean up; the places are bounded
    run(executor, cmd("DELETE", f"{downloads}/1"))
    assert run(executor, cmd("HGET", "https://s/a")).statuses[0].uri == (f"{downloads}/1",)
    for n in range(3, MAX_DOWNLOADS + 1):
        tree.set(f"{downloads}/{n}", "x")
    assert codes(run(executor, cmd("HGET", "https://s/a"))) == [409]


def test_default_remembers_one_server_uri_per_moid_and_fetches_from_it(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    # Issue 17 point 6: DEFAULT exists; a later DEFAULT replaces the earlier one
    port.resources["https://s/scomo"] = (200, b'{"Inventory": {}}', JSON)
    moid = "urn:oma:mo:oma-scomo:1.0"
    result = run(
        executor,
        cmd("DEFAULT", moid, "https://s/old"),
        cmd("DEFAULT", moid, "https://s/scomo"),
        cmd("DEFAULT", "not-a-urn", "https://s/x"),
    )
    assert codes(result) == [200, 200, 400]
    assert executor.defaults == {moid: "https://s/scomo"} and port.gets == []
    where = asyncio.run(executor.fetch_default(moid))
    assert where == (f"{EXT}//Downloads/1",) and port.gets == ["https://s/scomo"]
    assert tree.get(where[0]) == {"Inventory": {}}
    assert asyncio.run(executor.fetch_default("urn:oma:mo:none:1.0")) == ()


def test_an_unknown_command_gets_501_and_the_package_goes_on(executor: Executor) -> None:
    # Issue 17 point 6: one status for that command, not a rejected package
    commands = parse_commands([["GET", FWV], ["FROB", "x", "y"], ["GET", FWV], ["END"]])
    assert [c.known for c in commands] == [True, False, True, True]
    result = run(executor, *commands)
    assert result.statuses == [Status(200, "1.0.0"), Status(501), Status(200, "1.0.0")]
    assert len(result.statuses) == expects_status(commands)


def test_hget_errors(executor: Executor, port: FakePort, tree: ManagementTree) -> None:
    port.resources["https://s/latin1"] = (200, "é".encode("latin-1"), "text/plain")
    port.resources["https://s/badjson"] = (200, b"{nope", JSON)
    port.resources["https://s/obj"] = (200, b'{"a": 1}', JSON)
    port.resources["https://s/badkey"] = (200, b'{"a/b": 1}', JSON)
    port.unreachable.add("https://down/")
    result = run(
        executor,
        cmd("HGET", "https://s/missing", f"{SETTINGS}/X"),  # remote 404
        cmd("HGET", "https://down/", f"{SETTINGS}/X"),  # network error
        cmd("HGET", "https://s/latin1", f"{SETTINGS}/X"),
        cmd("HGET", "https://s/badjson", f"{SETTINGS}/X"),
        cmd("HGET", "https://s/obj", SETTINGS),  # a permanent interior node keeps its shape
        cmd("HGET", "https://s/badkey", f"{SETTINGS}/X"),
        cmd("HGET", "https://s/obj", FWV),  # read-only
        cmd("HGET", "https://s/obj", f"{DEVINFO}//DevInfo/New"),  # cannot create there
        cmd("HGET", "https://s/obj", f"{EXT}//No/Such"),
    )
    assert codes(result) == [500, 500, 415, 415, 405, 400, 403, 403, 404]
    assert "X" not in tree.get(SETTINGS)
    # permission is checked before anything is fetched
    assert port.gets.count("https://s/obj") == 1


# -- HPUT / HPOST ----------------------------------------------------------


def test_hpost_and_hput_send_the_mo_serialization(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    # Issue 17 point 6: [{"DDF", "ClientURI", "CV", "MOData"}], not {uri: value}.
    result = run(
        executor,
        cmd("HPOST", "https://s/results", f"{DEVINFO}//"),
        cmd("HPUT", "https://s/state", FWV, f"{FUMO}/*/State", f"{DMACC}/lab-server/"),
    )
    assert codes(result) == [200, 200]
    (m1, u1, body1, ct1), (m2, u2, body2, ct2) = port.sent
    assert (m1, u1, ct1) == ("POST", "https://s/results", JSON)
    (whole,) = body1
    assert set(whole) == {"ClientURI", "CV", "MOData"}  # no published DDF URL for DevInfo
    assert whole["ClientURI"] == f"{DEVINFO}//"
    assert whole["MOData"]["DevInfo"]["DmV"] == "2.0"
    assert whole["CV"] == cache_validator(tree, DEVINFO, "")
    assert (m2, u2, ct2) == ("PUT", "https://s/state", JSON)
    assert modata(body2) == {
        FWV: {"FwV": "1.0.0"},
        f"{FUMO}/fw1/State": {"State": 10},
        f"{DMACC}/lab-server/": tree.get(f"{DMACC}/lab-server/"),
    }
    assert body2[2]["DDF"].endswith("/dm_dmacc-v1_2.ddf")
    assert "CV" not in body2[0] and "CV" in body2[2]  # CV only for an instance root


def test_415_with_omadm_accept_is_retried_in_a_listed_type(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    port.takes["https://s/xml"] = ({TNDS}, f"application/cbor, {TNDS};q=0.5")
    port.takes["https://s/cbor"] = ({"application/cbor"}, "application/cbor")
    result = run(
        executor,
        cmd("HPUT", "https://s/xml", FWV),
        cmd("HPOST", "https://s/cbor", FWV),
        cmd("SUB", SETTINGS, "https://s/xml"),
    )
    # Issue 17 points 6 and 7: retried as TNDS; none supported -> 406 "Not Acceptable"
    assert codes(result) == [200, 406, 200]
    assert STATUS_TEXT[406] == "Not Acceptable"
    ((method, url, body, content_type),) = port.sent
    assert (method, url, content_type) == ("PUT", "https://s/xml", TNDS)
    assert "<NodeName>FwV</NodeName>" in body and "<Value>1.0.0</Value>" in body
    tree.set(f"{SETTINGS}/Mode", "eco")
    asyncio.run(executor.drain())
    assert port.sent[-1][3] == TNDS and "<NodeName>Mode</NodeName>" in port.sent[-1][2]


def test_cache_validator_answers_304_while_the_instance_is_unchanged(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    # Issue 17 point 7: 304 with the cache validator CV
    cv = cache_validator(tree, FUMO, "fw1")
    result = run(
        executor,
        cmd("GET", f"{STATE}?cv={cv}"),
        cmd("HPOST", "https://s/r", f"{FUMO}/fw1/?cv={cv}"),
        cmd("GET", f"{STATE}?cv=stale"),
        cmd("GET", f"{STATE}?nv=(x)/ID:1"),
    )
    assert codes(result) == [304, 304, 200, 501]
    assert result.statuses[0].data is None and port.sent == []
    tree.set(f"{FUMO}/fw1/Download/PkgURL", "https://dl/x")
    changed = run(executor, cmd("GET", f"{STATE}?cv={cv}"))
    assert changed.statuses == [Status(200, 10)]
    assert cache_validator(tree, FUMO, "fw1") != cv


def test_hput_errors(executor: Executor, port: FakePort) -> None:
    port.send_status["https://s/reject"] = 400
    port.unreachable.add("https://down/")
    result = run(
        executor,
        cmd("HPUT", "https://s/x", FWV, f"{DMACC}/lab-server/Auth/Trsp/Secret"),
        cmd("HPOST", "https://s/x", f"{FUMO}/fw1/Nope"),
        cmd("HPUT", "https://s/reject", FWV),
        cmd("HPOST", "https://down/", FWV),
    )
    assert codes(result) == [403, 404, 500, 500]
    assert [url for _, url, _, _ in port.sent] == ["https://s/reject"]  # nothing sent for 403/404


# -- DELETE ----------------------------------------------------------------


def test_delete(executor: Executor, tree: ManagementTree) -> None:
    tree.set(f"{SETTINGS}/Tmp", "x")
    tree.add_instance(EXT, "ro", Node.interior("ro", Node.leaf("Fixed", "x")))
    result = run(
        executor,
        cmd("DELETE", f"{SETTINGS}/Tmp"),
        cmd("DELETE", f"{SETTINGS}/Tmp"),
        cmd("DELETE", FWV),
        cmd("DELETE", f"{EXT}/ro/Fixed"),
        cmd("DELETE", f"{EXT}/*/Fixed"),
    )
    assert codes(result) == [200, 404, 405, 403, 400]
    assert tree.get(SETTINGS) == {}


# -- SHOW / CONT -----------------------------------------------------------


def test_show_does_not_wait(executor: Executor, port: FakePort) -> None:
    async def go() -> tuple[ExecutionResult, list[str]]:
        result = await executor.run([cmd("SHOW", "https://s/page"), cmd("GET", FWV)])
        shown_before_drain = list(port.shown)
        await executor.drain()
        return result, shown_before_drain

    result, before = asyncio.run(go())
    assert codes(result) == [200, 200]
    assert result.shown == ["https://s/page"]
    assert before == [] and port.shown == ["https://s/page"]


def test_show_failure_is_logged_not_raised(executor: Executor, port: FakePort) -> None:
    port.unreachable.add("https://s/page")
    result = run(executor, cmd("SHOW", "https://s/page"), cmd("GET", FWV))
    assert codes(result) == [200, 200]
    assert any(line.startswith("SHOW https://s/page failed") for line in executor.history)


def test_cont(executor: Executor) -> None:
    result = run(executor, cmd("CONT", "https://s/sessions/id/2"), cmd("GET", FWV), cmd("END"))
    assert codes(result) == [200, 200]
    assert result.continue_to == "https://s/sessions/id/2" and result.ended


# -- EXEC ------------------------------------------------------------------


def test_exec_errors(executor: Executor, tree: ManagementTree) -> None:
    tree.add_instance(EXT, "tools", Node.interior("tools", Node.leaf("Reboot", None, acl="x")))
    result = run(
        executor,
        cmd("EXEC", STATE),  # not executable
        cmd("EXEC", f"{EXT}/tools/Reboot"),  # executable, but the device has no such operation
        cmd("EXEC", f"{FUMO}/fw9/Update"),
        cmd("EXEC", f"{FUMO}/*/Update"),
        cmd("EXEC", f"{FUMO}/fw1/Update"),  # nothing downloaded, no PkgData
    )
    assert codes(result) == [405, 501, 404, 400, 409]


def states_of(tree: ManagementTree) -> list[int]:
    """Record every value FUMO State takes from now on."""
    seen: list[int] = []
    tree.subscribe(STATE, lambda uri: seen.append(tree.get(uri, force=True)))
    return seen


def test_fumo_download_and_update(executor: Executor, port: FakePort, tree: ManagementTree) -> None:
    states = states_of(tree)
    tree.set(f"{FUMO}/fw1/DownloadAndUpdate/PkgURL", PKG)
    result = run(executor, cmd("EXEC", f"{FUMO}/fw1/DownloadAndUpdate", ALERTS), cmd("END"))
    assert result.statuses == [Status(202)]
    assert states == [30, 40, 60, 100]
    assert port.gets == [PKG]
    assert tree.get(FWV) == "2.0.0"
    assert tree.get(f"{FUMO}/fw1/PkgVersion") == "2.0.0"
    assert tree.get(f"{FUMO}/fw1/PkgName") == "acme-fw"
    # Issue 17 points 3 and 6: Data is an object; the alert goes to the EXEC's
    # ServerURI, not to /alert with TargetURI set.
    assert port.alert_urls == [ALERTS]
    assert [a.to_json() for a in port.alerts] == [
        {
            "AlertType": "urn:oma:at:fumo:1.0:DownloadAndUpdate",
            "SourceURI": "urn:oma:mo:oma-fumo:1.0/fw1/DownloadAndUpdate",
            "Mark": "informational",
            "DataType": "int",
            "Data": {"DM1x": 200},
        }
    ]


def test_fumo_answers_202_before_the_job_runs(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    tree.set(f"{FUMO}/fw1/DownloadAndUpdate/PkgURL", PKG)

    async def go() -> tuple[list[int], int, int]:
        result = await executor.run([cmd("EXEC", f"{FUMO}/fw1/DownloadAndUpdate")])
        before = tree.get(STATE)  # nothing has yielded to the job yet
        await executor.drain()
        return codes(result), before, tree.get(STATE)

    assert asyncio.run(go()) == ([202], 10, 100)


def test_drain_waits_for_a_slow_job(tree: ManagementTree, port: FakePort) -> None:
    executor = Executor(tree, port, Behaviour(step_delay=0.01))
    tree.set(f"{FUMO}/fw1/DownloadAndUpdate/PkgURL", PKG)

    async def go() -> tuple[int, int]:
        port.gate, port.at_gate = asyncio.Event(), asyncio.Event()
        await executor.run([cmd("EXEC", f"{FUMO}/fw1/DownloadAndUpdate")])
        await port.at_gate.wait()  # the job is downloading, held at the gate
        during = tree.get(STATE)
        asyncio.get_running_loop().call_soon(port.gate.set)  # once drain() is waiting
        await executor.drain()
        return during, tree.get(STATE)

    assert asyncio.run(go()) == (30, 100)
    assert [result_code(a) for a in port.alerts] == [200]
    assert port.alert_urls == [None] and port.alerts[0].target_uri is None


def test_fumo_download_then_update(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    states = states_of(tree)
    tree.set(f"{FUMO}/fw1/Download/PkgURL", PKG)
    assert codes(run(executor, cmd("EXEC", f"{FUMO}/fw1/Download", ALERTS))) == [202]
    assert states == [30, 40] and tree.get(FWV) == "1.0.0"
    assert codes(run(executor, cmd("EXEC", f"{FUMO}/fw1/Update", ALERTS))) == [202]
    assert states == [30, 40, 60, 100] and tree.get(FWV) == "2.0.0"
    assert [(a.alert_type, a.mark, result_code(a)) for a in port.alerts] == [
        (FUMO_ALERT_TYPES["Download"], "informational", 200),
        (FUMO_ALERT_TYPES["Update"], "informational", 200),
    ]
    # the package was used up: a second Update has nothing to install
    assert codes(run(executor, cmd("EXEC", f"{FUMO}/fw1/Update"))) == [409]


def test_fumo_update_from_pkg_data(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    tree.set(f"{FUMO}/fw1/Update/PkgData", firmware_package("1.1.0").decode())
    assert codes(run(executor, cmd("EXEC", f"{FUMO}/fw1/Update"))) == [202]
    assert tree.get(FWV) == "1.1.0" and tree.get(STATE) == 100
    assert tree.get(f"{FUMO}/fw1/Update/PkgData") == ""
    assert port.gets == []


def test_fumo_update_with_corrupt_pkg_data(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    tree.set(f"{FUMO}/fw1/Update/PkgData", "garbage")
    states = states_of(tree)
    assert codes(run(executor, cmd("EXEC", f"{FUMO}/fw1/Update"))) == [202]
    assert states == [60, 80] and tree.get(FWV) == "1.0.0"
    assert [(a.mark, result_code(a)) for a in port.alerts] == [("critical", 402)]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("remote 404", 500),
        ("network", 503),
        ("behaviour", 503),
        ("bad sha256", 402),
        ("no url", 411),
    ],
)
def test_fumo_download_failures(
    tree: ManagementTree, port: FakePort, setup: str, expected: int
) -> None:
    executor = Executor(tree, port, Behaviour(download_fails=setup == "behaviour"))
    url = PKG
    if setup == "remote 404":
        url = "https://dl.example/missing"
    elif setup == "network":
        port.unreachable.add(PKG)
    elif setup == "bad sha256":
        body = json.loads(port.resources[PKG][1])
        body["sha256"] = hashlib.sha256(b"something else").hexdigest()
        port.resources[PKG] = (200, json.dumps(body).encode(), JSON)
    elif setup == "no url":
        url = ""
    tree.set(f"{FUMO}/fw1/DownloadAndUpdate/PkgURL", url)
    states = states_of(tree)
    assert codes(run(executor, cmd("EXEC", f"{FUMO}/fw1/DownloadAndUpdate", ALERTS))) == [202]
    assert states == [30, 20]
    assert tree.get(FWV) == "1.0.0" and tree.get(f"{FUMO}/fw1/PkgVersion") == "1.0.0"
    (alert,) = port.alerts
    assert (alert.alert_type, alert.mark, result_code(alert), port.alert_urls) == (
        FUMO_ALERT_TYPES["DownloadAndUpdate"],
        "critical",
        expected,
        [ALERTS],
    )


def test_fumo_update_fails(tree: ManagementTree, port: FakePort) -> None:
    executor = Executor(tree, port, Behaviour(update_fails=True))
    tree.set(f"{FUMO}/fw1/DownloadAndUpdate/PkgURL", PKG)
    states = states_of(tree)
    assert codes(run(executor, cmd("EXEC", f"{FUMO}/fw1/DownloadAndUpdate"))) == [202]
    assert states == [30, 40, 60, 80]
    assert tree.get(FWV) == "1.0.0"
    assert [(a.mark, result_code(a)) for a in port.alerts] == [("critical", 410)]
    # a lab can make the device healthy again
    executor.behaviour = Behaviour()
    assert codes(run(executor, cmd("EXEC", f"{FUMO}/fw1/DownloadAndUpdate"))) == [202]
    assert tree.get(FWV) == "2.0.0" and states[-1] == 100


def test_second_exec_while_a_job_runs_is_409(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    tree.set(f"{FUMO}/fw1/DownloadAndUpdate/PkgURL", PKG)

    async def go() -> list[int]:
        port.gate, port.at_gate = asyncio.Event(), asyncio.Event()
        first = await executor.run([cmd("EXEC", f"{FUMO}/fw1/DownloadAndUpdate")])
        await port.at_gate.wait()  # the job started and waits in http_get
        second = await executor.run([cmd("EXEC", f"{FUMO}/fw1/Download"), cmd("GET", STATE)])
        port.gate.set()
        await executor.drain()
        return codes(first) + codes(second) + [second.statuses[1].data]

    assert asyncio.run(go()) == [202, 409, 200, 30]
    assert tree.get(STATE) == 100 and len(port.alerts) == 1


def test_failing_alert_is_logged(executor: Executor, port: FakePort, tree: ManagementTree) -> None:
    async def refuse(alert: Alert, url: str | None = None) -> None:
        raise ConnectionError("server down")

    port.alert = refuse  # type: ignore[method-assign]
    tree.set(f"{FUMO}/fw1/DownloadAndUpdate/PkgURL", PKG)
    assert codes(run(executor, cmd("EXEC", f"{FUMO}/fw1/DownloadAndUpdate"))) == [202]
    assert tree.get(FWV) == "2.0.0"
    assert any("failed (ConnectionError: server down)" in line for line in executor.history)


# -- SUB / UNSUB -----------------------------------------------------------


def puts_to(port: FakePort, url: str) -> list[Any]:
    return [modata(body) for method, u, body, _ in port.sent if method == "PUT" and u == url]


def test_sub_puts_the_subtree_on_change(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    hook = "https://s/changed"
    port.resources["https://s/v"] = (200, b"eco", "text/plain")
    result = run(
        executor, cmd("SUB", SETTINGS, hook), cmd("SUB", SETTINGS, hook)
    )  # twice: one subscription
    assert codes(result) == [200, 200] and port.sent == []
    assert executor.subscriptions == [(SETTINGS, hook)]
    run(executor, cmd("HGET", "https://s/v", f"{SETTINGS}/Mode"), cmd("DELETE", f"{SETTINGS}/Mode"))
    assert puts_to(port, hook) == [
        {SETTINGS: {"Settings": {"Mode": "eco"}}},
        {SETTINGS: {"Settings": {}}},
    ]
    assert all(ct == JSON for *_, ct in port.sent)


def test_sub_follows_a_fumo_job(executor: Executor, port: FakePort, tree: ManagementTree) -> None:
    hook = "https://s/fumo"
    tree.set(f"{FUMO}/fw1/DownloadAndUpdate/PkgURL", PKG)
    run(executor, cmd("SUB", STATE, hook), cmd("EXEC", f"{FUMO}/fw1/DownloadAndUpdate"))
    assert puts_to(port, hook) == [{STATE: {"State": s}} for s in (30, 40, 60, 100)]


def test_sub_of_a_deleted_node_sends_nothing(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    tree.set(f"{SETTINGS}/Tmp", 1)
    run(executor, cmd("SUB", f"{SETTINGS}/Tmp", "https://s/h"), cmd("DELETE", f"{SETTINGS}/Tmp"))
    assert puts_to(port, "https://s/h") == [{}]


def test_sub_errors(executor: Executor) -> None:
    result = run(
        executor,
        cmd("SUB", f"{DMACC}/lab-server/Auth/Trsp/Secret", "https://s/h"),
        cmd("SUB", f"{SETTINGS}/Nope", "https://s/h"),
        cmd("SUB", "bad", "https://s/h"),
        cmd("UNSUB", SETTINGS, "https://s/h"),
    )
    assert codes(result) == [403, 404, 400, 404]
    assert executor.subscriptions == []


def test_unsub_stops_notifications(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    result = run(
        executor, cmd("SUB", SETTINGS, "https://s/h"), cmd("UNSUB", SETTINGS + "/", "https://s/h")
    )
    assert codes(result) == [200, 200]
    tree.set(f"{SETTINGS}/A", 1)
    run(executor)
    assert port.sent == []


def run_bounded(executor: Executor, go: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """``asyncio.run(go())`` in a thread, so a drain that spins fails the test, not hangs it."""
    finished = concurrent.futures.Future[None]()

    def main() -> None:
        try:
            finished.set_result(asyncio.run(go()))
        except BaseException as exc:
            finished.set_exception(exc)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    try:
        finished.result(timeout=60)
    except TimeoutError:
        executor._tasks.clear()  # the spinning loop re-reads this set: end it, then fail
        thread.join(10)
        pytest.fail("drain() never returned: its loop spun without yielding")


def test_drain_just_after_a_task_finished_returns(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    """The task is done but its done callbacks are still queued behind us: on 3.12+
    gathering finished tasks does not yield, so drain must not wait on them."""

    async def go() -> None:
        await executor.run([cmd("SUB", SETTINGS, "https://s/h")])
        tree.set(f"{SETTINGS}/A", 1)  # starts the sender task
        # One turn of the loop (FIFO, not a timing guess): the sender runs to its end,
        # and its done callbacks are queued after this coroutine's next step.
        await asyncio.sleep(0)
        await executor.drain()

    run_bounded(executor, go)
    assert puts_to(port, "https://s/h") == [{SETTINGS: {"Settings": {"A": 1}}}]


def test_change_from_another_thread_is_sent(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    async def go() -> None:
        await executor.run([cmd("SUB", SETTINGS, "https://s/h")])
        await asyncio.to_thread(tree.set, f"{SETTINGS}/A", 1)
        await executor.drain()

    run_bounded(executor, go)
    assert puts_to(port, "https://s/h") == [{SETTINGS: {"Settings": {"A": 1}}}]


def test_change_while_no_loop_runs_is_sent_by_drain(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    run(executor, cmd("SUB", SETTINGS, "https://s/h"))
    tree.set(f"{SETTINGS}/A", 1)  # the loop that ran SUB is closed
    assert port.sent == []
    asyncio.run(executor.drain())
    assert puts_to(port, "https://s/h") == [{SETTINGS: {"Settings": {"A": 1}}}]


def test_failing_notification_is_logged(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    port.unreachable.add("https://down/")
    run(executor, cmd("SUB", SETTINGS, "https://down/"), cmd("SUB", SETTINGS, "https://s/h"))
    tree.set(f"{SETTINGS}/A", 1)
    asyncio.run(executor.drain())
    assert puts_to(port, "https://s/h") == [{SETTINGS: {"Settings": {"A": 1}}}]
    assert any(line.startswith("SUB notify https://down/ failed") for line in executor.history)


def test_close_drops_subscriptions(
    executor: Executor, port: FakePort, tree: ManagementTree
) -> None:
    run(executor, cmd("SUB", SETTINGS, "https://s/h"))
    executor.close()
    assert executor.subscriptions == []
    tree.set(f"{SETTINGS}/A", 1)
    asyncio.run(executor.drain())
    assert port.sent == []


# -- firmware packages -----------------------------------------------------


def test_firmware_package_round_trip() -> None:
    package = parse_package(firmware_package("2.0.0", b"\x00\x01image", name="fw"))
    assert (package.version, package.name, package.image) == ("2.0.0", "fw", b"\x00\x01image")
    assert parse_package(b'{"version": "1.2"}').image == b""


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        b"{}",
        b'{"version": 2}',
        b'{"version": "1", "name": 3}',
        b'{"version": "1", "image": "***"}',
        b'{"version": "1", "image": "", "size": 4}',
        b'{"version": "1", "sha256": "00"}',
        b"\xff\xfe",
    ],
)
def test_bad_packages(body: bytes) -> None:
    with pytest.raises(PackageError):
        parse_package(body)
