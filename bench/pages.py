"""Time until each dashboard page is interactive, in headless chromium, against a trivial Voila
page served the same way in the same run.

Baseline: a Voila notebook with one `print`, which measures what Voila itself costs (kernel start,
page assets), so each page's ratio shows what the page adds. It runs in the pages' own kernelspec
(quantstrip-page, forked warm: dashboard/warm_kernels.py), so it is served the same way. The
trivial page is loaded between each page's repeats and the ratio is against those loads (the
machine's load moves during a run). A page is interactive when its own content (a selector it
renders) is visible. Each page is loaded once cold (first), then three times; the median of the
three is reported (not the best), with the goals: under 1.5 s and within 1.2x of the trivial page.

Then the portfolio page again on a 1,000,000-execution database (bench/report.py's generator),
which is what a long-running desk has, not the one-year demo.

Each load opens a new tab by default (a page opened from a bookmark or a link in a new tab).
`--same-tab` navigates one tab from page to page instead (an operator following the home page's
links): a new tab also pays for Chromium's own work, measured on a 2-core machine at about
2 s of CPU per tab (the browser UI's renderer of headless Chromium, a new renderer process
compiling Voila's scripts again), which loads the machine during the page's own load.

Usage: python bench/pages.py [--executions N] [--skip-large] [--pages monitor,clients]
       [--same-tab]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
PAGES = {
    "home": "a.qs-link",
    "monitor": "text=updated",
    "blotter": ".qs-positions",
    "clients": ".qs-client-name input",
    "sql_editor": ".qs-sql textarea",
    "portfolio": ".qs-stats table",
    "notifications": "text=Notification centre",
    "settings": ".qs-settings-text textarea",
    "logs": "select",
    "packages": ".qs-packages",
}
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPEATS = 3
GOAL_S, GOAL_RATIO = 1.5, 1.2


def baseline_notebook(path: Path) -> None:
    trivial = nbformat.v4.new_notebook()
    trivial.metadata["kernelspec"] = nbformat.read(REPO / "reports" / "home.ipynb", 4).metadata[
        "kernelspec"
    ]
    trivial.cells = [nbformat.v4.new_code_cell("print('baseline-ready')")]
    nbformat.write(trivial, path)


def demo_workspace(root: Path) -> None:
    """This process's workspace in `root`, as the benches serve it (their dashboard servers
    inherit the environment): the pages, the trivial baseline page and the one-year demo."""
    os.environ.update(
        QUANTSTRIP_WORKSPACE=str(root),
        QUANTSTRIP_HOME=str(root / "var"),
        QUANTSTRIP_KEYRING="0",
    )
    shutil.copytree(REPO / "reports", root / "reports")
    baseline_notebook(root / "reports" / "baseline.ipynb")
    cli = [sys.executable, "-m", "quantstrip.cli"]
    subprocess.run([*cli, "init"], check=True, capture_output=True, cwd=root)
    subprocess.run([*cli, "demo", "--years", "1"], check=True, capture_output=True, cwd=root)


def generated_ledger(root: Path, executions: int) -> None:
    """The demo's ledger replaced by `executions` generated ones across 50 strategies
    (bench/report.py's generator): what a long-running desk has."""
    from report import generate

    database = root / "var" / "quantstrip.db"
    for stale in database.parent.glob("quantstrip.db*"):
        stale.unlink()
    generate(database, executions)


class Timer:
    def __init__(self, context, server, same_tab: bool = False) -> None:  # type: ignore[no-untyped-def]
        self.context = context
        self.server = server
        self.tab = context.new_page() if same_tab else None

    def load(self, page: str, selector: str) -> float:
        tab = self.tab or self.context.new_page()
        begin = time.perf_counter()
        tab.goto(self.server.url(f"/voila/render/reports/{page}.ipynb"), timeout=300_000)
        tab.wait_for_selector(selector, timeout=300_000)
        elapsed = time.perf_counter() - begin
        if self.tab is None:
            tab.close()
        else:
            tab.goto("about:blank")  # the page unloads, as when the next link is followed
        return elapsed

    def measure(self, page: str, selector: str) -> tuple[float, float]:
        first = self.load(page, selector)
        return first, statistics.median(self.load(page, selector) for _ in range(REPEATS))

    def interleaved(self, page: str, selector: str) -> tuple[float, float, float]:
        """(first load, median of the page, median of the trivial page loaded between them):
        on a shared machine the load changes during a run, so each page is compared with the
        trivial page measured alongside it, not only once at the start."""
        first = self.load(page, selector)
        pages, bases = [], []
        for _ in range(REPEATS):
            bases.append(self.load("baseline", "text=baseline-ready"))
            pages.append(self.load(page, selector))
        return first, statistics.median(pages), statistics.median(bases)


def verdict(seconds: float, ratio: float) -> str:
    ok = seconds < GOAL_S and ratio <= GOAL_RATIO
    return "ok" if ok else "over goal"


def run(root: Path, pages: dict[str, str], title: str, same_tab: bool = False) -> None:
    from playwright.sync_api import sync_playwright

    from quantstrip.dashboard.server import start

    server = start(port=0, timeout_s=300)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            timer = Timer(context, server, same_tab)
            base_first, base = timer.measure("baseline", "text=baseline-ready")
            print(f"\n== {title}, {'one tab navigated' if same_tab else 'a new tab per load'}")
            print(
                f"{'page':14} {'first':>7} {'median':>7} {'ratio':>6}  goal <{GOAL_S}s, "
                f"<= {GOAL_RATIO}x (trivial Voila page: first {base_first:.2f}s, median "
                f"{base:.2f}s of {REPEATS})"
            )
            for page, selector in pages.items():
                first, median, beside = timer.interleaved(page, selector)
                ratio = median / beside
                print(
                    f"{page:14} {first:6.2f}s {median:6.2f}s {ratio:5.2f}x  "
                    f"{verdict(median, ratio)} (trivial page alongside: median {beside:.2f}s)"
                )
            browser.close()
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument(
        "--pages", default="", help="comma-separated page names (default: every page)"
    )
    parser.add_argument(
        "--same-tab", action="store_true", help="navigate one tab instead of a new tab per load"
    )
    args = parser.parse_args()
    chosen = [name for name in args.pages.split(",") if name]
    unknown = sorted(set(chosen) - set(PAGES))
    if unknown:
        parser.error(f"unknown page(s) {', '.join(unknown)}; known: {', '.join(PAGES)}")
    pages = {name: PAGES[name] for name in chosen} if chosen else PAGES
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        demo_workspace(root)
        os.chdir(root)
        run(root, pages, "demo workspace (one year, three strategies)", args.same_tab)
        if args.skip_large or "portfolio" not in pages:
            return
        begin = time.perf_counter()
        generated_ledger(root, args.executions)
        print(f"\n(generated {args.executions:,} executions in {time.perf_counter() - begin:.0f}s)")
        run(
            root,
            {"portfolio": PAGES["portfolio"]},
            f"{args.executions:,} executions, 50 strategies",
            args.same_tab,
        )


if __name__ == "__main__":
    main()
