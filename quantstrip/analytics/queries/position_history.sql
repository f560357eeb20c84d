-- title: Position history
-- description: Every fill applied to a position: quantity and average cost before and after.
SELECT event_time, strategy, account, symbol, qty_before, qty_after, avg_cost_before,
       avg_cost_after, realized_pnl_gross
FROM v_position_history
ORDER BY event_time DESC
