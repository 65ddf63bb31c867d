"""The ▸ lab choice markers in the notebooks (issue 12): what a marker says a choice is
comes from the registry, between ``<!-- choice:ID -->`` and ``<!-- /choice -->``, and
``python -m dmlab.choices`` refills it; a test fails when a notebook's copy drifts."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from dmlab import choices as registry
from dmlab.choices import MARKER_SPAN, marker
from dmlab.protocol.provenance import choice

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

#: A bullet that defines a choice: "* **▸ lab choice `id` — title.**" or "* **Title** (`id`)."
DEFINING = re.compile(r"^\* \*\*(?:▸ lab choice `([a-z0-9-]+)` —|[^*]+\*\* \(`([a-z0-9-]+)`\)\.)")


def _bullets(path: Path) -> list[str]:
    """The Markdown cells' bullets, each with its continuation lines."""
    bullets: list[str] = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for line in "".join(cell["source"]).splitlines():
            if line.startswith("* "):
                bullets.append(line)
            elif line.startswith("  ") and bullets:
                bullets[-1] += "\n" + line
    return bullets


def test_a_marker_says_what_the_registry_says():
    text = marker("browser-entry")
    c = choice("browser-entry")
    assert c.reading in text and c.other in text
    assert "`device-sessions` (default), `sessions-next`" in text


def test_every_marker_span_in_the_notebooks_is_the_registrys_text():
    spans = [
        (path.name, m[1], m[2])
        for path in NOTEBOOKS
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]
        if cell["cell_type"] == "markdown"
        for m in MARKER_SPAN.finditer("".join(cell["source"]))
    ]
    assert len(spans) >= 13
    drifted = [(name, cid) for name, cid, text in spans if text != marker(cid)]
    assert not drifted
    assert registry.main(["--check"]) == 0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_defining_marker_bullet_carries_the_generated_text(path: Path):
    for bullet in _bullets(path):
        found = DEFINING.match(bullet)
        if found:
            cid = found[1] or found[2]
            assert f"<!-- choice:{cid} -->" in bullet, f"{path.name}: {bullet[:80]}"


def test_a_drifted_marker_is_caught_and_refilled(tmp_path: Path):
    copy = tmp_path / "01-tour.ipynb"
    shutil.copy(ROOT / "notebooks" / "01-tour.ipynb", copy)
    text = copy.read_text(encoding="utf-8")
    edited = text.replace(marker("abort-path"), "The lab's reading: whatever the notebook says.")
    assert edited != text
    copy.write_text(edited, encoding="utf-8")
    assert registry._notebook_markers(copy, write=False) is True
    assert registry._notebook_markers(copy, write=True) is True
    assert copy.read_text(encoding="utf-8") == text
