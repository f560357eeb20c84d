"""What a dashboard page's kernel loads to show its first screen (issue 18, performance).

Pages that only show a setting read it from the file (quantstrip.settings_file) instead of
validating the whole tree: importing pydantic and building the platform models cost 0.3-0.5 s
of every page's start. Each page is built in a fresh interpreter against a real demo workspace,
as its Voila kernel builds it, and the modules it loaded are listed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.page_probe import demo_workspace, probe

from quantstrip import settings, settings_file
from quantstrip.dashboard import book, display
from quantstrip.errors import ConfigError

# Pages whose first screen needs no validated settings and no validated client.toml (the clients
# page and the monitor list the registry's files unvalidated: daemon.registry_files).
WITHOUT_PYDANTIC = (
    "home",
    "monitor",
    "clients_page",
    "blotter",
    "portfolio",
    "settings_page",
    "sql_editor",
    "notifications",
    "logs",
    "packages",
)
# Pages that draw no frame on their first screen (the blotter's tables are plain rows).
WITHOUT_PANDAS = ("home", "blotter", "monitor", "settings_page", "sql_editor", "notifications")
PROBE = """
import json, sys
import importlib
page = importlib.import_module("quantstrip.dashboard." + sys.argv[1])
page.page()
print(json.dumps(sorted(m for m in sys.argv[2:] if m in sys.modules)))
"""


@pytest.fixture
def demo(workspace: Path) -> dict[str, str]:
    return demo_workspace(workspace)


def loaded(page: str, modules: tuple[str, ...], env: dict[str, str], workspace: Path) -> list:
    """Which of `modules` the page's first screen loaded, in a fresh interpreter."""
    return list(probe(PROBE, [page, *modules], env, workspace))


@pytest.mark.parametrize("page", WITHOUT_PYDANTIC)
def test_page_shows_its_first_screen_without_loading_pydantic(
    page: str, demo: dict[str, str], workspace: Path
) -> None:
    assert loaded(page, ("pydantic", "quantstrip.settings_models"), demo, workspace) == []


@pytest.mark.parametrize("page", WITHOUT_PANDAS)
def test_page_shows_its_first_screen_without_loading_pandas(
    page: str, demo: dict[str, str], workspace: Path
) -> None:
    assert loaded(page, ("pandas", "numpy"), demo, workspace) == []


