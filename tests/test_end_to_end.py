"""The research-to-production path as a new user walks it: init, promote a research notebook,
the daemon runs it on its schedule, its fills land in the database, the report and the SQL
editor's query show the same PnL, and the end-of-day mail reaches the SMTP server."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import nbformat
import pytest
from support.daemon import DaemonHandle, wait_until
from support.smtp import Inbox

from quantstrip import email_manager
from quantstrip.analytics import list_queries, portfolio_report, run_query

RESEARCH = """
from datetime import UTC, datetime, timedelta
from quantstrip.brokers import InstrumentSpec, OrderRequest, Recorder
from quantstrip.brokers.sim import SimBroker
from quantstrip.db.handler import Database
from quantstrip.paths import workspace

# paper/live write the production record; simulation writes var/simulation.db
path = workspace().simulation_database if mode == "simulation" else workspace().database
now = datetime.now(UTC)
with Database(path) as db:
    broker = SimBroker(account="PAPER", seed=run_id)
    broker.subscribe(Recorder(db, client_name=client_name))
    spec = InstrumentSpec("SPY")
    broker.submit(OrderRequest(spec, "BUY", 10, strategy=client_name, client_name=client_name,
                               client_order_id=f"{client_name}-{run_id}-b"))
    broker.on_quote("SPY", "500.00", now + timedelta(seconds=1))
    broker.submit(OrderRequest(spec, "SELL", 10, strategy=client_name, client_name=client_name,
                               client_order_id=f"{client_name}-{run_id}-s"))
    broker.on_quote("SPY", "501.25", now + timedelta(seconds=2))
"""


def write_research_notebook(root: Path) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    parameters = nbformat.v4.new_code_cell(
        "client_name = 'research'\nmode = 'simulation'\nrun_id = 0"
    )
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell(RESEARCH)]
    path = root / "notebooks" / "spy_scalper.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


@pytest.mark.slow
@pytest.mark.real_clock
def test_research_notebook_to_scheduled_client_to_report_and_mail(
    workspace: Path, mail_workspace: Path, smtp_server: Inbox, daemon: DaemonHandle
) -> None:
    cli = [sys.executable, "-m", "quantstrip.cli"]
    subprocess.run([*cli, "init"], check=True, capture_output=True, timeout=60)
    notebook = write_research_notebook(workspace)
    promoted = subprocess.run(
        [
            *cli,
            "promote",
            str(notebook),
            "--name",
            "spy_scalper",
            "--schedule",
            "every 4 seconds",
            "--mode",
            "paper",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert promoted.returncode == 0, promoted.stderr
    daemon.start()

    def two_successful_runs() -> list[dict]:
        runs = [r for r in daemon.runs("spy_scalper") if r["status"] == "success"]
        return runs if len(runs) >= 2 else []

    runs = wait_until(two_successful_runs, 120, "two scheduled runs of the promoted notebook")
    assert all(r["trigger"] == "schedule" and Path(r["output_path"]).exists() for r in runs)
    daemon.stop()
    fills = daemon.query("SELECT COUNT(*) AS n FROM executions")[0]["n"]
    completed = len([r for r in daemon.runs("spy_scalper") if r["status"] == "success"])
    assert fills == 2 * completed
    # 10 x (501.25 - 500.00) = 12.50 gross, 1.00 commission per fill: 10.50 net per run.
    report = portfolio_report(horizon="all")
    net = report.stats.loc["spy_scalper"].net_pnl
    assert round(net, 2) == round(10.50 * completed, 2)
    query = next(q for q in list_queries() if q.name == "pnl_by_strategy")
    by_sql = run_query(query.sql).set_index("strategy").loc["spy_scalper"]
    assert round(by_sql.net_pnl, 2) == round(net, 2)
    # The runs may straddle a UTC midnight: the mail is for the day of the last fill, and
    # carries that day's PnL as the daily view has it (the days add up to every run's 10.50).
    days = daemon.query(
        "SELECT date, net_pnl FROM v_daily_pnl WHERE strategy = 'spy_scalper' ORDER BY date"
    )
    assert round(sum(d["net_pnl"] for d in days), 2) == round(10.50 * completed, 2)
    last_day = days[-1]
    mail = email_manager.send_eod_summary("spy_scalper", day=date.fromisoformat(last_day["date"]))
    assert mail.status == "sent"
    body = smtp_server.messages[-1].get_body(("plain",)).get_content()
    assert f"Realised PnL (net of commissions): {last_day['net_pnl']:,.2f}" in body
    assert smtp_server.envelopes[-1][1] == ["ops@example.test"]
