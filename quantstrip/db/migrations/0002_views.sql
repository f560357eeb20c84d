-- Views shared by every consumer: portfolio report, SQL editor, ODBC/Excel. One definition of each
-- number. Money columns are REAL in currency units, computed from exact integer micros sums.
-- Dates are UTC calendar dates of the execution time, taken from calendar_days so that they keep
-- a DATE type through ODBC.

CREATE VIEW v_executions AS
SELECT e.id                                   AS execution_id,
       e.broker                               AS broker,
       a.account_code                         AS account,
       e.exec_id                              AS exec_id,
       s.name                                 AS strategy,
       i.symbol                               AS symbol,
       i.sec_type                             AS sec_type,
       i.currency                             AS currency,
       e.side                                 AS side,
       e.qty_micros / 1e6                     AS qty,
       e.price_micros / 1e6                   AS price,
       i.multiplier_micros / 1e6              AS multiplier,
       (e.qty_micros * e.price_micros / 1e6) * (i.multiplier_micros / 1e6) / 1e6 AS notional,
       COALESCE(c.commission_micros, 0) / 1e6 AS commission,
       e.exec_time                            AS exec_time,
       cd.day                                 AS exec_date,
       o.client_order_id                      AS client_order_id,
       e.liquidity                            AS liquidity,
       e.exchange                             AS exchange,
       e.strategy_id                          AS strategy_id,
       e.instrument_id                        AS instrument_id
FROM executions e
JOIN strategies s ON s.id = e.strategy_id
JOIN instruments i ON i.id = e.instrument_id
JOIN accounts a ON a.id = e.account_id
LEFT JOIN commissions c ON c.execution_id = e.id
LEFT JOIN orders o ON o.id = e.order_id
LEFT JOIN calendar_days cd ON cd.day = substr(e.exec_time, 1, 10)
WHERE e.superseded_by IS NULL;

-- Trade-level PnL attribution: every closed round trip (an opening lot matched by a closing fill).
-- Commissions are allocated pro rata to the matched quantity of the opening and closing fills.
CREATE VIEW v_round_trips AS
SELECT pc.id                                      AS round_trip_id,
       s.name                                     AS strategy,
       a.account_code                             AS account,
       i.symbol                                   AS symbol,
       pc.direction                               AS direction,
       pc.qty_micros / 1e6                        AS qty,
       pc.entry_time                              AS entry_time,
       pc.entry_price_micros / 1e6                AS entry_price,
       pc.exit_time                               AS exit_time,
       pc.exit_price_micros / 1e6                 AS exit_price,
       cd.day                                     AS exit_date,
       pc.realized_pnl_gross_micros / 1e6         AS gross_pnl,
       (COALESCE(co.commission_micros * pc.qty_micros / eo.qty_micros, 0)
        + COALESCE(cc.commission_micros * pc.qty_micros / ec.qty_micros, 0)) / 1e6 AS commission,
       (pc.realized_pnl_gross_micros
        - COALESCE(co.commission_micros * pc.qty_micros / eo.qty_micros, 0)
        - COALESCE(cc.commission_micros * pc.qty_micros / ec.qty_micros, 0)) / 1e6 AS net_pnl,
       pc.strategy_id                             AS strategy_id,
       pc.closing_execution_id                    AS closing_execution_id,
       pc.opening_execution_id                    AS opening_execution_id
FROM position_closures pc
JOIN strategies s ON s.id = pc.strategy_id
JOIN accounts a ON a.id = pc.account_id
JOIN instruments i ON i.id = pc.instrument_id
JOIN executions ec ON ec.id = pc.closing_execution_id
LEFT JOIN commissions cc ON cc.execution_id = ec.id
LEFT JOIN executions eo ON eo.id = pc.opening_execution_id
LEFT JOIN commissions co ON co.execution_id = eo.id
LEFT JOIN calendar_days cd ON cd.day = substr(pc.exit_time, 1, 10);

-- Daily realised PnL per strategy: gross realised on the day's closing fills, less every
-- commission paid that day (opening and closing fills alike).
CREATE VIEW v_daily_pnl AS
SELECT s.name                                              AS strategy,
       cd.day                                              AS date,
       SUM(pe.realized_pnl_gross_micros) / 1e6             AS gross_pnl,
       SUM(COALESCE(c.commission_micros, 0)) / 1e6         AS commission,
       (SUM(pe.realized_pnl_gross_micros) - SUM(COALESCE(c.commission_micros, 0))) / 1e6 AS net_pnl,
       COUNT(e.id)                                         AS fills,
       e.strategy_id                                       AS strategy_id
FROM executions e
JOIN position_events pe ON pe.execution_id = e.id
JOIN strategies s ON s.id = e.strategy_id
LEFT JOIN commissions c ON c.execution_id = e.id
LEFT JOIN calendar_days cd ON cd.day = substr(e.exec_time, 1, 10)
WHERE e.superseded_by IS NULL
GROUP BY e.strategy_id, s.name, cd.day;

