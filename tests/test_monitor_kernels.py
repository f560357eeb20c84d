"""Kernel leak: every monitor tab held a kernel forever (about 110 MB each), because a refresh
thread inside the kernel kept it busy and Jupyter's idle culling never saw it idle. The monitor
now refreshes from a ticker in the browser: a closed tab stops ticking, its kernel goes idle and
is culled. Here with short cull settings (the shipped ones are 5 minutes): five tabs opened, four
closed, and the server ends with one kernel, the open tab's, still refreshing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.browser import CHROMIUM

REPO = Path(__file__).resolve().parents[1]
CULL_S = 8 + 2  # idle for 8 s, checked every 2 s
SHORT_CULL = """
# test: kernels idle (and disconnected) for 8 s are culled, checked every 2 s
c.MappingKernelManager.cull_idle_timeout = 8
c.MappingKernelManager.cull_interval = 2
"""

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def next_refresh(tab) -> None:  # type: ignore[no-untyped-def]
    """Waits for the page's next refresh: its 'updated' time changes (refreshes every 2 s)."""
    stamp = tab.locator("text=updated").inner_text()
    wait_for(lambda: tab.locator("text=updated").inner_text() != stamp, 60, "a refresh of the tab")


def kernels(base: str, token: str) -> list[dict]:
    with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=30) as reply:
        return json.loads(reply.read())


def wait_for(condition, timeout_s: float, what: str, explain=None):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if last := condition():
            return last
        time.sleep(0.5)
    detail = explain() if explain else ""
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} {detail}")


@pytest.fixture
def server(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    from conftest import require_component

    require_component(os.path.exists(CHROMIUM), "Debian chromium (/usr/bin/chromium)")
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    shutil.copytree(REPO / "reports", workspace / "reports")
    shutil.copytree(REPO / "jupyter_config", workspace / "jupyter_config")
    config = workspace / "jupyter_config" / "jupyter_server_config.py"
    config.write_text(config.read_text() + SHORT_CULL)
    subprocess.run(
        [sys.executable, "-m", "quantstrip.cli", "init"],
        check=True,
        timeout=120,
        capture_output=True,
    )
    from quantstrip.dashboard.server import free_port, start

    dashboard = start(port=free_port(), token="kernel-leak-test", timeout_s=180)
    try:
        yield dashboard.base_url, dashboard.token
    finally:
        dashboard.stop()


def test_closed_monitor_tabs_give_their_kernels_back(server: tuple[str, str]) -> None:
    from playwright.sync_api import sync_playwright

    base, token = server
    url = f"{base}/voila/render/reports/monitor.ipynb?token={token}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context()
            tabs = []
            for _ in range(5):
                tab = context.new_page()
                tab.goto(url, timeout=180_000)
                tab.wait_for_selector("text=updated", timeout=180_000)
                tabs.append(tab)
            assert len(kernels(base, token)) == 5
            # Every tab refreshes from its own ticker before it is closed. (A tab closed before
            # its first tick leaves its kernel nudging the ticker for up to KICK_FOR_S, 120 s;
            # closing the last tab the moment it rendered made the test wait that long.)
            for tab in tabs:
                next_refresh(tab)
            for tab in tabs[1:]:
                tab.close()
            wait_for(
                lambda: len(kernels(base, token)) <= 1,
                CULL_S + 60,
                "closed tabs' kernels culled",
                lambda: [
                    (k["execution_state"], k["connections"], k["last_activity"])
                    for k in kernels(base, token)
                ],
            )
            # The open tab keeps refreshing (each refresh is kernel activity), so its kernel is
            # never idle long enough to be culled: follow its refreshes past the cull timeout.
            kept, started = tabs[0], time.monotonic()
            while time.monotonic() - started < CULL_S + 4:
                next_refresh(kept)
            assert len(kernels(base, token)) == 1
        finally:
            browser.close()
