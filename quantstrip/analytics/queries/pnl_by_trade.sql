-- title: PnL attribution by trade
-- description: Every closed round trip with entry, exit, gross PnL, commission and net PnL.
SELECT strategy, symbol, direction, qty, entry_time, entry_price, exit_time, exit_price,
       gross_pnl, commission, net_pnl
FROM v_round_trips
ORDER BY exit_time DESC
