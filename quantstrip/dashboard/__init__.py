"""Dashboard pages: ipywidgets layouts rendered by Voila from the thin notebooks in `reports/`.

Each module builds one page from library calls (analytics, daemon control, settings, logger,
email_manager) and never writes lifecycle tables itself.

Viewers (people the operator shares reports with) get VIEWER_PAGES only, from their own Voila
server over `reports/viewer/` (dashboard/viewer_server.py); their kernels run with
QUANTSTRIP_ROLE=viewer and the pages refuse operator actions in that role.
"""

from __future__ import annotations

PAGES = {
    "monitor": "Client monitor",
    "blotter": "Blotter and positions",
    "clients": "Manage clients",
    "sql_editor": "SQL editor",
    "portfolio": "Portfolio report",
    "research": "Research",
    "notifications": "Notification centre",
    "settings": "Settings manager",
    "logs": "Logs",
    "packages": "Package manager",
}

# What a viewer may open: reports, read-only. A test keeps reports/viewer/ in step with it.
VIEWER_PAGES = {
    "portfolio": "Portfolio report",
    "blotter": "Blotter and positions",
    "sql_editor": "SQL editor",
    "notifications": "Notification centre",
}
