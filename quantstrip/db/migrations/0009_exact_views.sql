-- Exact views: the same numbers in SQLite (ODBC/Excel) and DuckDB (report, SQL editor), for fills
-- up to 10^10 notional and their sums, rounded the one way (half up, ties away from zero).
--
-- Why: DuckDB binds these views itself and multiplies BIGINT in 64 bits, so qty x price in
-- micros (10^22 for a 10^10 fill) overflowed and v_executions, v_commissions and v_round_trips
-- crashed; SQLite turned the same overflow into an inexact REAL without a word. Integer
-- division differed too: SQLite truncates, DuckDB's `/` returns a DOUBLE.
--
-- The rules every expression below keeps, so that each engine computes the same exact integer:
--   * only +, -, * and % on integers whose results fit in 64 bits (large products are split
--     into limbs of 10^6 or 10^9 first);
--   * integer division is written CAST((x - x % k) / k AS BIGINT): SQLite divides exactly;
--     DuckDB divides in DOUBLE, which is exact after the cast for any quotient below 10^15
--     (x itself may use all 64 bits);
--   * REAL appears only at the end (micros / 1e6), or in an estimate that is corrected exactly.
-- Exact domain: quantities and prices below 10^12 units, notional below 9.2 x 10^12,
-- commissions below 10^9 units per fill.
--
-- Money: detail views keep every amount to the micro, as REAL currency units (a REAL gives the
-- micros back exactly below 2^32 units: DuckDB sums CAST(x AS DECIMAL(38, 6)) exactly); summary
-- views round to the cent half up from the exact integer sums, as quantstrip.db.units.money()
-- does. No integer micros column is published in a shared view: the SQLite ODBC driver reads
-- INTEGER values as 32 bits, so Excel would see them truncated.

-- Notional of each fill, qty x price x multiplier, in micros rounded half up (the cost the
-- position engine books for an opening fill: units.mul_micros). With q = qh*10^6 + ql and
-- p = ph*10^6 + pl: q*p = hi*10^12 + lo*10^6 + r, and q*p*m / 10^12 = hi*m + lo*mh + the rest,
-- each part below 2^63.
CREATE VIEW v_execution_notional AS
SELECT execution_id,
       hi * m + lo * mh + CAST((u - u % 1000000) / 1000000 AS BIGINT)
       + CAST(((u % 1000000) * 1000000 + r * ml + 500000000000
               - ((u % 1000000) * 1000000 + r * ml + 500000000000) % 1000000000000)
              / 1000000000000 AS BIGINT)                              AS notional_micros
FROM (SELECT execution_id, m, mh, ml, r, lo, hi, r * mh + lo * ml AS u
      FROM (SELECT execution_id, m, mh, ml, r, s % 1000000 AS lo,
                   qh * ph + CAST((s - s % 1000000) / 1000000 AS BIGINT) AS hi
            FROM (SELECT execution_id, m, mh, ml, qh, ph, (ql * pl) % 1000000 AS r,
                         qh * pl + ql * ph
                         + CAST((ql * pl - (ql * pl) % 1000000) / 1000000 AS BIGINT) AS s
                  FROM (SELECT e.id AS execution_id,
                               i.multiplier_micros AS m,
                               CAST((i.multiplier_micros - i.multiplier_micros % 1000000)
                                    / 1000000 AS BIGINT) AS mh,
                               i.multiplier_micros % 1000000 AS ml,
                               CAST((e.qty_micros - e.qty_micros % 1000000) / 1000000 AS BIGINT)
                                   AS qh,
                               e.qty_micros % 1000000 AS ql,
                               CAST((e.price_micros - e.price_micros % 1000000) / 1000000
                                    AS BIGINT) AS ph,
                               e.price_micros % 1000000 AS pl
                        FROM executions e
                        JOIN instruments i ON i.id = e.instrument_id) AS split) AS parts) AS limbs)
     AS carried;

