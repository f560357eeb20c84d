-- title: PnL attribution by symbol
-- description: Closed round trips per strategy and symbol: count, gross, allocated commission, net.
SELECT strategy, symbol,
       COUNT(*)                                           AS round_trips,
       ROUND(SUM(CAST(gross_pnl AS DECIMAL(38, 6))), 2)   AS gross_pnl,
       ROUND(SUM(CAST(commission AS DECIMAL(38, 6))), 2)  AS commission,
       ROUND(SUM(CAST(net_pnl AS DECIMAL(38, 6))), 2)     AS net_pnl
FROM v_round_trips
GROUP BY strategy, symbol
ORDER BY net_pnl DESC
