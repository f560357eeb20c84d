"""Numbered SQL migrations applied atomically, tracked by `PRAGMA user_version`.

Each file `NNNN_name.sql` moves the schema from version NNNN-1 to NNNN inside one transaction
together with the version bump, so a crash leaves the database at a whole version. A database
newer than the code is refused rather than written by code that does not understand it.
"""

from __future__ import annotations

import re
import sqlite3
from importlib import resources
from pathlib import Path

from quantstrip.db.connection import connect
from quantstrip.errors import SchemaVersionError

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("quantstrip.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    for expected, (number, name, _) in enumerate(found, start=1):
        if number != expected:
            raise RuntimeError(f"migration numbering has a gap or duplicate at {name}")
    return found


SCHEMA_VERSION = len(_migrations())


def current_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _split(script: str) -> list[str]:
    """Split a migration into statements; sqlite3.complete_statement handles strings/comments."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer)
            buffer = ""
    if buffer.strip() and not buffer.strip().startswith("--"):
        raise RuntimeError("migration ends with an incomplete statement")
    return statements


def _apply(conn: sqlite3.Connection, number: int, name: str, script: str) -> None:
    """One migration in one transaction. Foreign keys are off while it runs (SQLite's documented
    way to rebuild a table others reference; the pragma is a no-op inside a transaction) and
    checked before it commits, so a migration can never leave a dangling reference."""
    foreign_keys = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read inside the write lock: another process may have migrated meanwhile.
            if current_version(conn) >= number:
                conn.execute("ROLLBACK")
                return
            for statement in _split(script):
                conn.execute(statement)
            dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
            if dangling:
                raise RuntimeError(f"{name} leaves dangling references: {dangling[:5]}")
            conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.execute(f"PRAGMA foreign_keys = {int(foreign_keys)}")


def migrate(target: str | Path | sqlite3.Connection) -> int:
    """Bring the database up to SCHEMA_VERSION; returns the version. Re-running is a no-op."""
    conn = target if isinstance(target, sqlite3.Connection) else connect(target)
    try:
        version = current_version(conn)
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"database schema version {version} is newer than this Quantstrip understands "
                f"({SCHEMA_VERSION}); upgrade Quantstrip instead of opening it with an older one"
            )
        for number, name, script in _migrations():
            if number <= version:
                continue
            _apply(conn, number, name, script)
        return current_version(conn)
    finally:
        if not isinstance(target, sqlite3.Connection):
            conn.close()