-- Each round trip's share of the commissions of the fills it matched: commission x matched qty
-- / fill qty, rounded half up to the micro (units.div_round). One row per side (opening,
-- closing) whose fill has a commission; the sides are a join, not a UNION, so that a lookup by
-- closure reaches position_closures by its key in SQLite.
-- When c*a fits in 63 bits (a 1,000 commission on a 4,000,000-unit fill does) it is one exact
-- integer division. Otherwise: k = the DOUBLE estimate (within 1 of the truth), the exact
-- remainder r = c*a - k*b from both products in base-10^9 limbs, and k moves by one if r says
-- so. (SQLite substitutes each named intermediate where it is used and evaluates only the CASE
-- branch taken: the long branch costs nothing on ordinary fills.)
CREATE VIEW v_closure_fee_shares AS
SELECT closure_id, execution_id, role,
       sgn * CASE WHEN CAST(c AS DOUBLE) * a < 4e18
                  THEN CAST((c * a + CAST((b - b % 2) / 2 AS BIGINT)
                             - (c * a + CAST((b - b % 2) / 2 AS BIGINT)) % b) / b AS BIGINT)
                  ELSE k + CASE WHEN r >= b - r THEN 1 WHEN r < -b - r THEN -1 ELSE 0 END
             END AS fee_micros
FROM (SELECT closure_id, execution_id, role, sgn, c, a, k, b,
             ((p2 - q2) * 1000000000 + (p1 - q1)) * 1000000000 + (p0 - q0) AS r
      FROM (SELECT closure_id, execution_id, role, sgn, c, a, k, b, p0, q0,
                   pm % 1000000000 AS p1,
                   p11 + CAST((pm - pm % 1000000000) / 1000000000 AS BIGINT) AS p2,
                   qm % 1000000000 AS q1,
                   q11 + CAST((qm - qm % 1000000000) / 1000000000 AS BIGINT) AS q2
            FROM (SELECT closure_id, execution_id, role, sgn, c, a, k, b,
                         p00 % 1000000000 AS p0,
                         p01 + CAST((p00 - p00 % 1000000000) / 1000000000 AS BIGINT) AS pm,
                         p11,
                         q00 % 1000000000 AS q0,
                         q01 + CAST((q00 - q00 % 1000000000) / 1000000000 AS BIGINT) AS qm,
                         q11
                  FROM (SELECT closure_id, execution_id, role, sgn, c, a, k, b,
                               c0 * a0 AS p00, c1 * a0 + c0 * a1 AS p01, c1 * a1 AS p11,
                               k0 * b0 AS q00, k1 * b0 + k0 * b1 AS q01, k1 * b1 AS q11
                        FROM (SELECT closure_id, execution_id, role, sgn, c, a, k, b,
                                     CAST((c - c % 1000000000) / 1000000000 AS BIGINT) AS c1,
                                     c % 1000000000 AS c0,
                                     CAST((a - a % 1000000000) / 1000000000 AS BIGINT) AS a1,
                                     a % 1000000000 AS a0,
                                     CAST((k - k % 1000000000) / 1000000000 AS BIGINT) AS k1,
                                     k % 1000000000 AS k0,
                                     CAST((b - b % 1000000000) / 1000000000 AS BIGINT) AS b1,
                                     b % 1000000000 AS b0
                              FROM (SELECT closure_id, execution_id, role, sgn, c, a, b,
                                           CAST(CAST(c AS DOUBLE) * a / b AS BIGINT) AS k
                                    FROM (SELECT pc.id AS closure_id, e.id AS execution_id,
                                                 sides.role AS role,
                                                 CASE WHEN cm.commission_micros < 0 THEN -1
                                                      ELSE 1 END AS sgn,
                                                 abs(cm.commission_micros) AS c,
                                                 pc.qty_micros AS a, e.qty_micros AS b
                                          FROM position_closures pc
                                          CROSS JOIN (SELECT 'closing' AS role
                                                      UNION ALL SELECT 'opening') AS sides
                                          JOIN executions e
                                            ON e.id = CASE sides.role
                                                      WHEN 'closing' THEN pc.closing_execution_id
                                                      ELSE pc.opening_execution_id END
                                          JOIN commissions cm ON cm.execution_id = e.id)
                                         AS fees) AS estimated) AS limbs) AS products)
                 AS carried) AS normalised) AS remainders;

