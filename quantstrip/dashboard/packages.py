"""Package manager: what is installed in the project environment, and pip install from the
registry into it (the same interpreter the kernels and clients run on)."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import threading
from importlib import metadata

import ipywidgets as w

from quantstrip.dashboard.common import error_html, header

REQUIREMENT = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?([<>=!~]=?[A-Za-z0-9.*+!_-]+)?$"
)


def installed() -> list[tuple[str, str]]:
    found = {(d.metadata["Name"] or "?", d.version) for d in metadata.distributions()}
    return sorted(found, key=lambda item: item[0].lower())


def pip_install(requirement: str) -> tuple[int, str]:
    if not REQUIREMENT.match(requirement.strip()):
        return 2, f"not a package requirement: {requirement!r} (e.g. 'ta-lib' or 'numpy==2.1.0')"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            requirement.strip(),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


class PackagesPage(w.VBox):
    def __init__(self) -> None:
        self.filter = w.Text(description="Filter", placeholder="name")
        self.table = w.HTML()
        self.requirement = w.Text(description="Install", placeholder="package or package==version")
        self.install_button = w.Button(description="pip install", button_style="warning")
        self.output = w.HTML()
        self.requirement.add_class("qs-install")
        self.install_button.add_class("qs-install-button")
        self.output.add_class("qs-install-output")
        self.filter.observe(lambda _: self.refresh(), names="value")
        self.install_button.on_click(lambda _: self.install())
        super().__init__(
            [
                header("Package manager"),
                w.HBox([self.requirement, self.install_button]),
                self.output,
                self.filter,
                self.table,
            ]
        )
        self.refresh()

    def refresh(self) -> None:
        needle = self.filter.value.lower()
        rows = [(n, v) for n, v in installed() if needle in n.lower()]
        body = "".join(
            f"<tr><td style='text-align:left'>{html.escape(n)}</td><td>{html.escape(v)}</td></tr>"
            for n, v in rows
        )
        self.table.value = (
            f"<p>{len(rows)} packages in {html.escape(sys.prefix)}</p>"
            "<table class='qs-table qs-packages'><tr><th>package</th><th>version</th></tr>"
            f"{body}</table>"
        )

    def install(self) -> None:
        requirement = self.requirement.value
        self.output.value = f"installing {html.escape(requirement)}…"
        self.install_button.disabled = True

        def work() -> None:
            code, text = pip_install(requirement)
            shown = f"<pre>{html.escape(text[-6000:])}</pre>"
            self.output.value = shown if code == 0 else error_html(f"pip exited {code}") + shown
            self.install_button.disabled = False
            self.refresh()

        threading.Thread(target=work, daemon=True).start()


def page() -> PackagesPage:
    return PackagesPage()
