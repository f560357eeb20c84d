"""Risk controls between every client and every broker adapter.

- `guard.RiskGuard`: owned by every `Broker`; checks each order before it leaves the process.
- `rules`: the pre-trade rules (pure functions), `OrderRefused`, `TradingState`.
- `controls`: the operator's state and actions, shared by all processes through the database.
- `operator`: stop entries, flatten, halt, resume (the CLI and the monitor call these).
- `watcher`: the thread in each client process that carries out the operator's actions.

Limits live in settings (`[risk.limits]`, `[risk.clients.NAME]`; see `settings_models`).
"""

from __future__ import annotations

from quantstrip.brokers.risk.rules import OrderRefused, Rule, ScopeState, TradingState

__all__ = ["OrderRefused", "Rule", "ScopeState", "TradingState"]
