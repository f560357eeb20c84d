"""The repository's example clients (`clients/`) built in the test process as the daemon would
start them, and closed when the test ends, pass or fail: no scheduler or risk-watcher thread of
one lives on in the pytest process to write into a later test's workspace."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from quantstrip import ClientBase, db_handler
from quantstrip.client.runner import load_client_class

EXAMPLES = Path(__file__).resolve().parents[2] / "clients"

ExampleClient = Callable[..., Any]


@pytest.fixture
def example_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[ExampleClient]:
    """`example_client(workspace, name, mode=None, **parameters)`: the example `name` copied into
    `workspace/clients/` (unless there already) and instantiated with the daemon's environment
    (QUANTSTRIP_CLIENT, QUANTSTRIP_MODE, QUANTSTRIP_CLIENT_PARAMETERS)."""
    made: list[ClientBase] = []

    def build(workspace: Path, name: str, mode: str | None = None, **parameters: Any) -> Any:
        folder = workspace / "clients" / name
        if not folder.exists():
            shutil.copytree(EXAMPLES / name, folder)
        monkeypatch.setenv("QUANTSTRIP_CLIENT", name)
        if mode is not None:
            monkeypatch.setenv("QUANTSTRIP_MODE", mode)
        monkeypatch.setenv("QUANTSTRIP_CLIENT_PARAMETERS", json.dumps(parameters))
        client = load_client_class(folder / f"{name}.py", None, name)()
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()
    db_handler.close()
    from quantstrip.brokers.risk import watcher

    assert watcher.running() == [], "an example client's risk watcher outlived the test"
