-- title: Monthly PnL by strategy
-- description: Realised gross PnL, commissions and net PnL per strategy and calendar month (UTC), in the account's base currency, with the fills behind them; a month holding an amount without a rate to base has no total (unconverted counts them).
SELECT d.strategy,
       substr(CAST(d.date AS VARCHAR), 1, 7)                   AS month,
       CASE WHEN SUM(d.unconverted) = 0
            THEN ROUND(SUM(CAST(d.gross_pnl AS DECIMAL(38, 6))), 2) END  AS gross_pnl,
       CASE WHEN SUM(d.unconverted) = 0
            THEN ROUND(SUM(CAST(d.commission AS DECIMAL(38, 6))), 2) END AS commission,
       CASE WHEN SUM(d.unconverted) = 0
            THEN ROUND(SUM(CAST(d.net_pnl AS DECIMAL(38, 6))), 2) END    AS net_pnl,
       SUM(d.fills)                                            AS fills,
       SUM(d.unconverted)                                      AS unconverted
FROM v_daily_pnl d
GROUP BY d.strategy, month
ORDER BY month DESC, d.strategy
