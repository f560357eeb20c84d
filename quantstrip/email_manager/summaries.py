"""Summaries for people: any object rendered readably (`send_summary`), and the end-of-day mail
read from the database (fills, realised PnL, errors, failed runs)."""

from __future__ import annotations

from datetime import date
from typing import Any

from quantstrip import clock
from quantstrip.analytics.currency import base_currencies
from quantstrip.daemon.states import ERROR_EVENTS, FAILED_RUNS, EventType
from quantstrip.db.records import Notification
from quantstrip.db.units import money, to_micros
from quantstrip.email_manager.delivery import _current_client, _db, send


def render(obj: Any) -> tuple[str, str | None]:
    """Plain text and optional HTML for a summary: DataFrame, mapping, sequence or anything."""
    try:
        import pandas as pd

        if isinstance(obj, pd.DataFrame | pd.Series):
            frame = obj.to_frame() if isinstance(obj, pd.Series) else obj
            return frame.to_string(), frame.to_html(border=0)
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    if isinstance(obj, dict):
        width = max((len(str(k)) for k in obj), default=0)
        return "\n".join(f"{str(k).ljust(width)}  {v}" for k, v in obj.items()), None
    if isinstance(obj, list | tuple):
        return "\n".join(f"- {item}" for item in obj), None
    return str(obj), None


def send_summary(
    obj: Any, client: str | None = None, subject: str | None = None, **kw: Any
) -> Notification:
    """The seed's `email_manager.send_summary(signal)`: a readable rendering of any object."""
    client = client or _current_client()
    text, html = render(obj)
    title = subject or f"Summary from {client or 'Quantstrip'}"
    return send(title, text, client=client, html=html, kind="summary", **kw)


def send_eod_summary(client: str, day: date | None = None) -> Notification:
    """End-of-day mail from the database: the client's fills, realised PnL, errors and failed
    notebook runs of the day (UTC). The error kinds are `daemon.states.ERROR_EVENTS`, the names
    the writers use, so a reader and its writers cannot drift apart again."""
    day = day or clock.now().date()
    start, end = f"{day.isoformat()} 00:00:00", f"{day.isoformat()} 23:59:59.999999"
    with _db() as db:
        strategies = [
            r[0]
            for r in db.query(
                "SELECT DISTINCT s.name FROM orders o JOIN strategies s ON s.id = o.strategy_id "
                "WHERE o.client_name = ? UNION SELECT name FROM strategies WHERE name = ?",
                (client, client),
            )
        ]
        marks = ", ".join("?" * len(strategies)) or "NULL"
        fills = db.query(
            f"SELECT exec_time, strategy, symbol, side, qty, price, commission FROM v_executions "
            f"WHERE strategy IN ({marks}) AND exec_time BETWEEN ? AND ? ORDER BY exec_time",
            (*strategies, start, end),
        )
        pnl = db.query(
            f"SELECT strategy, gross_pnl, commission, net_pnl, unconverted FROM v_daily_pnl "
            f"WHERE strategy IN ({marks}) AND date = ? ORDER BY strategy",
            (*strategies, day.isoformat()),
        )
        bases = base_currencies(db.conn, strategies)
        kinds = sorted(ERROR_EVENTS - {EventType.RUN_FAILED, EventType.RUN_TIMEOUT})
        errors = db.query(
            f"SELECT created_at, event_type, message FROM client_events WHERE client_name = ? "
            f"AND created_at BETWEEN ? AND ? AND event_type IN ({', '.join('?' * len(kinds))}) "
            "ORDER BY created_at",
            (client, start, end, *kinds),
        )
        statuses = sorted(FAILED_RUNS)
        failed_runs = db.query(
            f"SELECT id, started_at, status, error, error_cell FROM client_runs "
            f"WHERE client_name = ? AND started_at BETWEEN ? AND ? "
            f"AND status IN ({', '.join('?' * len(statuses))}) ORDER BY started_at",
            (client, start, end, *statuses),
        )
    lines = [f"End of day {day.isoformat()} for {client}", ""]
    total = realised_total(pnl, bases)
    lines.append(f"Realised PnL (net of commissions): {total}")
    for row in pnl:
        if row["net_pnl"] is None:
            lines.append(f"  {row['strategy']}: {row['unconverted']} amount(s) without a rate")
            continue
        gross, commission, net = (_cents(row[k]) for k in ("gross_pnl", "commission", "net_pnl"))
        lines.append(f"  {row['strategy']}: gross {gross}, commission {commission}, net {net}")
    lines += ["", f"Trades ({len(fills)}):"]
    for f in fills:
        lines.append(
            f"  {f['exec_time'][11:19]} {f['strategy']} {f['side']} {f['qty']:g} "
            f"{f['symbol']} @ {f['price']:g} (commission {f['commission']:.2f})"
        )
    lines += ["", f"Errors ({len(errors)}):"]
    lines += [f"  {e['created_at'][11:19]} {e['event_type']}: {e['message']}" for e in errors]
    lines += ["", f"Failed runs ({len(failed_runs)}):"]
    for r in failed_runs:
        where = f" in cell {r['error_cell']}" if r["error_cell"] else ""
        lines.append(f"  {r['started_at'][11:19]} run {r['id']} {r['status']}{where}: {r['error']}")
    return send(
        f"EOD {day.isoformat()} {client}: PnL {total}",
        "\n".join(lines),
        client=client,
        kind="eod",
    )


def _cents(value: float) -> str:
    """A view's amount (REAL, within half a micro of its exact micros) for people: half up."""
    return f"{money(to_micros(value)):,}"


def realised_total(pnl: list[Any], bases: list[str]) -> str:
    """The day's realised net PnL in the accounts' base currency, or why there is none: an
    amount without a rate to base, or strategies in accounts of different base currencies
    (adding those, or leaving an amount out, would mail a wrong number)."""
    if len(bases) > 1:
        return f"not available: the strategies trade in accounts based in {', '.join(bases)}"
    currency = f" {bases[0]}" if bases else ""
    missing = sum(row["unconverted"] for row in pnl if row["net_pnl"] is None)
    if missing:
        return f"not available: {missing} amount(s) have no rate to{currency or ' base'}"
    total = sum(to_micros(row["net_pnl"]) for row in pnl)
    return f"{money(total):,}{currency}"
