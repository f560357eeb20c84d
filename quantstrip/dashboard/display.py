"""How the dashboard shows times, ages, money and trading modes, in one place.

Times are stored in UTC; the operator reads them in their own zone (`dashboard.timezone`, else
the machine's), labelled with the zone, to the second. The mode badge tells, on every page,
whether real money is at stake: LIVE if any enabled client trades live, else PAPER if any trades
on a paper account, else SIMULATION.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo

from quantstrip import clock
from quantstrip.db.units import parse_utc
from quantstrip.paths import workspace


class Mode(StrEnum):
    SIMULATION = "simulation"
    PAPER = "paper"
    LIVE = "live"


MODE_RANK = {Mode.SIMULATION: 0, Mode.PAPER: 1, Mode.LIVE: 2}
MODE_COLOURS = {Mode.SIMULATION: "#1f5fa8", Mode.PAPER: "#a86a00", Mode.LIVE: "#b00020"}


def operator_zone() -> tzinfo:
    from quantstrip import settings_file

    try:
        name = settings_file.zone("dashboard.timezone")
    except Exception:  # an unreadable file or unknown zone: the machine's zone, still labelled
        name = None
    if name:
        return ZoneInfo(name)
    return clock.local_now().tzinfo or UTC


def to_local(value: datetime | str | None, zone: tzinfo | None = None) -> datetime | None:
    if value is None or value == "":
        return None
    moment = _parse(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone or operator_zone())


def _parse(text: str) -> datetime:
    try:
        return parse_utc(text)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))


def format_time(
    value: datetime | str | None, zone: tzinfo | None = None, *, date: bool = True
) -> str:
    """'2031-03-04 10:00:00 EST' (no microseconds, zone named); '' for no time."""
    local = to_local(value, zone)
    if local is None:
        return ""
    return local.strftime("%Y-%m-%d %H:%M:%S %Z" if date else "%H:%M:%S %Z")


def format_age(seconds: float | None) -> str:
    """A duration as the operator reads it: '42 s', '7 min', '3 h 5 min', '2 d 4 h'."""
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60} min"
    return f"{hours // 24} d {hours % 24} h"


def countdown(target: datetime | str | None, now: datetime | None = None) -> str:
    local = to_local(target)
    if local is None:
        return ""
    seconds = (local - (now or clock.now())).total_seconds()
    return "due now" if seconds <= 0 else f"in {format_age(seconds)}"


def money(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def workspace_modes() -> dict[Mode, list[str]]:
    """Enabled clients by mode, read straight from clients/*/client.toml (every page shows the
    badge: no validation here, which the monitor and the daemon do; an unreadable file counts as
    nothing trading)."""
    import tomllib

    modes: dict[Mode, list[str]] = {mode: [] for mode in Mode}
    folder = workspace().clients
    if not folder.is_dir():
        return modes
    for path in sorted(folder.glob("*/client.toml")):
        try:
            data = tomllib.loads(path.read_text())
            mode = Mode(data.get("mode", "simulation"))
        except (OSError, ValueError, tomllib.TOMLDecodeError):
            continue
        if data.get("enabled", True) is True:
            modes[mode].append(path.parent.name)
    return modes


def workspace_mode(modes: dict[Mode, list[str]] | None = None) -> Mode:
    modes = modes if modes is not None else workspace_modes()
    present = [mode for mode, names in modes.items() if names] or [Mode.SIMULATION]
    return max(present, key=MODE_RANK.__getitem__)


def badge_html(mode: Mode, title: str = "", css: str = "qs-mode") -> str:
    colour = MODE_COLOURS[mode]
    return (
        f'<span class="{css} {css}-{mode.value}" title="{html.escape(title)}" '
        f'style="background:{colour};color:#fff;border-radius:3px;padding:1px 7px;'
        f'font-weight:bold;font-size:12px;letter-spacing:0.5px">{mode.value.upper()}</span>'
    )


def page_badge(mode: Mode | None = None) -> str:
    """The badge for a page header: the workspace's mode, the clients of each mode on hover."""
    modes = workspace_modes()
    mode = mode or workspace_mode(modes)
    detail = "; ".join(f"{m.value}: {', '.join(n)}" for m, n in modes.items() if n)
    return badge_html(mode, detail or "no enabled client: nothing trades")
