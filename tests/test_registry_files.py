"""The registry as the pages list it without validating it (`daemon.registry_files`): the same
clients, and the same values shown, as the validated registry (issue 18, performance)."""

from __future__ import annotations

from pathlib import Path

from support.daemon import write_client_toml

from quantstrip.daemon.registry import ClientConfig, InvalidClient, load_registry
from quantstrip.daemon.registry_files import client_names, peek_registry
from quantstrip.dashboard.monitor import offline_statuses


def registry(workspace: Path) -> None:
    for name, file in (("nightly", "nightly.ipynb"), ("sig", "sig.py"), ("plain", "plain.py")):
        (workspace / "clients" / name).mkdir(parents=True, exist_ok=True)
        (workspace / "clients" / name / file).write_text("")
    write_client_toml(
        "nightly",
        kind="notebook",
        entry="nightly.ipynb",
        schedule="every day at 16:30",
        mode="paper",
        display_name="Nightly report",
        enabled=False,
    )
    write_client_toml("sig", kind="module", entry="sig.py", mode="live")
    write_client_toml("plain", kind="module", entry="plain.py")
    write_client_toml("extra", kind="module", entry="missing.py", colour="red")
    (workspace / "clients" / "broken").mkdir()
    (workspace / "clients" / "broken" / "client.toml").write_text('kind = "module\n')


def test_the_unvalidated_registry_lists_every_client_and_shows_the_same_values(
    workspace: Path,
) -> None:
    registry(workspace)
    validated = load_registry()
    peeked = peek_registry()
    assert client_names() == sorted(validated) == sorted(peeked)
    for name, config in validated.items():
        if isinstance(config, ClientConfig):
            seen = peeked[name]
            assert seen.error is None
            shown = (seen.kind, seen.enabled, seen.mode, seen.display_name, seen.schedule)
            assert shown == (
                config.kind,
                config.enabled,
                config.mode,
                config.display_name,
                config.schedule,
            )
    assert isinstance(validated["broken"], InvalidClient)
    assert peeked["broken"].error == validated["broken"].error  # not TOML: the same words
    assert peeked["extra"].error is None  # breaks a rule: only validation knows


def test_the_monitors_first_screen_differs_from_a_validated_refresh_only_by_broken_rules(
    workspace: Path,
) -> None:
    registry(workspace)
    first = {s.name: s for s in offline_statuses(validate=False)}
    validated = {s.name: s for s in offline_statuses(validate=True)}
    assert sorted(first) == sorted(validated)
    assert validated["extra"].state == "invalid" and first["extra"].state == "never started"
    assert validated["broken"].state == first["broken"].state == "invalid"
    assert {n: s for n, s in first.items() if n != "extra"} == {
        n: s for n, s in validated.items() if n != "extra"
    }