-- Net PnL of each round trip: the one definition behind v_round_trips and the trigger-kept
-- agg_daily_trips (same name and columns as in 0003, plus the commission it carries).
DROP VIEW v_closure_net;
CREATE VIEW v_closure_net AS
SELECT closure_id, strategy_id, day, closing_execution_id, opening_execution_id,
       gross_micros - fee_micros AS net_micros,
       fee_micros                AS commission_micros,
       gross_micros              AS gross_micros
FROM (SELECT pc.id                                  AS closure_id,
             pc.strategy_id                         AS strategy_id,
             substr(pc.exit_time, 1, 10)            AS day,
             pc.closing_execution_id                AS closing_execution_id,
             pc.opening_execution_id                AS opening_execution_id,
             pc.realized_pnl_gross_micros           AS gross_micros,
             COALESCE((SELECT SUM(f.fee_micros) FROM v_closure_fee_shares f
                       WHERE f.closure_id = pc.id), 0) AS fee_micros
      FROM position_closures pc) AS closures;

-- The aggregate kept from v_closure_net is recounted with the exact shares (0003 truncated
-- them, and overflowed into REAL on large fills).
DELETE FROM agg_daily_trips;
INSERT INTO agg_daily_trips (strategy_id, day, trades, wins, losses, win_micros, loss_micros)
SELECT strategy_id, day, COUNT(*), SUM(net_micros > 0), SUM(net_micros < 0),
       SUM(MAX(net_micros, 0)), SUM(MIN(net_micros, 0))
FROM v_closure_net
GROUP BY strategy_id, day;

-- The triggers that keep agg_daily_trips read each round trip's net once (a subquery with an
-- OFFSET is not flattened into its reader, so net_micros is not recomputed per use).
DROP TRIGGER agg_closure_added;
CREATE TRIGGER agg_closure_added AFTER INSERT ON position_closures
BEGIN
    INSERT INTO agg_daily_trips (strategy_id, day, trades, wins, losses, win_micros, loss_micros)
    SELECT strategy_id, day, 1, net > 0, net < 0, MAX(net, 0), MIN(net, 0)
    FROM (SELECT strategy_id, day, net_micros AS net FROM v_closure_net
          WHERE closure_id = NEW.id LIMIT -1 OFFSET 0) AS t
    WHERE true
    ON CONFLICT (strategy_id, day) DO UPDATE SET
        trades = trades + excluded.trades, wins = wins + excluded.wins,
        losses = losses + excluded.losses, win_micros = win_micros + excluded.win_micros,
        loss_micros = loss_micros + excluded.loss_micros;
END;

DROP TRIGGER agg_closure_removed;
CREATE TRIGGER agg_closure_removed BEFORE DELETE ON position_closures
BEGIN
    UPDATE agg_daily_trips
       SET trades = trades - 1,
           wins = wins - (t.net > 0),
           losses = losses - (t.net < 0),
           win_micros = win_micros - MAX(t.net, 0),
           loss_micros = loss_micros - MIN(t.net, 0)
      FROM (SELECT net_micros AS net FROM v_closure_net
            WHERE closure_id = OLD.id LIMIT -1 OFFSET 0) AS t
     WHERE strategy_id = OLD.strategy_id AND day = substr(OLD.exit_time, 1, 10);
END;

