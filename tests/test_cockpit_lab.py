"""The three guides as a new user runs them: opened in JupyterLab (whose kernel starts in
notebooks/), Kernel > Restart Kernel and Run All Cells, twice, in headless chromium. Every cell
runs without an error and the second run shows what the first did."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from support.browser import Dashboard, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
GUIDES = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
# Opening JupyterLab, starting the kernel and running a guide twice take well under a minute; a
# loaded machine makes it a few. Every wait takes what is left of this, so a stuck step fails
# with its own name before pytest's 300 s timeout.
BUDGET_S = 270

# The guide's notebook: the page opens with `?reset`, so JupyterLab restores no tab of an earlier
# guide (a restored notebook's cells, never run in this page, kept every wait for "all cells ran"
# false), and this is the one notebook panel.
PANEL_JS = """const panels = document.querySelectorAll('.jp-NotebookPanel');
  if (panels.length !== 1) throw new Error(`${panels.length} notebooks open, expected 1`);
  const panel = panels[0];"""
# The kernel is connected and idle. 'Restart Kernel and Run All Cells' accepted while the kernel
# is still initializing restarts nothing and runs nothing, silently: the test then waited for
# cells that were never sent to the kernel.
KERNEL_READY_JS = f"""() => {{
  {PANEL_JS}
  const name = panel.querySelector('.jp-Toolbar-kernelName')?.textContent.trim() || '';
  const status = panel.querySelector('.jp-Notebook-ExecutionIndicator')?.textContent || '';
  return name !== '' && name !== 'No Kernel' && /Kernel status: Idle/.test(status);
}}"""
# Notes when any cell of the shown notebook is queued or running ('[*]:') from now on.
WATCH_JS = f"""() => {{
  {PANEL_JS}
  window.__qsRunning = false;
  const running = () => [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
      .some(p => p.textContent.trim() === '[*]:');
  new MutationObserver((_, observer) => {{
    if (running()) {{ window.__qsRunning = true; observer.disconnect(); }}
  }}).observe(panel, {{subtree: true, childList: true, characterData: true}});
}}"""
# A run was seen and every code cell of the shown notebook has its execution count.
DONE_JS = f"""() => {{
  {PANEL_JS}
  const prompts = [...panel.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')]
      .map(p => p.textContent.trim());
  return window.__qsRunning && prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p));
}}"""
OUTPUTS_JS = f"""() => {{
  {PANEL_JS}
  return [...panel.querySelectorAll('.jp-Notebook .jp-CodeCell')].map(cell => {{
    const prompt = cell.querySelector('.jp-InputArea-prompt')?.textContent || '';
    const error = cell.querySelector(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
    const outputs = [...cell.querySelectorAll('.jp-OutputArea-output')]
        .map(o => o.textContent.replace(/\\s+/g, ' ').trim()).join(' | ');
    return {{prompt, error: error ? error.textContent : null, outputs}};
  }});
}}"""


class Budget:
    """Milliseconds left of the test's budget, for each wait in turn."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def ms(self) -> float:
        return max(1_000.0, (self.deadline - time.monotonic()) * 1000)


def run_all(page, budget: Budget) -> list[dict]:  # type: ignore[no-untyped-def]
    """Kernel > Restart Kernel and Run All Cells, confirmed, once the kernel is ready; waits
    until the cells have run again."""
    page.wait_for_function(KERNEL_READY_JS, timeout=budget.ms())
    page.evaluate(WATCH_JS)
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click(timeout=budget.ms())
    page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel and Run All Cells").click(
        timeout=budget.ms()
    )
    page.locator(".jp-Dialog-button.jp-mod-accept").click(timeout=budget.ms())
    page.wait_for_function(DONE_JS, timeout=budget.ms())
    return page.evaluate(OUTPUTS_JS)


@pytest.mark.parametrize("name", GUIDES)
def test_guide_runs_twice_in_jupyterlab(page, dashboard: Dashboard, name: str) -> None:
    target = dashboard.root / "notebooks"
    if not (target / name).exists():
        shutil.copytree(REPO / "notebooks", target, dirs_exist_ok=True)
    budget = Budget(BUDGET_S)
    try:
        page.goto(
            f"{dashboard.base_url}/lab/tree/notebooks/{name}?reset&token={dashboard.token}",
            timeout=budget.ms(),
        )
        page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=budget.ms())
        first = run_all(page, budget)
        assert [c for c in first if c["error"]] == [], first
        second = run_all(page, budget)
        assert [c for c in second if c["error"]] == [], second
        assert [c["outputs"] for c in second] == [c["outputs"] for c in first]
        screenshot(page, f"guide_{name.split('_')[0]}")
        assert dashboard.violations == []
    finally:
        if name.startswith("03"):
            shutil.rmtree(dashboard.root / "clients" / "ma_research", ignore_errors=True)
