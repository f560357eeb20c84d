"""The ODBC guard: build the SQLite extension the Quantstrip DSN loads, and prove it holds.

`mode=ro` in the DSN protects only the main database file: through the SQLite ODBC driver,
`ATTACH 'file:<ledger>?mode=rw'` deleted ledger rows, ATTACH created files, `VACUUM INTO` wrote
copies anywhere, the driver's `blob_export()`/`blob_import()` wrote and read any file from a
SELECT and `load_extension()` ran any shared library (issue 17). `odbc_guard.c` makes the engine
refuse all of it (see its header). It is compiled here with the system C compiler against the
system's SQLite headers, into the data directory, and every install proves it through unixODBC
itself: if the guard does not hold, no DSN is left behind (an unguarded DSN would be writable).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from quantstrip.errors import QuantstripError

GUARD_FILE = "quantstrip_odbc_guard.so"  # entry point sqlite3_quantstripodbcguard_init
COMPILERS = ("cc", "gcc", "clang")
PROBE_TABLE = "sqlite_master"


class OdbcGuardError(QuantstripError):
    """The guard could not be built, or a probe showed that the DSN could write."""


@dataclass(frozen=True)
class GuardCheck:
    refused: dict[str, str]  # probe -> the engine's answer
    readable: bool

    @property
    def holds(self) -> bool:
        return self.readable and all("not authorized" in a for a in self.refused.values())


def source() -> str:
    return resources.files("quantstrip").joinpath("odbc_guard.c").read_text(encoding="utf-8")


def compiler() -> str:
    for name in COMPILERS:
        found = shutil.which(name)
        if found:
            return found
    raise OdbcGuardError(
        "no C compiler to build the ODBC guard: on Debian/Ubuntu run "
        "`apt-get install gcc libsqlite3-dev`"
    )


def build(directory: Path) -> Path:
    """Compile the guard into `directory` (replaced atomically); returns the library's path."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = directory / GUARD_FILE
    text = source()
    stamp = directory / (GUARD_FILE + ".sha256")
    digest = hashlib.sha256(text.encode()).hexdigest()
    if target.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return target
    with tempfile.TemporaryDirectory(dir=directory) as work:
        c_file = Path(work) / "odbc_guard.c"
        c_file.write_text(text, encoding="utf-8")
        built = Path(work) / GUARD_FILE
        result = subprocess.run(
            [compiler(), "-shared", "-fPIC", "-O2", "-o", str(built), str(c_file)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            hint = ""
            if "sqlite3ext.h" in result.stderr:
                hint = " (the SQLite headers are missing: `apt-get install libsqlite3-dev`)"
            raise OdbcGuardError(f"building the ODBC guard failed{hint}:\n{result.stderr[-2000:]}")
        os.replace(built, target)
    stamp.write_text(digest + "\n")
    return target


PROBES = {
    "attach": "ATTACH ':memory:' AS quantstrip_probe",
    "write": "CREATE TEMP TABLE quantstrip_probe (a)",
    "file function": "SELECT blob_import('/dev/null')",
}


def check(dsn: str, odbc_ini: Path) -> GuardCheck:
    """Connect through unixODBC (isql) with `dsn` and try what the guard must refuse."""
    isql = shutil.which("isql")
    if not isql:
        raise OdbcGuardError(
            "cannot prove the ODBC guard without unixODBC's isql: `apt-get install unixodbc`"
        )
    env = {**os.environ, "ODBCINI": str(odbc_ini)}
    refused = {}
    for name, sql in PROBES.items():
        answer = _isql(isql, dsn, sql, env)
        refused[name] = answer
    readable = "1 rows fetched" in _isql(isql, dsn, f"SELECT COUNT(*) FROM {PROBE_TABLE}", env)
    return GuardCheck(refused, readable)


def _isql(isql: str, dsn: str, sql: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [isql, "-b", "-v", dsn],
        input=sql + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return (result.stdout + result.stderr).strip()
