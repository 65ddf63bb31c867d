"""The sequence diagram of a known list of exchanges: arrows, escaping, valid SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from dmlab.diagram import SequenceDiagram, arrows, lifelines, mermaid, svg, text
from dmlab.trace import Exchange

DEV = "IMEI:490154203237518"
SID1 = "0123456789abcdef"
SID2 = "fedcba9876543210"


def ex(
    seq: int,
    source: str,
    method: str,
    path: str,
    status: int,
    *,
    target: str = "server",
    session: str = "",
    request: str = "",
    response: str = "",
    dev_id: str = DEV,
) -> Exchange:
    return Exchange(
        seq,
        1_700_000_000.0 + seq,
        source,
        target,
        dev_id,
        method,
        path,
        status,
        session,
        request,
        response,
    )


FLOW = [
    # The notification is recorded before the request that caused it (the trace
    # records a request when its answer goes out).
    ex(
        1,
        "server",
        "NOTIFY",
        "package 0",
        0,
        target="device",
        session=SID1,
        request="DM Notification id=1 (50 bytes)",
    ),
    ex(
        2,
        "operator",
        "POST",
        f"/devices/{DEV}/sessions",
        202,
        session=SID1,
        request="job firmware-update",
        response=f"queued {SID1}; device notified",
    ),
    ex(
        3,
        "device",
        "POST",
        "/sessions/next",
        200,
        session=SID1,
        request="ServerInitiatedMgmt(1)",
        response=f"SessionID {SID1}: GET×2",
    ),
    ex(
        4,
        "device",
        "PUT",
        f"/sessions/id/{SID1}",
        200,
        session=SID2,
        request="Status 200 200",
        response=f"SessionID {SID2}: HGET EXEC END",
    ),
    ex(
        5,
        "device",
        "PUT",
        f"/sessions/id/{SID2}",
        204,
        session=SID2,
        request="Status 200 202",
        response="end (OK)",
    ),
]


def test_one_arrow_per_request_and_a_return_with_the_status() -> None:
    assert text(FLOW).splitlines() == [
        "sequence diagram: 9 arrows; lifelines: device, operator, server",
        f"operator -> server: POST /devices/{DEV}/sessions · job firmware-update",
        "server -) device: package 0 · DM Notification id=1 (50 bytes)",
        "server --> operator: 202 Accepted · queued 01234567…; device notified",
        "device -> server: POST /sessions/next · ServerInitiatedMgmt(1)",
        "server --> device: 200 OK · SessionID 01234567…: GET×2",
        "device -> server: PUT /sessions/id/01234567… · Status 200 200",
        "server --> device: 200 OK · SessionID fedcba98…: HGET EXEC END",
        "device -> server: PUT /sessions/id/fedcba98… · Status 200 202",
        "server --> device: 204 No Content · end (OK)",
    ]
    kinds = [a.kind for a in arrows(FLOW)]
    assert kinds.count("request") == kinds.count("return") == 4
    assert kinds.count("notify") == 1


def test_a_notification_without_its_request_stays_where_it_is() -> None:
    alone = [FLOW[0], FLOW[2]]
    assert [str(a).split(":")[0] for a in arrows(alone)] == [
        "server -) device",
        "device -> server",
        "server --> device",
    ]


def test_only_present_lifelines_in_role_order() -> None:
    assert lifelines(arrows(FLOW[2:])) == ["device", "server"]
    browser = ex(9, "browser", "POST", f"/devices/{DEV}/sessions", 202)
    component = ex(10, "browser-component", "POST", f"/devices/{DEV}/sessions", 201)
    assert lifelines(arrows([browser, component, FLOW[1]])) == [
        "browser-component",
        "browser",
        "operator",
        "server",
    ]


def test_several_devices_get_a_lifeline_each() -> None:
    other = ex(6, "device", "POST", "/alert", 204, dev_id="IMEI:356938035643809")
    assert lifelines(arrows([FLOW[2], other])) == [
        "device IMEI:356938035643809",
        f"device {DEV}",
        "server",
    ]


def test_mermaid_text_and_escaping() -> None:
    hostile = ex(
        7, "operator", "POST", "/x", 400, request="a;b #c <d> e%f", response="bad: <script>; #1"
    )
    out = mermaid([hostile])
    assert out.splitlines() == [
        "sequenceDiagram",
        "    participant P1 as operator",
        "    participant P2 as server",
        "    P1->>P2: POST /x · a#59;b #35;c #lt;d#gt; e#37;f",
        "    P2-->>P1: 400 Bad Request · bad: #lt;script#gt;#59; #35;1",
    ]
    flow = mermaid(FLOW)
    assert "P3-)P1: package 0" in flow and "P3-->>P2: 202 Accepted" in flow
    assert "participant P1 as device" in flow


def test_participant_labels_escape_colons() -> None:
    other = ex(6, "device", "POST", "/alert", 204, dev_id="IMEI:1")
    assert "participant P1 as device IMEI#58;1" in mermaid([FLOW[2], other])


def test_svg_is_well_formed_and_escaped() -> None:
    hostile = ex(7, "operator", "POST", "/x", 400, request="<b>&amp;", response="]]> </svg>")
    root = ET.fromstring(svg([*FLOW, hostile]))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "POST /x · <b>&amp;" in texts
    assert "400 Bad Request · ]]> </svg>" in texts
    assert not root.findall(".//{http://www.w3.org/2000/svg}script")


def test_svg_is_deterministic_and_wide_enough() -> None:
    assert svg(FLOW) == svg(list(FLOW))
    root = ET.fromstring(svg(FLOW))
    assert (
        float(root.get("width", 0)) > len(f"POST /devices/{DEV}/sessions · job firmware-update") * 7
    )


def test_empty_trace() -> None:
    assert text([]) == "sequence diagram: 0 arrows; lifelines: none"
    ET.fromstring(svg([]))
    assert mermaid([]) == "sequenceDiagram\n"


def test_mimebundle() -> None:
    diagram = SequenceDiagram(FLOW)
    bundle = diagram._repr_mimebundle_()
    assert set(bundle) == {"text/vnd.mermaid", "image/svg+xml", "text/plain"}
    assert bundle["text/plain"] == repr(diagram) == text(FLOW)
    assert bundle["text/vnd.mermaid"].startswith("sequenceDiagram\n")


def test_of_a_trace_since_a_marker() -> None:
    from dmlab.trace import Trace

    trace = Trace(clock=lambda: 0.0)
    trace.record(source="operator", method="GET", path="/devices", status=200)
    marker = trace.last_seq
    trace.record(source="device", method="POST", path="/alert", status=204, dev_id=DEV)
    assert [a.label for a in SequenceDiagram.of(trace, marker).arrows] == [
        "POST /alert",
        "204 No Content",
    ]


def test_long_labels_are_clipped() -> None:
    long = ex(8, "device", "POST", "/alert", 204, request="x" * 500)
    label = arrows([long])[0].label
    assert len(label) == 90 and label.endswith("…")
