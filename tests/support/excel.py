"""Excel's side of an ODBC test: a fresh process that opens the `Quantstrip` DSN and runs SQL.

A fresh process per call, as Excel is: inside one process unixODBC keeps what it first read of
odbc.ini (and pools connections), so a second test's DSN would silently open the first test's
database.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCRIPT = r"""
import datetime, json, sys
import pyodbc
pyodbc.pooling = False
conn = pyodbc.connect(sys.argv[1])
out = []
def plain(value):
    if isinstance(value, datetime.date):
        return {"date": value.isoformat()}
    return value
for sql in json.loads(sys.stdin.read()):
    cursor = conn.cursor()
    try:
        if sql == "::views":
            out.append({"rows": [[r.table_name] for r in cursor.tables(tableType="VIEW")]})
            continue
        cursor.execute(sql)
        if cursor.description is None:
            conn.commit()
            out.append({"rows": []})
            continue
        out.append({
            "columns": [d[0] for d in cursor.description],
            "types": [d[1].__name__ for d in cursor.description],
            "rows": [[plain(v) for v in row] for row in cursor.fetchall()],
        })
    except pyodbc.Error as exc:
        out.append({"error": str(exc)})
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Result:
    columns: list[str]
    types: list[str]  # Python type names pyodbc maps the columns to: float, int, date, str
    rows: list[tuple[Any, ...]]
    error: str | None = None


def _value(value: Any) -> Any:
    if isinstance(value, dict) and "date" in value:
        return dt.date.fromisoformat(value["date"])
    return value


def excel(odbc_ini: Path, *statements: str, dsn: str = "Quantstrip") -> list[Result]:
    """Run each statement through the DSN in a new process; `::views` lists the views."""
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, f"DSN={dsn}"],
        input=json.dumps(list(statements)),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ODBCINI": str(odbc_ini)},
        check=True,
    )
    return [
        Result(
            item.get("columns", []),
            item.get("types", []),
            [tuple(_value(v) for v in row) for row in item.get("rows", [])],
            item.get("error"),
        )
        for item in json.loads(result.stdout)
    ]
