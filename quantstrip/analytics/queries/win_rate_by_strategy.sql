-- title: Win rate and trade statistics by strategy
-- description: Closed round trips per strategy: trades, wins, losses, win rate, average win and loss, profit factor (the report's figures).
SELECT t.strategy,
       SUM(t.trades)                                              AS trades,
       SUM(t.wins)                                                AS wins,
       SUM(t.losses)                                              AS losses,
       ROUND(SUM(t.wins) * 1.0 / NULLIF(SUM(t.trades), 0), 4)     AS win_rate,
       ROUND(SUM(t.win_pnl) / NULLIF(SUM(t.wins), 0), 2)          AS avg_win,
       ROUND(SUM(t.loss_pnl) / NULLIF(SUM(t.losses), 0), 2)       AS avg_loss,
       ROUND(SUM(t.win_pnl) / NULLIF(-SUM(t.loss_pnl), 0), 4)     AS profit_factor
FROM v_daily_trades t
GROUP BY t.strategy
ORDER BY win_rate DESC
