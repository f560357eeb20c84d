-- Marks (latest prices) and the operator's risk controls.
--
-- marks: every price observation taken to value positions (instrument, time, price, source:
-- 'sim', 'ib', 'ib-delayed', 'alpaca', 'manual'...). Append-only history; marks_latest keeps the
-- newest mark per instrument (trigger below) so valuing positions never scans the history.
-- Whether a mark is stale depends on "now", which only the application's clock knows: views give
-- mark_time, and quantstrip.brokers.marks decides staleness in one place.

CREATE TABLE marks (
    id              INTEGER PRIMARY KEY,
    instrument_id   INTEGER NOT NULL REFERENCES instruments (id),
    mark_time       TEXT NOT NULL,
    price_micros    INTEGER NOT NULL CHECK (price_micros > 0),
    source          TEXT NOT NULL,
    recorded_at     TEXT NOT NULL,
    UNIQUE (instrument_id, mark_time, source)
);
CREATE INDEX ix_marks_instrument_time ON marks (instrument_id, mark_time);

CREATE TABLE marks_latest (
    instrument_id   INTEGER PRIMARY KEY REFERENCES instruments (id),
    mark_id         INTEGER NOT NULL REFERENCES marks (id),
    mark_time       TEXT NOT NULL,
    price_micros    INTEGER NOT NULL,
    source          TEXT NOT NULL
);

CREATE TRIGGER marks_keep_latest AFTER INSERT ON marks
BEGIN
    INSERT INTO marks_latest (instrument_id, mark_id, mark_time, price_micros, source)
    VALUES (NEW.instrument_id, NEW.id, NEW.mark_time, NEW.price_micros, NEW.source)
    ON CONFLICT (instrument_id) DO UPDATE SET
        mark_id = excluded.mark_id, mark_time = excluded.mark_time,
        price_micros = excluded.price_micros, source = excluded.source
    WHERE excluded.mark_time >= marks_latest.mark_time;
END;

-- Unrealised PnL: the one definition (blotter, home page, portfolio report, SQL editor, Excel).
-- For each open position: market value = qty x mark x multiplier; unrealised = market value less
-- the position's exact cost basis (added back for a short); exposure = |market value|. Without a
-- mark, mark, market value, unrealised PnL and exposure are NULL (never a silent zero).
CREATE VIEW v_unrealised_pnl AS
SELECT s.name                                               AS strategy,
       a.account_code                                       AS account,
       a.broker                                             AS broker,
       i.symbol                                             AS symbol,
       i.sec_type                                           AS sec_type,
       i.currency                                           AS currency,
       p.qty_micros / 1e6                                   AS qty,
       p.avg_cost_micros / 1e6                              AS avg_cost,
       i.multiplier_micros / 1e6                            AS multiplier,
       p.cost_basis_micros / 1e6                            AS cost_basis,
       m.price_micros / 1e6                                 AS mark_price,
       m.mark_time                                          AS mark_time,
       m.source                                             AS mark_source,
       (p.qty_micros * (m.price_micros / 1e6)) * (i.multiplier_micros / 1e6) / 1e6
                                                            AS market_value,
       ((p.qty_micros * (m.price_micros / 1e6)) * (i.multiplier_micros / 1e6)
        - CASE WHEN p.qty_micros > 0 THEN p.cost_basis_micros ELSE -p.cost_basis_micros END)
        / 1e6                                               AS unrealised_pnl,
       abs(p.qty_micros * (m.price_micros / 1e6)) * (i.multiplier_micros / 1e6) / 1e6
                                                            AS exposure,
       p.realized_pnl_micros / 1e6                          AS realized_pnl_gross,
       p.last_exec_time                                     AS last_exec_time,
       p.strategy_id                                        AS strategy_id,
       p.account_id                                         AS account_id,
       p.instrument_id                                      AS instrument_id
FROM positions p
JOIN strategies s ON s.id = p.strategy_id
JOIN accounts a ON a.id = p.account_id
JOIN instruments i ON i.id = p.instrument_id
LEFT JOIN marks_latest m ON m.instrument_id = p.instrument_id
WHERE p.qty_micros <> 0;

-- Risk controls, per client (scope = client name) or for everything (scope = '*'): the state
-- every guarded broker checks before an order leaves the process. Kept in the workspace database
-- so that it survives restarts and every process (clients, CLI, dashboard) sees the same state.
CREATE TABLE risk_controls (
    scope        TEXT PRIMARY KEY,
    state        TEXT NOT NULL CHECK (state IN ('active', 'stop_entries', 'halted')),
    reason       TEXT NOT NULL DEFAULT '',
    set_by       TEXT NOT NULL DEFAULT '',
    updated_at   TEXT NOT NULL
);

-- Operator actions that running clients carry out on their own brokers (flatten, cancel orders,
-- refresh marks), and what each client reported back.
CREATE TABLE risk_actions (
    id            INTEGER PRIMARY KEY,
    scope         TEXT NOT NULL,
    action        TEXT NOT NULL CHECK (action IN ('flatten', 'cancel_orders', 'refresh_marks')),
    reason        TEXT NOT NULL DEFAULT '',
    requested_by  TEXT NOT NULL DEFAULT '',
    requested_at  TEXT NOT NULL
);

CREATE TABLE risk_action_results (
    id            INTEGER PRIMARY KEY,
    action_id     INTEGER NOT NULL REFERENCES risk_actions (id),
    client_name   TEXT NOT NULL,
    pid           INTEGER,
    status        TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    detail        TEXT NOT NULL DEFAULT '',
    finished_at   TEXT NOT NULL
);
CREATE INDEX ix_risk_action_results_action ON risk_action_results (action_id);

-- Processes whose brokers are guarded, with the last time each was seen: the CLI and the monitor
-- know which running clients will carry out an action, and whether the clients trade LIVE.
CREATE TABLE risk_guards (
    pid           INTEGER PRIMARY KEY,
    client_name   TEXT NOT NULL,
    mode          TEXT NOT NULL DEFAULT 'simulation',
    brokers       TEXT NOT NULL DEFAULT '',
    started_at    TEXT NOT NULL,
    seen_at       TEXT NOT NULL
);
