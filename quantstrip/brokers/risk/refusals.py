"""A refused order is never silent: a strategy event in the broker's ledger (or the workspace
database), a client event the monitor shows, and an e-mail alert sent from its own thread so the
strategy learns of the refusal at once."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from quantstrip.brokers.events import OrderRequest
from quantstrip.brokers.risk import controls
from quantstrip.brokers.risk.rules import OrderRefused

if TYPE_CHECKING:
    from datetime import datetime

    from quantstrip.brokers.base import Broker
    from quantstrip.db.handler import Database

log = logging.getLogger("quantstrip.brokers.risk.guard")


def record_refusal(broker: Broker, refusal: OrderRefused, request: OrderRequest) -> None:
    """Strategy event in the ledger, client event in the workspace, alert by mail."""
    payload = {
        "rule": refusal.rule.value,
        "reason": refusal.reason,
        "client": refusal.client,
        "side": request.side,
        "qty": str(request.qty),
        "order_type": request.order_type,
        "limit_price": str(request.limit_price) if request.limit_price else None,
        "client_order_id": request.client_order_id,
    }
    log.warning("%s", refusal)
    when = broker.market_time()
    try:
        ledger = broker.ledger()
        if ledger is not None:
            _strategy_event(ledger, request, payload, when)
        else:
            from quantstrip.db.handler import Database

            with Database(controls.database_path()) as db:
                _strategy_event(db, request, payload, when)
    except Exception:
        log.exception("could not record the refusal of %s", request.client_order_id)
    client = refusal.client or "(no client)"
    try:
        from quantstrip.db.handler import Database

        with Database(controls.database_path()) as db:
            db.record_client_event(client, "risk_refused", str(refusal))
    except Exception:
        log.exception("could not record the refusal as a client event")
    # The mail goes out from its own thread: the strategy learns of the refusal at once,
    # not after SMTP retries. Not a daemon thread: a run ending now still sends it.
    alert = threading.Thread(
        target=_alert, args=(client, str(refusal)), name="risk-alert", daemon=False
    )
    with _alerts_lock:
        _alerts.append(alert)
    alert.start()


def _strategy_event(
    db: Database, request: OrderRequest, payload: dict[str, Any], when: datetime
) -> None:
    db.insert_strategy_event(
        request.strategy, request.instrument.symbol, "risk_refused", None, payload, when
    )


_alerts: list[threading.Thread] = []
_alerts_lock = threading.Lock()


def _alert(client: str, message: str) -> None:
    from quantstrip.client import services

    try:
        services.send_error_alert(client, message)
    finally:
        with _alerts_lock:
            _alerts.remove(threading.current_thread())


def wait_for_alerts(timeout_s: float = 60.0) -> None:
    """Block until the refusal alerts sent so far are recorded (tests; orderly shutdowns)."""
    with _alerts_lock:
        pending = list(_alerts)
    for thread in pending:
        thread.join(timeout_s)
