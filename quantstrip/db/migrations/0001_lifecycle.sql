-- Canonical trade-lifecycle schema.
-- Conventions (one rule, no exceptions):
--   * every quantity, price and money amount is an INTEGER in millionths ("micros", column suffix
--     _micros): 1.25 USD is 1250000. Sums of any number of fills are exact; views divide once at
--     the end, so reports, the SQL editor and Excel agree to the cent.
--   * every time is UTC ISO-8601 text 'YYYY-MM-DD HH:MM:SS.ffffff' (sortable, parsed by SQLite,
--     DuckDB and the ODBC driver alike).
--   * side is 'BUY' or 'SELL'; signed quantities are positive for long.

CREATE TABLE accounts (
    id             INTEGER PRIMARY KEY,
    broker         TEXT NOT NULL,
    account_code   TEXT NOT NULL,
    name           TEXT,
    base_currency  TEXT NOT NULL DEFAULT 'USD',
    created_at     TEXT NOT NULL,
    UNIQUE (broker, account_code)
);

CREATE TABLE instruments (
    id                 INTEGER PRIMARY KEY,
    symbol             TEXT NOT NULL,
    sec_type           TEXT NOT NULL DEFAULT 'STK',
    exchange           TEXT NOT NULL DEFAULT 'SMART',
    primary_exchange   TEXT,
    currency           TEXT NOT NULL DEFAULT 'USD',
    multiplier_micros  INTEGER NOT NULL DEFAULT 1000000 CHECK (multiplier_micros > 0),
    local_symbol       TEXT,
    expiry             TEXT NOT NULL DEFAULT '',
    strike_micros      INTEGER NOT NULL DEFAULT 0,
    option_right       TEXT NOT NULL DEFAULT '',
    created_at         TEXT NOT NULL,
    UNIQUE (symbol, sec_type, exchange, currency, expiry, strike_micros, option_right)
);

-- A broker's own id for an instrument (IB conId, Alpaca asset id...).
CREATE TABLE instrument_broker_ids (
    instrument_id      INTEGER NOT NULL REFERENCES instruments (id),
    broker             TEXT NOT NULL,
    broker_contract_id TEXT NOT NULL,
    PRIMARY KEY (broker, broker_contract_id)
);
CREATE INDEX ix_instrument_broker_ids_instrument ON instrument_broker_ids (instrument_id);

CREATE TABLE strategies (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    description      TEXT NOT NULL DEFAULT '',
    position_method  TEXT NOT NULL DEFAULT 'fifo' CHECK (position_method IN ('fifo', 'average')),
    active           INTEGER NOT NULL DEFAULT 1,
    created_at       TEXT NOT NULL
);

CREATE TABLE orders (
    id                      INTEGER PRIMARY KEY,
    client_order_id         TEXT NOT NULL UNIQUE,
    strategy_id             INTEGER REFERENCES strategies (id),
    account_id              INTEGER REFERENCES accounts (id),
    instrument_id           INTEGER NOT NULL REFERENCES instruments (id),
    broker                  TEXT NOT NULL,
    broker_order_id         TEXT,
    broker_client_id        TEXT,
    perm_id                 TEXT,
    parent_order_id         INTEGER REFERENCES orders (id),
    oca_group               TEXT,
    order_type              TEXT NOT NULL CHECK (order_type IN ('MKT', 'LMT', 'STP', 'STP LMT')),
    side                    TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    qty_micros              INTEGER NOT NULL CHECK (qty_micros > 0),
    limit_price_micros      INTEGER,
    stop_price_micros       INTEGER,
    tif                     TEXT NOT NULL DEFAULT 'DAY',
    status                  TEXT NOT NULL DEFAULT 'PendingSubmit',
    filled_qty_micros       INTEGER NOT NULL DEFAULT 0,
    avg_fill_price_micros   INTEGER,
    client_name             TEXT,
    order_ref               TEXT,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL
);
CREATE UNIQUE INDEX ux_orders_broker_perm ON orders (broker, perm_id) WHERE perm_id IS NOT NULL;
CREATE INDEX ix_orders_broker_order ON orders (broker, broker_client_id, broker_order_id);
CREATE INDEX ix_orders_strategy ON orders (strategy_id);
CREATE INDEX ix_orders_parent ON orders (parent_order_id);

-- Append-only status history: one row per status change an order went through.
CREATE TABLE order_events (
    id                      INTEGER PRIMARY KEY,
    order_id                INTEGER NOT NULL REFERENCES orders (id),
    status                  TEXT NOT NULL,
    filled_qty_micros       INTEGER NOT NULL DEFAULT 0,
    remaining_qty_micros    INTEGER,
    avg_fill_price_micros   INTEGER,
    message                 TEXT NOT NULL DEFAULT '',
    event_time              TEXT NOT NULL,
    recorded_at             TEXT NOT NULL
);
CREATE INDEX ix_order_events_order ON order_events (order_id, id);

