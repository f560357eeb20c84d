-- title: Return on invested capital
-- description: Net realised PnL over the peak capital deployed, per strategy and for the portfolio (its peak is the most the strategies held together on one day).
SELECT strategy, gross_pnl, commission, net_pnl, peak_capital, return_on_capital
FROM v_performance
ORDER BY strategy_id IS NULL, return_on_capital DESC
