"""Per-client log streams: one file per client plus the daemon's, one parseable format.

Format: `2026-11-24T21:00:00.123Z INFO [client] module: message` (UTC). Continuation lines (a
traceback) belong to the record above them. Files rotate at UTC midnight and 30 are kept. A
filter redacts every stored secret and `password=...`-style values before anything is written.
The reader half (`tail`, `read_since`, `search`) serves the dashboard's live log view.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from logging.handlers import TimedRotatingFileHandler
from pathlib import Path

from quantstrip import clock
from quantstrip.paths import workspace

RETENTION_FILES = 30
DAEMON = "daemon"
MASK = "********"
LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<level>[A-Z]+) "
    r"\[(?P<client>[^\]]*)\] (?P<module>[^:]+): (?P<message>.*)$"
)
PATTERNS = re.compile(
    r"(?i)\b(password|passwd|pwd|token|secret|api[_-]?key|access[_-]?token)(\s*[=:]\s*)([^\s,;'\"]+)"
)
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}

_lock = threading.Lock()
_configured: dict[str, str] = {}  # "process" -> client name the root logger writes for
_secret_values: list[str] = []
# A secret stored by another process (the settings manager, the CLI) must be redacted here too:
# the filter stats the vault file at most every REDACTION_CHECK_S and reloads when it changed.
REDACTION_CHECK_S = 2.0
_vault_seen: dict[str, object] = {"checked_at": 0.0, "stamp": None}


@dataclass(frozen=True)
class LogRecord:
    time: datetime
    level: str
    client: str
    module: str
    message: str


class UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


FORMATTER = UtcFormatter("%(asctime)s %(levelname)s [%(client)s] %(name)s: %(message)s")


def _vault_stamp() -> tuple[int, int] | None:
    try:
        st = (workspace().secrets / "vault.json").stat()
    except (OSError, ValueError):
        return None
    return (st.st_mtime_ns, st.st_size)


def _refresh_if_vault_changed() -> None:
    now = clock.monotonic()
    if now - float(_vault_seen["checked_at"]) < REDACTION_CHECK_S:  # type: ignore[arg-type]
        return
    _vault_seen["checked_at"] = now
    if _vault_stamp() != _vault_seen["stamp"]:
        refresh_redaction()


def redact(text: str) -> str:
    _refresh_if_vault_changed()
    for value in _secret_values:
        text = text.replace(value, MASK)
    return PATTERNS.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


class RedactingFilter(logging.Filter):
    """Formats the message once, redacted, so neither msg nor args can leak a secret."""

    def __init__(self, client: str) -> None:
        super().__init__()
        self.client = client

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "client"):
            record.client = self.client
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def refresh_redaction() -> None:
    """Reload the list of secret values to redact (called when a secret is set)."""
    try:
        from quantstrip.secrets import Vault

        values = sorted({v for v in Vault().values() if len(v) >= 4}, key=len, reverse=True)
    except Exception:
        values = []
    _secret_values[:] = values
    _vault_seen["stamp"] = _vault_stamp()


def log_path(client: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", client):
        raise ValueError(f"client name {client!r} is not usable as a log name")
    return workspace().logs / f"{client}.log"


def _handler(client: str) -> logging.Handler:
    path = log_path(client)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = TimedRotatingFileHandler(
        path, when="midnight", utc=True, backupCount=RETENTION_FILES, encoding="utf-8"
    )
    handler.setFormatter(FORMATTER)
    handler.addFilter(RedactingFilter(client))
    handler.quantstrip_client = client  # type: ignore[attr-defined]
    return handler


def setup(client: str, level: int = logging.INFO) -> logging.Logger:
    """Send this process's logging (root and every module logger) to the client's file."""
    with _lock:
        refresh_redaction()
        root = logging.getLogger()
        for existing in list(root.handlers):
            if hasattr(existing, "quantstrip_client"):
                root.removeHandler(existing)
                existing.close()
        root.addHandler(_handler(client))
        root.setLevel(level)
        _configured["process"] = client
    return logging.getLogger(client)


def setup_daemon(level: int = logging.INFO) -> logging.Logger:
    return setup(DAEMON, level)


def get(client: str) -> logging.Logger:
    """A logger writing to `client`'s stream, whether or not this process was set up for it
    (a research notebook can log as the client it will become)."""
    logger = logging.getLogger(f"quantstrip.clients.{client}")
    with _lock:
        if _configured.get("process") == client:
            return logger
        # A handler opened for another workspace (the process moved to another data directory)
        # is replaced: the stream is the client's log in the current workspace.
        path = str(log_path(client).absolute())
        for stale in [
            h
            for h in logger.handlers
            if getattr(h, "quantstrip_client", None) == client
            and getattr(h, "baseFilename", path) != path
        ]:
            logger.removeHandler(stale)
            stale.close()
        if not any(getattr(h, "quantstrip_client", None) == client for h in logger.handlers):
            if not _secret_values:
                refresh_redaction()
            logger.addHandler(_handler(client))
            logger.setLevel(logging.INFO)
            logger.propagate = False
    return logger


# ---- reading ------------------------------------------------------------------------------
def _parse(lines: list[str]) -> list[LogRecord]:
    records: list[LogRecord] = []
    for line in lines:
        line = line.rstrip("\n")
        match = LINE.match(line)
        if match:
            records.append(
                LogRecord(
                    datetime.strptime(match["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
                    match["level"],
                    match["client"],
                    match["module"],
                    match["message"],
                )
            )
        elif records and line:
            last = records[-1]
            records[-1] = LogRecord(
                last.time, last.level, last.client, last.module, f"{last.message}\n{line}"
            )
    return records


def _matches(record: LogRecord, level: str | None, text: str | None) -> bool:
    if level and LEVELS.get(record.level, 0) < LEVELS.get(level.upper(), 0):
        return False
    return not (text and text.lower() not in record.message.lower())


def tail(
    client: str, lines: int = 200, level: str | None = None, text: str | None = None
) -> list[LogRecord]:
    """The last `lines` records of a client's current log that pass the filters."""
    path = log_path(client)
    if not path.exists():
        return []
    records = _parse(path.read_text(encoding="utf-8", errors="replace").splitlines())
    return [r for r in records if _matches(r, level, text)][-lines:]


