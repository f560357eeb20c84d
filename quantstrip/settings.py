"""Typed runtime settings for client code: `settings.get("my_strat.allocation")`.

The tree is one TOML file in the data directory. Platform sections (brokers, smtp, email,
dashboard, daemon) are validated by pydantic models; any other top-level table is a strategy
section, whose optional `_types` table (or `settings.declare(section, key=type)` from code)
declares the type of each key. The parsed tree is cached:
`get` touches no file, and the file's mtime is checked at most once a second. A file that fails
validation never replaces the last valid tree, so running clients keep working while someone
fixes a typo; the error names the key and the problem.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantstrip import clock
from quantstrip.errors import ConfigError
from quantstrip.files import exclusive, write_atomic
from quantstrip.settings_file import file_stamp, peek, settings_path

if TYPE_CHECKING:
    from pydantic import ValidationError as PydanticValidationError

    from quantstrip.secrets import Secret
    from quantstrip.settings_models import PlatformSettings

# pydantic, the platform models, tomlkit and the vault are imported where they are used: a
# dashboard page that only shows a setting reads it with `peek` (quantstrip.settings_file) and
# must not pay for them at start-up.
__all__ = ["peek", "settings_path"]

log = logging.getLogger(__name__)

RELOAD_CHECK_S = 1.0
_MISSING: Any = object()

TEMPLATE = """\
# Quantstrip settings. Platform sections are validated; any other table is a strategy's own
# section, e.g.
#   [my_strat]
#   allocation = 0.25
#   [my_strat._types]
#   allocation = "float"
# Secrets (passwords, tokens) are never written here: `quantstrip secrets set NAME`.

[brokers]
default = "sim"

[email]
default_account = "primary"
"""


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.path: Path | None = None
        self.stamp: tuple[int, int] | None = None
        self.checked_at = 0.0
        self.tree: dict[str, Any] = {}
        self.platform: PlatformSettings | None = None  # the defaults until a load succeeds
        self.last_error: str | None = None


_state = _State()
# Types declared from code with `declare`; a `_types` table in the file overrides per key.
_declared: dict[str, dict[str, str]] = {}


def _format_pydantic(exc: PydanticValidationError, prefix: str = "") -> str:
    problems = []
    for error in exc.errors():
        key = ".".join(str(p) for p in (prefix, *error["loc"]) if p != "")
        problems.append(f"{key}: {error['msg']}")
    return "; ".join(problems)


def _validate(document: dict[str, Any]) -> tuple[PlatformSettings, dict[str, Any]]:
    """Validate a parsed tree; returns the platform model and the plain tree (with defaults)."""
    from pydantic import ValidationError as PydanticValidationError

    from quantstrip.settings_models import DECLARABLE_TYPES, PLATFORM_SECTIONS, PlatformSettings

    platform_part = {k: v for k, v in document.items() if k in PLATFORM_SECTIONS}
    try:
        platform = PlatformSettings.model_validate(platform_part)
    except PydanticValidationError as exc:
        raise ConfigError(f"invalid settings: {_format_pydantic(exc)}") from None
    tree: dict[str, Any] = platform.model_dump()
    for name, section in document.items():
        if name in PLATFORM_SECTIONS:
            continue
        if not isinstance(section, dict):
            raise ConfigError(f"invalid settings: {name}: a strategy section must be a table")
        declared = {**_declared.get(name, {}), **section.get("_types", {})}
        for key, type_name in declared.items():
            expected = DECLARABLE_TYPES.get(str(type_name))
            if expected is None:
                raise ConfigError(
                    f"invalid settings: {name}._types.{key}: unknown type {type_name!r} "
                    f"(use one of {', '.join(DECLARABLE_TYPES)})"
                )
            if key in section:
                value = section[key]
                wrong_bool = isinstance(value, bool) and type_name != "bool"
                if wrong_bool or not isinstance(value, expected):
                    raise ConfigError(
                        f"invalid settings: {name}.{key}: expected {type_name}, "
                        f"got {type(value).__name__} {value!r}"
                    )
                if type_name == "float":
                    # TOML writes `allocation = 1` as an int; `get` returns the declared type.
                    section[key] = float(value)
        tree[name] = section
    return platform, tree


def _parse(text: str, origin: str) -> dict[str, Any]:
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        return tomlkit.parse(text).unwrap()
    except TOMLKitError as exc:
        raise ConfigError(f"invalid settings: {origin} is not valid TOML: {exc}") from None


def validate_text(text: str) -> dict[str, Any]:
    """Validate TOML text before saving it (the dashboard's settings manager); returns the tree."""
    return _validate(_parse(text, "text"))[1]


def _refresh(force: bool = False) -> None:
    with _state.lock:
        path = settings_path()
        now = clock.monotonic()
        if not force and path == _state.path and now - _state.checked_at < RELOAD_CHECK_S:
            return
        _state.checked_at = now
        stamp = file_stamp(path)
        if not force and path == _state.path and stamp == _state.stamp:
            return
        first_load = path != _state.path
        try:
            text = path.read_text(encoding="utf-8") if stamp else ""
            platform, tree = _validate(_parse(text, str(path)))
        except ConfigError as exc:
            _state.last_error = str(exc)
            if first_load:
                _state.path, _state.stamp = path, stamp
                raise
            log.error("%s (keeping the previous valid settings)", exc)
            _state.stamp = stamp
            return
        _state.path, _state.stamp = path, stamp
        _state.platform, _state.tree, _state.last_error = platform, tree, None


def reload() -> None:
    """Re-read the file now; raises ConfigError if it is invalid (previous tree kept)."""
    _refresh(force=True)
    if _state.last_error:
        raise ConfigError(_state.last_error)


def last_error() -> str | None:
    """The problem with the file on disk, if its last load failed."""
    _refresh()
    return _state.last_error


def platform() -> PlatformSettings:
    _refresh()
    if _state.platform is None:
        from quantstrip.settings_models import PlatformSettings

        _state.platform = PlatformSettings()
    return _state.platform


def get(key: str, default: Any = _MISSING) -> Any:
    """The typed value at a dotted key; `default` when absent (KeyError if no default)."""
    _refresh()
    node: Any = _state.tree
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            if default is _MISSING:
                raise KeyError(f"no setting {key!r}")
            return default
    return node


def tree() -> dict[str, Any]:
    """The whole tree plus masked secrets, safe to show in a UI."""
    from quantstrip.secrets import MASK, Vault

    _refresh()
    return {**_state.tree, "secrets": dict.fromkeys(Vault().names(), MASK)}


def declare(section: str, **types: type | str) -> None:
    """Declare the types of a strategy section's keys from code, e.g.
    `settings.declare("my_strat", allocation=float, symbols=list)`; the same as a
    `[my_strat._types]` table in the file. Raises ConfigError if the current file disagrees."""
    from quantstrip.settings_models import DECLARABLE_TYPES, PLATFORM_SECTIONS

    if section in PLATFORM_SECTIONS:
        raise ConfigError(f"{section}: platform sections have fixed types")
    names: dict[str, str] = {}
    for key, kind in types.items():
        name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
        if name not in DECLARABLE_TYPES:
            raise ConfigError(
                f"{section}.{key}: cannot declare type {name!r} "
                f"(use one of {', '.join(DECLARABLE_TYPES)})"
            )
        names[key] = name
    with _state.lock:
        previous = dict(_declared.get(section, {}))
        _declared[section] = {**previous, **names}
        try:
            reload()
        except ConfigError:
            _declared[section] = previous  # a rejected declaration must not poison reloads
            _refresh(force=True)
            raise


def describe() -> list[dict[str, Any]]:
    """Every leaf setting as a row (key, value, type, secret) for the dashboard's settings
    manager; secrets appear by name with a masked value, never the plaintext."""
    from quantstrip.secrets import MASK, Vault

    _refresh()
    rows: list[dict[str, Any]] = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict) and node:
            for name, child in node.items():
                if name != "_types":
                    walk(f"{prefix}.{name}" if prefix else str(name), child)
        else:
            rows.append(
                {"key": prefix, "value": node, "type": type(node).__name__, "secret": False}
            )

    walk("", _state.tree)
    for name in Vault().names():
        rows.append({"key": name, "value": MASK, "type": "secret", "secret": True})
    return rows


