-- Order types and terms beyond MKT/LMT/STP (issue 16): trailing stops, market/limit on close, and
-- the expiry of good-till-date orders; v_orders shows each order with the reason of its last
-- rejection or warning (the latest non-empty message of its status history).
--
-- SQLite cannot change a CHECK constraint in place: the orders table is rebuilt (the documented
-- procedure; the runner turns foreign keys off around a migration and checks them before
-- committing). legacy_alter_table keeps the rename from re-parsing views that name `orders`.
PRAGMA legacy_alter_table = ON;

CREATE TABLE orders_rebuilt (
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
    order_type              TEXT NOT NULL
        CHECK (order_type IN ('MKT', 'LMT', 'STP', 'STP LMT', 'TRAIL', 'MOC', 'LOC')),
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
    updated_at              TEXT NOT NULL,
    trail_amount_micros     INTEGER CHECK (trail_amount_micros > 0),
    trail_percent_micros    INTEGER CHECK (trail_percent_micros > 0),
    good_till               TEXT
);

INSERT INTO orders_rebuilt (id, client_order_id, strategy_id, account_id, instrument_id, broker,
    broker_order_id, broker_client_id, perm_id, parent_order_id, oca_group, order_type, side,
    qty_micros, limit_price_micros, stop_price_micros, tif, status, filled_qty_micros,
    avg_fill_price_micros, client_name, order_ref, created_at, updated_at)
SELECT id, client_order_id, strategy_id, account_id, instrument_id, broker, broker_order_id,
    broker_client_id, perm_id, parent_order_id, oca_group, order_type, side, qty_micros,
    limit_price_micros, stop_price_micros, tif, status, filled_qty_micros, avg_fill_price_micros,
    client_name, order_ref, created_at, updated_at
FROM orders;

DROP TABLE orders;
ALTER TABLE orders_rebuilt RENAME TO orders;
PRAGMA legacy_alter_table = OFF;

CREATE UNIQUE INDEX ux_orders_broker_perm ON orders (broker, perm_id) WHERE perm_id IS NOT NULL;
CREATE INDEX ix_orders_broker_order ON orders (broker, broker_client_id, broker_order_id);
CREATE INDEX ix_orders_strategy ON orders (strategy_id);
CREATE INDEX ix_orders_parent ON orders (parent_order_id);
CREATE INDEX ix_orders_open ON orders (broker, status);

CREATE VIEW v_orders AS
SELECT o.id                                AS order_id,
       o.client_order_id                   AS client_order_id,
       s.name                              AS strategy,
       o.client_name                       AS client,
       o.broker                            AS broker,
       a.account_code                      AS account,
       i.symbol                            AS symbol,
       o.side                              AS side,
       o.order_type                        AS order_type,
       o.tif                               AS tif,
       o.qty_micros / 1e6                  AS qty,
       o.limit_price_micros / 1e6          AS limit_price,
       o.stop_price_micros / 1e6           AS stop_price,
       o.trail_amount_micros / 1e6         AS trail_amount,
       o.trail_percent_micros / 1e6        AS trail_percent,
       o.good_till                         AS good_till,
       o.oca_group                         AS oca_group,
       o.status                            AS status,
       o.filled_qty_micros / 1e6           AS filled_qty,
       o.avg_fill_price_micros / 1e6       AS avg_fill_price,
       (SELECT e.message FROM order_events e
        WHERE e.order_id = o.id AND e.message != ''
        ORDER BY e.id DESC LIMIT 1)        AS status_message,
       o.broker_order_id                   AS broker_order_id,
       o.perm_id                           AS perm_id,
       o.created_at                        AS created_at,
       o.updated_at                        AS updated_at
FROM orders o
JOIN instruments i ON i.id = o.instrument_id
LEFT JOIN strategies s ON s.id = o.strategy_id
LEFT JOIN accounts a ON a.id = o.account_id;
