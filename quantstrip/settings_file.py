"""The settings file as it is on disk, read without validating it.

A dashboard page shows one or two settings (the operator's zone, the trading day's zone, the
capital a report divides by). Validating the whole tree for that means importing pydantic and
building every platform model's validator: 0.3-0.5 s of each page's start-up, more than the
rest of a small page. `peek` reads the file with the standard library's TOML parser instead
(cached per file stamp); the caller checks the one value it uses (a zone through `ZoneInfo`, a
capital through `float`), so a bad value still gives a clear error where it is used.

Code that acts on settings (clients, the daemon, brokers) keeps using the validated
`quantstrip.settings.get` / `platform()`; this module imports nothing heavy and nothing of them.
"""

from __future__ import annotations

import os
import threading
import tomllib
from pathlib import Path
from typing import Any

from quantstrip.errors import ConfigError
from quantstrip.paths import workspace

# Defaults the platform models (settings_models) share with `peek`'s callers: one definition.
DEFAULT_DAY_ZONE = "America/New_York"
DEFAULT_MARK_MAX_AGE_S = 900.0

_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[int, int] | None, dict[str, Any]]] = {}


def settings_path() -> Path:
    override = os.environ.get("QUANTSTRIP_SETTINGS")
    return Path(override) if override else workspace().settings_file


def file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


def raw_tree(path: Path | None = None) -> dict[str, Any]:
    """The file's tables as plain values (empty when there is no file). Re-read when the file's
    mtime or size changes; ConfigError naming the file when it is not valid TOML."""
    path = path or settings_path()
    stamp = file_stamp(path)
    with _lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            tree = tomllib.loads(path.read_text(encoding="utf-8")) if stamp else {}
        except FileNotFoundError:
            tree = {}
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid settings: {path} is not valid TOML: {exc}") from None
        _cache[path] = (stamp, tree)
        return tree


def peek(key: str, default: Any = None) -> Any:
    """The value at a dotted key as the file states it, `default` when absent; not validated
    (see the module docstring: for showing a setting, not acting on it)."""
    node: Any = raw_tree()
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def zone(key: str, default: str | None = None) -> str | None:
    """A time-zone setting (`risk.day_zone`, `dashboard.timezone`) as the file states it,
    checked to be a zone this machine knows; ConfigError naming the key otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    value = peek(key, default)
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(f"invalid settings: {key}: unknown time zone {value!r}") from None
    return str(value)


def day_zone() -> str:
    """Where a trading day starts and ends (`risk.day_zone`) for pages that show it."""
    return zone("risk.day_zone", DEFAULT_DAY_ZONE) or DEFAULT_DAY_ZONE


def mark_max_age_s() -> float:
    """How old a mark may be before pages flag it stale (`risk.marks.max_age_s`)."""
    value = peek("risk.marks.max_age_s", DEFAULT_MARK_MAX_AGE_S)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(
            f"invalid settings: risk.marks.max_age_s: expected seconds above 0, got {value!r}"
        )
    return float(value)
