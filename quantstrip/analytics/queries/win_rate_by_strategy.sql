-- title: Win rate and trade statistics by strategy
-- description: Closed round trips per strategy and for the portfolio: trades, wins, losses, win rate, average win and loss, profit factor (v_performance: the report's figures).
SELECT strategy, trades, wins, losses, win_rate, avg_win, avg_loss, profit_factor
FROM v_performance
ORDER BY strategy_id IS NULL, win_rate DESC