CREATE TABLE executions (
    id                  INTEGER PRIMARY KEY,
    broker              TEXT NOT NULL,
    account_id          INTEGER NOT NULL REFERENCES accounts (id),
    exec_id             TEXT NOT NULL,
    base_exec_id        TEXT NOT NULL,
    correction_number   INTEGER NOT NULL DEFAULT 0,
    superseded_by       INTEGER REFERENCES executions (id),
    order_id            INTEGER REFERENCES orders (id),
    strategy_id         INTEGER NOT NULL REFERENCES strategies (id),
    instrument_id       INTEGER NOT NULL REFERENCES instruments (id),
    side                TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    qty_micros          INTEGER NOT NULL CHECK (qty_micros > 0),
    price_micros        INTEGER NOT NULL CHECK (price_micros >= 0),
    exec_time           TEXT NOT NULL,
    liquidity           TEXT NOT NULL DEFAULT '',
    exchange            TEXT NOT NULL DEFAULT '',
    recorded_at         TEXT NOT NULL,
    UNIQUE (broker, account_id, exec_id)
);
CREATE INDEX ix_executions_base ON executions (broker, account_id, base_exec_id);
CREATE INDEX ix_executions_position ON executions (strategy_id, account_id, instrument_id, exec_time);
CREATE INDEX ix_executions_order ON executions (order_id);
CREATE INDEX ix_executions_time ON executions (exec_time);

-- One commission per broker exec id. It may arrive before its execution: execution_id stays NULL
-- until the execution is recorded, then both are linked in the same transaction.
CREATE TABLE commissions (
    id                          INTEGER PRIMARY KEY,
    broker                      TEXT NOT NULL,
    exec_id                     TEXT NOT NULL,
    execution_id                INTEGER REFERENCES executions (id),
    commission_micros           INTEGER NOT NULL,
    currency                    TEXT NOT NULL DEFAULT 'USD',
    broker_realized_pnl_micros  INTEGER,
    recorded_at                 TEXT NOT NULL,
    UNIQUE (broker, exec_id)
);
CREATE INDEX ix_commissions_execution ON commissions (execution_id);

-- Current position per (strategy, account, instrument); derived, rebuilt from executions on demand.
CREATE TABLE positions (
    strategy_id           INTEGER NOT NULL REFERENCES strategies (id),
    account_id            INTEGER NOT NULL REFERENCES accounts (id),
    instrument_id         INTEGER NOT NULL REFERENCES instruments (id),
    qty_micros            INTEGER NOT NULL,
    cost_basis_micros     INTEGER NOT NULL,
    avg_cost_micros       INTEGER NOT NULL,
    realized_pnl_micros   INTEGER NOT NULL,
    method                TEXT NOT NULL,
    last_exec_time        TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    PRIMARY KEY (strategy_id, account_id, instrument_id)
);

-- Open FIFO lots (average-cost positions keep one lot).
CREATE TABLE position_lots (
    id                    INTEGER PRIMARY KEY,
    strategy_id           INTEGER NOT NULL,
    account_id            INTEGER NOT NULL,
    instrument_id         INTEGER NOT NULL,
    execution_id          INTEGER REFERENCES executions (id),
    open_time             TEXT NOT NULL,
    qty_micros            INTEGER NOT NULL,
    price_micros          INTEGER NOT NULL,
    cost_basis_micros     INTEGER NOT NULL
);
CREATE INDEX ix_position_lots_key ON position_lots (strategy_id, account_id, instrument_id, id);

-- One row per execution applied to a position.
CREATE TABLE position_events (
    id                          INTEGER PRIMARY KEY,
    execution_id                INTEGER NOT NULL UNIQUE REFERENCES executions (id),
    strategy_id                 INTEGER NOT NULL REFERENCES strategies (id),
    account_id                  INTEGER NOT NULL REFERENCES accounts (id),
    instrument_id               INTEGER NOT NULL REFERENCES instruments (id),
    qty_before_micros           INTEGER NOT NULL,
    qty_after_micros            INTEGER NOT NULL,
    avg_cost_before_micros      INTEGER NOT NULL,
    avg_cost_after_micros       INTEGER NOT NULL,
    cost_basis_before_micros    INTEGER NOT NULL,
    cost_basis_after_micros     INTEGER NOT NULL,
    realized_pnl_gross_micros   INTEGER NOT NULL,
    method                      TEXT NOT NULL,
    event_time                  TEXT NOT NULL
);
CREATE INDEX ix_position_events_key ON position_events (strategy_id, account_id, instrument_id, event_time);
CREATE INDEX ix_position_events_time ON position_events (event_time);

