"""The stored notebooks themselves: what a teacher opens must be small and clean."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
TIDY = "run: .venv/bin/python tools/tidy_notebooks.py notebooks/*.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_stored_widget_state_or_cell_timings(path: Path) -> None:
    """Widget state (~65 KB a notebook, never shown) and nbclient's timings stay out."""
    notebook = nbformat.read(path, as_version=4)
    assert "widgets" not in notebook.metadata, TIDY
    timed = [i for i, cell in enumerate(notebook.cells) if "execution" in cell.metadata]
    assert not timed, f"cells {timed} keep execution timings; {TIDY}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_output_that_jupyterlab_rewrites_on_opening(path: Path) -> None:
    """JupyterLab's Mermaid renderer stores the SVG it draws into the output it renders,
    so a stored ``text/vnd.mermaid`` output marks the notebook modified on opening."""
    notebook = nbformat.read(path, as_version=4)
    mermaid = [
        i
        for i, cell in enumerate(notebook.cells)
        for output in cell.get("outputs", [])
        if "text/vnd.mermaid" in output.get("data", {})
    ]
    assert not mermaid, f"cells {mermaid} store Mermaid output; re-execute the notebook"
