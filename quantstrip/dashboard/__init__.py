"""Dashboard pages: ipywidgets layouts rendered by Voila from the thin notebooks in `reports/`.

Each module builds one page from library calls (analytics, daemon control, settings, logger,
email_manager) and never writes lifecycle tables itself.
"""

from __future__ import annotations

PAGES = {
    "monitor": "Client monitor",
    "blotter": "Blotter and positions",
    "sql_editor": "SQL editor",
    "portfolio": "Portfolio report",
    "research": "Research",
    "notifications": "Notification centre",
    "settings": "Settings manager",
    "logs": "Logs",
    "packages": "Package manager",
}
