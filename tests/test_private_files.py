"""The data directory is private to its owner (issue 17): created 0700, files 0600 under the
CLI's umask, loosened modes warned about at every start and tightened by `quantstrip init`.
The make-run setup (init + demo + up) is checked in test_security_dashboard.py."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from quantstrip.paths import init_workspace, loosened


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it from a shell with the usual umask 022."""
    return subprocess.run(
        [sys.executable, "-m", "quantstrip", *args],
        cwd=root,
        env={
            **os.environ,
            "QUANTSTRIP_WORKSPACE": str(root),
            "QUANTSTRIP_HOME": str(root / "var"),
            "QUANTSTRIP_KEYRING": "0",
        },
        input="s3cret\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        preexec_fn=lambda: os.umask(0o022),
    )


def test_cli_writes_the_data_directory_private_under_umask_022(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    cli(root, "init")
    cli(root, "settings", "set", "dashboard.port", "8899")
    cli(root, "secrets", "set", "brokers.ib.password")
    cli(root, "demo", "--years", "1")
    home = root / "var"
    assert mode(home) == 0o700
    for path in (home / "quantstrip.db", home / "settings.toml", home / "secrets" / "vault.json"):
        assert mode(path) == 0o600, path
    assert [p for p in home.rglob("*") if p.stat().st_mode & 0o077] == []


def test_a_loosened_file_is_warned_about_at_start_and_init_tightens_it(
    workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ws = init_workspace()
    database = ws.database
    database.write_bytes(b"")
    os.chmod(database, 0o644)
    os.chmod(ws.home, 0o755)
    with caplog.at_level(logging.WARNING, logger="quantstrip.security"):
        init_workspace()
    warned = "\n".join(r.getMessage() for r in caplog.records)
    assert str(database) in warned and "0o644" in warned
    assert str(ws.home) in warned
    # `quantstrip init` makes it private again and says what it changed.
    result = subprocess.run(
        [sys.executable, "-m", "quantstrip", "init"],
        cwd=workspace,
        env={**os.environ, "QUANTSTRIP_KEYRING": "0"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert f"made private (owner only): {database}" in result.stdout
    assert loosened(ws) == []
    assert mode(database) == 0o600 and mode(ws.home) == 0o700


def test_the_settings_file_is_private_whatever_the_umask(workspace: Path) -> None:
    """A script run from a shell (umask 022), not the CLI, still writes the settings 0600."""
    from quantstrip import settings

    previous = os.umask(0o022)
    try:
        settings.set("dashboard.port", 8899)
    finally:
        os.umask(previous)
    assert mode(settings.settings_path()) == 0o600
