"""Scheduler firing jitter and per-client memory, each against a baseline measured in this run.

1. Jitter: an every-second job on the client scheduler (APScheduler BackgroundScheduler through
   `quantstrip.client.schedule.Scheduler`, the job wrapped by ClientBase) over N fires, versus a
   bare `time.sleep` loop aiming at the same kind of 1 s grid. Reported: mean/p95/max lateness
   in ms and the mean ratio.
2. Memory: RSS/USS of a real client runner process (`python -m quantstrip.client.runner` hosting
   a ticking ClientBase subclass, as the daemon starts it) versus a bare `python -c` process.

Usage: .venv/bin/python bench/scheduler.py [--fires 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import psutil

from quantstrip import ClientBase


def summarize(lateness_s: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in lateness_s)
    return {
        "mean": statistics.fmean(ms),
        "p95": ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))],
        "max": ms[-1],
    }


def scheduler_lateness(fires: int) -> list[float]:
    class Probe(ClientBase):
        def __init__(self) -> None:
            super().__init__(name="bench")
            self.seen: list[float] = []
            self.done = threading.Event()
            self.job = self.scheduler.every(1).seconds.do(self.tick)

        def tick(self) -> None:
            self.seen.append(time.time())
            if len(self.seen) >= fires:
                self.done.set()

    probe = Probe()
    # The slots are a 1 s grid anchored to the calendar (whatever trigger the phrase becomes):
    # the next one from now, then every second after it.
    start = probe.job.next_run().timestamp()
    thread = threading.Thread(target=probe.run, kwargs={"heartbeat_interval_s": 0.5}, daemon=True)
    thread.start()
    probe.done.wait(fires + 30)
    probe.stop()
    thread.join(10)
    return [t - (start + round(t - start)) for t in probe.seen[:fires]]


def sleep_loop_lateness(fires: int) -> list[float]:
    start = time.time() + 1
    out = []
    for k in range(fires):
        target = start + k
        time.sleep(max(0.0, target - time.time()))
        out.append(time.time() - target)
    return out


CLIENT = """
from quantstrip import ClientBase

class Ticker(ClientBase):
    def __init__(self):
        super().__init__()
        self.scheduler.every(1).seconds.do(self.job)

    def job(self):
        pass
"""


def memory(proc: psutil.Process) -> tuple[float, float]:
    info = proc.memory_full_info()
    return info.rss / 2**20, info.uss / 2**20


def client_memory() -> tuple[tuple[float, float], tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "ticker.py").write_text(textwrap.dedent(CLIENT))
        env = dict(os.environ, QUANTSTRIP_HOME=str(root / "var"), QUANTSTRIP_WORKSPACE=tmp)
        bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        runner = subprocess.Popen(
            [
                *(sys.executable, "-m", "quantstrip.client.runner", "--name", "ticker"),
                *("--file", str(root / "ticker.py"), "--heartbeat-interval", "0.5"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            beat = root / "var" / "run" / "ticker.heartbeat"
            deadline = time.monotonic() + 60
            while not beat.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(3)  # a few jobs have run
            return memory(psutil.Process(bare.pid)), memory(psutil.Process(runner.pid))
        finally:
            for p in (bare, runner):
                p.terminate()
                p.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fires", type=int, default=20)
    args = parser.parse_args()

    base = summarize(sleep_loop_lateness(args.fires))
    sched = summarize(scheduler_lateness(args.fires))
    print(f"firing lateness over {args.fires} fires of an every-second job (ms):")
    for label, stats in (("time.sleep loop baseline", base), ("client scheduler", sched)):
        print(
            f"  {label:25} mean {stats['mean']:.2f}  p95 {stats['p95']:.2f}  max {stats['max']:.2f}"
        )
    print(f"  ratio scheduler/baseline (mean): {sched['mean'] / max(base['mean'], 1e-3):.2f}x")

    (bare_rss, bare_uss), (client_rss, client_uss) = client_memory()
    print("memory per process (MiB):")
    print(f"  bare python baseline:   RSS {bare_rss:.1f}  USS {bare_uss:.1f}")
    print(f"  client runner (ticker): RSS {client_rss:.1f}  USS {client_uss:.1f}")
    print(f"  ratio client/baseline (RSS): {client_rss / bare_rss:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
