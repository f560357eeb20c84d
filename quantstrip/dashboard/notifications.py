"""Notification centre: every e-mail, alert, digest and summary with its status; resend."""

from __future__ import annotations

import html

import ipywidgets as w

from quantstrip.dashboard import roles, shared_styles
from quantstrip.dashboard.common import error_html, header, read_ledger
from quantstrip.dashboard.display import format_time

STATUSES = ["all", "sent", "failed", "queued", "batched"]


def load(status: str, limit: int = 200) -> list[dict[str, object]]:
    where = "" if status == "all" else "WHERE status = ?"
    params = () if status == "all" else (status,)
    with read_ledger() as conn:
        if conn is None:
            return []
        rows = conn.execute(
            "SELECT id, created_at, kind, client_name, recipients, subject, status, attempts, "
            f"last_error FROM notifications {where} ORDER BY id DESC LIMIT {int(limit)}",
            params,
        ).fetchall()
    return [dict(r) for r in rows]


class NotificationsPage(w.VBox):
    def __init__(self) -> None:
        self.filter = w.Dropdown(options=STATUSES, value="all", description="Status")
        self.refresh_button = w.Button(description="Refresh")
        self.message = w.HTML()
        self.list = w.VBox()
        self.filter.observe(lambda _: self.refresh(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        super().__init__(
            [
                header("Notification centre"),
                w.HBox([self.filter, self.refresh_button]),
                self.message,
                self.list,
            ]
        )
        self.refresh()

    def refresh(self) -> None:
        rows = load(self.filter.value)
        if not rows:
            self.list.children = [w.HTML("<p><i>No notifications.</i></p>")]
            return
        children = []
        for row in rows:
            colour = {"sent": "#0a6b0a", "failed": "#a40000"}.get(str(row["status"]), "#555")
            text = (
                f'<span class="qs-notification" data-id="{row["id"]}">#{row["id"]} '
                f"{format_time(str(row['created_at']))} <b>{html.escape(str(row['kind']))}</b> "
                f"{html.escape(str(row['subject']))} → "
                f"{html.escape(str(row['recipients']) or '(no recipient)')} "
                f'<span style="color:{colour}">{row["status"]}</span> '
                f"(attempts {row['attempts']})</span>"
            )
            if row["last_error"]:
                text += f"<br><small>{html.escape(str(row['last_error']))}</small>"
            items: list[w.Widget] = [w.HTML(text)]
            if row["status"] == "failed" and not roles.is_viewer():
                button = w.Button(description="Resend", layout=shared_styles.row_button())
                button.add_class(f"qs-resend-{row['id']}")
                button.on_click(
                    lambda _b, nid=row["id"], to=row["recipients"]: self.resend(int(nid), str(to))
                )
                items.append(button)
            children.append(w.HBox(items))
        self.list.children = children

    def resend(self, notification_id: int, recipients: str = "") -> None:
        from quantstrip import email_manager

        if not recipients.strip(" ,"):
            self.message.value = error_html(
                f"#{notification_id} has no recipient: nothing to resend to. Set "
                "email.recipients (default, or for its client) in the settings, then send again."
            )
            return
        try:
            roles.require_operator("resending a message")
            result = email_manager.resend(notification_id)
            self.message.value = html.escape(f"resend #{notification_id}: {result.status}")
        except Exception as exc:
            self.message.value = error_html(f"resend failed: {exc}")
        self.refresh()


def page() -> NotificationsPage:
    shared_styles.install()  # default layouts and styles shared: shared_styles.py
    return NotificationsPage()
