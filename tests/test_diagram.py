"""The sequence diagram of a known list of exchanges: arrows, escaping, valid SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

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
    elapsed: float = 0.0,
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
        elapsed,
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
        elapsed=1.5,  # in flight when the notification (1 s earlier) went out
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
    """SVG and text only: JupyterLab writes what it draws from ``text/vnd.mermaid`` back
    into the notebook, which then shows as modified as soon as it is opened (finding 9)."""
    diagram = SequenceDiagram(FLOW)
    bundle = diagram._repr_mimebundle_()
    assert set(bundle) == {"image/svg+xml", "text/plain"}
    assert bundle["text/plain"] == repr(diagram) == text(FLOW)
    assert diagram.mermaid().startswith("sequenceDiagram\n")


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


# Where a notification goes: inside the request in flight for its session --------


def test_a_device_request_that_queues_a_session_holds_its_notification() -> None:
    """Finding 2: the request that caused it may come from a device (the browser
    component without its Accept header); the notification still sits inside it."""
    notify = FLOW[0]
    queued = ex(
        2,
        "device",
        "POST",
        f"/devices/{DEV}/sessions",
        202,
        session=SID1,
        response="queued; device notified",
        elapsed=1.5,
    )
    started = ex(3, "device", "POST", "/sessions/next", 200, session=SID1, elapsed=0.5)
    assert [(a.kind, a.seq) for a in arrows([notify, queued, started])] == [
        ("request", 2),
        ("notify", 1),
        ("return", 2),
        ("request", 3),
        ("return", 3),
    ]


def test_a_request_that_began_after_the_notification_does_not_hold_it() -> None:
    """The device's own call for the notified session starts after the notification
    reached it, so the notification stays before it, whatever the trace order."""
    notify = FLOW[0]
    answer = ex(2, "device", "POST", "/sessions/next", 200, session=SID1, elapsed=0.5)
    assert [a.kind for a in arrows([notify, answer])] == ["notify", "request", "return"]


def test_a_request_of_another_session_does_not_hold_it() -> None:
    other = ex(2, "operator", "POST", "/x", 202, session=SID2, elapsed=5)
    assert [a.kind for a in arrows([FLOW[0], other])] == ["notify", "request", "return"]


# What the pictures show --------------------------------------------------------


INSPECTION = [
    ex(10, "operator", "GET", "/sessions/pending", 200, response="1 pending"),
    ex(11, "operator", "GET", "/sessions/completed", 200, response="0 completed"),
]


def test_the_operators_reads_are_not_part_of_the_flow() -> None:
    """Finding 7: the notebook's own look at the session lists stays out of the diagram."""
    from dmlab.trace import Trace

    trace = Trace(clock=lambda: 0.0)
    trace.record(source="operator", method="POST", path="/devices/x/sessions", status=202)
    trace.record(source="operator", method="GET", path="/sessions/pending", status=200)
    trace.record(source="device", method="GET", path="/sessions/pending", status=200)
    drawn = [a.label for a in SequenceDiagram.of(trace).arrows if a.kind == "request"]
    assert drawn == ["POST /devices/x/sessions", "GET /sessions/pending"]
    every = SequenceDiagram.of(trace, inspection=True).arrows
    assert len([a for a in every if a.kind == "request"]) == 3


