"""One dashboard page under two checkouts of the code, loads alternating, paired.

`bench/pages.py` compares each page with a trivial page in one run, but on a shared 2-core
machine the trivial page alone moves by 0.4 s between runs, so "before" and "after" measured in
two runs cannot show a change smaller than that (a change to the portfolio page measured 0.46 s
faster in two single runs and no faster paired). Here both versions serve the same demo workspace
at once, each from its own dashboard server (its own process, warm starter and kernels); the
loads alternate baseline/change (and which goes first alternates too), so the machine's drift
hits both alike, and the figure is the median of the paired differences, with how many pairs
the change won.

Usage: python bench/pages_ab.py [BASELINE_CHECKOUT [CHANGE_CHECKOUT]] [--page portfolio]
       [--pairs 10] [--same-tab] [--executions N]
A checkout is a directory holding the quantstrip package (`git worktree add /tmp/old <commit>`);
both default to this one: compared with itself (as `make bench` runs it), the paired median is
the comparison's own noise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from pages import ARGS, PAGES, Timer, demo_workspace, generated_ledger  # noqa: E402

SERVE = (
    "import sys, time\n"
    "from quantstrip.dashboard.server import start\n"
    "server = start(port=int(sys.argv[1]), token=sys.argv[2], timeout_s=300)\n"
    "print('up', flush=True)\n"
    "sys.stdin.read()\n"  # until the bench closes its end
    "server.stop()\n"
)


class Served:
    """A dashboard server running one checkout's code, as bench/pages.py's Timer expects."""

    def __init__(self, checkout: Path, root: Path, env: dict[str, str]) -> None:
        from quantstrip.dashboard.server import free_port

        self.port, self.token = free_port(), "pages-ab"
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(self.port), self.token],
            cwd=root,
            env={**env, "PYTHONPATH": str(checkout)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "up":
            raise SystemExit(f"the dashboard of {checkout} did not start")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}?token={self.token}"

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("baseline", type=Path, nargs="?", default=REPO)
    parser.add_argument("change", type=Path, nargs="?", default=REPO)
    parser.add_argument("--page", default="portfolio", choices=sorted(PAGES))
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--same-tab", action="store_true")
    parser.add_argument(
        "--executions", type=int, default=0, help="a generated ledger (0: the one-year demo)"
    )
    args = parser.parse_args()
    for checkout in (args.baseline, args.change):
        if not (checkout / "quantstrip" / "__init__.py").exists():
            parser.error(f"{checkout}: no quantstrip package there")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        demo_workspace(root)
        if args.executions:
            generated_ledger(root, args.executions)
        env = dict(os.environ)
        sides = {"baseline": Served(args.baseline, root, env)}
        try:
            sides["change"] = Served(args.change, root, env)
            times: dict[str, list[float]] = {side: [] for side in sides}
            trivial: dict[str, list[float]] = {side: [] for side in sides}
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                timers = {side: Timer(context, s, args.same_tab) for side, s in sides.items()}
                for timer in timers.values():  # first loads (templates, kernels) not counted
                    timer.load(args.page, PAGES[args.page])
                    timer.load("baseline", "text=baseline-ready")
                for pair in range(args.pairs):
                    order = ("baseline", "change") if pair % 2 == 0 else ("change", "baseline")
                    for side in order:
                        times[side].append(timers[side].load(args.page, PAGES[args.page]))
                        trivial[side].append(timers[side].load("baseline", "text=baseline-ready"))
                browser.close()
        finally:
            for served in sides.values():
                served.stop()
    differences = [c - b for b, c in zip(times["baseline"], times["change"], strict=True)]
    won = sum(d < 0 for d in differences)
    print(f"\n== {args.page}, {args.pairs} pairs, {'one tab' if args.same_tab else 'new tabs'}")
    for side in sides:
        print(
            f"{side:9} median {statistics.median(times[side]):5.2f}s "
            f"(trivial page {statistics.median(trivial[side]):5.2f}s)  "
            + " ".join(f"{t:.2f}" for t in times[side])
        )
    ratio = statistics.median(times["change"]) / statistics.median(times["baseline"])
    print(
        f"change - baseline, paired: median {statistics.median(differences):+.2f}s, "
        f"mean {statistics.mean(differences):+.2f}s; the change faster in {won} of {args.pairs}; "
        f"ratio of medians {ratio:.2f}x"
    )


if __name__ == "__main__":
    begin = time.perf_counter()
    main()
    print(f"({time.perf_counter() - begin:.0f}s)")
