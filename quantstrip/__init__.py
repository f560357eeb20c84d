"""Quantstrip: a Jupyter-centred workbench that takes a trading strategy to production.

Client code reaches the platform through five narrow modules:
`from quantstrip import ClientBase, db_handler, email_manager, settings, logger`.
They are imported on first use so `import quantstrip` stays cheap in every client process.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["ClientBase", "db_handler", "email_manager", "logger", "settings"]

_MODULES = {
    "db_handler": "quantstrip.db_handler",
    "email_manager": "quantstrip.email_manager",
    "settings": "quantstrip.settings",
    "logger": "quantstrip.logger",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    if name == "ClientBase":
        return importlib.import_module("quantstrip.client.base").ClientBase
    raise AttributeError(f"module 'quantstrip' has no attribute {name!r}")
