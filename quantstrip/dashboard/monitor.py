"""Client monitor: the truth about every client, its lifecycle buttons and the operator's risk
controls.

- Health (`dashboard.health`): a failing client is red with its last error, when it happened and
  how often it was restarted; times are in the operator's zone, labelled, to the second; each
  scheduled client counts down to its next run.
- Buttons are enabled only where their action applies; starting a LIVE client, and every risk
  control, asks for confirmation first.
- When the daemon is down the page says so and lists the clients of the registry
  (clients/*/client.toml) with their last recorded state.
- Refresh: a ticker in the browser (ipywidgets `Play`) asks the kernel to refresh every few
  seconds. A closed tab stops asking, so its kernel goes idle and Jupyter culls it
  (jupyter_config: cull_idle_timeout); a refresh thread in the kernel kept every kernel busy
  forever, one per tab ever opened.
"""

from __future__ import annotations

import functools
import html
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from quantstrip import clock
from quantstrip.daemon.control import ClientStatus, ControlClient, clients_from_db
from quantstrip.daemon.states import ERROR_EVENTS
from quantstrip.dashboard import shared_styles
from quantstrip.dashboard.common import error_html, header, read_ledger
from quantstrip.dashboard.display import Mode, badge_html, format_time, operator_zone
from quantstrip.dashboard.health import ACTIONS, COLOURS, Assessment, assess
from quantstrip.dashboard.risk_panel import ConfirmBar, RiskBar, RiskButtons, risk_states
from quantstrip.dashboard.ticker import BrowserTicker
from quantstrip.paths import workspace

if TYPE_CHECKING:  # the registry's pydantic models load on the first validating refresh
    from quantstrip.daemon.registry import RegistryReader

REFRESH_MS = 2000
RUNS_SQL = (
    "SELECT started_at, ended_at, status, duration_s, output_path, error FROM client_runs "
    "WHERE client_name = ? ORDER BY started_at DESC LIMIT ?"
)
EVENTS_SQL = (
    "SELECT created_at, event_type, message FROM client_events "
    "WHERE client_name = ? ORDER BY id DESC LIMIT ?"
)
ERROR_SQL = (
    "SELECT created_at, event_type, message FROM client_events WHERE client_name = ? "
    f"AND event_type IN ({', '.join(repr(str(e)) for e in sorted(ERROR_EVENTS))}) "
    "ORDER BY id DESC LIMIT 1"
)


def _latest(sql: str, name: str, limit: int | None = None) -> list[dict[str, object]]:
    with read_ledger() as conn:
        if conn is None:
            return []
        params: tuple[Any, ...] = (name,) if limit is None else (name, limit)
        return [dict(r) for r in conn.execute(sql, params).fetchall()]


def recent_runs(name: str, limit: int = 5) -> list[dict[str, object]]:
    return _latest(RUNS_SQL, name, limit)


def recent_events(name: str, limit: int = 8) -> list[dict[str, object]]:
    return _latest(EVENTS_SQL, name, limit)


def last_error_event(name: str) -> dict[str, object] | None:
    rows = _latest(ERROR_SQL, name)
    return rows[0] if rows else None


def _events_html(name: str) -> str:
    """The client's latest lifecycle events (started, stopped, crashed, hung, adopted...)."""
    events = recent_events(name)
    if not events:
        return ""
    items = "".join(
        f"<li>{format_time(str(e['created_at']))} <b>{html.escape(str(e['event_type']))}</b>"
        f" {html.escape(str(e['message'] or ''))}</li>"
        for e in events
    )
    return (
        f'<details class="qs-events-{html.escape(name)}"><summary>Recent events</summary>'
        f"<ul>{items}</ul></details>"
    )


def _runs_html(runs: list[dict[str, object]]) -> str:
    if not runs:
        return ""
    items = []
    root = str(workspace().root)
    for run in runs:
        link = ""
        if run["output_path"]:
            relative = str(run["output_path"]).replace(root + "/", "")
            link = f' <a href="/lab/tree/{html.escape(relative)}" target="_blank">output</a>'
        duration = f"{run['duration_s']:.1f} s" if run["duration_s"] is not None else "running"
        error = f": {html.escape(str(run['error']))}" if run.get("error") else ""
        items.append(
            f"<li>{format_time(str(run['started_at']))} {html.escape(str(run['status']))} "
            f"({duration}){error}{link}</li>"
        )
    return "<b>Recent runs</b><ul>" + "".join(items) + "</ul>"


