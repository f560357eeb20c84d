"""The operator's cockpit in headless chromium on the demo dashboard: the blotter shows a seeded
simulation's unrealised PnL as computed by hand, a risk refusal shows on the blotter and in the
notification centre's outbox, and every page carries the trading-mode badge."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from support.browser import Dashboard, screenshot
from test_dashboard_pages import PAGE_TIMEOUT_MS, assert_clean, open_page

from quantstrip import clock
from quantstrip.dashboard import PAGES

pytestmark = pytest.mark.browser


@pytest.fixture
def in_dashboard(dashboard: Dashboard, monkeypatch: pytest.MonkeyPatch) -> Dashboard:
    """This test process acts in the dashboard's workspace (as a client process would)."""
    from quantstrip import settings

    for key in ("QUANTSTRIP_WORKSPACE", "QUANTSTRIP_HOME", "QUANTSTRIP_KEYRING"):
        monkeypatch.setenv(key, dashboard.env[key])
    monkeypatch.delenv("QUANTSTRIP_CLIENT", raising=False)
    settings._reset_for_tests()
    yield dashboard
    settings._reset_for_tests()


def seed_simulation(limit: int) -> None:
    """Client 'cockpit_check' in the simulation book: 40 XYZ bought at 50.00 and 10 more at
    53.00, marked 51.25 now (fresh); then an order over the position limit is refused.
    Unrealised by hand: 50 x 51.25 - (40 x 50 + 10 x 53) = 2,562.50 - 2,530.00 = 32.50."""
    from quantstrip import settings
    from quantstrip.brokers import InstrumentSpec, OrderRefused, OrderRequest, Recorder
    from quantstrip.brokers.risk.guard import wait_for_alerts
    from quantstrip.brokers.sim import FixedTierCommission, SimBroker
    from quantstrip.db.handler import Database
    from quantstrip.paths import workspace

    spec = InstrumentSpec("XYZ")
    with Database(workspace().simulation_database) as db:
        broker = SimBroker(
            account="SIM-COCKPIT", commission=FixedTierCommission(Decimal(0), Decimal(0))
        )
        broker.subscribe(Recorder(db, client_name="cockpit_check"))
        start = clock.now() - timedelta(minutes=5)
        broker.on_quote("XYZ", "50", start)
        broker.submit(OrderRequest(spec, "BUY", 40, strategy="cockpit_check"))
        broker.on_quote("XYZ", "50", start + timedelta(minutes=1))
        broker.submit(OrderRequest(spec, "BUY", 10, strategy="cockpit_check"))
        broker.on_quote("XYZ", "53", start + timedelta(minutes=2))
        broker.on_quote("XYZ", "51.25", start + timedelta(minutes=3))
        broker.snapshot_marks([spec])
        settings.set("risk.clients", {"cockpit_check": {"max_position": limit}})
        with pytest.raises(OrderRefused):
            broker.submit(OrderRequest(spec, "BUY", limit, strategy="cockpit_check"))
    wait_for_alerts()


def test_blotter_matches_a_hand_computation_and_shows_the_refusal(
    page, in_dashboard: Dashboard
) -> None:
    seed_simulation(limit=60)
    open_page(page, in_dashboard, "blotter", ".qs-positions table")
    page.locator(".qs-book-choice select").select_option("simulation")
    row = page.locator(".qs-positions tr", has_text="cockpit_check")
    row.wait_for(timeout=PAGE_TIMEOUT_MS)
    cells = row.locator("td").all_inner_texts()
    headings = page.locator(".qs-positions th").all_inner_texts()
    shown = dict(zip(headings, cells, strict=True))
    assert shown["qty"] == "50"
    assert shown["mark"] == "51.25"
    assert shown["market value"] == "2,562.50"
    assert shown["unrealised PnL"] == "32.50"
    assert shown["exposure"] == "2,562.50"
    assert shown["mark check"] == ""  # fresh
    refused = page.locator(".qs-refused").inner_text()
    assert "max_position" in refused and "limit 60" in refused
    assert page.locator(".qs-mode-simulation").count() >= 1
    screenshot(page, "blotter")
    assert_clean(page, in_dashboard)
    # The alert went to the notification centre (no SMTP here: kept in the outbox as failed).
    open_page(page, in_dashboard, "notifications", "text=Notification centre")
    page.wait_for_selector("text=order refused by risk", timeout=PAGE_TIMEOUT_MS)
    assert "cockpit_check" in page.content()


