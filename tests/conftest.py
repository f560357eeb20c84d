"""Shared fixtures: an isolated workspace per test, and the rule for optional components.

Fixtures specific to one area live in `tests/support/<area>.py` and are listed in
`pytest_plugins` below, so every test can use them without importing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins: list[str] = [
    "support.time_travel",
    "support.daemon",
    "support.smtp",
    "support.browser",
    "support.ib",
    "support.examples",
    "support.chf_statement",
]


# Fixtures that mean a test drives a system component: the test gets the component's marker,
# so `-m "not browser"` / `-m "not odbc"` select by what a test really uses.
COMPONENT_FIXTURES = {"page": "browser", "browser": "browser", "odbc_ini": "odbc"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in set(COMPONENT_FIXTURES).intersection(getattr(item, "fixturenames", ())):
            item.add_marker(COMPONENT_FIXTURES[fixture])


def require_component(available: bool, what: str) -> None:
    """Skip when a system component is missing on a developer machine; fail in CI (CI=true),
    where `make test` must have installed it."""
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is missing in CI: `make test` should have installed it")
    pytest.skip(f"{what} is not installed (run `make test` as root to install it)")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh workspace root with its data directory, set as this process's workspace."""
    root = tmp_path / "ws"
    root.mkdir()
    monkeypatch.setenv("QUANTSTRIP_WORKSPACE", str(root))
    monkeypatch.setenv("QUANTSTRIP_HOME", str(root / "var"))
    monkeypatch.delenv("QUANTSTRIP_DATABASE", raising=False)
    from quantstrip import db_handler
    from quantstrip.paths import init_workspace

    init_workspace()
    db_handler.reset()
    yield root
    db_handler.reset()