-- Each part of a closing fill matched against what it closed: a round trip (FIFO: the opening
-- lot's execution; average cost: the average entry).
CREATE TABLE position_closures (
    id                        INTEGER PRIMARY KEY,
    closing_execution_id      INTEGER NOT NULL REFERENCES executions (id),
    opening_execution_id      INTEGER REFERENCES executions (id),
    strategy_id               INTEGER NOT NULL,
    account_id                INTEGER NOT NULL,
    instrument_id             INTEGER NOT NULL,
    direction                 TEXT NOT NULL CHECK (direction IN ('LONG', 'SHORT')),
    qty_micros                INTEGER NOT NULL CHECK (qty_micros > 0),
    entry_time                TEXT NOT NULL,
    entry_price_micros        INTEGER NOT NULL,
    exit_time                 TEXT NOT NULL,
    exit_price_micros         INTEGER NOT NULL,
    realized_pnl_gross_micros INTEGER NOT NULL
);
CREATE INDEX ix_position_closures_closing ON position_closures (closing_execution_id);
CREATE INDEX ix_position_closures_opening ON position_closures (opening_execution_id);
CREATE INDEX ix_position_closures_strategy ON position_closures (strategy_id, exit_time);

CREATE TABLE strategy_events (
    id             INTEGER PRIMARY KEY,
    strategy_id    INTEGER NOT NULL REFERENCES strategies (id),
    symbol         TEXT NOT NULL DEFAULT '',
    event_type     TEXT NOT NULL,
    value          REAL,
    payload        TEXT NOT NULL DEFAULT '{}',
    event_time     TEXT NOT NULL
);
CREATE INDEX ix_strategy_events_strategy ON strategy_events (strategy_id, event_time);

CREATE TABLE account_snapshots (
    id                      INTEGER PRIMARY KEY,
    account_id              INTEGER NOT NULL REFERENCES accounts (id),
    net_liquidation_micros  INTEGER,
    cash_micros             INTEGER,
    currency                TEXT NOT NULL DEFAULT 'USD',
    snapshot_time           TEXT NOT NULL
);
CREATE INDEX ix_account_snapshots_account ON account_snapshots (account_id, snapshot_time);

-- Platform tables: the daemon's registry mirror, runs, events, and the notification centre.
CREATE TABLE clients (
    id                    INTEGER PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE,
    kind                  TEXT NOT NULL CHECK (kind IN ('module', 'notebook')),
    entry                 TEXT NOT NULL,
    enabled               INTEGER NOT NULL DEFAULT 1,
    state                 TEXT NOT NULL DEFAULT 'stopped',
    pid                   INTEGER,
    started_at            TEXT,
    last_heartbeat        TEXT,
    last_error            TEXT,
    last_error_traceback  TEXT,
    next_run              TEXT,
    restart_count         INTEGER NOT NULL DEFAULT 0,
    updated_at            TEXT NOT NULL
);

CREATE TABLE client_runs (
    id              INTEGER PRIMARY KEY,
    client_name     TEXT NOT NULL,
    trigger         TEXT NOT NULL DEFAULT 'schedule',
    scheduled_for   TEXT,
    started_at      TEXT NOT NULL,
    ended_at        TEXT,
    status          TEXT NOT NULL DEFAULT 'running',
    duration_s      REAL,
    output_path     TEXT,
    error           TEXT,
    error_cell      INTEGER,
    traceback       TEXT,
    pid             INTEGER
);
-- A scheduled slot runs at most once, whatever restarts the daemon goes through.
CREATE UNIQUE INDEX ux_client_runs_slot ON client_runs (client_name, scheduled_for)
    WHERE scheduled_for IS NOT NULL;
CREATE INDEX ix_client_runs_client ON client_runs (client_name, started_at);

CREATE TABLE client_events (
    id           INTEGER PRIMARY KEY,
    client_name  TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    message      TEXT NOT NULL DEFAULT '',
    traceback    TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX ix_client_events_client ON client_events (client_name, created_at);

CREATE TABLE notifications (
    id            INTEGER PRIMARY KEY,
    client_name   TEXT,
    kind          TEXT NOT NULL DEFAULT 'email',
    smtp_account  TEXT,
    recipients    TEXT NOT NULL DEFAULT '',
    subject       TEXT NOT NULL DEFAULT '',
    body          TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed', 'batched')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    batch_id      INTEGER REFERENCES notifications (id),
    created_at    TEXT NOT NULL,
    sent_at       TEXT
);
CREATE INDEX ix_notifications_status ON notifications (status, created_at);

-- Calendar of UTC days. Views take their date columns from here (a join, not an expression), so
-- the column keeps its declared DATE type through the view: ODBC/Excel then read real dates.
CREATE TABLE calendar_days (
    day  DATE PRIMARY KEY
) WITHOUT ROWID;
WITH RECURSIVE d(day) AS (
    SELECT '1970-01-01'
    UNION ALL
    SELECT date(day, '+1 day') FROM d WHERE day < '2199-12-31'
)
INSERT INTO calendar_days (day) SELECT day FROM d;
