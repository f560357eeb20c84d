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

-- v_performance (migration 0010) over days that may hold no base figure, and amounts converted
-- from other currencies:
-- - SUM skips NULL, so a strategy's, and the portfolio's, net PnL came out short by every day
--   whose amounts have no rate, with nothing to say so: now a total over such a day is NULL,
--   as the report refuses it (MissingRateError);
-- - average win and loss, profit factor, peak capital and return on capital are still computed
--   from amounts in the instruments' currencies (round trips, capital deployed): for a row whose
--   days hold amounts converted from another currency they are NULL (withheld), as the report
--   withholds them, instead of euros shown among francs.
-- The `horizon` CTE is kept as it was (the report narrows it: analytics/strategy_stats.py).
DROP VIEW v_performance;
CREATE VIEW v_performance AS
WITH horizon AS (SELECT * FROM v_strategy_days),
amounts AS MATERIALIZED (
    SELECT strategy_id, strategy, date, fills, trades, wins, losses, foreign_amounts,
           CAST(ROUND(gross_pnl * 1e6) AS BIGINT)     AS gross,
           CAST(ROUND(commission * 1e6) AS BIGINT)    AS fee,
           CAST(ROUND(win_pnl * 1e6) AS BIGINT)       AS won,
           CAST(ROUND(loss_pnl * 1e6) AS BIGINT)      AS lost,
           CAST(ROUND(capital_open * 1e6) AS BIGINT)  AS opened,
           CAST(ROUND(capital_close * 1e6) AS BIGINT) AS closed,
           CAST(ROUND(capital_peak * 1e6) AS BIGINT)  AS peaked
    FROM horizon
),
book_days AS (
    SELECT date, SUM(closed - opened) AS delta, SUM(peaked - opened) AS excess
    FROM amounts
    GROUP BY date
),
book AS (
    SELECT MAX(carried + excess) AS peak
    FROM (SELECT excess,
                 COALESCE(SUM(delta) OVER (ORDER BY date ROWS BETWEEN UNBOUNDED PRECEDING
                                                             AND 1 PRECEDING), 0) AS carried
          FROM book_days) AS running
),
per_strategy AS MATERIALIZED (
    SELECT strategy_id, strategy,
           CASE WHEN COUNT(gross) = COUNT(*) THEN SUM(gross) END AS gross,
           CASE WHEN COUNT(fee) = COUNT(*) THEN SUM(fee) END AS fee,
           SUM(fills) AS fills, SUM(trades) AS trades, SUM(wins) AS wins,
           SUM(losses) AS losses, SUM(won) AS won, SUM(lost) AS lost, MAX(peaked) AS peak,
           SUM(foreign_amounts) AS foreign_amounts
    FROM amounts
    GROUP BY strategy_id, strategy
),
everything AS (
    SELECT strategy_id, strategy, gross, fee, gross - fee AS net, fills, trades, wins, losses,
           won, lost, peak, foreign_amounts
    FROM per_strategy
    UNION ALL
    SELECT * FROM (SELECT NULL AS strategy_id, 'Portfolio' AS strategy,
                          CASE WHEN COUNT(gross) = COUNT(*) THEN SUM(gross) END AS gross,
                          CASE WHEN COUNT(fee) = COUNT(*) THEN SUM(fee) END AS fee,
                          CASE WHEN COUNT(gross) = COUNT(*) AND COUNT(fee) = COUNT(*)
                               THEN SUM(gross) - SUM(fee) END AS net,
                          SUM(fills) AS fills, SUM(trades) AS trades, SUM(wins) AS wins,
                          SUM(losses) AS losses, SUM(won) AS won, SUM(lost) AS lost,
                          (SELECT peak FROM book) AS peak,
                          SUM(foreign_amounts) AS foreign_amounts
                   FROM per_strategy) AS portfolio
    WHERE fills IS NOT NULL
)
SELECT strategy,
       CASE WHEN gross < 0 THEN -((5000 - gross) - (5000 - gross) % 10000)
            ELSE (gross + 5000) - (gross + 5000) % 10000 END / 1e6          AS gross_pnl,
       CASE WHEN fee < 0 THEN -((5000 - fee) - (5000 - fee) % 10000)
            ELSE (fee + 5000) - (fee + 5000) % 10000 END / 1e6              AS commission,
       CASE WHEN net < 0 THEN -((5000 - net) - (5000 - net) % 10000)
            ELSE (net + 5000) - (net + 5000) % 10000 END / 1e6              AS net_pnl,
       fills                                                                AS fills,
       trades                                                               AS trades,
       wins                                                                 AS wins,
       losses                                                               AS losses,
       CASE WHEN trades > 0 THEN CAST(wins AS DOUBLE) / trades END          AS win_rate,
       -- the average to the cent, half up: floor((won + wins * 5000) / (wins * 10000)) cents
       CASE WHEN wins > 0 AND foreign_amounts = 0
            THEN ((won + wins * 5000) - (won + wins * 5000) % (wins * 10000))
                 / (wins * 10000) / 100.0 END                               AS avg_win,
       CASE WHEN losses > 0 AND foreign_amounts = 0
            THEN -(((-lost + losses * 5000) - (-lost + losses * 5000) % (losses * 10000))
                   / (losses * 10000)) / 100.0 END                          AS avg_loss,
       CASE WHEN lost < 0 AND foreign_amounts = 0
            THEN CAST(won AS DOUBLE) / -lost END                            AS profit_factor,
       CASE WHEN foreign_amounts <> 0 THEN NULL
            WHEN peak < 0 THEN -((5000 - peak) - (5000 - peak) % 10000)
            ELSE (peak + 5000) - (peak + 5000) % 10000 END / 1e6            AS peak_capital,
       CASE WHEN peak > 0 AND foreign_amounts = 0
            THEN CAST(net AS DOUBLE) / peak END                             AS return_on_capital,
       strategy_id                                                          AS strategy_id
FROM everything;
