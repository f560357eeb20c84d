"""Dashboard widgets share their default layouts and styles (dashboard/shared_styles.py, issue
18 performance): every ipywidgets widget brought its own Layout and Style models, which the
kernel opens, Voila relays and the browser builds; 61 of the clients page's 94 models were
such identical defaults."""

from __future__ import annotations

from pathlib import Path

import ipywidgets as w
import pytest
from support.page_probe import demo_workspace, probe

from quantstrip.dashboard import shared_styles

PAGES = (
    "blotter",
    "clients_page",
    "logs",
    "monitor",
    "notifications",
    "packages",
    "portfolio",
    "research",
    "settings_page",
    "sql_editor",
)
# Builds a page as its kernel does and lists the layout and style models that repeat another
# one's state (own layouts, which a page changes later, excepted).
DUPLICATES = """
import collections, contextlib, importlib, io, json, sys
from IPython.core.interactiveshell import InteractiveShell
from ipywidgets.widgets import widget
InteractiveShell.instance()
with contextlib.redirect_stdout(io.StringIO()):
    importlib.import_module("quantstrip.dashboard." + sys.argv[1]).page()
seen = collections.Counter()
for model in list(widget._instances.values()):
    name = model._model_name
    if (name == "LayoutModel" or name.endswith("StyleModel")) and not model.__dict__.get("_qs_own"):
        state = model.get_state()
        state.pop("_model_id", None)
        seen[json.dumps(state, sort_keys=True, default=str)] += 1
print(json.dumps({"models": len(widget._instances), "repeated": sum(n - 1 for n in seen.values())}))
"""


def test_widgets_built_without_a_layout_share_one_that_cannot_be_changed() -> None:
    shared_styles.install()
    first, second = w.HTML("a"), w.HTML("b")
    assert first.layout is second.layout and first.style is second.style
    assert first.get_state()["layout"] == second.get_state()["layout"]
    with pytest.raises(shared_styles.SharedDefaultChanged, match=r"Layout\.display"):
        first.layout.display = "none"
    assert second.layout.display is None  # nothing leaked to the other widget
    mine = w.HTML("c", layout=shared_styles.own(w.Layout))
    mine.layout.display = "none"  # a layout of its own changes freely
    assert first.layout.display is None


def test_fixed_layouts_are_one_model_per_look() -> None:
    one = shared_styles.fixed(w.Layout, width="90px")
    assert shared_styles.fixed(w.Layout, width="90px") is one
    assert shared_styles.fixed(w.Layout, width="91px") is not one
    with pytest.raises(shared_styles.SharedDefaultChanged):
        one.width = "100px"


@pytest.mark.parametrize("page", PAGES)
def test_a_page_builds_no_two_identical_layout_or_style_models(page: str, workspace: Path) -> None:
    env = demo_workspace(workspace)  # with a registered client: the monitor shows a row
    counts = probe(DUPLICATES, [page], env, workspace)
    assert counts["repeated"] == 0, counts
