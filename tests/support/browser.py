"""A demo workspace served by the real dashboard (daemon + Jupyter + Voila) and headless
Debian chromium driven by Playwright, shared by the whole test session (startup is slow)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
from support.package_index import serve_index

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
TICKER = """
from quantstrip import ClientBase


class Ticker(ClientBase):
    def __init__(self):
        super().__init__()
        self.display_name = "Demo ticker"
        self.scheduler.every(2).seconds.do(self.job)

    def job(self):
        self.log.info("tick")
"""


@dataclass
class Dashboard:
    root: Path
    base_url: str
    token: str
    env: dict[str, str]
    violations: list[str] = field(default_factory=list)
    viewer_base_url: str = ""  # the viewer server (reports only), printed by `quantstrip up`
    viewer_token: str = ""  # the default viewer's token

    def page_url(self, name: str) -> str:
        return f"{self.base_url}/voila/render/reports/{name}.ipynb?token={self.token}"

    def viewer_page_url(self, name: str, token: str | None = None) -> str:
        chosen = self.viewer_token if token is None else token
        return f"{self.viewer_base_url}/voila/render/{name}.ipynb?token={chosen}"


def _wait(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    from conftest import require_component

    require_component(os.path.exists(CHROMIUM), "Debian chromium (/usr/bin/chromium)")
    root = tmp_path_factory.mktemp("dashboard")
    # The package manager installs from this loopback index (pip reads PIP_INDEX_URL).
    index, index_url = serve_index(root / "package-index")
    env = dict(
        os.environ,
        QUANTSTRIP_WORKSPACE=str(root),
        QUANTSTRIP_HOME=str(root / "var"),
        QUANTSTRIP_KEYRING="0",
        PIP_INDEX_URL=index_url,
        PIP_NO_CACHE_DIR="1",
    )
    shutil.copytree(REPO / "reports", root / "reports")
    client = root / "clients" / "ticker"
    client.mkdir(parents=True)
    (client / "ticker.py").write_text(TICKER)
    (client / "client.toml").write_text(
        'kind = "module"\nentry = "ticker.py"\nstop_timeout_s = 3.0\n'
        "[heartbeat]\ninterval_s = 0.5\ntimeout_s = 10.0\n"
    )
    run = [sys.executable, "-m", "quantstrip.cli"]
    subprocess.run([*run, "init"], env=env, cwd=root, check=True, timeout=120, capture_output=True)
    subprocess.run(
        [*run, "demo", "--years", "1"],
        env=env,
        cwd=root,
        check=True,
        timeout=300,
        capture_output=True,
    )
    log = open(root / "up.log", "wb")  # noqa: SIM115 - kept open for the process's life
    up = subprocess.Popen(
        [*run, "up", "--port", "0", "--viewer-port", "0"],
        env=env,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = ""
    viewer = ""

    def printed_url() -> bool:
        nonlocal url, viewer
        if up.poll() is not None:
            raise AssertionError((root / "up.log").read_text())
        for line in (root / "up.log").read_text().splitlines():
            if line.startswith("Quantstrip dashboard: "):
                url = line.split(": ", 1)[1].strip()
            if line.startswith("Viewer 'viewer' (reports only): "):
                viewer = line.split(": ", 1)[1].strip()
        return bool(url and viewer)

    try:
        _wait(printed_url, 180, "quantstrip up to print the dashboard URL")
        parsed = urlparse(url)
        token = parsed.query.split("token=")[1]
        shared = urlparse(viewer)
        yield Dashboard(
            root,
            f"{parsed.scheme}://{parsed.netloc}",
            token,
            env,
            viewer_base_url=f"{shared.scheme}://{shared.netloc}",
            viewer_token=shared.query.split("token=")[1],
        )
    finally:
        up.terminate()
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, 9)
        log.close()
        subprocess.run(["pkill", "-f", str(root)], check=False)
        index.shutdown()


@pytest.fixture(scope="module")
def browser(dashboard: Dashboard):  # type: ignore[no-untyped-def]
    """Chromium for one test module. Not for the session: while Playwright's sync API is started
    it marks its event loop as running on this thread between calls, so every later test that
    runs an asyncio loop here (ib_async clients) failed with 'This event loop is already
    running'. Stopping it at the end of the module leaves the thread as it found it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, dashboard: Dashboard):  # type: ignore[no-untyped-def]
    """A fresh page that records console errors and refuses every non-loopback request."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    tab = context.new_page()
    tab.console_errors = []  # type: ignore[attr-defined]
    tab.on("console", lambda m: m.type == "error" and tab.console_errors.append(m.text))
    tab.on("pageerror", lambda e: tab.console_errors.append(str(e)))

    def guard(route) -> None:  # type: ignore[no-untyped-def]
        host = urlparse(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            route.continue_()
        else:
            dashboard.violations.append(route.request.url)
            route.abort()

    tab.route("**/*", guard)
    yield tab
    context.close()


def screenshot(tab, name: str) -> Path:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path
