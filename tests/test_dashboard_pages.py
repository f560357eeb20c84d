"""Every dashboard page in headless chromium: loads with no console error and no request off
loopback, shows the demo data, and its controls really act (the monitor stops and starts a
client process)."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import psutil
import pytest
from support import package_index
from support.browser import Dashboard, screenshot

from quantstrip.dashboard import PAGES

# One dashboard (a Jupyter server, a daemon and a browser, session-scoped) serves every test here:
# under pytest-xdist they all go to one worker instead of each worker starting its own.
pytestmark = [pytest.mark.xdist_group("dashboard"), pytest.mark.slow]

PAGE_TIMEOUT_MS = 120_000
IGNORED_CONSOLE = ("favicon",)


def open_page(page, dashboard: Dashboard, name: str, ready: str):  # type: ignore[no-untyped-def]
    if not hasattr(page, "failed_responses"):
        page.failed_responses = []
        page.on(
            "response",
            lambda r: r.status >= 400 and page.failed_responses.append((r.status, r.url)),
        )
    page.goto(dashboard.page_url(name), timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector(ready, timeout=PAGE_TIMEOUT_MS)
    return page


def assert_clean(page, dashboard: Dashboard) -> None:  # type: ignore[no-untyped-def]
    errors = [e for e in page.console_errors if not any(i in e for i in IGNORED_CONSOLE)]
    assert errors == [], getattr(page, "failed_responses", [])
    assert dashboard.violations == [], "requests left loopback"
    assert "Traceback" not in page.content()


def test_unauthenticated_requests_are_refused(dashboard: Dashboard) -> None:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return None

    opener = urllib.request.build_opener(NoRedirect)
    for path in ("/voila/render/reports/home.ipynb", "/api/contents", "/lab"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(f"{dashboard.base_url}{path}", timeout=30)
        assert refused.value.code in (302, 403)
        assert "login" in (refused.value.headers.get("Location") or "/login")


def test_home_links_every_tool(page, dashboard: Dashboard) -> None:
    open_page(page, dashboard, "home", "a.qs-link")
    links = page.locator("a.qs-link").all_inner_texts()
    for title in (
        "Client monitor",
        "SQL editor",
        "Portfolio report",
        "Notification centre",
        "Settings manager",
        "Logs",
        "Package manager",
        "JupyterLab (IDE)",
    ):
        assert title in links
    assert "executions" in page.content()
    screenshot(page, "home")
    assert_clean(page, dashboard)


def test_portfolio_shows_statistics_and_offline_charts(page, dashboard: Dashboard) -> None:
    open_page(page, dashboard, "portfolio", ".qs-stats table")
    stats = page.locator(".qs-stats").inner_text()
    for strategy in ("ma_crossover", "mean_reversion", "momentum_rotation", "Portfolio"):
        assert strategy in stats
    # The browser draws the Vega-Lite specs with the Vega bundled in Voila (no CDN: assert_clean
    # fails on any request that leaves the machine).
    for chart in ("equity", "drawdown", "returns", "strategies"):
        page.wait_for_selector(f".qs-chart-{chart} svg.marks", timeout=PAGE_TIMEOUT_MS)
        assert page.locator(f".qs-chart-{chart} svg.marks path").count() > 0
    labels = page.locator(".qs-chart-strategies svg.marks").text_content() or ""
    assert "mean_reversion" in labels and "momentum_rotation" in labels
    screenshot(page, "portfolio")
    # Narrowing the selection redraws statistics and charts for that strategy alone.
    page.locator(".qs-portfolio-strategies select").select_option(["momentum_rotation"])
    page.click(".qs-update button, button.qs-update")
    page.wait_for_function(
        "() => { const s = document.querySelector('.qs-chart-strategies svg.marks');"
        " return s && !s.textContent.includes('mean_reversion'); }",
        timeout=PAGE_TIMEOUT_MS,
    )
    assert "mean_reversion" not in page.locator(".qs-stats").inner_text()
    assert_clean(page, dashboard)


PORTFOLIO_TRADES_JS = """() => {
  const table = document.querySelector('.qs-stats table');
  const heads = [...table.querySelectorAll('thead th')].map(h => h.textContent.trim());
  const row = [...table.querySelectorAll('tbody tr')]
    .find(r => r.textContent.includes('Portfolio'));
  return parseInt(row.querySelectorAll('td')[heads.indexOf('trades')].textContent);
}"""


def test_portfolio_custom_dates_narrow_the_report(page, dashboard: Dashboard) -> None:
    open_page(page, dashboard, "portfolio", ".qs-stats table")
    scope = page.locator(".qs-scope").inner_text()  # "<first day> to <last day>, N strategies"
    last = date.fromisoformat(scope.split(" to ")[1][:10])
    all_trades = page.evaluate(PORTFOLIO_TRADES_JS)
    start = last - timedelta(days=120)
    page.locator("select", has=page.locator("option", has_text="Custom dates")).select_option(
        label="Custom dates"
    )
    page.locator(".qs-from input").fill(start.isoformat())
    page.locator(".qs-to input").fill(last.isoformat())
    page.click(".qs-update button, button.qs-update")
    page.wait_for_selector(f".qs-scope >> text={start.isoformat()} to {last.isoformat()}")
    narrowed = page.evaluate(PORTFOLIO_TRADES_JS)
    assert 0 < narrowed < all_trades
    # An end before the start is refused with a message, not a broken page.
    page.locator(".qs-to input").fill((start - timedelta(days=1)).isoformat())
    page.click(".qs-update button, button.qs-update")
    page.wait_for_selector(".qs-stats .qs-error >> text=is after", timeout=PAGE_TIMEOUT_MS)
    assert_clean(page, dashboard)


def test_sql_editor_runs_queries_and_refuses_writes(page, dashboard: Dashboard) -> None:
    open_page(page, dashboard, "sql_editor", ".qs-sql textarea")
    page.fill(".qs-sql textarea", "SELECT strategy, COUNT(*) AS n FROM v_round_trips GROUP BY 1")
    page.click(".qs-run button, button.qs-run")
    page.wait_for_selector("text=rows in", timeout=PAGE_TIMEOUT_MS)
    assert "mean_reversion" in page.content()
    assert page.locator("a[download='query.csv']").count() == 1
    screenshot(page, "sql_editor")
    page.fill(".qs-sql textarea", "DELETE FROM executions")
    page.click(".qs-run button, button.qs-run")
    page.wait_for_selector("text=read-only", timeout=PAGE_TIMEOUT_MS)
    import sqlite3

    count = (
        sqlite3.connect(dashboard.root / "var" / "quantstrip.db")
        .execute("SELECT COUNT(*) FROM executions")
        .fetchone()[0]
    )
    assert count > 0
    assert_clean(page, dashboard)


def _ticker_pid(dashboard: Dashboard) -> int | None:
    from quantstrip.daemon.control import ControlClient, socket_path

    control = ControlClient(socket_path(dashboard.root / "var"))
    status = {s.name: s for s in control.list_clients()}.get("ticker")
    return status.pid if status and status.state == "running" else None


def test_monitor_stop_and_start_really_control_the_process(page, dashboard: Dashboard) -> None:
    open_page(page, dashboard, "monitor", ".qs-client")
    page.wait_for_selector(".qs-state-ticker:has-text('running')", timeout=PAGE_TIMEOUT_MS)
    pid = _ticker_pid(dashboard)
    assert pid and psutil.pid_exists(pid)
    screenshot(page, "monitor")
    page.click(".qs-stop-ticker button, button.qs-stop-ticker")
    page.wait_for_selector(".qs-state-ticker:has-text('stopped')", timeout=PAGE_TIMEOUT_MS)
    psutil.Process(pid).wait(timeout=30) if psutil.pid_exists(pid) else None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    page.click(".qs-start-ticker button, button.qs-start-ticker")
    page.wait_for_selector(".qs-state-ticker:has-text('running')", timeout=PAGE_TIMEOUT_MS)
    new_pid = _ticker_pid(dashboard)
    assert new_pid and new_pid != pid and psutil.pid_exists(new_pid)
    # The lifecycle shows in the client's recent events.
    page.wait_for_selector(
        f".qs-events-ticker li:has-text('pid {new_pid}')", state="attached", timeout=PAGE_TIMEOUT_MS
    )
    events = page.locator(".qs-events-ticker").text_content() or ""
    assert "stopped" in events and "started" in events
    assert_clean(page, dashboard)


def test_logs_page_tails_a_client_log(page, dashboard: Dashboard) -> None:
    open_page(page, dashboard, "logs", "select")
    page.locator("select").first.select_option("ticker")
    page.wait_for_selector(".qs-log:has-text('tick')", timeout=PAGE_TIMEOUT_MS)
    screenshot(page, "logs")
    assert_clean(page, dashboard)


def test_notifications_page_lists_messages(page, dashboard: Dashboard) -> None:
    open_page(page, dashboard, "notifications", "text=Notification centre")
    screenshot(page, "notifications")
    assert_clean(page, dashboard)


def test_settings_page_validates_before_saving_and_masks_secrets(page, dashboard: Dashboard):
    open_page(page, dashboard, "settings", ".qs-settings-text textarea")
    original = page.input_value(".qs-settings-text textarea")
    settings_file = dashboard.root / "var" / "settings.toml"
    before = settings_file.read_text() if settings_file.exists() else None
    assert "[brokers]" in original
    page.fill(".qs-settings-text textarea", "[dashboard]\nprot = 1\n")
    page.click(".qs-save button, button.qs-save")
    page.wait_for_selector(
        ".qs-settings-status:has-text('dashboard.prot')", timeout=PAGE_TIMEOUT_MS
    )
    after = settings_file.read_text() if settings_file.exists() else None
    assert after == before  # the invalid text was never written
    assert "dashboard.token" in page.locator(".qs-secrets").inner_text()
    assert dashboard.token not in page.content()
    screenshot(page, "settings")
    assert_clean(page, dashboard)


def test_packages_page_lists_the_environment(page, dashboard: Dashboard) -> None:
    open_page(page, dashboard, "packages", ".qs-packages")
    assert "duckdb" in page.locator(".qs-packages").inner_text()
    screenshot(page, "packages")
    assert_clean(page, dashboard)


def test_packages_page_installs_from_the_index_and_refuses_non_requirements(
    page, dashboard: Dashboard
) -> None:
    open_page(page, dashboard, "packages", ".qs-packages")
    page.fill(".qs-install input", "numpy; rm -rf /")
    page.click(".qs-install-button button, button.qs-install-button")
    page.wait_for_selector(".qs-install-output >> text=not a package requirement")
    try:
        page.fill(".qs-install input", f"{package_index.NAME}=={package_index.VERSION}")
        page.click(".qs-install-button button, button.qs-install-button")
        page.wait_for_selector(
            f".qs-install-output >> text=Successfully installed {package_index.NAME}",
            timeout=180_000,
        )
        page.wait_for_selector(f".qs-packages >> text={package_index.NAME}")
        assert_clean(page, dashboard)
    finally:
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "-y", "-q", package_index.NAME],
            check=False,
            capture_output=True,
        )


def test_jupyterlab_has_a_quantstrip_menu_reaching_every_page(page, dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.base_url}/lab?token={dashboard.token}", timeout=PAGE_TIMEOUT_MS)
    menu = page.locator(".lm-MenuBar-itemLabel", has_text="Quantstrip")
    menu.wait_for(timeout=PAGE_TIMEOUT_MS)
    menu.click()
    entries = page.locator(".lm-Menu-itemLabel").all_inner_texts()
    for title in PAGES.values():
        assert title in entries
    with page.context.expect_page(timeout=PAGE_TIMEOUT_MS) as opened:
        page.locator(".lm-Menu-itemLabel", has_text="Client monitor").click()
    monitor = opened.value
    monitor.wait_for_selector("text=updated", timeout=PAGE_TIMEOUT_MS)
    assert "/voila/render/reports/monitor.ipynb" in monitor.url
    assert dashboard.violations == [], "requests left loopback"
    # JupyterLab's runtime state goes to the data directory, not the checked-in configuration.
    repo_config = Path(__file__).resolve().parents[1] / "jupyter_config" / "lab"
    assert not (repo_config / "workspaces").exists()
    assert not (repo_config / "user-settings").exists()
