"""Settings tree, encrypted secrets and key rotation on a real workspace."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from quantstrip import settings
from quantstrip.errors import ConfigError
from quantstrip.secrets import Secret, Vault

PLANTED = "planted-Secret-9f8e7d"


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


def test_secret_is_encrypted_at_rest_and_masked_everywhere(workspace: Path, caplog) -> None:
    settings.set_secret("smtp.primary.password", PLANTED)
    secret = settings.get_secret("smtp.primary.password")
    assert isinstance(secret, Secret) and secret.reveal() == PLANTED
    assert PLANTED not in repr(secret) and PLANTED not in str(secret)
    assert settings.tree()["secrets"] == {"smtp.primary.password": "********"}
    from quantstrip import logger

    log = logger.get("planted")
    log.info("connecting with password %s", PLANTED)
    log.warning("token=%s", "abc123def")
    for handler in log.handlers:
        handler.flush()
    for path in (workspace / "var").rglob("*"):
        if path.is_file():
            assert PLANTED.encode() not in path.read_bytes(), path
    text = logger.log_path("planted").read_text()
    assert "********" in text and "abc123def" not in text
    assert PLANTED not in caplog.text


def test_key_file_is_private_and_rotation_keeps_every_secret(workspace: Path) -> None:
    vault = Vault()
    vault.set("a", "alpha-value")
    vault.set("b", "beta-value")
    assert stat.S_IMODE(vault.key_file.stat().st_mode) == 0o600
    old_key = vault.key_file.read_bytes()
    old_tokens = vault.vault_file.read_text()
    assert vault.rotate() == 2
    assert vault.key_file.read_bytes() != old_key
    assert vault.vault_file.read_text() != old_tokens
    assert vault.get("a").reveal() == "alpha-value" and vault.get("b").reveal() == "beta-value"


def test_rotate_key_command(workspace: Path) -> None:
    settings.set_secret("flex.token", "tok-123456")
    result = subprocess.run(
        [sys.executable, "-m", "quantstrip.cli", "secrets", "rotate-key"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "QUANTSTRIP_KEYRING": "0"},
    )
    assert "re-encrypted 1 secret" in result.stdout
    assert "tok-123456" not in result.stdout
    assert settings.get_secret("flex.token").reveal() == "tok-123456"
