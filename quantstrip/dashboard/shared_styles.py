"""One default layout model and one default style model of each kind, shared by every widget of
a dashboard page built without its own.

An ipywidgets widget brings two more models by default, its `Layout` and its `Style`, and most
of a page's widgets never change either: 61 of the clients page's 94 models were such defaults.
Each model costs the page's load: the kernel opens a comm for it, Voila's server relays it, the
browser fetches its state and builds it after the kernel connects. Measured in headless Chromium
(same server, two runs, median of 5 each): 100 HTML widgets took 3.64-3.87 s to show with their
own defaults, 2.89 s sharing one layout and one style; 10 HTML widgets 2.99-3.33 s, a trivial
page 2.54-2.67 s (about 2-3 ms per model). Loading the clients page or the monitor took 0.1-0.5 s
less CPU in all (browser, server and kernel) with shared defaults.

A shared default is frozen: changing it (`widget.layout.display = "none"`) would change every
widget built without its own, so it raises `SharedDefaultChanged`. A widget whose layout or
style changes is given its own when it is built (`layout=own(w.Layout, ...)`), which stays free.

`install()` is called by each page's `page()`: it changes the defaults of the process it runs in
(a page's kernel renders that page only), not on import.
"""

from __future__ import annotations

import functools
from typing import Any

import ipywidgets as w
from ipywidgets.widgets.trait_types import InstanceDict


class SharedDefaultChanged(AttributeError):
    """A widget's shared default layout or style was changed (see the module's doc)."""


_installed = False


@functools.cache
def _frozen_class(klass: type[w.Widget]) -> type[w.Widget]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if self.__dict__.get("_qs_frozen") and name in self.keys:
            raise SharedDefaultChanged(
                f"{klass.__name__}.{name}: this {klass.__name__} is the default shared by every "
                f"dashboard widget built without its own; give the widget its own when building "
                f"it (e.g. layout=ipywidgets.Layout({name}=...))"
            )
        klass.__setattr__(self, name, value)

    return type(f"Shared{klass.__name__}", (klass,), {"__setattr__": __setattr__})


@functools.cache
def _fixed(klass: type[w.Widget], items: tuple[tuple[str, Any], ...]) -> w.Widget:
    instance = _frozen_class(klass)(**dict(items))
    instance.__dict__["_qs_frozen"] = True
    return instance


def fixed(klass: type[w.Widget], **traits: Any) -> Any:
    """This process's one frozen `klass(**traits)` (a Layout or a Style), for the widgets of a
    page that share a look (the clients form's fields: one layout, one style for all)."""
    return _fixed(klass, tuple(sorted(traits.items())))


def row_button() -> Any:
    """The layout of the action buttons in a page's rows (monitor, notifications)."""
    return fixed(w.Layout, width="90px")


def own(klass: type[w.Widget], **traits: Any) -> Any:
    """A `klass(**traits)` of one widget's own, for a widget whose layout or style changes
    after it is built (shown, hidden); marked so, as not a shareable duplicate."""
    instance = klass(**traits)
    instance.__dict__["_qs_own"] = True
    return instance


def _default_traits() -> list[InstanceDict]:
    """The layout and style traits of every widget class ipywidgets defines (several classes
    share one trait object), without default arguments."""
    found: dict[int, InstanceDict] = {}
    pending: list[type] = [w.DOMWidget]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        for name in ("layout", "style"):
            trait = cls.class_traits().get(name)
            if (
                isinstance(trait, InstanceDict)
                and not trait.default_args
                and not trait.default_kwargs
            ):
                found[id(trait)] = trait
    return list(found.values())


def install() -> None:
    """Widgets built from now on without a layout or a style of their own share the defaults."""
    global _installed
    if _installed:
        return
    for trait in _default_traits():
        trait.make_dynamic_default = functools.partial(fixed, trait.klass)  # type: ignore[method-assign]
    _installed = True
