"""Settings tree: typed dotted access, comment-preserving writes, validation, cached reloads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.processes import run_at_once

from quantstrip import settings
from quantstrip.errors import ConfigError


@pytest.fixture(autouse=True)
def fresh_settings(workspace: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    settings._reset_for_tests()
    yield
    settings._reset_for_tests()


def test_defaults_and_typed_dotted_access() -> None:
    assert settings.get("brokers.ib.port") == 7497
    assert settings.get("dashboard.host") == "127.0.0.1"
    assert settings.get("my_strat.allocation", 0.1) == 0.1
    with pytest.raises(KeyError, match=r"my_strat\.allocation"):
        settings.get("my_strat.allocation")


def test_set_writes_back_preserving_comments_and_types(workspace: Path) -> None:
    path = settings.settings_path()
    path.write_text("# my notes\n[my_strat]\n# how much\nallocation = 0.25\n")
    settings.set("my_strat.allocation", 0.5)
    settings.set("brokers.ib.port", 4002)
    text = path.read_text()
    assert "# my notes" in text and "# how much" in text
    assert settings.get("my_strat.allocation") == 0.5
    assert settings.get("brokers.ib.port") == 4002


def test_declared_strategy_types_are_enforced(workspace: Path) -> None:
    settings.settings_path().write_text(
        '[my_strat]\nallocation = "lots"\n[my_strat._types]\nallocation = "float"\n'
    )
    with pytest.raises(ConfigError, match=r"my_strat\.allocation: expected float"):
        settings.reload()


def test_invalid_file_names_the_key_and_keeps_previous_settings(workspace: Path) -> None:
    path = settings.settings_path()
    path.write_text("[brokers.ib]\nport = 4001\n")
    assert settings.get("brokers.ib.port") == 4001
    path.write_text("[brokers.ib]\nport = 'not a port'\n")
    os.utime(path, ns=(1, 1))  # a different stamp even within the same mtime granularity
    with pytest.raises(ConfigError, match=r"brokers\.ib\.port"):
        settings.reload()
    assert settings.get("brokers.ib.port") == 4001
    assert "brokers.ib.port" in (settings.last_error() or "")


def test_unknown_platform_key_is_an_error_not_a_silent_default(workspace: Path) -> None:
    with pytest.raises(ConfigError, match=r"dashboard\.prot"):
        settings.validate_text("[dashboard]\nprot = 9999\n")


def test_get_does_no_file_io_between_checks(workspace: Path, monkeypatch) -> None:
    settings.get("brokers.ib.port")
    calls = []
    original = Path.read_text
    monkeypatch.setattr(
        Path, "read_text", lambda self, *a, **k: calls.append(self) or original(self, *a, **k)
    )
    for _ in range(1000):
        settings.get("brokers.ib.port")
    assert calls == []


def test_declared_float_accepts_an_integer_and_returns_a_float(workspace: Path) -> None:
    settings.settings_path().write_text(
        "[my_strat]\nallocation = 1\nsymbols = ['AAPL']\n[my_strat._types]\nallocation = 'float'\n"
    )
    settings.reload()
    value = settings.get("my_strat.allocation")
    assert value == 1.0 and isinstance(value, float)
    assert settings.get("my_strat.symbols") == ["AAPL"]


def test_describe_lists_every_leaf_and_masks_secrets(workspace: Path, monkeypatch) -> None:
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    settings.set("my_strat.allocation", 0.3)
    settings.set_secret("smtp.primary.password", "describe-Secret-77")
    rows = {row["key"]: row for row in settings.describe()}
    assert rows["my_strat.allocation"]["value"] == 0.3
    assert rows["brokers.ib.port"] == {
        "key": "brokers.ib.port",
        "value": 7497,
        "type": "int",
        "secret": False,
    }
    assert rows["smtp.primary.password"]["value"] == "********"
    assert "describe-Secret-77" not in repr(settings.describe())


def test_declare_from_code_types_a_strategy_section(workspace: Path) -> None:
    settings.settings_path().write_text("[my_strat]\nallocation = 2\nname = 'x'\n")
    settings.declare("my_strat", allocation=float, symbols=list)
    assert isinstance(settings.get("my_strat.allocation"), float)
    with pytest.raises(ConfigError, match=r"my_strat\.name: expected int"):
        settings.declare("my_strat", name=int)
    assert settings.last_error() is None and settings.get("my_strat.name") == "x"
    with pytest.raises(ConfigError, match=r"brokers: platform sections"):
        settings.declare("brokers", default=str)


def test_a_change_from_another_process_is_picked_up(workspace: Path, monkeypatch) -> None:
    monkeypatch.setattr(settings, "RELOAD_CHECK_S", 0.0)
    assert settings.get("dashboard.port") == 8888
    subprocess.run(
        [sys.executable, "-m", "quantstrip.cli", "settings", "set", "dashboard.port", "8899"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert settings.get("dashboard.port") == 8899


SETTER = r"""
import sys, time
from quantstrip import settings
worker, start_at = int(sys.argv[1]), float(sys.argv[2])
time.sleep(max(0.0, start_at - time.monotonic()))  # every process edits the file at once
for i in range(5):
    settings.set(f"strat{worker}.param{i}", i)
"""


def test_processes_setting_keys_at_once_lose_nothing(workspace: Path) -> None:
    settings.set("existing.kept", "yes")
    run_at_once(SETTER, [[str(w)] for w in range(6)], env=dict(os.environ), cwd=workspace)
    settings._reset_for_tests()
    assert settings.get("existing.kept") == "yes"
    for w in range(6):
        for i in range(5):
            assert settings.get(f"strat{w}.param{i}") == i