def test_the_crs_figure_names_the_crs_parties_and_nothing_else() -> None:
    from dmlab.trace import Trace

    trace = Trace(clock=lambda: 0.0)
    for e in [*FLOW, *INSPECTION]:
        trace.record(
            source=e.source,
            target=e.target,
            dev_id=e.dev_id,
            method=e.method,
            path=e.path,
            status=e.status,
            session=e.session,
            request=e.request,
            response=e.response,
        )
    trace.record(source="browser", method="POST", path=f"/devices/{DEV}/sessions", status=202)
    figure = SequenceDiagram.figure(trace, title="Figure 1: Server Initiated Session")
    assert lifelines(figure.arrows) == ["DM Client", "Browser", "DM Server"]
    assert not [a for a in figure.arrows if "operator" in (a.source, a.target)]
    assert figure.text().splitlines()[:3] == [
        "Figure 1: Server Initiated Session",
        "sequence diagram: 9 arrows; lifelines: DM Client, Browser, DM Server",
        "DM Server -) DM Client: package 0 · DM Notification id=1 (50 bytes)",
    ]
    assert figure.mermaid().startswith(
        '---\ntitle: "Figure 1: Server Initiated Session"\n---\nsequenceDiagram\n'
        "    participant P1 as DM Client\n"
    )
    root = ET.fromstring(figure.svg())
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts[0] == "Figure 1: Server Initiated Session" and "DM Server" in texts


# Export -------------------------------------------------------------------------


def test_save_writes_svg_png_and_mermaid_by_suffix(tmp_path) -> None:
    diagram = SequenceDiagram(FLOW, title="Figure")
    assert diagram.save(tmp_path / "f.svg").read_text() == diagram.svg()
    assert diagram.save(tmp_path / "f.mmd").read_text() == diagram.mermaid()
    png = diagram.save(tmp_path / "f.PNG").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # IHDR: the picture is the SVG's size, doubled for slides.
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    root = ET.fromstring(diagram.svg())
    assert (width, height) == (
        round(float(root.get("width", 0)) * 2),
        round(float(root.get("height", 0)) * 2),
    )
    with pytest.raises(ValueError, match=r"'\.pdf'.*\.svg, \.png or \.mmd"):
        diagram.save(tmp_path / "f.pdf")
    assert not (tmp_path / "f.pdf").exists()


def test_the_png_shows_the_labels_in_ink() -> None:
    """The labels have a white halo under dark text: in the PNG, the band above an
    arrow holds dark pixels (a halo painted over the text would leave it white)."""
    import io

    import cairocffi  # comes with CairoSVG; reads the PNG back as pixels

    lone = ex(1, "device", "POST", "/alert", 204)
    surface = cairocffi.ImageSurface.create_from_png(
        io.BytesIO(SequenceDiagram([lone]).png(scale=1))
    )
    root = ET.fromstring(svg([lone]))
    line = next(root.iter("{http://www.w3.org/2000/svg}line"))  # the lifeline comes first
    arrow = next(e for e in root.iter("{http://www.w3.org/2000/svg}line") if e.get("marker-end"))
    y = round(float(arrow.get("y1", 0)))
    x1, x2 = sorted(round(float(arrow.get(k, 0))) for k in ("x1", "x2"))
    assert line is not arrow
    stride, data = surface.get_stride(), bytes(surface.get_data())
    dark = sum(
        1
        for row in range(y - 16, y - 4)
        for col in range(x1 + 10, x2 - 10)
        if max(data[row * stride + 4 * col : row * stride + 4 * col + 3]) < 128
    )
    assert dark > 20, dark  # "POST /alert" leaves ~35 at scale 1; a hidden label 0


def test_trace_table_is_narrow_and_shortens_session_ids() -> None:
    """Finding 5: the notebook's trace table keeps to what fits, ids shortened."""
    from dmlab.trace import Trace

    trace = Trace(clock=lambda: 0.0)
    for e in FLOW:
        trace.record(
            source=e.source,
            target=e.target,
            dev_id=e.dev_id,
            method=e.method,
            path=e.path,
            status=e.status,
            session=e.session,
            request=e.request,
            response=e.response,
        )
    table = trace.table()
    assert list(table.columns) == ["from → to", "request", "status", "sent", "answered"]
    assert table.loc[4, "request"] == "PUT /sessions/id/01234567…"
    assert table.loc[4, "answered"] == "SessionID fedcba98…: HGET EXEC END"
    assert "dev_id" in trace.table(dev_id=True).columns
    assert SID1 not in table.to_string()
