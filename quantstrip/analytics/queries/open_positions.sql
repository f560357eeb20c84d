-- title: Open positions
-- description: Current non-zero positions per strategy and account, with average cost.
SELECT strategy, account, symbol, qty, avg_cost, cost_basis, realized_pnl_gross, last_exec_time
FROM v_positions
ORDER BY strategy, symbol
