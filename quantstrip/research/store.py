"""A sweep's results on disk: Parquet files in the workspace, read with DuckDB.

`<QUANTSTRIP_HOME>/research/<sweep>/`:
- `sweep.json`: what was asked (source, hash, grid, windows, period, seed) and the sweep's state;
- `parts/<key>.{results,equity,windows}.parquet`: one file of each kind per finished attempt,
  written as each run ends, so a sweep that is interrupted keeps what finished;
- `results.parquet`, `equity.parquet`, `windows.parquet`: the parts compacted when a sweep ends;
- `runs/<key>/`: each run's own data directory (its simulation database, output notebook).

Readers see the union of compacted files and parts, the latest attempt of each run winning, so
a retried run replaces its failed attempt. Only the process coordinating a sweep writes here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from quantstrip.errors import NotFoundError, QuantstripError, ValidationError
from quantstrip.files import write_atomic
from quantstrip.paths import workspace

KINDS = ("results", "equity", "windows")
MANIFEST = "sweep.json"
CANCEL_FILE = "cancel"
LOCK_FILE = ".coordinator.lock"


def research_root() -> Path:
    return workspace().home / "research"


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


@contextlib.contextmanager
def _duck() -> Iterator[duckdb.DuckDBPyConnection]:
    conn = duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    try:
        yield conn
    finally:
        conn.close()


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write `frame` to `path` through a temporary file, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with _duck() as conn:
        conn.register("frame", frame)
        conn.execute(f"COPY frame TO {_quote(staging)} (FORMAT parquet)")
    staging.replace(path)


@dataclass(frozen=True)
class SweepStore:
    directory: Path

    @classmethod
    def named(cls, name: str, root: Path | None = None) -> SweepStore:
        if not name or "/" in name or name.startswith("."):
            raise ValidationError("sweep", f"{name!r} is not a valid sweep name")
        return cls((root or research_root()) / name)

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def parts(self) -> Path:
        return self.directory / "parts"

    @property
    def runs(self) -> Path:
        return self.directory / "runs"

    @property
    def cancel_file(self) -> Path:
        return self.directory / CANCEL_FILE

    # ---- manifest --------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        path = self.directory / MANIFEST
        if not path.is_file():
            raise NotFoundError(f"no sweep {self.name!r} in {self.directory.parent}")
        return dict(json.loads(path.read_text()))

    def save_manifest(self, manifest: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomic(
            self.directory / MANIFEST, json.dumps(manifest, indent=2, default=str).encode()
        )

    def update_manifest(self, **changes: Any) -> dict[str, Any]:
        manifest = {**self.manifest(), **changes}
        self.save_manifest(manifest)
        return manifest

    # ---- results ---------------------------------------------------------------------------
    def add(self, key: str, tables: dict[str, pd.DataFrame]) -> None:
        """Store one finished attempt (results row, equity curve, window metrics)."""
        for kind in KINDS:
            frame = tables.get(kind)
            if frame is not None and not frame.empty:
                write_parquet(frame, self.parts / f"{key}.{kind}.parquet")
            else:
                (self.parts / f"{key}.{kind}.parquet").unlink(missing_ok=True)

    def _files(self, kind: str) -> list[Path]:
        files = sorted(self.parts.glob(f"*.{kind}.parquet")) if self.parts.is_dir() else []
        whole = self.directory / f"{kind}.parquet"
        return ([whole] if whole.is_file() else []) + files

    def read(self, kind: str = "results") -> pd.DataFrame:
        """The latest attempt of every run (results), or the rows of those attempts."""
        results = self._files("results")
        if not results:
            return pd.DataFrame()
        latest = (
            f"SELECT * FROM read_parquet([{', '.join(map(_quote, results))}], union_by_name=true) "
            "QUALIFY row_number() OVER "
            "(PARTITION BY key ORDER BY finished_at DESC, attempt DESC) = 1"
        )
        if kind == "results":
            sql = f"{latest} ORDER BY number"
        else:
            files = self._files(kind)
            if not files:
                return pd.DataFrame()
            sql = (
                f"SELECT t.* FROM read_parquet([{', '.join(map(_quote, files))}], "
                f"union_by_name=true) t JOIN ({latest}) r USING (key, attempt) ORDER BY r.number"
            )
        with _duck() as conn:
            return conn.execute(sql).df()

    def finished_keys(self) -> set[str]:
        results = self.read("results")
        if results.empty:
            return set()
        return set(results.loc[results["status"] == "success", "key"])

    def compact(self) -> None:
        """Fold the parts into one file per kind (readers never see a run twice or not at all:
        the whole file is replaced before the parts it contains are removed)."""
        if not self.parts.is_dir() or not any(self.parts.iterdir()):
            return
        frames = {kind: self.read(kind) for kind in KINDS}
        included = {kind: self._files(kind) for kind in KINDS}
        for kind, frame in frames.items():
            if not frame.empty:
                write_parquet(frame, self.directory / f"{kind}.parquet")
        for kind in KINDS:
            for path in included[kind]:
                if path.parent == self.parts:
                    path.unlink(missing_ok=True)

    # ---- the coordinating process ----------------------------------------------------------
    @contextlib.contextmanager
    def coordinating(self) -> Iterator[None]:
        """Held by the one process running this sweep: a second start of the same sweep is
        refused instead of writing the same results twice (the lock ends with the process, so
        a killed sweep never blocks the next start)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise QuantstripError(
                    f"sweep {self.name} is already running in another process "
                    f"(cancel it with: quantstrip sweep --cancel {self.name})"
                ) from None
            yield
        finally:
            os.close(fd)

    def running(self) -> bool:
        """True while a process coordinates this sweep (a 'running' state left by a killed
        process reads False)."""
        path = self.directory / LOCK_FILE
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    # ---- cancellation ----------------------------------------------------------------------
    def request_cancel(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.cancel_file.write_text("cancel requested\n")

    def cancel_requested(self) -> bool:
        return self.cancel_file.exists()

    def clear_cancel(self) -> None:
        self.cancel_file.unlink(missing_ok=True)

    def delete(self) -> None:
        shutil.rmtree(self.directory)


def list_sweeps(root: Path | None = None) -> list[dict[str, Any]]:
    """Every sweep's manifest, newest first."""
    base = root or research_root()
    sweeps = []
    for path in sorted(base.glob(f"*/{MANIFEST}")) if base.is_dir() else []:
        with contextlib.suppress(ValueError, OSError):
            sweeps.append(json.loads(path.read_text()))
    return sorted(sweeps, key=lambda m: str(m.get("updated_at", "")), reverse=True)
