"""Who a page's kernel serves: the operator (the default) or a viewer.

The viewer server starts its kernels with QUANTSTRIP_ROLE=viewer. A viewer cannot change a
kernel's environment (the viewer server lets through widget messages only, never code), so
pages check the role where they act, not only where they draw a button: a hidden button's
click can still arrive as a widget message.
"""

from __future__ import annotations

import os

from quantstrip.errors import QuantstripError

ROLE_ENV = "QUANTSTRIP_ROLE"
VIEWER = "viewer"


class OperatorOnly(QuantstripError):
    """An action of the operator was asked for in a viewer's session."""


def is_viewer() -> bool:
    return os.environ.get(ROLE_ENV) == VIEWER


def require_operator(action: str) -> None:
    if is_viewer():
        raise OperatorOnly(f"{action} is for the operator; this is a read-only viewer session")


def pages() -> dict[str, str]:
    """The pages this session may link to."""
    from quantstrip.dashboard import PAGES, VIEWER_PAGES

    return dict(VIEWER_PAGES) if is_viewer() else dict(PAGES)
