"""The operator's risk controls on the monitor: stop new entries, flatten, halt and resume, for
one client or for all, each after an explicit confirmation. They call the same operations as the
CLI (`quantstrip.brokers.risk.operator`)."""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as w

from quantstrip.brokers.risk import controls, operator
from quantstrip.dashboard import shared_styles
from quantstrip.dashboard.confirm import ConfirmBar

Done = Callable[[str, bool], None]

EXPLAIN = {
    "stop_entries": "refuse orders that open or add to a position; exits still pass",
    "flatten": "stop new entries, cancel its open orders and close its positions at market",
    "halt": "refuse every order, cancel open orders and stop the client process",
    "resume": "lift stop-entries, flatten's stop or a halt: trading active again",
}
LABELS = {
    "stop_entries": "stop entries",
    "flatten": "flatten",
    "halt": "halt",
    "resume": "resume",
}


def risk_states() -> dict[str, str]:
    """scope ('*' or a client name) -> state, for scopes that are not active."""
    return {c.scope: c.state.value for c in controls.all_controls()}


def carry_out(action: str, scope: str) -> tuple[str, bool]:
    by = "dashboard"
    if action == "stop_entries":
        outcome = operator.stop_entries(scope, by=by)
    elif action == "flatten":
        outcome = operator.flatten(scope, by=by, wait_s=20)
    elif action == "halt":
        outcome = operator.halt(scope, by=by, wait_s=20)
    else:
        outcome = operator.resume(scope, by=by)
    return outcome.text, outcome.ok


class RiskButtons(w.HBox):
    """Stop entries / flatten / halt / resume for one scope, each confirmed first."""

    def __init__(self, confirm: ConfirmBar, scope: str, done: Done) -> None:
        self.confirm = confirm
        self.scope = scope
        self.done = done
        label = "all clients" if scope == controls.ALL else scope
        self.label = label
        self.state = w.HTML()
        self.buttons: dict[str, w.Button] = {}
        css_scope = "all" if scope == controls.ALL else scope
        for action, text in LABELS.items():
            button = w.Button(
                description=text + (" (all)" if scope == controls.ALL else ""),
                tooltip=EXPLAIN[action],
                button_style="warning" if action != "resume" else "",
                layout=shared_styles.fixed(w.Layout, width="auto"),
            )
            button.add_class(f"qs-risk-{action}-{css_scope}")
            button.on_click(lambda _b, a=action: self.ask(a))
            self.buttons[action] = button
        super().__init__([self.state, *self.buttons.values()])

    def ask(self, action: str) -> None:
        self.confirm.ask(
            f"{LABELS[action].capitalize()} {self.label}: {EXPLAIN[action]}?",
            lambda: self.done(*carry_out(action, self.scope)),
            css=f"qs-confirm-{action}",
        )

    def update(self, state: str, enabled: bool = True) -> None:
        colour = "#0a6b0a" if state == "active" else "#b00020"
        css = "all" if self.scope == controls.ALL else self.scope
        self.state.value = (
            f'<span class="qs-risk-state-{html.escape(css)}" style="color:{colour}">'
            f"trading {html.escape(state.replace('_', ' '))}</span>"
        )
        for action, button in self.buttons.items():
            applies = {
                "stop_entries": state == "active",
                "flatten": True,
                "halt": state != "halted",
                "resume": state != "active",
            }[action]
            button.disabled = not (enabled and applies)


class RiskBar(w.VBox):
    """The controls for every client at once, above the list of clients."""

    def __init__(self, confirm: ConfirmBar, done: Done) -> None:
        self.buttons = RiskButtons(confirm, controls.ALL, done)
        super().__init__([w.HTML("<b>Risk controls for all clients</b>"), self.buttons])
        self.add_class("qs-risk-bar")

    def update(self, state: str) -> None:
        self.buttons.update(state)
