"""Driving the SQL editor page in Chromium (the operator's and the viewer's)."""

from __future__ import annotations

PAGE_TIMEOUT_MS = 120_000


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
