"""The monitor reads the registry every 2 s while the daemon is down, and validated every
client.toml each time; a client.toml it could not decode (not UTF-8) failed the whole refresh,
while the daemon only marked that client invalid. Now both read a client the same way
(`registry.load_or_invalid`), and the monitor's reader (`RegistryReader`) validates a client
again only when its files change, as the daemon decides when to reload one."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.daemon import write_client_toml

from quantstrip.daemon import registry
from quantstrip.daemon.registry import ClientConfig, InvalidClient, RegistryReader
from quantstrip.errors import ConfigError


def client(workspace: Path, name: str, **config: str) -> Path:
    (workspace / "clients" / name).mkdir(parents=True, exist_ok=True)
    (workspace / "clients" / name / f"{name}.py").write_text("")
    return write_client_toml(name, kind="module", entry=f"{name}.py", **config)


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the clients validated, in order."""
    seen: list[str] = []
    real = registry.load_client

    def counted(path: Path) -> ClientConfig:
        seen.append(path.parent.name)
        return real(path)

    monkeypatch.setattr(registry, "load_client", counted)
    return seen


def test_unchanged_clients_are_not_validated_again(workspace: Path, validations: list[str]) -> None:
    client(workspace, "alpha")
    client(workspace, "beta")
    reader = RegistryReader()
    first = reader.load()
    assert sorted(validations) == ["alpha", "beta"]
    assert reader.load() == first
    assert sorted(validations) == ["alpha", "beta"]  # not again


def test_a_changed_client_is_validated_again_and_only_it(
    workspace: Path, validations: list[str]
) -> None:
    client(workspace, "alpha")
    client(workspace, "beta")
    reader = RegistryReader()
    reader.load()
    client(workspace, "beta", display_name="Beta, renamed")
    loaded = reader.load()
    assert validations[2:] == ["beta"]
    beta = loaded["beta"]
    assert isinstance(beta, ClientConfig) and beta.display_name == "Beta, renamed"


def test_an_invalid_client_is_valid_once_its_missing_entry_appears(workspace: Path) -> None:
    write_client_toml("late", kind="module", entry="late.py")
    reader = RegistryReader()
    assert isinstance(reader.load()["late"], InvalidClient)
    (workspace / "clients" / "late" / "late.py").write_text("")
    assert isinstance(reader.load()["late"], ClientConfig)


def test_added_and_removed_clients_are_seen(workspace: Path) -> None:
    reader = RegistryReader()
    assert reader.load() == {}
    path = client(workspace, "gamma")
    assert set(reader.load()) == {"gamma"}
    path.unlink()
    assert reader.load() == {}


def test_a_client_file_that_is_not_utf8_is_invalid_and_says_so(workspace: Path) -> None:
    client(workspace, "good")
    bad = client(workspace, "latin")
    bad.write_bytes(
        'kind = "module"\nentry = "latin.py"\ndisplay_name = "Zürich"\n'.encode("latin-1")
    )
    with pytest.raises(ConfigError, match="not UTF-8"):
        registry.load_client(bad)
    loaded = RegistryReader().load()
    assert isinstance(loaded["good"], ClientConfig)
    assert isinstance(loaded["latin"], InvalidClient) and "not UTF-8" in loaded["latin"].error
    assert loaded["latin"].entry == "latin.py"  # still listed with what could be read of it


def test_the_monitor_lists_a_client_it_cannot_decode_as_invalid_with_the_daemon_down(
    workspace: Path,
) -> None:
    from quantstrip.dashboard.monitor import offline_statuses

    client(workspace, "good")
    client(workspace, "latin").write_bytes(b'kind = "module"\nentry = "latin.py"\n# \xe9\n')
    statuses = {s.name: s for s in offline_statuses(validate=True)}
    assert statuses["latin"].state == "invalid" and "not UTF-8" in statuses["latin"].last_error
    assert statuses["good"].state != "invalid"
