"""Encrypted secrets: a Fernet vault under the data directory.

The key comes from the OS keyring when a real backend exists, else from a 0600 key file beside
the vault. Rotation writes the new key *in front of* the old one before re-encrypting, so a crash
at any step leaves every secret decryptable (MultiFernet tries each key).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from quantstrip.errors import ConfigError
from quantstrip.files import exclusive, write_atomic
from quantstrip.paths import workspace

KEYRING_SERVICE = "quantstrip"
MASK = "********"


class KeyringUnavailable(ConfigError):
    """The OS keyring failed to answer (locked, restarting, D-Bus timeout)."""


class Secret:
    """A secret value whose str/repr are masked; `.reveal()` is the only way to the plaintext."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


class Vault:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or workspace().secrets
        self.vault_file = self.directory / "vault.json"
        self.key_file = self.directory / "master.key"

    # ---- keys -------------------------------------------------------------------------------
    def _exclusive(self) -> AbstractContextManager[None]:
        """One writer at a time across processes (CLI, dashboard, clients): without it two
        concurrent writes lose one another's secret, and two first writes would each create a
        key, leaving secrets encrypted under a key that was overwritten."""
        return exclusive(self.directory / ".vault.lock")

    def _keyring(self):  # type: ignore[no-untyped-def]
        if os.environ.get("QUANTSTRIP_KEYRING", "1") == "0":
            return None
        try:
            import keyring

            backend = keyring.get_keyring()
            # The fail and null backends store nothing, and a chainer without members is the
            # same: a key "stored" there would be lost, so the 0600 key file is used instead.
            module = type(backend).__module__
            if module.endswith((".fail", ".null")) or getattr(backend, "priority", 1) <= 0:
                return None
            if module.endswith(".chainer") and not getattr(backend, "backends", None):
                return None
            return keyring
        except Exception:
            return None

    def _keyring_user(self) -> str:
        return str(self.directory.resolve())

    def _load_keys(self) -> list[bytes]:
        """The vault's keys, newest first; [] only when none was ever stored. A keyring that
        fails to answer raises: taking its silence for "no key" would make a new key and leave
        every stored secret unreadable."""
        ring = self._keyring()
        if ring is not None:
            try:
                stored = ring.get_password(KEYRING_SERVICE, self._keyring_user())
            except Exception as exc:
                raise KeyringUnavailable(
                    f"the OS keyring did not answer ({type(exc).__name__}); the secret vault "
                    f"key cannot be read. Nothing was changed: try again once the keyring is "
                    f"unlocked or running (or set QUANTSTRIP_KEYRING=0 to use the key file)"
                ) from None
            if stored:
                return [k.encode() for k in stored.split(",")]
        if self.key_file.exists():
            return [line for line in self.key_file.read_bytes().split() if line]
        return []

    def _store_keys(self, keys: list[bytes]) -> None:
        ring = self._keyring()
        if ring is not None:
            try:
                ring.set_password(
                    KEYRING_SERVICE, self._keyring_user(), ",".join(k.decode() for k in keys)
                )
                return
            except Exception:
                pass
        write_atomic(self.key_file, b"\n".join(keys) + b"\n", private=True)

    def _fernet(self, create: bool) -> MultiFernet | None:
        keys = self._load_keys()
        if not keys:
            if not create:
                return None
            if self._tokens():
                # Secrets exist, so a key existed: a new one would orphan them for good.
                raise ConfigError(
                    f"the secret vault {self.vault_file} holds secrets but its key is missing "
                    f"(neither the OS keyring nor {self.key_file.name} has it); restore the key "
                    "rather than writing under a new one"
                )
            keys = [Fernet.generate_key()]
            self._store_keys(keys)
        return MultiFernet([Fernet(k) for k in keys])

    # ---- values -------------------------------------------------------------------------------
    def _tokens(self) -> dict[str, str]:
        if not self.vault_file.exists():
            return {}
        try:
            data = json.loads(self.vault_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"secret vault {self.vault_file} is corrupt: {exc.msg}") from None
        return dict(data)

    def _save_tokens(self, tokens: dict[str, str]) -> None:
        data = json.dumps(tokens, indent=1, sort_keys=True).encode()
        write_atomic(self.vault_file, data, private=True)

    def set(self, name: str, value: str) -> None:
        if not name:
            raise ConfigError("secret name must not be empty")
        if not isinstance(value, str):
            raise ConfigError(f"secret {name}: value must be a string")
        with self._exclusive():
            fernet = self._fernet(create=True)
            assert fernet is not None
            tokens = self._tokens()
            tokens[name] = fernet.encrypt(value.encode()).decode()
            self._save_tokens(tokens)

    def get(self, name: str) -> Secret | None:
        token = self._tokens().get(name)
        if token is None:
            return None
        fernet = self._fernet(create=False)
        if fernet is None:
            raise ConfigError(f"secret {name} exists but the vault key is missing")
        try:
            return Secret(fernet.decrypt(token.encode()).decode())
        except InvalidToken:
            raise ConfigError(f"secret {name} cannot be decrypted with the current key") from None

    def delete(self, name: str) -> bool:
        with self._exclusive():
            tokens = self._tokens()
            if tokens.pop(name, None) is None:
                return False
            self._save_tokens(tokens)
            return True

    def names(self) -> list[str]:
        return sorted(self._tokens())

    def values(self) -> Iterator[str]:
        """Every plaintext, for the log redaction filter only."""
        for name in self.names():
            secret = self.get(name)
            if secret is not None and secret.reveal():
                yield secret.reveal()

    def rotate(self) -> int:
        """Re-encrypt every secret under a new key; returns how many were re-encrypted."""
        with self._exclusive():
            old = self._load_keys()
            if not old and self._tokens():
                raise ConfigError(f"the secret vault {self.vault_file} has no key to rotate from")
            new = Fernet.generate_key()
            self._store_keys([new, *old])
            fernet = MultiFernet([Fernet(k) for k in [new, *old]])
            tokens = {
                name: fernet.rotate(token.encode()).decode()
                for name, token in self._tokens().items()
            }
            self._save_tokens(tokens)
            self._store_keys([new])
            return len(tokens)
