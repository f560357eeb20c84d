"""The CLI end to end (`python -m quantstrip ...` processes) and the systemd user unit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import require_component
from support.daemon import TICKER, DaemonHandle, write_module_client

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantstrip", *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_controls_the_daemon(workspace: Path, daemon: DaemonHandle) -> None:
    write_module_client("ticker", TICKER)
    research = workspace / "notebooks" / "eod.ipynb"
    research.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), research)
    promoted = cli(
        "promote", str(research), "--name", "eod", "--schedule", "every day at 16:05", cwd=workspace
    )
    assert promoted.returncode == 0, promoted.stderr
    daemon.start()
    daemon.wait_heartbeat("ticker")

    listed = cli("clients", "list", "--json", cwd=workspace)
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["ticker"]["state"] == "running" and rows["eod"]["state"] == "scheduled"
    assert rows["eod"]["next_run"].endswith("16:05:00.000000")
    table = cli("clients", "list", cwd=workspace).stdout
    assert "ticker" in table and "running" in table
    # The table gives times as the monitor does: the operator's zone, named, to the second.
    (eod,) = [line for line in table.splitlines() if line.startswith("eod ")]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z+\-0-9]+$", eod), eod
    assert ".000000" not in table

    stopped = cli("clients", "stop", "ticker", cwd=workspace)
    assert stopped.returncode == 0 and "state=stopping" in stopped.stdout
    daemon.wait_state("ticker", "stopped")
    assert cli("clients", "restart", "ticker", cwd=workspace).returncode == 0
    daemon.wait_heartbeat("ticker")
    unknown = cli("clients", "start", "ghost", cwd=workspace)
    assert unknown.returncode == 1 and "no client named 'ghost'" in unknown.stderr

    logs = cli("clients", "logs", "ticker", "-n", "5", cwd=workspace)
    assert logs.returncode == 0 and logs.stdout.strip()


def test_cli_reports_a_daemon_that_is_not_running(workspace: Path) -> None:
    result = cli("clients", "stop", "anything", cwd=workspace)
    assert result.returncode == 1 and "daemon not reachable" in result.stderr


def test_service_install_writes_a_unit_that_systemd_accepts(workspace: Path) -> None:
    unit = workspace / "units" / "quantstrip.service"
    result = cli("service", "install", "--path", str(unit), cwd=workspace)
    assert result.returncode == 0, result.stderr
    text = unit.read_text()
    assert f'ExecStart="{sys.executable}" -m quantstrip daemon' in text
    assert f'Environment="QUANTSTRIP_HOME={workspace / "var"}"' in text
    assert f"WorkingDirectory={workspace}" in text
    assert "Restart=on-failure" in text and "KillMode=process" in text
    analyze = shutil.which("systemd-analyze")
    require_component(analyze is not None, "systemd-analyze (Debian package systemd)")
    verify = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stderr


def test_a_second_daemon_for_the_same_workspace_refuses_to_start(
    workspace: Path, daemon: DaemonHandle
) -> None:
    daemon.start()
    second = cli("daemon", cwd=workspace)
    assert second.returncode == 1
    assert f"another daemon (pid {daemon.proc.pid}) is running" in second.stderr
    assert daemon.control.available()


def test_every_command_is_in_the_lazy_table_with_its_modules_help() -> None:
    import argparse

    from quantstrip.cli import COMMANDS, build_parser

    parser = build_parser(None)  # every module registers its parsers
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    registered = {c.dest: c.help for c in action._choices_actions}
    table = {c.name: c.help for c in COMMANDS}
    assert registered == table  # a command missing from the table would vanish from --help


HELP_IMPORTS = """
import sys
from quantstrip.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
loaded = sorted(m for m in sys.modules if m.startswith("quantstrip.commands.")
                or m.split(".")[0] in ("pandas", "duckdb", "jupyter_server", "papermill"))
print("IMPORTED:" + ",".join(loaded))
"""


def test_help_lists_every_command_without_importing_any(tmp_path: Path) -> None:
    from quantstrip.cli import COMMANDS

    def imported(*args: str) -> tuple[str, list[str]]:
        done = subprocess.run(
            [sys.executable, "-c", HELP_IMPORTS, *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        text, _, modules = done.stdout.rpartition("IMPORTED:")
        return text, [m for m in modules.strip().split(",") if m]

    text, modules = imported("--help")
    assert modules == []
    # (a long name gets its help on the next line: the name ends its line)
    assert all(re.search(rf"^    {re.escape(c.name)}( |$)", text, re.M) for c in COMMANDS), text
    text, modules = imported("clients", "--help")
    assert modules == ["quantstrip.commands.clients"]
    assert "list" in text and "run-now" in text
    # report's help needs neither pandas nor DuckDB (bench/cli_start.py measured 0.75 s for it)
    text, modules = imported("report", "--help")
    assert modules == ["quantstrip.commands.report"] and "--horizon" in text