DROP TRIGGER agg_trip_refresh_apply;
CREATE TRIGGER agg_trip_refresh_apply AFTER INSERT ON agg_trip_refresh
BEGIN
    UPDATE agg_daily_trips
       SET trades = trades + NEW.sign * t.n_trades,
           wins = wins + NEW.sign * t.n_wins,
           losses = losses + NEW.sign * t.n_losses,
           win_micros = win_micros + NEW.sign * t.n_win_micros,
           loss_micros = loss_micros + NEW.sign * t.n_loss_micros
      FROM (SELECT strategy_id, day, COUNT(*) AS n_trades, SUM(net > 0) AS n_wins,
                   SUM(net < 0) AS n_losses, SUM(MAX(net, 0)) AS n_win_micros,
                   SUM(MIN(net, 0)) AS n_loss_micros
            FROM (SELECT strategy_id, day, net_micros AS net FROM v_closure_touches
                  WHERE execution_id = NEW.execution_id LIMIT -1 OFFSET 0) AS touched
            GROUP BY strategy_id, day) AS t
     WHERE agg_daily_trips.strategy_id = t.strategy_id AND agg_daily_trips.day = t.day;
    DELETE FROM agg_trip_refresh WHERE rowid = NEW.rowid;
END;

DROP VIEW v_executions;
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
       n.notional_micros / 1e6                AS notional,
       COALESCE(c.commission_micros, 0) / 1e6 AS commission,
       e.exec_time                            AS exec_time,
       cd.day                                 AS exec_date,
       o.client_order_id                      AS client_order_id,
       e.liquidity                            AS liquidity,
       e.exchange                             AS exchange,
       e.strategy_id                          AS strategy_id,
       e.instrument_id                        AS instrument_id
FROM executions e
JOIN v_execution_notional n ON n.execution_id = e.id
JOIN strategies s ON s.id = e.strategy_id
JOIN instruments i ON i.id = e.instrument_id
JOIN accounts a ON a.id = e.account_id
LEFT JOIN commissions c ON c.execution_id = e.id
LEFT JOIN orders o ON o.id = e.order_id
LEFT JOIN calendar_days cd ON cd.day = substr(e.exec_time, 1, 10)
WHERE e.superseded_by IS NULL;

-- Trade-level PnL attribution: every closed round trip, its commissions allocated pro rata to
-- the matched quantity of the opening and closing fills (v_closure_fee_shares).
DROP VIEW v_round_trips;
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
       n.gross_micros / 1e6                       AS gross_pnl,
       n.commission_micros / 1e6                  AS commission,
       n.net_micros / 1e6                         AS net_pnl,
       pc.strategy_id                             AS strategy_id,
       pc.closing_execution_id                    AS closing_execution_id,
       pc.opening_execution_id                    AS opening_execution_id
FROM position_closures pc
JOIN v_closure_net n ON n.closure_id = pc.id
JOIN strategies s ON s.id = pc.strategy_id
JOIN accounts a ON a.id = pc.account_id
JOIN instruments i ON i.id = pc.instrument_id
LEFT JOIN calendar_days cd ON cd.day = substr(pc.exit_time, 1, 10);

-- Commission analysis per fill (aggregate it by strategy, symbol or month in a query).
DROP VIEW v_commissions;
CREATE VIEW v_commissions AS
SELECT e.id                                         AS execution_id,
       s.name                                       AS strategy,
       i.symbol                                     AS symbol,
       e.broker                                     AS broker,
       cd.day                                       AS date,
       substr(e.exec_time, 1, 7)                    AS month,
       e.side                                       AS side,
       e.qty_micros / 1e6                           AS qty,
       n.notional_micros / 1e6                      AS notional,
       COALESCE(c.commission_micros, 0) / 1e6       AS commission,
       c.currency                                   AS currency,
       CASE WHEN n.notional_micros > 0
            THEN COALESCE(c.commission_micros, 0) * 1e4 / n.notional_micros
       END                                          AS commission_bps,
       e.strategy_id                                AS strategy_id
FROM executions e
JOIN v_execution_notional n ON n.execution_id = e.id
JOIN strategies s ON s.id = e.strategy_id
JOIN instruments i ON i.id = e.instrument_id
LEFT JOIN commissions c ON c.execution_id = e.id
LEFT JOIN calendar_days cd ON cd.day = substr(e.exec_time, 1, 10)
WHERE e.superseded_by IS NULL;