@pytest.fixture
def fresh(workspace: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    settings._reset_for_tests()
    yield workspace
    settings._reset_for_tests()


def test_pages_read_the_same_settings_the_platform_validates(fresh: Path) -> None:
    settings.save_text(
        '[risk]\nday_zone = "Europe/London"\n[risk.marks]\nmax_age_s = 60\n'
        '[dashboard]\ntimezone = "Asia/Tokyo"\n[reporting]\ndefault_capital = 250000\n'
    )
    platform = settings.platform()
    assert book.day_zone() == platform.risk.day_zone == "Europe/London"
    assert settings_file.mark_max_age_s() == platform.risk.marks.max_age_s == 60.0
    assert str(display.operator_zone()) == platform.dashboard.timezone == "Asia/Tokyo"
    assert settings_file.peek("reporting.default_capital") == settings.get(
        "reporting.default_capital"
    )


def test_pages_use_the_platform_defaults_without_a_settings_file(fresh: Path) -> None:
    platform = settings.platform()
    assert not settings.settings_path().exists()
    assert book.day_zone() == platform.risk.day_zone
    assert settings_file.mark_max_age_s() == platform.risk.marks.max_age_s


def test_a_bad_zone_is_a_clear_error_where_a_page_uses_it(fresh: Path) -> None:
    settings.settings_path().parent.mkdir(parents=True, exist_ok=True)
    settings.settings_path().write_text('[risk]\nday_zone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError, match=r"risk\.day_zone: unknown time zone 'Mars/Olympus'"):
        book.day_zone()


def test_an_edited_file_is_read_again(fresh: Path) -> None:
    path = settings.settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[risk.marks]\nmax_age_s = 30\n")
    assert settings_file.mark_max_age_s() == 30.0
    path.write_text("[risk.marks]\nmax_age_s = 45.5\n")
    assert settings_file.mark_max_age_s() == 45.5


def test_the_clients_page_lists_sources_without_entering_skipped_folders(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workspace with a virtual environment: the page listed its sources by walking every
    file under .venv and var before filtering them out (seconds on a real environment)."""
    from quantstrip.dashboard import clients_page

    for relative in (
        "strategy.py",
        "notebooks/guide.ipynb",
        "research/a/b/deep.py",
        "research/a/b/c/too_deep.py",
        "research/.ipynb_checkpoints/strategy-checkpoint.py",
        ".venv/lib/python3.11/site-packages/pkg/module.py",
        "var/runs/output.ipynb",
        "clients/demo/demo.py",
        "notebooks/.hidden.py",
    ):
        target = workspace / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("")
    entered: list[str] = []
    real_scandir = os.scandir

    def scandir(path: object = ".") -> object:
        entered.append(str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    found = clients_page.sources()
    assert found == ["notebooks/guide.ipynb", "research/a/b/deep.py", "strategy.py"]
    skipped = [p for p in entered if any(part in p for part in (".venv", "/var", "/clients"))]
    assert skipped == []


def test_the_portfolio_draws_its_first_charts_once_the_browser_has_the_page(
    demo: dict[str, str], workspace: Path
) -> None:
    """Built with the page, the charts (Altair) held the kernel while the browser fetched the
    widgets: the statistics showed 1-2 s later under load. They wait for the browser's first
    tick (its widgets exist, so the charts' updates reach it); Update draws at once."""
    from quantstrip import clock
    from quantstrip.analytics import connection
    from quantstrip.dashboard import portfolio

    connection.reset()
    page = portfolio.PortfolioPage()
    try:
        page.first.before_state()  # the browser asks for the widgets' state (first_state.py)
        assert "<table" in page.stats.value  # the statistics are there on first display
        assert all(not out.outputs for out in page.chart_outputs.values())
        page.browser.play.value += 1  # the browser's first tick
        deadline = clock.monotonic() + 120
        while not all(out.outputs for out in page.chart_outputs.values()):
            assert clock.monotonic() < deadline, page.chart_error.value
            page.browser._settled.wait(0.1)
        assert page.chart_error.value == ""
        assert page.browser.play.playing is False  # one tick is all it needed
    finally:
        page.browser.stop()
        connection.reset()


def test_the_monitor_lists_clients_with_the_daemon_down_without_the_ledger_writer(
    demo: dict[str, str], workspace: Path
) -> None:
    """With the daemon down the monitor reads the clients' last states with one SELECT: it
    imported the ledger's Database (its records and writers) for it."""
    assert (
        loaded("monitor", ("quantstrip.db.handler", "quantstrip.db.records"), demo, workspace) == []
    )


REPORTS = Path(__file__).resolve().parents[1] / "reports"


@pytest.mark.parametrize("notebook", sorted(p.name for p in REPORTS.glob("*.ipynb")))
def test_every_page_notebook_imports_its_module(notebook: str) -> None:
    """Each page's module imports (the research page imported a helper the portfolio page had
    dropped, and only its browser test saw it)."""
    import importlib
    import re

    source = (REPORTS / notebook).read_text()
    (module,) = re.findall(r"from quantstrip\.dashboard import (\w+)", source)
    importlib.import_module(f"quantstrip.dashboard.{module}")


def test_the_home_page_is_plain_html_without_widgets(demo: dict[str, str], workspace: Path) -> None:
    """Nothing on the home page is interactive: as a widget it cost the browser the widget
    manager and a state fetch after the kernel connected."""
    assert loaded("home", ("ipywidgets",), demo, workspace) == []


def test_the_package_list_reads_the_same_names_and_versions_as_importlib() -> None:
    """The packages page reads two header lines per package instead of parsing every metadata
    file twice; what it lists is what importlib.metadata says."""
    from importlib import metadata

    from quantstrip.dashboard import packages

    expected = {(d.metadata["Name"] or "?", d.version) for d in metadata.distributions()}
    assert packages.installed() == sorted(expected, key=lambda item: (item[0].lower(), item))
