"""Hosts one module client in this process: `python -m quantstrip.client.runner --name N ...`.

The daemon starts one runner per module client (own process group, own log file, own database
connection through `db_handler`). The runner loads the client's file, instantiates its
`ClientBase` subclass and calls `run()`; SIGTERM asks for a graceful stop (`on_stop` runs),
SIGUSR1 fires every job now (the dashboard's run-now). A fatal error (import error, exception in
`__init__`/`on_start`) is written to `<run dir>/<name>.crash.json` for the daemon to record with
its traceback, and the runner exits with status 1.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from quantstrip import clock
from quantstrip.client import heartbeat, services
from quantstrip.client.base import ClientBase
from quantstrip.db.units import utc_text
from quantstrip.errors import ConfigError

EXIT_FATAL = 1


def crash_path(client_name: str) -> Path:
    return heartbeat.run_dir() / f"{client_name}.crash.json"


def exit_path(client_name: str) -> Path:
    """Where the runner leaves its exit status: a daemon that adopted this process (it is not
    the parent, so it cannot wait() for the status) reads it there."""
    return heartbeat.run_dir() / f"{client_name}.exit.json"


def find_client_classes(source: str) -> list[str]:
    """Names of classes in `source` that subclass ClientBase (by name), without importing it."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                base_name = (
                    base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
                )
                if base_name == "ClientBase":
                    names.append(node.name)
    return names


def load_module(path: Path, client_name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"quantstrip_client_{client_name}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"entry: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    # The client's folder is importable, so a client can ship helper modules next to its file.
    sys.path.insert(0, str(path.parent))
    spec.loader.exec_module(module)
    return module


def load_client_class(path: Path, class_name: str | None, client_name: str) -> type[ClientBase]:
    module = load_module(path, client_name)
    if class_name:
        cls = getattr(module, class_name, None)
        if cls is None:
            raise ConfigError(f"entry: {path.name} has no class {class_name!r}")
    else:
        candidates = [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj)
            and issubclass(obj, ClientBase)
            and obj is not ClientBase
            and obj.__module__ == module.__name__
        ]
        if len(candidates) != 1:
            raise ConfigError(
                f"entry: {path.name} defines {len(candidates)} ClientBase subclasses; "
                "name one as 'file.py:ClassName'"
            )
        cls = candidates[0]
    if not (inspect.isclass(cls) and issubclass(cls, ClientBase)):
        raise ConfigError(f"entry: {class_name!r} in {path.name} is not a ClientBase subclass")
    return cls


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quantstrip.client.runner")
    parser.add_argument("--name", required=True)
    parser.add_argument("--file", required=True, type=Path)
    parser.add_argument("--class", dest="class_name", default=None)
    parser.add_argument("--heartbeat-interval", type=float, default=5.0)
    args = parser.parse_args(argv)
    exit_path(args.name).unlink(missing_ok=True)
    code = _run(args)
    heartbeat.write_json_atomic(exit_path(args.name), {"code": code, "pid": os.getpid()})
    return code


def _run(args: argparse.Namespace) -> int:
    os.environ["QUANTSTRIP_CLIENT"] = args.name
    services.setup_client_logging(args.name)
    # APScheduler logs every job start and end at INFO: noise in a client's log.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    log = logging.getLogger(f"quantstrip.runner.{args.name}")
    crash = crash_path(args.name)
    crash.unlink(missing_ok=True)
    beat_file = heartbeat.heartbeat_path(args.name)

    holder: dict[str, ClientBase] = {}
    stop_requested = threading.Event()

    def on_term(signum: int, frame: object) -> None:
        stop_requested.set()
        if "client" in holder:
            holder["client"].stop()
        else:  # still loading: nothing to stop gracefully
            raise SystemExit(0)

    def on_usr1(signum: int, frame: object) -> None:
        if "client" in holder:
            threading.Thread(target=holder["client"].scheduler.run_all_now, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, on_usr1)

    beat_lock = threading.Lock()  # the main loop and job threads (job start and end) beat

    reported: dict[str, object] = {}

    def write_beat(client: ClientBase) -> None:
        next_run = client.scheduler.next_run()
        if next_run is not None and next_run <= clock.now():
            # A job being fired right now (run-now sets it due): its schedule is unchanged, so
            # the beat a job start writes keeps the next run last reported.
            next_run = reported.get("next_run", next_run)  # type: ignore[assignment]
        else:
            reported["next_run"] = next_run
        with beat_lock:
            heartbeat.beat(
                beat_file,
                next_run=utc_text(next_run) if next_run else None,
                jobs_run=client.jobs_run,
                jobs_failed=client.jobs_failed,
                display_name=client.display_name,
                longest_job=list(job) if (job := client.longest_running_job()) else None,
                last_job=list(client.last_job) if client.last_job else None,
            )

    try:
        cls = load_client_class(args.file, args.class_name, args.name)
        client = cls()
        client.name = args.name
        holder["client"] = client
        if stop_requested.is_set():
            return 0
        client.run(heartbeat=write_beat, heartbeat_interval_s=args.heartbeat_interval)
    except SystemExit as exc:
        return int(exc.code or 0)
    except BaseException as exc:
        tb = traceback.format_exc()
        log.error("client %s failed: %s\n%s", args.name, exc, tb)
        heartbeat.write_json_atomic(
            crash, {"error": f"{type(exc).__name__}: {exc}", "traceback": tb, "pid": os.getpid()}
        )
        return EXIT_FATAL
    finally:
        logging.shutdown()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Job threads may still be blocked; do not wait for them on the way out.
    os._exit(code)
