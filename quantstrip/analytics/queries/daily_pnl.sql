-- title: Daily PnL
-- description: Realised PnL per strategy and day, net of every commission paid that day.
SELECT strategy, date, gross_pnl, commission, net_pnl, fills
FROM v_daily_pnl
ORDER BY date DESC, strategy
