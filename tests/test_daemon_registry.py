"""client.toml validation, promote, and persisted enable/disable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import nbformat
import pytest
from support.daemon import write_client_toml

from quantstrip.daemon.registry import (
    ClientConfig,
    InvalidClient,
    load_client,
    load_registry,
    set_enabled,
)
from quantstrip.errors import ConfigError, ValidationError
from quantstrip.promote import promote


def make_entry(root: Path, name: str, file: str) -> None:
    (root / "clients" / name).mkdir(parents=True, exist_ok=True)
    (root / "clients" / name / file).write_text("")


def test_full_client_toml_is_read(workspace: Path) -> None:
    make_entry(workspace, "eod", "eod.ipynb")
    path = write_client_toml(
        "eod",
        kind="notebook",
        entry="eod.ipynb",
        schedule="30 16 * * 1-5",
        tz="America/New_York",
        calendar="XNYS",
        mode="paper",
        time_limit_s=600,
        recipients=["desk@example.com"],
        parameters={"lookback": 20},
        restart={"policy": "always", "max_restarts": 3},
        missed={"policy": "run_once", "grace_s": 900},
        heartbeat={"interval_s": 2, "timeout_s": 10},
    )
    config = load_client(path)
    assert config.name == "eod" and config.kind == "notebook" and config.enabled
    assert config.parameters == {"lookback": 20} and config.missed.policy == "run_once"
    assert config.entry_file == workspace / "clients/eod/eod.ipynb"
    assert "XNYS" in str(config.trigger())


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kind": "module", "entry": "a.py", "colour": "red"}, "colour: Extra inputs"),
        ({"kind": "service", "entry": "a.py"}, "kind: Input should be 'module' or 'notebook'"),
        ({"kind": "module", "entry": "a.py", "restart": {"policy": "sometimes"}}, "restart.policy"),
        ({"kind": "module", "entry": "a.py", "tz": "Mars/Olympus"}, "tz: unknown time zone"),
        ({"kind": "notebook", "entry": "a.ipynb", "schedule": "every fortnight"}, "schedule"),
        ({"kind": "module", "entry": "a.py", "name": "other"}, "must match its folder"),
        ({"kind": "module", "entry": "missing.py"}, "entry: missing.py not found"),
        (
            {"kind": "module", "entry": "a.py", "heartbeat": {"interval_s": 5, "timeout_s": 2}},
            "heartbeat: timeout_s must be greater",
        ),
        ({"kind": "notebook", "entry": "a.py"}, "must be a .ipynb"),
    ],
)
def test_invalid_client_toml_names_the_key(workspace: Path, config: dict, message: str) -> None:
    make_entry(workspace, "bad", "a.py")
    make_entry(workspace, "bad", "a.ipynb")
    path = write_client_toml("bad", **config)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_client(path)


def test_registry_keeps_valid_clients_next_to_invalid_ones(workspace: Path) -> None:
    make_entry(workspace, "good", "good.py")
    write_client_toml("good", kind="module", entry="good.py")
    bad = workspace / "clients/bad"
    bad.mkdir()
    (bad / "client.toml").write_text("kind = 'module\n")
    registry = load_registry()
    assert isinstance(registry["good"], ClientConfig)
    assert isinstance(registry["bad"], InvalidClient)
    assert "not valid TOML" in registry["bad"].error


def test_enable_disable_persists_and_keeps_comments(workspace: Path) -> None:
    make_entry(workspace, "c", "c.py")
    path = workspace / "clients/c/client.toml"
    path.write_text('# my favourite\nkind = "module"  # yes\nentry = "c.py"\n')
    set_enabled("c", False)
    text = path.read_text()
    assert "# my favourite" in text and "# yes" in text
    assert load_client(path).enabled is False
    set_enabled("c", True)
    assert load_client(path).enabled is True
    with pytest.raises(ConfigError, match="no client named"):
        set_enabled("ghost", True)


def test_promote_notebook_adds_a_parameters_cell(workspace: Path) -> None:
    research = workspace / "notebooks" / "idea.ipynb"
    research.parent.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Idea"), nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, research)
    toml_path = promote(research, "idea", schedule="every weekday at 16:05", tz="Europe/London")
    config = load_client(toml_path)
    assert config.kind == "notebook" and config.schedule == "every weekday at 16:05"
    copied = nbformat.read(workspace / "clients/idea/idea.ipynb", as_version=4)
    assert copied.cells[0].cell_type == "markdown"
    assert copied.cells[1].metadata["tags"] == ["parameters"]
    assert "client_name" in copied.cells[1].source
    # The research notebook itself is left alone.
    assert len(nbformat.read(research, as_version=4).cells) == 2
    with pytest.raises(ConfigError, match="already exists"):
        promote(research, "idea", schedule="every day at 16:00")
    promote(research, "idea", schedule="every day at 17:00", force=True)
    assert load_client(toml_path).schedule == "every day at 17:00"
    copied = nbformat.read(workspace / "clients/idea/idea.ipynb", as_version=4)
    assert sum("parameters" in c.metadata.get("tags", []) for c in copied.cells) == 1


def test_promote_module_detects_its_client_class(workspace: Path) -> None:
    module = workspace / "strat.py"
    module.write_text(
        "from quantstrip import ClientBase\n\nclass Momentum(ClientBase):\n    pass\n"
    )
    config = load_client(promote(module, "momentum"))
    assert config.entry == "strat.py:Momentum" and config.kind == "module"
    plain = workspace / "plain.py"
    plain.write_text("x = 1\n")
    with pytest.raises(ValidationError) as info:
        promote(plain, "plain")
    assert info.value.field == "class"
    notebook = workspace / "report.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), notebook)
    with pytest.raises(ValidationError) as info:
        promote(notebook, "report")
    assert info.value.field == "schedule"


def test_daemon_settings_supply_defaults_a_client_toml_leaves_out(workspace: Path) -> None:
    from quantstrip import settings

    settings._reset_for_tests()
    try:
        settings.set("daemon.heartbeat_timeout_s", 7.5)
        settings.set("daemon.max_restarts", 2)
        make_entry(workspace, "a", "a.py")
        config = load_client(write_client_toml("a", kind="module", entry="a.py"))
        assert config.heartbeat.timeout_s == 7.5 and config.restart.max_restarts == 2
        assert config.stop_timeout_s == 10.0
        explicit = write_client_toml(
            "a", kind="module", entry="a.py", heartbeat={"interval_s": 1, "timeout_s": 3}
        )
        assert load_client(explicit).heartbeat.timeout_s == 3
    finally:
        settings._reset_for_tests()


# Monday 14 June 2027, 12:00 UTC (08:00 in New York): a session day of XNYS.
MONDAY_NOON_UTC = datetime(2027, 6, 14, 12, 0, tzinfo=UTC)


def test_a_calendar_client_without_tz_counts_its_times_on_the_exchange_clock(
    workspace: Path,
) -> None:
    """calendar = "XNYS" and no tz: "every day at 16:00" is 16:00 in New York (the close), not
    16:00 UTC (noon in New York, in the middle of the session)."""
    make_entry(workspace, "close", "close.ipynb")
    path = write_client_toml(
        "close", kind="notebook", entry="close.ipynb", schedule="every day at 16:00",
        calendar="XNYS",
    )  # fmt: skip
    config = load_client(path)
    assert config.tz is None
    fire = config.trigger().get_next_fire_time(None, MONDAY_NOON_UTC)
    assert fire == datetime(2027, 6, 14, 16, 0, tzinfo=ZoneInfo("America/New_York"))
    # A zone given in the file still wins over the exchange's.
    path = write_client_toml(
        "close", kind="notebook", entry="close.ipynb", schedule="every day at 16:00",
        calendar="XNYS", tz="Europe/London",
    )  # fmt: skip
    fire = load_client(path).trigger().get_next_fire_time(None, MONDAY_NOON_UTC)
    assert fire == datetime(2027, 6, 14, 16, 0, tzinfo=ZoneInfo("Europe/London"))
    # Without a calendar or a zone, times are UTC.
    path = write_client_toml(
        "close", kind="notebook", entry="close.ipynb", schedule="every day at 16:00"
    )
    fire = load_client(path).trigger().get_next_fire_time(None, MONDAY_NOON_UTC)
    assert fire == datetime(2027, 6, 14, 16, 0, tzinfo=UTC)


def test_promote_with_a_calendar_and_no_zone_keeps_the_exchange_clock(workspace: Path) -> None:
    research = workspace / "notebooks" / "close.ipynb"
    research.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), research)
    config = load_client(promote(research, "close", schedule="every day at 16:00", calendar="XNYS"))
    assert config.tz is None
    fire = config.trigger().get_next_fire_time(None, MONDAY_NOON_UTC)
    assert fire == datetime(2027, 6, 14, 16, 0, tzinfo=ZoneInfo("America/New_York"))
