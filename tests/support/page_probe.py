"""A dashboard page built in a fresh interpreter against a real demo workspace, as its Voila
kernel builds it: what it loaded, what it built (test_page_startup, test_shared_styles)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def demo_workspace(workspace: Path) -> dict[str, str]:
    """`init` and a one-year demo in `workspace`, plus a registered client (the daemon is
    down); the environment to run a page in."""
    env = {**os.environ, "QUANTSTRIP_KEYRING": "0"}
    cli = [sys.executable, "-m", "quantstrip.cli"]
    for step in (["init"], ["demo", "--years", "1"]):
        subprocess.run([*cli, *step], check=True, capture_output=True, cwd=workspace, env=env)
    client = workspace / "clients" / "nightly"
    client.mkdir(parents=True, exist_ok=True)
    (client / "nightly.ipynb").write_text("{}")
    (client / "client.toml").write_text(
        'kind = "notebook"\nentry = "nightly.ipynb"\nschedule = "every day at 16:30"\n'
    )
    return env


def probe(script: str, args: list[str], env: dict[str, str], workspace: Path) -> Any:
    """Run `script` (it prints JSON last) in a fresh interpreter; what it printed, parsed."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=workspace,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