def test_every_page_shows_the_mode_badge(page, dashboard: Dashboard) -> None:
    for name in ["home", *PAGES]:
        tab = page.context.new_page()  # a fresh tab each: leaving a page is not under test
        errors: list[str] = []
        tab.on("console", lambda m, errors=errors: m.type == "error" and errors.append(m.text))
        tab.goto(dashboard.page_url(name), timeout=PAGE_TIMEOUT_MS)
        tab.wait_for_selector(".qs-mode", timeout=PAGE_TIMEOUT_MS)
        badge = tab.locator(".qs-mode").first.inner_text()
        assert badge in ("SIMULATION", "PAPER", "LIVE"), name
        assert "Traceback" not in tab.content(), name
        assert [e for e in errors if "favicon" not in e] == [], name
        tab.close()
    assert dashboard.violations == []


def test_portfolio_charts_fit_1280x800_with_tooltips_and_no_version_warning(
    browser, dashboard: Dashboard
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    console: list[str] = []
    tab.on("console", lambda m: m.type in ("warning", "error") and console.append(m.text))
    try:
        tab.goto(dashboard.page_url("portfolio"), timeout=PAGE_TIMEOUT_MS)
        tab.wait_for_selector(".qs-chart-equity svg.marks", timeout=PAGE_TIMEOUT_MS)
        tab.wait_for_selector(".qs-chart-strategies svg.marks", timeout=PAGE_TIMEOUT_MS)
        assert not [m for m in console if "Vega" in m], console
        for chart in ("equity", "drawdown", "returns", "strategies"):
            box = tab.locator(f".qs-chart-{chart} svg.marks").first.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1280, chart
        equity = tab.locator(".qs-chart-equity svg.marks").first.text_content() or ""
        assert "Portfolio" in equity and "marked to market" in equity
        assert any(str(year) in equity for year in range(2000, 2100))  # the year on the axis
        # Hovering a bar shows its value in a tooltip.
        tab.locator(".qs-chart-strategies svg.marks path").first.hover()
        tab.locator(".qs-chart-strategies svg.marks .mark-rect path").first.hover()
        tab.wait_for_selector("#vg-tooltip-element.visible", timeout=30_000)
        assert "total_pnl" in (tab.locator("#vg-tooltip-element").inner_text() or "")
        assert "Base capital" in tab.locator(".qs-conventions").inner_text()
        screenshot(tab, "portfolio_1280x800")
        # Realised only stays available.
        tab.locator(".qs-basis button", has_text="Realised only").click()
        tab.click(".qs-update button, button.qs-update")
        tab.wait_for_function(
            "() => { const s = document.querySelector('.qs-chart-equity svg.marks');"
            " return s && s.textContent.includes('realised PnL'); }",
            timeout=PAGE_TIMEOUT_MS,
        )
        assert "total_pnl" not in tab.locator(".qs-stats").inner_text()
        assert not [m for m in console if "Vega" in m], console
    finally:
        context.close()


FAILING = """
from quantstrip import ClientBase


class Failing(ClientBase):
    def __init__(self):
        super().__init__()
        self.scheduler.every(1).seconds.do(self.job)

    def job(self):
        raise ValueError("cockpit-boom: the feed returned nothing")
"""
QUIET = """
from quantstrip import ClientBase


class Quiet(ClientBase):
    def __init__(self):
        super().__init__()
        self.scheduler.every(5).seconds.do(self.job)

    def job(self):
        self.log.info("quiet")
"""


def add_client(root: Path, name: str, source: str, **toml: str) -> Path:
    folder = root / "clients" / name
    folder.mkdir(parents=True)
    (folder / f"{name}.py").write_text(source)
    extra = "".join(f"{key} = {value}\n" for key, value in toml.items())
    (folder / "client.toml").write_text(
        f'kind = "module"\nentry = "{name}.py"\nstop_timeout_s = 3.0\n{extra}'
        "[heartbeat]\ninterval_s = 0.5\ntimeout_s = 10.0\n"
    )
    return folder


def test_a_failing_client_is_red_with_its_error(page, dashboard: Dashboard) -> None:
    folder = add_client(dashboard.root, "failing", FAILING)
    try:
        open_page(page, dashboard, "monitor", ".qs-client")
        page.wait_for_selector(".qs-state-failing.qs-health-failing", timeout=PAGE_TIMEOUT_MS)
        error = page.locator(".qs-error-failing summary").inner_text()
        assert "cockpit-boom: the feed returned nothing" in error
        assert re.search(r"Last error \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z+\-0-9]+\)", error)
        assert "last job (job) failed at" in page.locator(".qs-headline-failing").inner_text()
        details = page.locator(".qs-details-failing").inner_text()
        assert "restarts 0" in details and "." not in details.split("started ")[1][:19]
        # Lifecycle buttons: a running client can be stopped, not started.
        assert page.locator(".qs-start-failing button, button.qs-start-failing").is_disabled()
        assert page.locator(".qs-stop-failing button, button.qs-stop-failing").is_enabled()
        screenshot(page, "monitor_failing")
    finally:
        shutil.rmtree(folder)


def test_starting_a_live_client_asks_for_confirmation(page, dashboard: Dashboard) -> None:
    folder = add_client(dashboard.root, "live_desk", QUIET, mode='"live"')
    start = ".qs-start-live_desk button, button.qs-start-live_desk"
    try:
        open_page(page, dashboard, "monitor", ".qs-client")
        page.wait_for_selector(".qs-state-live_desk:has-text('running')", timeout=PAGE_TIMEOUT_MS)
        assert page.locator(".qs-client-mode-live").count() >= 1
        assert page.locator(".qs-mode-live").count() == 1  # the page badge says LIVE
        page.click(".qs-stop-live_desk button, button.qs-stop-live_desk")
        page.wait_for_selector(".qs-state-live_desk:has-text('stopped')", timeout=PAGE_TIMEOUT_MS)
        page.wait_for_selector(f"{start}:not([disabled])", timeout=PAGE_TIMEOUT_MS)
        page.click(start)
        page.wait_for_selector(".qs-confirm >> text=trades LIVE", timeout=PAGE_TIMEOUT_MS)
        page.click(".qs-confirm-no button, button.qs-confirm-no")
        page.wait_for_selector(".qs-confirm", state="hidden", timeout=PAGE_TIMEOUT_MS)
        assert "stopped" in page.locator(".qs-state-live_desk").inner_text()
        page.click(start)
        page.click(".qs-confirm-yes button, button.qs-confirm-yes")
        page.wait_for_selector(".qs-state-live_desk:has-text('running')", timeout=PAGE_TIMEOUT_MS)
    finally:
        shutil.rmtree(folder)


def sim_book(root: Path) -> tuple[float, int]:
    """(position, open orders) of client 'trader' in the simulation database."""
    import sqlite3

    with sqlite3.connect(f"file:{root / 'var' / 'simulation.db'}?mode=ro", uri=True) as conn:
        held = conn.execute(
            "SELECT COALESCE(SUM(p.qty_micros), 0) FROM positions p JOIN accounts a "
            "ON a.id = p.account_id WHERE a.account_code = 'SIM-T'"
        ).fetchone()[0]
        working = conn.execute(
            "SELECT COUNT(*) FROM orders WHERE client_name = 'trader' AND status IN "
            "('PendingSubmit', 'PreSubmitted', 'Submitted', 'PartiallyFilled')"
        ).fetchone()[0]
    return held / 1e6, working


def test_flatten_from_the_monitor_leaves_no_position_and_no_open_order(
    page, dashboard: Dashboard
) -> None:
    from test_risk_operator import TRADER

    folder = add_client(dashboard.root, "trader", TRADER)

    def holding() -> bool:
        try:
            held, working = sim_book(dashboard.root)
        except Exception:
            return False
        return held >= 100 and working == 1

    try:
        wait_for(holding, 120, "the trader's position and working order")
        open_page(page, dashboard, "monitor", ".qs-client")
        page.wait_for_selector(".qs-risk-flatten-trader button, button.qs-risk-flatten-trader")
        page.click(".qs-risk-flatten-trader button, button.qs-risk-flatten-trader")
        page.wait_for_selector(".qs-confirm >> text=close its positions", timeout=PAGE_TIMEOUT_MS)
        page.click(".qs-confirm-yes button, button.qs-confirm-yes")
        page.wait_for_selector(".qs-message >> text=trader: done", timeout=PAGE_TIMEOUT_MS)
        wait_for(lambda: sim_book(dashboard.root) == (0.0, 0), 120, "a flat book")
        page.wait_for_selector(".qs-risk-state-trader:has-text('stop entries')")
        page.click(".qs-risk-resume-trader button, button.qs-risk-resume-trader")
        page.click(".qs-confirm-yes button, button.qs-confirm-yes")
        page.wait_for_selector(".qs-risk-state-trader:has-text('active')", timeout=PAGE_TIMEOUT_MS)
    finally:
        shutil.rmtree(folder)
        from quantstrip.brokers.risk import controls

        wait_for(
            lambda: (
                not any(
                    c.scope == "trader" and c.state != "active"
                    for c in controls.all_controls(dashboard.root / "var" / "quantstrip.db")
                )
            ),
            30,
            "trader resumed",
        )


def wait_for(condition, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_create_edit_and_delete_a_client_from_the_page(page, dashboard: Dashboard) -> None:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("lookback = 10")
    cell.metadata["tags"] = ["parameters"]
    notebook.cells = [cell, nbformat.v4.new_code_cell("print(lookback)")]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    (dashboard.root / "notebooks").mkdir(exist_ok=True)
    nbformat.write(notebook, dashboard.root / "notebooks" / "page_made.ipynb")
    folder = dashboard.root / "clients" / "page_made"
    save = ".qs-client-save button, button.qs-client-save"
    try:
        open_page(page, dashboard, "clients", ".qs-client-name input")
        page.locator(".qs-client-source select").select_option("notebooks/page_made.ipynb")
        page.fill(".qs-client-name input", "page_made")
        page.fill(".qs-client-schedule input", "every blue moon")
        page.click(save)
        page.wait_for_selector(".qs-client-status .qs-error", timeout=PAGE_TIMEOUT_MS)
        assert not folder.exists()  # a refused client leaves nothing behind
        page.fill(".qs-client-schedule input", "every day at 16:30")
        page.fill(".qs-client-parameters textarea", "lookback = 20")
        page.fill(".qs-limit-max_position input", "100")
        page.click(save)
        page.wait_for_selector(
            ".qs-client-status >> text=page_made created", timeout=PAGE_TIMEOUT_MS
        )
        text = (folder / "client.toml").read_text()
        assert 'schedule = "every day at 16:30"' in text and "lookback = 20" in text
        # The daemon picked it up: the monitor lists it.
        monitor = page.context.new_page()
        monitor.goto(dashboard.page_url("monitor"), timeout=PAGE_TIMEOUT_MS)
        monitor.wait_for_selector(".qs-client[data-client='page_made']", timeout=PAGE_TIMEOUT_MS)
        monitor.close()
        # Edit: a cron schedule.
        page.locator(".qs-client-choice select").select_option("page_made")
        page.wait_for_function(
            "() => document.querySelector('.qs-client-schedule input').value.includes('16:30')"
        )
        page.fill(".qs-client-schedule input", "30 9 * * 1-5")
        page.click(save)
        page.wait_for_selector(".qs-client-status >> text=page_made saved", timeout=PAGE_TIMEOUT_MS)
        assert 'schedule = "30 9 * * 1-5"' in (folder / "client.toml").read_text()
        screenshot(page, "clients")
        # Delete, confirmed: archived, not destroyed.
        page.click(".qs-client-delete button, button.qs-client-delete")
        page.click(".qs-confirm-yes button, button.qs-confirm-yes")
        page.wait_for_selector(
            ".qs-client-status >> text=page_made deleted", timeout=PAGE_TIMEOUT_MS
        )
        assert not folder.exists()
        archived = list((dashboard.root / "var" / "archive").glob("page_made-*/client/client.toml"))
        assert len(archived) == 1
        assert_clean(page, dashboard)
    finally:
        if folder.exists():
            shutil.rmtree(folder)
