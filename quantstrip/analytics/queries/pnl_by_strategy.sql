-- title: PnL attribution by strategy
-- description: Realised gross and net PnL, commissions, fills and closed round trips per strategy (v_strategy_stats, to the cent).
SELECT strategy, gross_pnl, commission, net_pnl, fills, trades AS round_trips
FROM v_strategy_stats
WHERE strategy_id IS NOT NULL
ORDER BY net_pnl DESC