DROP VIEW v_daily_pnl;
CREATE VIEW v_daily_pnl AS
SELECT s.name                                              AS strategy,
       cd.day                                              AS date,
       d.gross_micros / 1e6                                AS gross_pnl,
       d.commission_micros / 1e6                           AS commission,
       (d.gross_micros - d.commission_micros) / 1e6        AS net_pnl,
       d.fills                                             AS fills,
       d.strategy_id                                       AS strategy_id
FROM agg_daily_pnl d
JOIN strategies s ON s.id = d.strategy_id
LEFT JOIN calendar_days cd ON cd.day = d.day
WHERE d.fills > 0;

DROP VIEW v_daily_trades;
CREATE VIEW v_daily_trades AS
SELECT s.name                                              AS strategy,
       cd.day                                              AS date,
       t.trades                                            AS trades,
       t.wins                                              AS wins,
       t.losses                                            AS losses,
       t.win_micros / 1e6                                  AS win_pnl,
       t.loss_micros / 1e6                                 AS loss_pnl,
       t.strategy_id                                       AS strategy_id
FROM agg_daily_trips t
JOIN strategies s ON s.id = t.strategy_id
LEFT JOIN calendar_days cd ON cd.day = t.day
WHERE t.trades > 0;

-- Per-strategy totals, money rounded to the cent half up from the exact integer sums:
-- CASE WHEN m < 0 THEN -((5000 - m) - (5000 - m) % 10000) ELSE (m + 5000) - (m + 5000) % 10000
-- END / 1e6 is units.money(m) (the numerator is a whole number of cents, exact in a DOUBLE).
DROP VIEW v_return_on_capital;
CREATE VIEW v_return_on_capital AS
WITH peak AS (
    SELECT strategy_id, peak_micros FROM agg_strategy_capital WHERE stale = 0
    UNION ALL
    -- rows a delete or an out-of-order event left stale until the writer refreshes them
    SELECT strategy_id, MAX(capital_micros) FROM v_capital_running
    WHERE strategy_id IN (SELECT strategy_id FROM agg_strategy_capital WHERE stale <> 0)
    GROUP BY strategy_id
),
pnl AS (
    SELECT strategy_id,
           SUM(gross_micros)                          AS gross_micros,
           SUM(commission_micros)                     AS commission_micros,
           SUM(gross_micros) - SUM(commission_micros) AS net_micros
    FROM agg_daily_pnl
    GROUP BY strategy_id
    HAVING SUM(fills) > 0
)
SELECT s.name                                                                AS strategy,
       CASE WHEN pnl.gross_micros < 0
            THEN -((5000 - pnl.gross_micros) - (5000 - pnl.gross_micros) % 10000)
            ELSE (pnl.gross_micros + 5000) - (pnl.gross_micros + 5000) % 10000
       END / 1e6                                                             AS gross_pnl,
       CASE WHEN pnl.commission_micros < 0
            THEN -((5000 - pnl.commission_micros) - (5000 - pnl.commission_micros) % 10000)
            ELSE (pnl.commission_micros + 5000) - (pnl.commission_micros + 5000) % 10000
       END / 1e6                                                             AS commission,
       CASE WHEN pnl.net_micros < 0
            THEN -((5000 - pnl.net_micros) - (5000 - pnl.net_micros) % 10000)
            ELSE (pnl.net_micros + 5000) - (pnl.net_micros + 5000) % 10000
       END / 1e6                                                             AS net_pnl,
       CASE WHEN peak.peak_micros < 0
            THEN -((5000 - peak.peak_micros) - (5000 - peak.peak_micros) % 10000)
            ELSE (peak.peak_micros + 5000) - (peak.peak_micros + 5000) % 10000
       END / 1e6                                                             AS peak_capital,
       CASE WHEN peak.peak_micros > 0
            THEN CAST(pnl.net_micros AS DOUBLE) / peak.peak_micros
       END                                                                   AS return_on_capital,
       s.id                                                                  AS strategy_id
FROM pnl
JOIN peak ON peak.strategy_id = pnl.strategy_id
JOIN strategies s ON s.id = pnl.strategy_id;
