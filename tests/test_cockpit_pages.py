"""The operator's cockpit in headless chromium on the demo dashboard: the blotter shows a seeded
simulation's unrealised PnL as computed by hand, a risk refusal shows on the blotter and in the
notification centre's outbox, and every page carries the trading-mode badge."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

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
