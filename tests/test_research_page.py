"""The Research page in headless chromium over a real sweep: the runs table sorts by a
metric, the heatmap and equity curves are drawn offline, and promoting a run creates a client
with that run's parameters."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import duckdb
import pytest
from support.browser import Dashboard, screenshot
from support.research import PERIOD, copy_notebook
from test_dashboard_pages import PAGE_TIMEOUT_MS, assert_clean, open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

SORTED_JS = """(column) => {
  const table = document.querySelector('.qs-research-runs table');
  const heads = [...table.querySelectorAll('thead th')].map(h => h.textContent.trim());
  return [...table.querySelectorAll('tbody tr')].map(
    r => parseFloat(r.querySelectorAll('td')[heads.indexOf(column)].textContent.replace(/,/g, '')));
}"""


@pytest.fixture(scope="module")
def swept(dashboard: Dashboard) -> str:
    """A 4-run sweep in the dashboard's workspace, run with the CLI as a user would."""
    notebook = copy_notebook(dashboard.root)
    done = subprocess.run(
        [sys.executable, "-m", "quantstrip", "sweep", str(notebook), "-p", "fast=5,10",
         "-p", "slow=20,40", "--start", PERIOD[0], "--end", PERIOD[1], "--name", "page-sweep",
         "--workers", "2", "--no-progress"],
        cwd=dashboard.root, env=dashboard.env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return "page-sweep"


def test_research_page_shows_runs_heatmap_and_equity_and_promotes_a_run(
    page, dashboard: Dashboard, swept: str
) -> None:
    open_page(page, dashboard, "research", ".qs-research-runs table")
    assert swept in page.locator(".qs-research-sweeps").inner_text()
    assert page.locator(".qs-research-runs tbody tr").count() == 4
    # Sorted by Sharpe, best first.
    page.locator(".qs-research-runs select").first.select_option("sharpe")
    page.locator(".qs-research-runs input[type=checkbox]").check()
    descending = "v.every((x, i) => !i || v[i - 1] >= x)"
    page.wait_for_function(
        f"() => {{ const v = ({SORTED_JS})('sharpe'); return {descending}; }}",
        timeout=PAGE_TIMEOUT_MS,
    )
    # The heatmap (fast x slow) and the best runs' equity, drawn by the bundled Vega.
    page.wait_for_selector(".qs-research-heatmap svg.marks", timeout=PAGE_TIMEOUT_MS)
    assert page.locator(".qs-research-heatmap svg.marks path").count() >= 4
    heat = page.locator(".qs-research-heatmap svg.marks").text_content() or ""
    assert "fast" in heat and "slow" in heat
    page.wait_for_selector(".qs-research-equity svg.marks", timeout=PAGE_TIMEOUT_MS)
    screenshot(page, "research")
    # Promote the best run (the first choice) under a name of our own.
    chosen = page.locator(".qs-promote-run select option:checked").inner_text()  # "#3 fast=..."
    page.locator(".qs-promote-name input").fill("ma_from_research")
    page.click(".qs-promote button, button.qs-promote")
    page.wait_for_selector(".qs-promote-result >> text=created", timeout=PAGE_TIMEOUT_MS)
    config = tomllib.loads(
        (dashboard.root / "clients" / "ma_from_research" / "client.toml").read_text()
    )
    results = dashboard.root / "var" / "research" / swept / "results.parquet"
    number = int(chosen.split()[0].lstrip("#"))
    fast, slow = duckdb.sql(
        f"SELECT fast, slow FROM '{results}' WHERE number = {number}"
    ).fetchone()
    best = duckdb.sql(f"SELECT number FROM '{results}' ORDER BY sharpe DESC LIMIT 1").fetchone()
    assert best == (number,)  # offered first: the best run by the chosen metric
    assert config["kind"] == "notebook" and config["enabled"] is False
    assert config["parameters"] == {"fast": fast, "slow": slow}
    assert_clean(page, dashboard)


def test_home_links_the_research_page(page, dashboard: Dashboard) -> None:
    open_page(page, dashboard, "home", "a.qs-link")
    assert "Research" in page.locator("a.qs-link").all_inner_texts()
    assert_clean(page, dashboard)
