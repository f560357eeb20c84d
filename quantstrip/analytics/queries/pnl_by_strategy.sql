-- title: PnL attribution by strategy
-- description: Realised gross and net PnL, commissions and closed round trips per strategy.
SELECT d.strategy,
       ROUND(SUM(d.gross_pnl), 2)  AS gross_pnl,
       ROUND(SUM(d.commission), 2) AS commission,
       ROUND(SUM(d.net_pnl), 2)    AS net_pnl,
       SUM(d.fills)                AS fills,
       (SELECT COUNT(*) FROM v_round_trips r WHERE r.strategy = d.strategy) AS round_trips
FROM v_daily_pnl d
GROUP BY d.strategy
ORDER BY net_pnl DESC
