"""Manage clients from the browser: create a client from a notebook or module of the workspace,
edit it, pause it, delete it (its folder and runs archived). Everything goes through
`quantstrip.client_admin`, all or nothing; the daemon picks the change up within a second."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import ipywidgets as w
import tomlkit
from ipywidgets.widgets.widget_description import DescriptionStyle
from ipywidgets.widgets.widget_string import TextStyle

from quantstrip import client_admin
from quantstrip.client_admin import LIMIT_KEYS, MISSED_POLICIES, MODES, ClientSpec
from quantstrip.dashboard import shared_styles
from quantstrip.dashboard.common import error_html, header
from quantstrip.dashboard.confirm import ConfirmBar
from quantstrip.errors import ValidationError
from quantstrip.paths import workspace

NEW = "(new client)"
KEEP = "(keep its current code)"
SKIP_DIRS = {"var", "reports", "clients", ".venv", "node_modules", ".git", "jupyter_config"}
LIMIT_LABELS = {
    "max_position": "Max position",
    "max_order_notional": "Max order notional",
    "max_daily_loss_strategy": "Max daily loss / strategy",
    "max_daily_loss_account": "Max daily loss / account",
    "max_orders_per_minute": "Max orders / minute",
}


def sources() -> list[str]:
    """Notebooks and modules of the workspace a client can be made from (relative paths, at
    most four levels deep). Skipped folders (the data directory, a virtual environment, hidden
    folders) are never entered: a workspace holding a .venv has tens of thousands of files
    there, and walking them all cost the page seconds before filtering them out."""
    root = workspace().root
    found = []
    for folder, dirs, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".") and not (depth == 0 and d in SKIP_DIRS) and depth < 3
        ]
        found.extend(
            str(Path(folder, name).relative_to(root))
            for name in files
            if name.endswith((".ipynb", ".py")) and not name.startswith(".")
        )
    return sorted(found)


def client_names() -> list[str]:
    """Every registered client, valid or not (the registry's folders): listing them validates
    nothing, so the page's start does not load the registry's pydantic models."""
    from quantstrip.daemon.registry_files import client_names as names

    return sorted(names())


FIELD = {"width": "420px"}
LABEL = {"description_width": "150px"}


def _text(**kw: Any) -> w.Text:
    """A form field; the fields share one layout and one style (shared_styles.fixed)."""
    return w.Text(
        layout=shared_styles.fixed(w.Layout, **FIELD),
        style=shared_styles.fixed(TextStyle, **LABEL),
        **kw,
    )


class ClientsPage(w.VBox):
    def __init__(self) -> None:
        style = shared_styles.fixed(DescriptionStyle, **LABEL)
        self.choice = w.Dropdown(description="Client", style=style)
        self.choice.add_class("qs-client-choice")
        self.source = w.Dropdown(
            description="Notebook / module",
            style=style,
            layout=shared_styles.fixed(w.Layout, **FIELD),
        )
        self.source.add_class("qs-client-source")
        self.name = _text(description="Name", placeholder="letters, digits, _ . -")
        self.name.add_class("qs-client-name")
        self.display_name = _text(description="Display name")
        self.class_name = _text(description="Class (modules)", placeholder="found automatically")
        self.schedule = _text(
            description="Schedule", placeholder="every day at 16:30  or  30 9 * * 1-5"
        )
        self.schedule.add_class("qs-client-schedule")
        self.tz = _text(
            description="Time zone",
            value="",
            placeholder="blank: the calendar's exchange zone, else UTC",
        )
        self.calendar = _text(description="Calendar", placeholder="e.g. XNYS: sessions only")
        self.mode = w.Dropdown(description="Mode", options=MODES, style=style)
        self.mode.add_class("qs-client-mode-choice")
        self.parameters = w.Textarea(
            description="Parameters (TOML)",
            style=shared_styles.fixed(TextStyle, **LABEL),
            placeholder='lookback = 20\nsymbol = "SPY"',
            layout=w.Layout(width="420px", height="80px"),
        )
        self.parameters.add_class("qs-client-parameters")
        self.time_limit = _text(description="Run-time limit (s)", placeholder="none")
        self.missed = w.Dropdown(
            description="Catch-up (notebooks)", options=MISSED_POLICIES, style=style
        )
        self.paused = w.Checkbox(description="Paused (registered, not run)", value=False)
        self.limits = {
            key: _text(description=LIMIT_LABELS[key], placeholder="no limit") for key in LIMIT_KEYS
        }
        for key, box in self.limits.items():
            box.add_class(f"qs-limit-{key}")
        self.save = w.Button(description="Create", button_style="primary")
        self.save.add_class("qs-client-save")
        self.pause_button = w.Button(description="Pause")
        self.pause_button.add_class("qs-client-pause")
        self.delete_button = w.Button(description="Delete", button_style="danger")
        self.delete_button.add_class("qs-client-delete")
        self.status = w.HTML()
        self.status.add_class("qs-client-status")
        self.confirm = ConfirmBar()
        self.choice.observe(lambda _: self.load(), names="value")
        self.save.on_click(lambda _: self.ask_save())
        self.pause_button.on_click(lambda _: self.toggle_pause())
        self.delete_button.on_click(lambda _: self.ask_delete())
        form = w.VBox(
            [
                self.choice,
                self.source,
                self.name,
                self.display_name,
                self.class_name,
                self.schedule,
                self.tz,
                self.calendar,
                self.mode,
                self.parameters,
                self.time_limit,
                self.missed,
                self.paused,
                w.HTML("<b>Risk limits for this client</b> (empty: only the global ones)"),
                *self.limits.values(),
                w.HBox([self.save, self.pause_button, self.delete_button]),
            ]
        )
        super().__init__([header("Manage clients"), self.confirm, self.status, form])
        self.reload(NEW)

    # ---- loading -----------------------------------------------------------------------------
    def reload(self, chosen: str) -> None:
        names = client_names()
        self.choice.options = [NEW, *names]
        self.choice.value = chosen if chosen in names else NEW
        self.load()

    def load(self) -> None:
        new = self.choice.value == NEW
        self.source.options = sources() if new else [KEEP, *sources()]
        self.name.disabled = not new
        self.save.description = "Create" if new else "Save changes"
        self.pause_button.disabled = self.delete_button.disabled = new
        if new:
            for box in (
                self.name,
                self.display_name,
                self.class_name,
                self.schedule,
                self.calendar,
                self.parameters,
                self.time_limit,
                *self.limits.values(),
            ):
                box.value = ""
            self.tz.value, self.mode.value, self.missed.value = "", "simulation", "skip"
            self.paused.value = False
            return
        spec = client_admin.describe(self.choice.value)
        self.source.value = KEEP
        self.name.value = spec.name
        self.display_name.value = spec.display_name or ""
        self.class_name.value = spec.class_name or ""
        self.schedule.value = spec.schedule or ""
        self.tz.value = spec.tz or ""
        self.calendar.value = spec.calendar or ""
        self.mode.value = spec.mode
        self.parameters.value = tomlkit.dumps(spec.parameters) if spec.parameters else ""
        self.time_limit.value = "" if spec.time_limit_s is None else f"{spec.time_limit_s:g}"
        self.missed.value = spec.missed_policy or "skip"
        self.paused.value = not spec.enabled
        self.pause_button.description = "Resume" if not spec.enabled else "Pause"
        for key, box in self.limits.items():
            value = (spec.limits or {}).get(key)
            box.value = "" if value is None else f"{value:g}"

    # ---- the form as a spec --------------------------------------------------------------------
    def spec(self) -> ClientSpec:
        new = self.choice.value == NEW
        source = None if self.source.value in (None, KEEP) else workspace().root / self.source.value
        try:
            parameters = tomlkit.parse(self.parameters.value).unwrap()
        except Exception as exc:
            raise ValidationError("parameters", f"not TOML: {exc}") from None
        limits = {}
        for key, box in self.limits.items():
            if box.value.strip():
                limits[key] = _number(box.value, LIMIT_LABELS[key])
        limit = self.time_limit.value.strip()
        return ClientSpec(
            name=self.name.value.strip() if new else self.choice.value,
            source=Path(source) if source else None,
            schedule=self.schedule.value.strip() or None,
            tz=self.tz.value.strip() or None,
            calendar=self.calendar.value.strip() or None,
            class_name=self.class_name.value.strip() or None,
            mode=self.mode.value,
            enabled=not self.paused.value,
            display_name=self.display_name.value.strip() or None,
            parameters=parameters,
            time_limit_s=_number(limit, "run-time limit") if limit else None,
            missed_policy=self.missed.value,
            limits=limits,
        )

    # ---- actions ---------------------------------------------------------------------------------
    def ask_save(self) -> None:
        try:
            spec = self.spec()
        except Exception as exc:
            self.status.value = error_html(str(exc))
            return
        if spec.mode == "live" and spec.enabled:
            self.confirm.ask(
                f"{spec.name} will trade LIVE, with real money, as soon as it is saved. Save it?",
                lambda: self.do_save(spec),
                css="qs-confirm-live",
            )
            return
        self.do_save(spec)

    def do_save(self, spec: ClientSpec) -> None:
        new = self.choice.value == NEW
        try:
            path = client_admin.create(spec) if new else client_admin.update(spec)
        except Exception as exc:
            self.status.value = error_html(f"{'create' if new else 'save'} failed: {exc}")
            return
        verb = "created" if new else "saved"
        self.status.value = (
            f'<div class="qs-ok">{html.escape(spec.name)} {verb}: the daemon picks it up within '
            f"a second.</div><pre>{html.escape(path.read_text())}</pre>"
        )
        self.reload(spec.name)

    def toggle_pause(self) -> None:
        name = self.choice.value
        paused = self.pause_button.description == "Pause"
        try:
            client_admin.pause(name, paused)
        except Exception as exc:
            self.status.value = error_html(f"{'pause' if paused else 'resume'} failed: {exc}")
            return
        self.status.value = (
            f'<div class="qs-ok">{html.escape(name)} {"paused" if paused else "resumed"}</div>'
        )
        self.reload(name)

    def ask_delete(self) -> None:
        name = self.choice.value
        self.confirm.ask(
            f"Delete client {name}? The daemon stops it; its folder and run outputs are "
            "archived under the data directory.",
            lambda: self.do_delete(name),
            css="qs-confirm-delete",
        )

    def do_delete(self, name: str) -> None:
        try:
            archive = client_admin.delete(name)
        except Exception as exc:
            self.status.value = error_html(f"delete failed: {exc}")
            return
        self.status.value = (
            f'<div class="qs-ok">{html.escape(name)} deleted; archived in '
            f"<code>{html.escape(str(archive))}</code></div>"
        )
        self.reload(NEW)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValidationError(what, f"not a number: {text!r}") from None
    if value <= 0:
        raise ValidationError(what, "must be greater than zero")
    return value


def page() -> ClientsPage:
    shared_styles.install()  # default layouts and styles shared: shared_styles.py
    return ClientsPage()
