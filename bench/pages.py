"""Time until each dashboard page is interactive, first and repeated load, in headless chromium.

Baseline, in the same run and server: a trivial Voila notebook (one `print`), which measures
what Voila itself costs (kernel start, page assets) so the ratio shows what each page adds.
A page is interactive when its own content (a selector it renders) is visible.
Usage: python bench/pages.py   (builds a one-year demo workspace in a temporary folder)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
PAGES = {
    "home": "a.qs-link",
    "monitor": "text=updated",
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


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        os.environ.update(
            QUANTSTRIP_WORKSPACE=str(root),
            QUANTSTRIP_HOME=str(root / "var"),
            QUANTSTRIP_KEYRING="0",
        )
        shutil.copytree(REPO / "reports", root / "reports")
        trivial = nbformat.v4.new_notebook()
        trivial.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        trivial.cells = [nbformat.v4.new_code_cell("print('baseline-ready')")]
        nbformat.write(trivial, root / "reports" / "baseline.ipynb")
        run = [sys.executable, "-m", "quantstrip.cli"]
        subprocess.run([*run, "init"], check=True, capture_output=True, cwd=root)
        subprocess.run([*run, "demo", "--years", "1"], check=True, capture_output=True, cwd=root)
        from quantstrip.dashboard.server import start

        server = start(port=0)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                context = browser.new_context()

                def load(page_name: str, selector: str) -> float:
                    tab = context.new_page()
                    begin = time.perf_counter()
                    tab.goto(
                        server.url(f"/voila/render/reports/{page_name}.ipynb"), timeout=180_000
                    )
                    tab.wait_for_selector(selector, timeout=180_000)
                    elapsed = time.perf_counter() - begin
                    tab.close()
                    return elapsed

                baseline_first = load("baseline", "text=baseline-ready")
                baseline = min(load("baseline", "text=baseline-ready") for _ in range(2))
                print(
                    f"{'page':14} {'first':>7} {'repeat':>7} {'ratio':>6}  "
                    f"(trivial Voila page: first {baseline_first:.2f}s, repeat {baseline:.2f}s)"
                )
                for page_name, selector in PAGES.items():
                    first = load(page_name, selector)
                    repeat = min(load(page_name, selector) for _ in range(2))
                    print(f"{page_name:14} {first:6.2f}s {repeat:6.2f}s {repeat / baseline:5.1f}x")
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
