"""ODBC access for Excel and other tools: a `Quantstrip` DSN over the SQLite ODBC driver.

The DSN opens the database through a `file:...?mode=ro` URI, so everything connected through
ODBC is read-only: Excel can read the shared `v_*` views but never change the ledger.
Only the DSN's own section of odbc.ini is rewritten; other DSNs and comments are kept.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

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
)


@dataclass(frozen=True)
class DsnInstall:
    odbc_ini: Path
    driver: str
    database: Path
    connection_string: str


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


def dsn_section(database: Path, driver: str) -> dict[str, str]:
    return {
        "Description": "Quantstrip trade-lifecycle database (read-only)",
        "Driver": driver,
        "Database": f"file:{database.resolve()}?mode=ro",
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


def install_dsn(database: Path, odbc_ini: Path | None = None) -> DsnInstall:
    """Write (or update) the Quantstrip DSN in the user's odbc.ini; idempotent."""
    if not database.exists():
        raise FileNotFoundError(f"database {database} does not exist: run `quantstrip init` first")
    driver = find_driver()
    path = odbc_ini or user_odbc_ini()
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    updated = replace_section(current, DSN_NAME, _render(DSN_NAME, dsn_section(database, driver)))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(updated, encoding="utf-8")
    os.replace(temporary, path)
    return DsnInstall(path, driver, database, f"DSN={DSN_NAME}")


def windows_instructions(database: Path) -> str:
    """What to enter on Windows with the SQLite3 ODBC driver (Christian Werner's installer)."""
    return (
        "Windows: install the SQLite3 ODBC driver (sqliteodbc_w64.exe from ch-werner.de), then\n"
        "  ODBC Data Sources (64-bit) > User DSN > Add > 'SQLite3 ODBC Driver'\n"
        f"    Data Source Name: {DSN_NAME}\n"
        f"    Database Name:    {database.resolve()}  (a copy or a network share of it)\n"
        "    Lock Timeout:     10000 ms;  Sync Mode: NORMAL;  check 'No TXN' and 'Read only'\n"
        "Excel: Data > Get Data > From Other Sources > From ODBC > DSN 'Quantstrip' >\n"
        "  pick a v_* view (v_daily_pnl, v_round_trips, ...) > Load."
    )