@functools.cache
def _validated_registry() -> RegistryReader:
    """This kernel's reader of the registry: every client.toml was validated again on each
    2 s refresh while the daemon was down; now only a client whose files changed."""
    from quantstrip.daemon.registry import RegistryReader

    return RegistryReader()


def offline_statuses(validate: bool = True) -> list[ClientStatus]:
    """With the daemon down: every client of the registry, with its last recorded state.

    `validate=False` (the page's first screen) reads the client.toml files without validating
    them (`registry_files`): the registry's pydantic models cost about 0.25 s of the page's
    start. A file that is not TOML is invalid either way; one that parses but breaks a rule of
    the registry shows as invalid from the next refresh on (the browser's first tick), which
    validates as the daemon does."""
    saved = {s.name: s for s in clients_from_db()}
    if validate:
        from quantstrip.daemon.registry import InvalidClient

        registry: dict[str, Any] = _validated_registry().load()
        errors = {n: c.error for n, c in registry.items() if isinstance(c, InvalidClient)}
    else:
        from quantstrip.daemon.registry_files import peek_registry

        registry = peek_registry()
        errors = {n: c.error for n, c in registry.items() if c.error is not None}
    out = []
    for name, config in sorted(registry.items()):
        status = saved.get(name) or ClientStatus(
            name=name, kind=config.kind, state="never started", enabled=True
        )
        status.daemon_running = False
        if name in errors:
            status.state, status.last_error = "invalid", errors[name]
        else:
            status.enabled = config.enabled
            status.mode = config.mode
            status.display_name = config.display_name
            status.schedule = config.schedule
        out.append(status)
    return out


class ClientRow(w.VBox):
    def __init__(self, page: MonitorPage, status: ClientStatus) -> None:
        self.page = page
        self.name = status.name
        self.summary = w.HTML()
        self.error = w.HTML()
        self.detail = w.HTML()
        self.buttons: dict[str, w.Button] = {}
        for action in ACTIONS:
            button = w.Button(
                description=action.replace("_", "-"),
                layout=shared_styles.row_button(),
            )
            button.add_class(f"qs-{action}-{status.name}")
            button.on_click(lambda _b, a=action: self.page.act(self.name, a))
            self.buttons[action] = button
        self.risk = RiskButtons(page.confirm, status.name, page.after_risk)
        super().__init__(
            [self.summary, self.error, w.HBox(list(self.buttons.values())), self.risk, self.detail],
            layout=shared_styles.fixed(w.Layout, border="1px solid #ddd", padding="6px"),
        )
        self.add_class("qs-client-row")

    def update(self, status: ClientStatus, view: Assessment, risk: dict[str, str]) -> None:
        colour = COLOURS[view.health]
        title = html.escape(status.display_name or status.name)
        mode = (
            badge_html(
                Mode(status.mode),
                f"{status.name} trades in {status.mode} mode",
                css="qs-client-mode",
            )
            if status.mode in tuple(Mode)
            else ""
        )
        self.summary.value = (
            f'<b class="qs-client" data-client="{html.escape(status.name)}">{title}</b> {mode} '
            f"({status.kind}{', ' + html.escape(status.schedule) if status.schedule else ''}) — "
            f'<span class="qs-state-{html.escape(status.name)} qs-health-{view.health.value}" '
            f'style="color:{colour};font-weight:bold">{html.escape(status.state)}</span> '
            f'<span class="qs-headline-{html.escape(status.name)}" style="color:{colour}">'
            f"{html.escape(view.headline) if view.headline != status.state else ''}</span><br>"
            f'<small class="qs-details-{html.escape(status.name)}">'
            f"{html.escape(' · '.join(view.details))}</small>"
        )
        if view.error:
            trace = html.escape(status.last_error_traceback or "")
            when = f" ({html.escape(view.error_time)})" if view.error_time else ""
            body = f"<pre>{trace}</pre>" if trace else ""
            error = (
                f'<details class="qs-error-{html.escape(status.name)}"><summary '
                f'style="color:{COLOURS[view.health]}">Last error{when}: '
                f"{html.escape(view.error)}</summary>{body}</details>"
            )
        else:
            error = ""
        if error != self.error.value:  # an unchanged value keeps an opened <details> open
            self.error.value = error
        for action, button in self.buttons.items():
            button.disabled = action not in view.actions
        self.risk.update(risk.get(status.name, "active"), enabled=True)
        runs = recent_runs(status.name)
        detail = _runs_html(runs) + _events_html(status.name)
        if detail != self.detail.value:
            self.detail.value = detail