def set(key: str, value: Any) -> None:
    """Write one value back, keeping the file's comments and layout; validated before writing."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"invalid settings key {key!r}")
    path = settings_path()
    with _state.lock, exclusive(_lock_path(path)):
        text = path.read_text(encoding="utf-8") if path.exists() else TEMPLATE
        try:
            document = tomlkit.parse(text)
        except TOMLKitError as exc:
            raise ConfigError(f"invalid settings: {path} is not valid TOML: {exc}") from None
        parts = key.split(".")
        node: Any = document
        for part in parts[:-1]:
            if part not in node:
                node[part] = tomlkit.table()
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"invalid settings key {key!r}: {part} is not a table")
        node[parts[-1]] = value
        new_text = tomlkit.dumps(document)
        _validate(_parse(new_text, key))
        write_atomic(path, new_text.encode(), private=True)
        _refresh(force=True)


def save_text(text: str) -> None:
    """Replace the whole file with validated text (the settings manager's Save)."""
    validate_text(text)
    path = settings_path()
    with _state.lock, exclusive(_lock_path(path)):
        write_atomic(path, text.encode(), private=True)
        _refresh(force=True)


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def raw_text() -> str:
    path = settings_path()
    return path.read_text(encoding="utf-8") if path.exists() else TEMPLATE


def set_secret(name: str, value: str) -> None:
    """Store a secret encrypted (never in the settings file); the logger starts redacting it."""
    from quantstrip.secrets import Vault

    Vault().set(name, value)
    from quantstrip import logger

    logger.refresh_redaction()


def get_secret(name: str, default: Secret | None = None) -> Secret | None:
    """The secret as a masked `Secret` (call `.reveal()` where the plaintext is needed)."""
    from quantstrip.secrets import Vault

    found = Vault().get(name)
    return found if found is not None else default


def secret_names() -> list[str]:
    from quantstrip.secrets import Vault

    return Vault().names()


def rotate_key() -> int:
    from quantstrip.secrets import Vault

    return Vault().rotate()


def _reset_for_tests() -> None:
    global _state
    _state = _State()
    _declared.clear()
