-- The per-day PnL aggregate is kept in the account's base currency too, so the portfolio report
-- sums one currency (issue 15, currencies).
--
-- Why: agg_daily_pnl sums realised PnL and commissions as stored, each in its own fill's or
-- commission's currency; a CHF-base account trading EUR and USD got a total of francs, euros and
-- dollars. Converting at read time (v_base_amounts over every fill) would cost the report seconds
-- at 1M executions; the writer's triggers already touch the day's row, so they keep its base
-- figures as well.
--
-- agg_daily_pnl gains, per strategy and UTC day:
--   gross_base_micros, commission_base_micros  each amount converted at its own rate (v_fill_fx,
--                      v_commission_fx), exactly and half up (v_base_amounts: one definition);
--   unconverted        amounts (realised PnL of a fill, a commission) that have no rate: their
--                      base figure is unknown, never guessed; the day's base sums leave them out
--                      and v_strategy_days shows no base figure for the day (NULL);
--   foreign_amounts    amounts not in the account's base currency (0: the day was in base
--                      already, as every day of a single-currency account whose base is its
--                      trade currency, where the base figures equal the stored ones exactly).
--
-- A rate can arrive after its fill (the broker's rate from a Flex statement, an fx_rates row, a
-- base currency set before any rated fill): those writes recompute the days they can change,
-- from v_fill_base, so a day's base figures are always the sum of its fills' current ones.

ALTER TABLE agg_daily_pnl ADD COLUMN gross_base_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agg_daily_pnl ADD COLUMN commission_base_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agg_daily_pnl ADD COLUMN unconverted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agg_daily_pnl ADD COLUMN foreign_amounts INTEGER NOT NULL DEFAULT 0;

