"""Client monitor: state, health, runs and errors of every client; lifecycle buttons."""

from __future__ import annotations

import html

import ipywidgets as w

from quantstrip import clock
from quantstrip.daemon.control import ClientStatus, ControlClient, clients_from_db
from quantstrip.daemon.states import ClientState
from quantstrip.dashboard.common import Refresher, error_html, header, read_ledger
from quantstrip.paths import workspace

ACTIONS = ("start", "stop", "restart", "enable", "disable", "run_now")
HEALTH_COLOURS = {
    ClientState.RUNNING: "#0a6b0a",
    ClientState.CRASHED: "#a40000",
    ClientState.INVALID: "#a40000",
}


def _health(status: ClientStatus) -> str:
    age = status.heartbeat_age_s
    if status.state != ClientState.RUNNING:
        return status.state
    if age is None:
        return "no heartbeat yet"
    return f"heartbeat {age:.0f}s ago"


RUNS_SQL = (
    "SELECT started_at, status, duration_s, output_path, error FROM client_runs "
    "WHERE client_name = ? ORDER BY started_at DESC LIMIT ?"
)
EVENTS_SQL = (
    "SELECT created_at, event_type, message FROM client_events "
    "WHERE client_name = ? ORDER BY id DESC LIMIT ?"
)


def _latest(sql: str, name: str, limit: int) -> list[dict[str, object]]:
    with read_ledger() as conn:
        return [] if conn is None else [dict(r) for r in conn.execute(sql, (name, limit))]


def recent_runs(name: str, limit: int = 5) -> list[dict[str, object]]:
    return _latest(RUNS_SQL, name, limit)


def recent_events(name: str, limit: int = 8) -> list[dict[str, object]]:
    return _latest(EVENTS_SQL, name, limit)


def _events_html(name: str) -> str:
    """The client's latest lifecycle events (started, stopped, crashed, hung, adopted...)."""
    events = recent_events(name)
    if not events:
        return ""
    items = "".join(
        f"<li>{html.escape(str(e['created_at'])[:19])} <b>{html.escape(str(e['event_type']))}</b>"
        f" {html.escape(str(e['message'] or ''))}</li>"
        for e in events
    )
    return (
        f'<details class="qs-events-{html.escape(name)}"><summary>Recent events</summary>'
        f"<ul>{items}</ul></details>"
    )


def _runs_html(name: str) -> str:
    runs = recent_runs(name)
    if not runs:
        return ""
    items = []
    root = workspace().root
    for run in runs:
        link = ""
        if run["output_path"]:
            try:
                relative = str(run["output_path"]).replace(str(root) + "/", "")
                link = f' <a href="/lab/tree/{html.escape(relative)}" target="_blank">output</a>'
            except Exception:
                link = ""
        duration = f"{run['duration_s']:.1f}s" if run["duration_s"] is not None else "running"
        items.append(f"<li>{run['started_at'][:19]} {run['status']} ({duration}){link}</li>")
    return "<b>Recent runs</b><ul>" + "".join(items) + "</ul>"


class ClientRow(w.VBox):
    def __init__(self, page: MonitorPage, status: ClientStatus) -> None:
        self.page = page
        self.name = status.name
        self.summary = w.HTML()
        self.detail = w.HTML()
        buttons = []
        for action in ACTIONS:
            button = w.Button(description=action.replace("_", "-"), layout=w.Layout(width="90px"))
            button.add_class(f"qs-{action}-{status.name}")
            button.on_click(lambda _b, a=action: self.page.act(self.name, a))
            buttons.append(button)
        super().__init__([self.summary, w.HBox(buttons), self.detail])
        self.layout.border = "1px solid #ddd"
        self.layout.padding = "6px"
        self.update(status)

    def update(self, status: ClientStatus) -> None:
        colour = HEALTH_COLOURS.get(status.state, "#555")
        title = html.escape(status.display_name or status.name)
        self.summary.value = (
            f'<b class="qs-client" data-client="{html.escape(status.name)}">{title}</b> '
            f"({status.kind}) — state "
            f'<span class="qs-state-{html.escape(status.name)}" style="color:{colour}">'
            f"{html.escape(status.state)}</span>; {html.escape(_health(status))}; "
            f"pid {status.pid or '-'}; started {status.started_at or '-'}; "
            f"next run {status.next_run or '-'}; restarts {status.restart_count}"
            + (f"; missed runs: {status.missed_policy}" if status.missed_policy else "")
        )
        parts = [_runs_html(status.name)]
        if status.last_error:
            trace = html.escape(status.last_error_traceback or "")
            parts.append(
                f"<details><summary>Last error: {html.escape(status.last_error)}</summary>"
                f"<pre>{trace}</pre></details>"
            )
        parts.append(_events_html(status.name))
        detail = "".join(parts)
        if detail != self.detail.value:  # an unchanged value keeps an opened <details> open
            self.detail.value = detail


class MonitorPage(w.VBox):
    def __init__(self, refresh_s: float = 2.0) -> None:
        self.control = ControlClient()
        self.banner = w.HTML()
        self.message = w.HTML()
        self.rows: dict[str, ClientRow] = {}
        self.list = w.VBox()
        self.stamp = w.HTML()
        super().__init__(
            [header("Client monitor"), self.banner, self.message, self.stamp, self.list]
        )
        self.refresh()
        self.refresher = Refresher(self.refresh, refresh_s).start()

    def statuses(self) -> list[ClientStatus]:
        if self.control.available():
            self.banner.value = ""
            return self.control.list_clients()
        self.banner.value = error_html(
            "The Quantstrip daemon is not running: showing the last recorded state. "
            "Start it with `quantstrip up` or `systemctl --user start quantstrip`."
        )
        return clients_from_db()

    def refresh(self) -> None:
        with read_ledger():  # one read-only connection serves the whole refresh
            self._refresh()

    def _refresh(self) -> None:
        statuses = self.statuses()
        names = [s.name for s in statuses]
        if set(names) != set(self.rows):
            self.rows = {s.name: ClientRow(self, s) for s in statuses}
            self.list.children = [self.rows[n] for n in names]
        else:
            for status in statuses:
                self.rows[status.name].update(status)
        if not statuses:
            self.list.children = [w.HTML("<p>No clients registered (clients/*/client.toml).</p>")]
        self.stamp.value = f"<small>updated {clock.local_now():%H:%M:%S}</small>"

    def act(self, name: str, action: str) -> None:
        try:
            getattr(self.control, action)(name)
            self.message.value = f'<span class="qs-ok">{action} {html.escape(name)}: done</span>'
        except Exception as exc:
            self.message.value = error_html(f"{action} {name} failed: {exc}")
        self.refresh()


def page() -> MonitorPage:
    return MonitorPage()
