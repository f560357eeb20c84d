"""Page templates compiled once per server, not for every page (issue 18, performance:
dashboard/template_cache.py). py-spy on the dashboard showed every page spending ~0.5 s of the
server's time compiling Voila's Jinja templates before its first byte."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemLoader
from nbconvert.exporters.templateexporter import TemplateExporter
from voila.exporter import VoilaExporter

from quantstrip.dashboard import template_cache
from quantstrip.dashboard.template_cache import MemoryBytecodeCache

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """install() as the servers' configuration runs it, undone after the test."""
    monkeypatch.setattr(
        TemplateExporter, "_create_environment", TemplateExporter._create_environment
    )
    template_cache.install()
    template_cache.CACHE.clear()


def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The template names Jinja compiles from source from now on (a spy on the real method)."""
    names: list[str] = []
    original = Environment.compile

    def spy(
        self: Environment, source: str, name: str | None = None, *args: object, **kwargs: object
    ):  # type: ignore[no-untyped-def]
        names.append(str(name))
        return original(self, source, name, *args, **kwargs)

    monkeypatch.setattr(Environment, "compile", spy)
    return names


def page_exporter() -> VoilaExporter:
    """A new exporter of the dashboard's page template, as Voila builds one for every page."""
    from voila.paths import collect_template_paths

    paths = collect_template_paths(["voila", "nbconvert"], "quantstrip")
    return VoilaExporter(template_paths=paths, template_name="quantstrip")


def test_the_second_page_reuses_the_compiled_page_template(
    installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_PATH", str(REPO / "jupyter_config" / "data"))  # as the servers
    names = compiles(monkeypatch)
    first = page_exporter().template
    assert "index.html.j2" in names  # the first page compiles the template chain
    names.clear()
    second = page_exporter().template
    assert names == []  # the next pages load it compiled
    assert first is not second  # each page still has its own environment and template


def test_an_edited_template_is_compiled_again(tmp_path: Path) -> None:
    cache = MemoryBytecodeCache()
    page = tmp_path / "page.j2"
    page.write_text("book {{ value }}")
    env = Environment(loader=FileSystemLoader(tmp_path), bytecode_cache=cache)
    assert env.get_template("page.j2").render(value=1) == "book 1"
    page.write_text("edited {{ value }}")
    env = Environment(loader=FileSystemLoader(tmp_path), bytecode_cache=cache)
    assert env.get_template("page.j2").render(value=2) == "edited 2"


def test_async_and_plain_environments_keep_their_own_compiled_code(tmp_path: Path) -> None:
    """Voila renders asynchronously, JupyterLab's HTML export does not: one template compiled
    for one mode breaks the other if they share a cache entry."""
    cache = MemoryBytecodeCache()
    (tmp_path / "page.j2").write_text("{% for x in items %}{{ x }}{% endfor %}")
    asynchronous = Environment(
        loader=FileSystemLoader(tmp_path), bytecode_cache=cache, enable_async=True
    )
    rendered = asyncio.run(asynchronous.get_template("page.j2").render_async(items=[1, 2]))
    plain = Environment(loader=FileSystemLoader(tmp_path), bytecode_cache=cache)
    assert rendered == plain.get_template("page.j2").render(items=[1, 2]) == "12"
