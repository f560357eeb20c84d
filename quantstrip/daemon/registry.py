"""The client registry: `clients/<name>/client.toml`, validated with pydantic.

The registry files are the single source of truth about which clients exist and how they run
(APScheduler's persisted job stores are not: they drop unpicklable jobs silently). An invalid file
never stops the daemon: it yields an `InvalidClient` whose error names the offending key, shown
as state 'invalid' while every other client keeps running.

```toml
name = "my_strategy"
kind = "module"                 # module | notebook
entry = "strategy.py:MyStrategy"  # module: file[:Class]; notebook: file.ipynb
enabled = true
mode = "simulation"             # simulation | paper | live
schedule = "every day at 16:00" # notebooks: cron string or phrase
tz = "America/New_York"        # optional: UTC, or the calendar's exchange zone when one is set
calendar = "XNYS"               # optional: run only on sessions of this exchange
time_limit_s = 600              # notebook: whole run (default 3600); module: one job (the
                                # daemon stops the client at the limit, event job_time_limit;
                                # no default: long jobs are legitimate)
job_warn_s = 3600               # module: a job running this long is reported once, not stopped
recipients = ["me@example.com"]
[restart]                        # module clients
policy = "on-failure"           # always | on-failure | never
max_restarts = 5                # within window_s, then the client is left 'crashed'
[missed]                         # notebook runs missed while the daemon was down
policy = "skip"                 # skip | run_once | run_all (slots within grace_s)
[heartbeat]
interval_s = 5
timeout_s = 60                  # defaults of timeout_s, stop_timeout_s and max_restarts come
                                # from the [daemon] settings
startup_timeout_s = 120         # until the first beat (imports, __init__, on_start)
[parameters]                     # injected into the notebook / exposed to the module
lookback = 20
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# Defined with the unvalidated reader the pages use; re-exported here for the daemon and tools.
from quantstrip.daemon.registry_files import CLIENT_FILE, NAME_PATTERN, client_files
from quantstrip.errors import ConfigError
from quantstrip.paths import workspace

NOTEBOOK_TIME_LIMIT_S = 3600.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RestartPolicy(_Strict):
    policy: Literal["always", "on-failure", "never"] = "on-failure"
    max_restarts: int = Field(5, ge=0)
    window_s: float = Field(600.0, gt=0)
    backoff_s: float = Field(1.0, ge=0)
    max_backoff_s: float = Field(60.0, ge=0)


class MissedRuns(_Strict):
    policy: Literal["skip", "run_once", "run_all"] = "skip"
    grace_s: float = Field(3600.0, ge=0)


class HeartbeatPolicy(_Strict):
    interval_s: float = Field(5.0, gt=0)
    timeout_s: float = Field(60.0, gt=0)  # default: settings daemon.heartbeat_timeout_s
    # Before the first beat (imports, __init__, on_start: loading a model or a history can take
    # a while, and longer on a loaded machine) a client has this long instead of timeout_s.
    startup_timeout_s: float = Field(120.0, gt=0)

    @model_validator(mode="after")
    def _timeout_exceeds_interval(self) -> HeartbeatPolicy:
        if self.timeout_s <= self.interval_s:
            raise ValueError("timeout_s must be greater than interval_s")
        return self


class ClientConfig(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    kind: Literal["module", "notebook"]
    entry: str = Field(min_length=1)
    enabled: bool = True
    display_name: str | None = None
    mode: Literal["simulation", "paper", "live"] = "simulation"
    schedule: str | None = None
    # None: the calendar's exchange zone if a calendar is set, else UTC (parse_schedule).
    tz: str | None = None
    calendar: str | None = None
    time_limit_s: float | None = Field(None, gt=0)
    # Module clients: a job running longer than this is reported once (event and alert) and left
    # running; time_limit_s is what stops a job.
    job_warn_s: float = Field(3600.0, gt=0)
    stop_timeout_s: float = Field(10.0, gt=0)
    kernel: str | None = None
    recipients: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    restart: RestartPolicy = Field(default_factory=RestartPolicy)
    missed: MissedRuns = Field(default_factory=MissedRuns)
    heartbeat: HeartbeatPolicy = Field(default_factory=HeartbeatPolicy)

    # Set by the loader, not by the file.
    directory: Path = Field(default=Path("."), exclude=True)

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        from quantstrip.client.schedule import zone

        if value is not None:
            zone(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _notebook_time_limit(cls, data: Any) -> Any:
        # A notebook stuck on a dead connection would hold its client forever (its next slots
        # are skipped while a run is open): a notebook run always has a limit.
        notebook = isinstance(data, dict) and data.get("kind") == "notebook"
        if notebook and data.get("time_limit_s") is None:
            data = {**data, "time_limit_s": NOTEBOOK_TIME_LIMIT_S}
        return data

    @model_validator(mode="after")
    def _check_schedule(self) -> ClientConfig:
        if self.schedule is not None:
            self.trigger()
        elif self.kind == "notebook" and self.calendar:
            raise ValueError("calendar needs a schedule")
        if self.kind == "notebook" and not self.entry.endswith(".ipynb"):
            raise ValueError("entry of a notebook client must be a .ipynb file")
        if self.kind == "module" and not self.entry.split(":", 1)[0].endswith(".py"):
            raise ValueError("entry of a module client must be 'file.py' or 'file.py:Class'")
        return self

    def trigger(self) -> Any:
        from quantstrip.client.schedule import parse_schedule

        if self.schedule is None:
            return None
        return parse_schedule(self.schedule, self.tz, calendar=self.calendar)

    @property
    def entry_file(self) -> Path:
        return self.directory / self.entry.split(":", 1)[0]

    @property
    def entry_class(self) -> str | None:
        _, _, cls = self.entry.partition(":")
        return cls or None

    @property
    def title(self) -> str:
        return self.display_name or self.name


@dataclass(frozen=True)
class InvalidClient:
    """A client.toml that could not be used; `error` names the key and the problem."""

    name: str
    path: Path
    error: str
    kind: str = "module"
    entry: str = ""


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(file)"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{key}: {message}")
    return "; ".join(parts)


def _apply_platform_defaults(data: dict[str, Any]) -> None:
    """Keys a client.toml leaves out take the `[daemon]` settings (heartbeat timeout, stop
    grace, max restarts), so an installation tunes them in one place. Settings are read when a
    client is (re)loaded; a broken settings file leaves the built-in defaults."""
    try:
        from quantstrip import settings

        timeout = settings.get("daemon.heartbeat_timeout_s", None)
        grace = settings.get("daemon.stop_grace_s", None)
        restarts = settings.get("daemon.max_restarts", None)
    except Exception:
        return
    for section, key, value in (
        ("heartbeat", "timeout_s", timeout),
        (None, "stop_timeout_s", grace),
        ("restart", "max_restarts", restarts),
    ):
        if value is None:
            continue
        target = data if section is None else data.get(section, {})
        if not isinstance(target, dict):
            continue  # the model reports the wrong type, naming the key
        if key not in target:
            target[key] = value
            if section is not None:
                data[section] = target


def load_client(path: Path) -> ClientConfig:
    """Parse and validate one client.toml; ConfigError names the file and key on failure."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:  # TOML is UTF-8; an editor may have saved another encoding
        raise ConfigError(f"{path}: not UTF-8 (TOML files are): {exc}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    data.setdefault("name", path.parent.name)
    _apply_platform_defaults(data)
    try:
        config = ClientConfig(**data, directory=path.parent)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if config.name != path.parent.name:
        raise ConfigError(
            f"{path}: name: {config.name!r} must match its folder {path.parent.name!r}"
        )
    if not config.entry_file.is_file():
        raise ConfigError(f"{path}: entry: {config.entry_file.name} not found in {path.parent}")
    return config


def load_or_invalid(path: Path) -> ClientConfig | InvalidClient:
    """One client as the daemon takes it: its configuration, or what is wrong with it. Any
    problem with the file makes that client invalid, never the reader (daemon or page)."""
    try:
        return load_client(path)
    except Exception as exc:
        message = str(exc) if isinstance(exc, ConfigError) else f"{path}: {exc!r}"
        kind, entry = _peek_kind(path)
        return InvalidClient(path.parent.name, path, message, kind, entry)


def load_registry(root: Path | None = None) -> dict[str, ClientConfig | InvalidClient]:
    return {path.parent.name: load_or_invalid(path) for path in client_files(root)}


class RegistryReader:
    """`load_registry` for a reader that asks again and again (the monitor, every 2 s while the
    daemon is down): a client is validated again only when its files changed (`signature`,
    as the daemon decides when to reload one), not on every read."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self._known: dict[Path, tuple[tuple[Any, ...], ClientConfig | InvalidClient]] = {}

    def load(self) -> dict[str, ClientConfig | InvalidClient]:
        known: dict[Path, tuple[tuple[Any, ...], ClientConfig | InvalidClient]] = {}
        for path in client_files(self.root):
            seen = self._known.get(path)
            if seen is not None and signature(seen[1]) == seen[0]:
                known[path] = seen
            else:
                config = load_or_invalid(path)
                known[path] = (signature(config), config)
        self._known = known
        return {path.parent.name: config for path, (_, config) in known.items()}


def _peek_kind(path: Path) -> tuple[str, str]:
    """The kind and entry of an invalid client, for listing it (undecodable bytes replaced)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8", errors="replace"))
    except Exception:
        return "module", ""
    kind = data.get("kind") if data.get("kind") in ("module", "notebook") else "module"
    return str(kind), str(data.get("entry", ""))


def signature(config: ClientConfig | InvalidClient) -> tuple[Any, ...]:
    """Changes whenever the client's files change: (path, mtime_ns, size) of toml and entry.
    For an invalid client the entry it names is watched too (creating a missing file fixes it)."""
    if isinstance(config, InvalidClient):
        paths = [config.path]
        if config.entry:
            paths.append(config.path.parent / config.entry.split(":", 1)[0])
    else:
        paths = [config.directory / CLIENT_FILE, config.entry_file]
    out: list[Any] = []
    for p in paths:
        try:
            st = p.stat()
            out.append((str(p), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(p), None, None))
    return tuple(out)


def set_enabled(name: str, enabled: bool, root: Path | None = None) -> None:
    """Persist enable/disable in client.toml (comments and layout kept, via tomlkit)."""
    import tomlkit

    path = (root or workspace().clients) / name / CLIENT_FILE
    if not path.is_file():
        raise ConfigError(f"no client named {name!r} ({path} missing)")
    doc = tomlkit.parse(path.read_text())
    doc["enabled"] = enabled
    tmp = path.with_name(f".{CLIENT_FILE}.tmp")
    tmp.write_text(tomlkit.dumps(doc))
    tmp.replace(path)
