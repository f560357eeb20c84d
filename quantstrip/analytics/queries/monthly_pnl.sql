-- title: Monthly PnL by strategy
-- description: Realised gross PnL, commissions and net PnL per strategy and calendar month (UTC), with the fills behind them.
SELECT d.strategy,
       substr(CAST(d.date AS VARCHAR), 1, 7)                   AS month,
       ROUND(SUM(CAST(d.gross_pnl AS DECIMAL(38, 6))), 2)      AS gross_pnl,
       ROUND(SUM(CAST(d.commission AS DECIMAL(38, 6))), 2)     AS commission,
       ROUND(SUM(CAST(d.net_pnl AS DECIMAL(38, 6))), 2)        AS net_pnl,
       SUM(d.fills)                                            AS fills
FROM v_daily_pnl d
GROUP BY d.strategy, month
ORDER BY month DESC, d.strategy
