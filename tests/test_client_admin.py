"""Clients managed without a terminal: create, edit, pause, delete (runs archived), and a
promote that leaves nothing behind when it fails."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from conftest import require_component

from quantstrip import client_admin, settings
from quantstrip.client_admin import ClientSpec
from quantstrip.daemon.registry import load_registry
from quantstrip.errors import ConfigError, ValidationError
from quantstrip.paths import init_workspace
from quantstrip.promote import promote

MODULE = """
from quantstrip import ClientBase


class Signal(ClientBase):
    def __init__(self):
        super().__init__()
        self.scheduler.every().day.at("16:00").do(self.job)

    def job(self):
        pass
"""


@pytest.fixture
def research(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    settings._reset_for_tests()
    folder = workspace / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, folder / "idea.ipynb")
    (folder / "signal.py").write_text(MODULE)
    yield folder
    settings._reset_for_tests()


def leftovers(workspace: Path) -> list[Path]:
    staging = workspace / "clients" / ".staging"
    return sorted(staging.rglob("*")) if staging.exists() else []


def test_a_failed_promote_leaves_nothing_behind(workspace: Path, research: Path) -> None:
    with pytest.raises(ConfigError, match="schedule"):
        promote(research / "idea.ipynb", "idea", schedule="every blue moon")
    assert not (workspace / "clients" / "idea").exists()
    assert leftovers(workspace) == []
    assert load_registry() == {}


def test_a_failed_forced_promote_keeps_the_client_it_would_replace(
    workspace: Path, research: Path
) -> None:
    promote(research / "idea.ipynb", "idea", schedule="every day at 16:00")
    before = (workspace / "clients" / "idea" / "client.toml").read_text()
    with pytest.raises(ConfigError):
        promote(research / "idea.ipynb", "idea", schedule="every blue moon", force=True)
    assert (workspace / "clients" / "idea" / "client.toml").read_text() == before
    assert (workspace / "clients" / "idea" / "idea.ipynb").exists()
    assert leftovers(workspace) == []


def test_create_edit_pause_and_delete_with_runs_archived(workspace: Path, research: Path) -> None:
    spec = ClientSpec(
        name="nightly",
        source=research / "idea.ipynb",
        schedule="30 21 * * 1-5",
        tz="America/New_York",
        mode="paper",
        parameters={"lookback": 20},
        time_limit_s=600,
        missed_policy="run_once",
        limits={"max_position": 500, "max_orders_per_minute": 10},
    )
    client_admin.create(spec)
    config = load_registry()["nightly"]
    assert config.schedule == "30 21 * * 1-5" and config.mode == "paper"
    assert config.parameters == {"lookback": 20} and config.time_limit_s == 600
    assert config.missed.policy == "run_once"
    assert settings.platform().risk.clients["nightly"].max_position == 500
    # Edit: another schedule and limits; a file the client keeps beside its code survives.
    (workspace / "clients" / "nightly" / "state.json").write_text("{}")
    edited = client_admin.describe("nightly")
    edited.schedule = "every weekday at 16:30"
    edited.limits = {"max_order_notional": 25_000}
    client_admin.update(edited)
    config = load_registry()["nightly"]
    assert config.schedule == "every weekday at 16:30" and config.tz == "America/New_York"
    assert (workspace / "clients" / "nightly" / "state.json").exists()
    limits = settings.platform().risk.clients["nightly"]
    assert limits.max_position is None and limits.max_order_notional == 25_000
    # Pause and resume.
    client_admin.pause("nightly")
    assert load_registry()["nightly"].enabled is False
    client_admin.pause("nightly", paused=False)
    assert load_registry()["nightly"].enabled is True
    # Delete: the folder and the run outputs are archived, the limits removed from settings.
    runs = workspace / "var" / "runs" / "nightly"
    runs.mkdir(parents=True)
    (runs / "run1.ipynb").write_text("{}")
    archive = client_admin.delete("nightly")
    assert "nightly" not in load_registry()
    assert (archive / "client" / "client.toml").exists()
    assert (archive / "runs" / "run1.ipynb").exists()
    assert "nightly" in tomllib.loads((archive / "risk_limits.toml").read_text())["risk"]["clients"]
    assert "nightly" not in settings.platform().risk.clients


def test_a_module_client_gets_its_class_and_bad_input_names_the_field(
    workspace: Path, research: Path
) -> None:
    client_admin.create(ClientSpec(name="sig", source=research / "signal.py"))
    assert load_registry()["sig"].entry == "signal.py:Signal"
    with pytest.raises(ValidationError, match="name"):
        client_admin.create(ClientSpec(name="no spaces", source=research / "signal.py"))
    with pytest.raises(ValidationError, match="schedule"):
        client_admin.create(ClientSpec(name="nb", source=research / "idea.ipynb"))
    with pytest.raises(ConfigError, match="already exists"):
        client_admin.create(ClientSpec(name="sig", source=research / "signal.py"))
    assert leftovers(workspace) == []


def nightly_with_a_run(research: Path, runs: Path) -> Path:
    """A notebook client `nightly` with limits, data/state.json of its own and one run output."""
    client_admin.create(
        ClientSpec(
            name="nightly",
            source=research / "idea.ipynb",
            schedule="every day at 16:00",
            limits={"max_position": 500},
        )
    )
    (runs / "nightly").mkdir(parents=True)
    (runs / "nightly" / "run1.ipynb").write_text("{}")
    folder = research.parent / "clients" / "nightly"
    (folder / "data").mkdir()
    (folder / "data" / "state.json").write_text("{}")
    return folder


def test_a_deleted_client_is_archived_private_to_its_owner(workspace: Path, research: Path) -> None:
    """The client's folder lives with the code (shared modes, 0644 here); once archived under the
    data directory it holds the strategy and its runs like the rest of var/: 0600 files, 0700
    folders, whatever umask the deleting process has."""
    previous = os.umask(0o022)
    try:
        folder = nightly_with_a_run(research, workspace / "var" / "runs")
        os.chmod(folder / "idea.ipynb", 0o644)
        archive = client_admin.delete("nightly")
    finally:
        os.umask(previous)
    assert (archive / "client" / "idea.ipynb").exists()
    assert (archive / "runs" / "run1.ipynb").exists()
    assert (archive / "risk_limits.toml").exists()
    tree = [archive.parent, archive, *archive.rglob("*")]
    modes = {
        str(path.relative_to(workspace)): oct(stat.S_IMODE(path.stat().st_mode)) for path in tree
    }
    expected = {
        str(path.relative_to(workspace)): oct(0o700 if path.is_dir() else 0o600) for path in tree
    }
    assert modes == expected


@pytest.fixture
def home_on_another_file_system(
    workspace: Path, research: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """The data directory on /dev/shm (tmpfs) while clients/ stays in the test's tmp folder: a
    rename between them fails with EXDEV, as with QUANTSTRIP_HOME on its own disk."""
    shm = Path("/dev/shm")
    usable = shm.is_dir() and os.access(shm, os.W_OK)
    require_component(
        usable and shm.stat().st_dev != workspace.stat().st_dev,
        "a second file system at /dev/shm (tmpfs)",
    )
    home = Path(tempfile.mkdtemp(prefix="quantstrip-home-", dir=shm))
    monkeypatch.setenv("QUANTSTRIP_HOME", str(home))
    settings._reset_for_tests()
    init_workspace()
    try:
        yield home
    finally:
        settings._reset_for_tests()
        shutil.rmtree(home, ignore_errors=True)


def test_a_client_is_archived_to_a_data_directory_on_another_file_system(
    workspace: Path, research: Path, home_on_another_file_system: Path
) -> None:
    home = home_on_another_file_system
    folder = nightly_with_a_run(research, home / "runs")
    archive = client_admin.delete("nightly")
    assert archive.parent == home / "archive"
    assert (archive / "client" / "client.toml").exists()
    assert (archive / "client" / "data" / "state.json").read_text() == "{}"
    assert (archive / "runs" / "run1.ipynb").exists()
    assert (archive / "risk_limits.toml").exists()
    assert not folder.exists() and not (home / "runs" / "nightly").exists()
    assert "nightly" not in load_registry()
    assert "nightly" not in settings.platform().risk.clients


def test_a_delete_that_fails_half_way_leaves_the_client_as_it_was(
    workspace: Path,
    research: Path,
    home_on_another_file_system: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The disk fills while the client's folder is copied to the other file system: nothing is
    archived, the client stays registered with its files, runs and limits."""
    home = home_on_another_file_system
    folder = nightly_with_a_run(research, home / "runs")
    real_copy = shutil.copy2

    def copy_until_state(source: str, target: str, **kwargs: object) -> object:
        if Path(source).name == "state.json":
            raise OSError(errno.ENOSPC, "No space left on device", target)
        return real_copy(source, target, **kwargs)

    with monkeypatch.context() as patch, pytest.raises(OSError, match="No space left"):
        patch.setattr(shutil, "copy2", copy_until_state)
        client_admin.delete("nightly")
    assert "nightly" in load_registry()
    assert sorted(p.name for p in folder.iterdir()) == ["client.toml", "data", "idea.ipynb"]
    assert (home / "runs" / "nightly" / "run1.ipynb").exists()
    assert list((home / "archive").iterdir()) == []
    assert settings.platform().risk.clients["nightly"].max_position == 500
