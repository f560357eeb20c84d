"""The three guides as a new user runs them: opened in JupyterLab (whose kernel starts in
notebooks/), Kernel > Restart Kernel and Run All Cells, twice, in headless chromium. Every cell
runs without an error and the second run shows what the first did."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.browser import Dashboard, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
GUIDES = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
RUN_MS = 600_000

OUTPUTS_JS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].map(cell => {
  const prompt = cell.querySelector('.jp-InputArea-prompt')?.textContent || '';
  const error = cell.querySelector(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
  const outputs = [...cell.querySelectorAll('.jp-OutputArea-output')]
      .map(o => o.textContent.replace(/\\s+/g, ' ').trim()).join(' | ');
  return {prompt, error: error ? error.textContent : null, outputs};
})"""
DONE_JS = """() => {
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')]
      .map(p => p.textContent.trim());
  return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p));
}"""


def run_all(page) -> list[dict]:  # type: ignore[no-untyped-def]
    """Kernel > Restart Kernel and Run All Cells, confirmed; waits until every cell has run."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
    page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel and Run All Cells").click()
    page.locator(".jp-Dialog-button.jp-mod-accept").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')]"
        ".some(p => p.textContent.trim() === '[*]:' || p.textContent.trim() === '[ ]:')",
        timeout=RUN_MS,
    )
    page.wait_for_function(DONE_JS, timeout=RUN_MS)
    return page.evaluate(OUTPUTS_JS)


@pytest.mark.parametrize("name", GUIDES)
def test_guide_runs_twice_in_jupyterlab(page, dashboard: Dashboard, name: str) -> None:
    target = dashboard.root / "notebooks"
    if not (target / name).exists():
        shutil.copytree(REPO / "notebooks", target, dirs_exist_ok=True)
    try:
        page.goto(
            f"{dashboard.base_url}/lab/tree/notebooks/{name}?token={dashboard.token}",
            timeout=RUN_MS,
        )
        page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=RUN_MS)
        page.wait_for_selector(
            ".jp-Notebook-ExecutionIndicator, .jp-KernelStatus", state="attached", timeout=RUN_MS
        )
        first = run_all(page)
        assert [c for c in first if c["error"]] == [], first
        second = run_all(page)
        assert [c for c in second if c["error"]] == [], second
        assert [c["outputs"] for c in second] == [c["outputs"] for c in first]
        screenshot(page, f"guide_{name.split('_')[0]}")
        assert dashboard.violations == []
    finally:
        if name.startswith("03"):
            shutil.rmtree(dashboard.root / "clients" / "ma_research", ignore_errors=True)
