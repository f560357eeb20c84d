"""Home page: links to every tool, the trading mode, and a one-line book of each ledger
(positions, unrealised PnL, exposure, open orders, today's fills, refusals).

The page has nothing to interact with, so it is plain HTML output, not a widget: a widget costs
the browser the widget manager's controls and a state fetch once the kernel is connected, about
a third of a second after the last message under load, for three links' worth of HTML."""

from __future__ import annotations

import html

from IPython.display import HTML

from quantstrip.daemon.control import ControlClient
from quantstrip.dashboard import book, roles
from quantstrip.dashboard.display import money, page_badge
from quantstrip.dashboard.style import STYLE
from quantstrip.paths import workspace


def book_line(name: str) -> str:
    try:
        summary = book.summary(name)
    except Exception as exc:
        return f'<li class="qs-error">{html.escape(name)}: {html.escape(str(exc))}</li>'
    if summary is None:
        return f"<li>{html.escape(name)}: no database yet</li>"
    stale = (
        f' <span class="qs-error">({summary.stale} without a fresh mark, not in the sums)</span>'
        if summary.stale
        else ""
    )
    return (
        f'<li class="qs-book-{html.escape(name)}"><b>{html.escape(name.capitalize())}</b>: '
        f"{summary.positions} positions, unrealised PnL {money(summary.unrealised)}, gross "
        f"exposure {money(summary.exposure)}{stale}; {summary.open_orders} open orders, "
        f"{summary.fills_today} fills today, {summary.refused_today} refused and "
        f"{summary.rejected_today} rejected today</li>"
    )


def risk_line() -> str:
    from quantstrip.brokers.risk import controls

    active = [c for c in controls.all_controls() if c.state.value != "active"]
    if not active:
        return ""
    items = ", ".join(
        f"{'ALL CLIENTS' if c.scope == controls.ALL else html.escape(c.scope)}: "
        f"{html.escape(c.state.value.replace('_', ' '))}"
        for c in active
    )
    return f'<p class="qs-error qs-risk-state"><b>Risk controls:</b> {items}</p>'


def page() -> HTML:
    ws = workspace()
    daemon = "running" if ControlClient().available() else "not running"
    links = "".join(
        f'<li><a class="qs-link" href="{name}.ipynb">{html.escape(title)}</a></li>'
        for name, title in roles.pages().items()
    )
    ide = (
        ""
        if roles.is_viewer()
        else '<li><a class="qs-link" href="/lab" target="_blank">JupyterLab (IDE)</a></li>'
    )
    books = "".join(book_line(name) for name in book.books())
    # A viewer is not told where the workspace lives on the operator's machine.
    where = "" if roles.is_viewer() else f"Workspace <code>{html.escape(str(ws.root))}</code>: "
    with book.reading("production") as conn:
        fills, strategies = (
            conn.execute(
                "SELECT (SELECT COUNT(*) FROM executions), (SELECT COUNT(*) FROM strategies)"
            ).fetchone()
            if conn is not None
            else (0, 0)
        )
    return HTML(
        f"{STYLE}<h1>Quantstrip {page_badge()}</h1>"
        f"<p>{where}{fills} executions, "
        f"{strategies} strategies; daemon {daemon}.</p>"
        f"{risk_line()}"
        f'<ul class="qs-home-books">{books}</ul>'
        f"<ul>{links}{ide}</ul>"
    )
