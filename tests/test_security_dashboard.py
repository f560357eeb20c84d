"""Issue 17 through the real dashboard (Jupyter + Voila + kernels) in headless Chromium and over
HTTP: the SQL editor page refuses every escape, private files are not served, the token stays out
of kernels, the package page installs only index packages."""

from __future__ import annotations

import sqlite3

import pytest
from support.browser import Dashboard
from support.escapes import DUCKDB_ESCAPES, TRADING_TABLES, Witness, fill

PAGE_TIMEOUT_MS = 120_000


class Targets:
    def __init__(self, dashboard: Dashboard) -> None:
        root = dashboard.root
        self.db = root / "var" / "quantstrip.db"
        self.secret = root / "var" / "secrets" / "escape-target.key"
        self.other = root / "elsewhere" / "other.db"
        self.out = root / "out"
        self.witness = Witness(
            self.db, (self.out, self.other.parent, self.secret.parent), TRADING_TABLES, raw=False
        )

    def sql(self, template: str) -> str:
        return fill(template, db=self.db, other=self.other, secret=self.secret, out=self.out)


@pytest.fixture(scope="module")
def targets(dashboard: Dashboard) -> Targets:
    t = Targets(dashboard)
    t.out.mkdir(exist_ok=True)
    t.other.parent.mkdir(exist_ok=True)
    if not t.other.exists():
        other = sqlite3.connect(t.other)
        other.execute("CREATE TABLE secrets (name TEXT, value TEXT)")
        other.execute("INSERT INTO secrets VALUES ('api', 'hunter2')")
        other.commit()
        other.close()
    t.secret.write_bytes(b"private-bytes-that-must-not-leak\n")
    t.secret.chmod(0o600)
    return t


def run_in_editor(page, sql: str) -> str:  # type: ignore[no-untyped-def]
    """Type `sql` into the SQL editor, run it, and return the status line once it settles.

    The shown status is blanked first: every run sets the status to "running…" and then to its
    outcome, so the outcome always reaches the page, even when it repeats the previous one."""
    page.fill(".qs-sql textarea", sql)
    page.evaluate("document.querySelector('.qs-status .widget-html-content').textContent = ''")
    page.click(".qs-run button, button.qs-run")
    page.wait_for_function(
        "() => { const s = document.querySelector('.qs-status');"
        " return s && s.textContent.trim() && !s.textContent.includes('running'); }",
        timeout=PAGE_TIMEOUT_MS,
    )
    return page.locator(".qs-status").inner_text()


@pytest.mark.browser
def test_sql_editor_page_refuses_every_escape(page, dashboard: Dashboard, targets: Targets):  # type: ignore[no-untyped-def]
    page.goto(dashboard.page_url("sql_editor"), timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector(".qs-sql textarea", timeout=PAGE_TIMEOUT_MS)
    assert "rows in" in run_in_editor(page, "SELECT COUNT(*) AS n FROM executions")
    before = targets.witness.state()
    accepted = {}
    for name, template in sorted(DUCKDB_ESCAPES.items()):
        status = run_in_editor(page, targets.sql(template))
        if not (status.startswith("refused") or "does not exist" in status):
            accepted[name] = status[:300]
        assert "hunter2" not in page.content() and "private-bytes" not in page.content()
    assert accepted == {}
    assert targets.witness.state() == before
    # The editor still reads after all that.
    assert "rows in" in run_in_editor(page, "SELECT * FROM v_round_trips")