-- Commission analysis per fill (aggregate it by strategy, symbol or month in a query).
CREATE VIEW v_commissions AS
SELECT e.id                                         AS execution_id,
       s.name                                       AS strategy,
       i.symbol                                     AS symbol,
       e.broker                                     AS broker,
       cd.day                                       AS date,
       substr(e.exec_time, 1, 7)                    AS month,
       e.side                                       AS side,
       e.qty_micros / 1e6                           AS qty,
       (e.qty_micros * e.price_micros / 1e6) * (i.multiplier_micros / 1e6) / 1e6 AS notional,
       COALESCE(c.commission_micros, 0) / 1e6       AS commission,
       c.currency                                   AS currency,
       CASE WHEN e.qty_micros * e.price_micros > 0
            THEN COALESCE(c.commission_micros, 0) * 1e4
                 / ((e.qty_micros * e.price_micros / 1e6) * (i.multiplier_micros / 1e6))
       END                                          AS commission_bps,
       e.strategy_id                                AS strategy_id
FROM executions e
JOIN strategies s ON s.id = e.strategy_id
JOIN instruments i ON i.id = e.instrument_id
LEFT JOIN commissions c ON c.execution_id = e.id
LEFT JOIN calendar_days cd ON cd.day = substr(e.exec_time, 1, 10)
WHERE e.superseded_by IS NULL;

CREATE VIEW v_positions AS
SELECT s.name                        AS strategy,
       a.account_code                AS account,
       i.symbol                      AS symbol,
       i.sec_type                    AS sec_type,
       i.currency                    AS currency,
       p.qty_micros / 1e6            AS qty,
       p.avg_cost_micros / 1e6       AS avg_cost,
       p.cost_basis_micros / 1e6     AS cost_basis,
       p.realized_pnl_micros / 1e6   AS realized_pnl_gross,
       p.method                      AS method,
       p.last_exec_time              AS last_exec_time,
       p.strategy_id                 AS strategy_id,
       p.instrument_id               AS instrument_id
FROM positions p
JOIN strategies s ON s.id = p.strategy_id
JOIN accounts a ON a.id = p.account_id
JOIN instruments i ON i.id = p.instrument_id
WHERE p.qty_micros <> 0;

CREATE VIEW v_position_history AS
SELECT pe.id                                 AS position_event_id,
       s.name                                AS strategy,
       a.account_code                        AS account,
       i.symbol                              AS symbol,
       pe.event_time                         AS event_time,
       cd.day                                AS date,
       pe.qty_before_micros / 1e6            AS qty_before,
       pe.qty_after_micros / 1e6             AS qty_after,
       pe.avg_cost_before_micros / 1e6       AS avg_cost_before,
       pe.avg_cost_after_micros / 1e6        AS avg_cost_after,
       pe.realized_pnl_gross_micros / 1e6    AS realized_pnl_gross,
       pe.method                             AS method,
       pe.execution_id                       AS execution_id,
       pe.strategy_id                        AS strategy_id
FROM position_events pe
JOIN strategies s ON s.id = pe.strategy_id
JOIN accounts a ON a.id = pe.account_id
JOIN instruments i ON i.id = pe.instrument_id
LEFT JOIN calendar_days cd ON cd.day = substr(pe.event_time, 1, 10);

-- Return on invested capital per strategy: net realised PnL over the peak capital deployed
-- (the running sum, across instruments, of cost basis held, at each position event).
CREATE VIEW v_return_on_capital AS
WITH deployed AS (
    SELECT pe.strategy_id,
           SUM(pe.cost_basis_after_micros - pe.cost_basis_before_micros)
               OVER (PARTITION BY pe.strategy_id ORDER BY pe.event_time, pe.id) AS capital_micros
    FROM position_events pe
),
peak AS (
    SELECT strategy_id, MAX(capital_micros) AS peak_capital_micros FROM deployed GROUP BY strategy_id
),
pnl AS (
    SELECT e.strategy_id,
           SUM(pe.realized_pnl_gross_micros) AS gross_micros,
           SUM(COALESCE(c.commission_micros, 0)) AS commission_micros
    FROM executions e
    JOIN position_events pe ON pe.execution_id = e.id
    LEFT JOIN commissions c ON c.execution_id = e.id
    WHERE e.superseded_by IS NULL
    GROUP BY e.strategy_id
)
SELECT s.name                                                AS strategy,
       pnl.gross_micros / 1e6                                AS gross_pnl,
       pnl.commission_micros / 1e6                           AS commission,
       (pnl.gross_micros - pnl.commission_micros) / 1e6      AS net_pnl,
       peak.peak_capital_micros / 1e6                        AS peak_capital,
       CASE WHEN peak.peak_capital_micros > 0
            THEN (pnl.gross_micros - pnl.commission_micros) * 1.0 / peak.peak_capital_micros
       END                                                   AS return_on_capital,
       s.id                                                  AS strategy_id
FROM pnl
JOIN peak ON peak.strategy_id = pnl.strategy_id
JOIN strategies s ON s.id = pnl.strategy_id;
