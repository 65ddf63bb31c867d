"""Strip what an executed notebook should not keep: stored widget state
(``metadata.widgets``, ~65 KB a notebook that JupyterLab never shows) and
nbclient's per-cell timings (``metadata.execution``, noise in every diff).

    .venv/bin/python tools/tidy_notebooks.py notebooks/*.ipynb

New executions keep neither (``jupyter_nbconvert_config.json``, installed into
``.venv/etc/jupyter`` by ``make``); this cleans notebooks executed before.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat


def tidy(path: Path) -> bool:
    """Strip ``path`` in place; whether anything changed."""
    notebook = nbformat.read(path, as_version=4)
    changed = notebook.metadata.pop("widgets", None) is not None
    for cell in notebook.cells:
        changed |= cell.metadata.pop("execution", None) is not None
    if changed:
        nbformat.write(notebook, path)
    return changed


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(("tidied " if tidy(Path(name)) else "already tidy ") + name)
