"""Settings manager: edit the TOML with validation on save; secrets masked, replaceable and
deletable (after a confirmation)."""

from __future__ import annotations

import html

import ipywidgets as w

from quantstrip import settings
from quantstrip.dashboard import shared_styles
from quantstrip.dashboard.common import error_html, header
from quantstrip.dashboard.confirm import ConfirmBar

# The dashboard's own login token: deleting it from the page would lock this session out.
PROTECTED_SECRETS = frozenset({"dashboard.token"})


class SettingsPage(w.VBox):
    def __init__(self) -> None:
        self.editor = w.Textarea(
            value=settings.raw_text(), layout=w.Layout(width="95%", height="320px")
        )
        self.editor.add_class("qs-settings-text")
        self.save_button = w.Button(description="Validate and save", button_style="primary")
        self.save_button.add_class("qs-save")
        self.status = w.HTML()
        self.status.add_class("qs-settings-status")
        self.secrets = w.HTML()
        self.secret_rows = w.VBox()
        self.confirm = ConfirmBar()
        self.secret_name = w.Text(description="Secret", placeholder="smtp.primary.password")
        self.secret_value = w.Password(description="New value")
        self.secret_button = w.Button(description="Replace secret")
        self.secret_button.add_class("qs-secret-save")
        self.save_button.on_click(lambda _: self.save())
        self.secret_button.on_click(lambda _: self.replace_secret())
        super().__init__(
            [
                header("Settings manager"),
                w.HTML(
                    "<p>Platform sections are validated before anything is written; "
                    "an invalid file is never saved.</p>"
                ),
                self.editor,
                self.save_button,
                self.status,
                w.HTML("<h3>Secrets</h3><p>Stored encrypted; values are never shown.</p>"),
                self.secrets,
                self.secret_rows,
                self.confirm,
                w.HBox([self.secret_name, self.secret_value, self.secret_button]),
            ]
        )
        self.show_secrets()

    def show_secrets(self) -> None:
        names = settings.secret_names()
        rows = "".join(f"<li><code>{html.escape(n)}</code> = ********</li>" for n in names)
        self.secrets.value = f"<ul class='qs-secrets'>{rows}</ul>" if names else "<i>none</i>"
        buttons = []
        for name in names:
            if name in PROTECTED_SECRETS:
                continue
            button = w.Button(
                description=f"Delete {name}", layout=shared_styles.fixed(w.Layout, width="auto")
            )
            button.add_class(f"qs-secret-delete-{name.replace('.', '-')}")
            button.on_click(lambda _b, n=name: self.ask_delete(n))
            buttons.append(button)
        self.secret_rows.children = buttons

    def ask_delete(self, name: str) -> None:
        self.confirm.ask(
            f"Delete secret {name}? Whatever uses it (an SMTP account, a broker login) stops "
            "working until it is set again.",
            lambda: self.delete_secret(name),
            css="qs-confirm-secret",
        )

    def delete_secret(self, name: str) -> None:
        from quantstrip.secrets import Vault

        if name in PROTECTED_SECRETS:
            self.status.value = error_html(f"{name} is this dashboard's login token: not deleted")
            return
        try:
            deleted = Vault().delete(name)
            self.status.value = (
                f'<span class="qs-ok">secret {html.escape(name)} deleted</span>'
                if deleted
                else error_html(f"no secret named {name}")
            )
        except Exception as exc:
            self.status.value = error_html(f"delete failed: {exc}")
        self.show_secrets()

    def save(self) -> None:
        try:
            settings.save_text(self.editor.value)
            self.status.value = '<span class="qs-ok">saved</span>'
        except Exception as exc:
            self.status.value = error_html(str(exc))

    def replace_secret(self) -> None:
        name, value = self.secret_name.value.strip(), self.secret_value.value
        self.secret_value.value = ""
        if not name or not value:
            self.status.value = error_html("secret name and value are both required")
            return
        try:
            settings.set_secret(name, value)
            self.status.value = f'<span class="qs-ok">secret {html.escape(name)} replaced</span>'
        except Exception as exc:
            self.status.value = error_html(str(exc))
        self.show_secrets()


def page() -> SettingsPage:
    shared_styles.install()  # default layouts and styles shared: shared_styles.py
    return SettingsPage()
