"""The warm kernel starter: a process that has already imported what a dashboard page's kernel
imports, and forks a page kernel on request.

A page's kernel spent most of its start importing: ipykernel and IPython (about 0.6 s), then the
page's own pandas, numpy, DuckDB and ipywidgets (about 1 s on the portfolio page), on every page
load, because every page gets a fresh kernel. Forked from this process, a kernel starts with
those modules already in memory (shared copy-on-write between kernels), and still gets a fresh
interpreter state of its own: nothing of a page is ever pre-run, no kernel exists before a page
asks for one, and each page still has its own kernel (warm_kernels.py explains the choice).

Only third-party modules are imported here, never quantstrip's: they read the workspace and the
role from the environment, which is the kernel's own and is set in the child after the fork.

Protocol (one JSON object per line): the starter writes {"ready": pid} once it has imported;
each request {"argv", "env", "cwd"} on stdin is answered with {"pid": n} or {"error": text} on
stdout. The starter exits when stdin closes (its server has gone); kernels it forked then see
their parent change and end (ipykernel's parent poller).

Run as: python -m quantstrip.dashboard.warm_starter
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import sys
import time
import traceback
from typing import Any

import setproctitle

# What a page kernel imports before it runs a cell (ipykernel, with its debugger: debugpy is
# 0.2 s of a kernel's 0.4 s start, psutil) and what the pages import (ipywidgets, pandas,
# DuckDB, numpy). Altair is left out: only two pages draw charts, after their first screen, and
# it would add ~60 MB to every kernel's share.
PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.debugger",
    "psutil",
    "IPython.core.interactiveshell",
    "ipywidgets",
    "numpy",
    "pandas",
    "duckdb",
)
KERNEL_MODULE = "ipykernel_launcher"


class StarterError(RuntimeError):
    """A request the starter refuses (it only ever starts an ipykernel)."""


def kernel_arguments(argv: list[str]) -> list[str]:
    """The ipykernel arguments of a kernel command (`python [-X...] -m ipykernel_launcher ...`).
    Anything else is refused: the starter runs kernels, not commands."""
    if KERNEL_MODULE not in argv:
        raise StarterError(f"not an ipykernel command: {argv[:4]}")
    at = argv.index(KERNEL_MODULE)
    if at == 0 or argv[at - 1] != "-m":
        raise StarterError(f"not an ipykernel command: {argv[:4]}")
    return argv[at + 1 :]


def _reap(*_: Any) -> None:
    """Collect ended kernels so they do not stay zombies under the starter."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _become_kernel(request: dict[str, Any], arguments: list[str]) -> None:
    """In the forked child: the request's environment, folder and streams, then the kernel.
    Never returns."""
    code = 1
    try:
        os.setsid()  # its own process group: the server signals the kernel, not the starter
        # `ps`, psutil and an operator see what this process now is: the kernel command line.
        # Set before the environment changes (setproctitle moves the C environ on first use);
        # /proc/<pid>/environ stays the starter's, os.environ below is what the kernel uses.
        setproctitle.setproctitle(" ".join([sys.executable, "-m", KERNEL_MODULE, *arguments]))
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(2, 1)  # the starter's stdout is its pipe to the server: print to the log
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["JPY_PARENT_PID"] = str(os.getppid())  # the starter: the kernel ends with it
        time.tzset()
        sys.argv = [KERNEL_MODULE, *arguments]
        _run_kernel(arguments)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run_kernel(arguments: list[str]) -> None:
    """ipykernel's launch, with what the preloaded modules did at import redone for this kernel:
    - ipykernel read JPY_PARENT_PID into its class's default when it was imported here, before
      this kernel's environment existed: given explicitly, or the kernel would not end with
      its starter;
    - ipywidgets registers its comm targets at import only inside a running IPython: without
      them the browser's batched state request is refused and it falls back to one round trip
      per widget.
    Other import-time reads of the environment see the server's, which is what a kernel
    inherits too (only the per-request variables differ, and no preloaded module reads them).
    """
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance(parent_handle=int(os.environ["JPY_PARENT_PID"]))
    app.initialize(arguments)
    if "ipywidgets" in sys.modules:
        sys.modules["ipywidgets"].register_comm_target()
    app.start()


def serve(requests: Any, replies: Any) -> None:
    """Answer requests until `requests` ends."""
    for line in requests:
        try:
            request = json.loads(line)
            arguments = kernel_arguments(list(request["argv"]))
            pid = os.fork()
        except (StarterError, ValueError, KeyError, TypeError, OSError) as exc:
            replies.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
            replies.flush()
            continue
        if pid == 0:
            _become_kernel(request, arguments)
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the server: it stops us (stdin)
    # debugpy warns at import that frozen modules may hide breakpoints: kernels run with
    # -Xfrozen_modules=off (the kernelspec); the starter itself is never debugged.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    for name in PRELOAD:
        importlib.import_module(name)
    from jupyter_client import localinterfaces

    localinterfaces.localhost()  # the machine's addresses, which every kernel's start looks up
    # The imported modules' objects never die: out of the collector's sight, a kernel's garbage
    # collections do not walk (and so copy, page by page) the memory it shares with the starter.
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGCHLD, _reap)
    replies = sys.stdout
    replies.write(json.dumps({"ready": os.getpid()}) + "\n")
    replies.flush()
    serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
