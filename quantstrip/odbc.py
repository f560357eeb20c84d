"""ODBC access for Excel and other tools: a `Quantstrip` DSN over the SQLite ODBC driver.

The DSN opens the live ledger through a `file:...?mode=ro` URI (every query sees the latest
committed data) and loads the ODBC guard (`odbc_guard.c`, built at install) into each
connection: the engine then refuses every write, ATTACH, VACUUM INTO, the driver's file
functions and extension loading, which `mode=ro` alone let through. The install proves the
guard through unixODBC before it leaves the DSN in place. Excel reads the shared `v_*` views.
Only the DSN's own section of odbc.ini is rewritten; other DSNs and comments are kept.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from quantstrip import odbc_guard

DSN_NAME = "Quantstrip"
DRIVER_NAME = "SQLite3"
DRIVER_GLOBS = ("/usr/lib/*/odbc/libsqlite3odbc.so", "/usr/local/lib/libsqlite3odbc*.so")

# The views Excel sees: stable names, documented in README ("Excel and ODBC").
VIEWS = (
    "v_executions",
    "v_round_trips",
    "v_daily_pnl",
    "v_daily_trades",
    "v_commissions",
    "v_positions",
    "v_position_history",
    "v_return_on_capital",
    "v_strategy_days",
    "v_strategy_stats",
    "v_portfolio_stats",
    "v_pnl_by_currency",
    "v_round_trips_base",
)


@dataclass(frozen=True)
class DsnInstall:
    odbc_ini: Path
    driver: str
    database: Path
    connection_string: str
    guard: Path
    check: odbc_guard.GuardCheck


def user_odbc_ini() -> Path:
    """The user DSN file unixODBC reads: $ODBCINI when set, else ~/.odbc.ini."""
    override = os.environ.get("ODBCINI")
    return Path(override) if override else Path.home() / ".odbc.ini"


def registered_drivers() -> list[str]:
    """Driver names unixODBC knows (odbcinst -q -d), empty when unixODBC is not installed."""
    if not shutil.which("odbcinst"):
        return []
    result = subprocess.run(["odbcinst", "-q", "-d"], capture_output=True, text=True, check=False)
    return [line.strip().strip("[]") for line in result.stdout.splitlines() if line.strip()]


def find_driver() -> str:
    """The registered SQLite3 driver's name, or the driver library's path when unregistered."""
    if DRIVER_NAME in registered_drivers():
        return DRIVER_NAME
    for pattern in DRIVER_GLOBS:
        matches = sorted(Path("/").glob(pattern.lstrip("/")))
        if matches:
            return str(matches[0])
    raise FileNotFoundError(
        "the SQLite3 ODBC driver is not installed: on Debian/Ubuntu run "
        "`apt-get install unixodbc libsqliteodbc`"
    )


def dsn_section(database: Path, driver: str, guard: Path) -> dict[str, str]:
    return {
        "Description": "Quantstrip trade-lifecycle database (read-only)",
        "Driver": driver,
        "Database": f"file:{database.resolve()}?mode=ro",
        "LoadExt": str(guard.resolve()),
        "NoCreat": "1",
        "Timeout": "10000",
        "StepAPI": "0",
        "NoTXN": "1",
        "LongNames": "0",
    }


def _render(name: str, values: dict[str, str]) -> str:
    body = "".join(f"{key}={value}\n" for key, value in values.items())
    return f"[{name}]\n{body}"


def replace_section(text: str, name: str, section: str) -> str:
    """Replace the `[name]` block of an INI text (or append it), leaving everything else as is."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    skipping = False
    replaced = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            if stripped[1:-1].strip() == name:
                skipping = True
                if not replaced:
                    out.append(section)
                    replaced = True
                continue
            skipping = False
        if not skipping:
            out.append(line)
    if not replaced:
        if out and not out[-1].endswith("\n"):
            out.append("\n")
        if out and out[-1].strip():
            out.append("\n")
        out.append(section)
    return "".join(out)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def install_dsn(
    database: Path, odbc_ini: Path | None = None, guard_dir: Path | None = None
) -> DsnInstall:
    """Write (or update) the guarded Quantstrip DSN in the user's odbc.ini and prove through
    unixODBC that it cannot write; idempotent. The guard is built into `guard_dir` (default: the
    `odbc/` folder beside the database, in the private data directory)."""
    if not database.exists():
        raise FileNotFoundError(f"database {database} does not exist: run `quantstrip init` first")
    driver = find_driver()
    guard = odbc_guard.build(guard_dir or database.parent / "odbc")
    path = odbc_ini or user_odbc_ini()
    previous = path.read_text(encoding="utf-8") if path.exists() else None
    section = _render(DSN_NAME, dsn_section(database, driver, guard))
    _write(path, replace_section(previous or "", DSN_NAME, section))
    try:
        check = odbc_guard.check(DSN_NAME, path)
    except BaseException:
        _restore(path, previous)
        raise
    if not check.holds:
        _restore(path, previous)
        answers = "; ".join(f"{k}: {v[-200:]}" for k, v in check.refused.items())
        raise odbc_guard.OdbcGuardError(
            f"the ODBC guard did not hold, so no DSN was installed (readable: {check.readable}; "
            f"{answers})"
        )
    return DsnInstall(path, driver, database, f"DSN={DSN_NAME}", guard, check)


def _restore(path: Path, previous: str | None) -> None:
    """Put odbc.ini back as it was, without any Quantstrip DSN (an unguarded one, even an older
    install's, must not stay behind)."""
    if previous is None:
        path.unlink(missing_ok=True)
    else:
        _write(path, replace_section(previous, DSN_NAME, ""))


def write_snapshot(database: Path, target: Path) -> Path:
    """A consistent copy of the ledger at `target` (replaced atomically), for ODBC clients that
    cannot load the guard (Windows): they read the copy, so nothing they run reaches the ledger.
    It is as fresh as its last run: schedule it (cron, a client job) and after each EOD."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    source = sqlite3.connect(f"file:{database.resolve()}?mode=ro", uri=True)
    copy = sqlite3.connect(temporary)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode = DELETE")
    finally:
        copy.close()
        source.close()
    os.replace(temporary, target)
    return target


def windows_instructions(database: Path) -> str:
    """What to enter on Windows with the SQLite3 ODBC driver (Christian Werner's installer)."""
    return (
        "Windows: the guard is not built there, and the driver's own read-only option does not\n"
        "  stop ATTACH or VACUUM INTO: point the DSN at a snapshot, never at the live ledger\n"
        "  (`quantstrip odbc snapshot --to <share>/quantstrip-snapshot.db`, scheduled).\n"
        "  Install the SQLite3 ODBC driver (sqliteodbc_w64.exe from ch-werner.de), then\n"
        "  ODBC Data Sources (64-bit) > User DSN > Add > 'SQLite3 ODBC Driver'\n"
        f"    Data Source Name: {DSN_NAME}\n"
        "    Database Name:    the snapshot file on the share\n"
        "    Lock Timeout:     10000 ms;  Sync Mode: NORMAL;  check 'No TXN' and 'Read only'\n"
        "Excel: Data > Get Data > From Other Sources > From ODBC > DSN 'Quantstrip' >\n"
        "  pick a v_* view (v_daily_pnl, v_round_trips, ...) > Load."
    )
