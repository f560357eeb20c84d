"""The worked guides run top to bottom in a real kernel on a demo workspace, offline, as a new
user runs them: the kernel starts in notebooks/ (JupyterLab starts a notebook's kernel in its
folder), with or without QUANTSTRIP_WORKSPACE set, and running a guide twice gives the same
result (the same outputs, the same rows in the ledgers)."""

from __future__ import annotations

import shutil
import sqlite3
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
    # The default demo (two years, seed 7), as `make run` builds it: guide 01's consistency check
    # failed on it (a cent compared by float equality). A fixed last day: the demo's sessions,
    # and so every figure the guides check, are the same whatever day the suite runs.
    build_demo(workspace / "var" / "quantstrip.db", seed=7, years=2, end=date(2026, 6, 30))
    shutil.copytree(REPO / "notebooks", workspace / "notebooks")
    return workspace


def run_guide(root: Path, name: str) -> list[str]:
    """Execute the guide in a fresh kernel started in notebooks/; its text outputs per cell."""
    notebook = nbformat.read(root / "notebooks" / name, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(root / "notebooks")}},
    ).execute()
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            texts.append(output.get("text") or data.get("text/plain", ""))
    return texts


def ledger_counts(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    with sqlite3.connect(path) as conn:
        return {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("orders", "executions", "strategy_events", "strategies")
        }


@pytest.mark.slow
@pytest.mark.parametrize("name", GUIDES)
@pytest.mark.parametrize("workspace_env", [True, False], ids=["env", "no-env"])
def test_guide_runs_twice_from_notebooks_with_the_same_result(
    demo_workspace: Path, name: str, workspace_env: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not workspace_env:  # a user who started `jupyter lab` in the workspace themselves
        monkeypatch.delenv("QUANTSTRIP_WORKSPACE")
        monkeypatch.delenv("QUANTSTRIP_HOME")
    var = demo_workspace / "var"
    first = run_guide(demo_workspace, name)
    after_first = {p.name: ledger_counts(p) for p in sorted(var.rglob("*.db"))}
    second = run_guide(demo_workspace, name)
    after_second = {p.name: ledger_counts(p) for p in sorted(var.rglob("*.db"))}
    assert second == first
    assert after_second == after_first
    assert not (demo_workspace / "notebooks" / "var").exists()  # nothing written beside it
    if name.startswith("02"):
        research = var / "research" / "research_ma_10_30.db"
        counts = ledger_counts(research)
        # every order kept (the last may still wait for a next bar), each fill recorded once
        assert counts["orders"] >= counts["executions"] > 0
    if name.startswith("03"):
        toml = demo_workspace / "clients" / "ma_research" / "client.toml"
        assert 'schedule = "every day at 16:30"' in toml.read_text()


def test_there_are_three_guides() -> None:
    assert len(GUIDES) == 3
