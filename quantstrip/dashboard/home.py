"""Home page: links to every tool and a one-line status of the workspace."""

from __future__ import annotations

import html

import ipywidgets as w

from quantstrip.daemon.control import ControlClient
from quantstrip.dashboard import PAGES
from quantstrip.dashboard.common import STYLE
from quantstrip.db.handler import Database
from quantstrip.paths import workspace


def page() -> w.HTML:
    ws = workspace()
    with Database(ws.database) as db:
        fills = db.query("SELECT COUNT(*) FROM executions")[0][0]
        strategies = db.query("SELECT COUNT(*) FROM strategies")[0][0]
    daemon = "running" if ControlClient().available() else "not running"
    links = "".join(
        f'<li><a class="qs-link" href="{name}.ipynb">{html.escape(title)}</a></li>'
        for name, title in PAGES.items()
    )
    return w.HTML(
        f"{STYLE}<h1>Quantstrip</h1>"
        f"<p>Workspace <code>{html.escape(str(ws.root))}</code>: {fills} executions, "
        f"{strategies} strategies; daemon {daemon}.</p><ul>{links}"
        '<li><a class="qs-link" href="/lab" target="_blank">JupyterLab (IDE)</a></li></ul>'
    )
