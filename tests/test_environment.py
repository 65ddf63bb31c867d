"""environment.yml must build the environment pyproject.toml describes (conda cannot run here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_installs_this_package_with_every_extra() -> None:
    text = (ROOT / "environment.yml").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = re.search(r"python=(\d+\.\d+)", text)
    assert pinned, "environment.yml pins no Python"
    least = re.match(r">=(\d+\.\d+)", project["requires-python"])
    assert least and tuple(map(int, pinned.group(1).split("."))) >= tuple(
        map(int, least.group(1).split("."))
    )
    pip_line = re.search(r"-e \.\[([a-z,]+)\]", text)
    assert pip_line, "environment.yml does not pip-install this checkout"
    assert set(pip_line.group(1).split(",")) == set(project["optional-dependencies"])
    assert "conda-forge" in text
