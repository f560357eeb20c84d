"""The Dask cluster a sweep runs on: a configured scheduler, or an in-process LocalCluster.

`research.cluster` (or `--cluster`) names a running scheduler (`tcp://host:8786`); empty means
a LocalCluster inside this process: no server to install or start. Its worker runs the sweep's
runs in threads (`research.workers` at once, default one per core): each run's work happens in
its own kernel process, so threads are enough and the cluster starts in a second instead of
spawning and importing in worker processes. Its scheduler talks in-process (no port is
opened); the dashboard, when there is one, binds 127.0.0.1 only.

The Dask dashboard needs bokeh (a dependency of Quantstrip); without it the sweep says so
instead of printing a link that would not load.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from quantstrip.errors import ConfigError

LOCAL = "local"


@dataclass(frozen=True)
class ClusterConfig:
    address: str = ""  # empty: in-process LocalCluster
    workers: int = 0  # concurrent runs on the local cluster; 0 = one per core
    memory_limit: int | None = None  # bytes per run's kernel; None = no limit

    @property
    def local(self) -> bool:
        return not self.address

    def concurrency(self) -> int:
        return self.workers or os.cpu_count() or 1


def parse_memory(text: str | int | None) -> int | None:
    """'2GB', '512MiB', '1.5 GB' or a number of bytes; empty or 0 means no limit."""
    if text in (None, "", 0, "0"):
        return None
    from dask.utils import parse_bytes

    try:
        value = int(parse_bytes(text))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"research.memory_limit: {text!r} is not a size ({exc})") from None
    if value <= 0:
        raise ConfigError(f"research.memory_limit: must be positive, got {text!r}")
    return value


def from_settings(
    address: str | None = None, workers: int | None = None, memory_limit: str | None = None
) -> ClusterConfig:
    """Arguments win over the `research` settings section."""
    from quantstrip import settings

    section = settings.platform().research
    chosen = section.cluster if address is None else address
    return ClusterConfig(
        address="" if chosen in (None, LOCAL) else str(chosen).strip(),
        workers=section.workers if workers is None else int(workers),
        memory_limit=parse_memory(section.memory_limit if memory_limit is None else memory_limit),
    )


def dashboard_available() -> bool:
    return importlib.util.find_spec("bokeh") is not None


@dataclass
class Connection:
    client: Any  # distributed.Client
    cluster: Any | None  # the LocalCluster we started, if any
    dashboard: str | None
    note: str  # what to tell the user about the dashboard

    @property
    def address(self) -> str:
        return str(self.client.scheduler.address)


@contextlib.contextmanager
def connect(config: ClusterConfig) -> Iterator[Connection]:
    from distributed import Client, LocalCluster

    cluster = None
    if config.local:
        dashboard = dashboard_available()
        cluster = LocalCluster(
            n_workers=1,
            threads_per_worker=config.concurrency(),
            processes=False,
            dashboard_address="127.0.0.1:0" if dashboard else None,
            memory_limit=0,  # the runs' kernels are separate processes: limited per run
        )
        client = Client(cluster, set_as_default=False)
    else:
        try:
            client = Client(config.address, timeout="30s", set_as_default=False)
        except OSError as exc:
            raise ConfigError(
                f"research.cluster: no Dask scheduler answers at {config.address} ({exc})"
            ) from None
    try:
        link, note = _dashboard(client, cluster is not None)
        yield Connection(client, cluster, link, note)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _dashboard(client: Any, local: bool) -> tuple[str | None, str]:
    services = client.scheduler_info().get("services", {})
    if "dashboard" in services:
        # The in-process scheduler reports the machine's address; its dashboard listens on
        # 127.0.0.1 only, so that is the link that works.
        link = (
            f"http://127.0.0.1:{services['dashboard']}/status" if local else client.dashboard_link
        )
        return link, f"Dask dashboard: {link}"
    if local and not dashboard_available():
        return None, "Dask dashboard: not available (bokeh is not installed: pip install bokeh)"
    return None, "Dask dashboard: the scheduler serves none (start it with bokeh installed)"
