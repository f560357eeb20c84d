-- v_daily_pnl in the account's base currency.
--
-- Migration 0018 keeps each strategy-day's realised gross PnL and commissions in base
-- (agg_daily_pnl.gross_base_micros / commission_base_micros, each amount at its own stored rate,
-- half up) and the report reads them through v_strategy_days. v_daily_pnl, which the SQL editor,
-- its saved queries, Excel and the end-of-day mail read, still added the stored amounts in their
-- own currencies: a CHF account trading EUR and USD showed francs, euros and dollars summed as
-- one figure. Now it gives the day's figures in base, the same numbers as v_strategy_days, and
-- no figure (NULL) for a day holding an amount without a rate to base, with the counts that say
-- why: `unconverted` (amounts without a rate) and `foreign_amounts` (amounts converted from
-- another currency). A single-currency account whose base is its trading currency reads exactly
-- what it read before. Amounts per currency stay in v_pnl_by_currency.
DROP VIEW v_daily_pnl;
CREATE VIEW v_daily_pnl AS
SELECT s.name                                                            AS strategy,
       cd.day                                                            AS date,
       CASE WHEN d.unconverted = 0 THEN d.gross_base_micros / 1e6 END    AS gross_pnl,
       CASE WHEN d.unconverted = 0 THEN d.commission_base_micros / 1e6 END AS commission,
       CASE WHEN d.unconverted = 0
            THEN (d.gross_base_micros - d.commission_base_micros) / 1e6 END AS net_pnl,
       d.fills                                                           AS fills,
       d.strategy_id                                                     AS strategy_id,
       d.unconverted                                                     AS unconverted,
       d.foreign_amounts                                                 AS foreign_amounts
FROM agg_daily_pnl d
JOIN strategies s ON s.id = d.strategy_id
LEFT JOIN calendar_days cd ON cd.day = d.day
WHERE d.fills > 0;
