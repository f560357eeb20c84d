"""Dashboard page kernels forked warm from a starter that has done their imports (issue 18,
performance: dashboard/warm_kernels.py, warm_starter.py).

Each kernel here is a real ipykernel started through jupyter_client with the `quantstrip-page`
kernelspec the pages use, so through the registered provisioner and a real starter process.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.provisioning import KernelProvisionerFactory
from support.kernels import run_printed

from quantstrip.dashboard import warm_kernels
from quantstrip.dashboard.warm_kernels import STARTER, WarmProvisioner, WarmStarter
from quantstrip.dashboard.warm_starter import StarterError, kernel_arguments, serve

REPO = Path(__file__).resolve().parents[1]
KERNELS = REPO / "jupyter_config" / "data" / "kernels"
PAGE_KERNEL = "quantstrip-page"


def page_manager() -> KernelManager:
    """A kernel manager for the pages' kernelspec, as the dashboard's server makes one."""
    return KernelManager(
        kernel_name=PAGE_KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(KERNELS)])
    )


def probe(manager: KernelManager) -> dict[str, Any]:
    code = (
        "import json, os, sys\n"
        "from comm import get_comm_manager\n"
        "print(json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), 'cwd': os.getcwd(),"
        " 'preloaded': sorted(m for m in ('pandas', 'duckdb', 'ipywidgets') if m in sys.modules),"
        " 'env': {k: os.environ.get(k) for k in ('QS_PAGE_PROBE', 'QS_SERVER_ONLY')},"
        " 'history': get_ipython().history_manager.enabled,"
        " 'targets': sorted(get_comm_manager().targets)}))"
    )
    content, printed = run_printed(manager.client(), code)
    assert content["status"] == "ok", content
    return dict(json.loads(printed))


def wait_gone(pid: int, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def fresh_starter(monkeypatch: pytest.MonkeyPatch) -> Iterator[WarmStarter]:
    """The provisioner's starter, stopped before and after: started by this test, with a
    variable only the server has (a kernel must not inherit the starter's environment)."""
    STARTER.stop()
    monkeypatch.setenv("QS_SERVER_ONLY", "server")
    yield STARTER
    STARTER.stop()


@pytest.fixture
def page_kernel(fresh_starter: WarmStarter, tmp_path: Path) -> Iterator[KernelManager]:
    manager = page_manager()
    env = {k: v for k, v in os.environ.items() if k != "QS_SERVER_ONLY"}
    env["QS_PAGE_PROBE"] = "this page"
    manager.start_kernel(env=env, cwd=str(tmp_path))
    yield manager
    if manager.has_kernel:
        manager.shutdown_kernel(now=True)


def test_every_dashboard_page_runs_in_the_warm_kernelspec() -> None:
    pages = sorted((REPO / "reports").glob("*.ipynb")) + sorted(
        (REPO / "reports" / "viewer").glob("*.ipynb")
    )
    assert pages
    for page in pages:
        assert nbformat.read(page, 4).metadata["kernelspec"]["name"] == PAGE_KERNEL, page.name
    spec = KernelSpecManager(kernel_dirs=[str(KERNELS)]).get_kernel_spec(PAGE_KERNEL)
    name = spec.metadata["kernel_provisioner"]["provisioner_name"]
    assert KernelProvisionerFactory.instance().provisioners[name].load() is WarmProvisioner


def test_a_page_kernel_is_forked_warm_with_its_own_environment_and_folder(
    page_kernel: KernelManager, fresh_starter: WarmStarter, tmp_path: Path
) -> None:
    seen = probe(page_kernel)
    assert seen["ppid"] == fresh_starter.pid  # forked by the starter, not started cold
    assert seen["pid"] == page_kernel.provisioner.pid
    # ps and psutil show it as the kernel it is, not as another starter
    assert "-m ipykernel_launcher -f" in " ".join(psutil.Process(seen["pid"]).cmdline())
    assert seen["preloaded"] == ["duckdb", "ipywidgets", "pandas"]
    assert seen["env"] == {"QS_PAGE_PROBE": "this page", "QS_SERVER_ONLY": None}
    assert Path(seen["cwd"]) == tmp_path
    # no input history: an SQLite write in ~/.ipython on every page load, for a page's cells
    assert seen["history"] is False


def test_widgets_imported_before_the_kernel_still_answer_the_browser(
    page_kernel: KernelManager,
) -> None:
    """ipywidgets registers its comm targets at import only inside a running IPython; imported
    by the starter, the browser's batched state request was refused (comm_close) and every
    widget was fetched in its own round trip (found in the browser's frames)."""
    assert {"jupyter.widget", "jupyter.widget.control"} <= set(probe(page_kernel)["targets"])


def test_an_interrupt_reaches_a_warm_kernel(page_kernel: KernelManager) -> None:
    client = page_kernel.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        msg_id = client.execute(
            "import time\nprint('running', flush=True)\nfor _ in range(600): time.sleep(0.1)"
        )
        deadline = time.monotonic() + 30
        running = False  # interrupted only once the loop runs (not while the kernel reads it)
        while not running and time.monotonic() < deadline:
            msg = client.get_iopub_msg(timeout=30)
            running = msg["msg_type"] == "stream" and "running" in msg["content"]["text"]
        page_kernel.interrupt_kernel()
        reply = client.get_shell_msg(timeout=30)
    finally:
        client.stop_channels()
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"


def test_shutdown_and_restart_end_the_forked_process(page_kernel: KernelManager) -> None:
    first = page_kernel.provisioner.pid
    page_kernel.restart_kernel(now=True)
    second = page_kernel.provisioner.pid
    assert second != first
    assert wait_gone(first)
    assert probe(page_kernel)["pid"] == second
    page_kernel.shutdown_kernel()
    assert wait_gone(second)


def test_kernels_end_with_their_starter(
    page_kernel: KernelManager, fresh_starter: WarmStarter
) -> None:
    """The server gone (its pipe to the starter closed), the starter ends, and so do the kernels
    it forked (ipykernel's parent poller): no orphan page kernels."""
    pid = page_kernel.provisioner.pid
    probe(page_kernel)
    fresh_starter.stop()
    assert wait_gone(pid)


def test_the_starter_refuses_anything_but_a_kernel(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(StarterError, match="not an ipykernel command"):
        kernel_arguments(["/bin/sh", "-c", f"touch {marker}"])
    with pytest.raises(StarterError):
        kernel_arguments(["python", "ipykernel_launcher", "-f", "x"])  # not run as a module
    replies = io.StringIO()
    request = {"argv": ["/bin/sh", "-c", f"touch {marker}"], "env": {}, "cwd": str(tmp_path)}
    serve(io.StringIO(json.dumps(request) + "\nnot json\n"), replies)
    answers = [json.loads(line) for line in replies.getvalue().splitlines()]
    assert [sorted(a) for a in answers] == [["error"], ["error"]]
    assert "not an ipykernel command" in answers[0]["error"]
    assert not marker.exists()


def test_a_page_kernel_starts_cold_and_says_so_when_the_starter_cannot_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    broken = WarmStarter(command=("python3", "-c", "import sys; sys.exit(3)"))
    monkeypatch.setattr(warm_kernels, "STARTER", broken)
    manager = page_manager()
    with caplog.at_level(logging.ERROR, logger="quantstrip.dashboard"):
        manager.start_kernel(cwd=str(tmp_path))
    try:
        seen = probe(manager)
    finally:
        manager.shutdown_kernel(now=True)
    assert seen["ppid"] == os.getpid()  # started cold, by this process
    assert "page kernel started cold: the warm kernel starter ended" in caplog.text
