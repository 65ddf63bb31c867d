"""Weighing the readings for a contribution (issue 12): every switchable choice has a
flow that shows where its options differ, every option names the risk it leaves, and
``dmlab.compare.weigh`` measures each option in a lab of its own."""

from __future__ import annotations

import pytest

from dmlab.choices import SWITCHABLE
from dmlab.compare import WEIGHED, browser_initiated, compare, markdown, weigh

from helpers import HASH_COST


def test_every_switchable_option_names_the_risk_it_leaves():
    missing = [f"{c.id}={o.value}" for c in SWITCHABLE for o in c.options if not o.risk]
    assert not missing


def test_every_switchable_choice_has_a_flow_that_weighs_it():
    assert set(WEIGHED) == {c.id for c in SWITCHABLE}


def test_browser_entry_compared_the_browser_posts_elsewhere_and_the_device_does_the_same():
    weighed = compare(
        browser_initiated,
        {"browser-entry": "device-sessions"},
        {"browser-entry": "sessions-next"},
        hash_cost=HASH_COST,
    )
    under_device, at_next = weighed.a.diagram.text(), weighed.b.diagram.text()
    assert "browser -> server: POST /devices/IMEI:490154203237518/sessions · job" in under_device
    assert "browser -> server: POST /sessions/next · job inventory" in at_next
    table = weighed.table()
    for label in ("browser-entry=device-sessions", "browser-entry=sessions-next"):
        column = table[label]
        assert column["session result"] == "OK"
        assert column["round trips (browser)"] == 2  # the page, then its form
        assert column["round trips (device)"] == 3  # package 0, package 1, package 3
    device_rows = ["round trips (device)", "bytes (device bodies, both ways)"]
    assert list(table.loc[device_rows, table.columns[0]]) == list(
        table.loc[device_rows, table.columns[1]]
    )


@pytest.fixture(scope="module")
def weighed():
    return weigh(["put-retry", "browser-entry", "notification-transport"], hash_cost=HASH_COST)


def test_weigh_measures_every_option_in_a_run_of_its_own(weighed):
    rows = {(r["choice"], r["option"]): r for r in weighed.to_dict("records")}
    assert list(rows) == [
        ("put-retry", "replay (default)"),
        ("put-retry", "conflict"),
        ("notification-transport", "long-poll (default)"),
        ("notification-transport", "sse"),
        ("notification-transport", "none"),
        ("browser-entry", "device-sessions (default)"),
        ("browser-entry", "sessions-next"),
    ]
    assert rows["put-retry", "replay (default)"]["session result"] == "OK"
    # Refused, the retry leaves the device lost; resuming (the default) gets it going.
    assert rows["put-retry", "conflict"]["session result"] == "OK"
    assert (
        rows["put-retry", "conflict"]["round trips"]
        == rows["put-retry", "replay (default)"]["round trips"] + 1
    )
    assert rows["put-retry", "conflict"]["departs from the CR"] == "TP/HTTP/IDEM/001"
    # The timer's reading fetches no package 0: one round trip fewer, fewer bytes.
    polled = rows["notification-transport", "long-poll (default)"]
    timer = rows["notification-transport", "none"]
    assert timer["round trips"] == polled["round trips"] - 1 and timer["bytes"] < polled["bytes"]
    entries = [rows["browser-entry", o] for o in ("device-sessions (default)", "sessions-next")]
    assert {r["round trips"] for r in entries} == {5} and {
        r["session result"] for r in entries
    } == {"OK"}
    for (choice_id, option), row in rows.items():
        c = next(c for c in SWITCHABLE if c.id == choice_id)
        assert row["risk"] == c.option(option.removesuffix(" (default)")).risk


def test_the_table_pastes_as_markdown(weighed):
    text = markdown(weighed)
    lines = text.splitlines()
    assert lines[0].startswith("| choice | option | departs from the CR | flow | round trips")
    assert len(lines) == 2 + len(weighed)
    assert "| put-retry | conflict | TP/HTTP/IDEM/001 |" in text


def test_weigh_session_resume_and_active_listing():
    weighed = weigh(["session-resume", "active-listing"], hash_cost=HASH_COST)
    rows = {(r["choice"], r["option"]): r for r in weighed.to_dict("records")}
    assert rows["session-resume", "next (default)"]["session result"] == "OK"
    assert rows["session-resume", "none"]["session result"] == "active (never completed)"
    assert rows["active-listing", "own-resource (default)"]["session result"] == "OK"
    assert rows["active-listing", "hidden"]["session result"] == "OK"
