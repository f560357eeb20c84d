"""Per-client log files: format, rotation with 30 files kept, tail/follow/search, redaction."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from quantstrip import logger


@pytest.fixture
def client_log(workspace: Path):
    log = logger.get("alpha")
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def flush(log: logging.Logger) -> None:
    for handler in log.handlers:
        handler.flush()


def test_one_format_with_utc_time_level_client_and_module(client_log) -> None:
    client_log.info("hello %s", "world")
    flush(client_log)
    line = logger.log_path("alpha").read_text().splitlines()[0]
    assert line.endswith("INFO [alpha] quantstrip.clients.alpha: hello world")
    stamp = datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)


def test_traceback_belongs_to_its_record_and_tail_filters(client_log) -> None:
    client_log.info("first")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        client_log.exception("job failed")
    client_log.warning("final words")
    flush(client_log)
    records = logger.tail("alpha")
    assert [r.level for r in records] == ["INFO", "ERROR", "WARNING"]
    assert "RuntimeError: boom" in records[1].message
    assert logger.tail("alpha", level="WARNING")[0].message.startswith("job failed")
    assert [r.message for r in logger.tail("alpha", text="final words")] == ["final words"]


def test_read_since_follows_appends_and_restarts_after_rotation(client_log) -> None:
    client_log.info("one")
    flush(client_log)
    records, offset = logger.read_since("alpha", 0)
    assert [r.message for r in records] == ["one"]
    client_log.info("two")
    flush(client_log)
    records, offset = logger.read_since("alpha", offset)
    assert [r.message for r in records] == ["two"]
    for handler in client_log.handlers:
        if hasattr(handler, "doRollover"):
            handler.doRollover()
    client_log.info("three")
    flush(client_log)
    records, _ = logger.read_since("alpha", offset)
    assert [r.message for r in records] == ["three"]


def test_rotation_keeps_thirty_files(client_log, workspace: Path) -> None:
    path = logger.log_path("alpha")
    start = datetime(2026, 9, 1)
    for day in range(40):
        rotated = path.with_name(f"alpha.log.{(start + timedelta(days=day)):%Y-%m-%d}")
        rotated.write_text("2026-09-01T00:00:00.000Z INFO [alpha] old: message\n")
        stamp = time.mktime((start + timedelta(days=day)).timetuple())
        os.utime(rotated, (stamp, stamp))
    # One rollover, on a fixed day: the handler's next midnight is counted from the file's
    # mtime (the filesystem's real clock), so a session clock elsewhere, or a real midnight
    # during the test, added a second, automatic rollover.
    with time_machine.travel(datetime(2026, 10, 20, 12, tzinfo=UTC), tick=False):
        for handler in client_log.handlers:
            if hasattr(handler, "doRollover"):
                handler.rolloverAt = handler.computeRollover(int(time.time()))
        client_log.info("today")
        for handler in client_log.handlers:
            if hasattr(handler, "doRollover"):
                handler.doRollover()
    backups = sorted(path.parent.glob("alpha.log.*"))
    assert backups[-1].name == "alpha.log.2026-10-20"
    assert len(backups) == logger.RETENTION_FILES
    assert backups[0].name == "alpha.log.2026-09-12"  # the oldest were deleted


def test_search_by_level_and_time_across_rotated_files(client_log) -> None:
    path = logger.log_path("alpha")
    path.with_name("alpha.log.2026-01-01").write_text(
        "2026-01-01T10:00:00.000Z ERROR [alpha] mod: old failure\n"
        "2026-01-01T11:00:00.000Z INFO [alpha] mod: old info\n"
    )
    client_log.error("new failure")
    flush(client_log)
    errors = logger.search("alpha", level="ERROR")
    assert [r.message for r in errors] == ["old failure", "new failure"]
    recent = logger.search("alpha", since=datetime(2026, 6, 1, tzinfo=UTC))
    assert "old info" not in [r.message for r in recent]
    naive = logger.search("alpha", until=datetime(2026, 1, 1, 10, 30))  # taken as UTC
    assert [r.message for r in naive] == ["old failure"]
    assert "alpha" in logger.clients()


def test_setup_routes_module_loggers_to_the_client_file(workspace: Path) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        logger.setup("beta")
        logging.getLogger("quantstrip.brokers.sim").warning("password=hunter2 rejected")
        for handler in root.handlers:
            handler.flush()
        text = logger.log_path("beta").read_text()
        assert "WARNING [beta] quantstrip.brokers.sim: password=******** rejected" in text
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
                handler.close()


def test_a_secret_stored_by_another_process_is_redacted(client_log, monkeypatch) -> None:
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    monkeypatch.setattr(logger, "REDACTION_CHECK_S", 0.0)
    client_log.info("warm up")  # the filter has loaded the (empty) vault
    subprocess.run(
        [sys.executable, "-m", "quantstrip.cli", "secrets", "set", "alpaca.secret"],
        input="other-Process-Secret\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "QUANTSTRIP_KEYRING": "0"},
    )
    client_log.info("leaked? other-Process-Secret")
    flush(client_log)
    text = logger.log_path("alpha").read_text()
    assert "other-Process-Secret" not in text and "leaked? ********" in text


def test_a_client_stream_follows_the_process_to_another_workspace(
    client_log, workspace: Path, tmp_path: Path, monkeypatch
) -> None:
    """A process that moves to another data directory logs into that workspace's file, not into
    the file opened for the first one (seen as a flex test's warning landing in an earlier
    test's workspace)."""
    client_log.info("in the first workspace")
    flush(client_log)
    first = logger.log_path("alpha")
    monkeypatch.setenv("QUANTSTRIP_HOME", str(tmp_path / "other" / "var"))
    moved = logger.get("alpha")
    moved.info("in the second workspace")
    flush(moved)
    assert logger.log_path("alpha") != first
    assert [r.message for r in logger.tail("alpha")] == ["in the second workspace"]
    assert "in the second workspace" not in first.read_text()
