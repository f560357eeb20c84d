"""SQL editor: free SQL or a saved query, read-only, results sortable and exportable."""

from __future__ import annotations

import html
import threading
import time

import ipywidgets as w

from quantstrip.analytics.queries import QueryHandle, list_queries
from quantstrip.dashboard import shared_styles
from quantstrip.dashboard.common import SortableTable, error_html, header

DEFAULT_SQL = "SELECT strategy, date, net_pnl FROM v_daily_pnl ORDER BY date DESC LIMIT 50"


class SqlEditorPage(w.VBox):
    def __init__(self) -> None:
        self.queries = {q.name: q for q in list_queries()}
        options = [("(choose a saved query)", "")] + [
            (f"{q.title} ({q.source})", q.name) for q in self.queries.values()
        ]
        self.library = w.Dropdown(
            options=options, description="Library", layout=w.Layout(width="60%")
        )
        self.description = w.HTML()
        self.sql = w.Textarea(value=DEFAULT_SQL, layout=w.Layout(width="95%", height="140px"))
        self.sql.add_class("qs-sql")
        self.run_button = w.Button(description="Run", button_style="primary")
        self.run_button.add_class("qs-run")
        self.cancel_button = w.Button(description="Cancel", disabled=True)
        self.cancel_button.add_class("qs-cancel")
        self.status = w.HTML()
        self.status.add_class("qs-status")
        self.results = SortableTable(filename="query.csv")
        self.handle: QueryHandle | None = None
        self.library.observe(self._choose, names="value")
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        super().__init__(
            [
                header("SQL editor"),
                w.HTML(
                    "<p>Read-only over the lifecycle database (DuckDB SQL). "
                    "Views: v_executions, v_round_trips, v_daily_pnl, v_commissions, "
                    "v_positions, v_position_history, v_return_on_capital.</p>"
                ),
                self.library,
                self.description,
                self.sql,
                w.HBox([self.run_button, self.cancel_button]),
                self.status,
                self.results,
            ]
        )

    def _choose(self, change: dict) -> None:
        query = self.queries.get(change["new"])
        if query:
            self.sql.value = query.sql
            self.description.value = f"<i>{html.escape(query.description)}</i>"

    def run(self, background: bool = True) -> None:
        if self.handle is not None:
            return
        self.status.value = "running…"
        self.run_button.disabled, self.cancel_button.disabled = True, False
        sql = self.sql.value

        def work() -> None:
            started = time.perf_counter()
            try:
                self.handle = QueryHandle()
                frame = self.handle.run(sql, limit=10_000)
                self.results.set(frame)
                self.status.value = (
                    f'<span class="qs-ok">{len(frame)} rows in '
                    f"{time.perf_counter() - started:.2f}s</span>"
                )
            except Exception as exc:
                self.status.value = error_html(str(exc))
            finally:
                self.handle = None
                self.run_button.disabled, self.cancel_button.disabled = False, True

        if background:
            threading.Thread(target=work, daemon=True).start()
        else:
            work()

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.interrupt()
            self.status.value = error_html("cancelled")


def page() -> SqlEditorPage:
    shared_styles.install()  # default layouts and styles shared: shared_styles.py
    return SqlEditorPage()
