"""The operator's halt outlives the daemon: a halted client is not started again by a new daemon
(a reboot, a systemd restart, a SIGKILL), until trading is resumed and the client started.

`halt` stops the client with a user stop, and a user stop lasts until `start` or a daemon
restart: after a reboot every halted client was started again, its orders refused by the
guard one by one (each an alert), with the monitor showing it running."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.daemon import TICKER, DaemonHandle, pid_alive, wait_until, write_module_client

from quantstrip.brokers.risk import controls, operator

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


def test_a_halted_client_stays_stopped_across_daemon_restarts(
    workspace: Path, daemon: DaemonHandle
) -> None:
    write_module_client("alpha", TICKER)
    write_module_client("beta", TICKER)
    daemon.start()
    daemon.wait_heartbeat("alpha")
    daemon.wait_heartbeat("beta")

    outcome = operator.halt("alpha", reason="runaway orders", wait_s=5)
    assert "alpha: stop requested" in outcome.text, outcome.text
    daemon.wait_state("alpha", "stopped")

    assert daemon.stop() == 0  # a reboot
    daemon.start()
    assert daemon.status("alpha").state == "stopped"  # answered once the registry is applied
    daemon.wait_heartbeat("beta")  # not halted: started as before
    (held,) = daemon.events("alpha", "held_halted")
    assert "runaway orders" in held["message"] and "quantstrip resume" in held["message"]
    assert not daemon.events("beta", "held_halted")

    operator.resume("alpha")
    daemon.control.start("alpha")
    daemon.wait_heartbeat("alpha")

    # Everyone halted, then the daemon killed: the clients' processes outlive it, and the new
    # daemon stops them instead of adopting them.
    operator.halt(controls.ALL, reason="kill switch", wait_s=5, stop_clients=False)
    pids = [daemon.status(name).pid for name in ("alpha", "beta")]
    assert all(pids)
    daemon.kill()
    daemon.start()
    for name in ("alpha", "beta"):
        assert daemon.status(name).state == "stopped"
        assert "all clients (kill switch)" in daemon.events(name, "held_halted")[-1]["message"]
    wait_until(
        lambda: not any(pid_alive(pid) for pid in pids if pid), 30, "the halted processes end"
    )