def read_since(client: str, offset: int) -> tuple[list[LogRecord], int]:
    """Records appended since byte `offset` (restarting at 0 after a rotation), and the new
    offset: a live view polls this instead of re-reading the file."""
    path = log_path(client)
    if not path.exists():
        return [], 0
    size = path.stat().st_size
    if offset > size:
        offset = 0
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    complete = data[: data.rfind(b"\n") + 1]
    return _parse(complete.decode("utf-8", errors="replace").splitlines()), offset + len(complete)


def _files(client: str) -> list[Path]:
    current = log_path(client)
    rotated = sorted(current.parent.glob(f"{current.name}.*"))
    return [*rotated, current] if current.exists() else rotated


def search(
    client: str | None = None,
    level: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    text: str | None = None,
    limit: int = 1000,
) -> list[LogRecord]:
    """Records across current and rotated files, oldest first, filtered by level/time/text."""
    # Naive datetimes are taken as UTC, the only time zone the files are written in.
    since = since.replace(tzinfo=UTC) if since and since.tzinfo is None else since
    until = until.replace(tzinfo=UTC) if until and until.tzinfo is None else until
    names = [client] if client else clients()
    found: list[LogRecord] = []
    for name in names:
        for path in _files(name):
            for record in _parse(path.read_text(encoding="utf-8", errors="replace").splitlines()):
                if since and record.time < since:
                    continue
                if until and record.time > until:
                    continue
                if _matches(record, level, text):
                    found.append(record)
    found.sort(key=lambda r: r.time)
    return found[-limit:]


def clients() -> list[str]:
    directory = workspace().logs
    if not directory.exists():
        return []
    return sorted({p.name.split(".log")[0] for p in directory.glob("*.log*") if p.is_file()})
