"""Issue 17 through the real dashboard (Jupyter + Voila + kernels) in headless Chromium and over
HTTP: the SQL editor page refuses every escape, private files are not served, the token stays out
of kernels, the package page installs only index packages."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from support.browser import Dashboard, _wait
from support.escapes import DUCKDB_ESCAPES, TRADING_TABLES, Witness, fill
from support.kernels import run_printed
from support.sql_editor import run_in_editor

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


def _status(url: str, token: str | None = None) -> tuple[int, str]:
    """The status of GET `url` (redirects not followed) and where it redirects to."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return None

    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=60) as response:
            return int(response.status), ""
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.headers.get("Location") or ""


def test_private_files_are_not_served_to_the_operator_token_either(dashboard: Dashboard) -> None:
    secrets = Path(dashboard.root) / "var" / "secrets"
    assert any(secrets.iterdir()), "the dashboard token is kept in the vault"
    for path in (
        "/files/var/secrets/master.key",
        "/files/var/secrets/vault.json",
        "/files/var/quantstrip.db",
        "/view/var/secrets/vault.json",
        "/view/var/secrets/master.key",
        "/api/contents/var/secrets/vault.json",
        "/api/contents/var/secrets",
        "/api/contents/var",
        "/voila/render/var/secrets/vault.json",
    ):
        code, where = _status(f"{dashboard.base_url}{path}?token={dashboard.token}")
        if code in (301, 302):  # Voila sends other files to /voila/files/: that must refuse
            code, where = _status(f"{dashboard.base_url}{where}", token=dashboard.token)
        assert code in (403, 404), (path, code, where)
    # Run outputs of notebook clients stay open to the operator (the monitor links them).
    runs = Path(dashboard.root) / "var" / "runs" / "probe"
    runs.mkdir(mode=0o700, parents=True, exist_ok=True)
    runs.chmod(0o700)
    (runs / "out.ipynb").touch(mode=0o600)
    (runs / "out.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )
    code, _ = _status(
        f"{dashboard.base_url}/api/contents/var/runs/probe/out.ipynb?token={dashboard.token}"
    )
    assert code == 200
    listing = urllib.request.urlopen(
        f"{dashboard.base_url}/api/contents?token={dashboard.token}", timeout=60
    ).read()
    assert b'"var"' not in listing


def test_make_run_setup_leaves_every_data_file_private(dashboard: Dashboard) -> None:
    """init + demo + up (daemon, a simulation client, the dashboard) under the test's umask 022:
    the data directory is 0700 and nothing in it is open to other users."""
    home = Path(dashboard.root) / "var"
    expected = [
        home / "quantstrip.db",
        home / "simulation.db",
        home / "secrets" / "vault.json",
        home / "logs",
    ]
    _wait(lambda: all(p.exists() for p in expected), 120, "the data files of a running workspace")
    _wait(lambda: any((home / "logs").rglob("*.log")), 120, "a client log")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    open_to_others = {
        str(path.relative_to(home)): oct(stat.S_IMODE(path.lstat().st_mode))
        for path in [home, *home.rglob("*")]
        if not path.is_symlink() and path.lstat().st_mode & 0o077
    }
    assert open_to_others == {}


def _kernel_processes(dashboard: Dashboard) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "ipykernel_launcher" in cmdline:
            try:
                if process.cwd().startswith(str(dashboard.root)):
                    found.append(process)
            except psutil.Error:
                continue
    return found


def _kernel_environ(process: psutil.Process) -> dict[str, str]:
    """os.environ inside a running kernel, through its connection file (its `-f` argument)."""
    from jupyter_client import BlockingKernelClient

    words = " ".join(process.cmdline()).split()
    client = BlockingKernelClient(connection_file=words[words.index("-f") + 1])
    client.load_connection_file()
    _, printed = run_printed(client, "import json, os\nprint(json.dumps(dict(os.environ)))")
    return dict(json.loads(printed))


def test_the_token_is_in_no_kernel_environment(page, dashboard: Dashboard) -> None:  # type: ignore[no-untyped-def]
    page.goto(dashboard.page_url("home"), timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector("a.qs-link", timeout=PAGE_TIMEOUT_MS)
    kernels = _kernel_processes(dashboard)
    assert kernels, "the page's kernel is running"
    servers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "jupyter" in " ".join(p.info["cmdline"] or []) and "lab" in (p.info["cmdline"] or [])
    ]
    for process in [*kernels, *servers]:
        try:
            environ = process.environ()
            cmdline = " ".join(process.cmdline())
        except psutil.NoSuchProcess:
            continue
        carrying = [name for name, value in environ.items() if dashboard.token in value]
        assert carrying == [], (process, cmdline)
        assert dashboard.token not in cmdline, process
    for process in kernels:
        # A page kernel is forked by the warm starter: /proc shows the environment it was
        # forked with, the kernel's own (os.environ, what its code reads) is asked of it.
        carrying = [
            name for name, value in _kernel_environ(process).items() if dashboard.token in value
        ]
        assert carrying == [], process
    assert os.environ.get("QUANTSTRIP_TOKEN_FD") is None
