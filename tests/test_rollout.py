"""The staged rollout stops by itself when a group fails too often."""

from __future__ import annotations

from dmlab import Lab
from dmlab.device import Behaviour
from dmlab.device.objects import FumoResult
from dmlab.rollout import split_groups, staged_rollout

CHEAP = {"n": 2**4, "r": 8, "p": 1}


def test_split_groups_is_deterministic_and_complete() -> None:
    ids = [f"IMEI:35209900000{i:04d}" for i in range(100)]
    groups = split_groups(ids, (0.05, 0.20, 0.75), seed=7)
    assert [(name, len(members)) for name, members in groups] == [
        ("5%", 5),
        ("20%", 20),
        ("75%", 75),
    ]
    assert sorted(d for _, members in groups for d in members) == sorted(ids)
    assert groups == split_groups(ids, (0.05, 0.20, 0.75), seed=7)


def test_rollout_continues_past_a_healthy_group_and_stops_at_a_failing_one() -> None:
    with Lab(hash_cost=CHEAP) as lab:
        healthy = [lab.add_device(f"IMEI:10000000000000{i}").dev_id for i in range(3)]
        failing = [
            lab.add_device(
                f"IMEI:20000000000000{i}", behaviour=Behaviour(update_fails=i < 2)
            ).dev_id
            for i in range(3)
        ]
        untouched = [lab.add_device("IMEI:300000000000000").dev_id]
        seen: list[tuple[int, int]] = []
        outcomes = staged_rollout(
            lab,
            [("a", healthy), ("b", failing), ("c", untouched)],
            version="2.0.0",
            max_failure_rate=0.5,
            timeout=20,
            progress=lambda done, total: seen.append((done, total)),
        )
        lab.settle()
        assert [o.decision for o in outcomes] == ["continue", "stop: 66.7% > 50%", "not run"]
        assert all(code == FumoResult.SUCCESSFUL for code in outcomes[0].codes.values())
        assert sorted(outcomes[1].codes.values()) == [
            FumoResult.SUCCESSFUL,
            FumoResult.UPDATE_FAILED,
            FumoResult.UPDATE_FAILED,
        ]
        assert not outcomes[2].ran
        assert lab.devices[untouched[0]].firmware == "1.0.0"
        assert {lab.devices[d].firmware for d in healthy} == {"2.0.0"}
        assert seen[-1] == (6, 7) and all(t == 7 for _, t in seen)
