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


def test_classifiers_declare_every_python_from_the_oldest_supported() -> None:
    """CI tests the oldest and newest classifier (.ci/run): they must match requires-python."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = sorted(
        tuple(map(int, c.rsplit(" ", 1)[1].split(".")))
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    )
    least = re.match(r">=(\d+)\.(\d+)", project["requires-python"])
    assert least and declared, "no minimum Python or no version classifiers"
    assert declared[0] == (int(least.group(1)), int(least.group(2)))
    assert declared == [(3, minor) for minor in range(declared[0][1], declared[-1][1] + 1)]
