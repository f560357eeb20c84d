"""`quantstrip.research.sweep` from a notebook: a real kernel (whose own event loop is running)
runs a sweep on the in-process cluster and shows a widget progress bar."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from support.research import write_notebook

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CELL = """
from quantstrip.research import sweep
result = sweep({path!r}, {{"fast": [1, 2, 3]}}, workers=2)
ran = result.outcome.ran
statuses = sorted(result.results()["status"])
print(ran, statuses)
"""


def test_a_sweep_started_in_a_notebook_runs_and_shows_a_widget_progress_bar(
    workspace: Path,
) -> None:
    target = write_notebook(workspace / "notebooks" / "tiny.ipynb", "fast = 1", "x = fast * 2")
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(CELL.format(path=str(target)))]
    )
    NotebookClient(
        notebook,
        timeout=480,
        kernel_name="python3",
        resources={"metadata": {"path": str(workspace)}},
    ).execute()
    outputs = notebook.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"], outputs
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "3 ['success', 'success', 'success']" in text
    widgets = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert widgets, "tqdm.auto draws an ipywidgets progress bar in a notebook"


def test_a_sweep_after_papermill_ran_in_the_same_process_runs_every_point(
    workspace: Path,
) -> None:
    """papermill (nbclient) leaves its event loop in the calling thread's context variables;
    Dask hands those to the worker threads, whose kernels must still run on loops of their own
    (they failed with 'This event loop is already running')."""
    import papermill

    from quantstrip.research import sweep

    target = write_notebook(workspace / "notebooks" / "tiny.ipynb", "fast = 1", "x = fast * 2")
    papermill.execute_notebook(
        str(target), str(workspace / "out.ipynb"), kernel_name="python3", progress_bar=False
    )
    result = sweep(target, {"fast": [1, 2, 3, 4]}, workers=2, progress=False)
    runs = result.results()
    assert list(runs["status"]) == ["success"] * 4, runs["error"].tolist()
