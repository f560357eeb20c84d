-- title: Return on invested capital
-- description: Net realised PnL over the peak capital each strategy had deployed.
SELECT strategy, gross_pnl, commission, net_pnl, peak_capital, return_on_capital
FROM v_return_on_capital
ORDER BY return_on_capital DESC
