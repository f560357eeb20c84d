"""A confirmation bar: the question, then Confirm or Cancel. Its own module (not the risk
panel's) so the pages that only ask before saving or deleting (clients, settings) do not load
the risk controls and their broker modules at start: about 0.1 s of those pages' kernel time."""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as w

from quantstrip.dashboard import shared_styles


class ConfirmBar(w.HBox):
    """One question at a time: what will happen, then Confirm or Cancel."""

    def __init__(self) -> None:
        self.question = w.HTML()
        self.yes = w.Button(description="Confirm", button_style="danger")
        self.yes.add_class("qs-confirm-yes")
        self.no = w.Button(description="Cancel")
        self.no.add_class("qs-confirm-no")
        self._pending: Callable[[], None] | None = None
        self.yes.on_click(lambda _: self._answer(True))
        self.no.on_click(lambda _: self._answer(False))
        layout = shared_styles.own(
            w.Layout, display="none", border="2px solid #b00020", padding="6px"
        )  # shown and hidden
        super().__init__([self.question, self.yes, self.no], layout=layout)
        self.add_class("qs-confirm")

    def ask(self, question: str, action: Callable[[], None], css: str = "") -> None:
        self._pending = action
        self.question.value = f'<b class="{html.escape(css)}">{html.escape(question)}</b>'
        self.layout.display = "flex"

    def _answer(self, yes: bool) -> None:
        action, self._pending = self._pending, None
        self.layout.display = "none"
        self.question.value = ""
        if yes and action is not None:
            action()
