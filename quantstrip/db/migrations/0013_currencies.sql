-- Currencies: each fill carries its currency and the rate to its account's base currency;
-- realised PnL is computed in the instrument's currency (the position engine works in it) and
-- reported in base; FX conversions are cash movements, never positions.
--
-- Rates are integers in nanos (10^-9 base units per unit of the fill's currency): a micro is too
-- coarse for weak currencies (JPY to USD is 0.0066725). A fill's rate is, in this order: 1 when
-- the fill is in its account's base currency; the rate the broker gave with it (IB Flex
-- fxRateToBase); the latest fx_rates row on or before the fill's UTC day. With none, its base
-- amounts are NULL and counted as unconverted: a rate is never guessed.

ALTER TABLE executions ADD COLUMN currency TEXT;     -- the instrument's; written with every fill
ALTER TABLE executions ADD COLUMN fx_rate_to_base_nanos INTEGER
    CHECK (fx_rate_to_base_nanos > 0);
UPDATE executions
   SET currency = (SELECT i.currency FROM instruments i WHERE i.id = executions.instrument_id);

CREATE TABLE fx_rates (
    currency       TEXT NOT NULL,
    base_currency  TEXT NOT NULL,
    day            TEXT NOT NULL,                 -- UTC day 'YYYY-MM-DD' the rate applies from
    rate_nanos     INTEGER NOT NULL CHECK (rate_nanos > 0),
    source         TEXT NOT NULL DEFAULT '',
    recorded_at    TEXT NOT NULL,
    PRIMARY KEY (currency, base_currency, day)
);

-- FX conversions are cash movements: a conversion's two legs are cash events of this kind.
-- (SQLite changes a CHECK constraint by rebuilding the table; the runner has foreign keys off;
-- the view over it is dropped and made again around the rebuild, unchanged.)
DROP VIEW v_cash_events;
CREATE TABLE cash_events_new (
    id                      INTEGER PRIMARY KEY,
    broker                  TEXT NOT NULL,
    account_id              INTEGER NOT NULL REFERENCES accounts (id),
    broker_txn_id           TEXT NOT NULL,
    kind                    TEXT NOT NULL CHECK (kind IN ('dividend', 'payment_in_lieu',
                                'withholding_tax', 'interest', 'fee', 'commission_adjustment',
                                'deposit', 'withdrawal', 'fx_conversion', 'other')),
    currency                TEXT NOT NULL,
    amount_micros           INTEGER NOT NULL,
    fx_rate_to_base_micros  INTEGER CHECK (fx_rate_to_base_micros > 0),
    instrument_id           INTEGER REFERENCES instruments (id),
    event_time              TEXT NOT NULL,
    description             TEXT NOT NULL DEFAULT '',
    recorded_at             TEXT NOT NULL,
    UNIQUE (broker, account_id, broker_txn_id)
);
INSERT INTO cash_events_new SELECT * FROM cash_events;
DROP TABLE cash_events;
ALTER TABLE cash_events_new RENAME TO cash_events;
CREATE INDEX ix_cash_events_account_time ON cash_events (account_id, event_time);
-- A commission event names only broker and exec id: whether it is a conversion's is one range
-- look-up (`<exec id>:...`) here, not a scan.
CREATE INDEX ix_cash_events_txn ON cash_events (broker, broker_txn_id);
CREATE VIEW v_cash_events AS
SELECT c.id                                   AS cash_event_id,
       c.broker                               AS broker,
       a.account_code                         AS account,
       c.kind                                 AS kind,
       c.currency                             AS currency,
       c.amount_micros / 1e6                  AS amount,
       c.fx_rate_to_base_micros / 1e6         AS fx_rate_to_base,
       i.symbol                               AS symbol,
       c.event_time                           AS event_time,
       cd.day                                 AS event_date,
       c.description                          AS description,
       c.broker_txn_id                        AS broker_txn_id
FROM cash_events c
JOIN accounts a ON a.id = c.account_id
LEFT JOIN instruments i ON i.id = c.instrument_id
LEFT JOIN calendar_days cd ON cd.day = substr(c.event_time, 1, 10);

-- Each fill's currency, its account's base currency and the rate between them (see above).
CREATE VIEW v_fill_fx AS
SELECT execution_id, account_id, currency, base_currency,
       CASE WHEN currency = base_currency THEN 1000000000
            WHEN own_rate IS NOT NULL THEN own_rate
            ELSE (SELECT r.rate_nanos FROM fx_rates r
                  WHERE r.currency = f.currency AND r.base_currency = f.base_currency
                    AND r.day = (SELECT MAX(r2.day) FROM fx_rates r2
                                 WHERE r2.currency = f.currency
                                   AND r2.base_currency = f.base_currency
                                   AND r2.day <= f.day))
       END AS rate_nanos