class MonitorPage(w.VBox):
    def __init__(self, refresh_ms: int = REFRESH_MS) -> None:
        self.control = ControlClient()
        self.banner = w.HTML()
        self.message = w.HTML()
        self.message.add_class("qs-message")
        self.confirm = ConfirmBar()
        self.risk_bar = RiskBar(self.confirm, self.after_risk)
        self.rows: dict[str, ClientRow] = {}
        self.statuses_by_name: dict[str, ClientStatus] = {}
        self.list = w.VBox()
        self.stamp = w.HTML()
        # Ticks in the browser, not in the kernel: see the module docstring.
        self.ticker = BrowserTicker(self.refresh, refresh_ms)
        super().__init__(
            [
                header("Client monitor"),
                self.banner,
                self.risk_bar,
                self.confirm,
                self.message,
                self.stamp,
                self.list,
                self.ticker.widget,
            ]
        )
        self.refresh(first=True)
        self.ticker.start()

    def statuses(self, first: bool = False) -> tuple[list[ClientStatus], bool]:
        if self.control.available():
            self.banner.value = ""
            return self.control.list_clients(fallback_to_db=False), True
        self.banner.value = error_html(
            "The Quantstrip daemon is not running: nothing is supervised or scheduled. Clients "
            "below are from the registry (clients/*/client.toml) with their last recorded state. "
            "Start it with `quantstrip up` or `systemctl --user start quantstrip`."
        )
        return offline_statuses(validate=not first), False

    def refresh(self, first: bool = False) -> None:
        with read_ledger():  # one read-only connection serves the whole refresh
            self._refresh(first)

    def _refresh(self, first: bool) -> None:
        try:
            statuses, daemon_up = self.statuses(first)
        except Exception as exc:  # one failed refresh must not break the page: the next retries
            self.banner.value = error_html(f"refresh failed: {exc}")
            return
        risk = risk_states()
        self.risk_bar.update(risk.get("*", "active"))
        names = [s.name for s in statuses]
        if set(names) != set(self.rows):
            self.rows = {
                s.name: row if (row := self.rows.get(s.name)) is not None else ClientRow(self, s)
                for s in statuses
            }
            self.list.children = [self.rows[n] for n in names]
        self.statuses_by_name = {s.name: s for s in statuses}
        now = clock.now()
        for status in statuses:
            runs = recent_runs(status.name, 1) if status.kind == "notebook" else []
            view = assess(
                status,
                daemon_up=daemon_up,
                last_run=runs[0] if runs else None,
                last_error_event=last_error_event(status.name),
                now=now,
            )
            self.rows[status.name].update(status, view, risk)
        if not statuses:
            self.list.children = [w.HTML("<p>No clients registered (clients/*/client.toml).</p>")]
        self.stamp.value = f"<small>updated {format_time(now, operator_zone())}</small>"

    def act(self, name: str, action: str) -> None:
        status = self.statuses_by_name.get(name)
        if action in ("start", "restart", "run_now") and status and status.mode == Mode.LIVE:
            self.confirm.ask(
                f"{name} trades LIVE, with real money. {action.replace('_', '-')} it?",
                lambda: self._act(name, action),
                css=f"qs-confirm-{action}-{name}",
            )
            return
        self._act(name, action)

    def _act(self, name: str, action: str) -> None:
        try:
            getattr(self.control, action)(name)
            self.message.value = f'<span class="qs-ok">{action} {html.escape(name)}: done</span>'
        except Exception as exc:
            self.message.value = error_html(f"{action} {name} failed: {exc}")
        self.refresh()

    def after_risk(self, text: str, ok: bool) -> None:
        body = f"<pre>{html.escape(text)}</pre>"
        self.message.value = body if ok else error_html(text)
        self.refresh()


def page() -> MonitorPage:
    shared_styles.install()  # default layouts and styles shared: shared_styles.py
    return MonitorPage()
