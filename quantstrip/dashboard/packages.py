"""Package manager: what is installed in the project environment, and pip install from the
registry into it (the same interpreter the kernels and clients run on).

Only packages from the configured index, by name: pip also installs local paths, archives and
URLs, and a local `evilpkg-0.1.tar.gz` typed as a "name" ran its setup.py (issue 17). The typed
text must parse as a PEP 508 requirement without a URL or marker, and must not look like a file;
pip then gets the canonical name (letters, digits and dashes only: it can never be taken for a
path) plus the version specifier, and runs in an empty directory.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
import tempfile
import threading
from importlib import metadata

import ipywidgets as w
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from quantstrip.dashboard import shared_styles
from quantstrip.dashboard.common import error_html, header

EXAMPLE = "(e.g. 'ta-lib' or 'numpy==2.1.0')"
ARCHIVE = re.compile(r"\.(whl|zip|tar|tgz|tar\.gz|tar\.bz2|tar\.xz|egg)$", re.IGNORECASE)


class NotAnIndexPackage(ValueError):
    """The text is not `name[extras] <specifier>` of a package on the index."""


def index_requirement(text: str) -> str:
    """What pip gets for `text`: canonical name, extras and version specifier; or
    NotAnIndexPackage naming the problem."""
    typed = text.strip()
    if not typed or typed.startswith("-"):
        raise NotAnIndexPackage(f"not a package requirement: {typed!r} {EXAMPLE}")
    try:
        requirement = Requirement(typed)
    except InvalidRequirement:
        raise NotAnIndexPackage(f"not a package requirement: {typed!r} {EXAMPLE}") from None
    if requirement.url or requirement.marker:
        raise NotAnIndexPackage(f"refused: {typed!r} has a URL or an environment marker {EXAMPLE}")
    if any(c in typed for c in "/\\:") or ARCHIVE.search(requirement.name):
        raise NotAnIndexPackage(
            f"refused: {typed!r} looks like a file, folder or URL; only packages from the "
            f"index are installed here, by name {EXAMPLE}"
        )
    extras = f"[{','.join(sorted(canonicalize_name(e) for e in requirement.extras))}]"
    return (
        canonicalize_name(requirement.name)
        + (extras if requirement.extras else "")
        + str(requirement.specifier)
    )


def installed() -> list[tuple[str, str]]:
    found = {_name_version(d) for d in metadata.distributions()}
    return sorted(found, key=lambda item: (item[0].lower(), item))


def _name_version(dist: metadata.Distribution) -> tuple[str, str]:
    """Name and Version from the metadata file's header lines. `dist.metadata` parses each whole
    file (descriptions included) with the email parser, and `dist.version` parses it again:
    0.2 s of the page's start for ~170 packages, for two header lines."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, colon, value = line.partition(":")
        if colon and key in ("Name", "Version") and key not in fields:
            fields[key] = value.strip()
    return fields.get("Name") or "?", fields.get("Version", "")


def pip_install(requirement: str) -> tuple[int, str]:
    try:
        argument = index_requirement(requirement)
    except NotAnIndexPackage as exc:
        return 2, str(exc)
    with tempfile.TemporaryDirectory(prefix="qs-pip-") as empty:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                argument,
            ],
            cwd=empty,
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
    shared_styles.install()  # default layouts and styles shared: shared_styles.py
    return PackagesPage()
