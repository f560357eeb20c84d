"""Encrypted secrets: Fernet at rest, masked everywhere, private key file, key rotation."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support.processes import run_at_once

from quantstrip import settings
from quantstrip.secrets import Secret, Vault

PLANTED = "planted-Secret-9f8e7d"


@pytest.fixture(autouse=True)
def fresh_settings(workspace: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    settings._reset_for_tests()
    yield
    settings._reset_for_tests()


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


def test_null_keyring_backend_falls_back_to_the_key_file(workspace: Path, monkeypatch) -> None:
    import keyring
    from keyring.backends import null

    monkeypatch.setenv("QUANTSTRIP_KEYRING", "1")
    previous = keyring.get_keyring()
    keyring.set_keyring(null.Keyring())
    try:
        vault = Vault()
        vault.set("ib_web.access_token_secret", "null-backend-value")
        assert stat.S_IMODE(vault.key_file.stat().st_mode) == 0o600
        assert vault.get("ib_web.access_token_secret").reveal() == "null-backend-value"
    finally:
        keyring.set_keyring(previous)


SETTER = r"""
import sys, time
from quantstrip.secrets import Vault
folder, worker, start_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
vault = Vault(__import__("pathlib").Path(folder))
time.sleep(max(0.0, start_at - time.monotonic()))  # all writers start on a brand-new vault at once
for i in range(5):
    vault.set(f"w{worker}.s{i}", f"value-{worker}-{i}")
"""


def test_concurrent_writers_lose_no_secret_and_share_one_key(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    env = dict(os.environ, QUANTSTRIP_KEYRING="0")
    run_at_once(SETTER, [[str(folder), str(w)] for w in range(6)], env=env)
    vault = Vault(folder)  # the autouse fixture keeps the keyring out of it, as in the writers
    assert len(vault.names()) == 30
    for w in range(6):
        for i in range(5):
            secret = vault.get(f"w{w}.s{i}")
            assert secret is not None and secret.reveal() == f"value-{w}-{i}"


class FlakyKeyring:
    """An in-memory keyring backend whose next read fails once when armed, as a locked or
    restarting Secret Service does (D-Bus timeout)."""

    def __init__(self) -> None:
        from keyring.backend import KeyringBackend
        from keyring.errors import KeyringError

        store: dict[tuple[str, str], str] = {}
        flaky = self

        class Backend(KeyringBackend):
            priority = 10  # type: ignore[assignment]

            def get_password(self, service: str, username: str) -> str | None:
                if flaky.fail_next:
                    flaky.fail_next = False
                    raise KeyringError("org.freedesktop.DBus.Error.NoReply: timed out")
                return store.get((service, username))

            def set_password(self, service: str, username: str, password: str) -> None:
                store[(service, username)] = password

            def delete_password(self, service: str, username: str) -> None:
                store.pop((service, username), None)

        self.fail_next = False
        self.store = store
        self.backend = Backend()


def test_a_keyring_that_fails_once_never_replaces_the_vault_key(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keyring

    from quantstrip.errors import ConfigError

    flaky = FlakyKeyring()
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "1")
    previous = keyring.get_keyring()
    keyring.set_keyring(flaky.backend)
    try:
        vault = Vault()
        vault.set("ib.password", "first-value")
        assert not vault.key_file.exists()  # the key lives in the keyring
        key = dict(flaky.store)

        flaky.fail_next = True
        with pytest.raises(ConfigError, match="keyring") as raised:
            vault.set("smtp.password", "second-value")
        assert "first-value" not in str(raised.value)
        assert flaky.store == key  # no new master key was generated or stored
        assert vault.names() == ["ib.password"]

        flaky.fail_next = True
        with pytest.raises(ConfigError, match="keyring"):
            vault.get("ib.password")

        # The keyring answers again: everything is readable, writes work, one key throughout.
        assert vault.get("ib.password").reveal() == "first-value"
        vault.set("smtp.password", "second-value")
        assert vault.get("smtp.password").reveal() == "second-value"
        assert flaky.store == key
    finally:
        keyring.set_keyring(previous)


def test_a_vault_whose_key_is_gone_is_never_given_a_new_one(workspace: Path) -> None:
    from quantstrip.errors import ConfigError

    vault = Vault()
    vault.set("a", "alpha-value")
    tokens = vault.vault_file.read_bytes()
    vault.key_file.unlink()  # e.g. a keyring that lost its entry, a key file not restored
    with pytest.raises(ConfigError, match="key"):
        vault.set("b", "beta-value")
    assert vault.vault_file.read_bytes() == tokens and not vault.key_file.exists()
