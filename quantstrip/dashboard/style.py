"""The pages' shared CSS, apart from the widgets: the home page is plain HTML and loads no
ipywidgets."""

from __future__ import annotations

STYLE = """
<style>
.qs-table { border-collapse: collapse; font-size: 13px; }
.qs-table th, .qs-table td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }
.qs-table th { background: #f3f5f7; }
.qs-error { color: #a40000; white-space: pre-wrap; font-family: monospace; }
.qs-ok { color: #0a6b0a; }
.qs-nav a { margin-right: 12px; }
/* wide statistics tables scroll inside the page instead of being cut off */
.qs-stats, .qs-stats .widget-html-content { max-width: 100%; overflow-x: auto; }
</style>
"""