-- Each amount a strategy-day's base figures are made of, one row each: a fill's realised gross
-- PnL at the fill's rate (v_fill_fx), a commission at its own rate (v_commission_fx), converted
-- exactly and half up by the formula of v_base_amounts (migration 0013; repeated here because a
-- trigger must reach one fill through the indexes, and a filter from outside does not reach into
-- v_base_amounts' branches: read through it, every fill would scan the ledger).
CREATE VIEW v_daily_base_parts AS
SELECT kind, execution_id, commission_id, strategy_id, event_time,
       substr(event_time, 1, 10)                                          AS day,
       CASE WHEN currency = base_currency THEN 0 ELSE 1 END               AS foreign_amount,
       CASE WHEN rate_nanos IS NULL THEN NULL
            ELSE sgn * (xh * rate_nanos + xl * rh
                        + CAST((xl * rl + 500000000 - (xl * rl + 500000000) % 1000000000)
                               / 1000000000 AS BIGINT))
       END                                                                AS base_micros
FROM (SELECT kind, execution_id, commission_id, strategy_id, event_time, currency,
             base_currency, rate_nanos,
             CASE WHEN amount_micros < 0 THEN -1 ELSE 1 END AS sgn,
             CAST((abs(amount_micros) - abs(amount_micros) % 1000000000) / 1000000000
                  AS BIGINT) AS xh,
             abs(amount_micros) % 1000000000 AS xl,
             CAST((rate_nanos - rate_nanos % 1000000000) / 1000000000 AS BIGINT) AS rh,
             rate_nanos % 1000000000 AS rl
      FROM (SELECT 'realised' AS kind, pe.execution_id AS execution_id, NULL AS commission_id,
                   pe.strategy_id AS strategy_id, pe.event_time AS event_time,
                   pe.realized_pnl_gross_micros AS amount_micros, f.currency AS currency,
                   f.base_currency AS base_currency, f.rate_nanos AS rate_nanos
            FROM position_events pe
            JOIN v_fill_fx f ON f.execution_id = pe.execution_id
            UNION ALL
            SELECT 'commission', pe.execution_id, c.id, pe.strategy_id, pe.event_time,
                   c.commission_micros, c.currency, cf.base_currency, cf.rate_nanos
            FROM commissions c
            JOIN position_events pe ON pe.execution_id = c.execution_id
            JOIN v_commission_fx cf ON cf.commission_id = c.id) AS amounts) AS parts;

-- A strategy-day's base figures recomputed from its amounts (the backfill, the recomputation
-- after a rate arrives, and the tests' reference).
CREATE VIEW v_daily_base_recomputed AS
SELECT strategy_id, day,
       COALESCE(SUM(CASE WHEN kind = 'realised' THEN base_micros END), 0)
           AS gross_base_micros,
       COALESCE(SUM(CASE WHEN kind = 'commission' THEN base_micros END), 0)
           AS commission_base_micros,
       SUM(CASE WHEN base_micros IS NULL THEN 1 ELSE 0 END) AS unconverted,
       SUM(foreign_amount) AS foreign_amounts
FROM v_daily_base_parts
GROUP BY strategy_id, day;

-- Backfill from what is already stored.
UPDATE agg_daily_pnl
   SET (gross_base_micros, commission_base_micros, unconverted, foreign_amounts) =
       (r.gross_base_micros, r.commission_base_micros, r.unconverted, r.foreign_amounts)
  FROM v_daily_base_recomputed AS r
 WHERE agg_daily_pnl.strategy_id = r.strategy_id AND agg_daily_pnl.day = r.day;

-- A fill's position event adds its amounts' base figures (its commission's too, if that came
-- first); its removal (a rebuild, a correction) takes them off while the event still exists. A
-- commission's base figure is taken off before it changes or goes and added after it is written.
-- (The stored amounts keep their own triggers, migrations 0003 and 0015.)
-- (An upsert: SQLite does not promise which of two triggers on one event runs first, and this
-- one may create the day's row before agg_position_event_added counts the fill in it.)
CREATE TRIGGER agg_position_event_base_added AFTER INSERT ON position_events
BEGIN
    INSERT INTO agg_daily_pnl (strategy_id, day, gross_base_micros, commission_base_micros,
                               unconverted, foreign_amounts)
    SELECT NEW.strategy_id, substr(NEW.event_time, 1, 10),
           COALESCE(SUM(CASE WHEN kind = 'realised' THEN base_micros END), 0),
           COALESCE(SUM(CASE WHEN kind = 'commission' THEN base_micros END), 0),
           SUM(CASE WHEN base_micros IS NULL THEN 1 ELSE 0 END), SUM(foreign_amount)
    FROM v_daily_base_parts WHERE execution_id = NEW.execution_id
    ON CONFLICT (strategy_id, day) DO UPDATE SET
        gross_base_micros = gross_base_micros + excluded.gross_base_micros,
        commission_base_micros = commission_base_micros + excluded.commission_base_micros,
        unconverted = unconverted + excluded.unconverted,
        foreign_amounts = foreign_amounts + excluded.foreign_amounts;
END;

CREATE TRIGGER agg_position_event_base_removing BEFORE DELETE ON position_events
BEGIN
    UPDATE agg_daily_pnl
       SET gross_base_micros = agg_daily_pnl.gross_base_micros - b.gross_base_micros,
           commission_base_micros = agg_daily_pnl.commission_base_micros
                                    - b.commission_base_micros,
           unconverted = agg_daily_pnl.unconverted - b.unconverted,
           foreign_amounts = agg_daily_pnl.foreign_amounts - b.foreign_amounts
      FROM (SELECT strategy_id, day,
                   COALESCE(SUM(CASE WHEN kind = 'realised' THEN base_micros END), 0)
                       AS gross_base_micros,
                   COALESCE(SUM(CASE WHEN kind = 'commission' THEN base_micros END), 0)
                       AS commission_base_micros,
                   SUM(CASE WHEN base_micros IS NULL THEN 1 ELSE 0 END) AS unconverted,
                   SUM(foreign_amount) AS foreign_amounts
            FROM v_daily_base_parts WHERE execution_id = OLD.execution_id
            GROUP BY strategy_id, day) AS b
     WHERE agg_daily_pnl.strategy_id = b.strategy_id AND agg_daily_pnl.day = b.day;
END;

CREATE TRIGGER agg_commission_base_added AFTER INSERT ON commissions
WHEN NEW.execution_id IS NOT NULL
BEGIN
    UPDATE agg_daily_pnl
       SET gross_base_micros = agg_daily_pnl.gross_base_micros + b.gross_base_micros,
           commission_base_micros = agg_daily_pnl.commission_base_micros
                                    + b.commission_base_micros,
           unconverted = agg_daily_pnl.unconverted + b.unconverted,
           foreign_amounts = agg_daily_pnl.foreign_amounts + b.foreign_amounts
      FROM (SELECT strategy_id, day,
                   COALESCE(SUM(CASE WHEN kind = 'realised' THEN base_micros END), 0)
                       AS gross_base_micros,
                   COALESCE(SUM(CASE WHEN kind = 'commission' THEN base_micros END), 0)
                       AS commission_base_micros,
                   SUM(CASE WHEN base_micros IS NULL THEN 1 ELSE 0 END) AS unconverted,
                   SUM(foreign_amount) AS foreign_amounts
            FROM v_daily_base_parts
            WHERE execution_id = NEW.execution_id AND kind = 'commission'
            GROUP BY strategy_id, day) AS b
     WHERE agg_daily_pnl.strategy_id = b.strategy_id AND agg_daily_pnl.day = b.day;
END;

CREATE TRIGGER agg_commission_base_changing
BEFORE UPDATE OF execution_id, commission_micros, currency ON commissions
WHEN OLD.execution_id IS NOT NULL
BEGIN
    UPDATE agg_daily_pnl
       SET gross_base_micros = agg_daily_pnl.gross_base_micros - b.gross_base_micros,
           commission_base_micros = agg_daily_pnl.commission_base_micros
                                    - b.commission_base_micros,
           unconverted = agg_daily_pnl.unconverted - b.unconverted,
           foreign_amounts = agg_daily_pnl.foreign_amounts - b.foreign_amounts
      FROM (SELECT strategy_id, day,
                   COALESCE(SUM(CASE WHEN kind = 'realised' THEN base_micros END), 0)
                       AS gross_base_micros,
                   COALESCE(SUM(CASE WHEN kind = 'commission' THEN base_micros END), 0)
                       AS commission_base_micros,
                   SUM(CASE WHEN base_micros IS NULL THEN 1 ELSE 0 END) AS unconverted,
                   SUM(foreign_amount) AS foreign_amounts
            FROM v_daily_base_parts
            WHERE execution_id = OLD.execution_id AND kind = 'commission'
            GROUP BY strategy_id, day) AS b
     WHERE agg_daily_pnl.strategy_id = b.strategy_id AND agg_daily_pnl.day = b.day;
END;

CREATE TRIGGER agg_commission_base_changed
AFTER UPDATE OF execution_id, commission_micros, currency ON commissions
WHEN NEW.execution_id IS NOT NULL
BEGIN
    UPDATE agg_daily_pnl
       SET gross_base_micros = agg_daily_pnl.gross_base_micros + b.gross_base_micros,
           commission_base_micros = agg_daily_pnl.commission_base_micros
                                    + b.commission_base_micros,
           unconverted = agg_daily_pnl.unconverted + b.unconverted,
           foreign_amounts = agg_daily_pnl.foreign_amounts + b.foreign_amounts
      FROM (SELECT strategy_id, day,
                   COALESCE(SUM(CASE WHEN kind = 'realised' THEN base_micros END), 0)
                       AS gross_base_micros,
                   COALESCE(SUM(CASE WHEN kind = 'commission' THEN base_micros END), 0)
                       AS commission_base_micros,
                   SUM(CASE WHEN base_micros IS NULL THEN 1 ELSE 0 END) AS unconverted,
                   SUM(foreign_amount) AS foreign_amounts
            FROM v_daily_base_parts
            WHERE execution_id = NEW.execution_id AND kind = 'commission'
            GROUP BY strategy_id, day) AS b
     WHERE agg_daily_pnl.strategy_id = b.strategy_id AND agg_daily_pnl.day = b.day;
END;

CREATE TRIGGER agg_commission_base_removing BEFORE DELETE ON commissions
WHEN OLD.execution_id IS NOT NULL
BEGIN
    UPDATE agg_daily_pnl
       SET gross_base_micros = agg_daily_pnl.gross_base_micros - b.gross_base_micros,
           commission_base_micros = agg_daily_pnl.commission_base_micros
                                    - b.commission_base_micros,
           unconverted = agg_daily_pnl.unconverted - b.unconverted,
           foreign_amounts = agg_daily_pnl.foreign_amounts - b.foreign_amounts
      FROM (SELECT strategy_id, day,
                   COALESCE(SUM(CASE WHEN kind = 'realised' THEN base_micros END), 0)
                       AS gross_base_micros,
                   COALESCE(SUM(CASE WHEN kind = 'commission' THEN base_micros END), 0)
                       AS commission_base_micros,
                   SUM(CASE WHEN base_micros IS NULL THEN 1 ELSE 0 END) AS unconverted,
                   SUM(foreign_amount) AS foreign_amounts
            FROM v_daily_base_parts
            WHERE execution_id = OLD.execution_id AND kind = 'commission'
            GROUP BY strategy_id, day) AS b
     WHERE agg_daily_pnl.strategy_id = b.strategy_id AND agg_daily_pnl.day = b.day;
END;

-- A rate learnt after its fill: the fill's own (a statement's fxRateToBase), a rates-table row
-- (it applies from its day on, to every later day in that currency until the next row), a base
-- currency set on the account. Each recomputes the days it can change from their amounts.
CREATE TRIGGER agg_daily_base_fill_rate_changing
BEFORE UPDATE OF fx_rate_to_base_nanos, currency ON executions
BEGIN
    UPDATE agg_daily_pnl
       SET gross_base_micros = agg_daily_pnl.gross_base_micros - b.gross_base_micros,
           commission_base_micros = agg_daily_pnl.commission_base_micros
                                    - b.commission_base_micros,
           unconverted = agg_daily_pnl.unconverted - b.unconverted,
           foreign_amounts = agg_daily_pnl.foreign_amounts - b.foreign_amounts
      FROM (SELECT strategy_id, day,
                   COALESCE(SUM(CASE WHEN kind = 'realised' THEN base_micros END), 0)
                       AS gross_base_micros,
                   COALESCE(SUM(CASE WHEN kind = 'commission' THEN base_micros END), 0)
                       AS commission_base_micros,
                   SUM(CASE WHEN base_micros IS NULL THEN 1 ELSE 0 END) AS unconverted,
                   SUM(foreign_amount) AS foreign_amounts
            FROM v_daily_base_parts WHERE execution_id = OLD.id
            GROUP BY strategy_id, day) AS b
     WHERE agg_daily_pnl.strategy_id = b.strategy_id AND agg_daily_pnl.day = b.day;
END;

CREATE TRIGGER agg_daily_base_fill_rate_changed
AFTER UPDATE OF fx_rate_to_base_nanos, currency ON executions
BEGIN
    UPDATE agg_daily_pnl
       SET gross_base_micros = agg_daily_pnl.gross_base_micros + b.gross_base_micros,
           commission_base_micros = agg_daily_pnl.commission_base_micros
                                    + b.commission_base_micros,
           unconverted = agg_daily_pnl.unconverted + b.unconverted,
           foreign_amounts = agg_daily_pnl.foreign_amounts + b.foreign_amounts
      FROM (SELECT strategy_id, day,
                   COALESCE(SUM(CASE WHEN kind = 'realised' THEN base_micros END), 0)
                       AS gross_base_micros,
                   COALESCE(SUM(CASE WHEN kind = 'commission' THEN base_micros END), 0)
                       AS commission_base_micros,
                   SUM(CASE WHEN base_micros IS NULL THEN 1 ELSE 0 END) AS unconverted,
                   SUM(foreign_amount) AS foreign_amounts
            FROM v_daily_base_parts WHERE execution_id = NEW.id
            GROUP BY strategy_id, day) AS b
     WHERE agg_daily_pnl.strategy_id = b.strategy_id AND agg_daily_pnl.day = b.day;
END;

CREATE TRIGGER agg_daily_base_rate_added AFTER INSERT ON fx_rates
BEGIN
    UPDATE agg_daily_pnl
       SET (gross_base_micros, commission_base_micros, unconverted, foreign_amounts) =
           (r.gross_base_micros, r.commission_base_micros, r.unconverted, r.foreign_amounts)
      FROM (SELECT strategy_id, day,
                   COALESCE(SUM(CASE WHEN kind = 'realised' THEN base_micros END), 0)
                       AS gross_base_micros,
                   COALESCE(SUM(CASE WHEN kind = 'commission' THEN base_micros END), 0)
                       AS commission_base_micros,
                   SUM(CASE WHEN base_micros IS NULL THEN 1 ELSE 0 END) AS unconverted,
                   SUM(foreign_amount) AS foreign_amounts
            FROM v_daily_base_parts
            WHERE event_time >= NEW.day
            GROUP BY strategy_id, day) AS r
     WHERE agg_daily_pnl.strategy_id = r.strategy_id AND agg_daily_pnl.day = r.day;
END;

CREATE TRIGGER agg_daily_base_rate_changed AFTER UPDATE ON fx_rates
BEGIN
    UPDATE agg_daily_pnl
       SET (gross_base_micros, commission_base_micros, unconverted, foreign_amounts) =
           (r.gross_base_micros, r.commission_base_micros, r.unconverted, r.foreign_amounts)
      FROM (SELECT strategy_id, day,
                   COALESCE(SUM(CASE WHEN kind = 'realised' THEN base_micros END), 0)
                       AS gross_base_micros,
                   COALESCE(SUM(CASE WHEN kind = 'commission' THEN base_micros END), 0)
                       AS commission_base_micros,
                   SUM(CASE WHEN base_micros IS NULL THEN 1 ELSE 0 END) AS unconverted,
                   SUM(foreign_amount) AS foreign_amounts
            FROM v_daily_base_parts
            WHERE event_time >= MIN(OLD.day, NEW.day)
            GROUP BY strategy_id, day) AS r
     WHERE agg_daily_pnl.strategy_id = r.strategy_id AND agg_daily_pnl.day = r.day;
END;

CREATE TRIGGER agg_daily_base_rate_removed AFTER DELETE ON fx_rates
BEGIN
    UPDATE agg_daily_pnl
       SET (gross_base_micros, commission_base_micros, unconverted, foreign_amounts) =
           (r.gross_base_micros, r.commission_base_micros, r.unconverted, r.foreign_amounts)
      FROM (SELECT strategy_id, day,
                   COALESCE(SUM(CASE WHEN kind = 'realised' THEN base_micros END), 0)
                       AS gross_base_micros,
                   COALESCE(SUM(CASE WHEN kind = 'commission' THEN base_micros END), 0)
                       AS commission_base_micros,
                   SUM(CASE WHEN base_micros IS NULL THEN 1 ELSE 0 END) AS unconverted,
                   SUM(foreign_amount) AS foreign_amounts
            FROM v_daily_base_parts
            WHERE event_time >= OLD.day
            GROUP BY strategy_id, day) AS r
     WHERE agg_daily_pnl.strategy_id = r.strategy_id AND agg_daily_pnl.day = r.day;
END;

CREATE TRIGGER agg_daily_base_account_base AFTER UPDATE OF base_currency ON accounts
WHEN NEW.base_currency IS NOT OLD.base_currency
BEGIN
    UPDATE agg_daily_pnl
       SET (gross_base_micros, commission_base_micros, unconverted, foreign_amounts) =
           (r.gross_base_micros, r.commission_base_micros, r.unconverted, r.foreign_amounts)
      FROM (SELECT strategy_id, day,
                   COALESCE(SUM(CASE WHEN kind = 'realised' THEN base_micros END), 0)
                       AS gross_base_micros,
                   COALESCE(SUM(CASE WHEN kind = 'commission' THEN base_micros END), 0)
                       AS commission_base_micros,
                   SUM(CASE WHEN base_micros IS NULL THEN 1 ELSE 0 END) AS unconverted,
                   SUM(foreign_amount) AS foreign_amounts
            FROM v_daily_base_parts
            WHERE strategy_id IN (SELECT strategy_id FROM positions WHERE account_id = NEW.id)
            GROUP BY strategy_id, day) AS r
     WHERE agg_daily_pnl.strategy_id = r.strategy_id AND agg_daily_pnl.day = r.day;
END;

-- The report's per-day figures in base: the money columns are the base ones (equal to the
-- stored ones on a day in base); a day with an amount lacking a rate has no base figure (NULL)
-- and counts it in `unconverted`. Trades, win/loss sums and capital stay in the instruments'
-- currencies (`foreign_amounts` > 0 says the day had amounts in another currency than base).
DROP VIEW v_strategy_days;
CREATE VIEW v_strategy_days AS
SELECT s.name                                                  AS strategy,
       cd.day                                                  AS date,
       CASE WHEN p.unconverted = 0 THEN p.gross_base_micros / 1e6 END AS gross_pnl,
       CASE WHEN p.unconverted = 0 THEN p.commission_base_micros / 1e6 END AS commission,
       CASE WHEN p.unconverted = 0
            THEN (p.gross_base_micros - p.commission_base_micros) / 1e6 END AS net_pnl,
       p.fills                                                 AS fills,
       COALESCE(t.trades, 0)                                   AS trades,
       COALESCE(t.wins, 0)                                     AS wins,
       COALESCE(t.losses, 0)                                   AS losses,
       COALESCE(t.win_micros, 0) / 1e6                         AS win_pnl,
       COALESCE(t.loss_micros, 0) / 1e6                        AS loss_pnl,
       COALESCE(c.open_micros, 0) / 1e6                        AS capital_open,
       (COALESCE(c.open_micros, 0) + COALESCE(c.delta_micros, 0)) / 1e6 AS capital_close,
       (COALESCE(c.open_micros, 0) + COALESCE(c.excess_micros, 0)) / 1e6 AS capital_peak,
       p.strategy_id                                           AS strategy_id,
       p.unconverted                                           AS unconverted,
       p.foreign_amounts                                       AS foreign_amounts
FROM agg_daily_pnl p
JOIN strategies s ON s.id = p.strategy_id
LEFT JOIN agg_daily_trips t ON t.strategy_id = p.strategy_id AND t.day = p.day
LEFT JOIN (SELECT strategy_id, day, delta_micros, excess_micros,
                  SUM(delta_micros) OVER (PARTITION BY strategy_id ORDER BY day
                                          ROWS UNBOUNDED PRECEDING) - delta_micros AS open_micros
           FROM agg_capital_days) AS c ON c.strategy_id = p.strategy_id AND c.day = p.day
LEFT JOIN calendar_days cd ON cd.day = p.day
WHERE p.fills > 0;
