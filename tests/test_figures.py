"""The CR's Figures 1-4, each from a real run of its flow: the CR's parties only."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmlab import Lab
from dmlab.diagram import lifelines
from dmlab.figures import CAPTIONS, figure, save_figures

from helpers import HASH_COST


def test_each_figure_shows_its_flow_between_the_crs_parties(tmp_path: Path) -> None:
    with Lab(hash_cost=HASH_COST) as lab:
        lab.add_device("IMEI:490154203237518")
        drawn = {n: figure(lab, n) for n in CAPTIONS}
        kinds = {n: [(a.kind, a.label.split(" · ")[0]) for a in d.arrows] for n, d in drawn.items()}
        assert kinds[1] == [
            ("notify", "package 0"),
            ("request", "POST /sessions/next"),
            ("return", "200 OK"),
            ("request", "PUT /sessions/id/" + kinds[1][3][1].rsplit("/", 1)[1]),
            ("return", "204 No Content"),
        ]
        assert [k for k, _ in kinds[2]] == ["request", "return", "request", "return"]
        assert kinds[2][0][1] == "POST /alert"
        assert lifelines(drawn[3].arrows) == ["DM Client", "Browser component", "DM Server"]
        assert [k for k, _ in kinds[4]][:3] == [
            "request",
            "notify",
            "return",
        ]  # sent while answering
        assert lifelines(drawn[4].arrows) == ["DM Client", "Browser", "DM Server"]
        for n, d in drawn.items():
            assert d.title == CAPTIONS[n]
            assert not {"operator", "server", "device"} & set(lifelines(d.arrows))
        saved = save_figures(lab, tmp_path / "figures")
        assert sorted(p.name for p in saved) == sorted(
            f"figure-{n}{suffix}" for n in CAPTIONS for suffix in (".svg", ".png", ".mmd")
        )
        assert all(p.stat().st_size > 100 for p in saved)
        with pytest.raises(ValueError, match="figures 1 to 4"):
            figure(lab, 5)
