"""The worked guides run top to bottom in a real kernel on a demo workspace, offline."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from quantstrip.demo import build_demo

REPO = Path(__file__).resolve().parents[1]
GUIDES = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture
def demo_workspace(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    # A fixed last day: the demo's sessions, and so every figure the guides check, are the
    # same whatever day the suite runs.
    build_demo(workspace / "var" / "quantstrip.db", seed=2, years=1, end=date(2026, 6, 30))
    shutil.copytree(REPO / "notebooks", workspace / "notebooks")
    return workspace


@pytest.mark.slow
@pytest.mark.parametrize("name", GUIDES)
def test_guide_runs_top_to_bottom(demo_workspace: Path, name: str) -> None:
    path = demo_workspace / "notebooks" / name
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(demo_workspace)}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
    if name.startswith("03"):
        assert (demo_workspace / "clients" / "ma_research" / "client.toml").exists()


def test_there_are_three_guides() -> None:
    assert len(GUIDES) == 3