FROM (SELECT e.id AS execution_id, e.account_id AS account_id,
             COALESCE(e.currency, i.currency) AS currency, a.base_currency AS base_currency,
             e.fx_rate_to_base_nanos AS own_rate, substr(e.exec_time, 1, 10) AS day
      FROM executions e
      JOIN instruments i ON i.id = e.instrument_id
      JOIN accounts a ON a.id = e.account_id) AS f;

-- Each commission's rate to base: 1 in the base currency, its fill's rate in the fill's currency,
-- else the rates table on the fill's day.
CREATE VIEW v_commission_fx AS
SELECT c.id AS commission_id, c.execution_id AS execution_id, c.currency AS currency,
       f.base_currency AS base_currency,
       CASE WHEN c.currency = f.base_currency THEN 1000000000
            WHEN c.currency = f.currency THEN f.rate_nanos
            ELSE (SELECT r.rate_nanos FROM fx_rates r
                  WHERE r.currency = c.currency AND r.base_currency = f.base_currency
                    AND r.day = (SELECT MAX(r2.day) FROM fx_rates r2
                                 WHERE r2.currency = c.currency
                                   AND r2.base_currency = f.base_currency
                                   AND r2.day <= (SELECT substr(e.exec_time, 1, 10)
                                                  FROM executions e
                                                  WHERE e.id = c.execution_id)))
       END AS rate_nanos
FROM commissions c
JOIN v_fill_fx f ON f.execution_id = c.execution_id;

-- Amounts converted to base currency, exact and half up: m micros x r nanos / 10^9, computed as
-- xh*r + xl*rh + round(xl*rl / 10^9) with x = |m| = xh*10^9 + xl and r = rh*10^9 + rl, each part
-- within 64 bits. One row per amount a base figure is made of:
--   'realised'        a fill's realised gross PnL, at the fill's rate;
--   'commission'      a commission, at its own rate;
--   'notional'        a fill's notional, at the fill's rate;
--   'round_trip'      a round trip's net PnL in the instrument's currency (its commission shares
--                     paid in that currency taken off) at the closing fill's rate: IB's
--                     fifoPnlRealized in base;
--   'round_trip_fee'  a round trip's commission share paid in another currency, at its rate.
CREATE VIEW v_base_amounts AS
SELECT kind, ref_id, execution_id, amount_micros, rate_nanos,
       CASE WHEN rate_nanos IS NULL THEN NULL
            ELSE sgn * (xh * rate_nanos + xl * rh
                        + CAST((xl * rl + 500000000 - (xl * rl + 500000000) % 1000000000)
                               / 1000000000 AS BIGINT))
       END AS base_micros
FROM (SELECT kind, ref_id, execution_id, amount_micros, rate_nanos,
             CASE WHEN amount_micros < 0 THEN -1 ELSE 1 END AS sgn,
             CAST((abs(amount_micros) - abs(amount_micros) % 1000000000) / 1000000000
                  AS BIGINT) AS xh,
             abs(amount_micros) % 1000000000 AS xl,
             CAST((rate_nanos - rate_nanos % 1000000000) / 1000000000 AS BIGINT) AS rh,
             rate_nanos % 1000000000 AS rl
      FROM (SELECT 'realised' AS kind, pe.execution_id AS ref_id, pe.execution_id AS execution_id,
                   pe.realized_pnl_gross_micros AS amount_micros, f.rate_nanos AS rate_nanos
            FROM position_events pe
            JOIN v_fill_fx f ON f.execution_id = pe.execution_id
            UNION ALL
            SELECT 'commission', c.id, c.execution_id, c.commission_micros, cf.rate_nanos
            FROM commissions c
            JOIN v_commission_fx cf ON cf.commission_id = c.id
            UNION ALL
            SELECT 'notional', n.execution_id, n.execution_id, n.notional_micros, f.rate_nanos
            FROM v_execution_notional n
            JOIN v_fill_fx f ON f.execution_id = n.execution_id
            UNION ALL
            SELECT 'round_trip', pc.id, pc.closing_execution_id,
                   pc.realized_pnl_gross_micros
                   - COALESCE((SELECT SUM(s.fee_micros) FROM v_closure_fee_shares s
                               JOIN commissions c ON c.execution_id = s.execution_id
                               WHERE s.closure_id = pc.id AND c.currency = f.currency), 0),
                   f.rate_nanos
            FROM position_closures pc
            JOIN v_fill_fx f ON f.execution_id = pc.closing_execution_id
            UNION ALL
            SELECT 'round_trip_fee', s.closure_id, s.execution_id, s.fee_micros, cf.rate_nanos
            FROM v_closure_fee_shares s
            JOIN commissions c ON c.execution_id = s.execution_id
            JOIN v_commission_fx cf ON cf.commission_id = c.id
            JOIN v_fill_fx f ON f.execution_id = s.execution_id
            WHERE c.currency <> f.currency) AS amounts) AS parts;

