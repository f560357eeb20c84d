"""Settings manager: edit the TOML with validation on save; secrets masked, replaceable."""

from __future__ import annotations

import html

import ipywidgets as w

from quantstrip import settings
from quantstrip.dashboard.common import error_html, header


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
                w.HBox([self.secret_name, self.secret_value, self.secret_button]),
            ]
        )
        self.show_secrets()

    def show_secrets(self) -> None:
        names = settings.secret_names()
        rows = "".join(f"<li><code>{html.escape(n)}</code> = ********</li>" for n in names)
        self.secrets.value = f"<ul class='qs-secrets'>{rows}</ul>" if names else "<i>none</i>"

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
    return SettingsPage()
