"""The README's map of the code and its notebook table cannot drift from the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
NUMBERS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
]


def _layout_block() -> str:
    section = README.split("## What is where", 1)[1]
    return section.split("```", 2)[1]


def _modules() -> set[str]:
    package = ROOT / "dmlab"
    names = {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()}
    names |= {p.name for p in package.glob("*.py") if not p.name.startswith("_")}
    return names


def test_the_map_names_every_package_and_module_of_dmlab() -> None:
    named = set(re.findall(r"^  (\S+)", _layout_block(), flags=re.MULTILINE))
    assert named == _modules()


def test_the_map_names_every_top_level_directory() -> None:
    named = set(re.findall(r"^(\w+/)", _layout_block(), flags=re.MULTILINE))
    on_disk = {f"{p.name}/" for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert named <= on_disk
    assert {"dmlab/", "notebooks/", "tests/", "benchmarks/", "tools/"} <= named


def test_the_notebook_table_lists_every_notebook_and_counts_them() -> None:
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
    listed = re.findall(r"^\| \[([\w-]+)\]\(notebooks/\1\.ipynb\)", README, flags=re.MULTILINE)
    assert listed == notebooks
    assert f"runs all {NUMBERS[len(notebooks)]} under nbval" in README