-- Realised PnL per strategy, account, currency and UTC day: in the instrument's currency and in
-- the account's base currency (each fill at its rate); commissions in base (each at its rate);
-- and how many fills and commissions lack a rate. A group with any amount lacking a rate has no
-- base figure (NULL): a sum of the converted part would understate it, silently.
CREATE VIEW v_pnl_by_currency AS
SELECT strategy, account, currency, base_currency, date, gross_pnl,
       CASE WHEN fills_without_rate = 0 THEN gross_base / 1e6 END             AS gross_pnl_base,
       CASE WHEN commissions_without_rate = 0 THEN commission_base / 1e6 END  AS commission_base,
       CASE WHEN fills_without_rate = 0 AND commissions_without_rate = 0
            THEN (gross_base - commission_base) / 1e6 END                     AS net_pnl_base,
       fills, fills_without_rate, commissions_without_rate, strategy_id
FROM (
SELECT s.name                                                   AS strategy,
       a.account_code                                           AS account,
       f.currency                                               AS currency,
       f.base_currency                                          AS base_currency,
       cd.day                                                   AS date,
       SUM(pe.realized_pnl_gross_micros) / 1e6                  AS gross_pnl,
       COALESCE(SUM(rb.base_micros), 0)                         AS gross_base,
       COALESCE(SUM(cb.base_micros), 0)                         AS commission_base,
       COUNT(*)                                                 AS fills,
       SUM(CASE WHEN f.rate_nanos IS NULL THEN 1 ELSE 0 END)    AS fills_without_rate,
       SUM(CASE WHEN c.id IS NOT NULL AND cb.base_micros IS NULL THEN 1 ELSE 0 END)
                                                                AS commissions_without_rate,
       e.strategy_id                                            AS strategy_id
FROM executions e
JOIN position_events pe ON pe.execution_id = e.id
JOIN v_fill_fx f ON f.execution_id = e.id
JOIN v_base_amounts rb ON rb.kind = 'realised' AND rb.ref_id = e.id
LEFT JOIN commissions c ON c.execution_id = e.id
LEFT JOIN v_base_amounts cb ON cb.kind = 'commission' AND cb.ref_id = c.id
JOIN strategies s ON s.id = e.strategy_id
JOIN accounts a ON a.id = e.account_id
LEFT JOIN calendar_days cd ON cd.day = substr(e.exec_time, 1, 10)
WHERE e.superseded_by IS NULL
GROUP BY e.strategy_id, s.name, a.account_code, f.currency, f.base_currency, cd.day
) AS groups;

-- Each closed round trip in base currency: its net PnL at the closing fill's rate (what IB
-- reports as fifoPnlRealized times fxRateToBase), less commission shares paid in other currencies
-- at their own rates. NULL when a rate is missing.
CREATE VIEW v_round_trips_base AS
SELECT rt.round_trip_id                                          AS round_trip_id,
       rt.strategy                                               AS strategy,
       rt.account                                                AS account,
       rt.symbol                                                 AS symbol,
       rt.exit_date                                              AS exit_date,
       f.currency                                                AS currency,
       f.base_currency                                           AS base_currency,
       f.rate_nanos / 1e9                                        AS fx_rate_to_base,
       rt.gross_pnl                                              AS gross_pnl,
       rt.net_pnl                                                AS net_pnl,
       (b.base_micros - COALESCE((SELECT SUM(o.base_micros) FROM v_base_amounts o
                                  WHERE o.kind = 'round_trip_fee'
                                    AND o.ref_id = rt.round_trip_id), 0)) / 1e6
                                                                 AS net_pnl_base,
       rt.strategy_id                                            AS strategy_id,
       rt.closing_execution_id                                   AS closing_execution_id
FROM v_round_trips rt
JOIN v_fill_fx f ON f.execution_id = rt.closing_execution_id
JOIN v_base_amounts b ON b.kind = 'round_trip' AND b.ref_id = rt.round_trip_id;
