-- One definition of each per-strategy number: v_strategy_days (the components, per strategy and
-- UTC day) and v_performance (the ratios, per strategy and for their portfolio), shown as
-- v_strategy_stats and v_portfolio_stats. The portfolio report, the SQL editor and Excel all read
-- these; the report runs v_performance's own SQL over its horizon (it narrows the `horizon` CTE
-- below), so no figure is computed a second way in Python.
--
-- Why: return on capital, win rate, profit factor, average win/loss and peak capital were each
-- computed in SQL (all history) and again in Python (the report's horizon); the portfolio's
-- peak capital was the sum of the strategies' all-time peaks, reached in different years.
--
-- Capital deployed (cost basis held, summed over a strategy's instruments) is kept per strategy
-- and day in agg_capital_days: the day's net change (`delta`, independent of event order) and
-- the day's peak above its opening capital (`excess`, which needs the events in time order).
-- Opening capital is the running sum of earlier days' deltas, so a late or removed event never
-- rewrites later days: only its own day's `excess` goes stale, and the writer's capital refresh
-- (which sets agg_strategy_capital.stale back to 0, see the trigger below) recomputes it from
-- that day's events.

CREATE TABLE agg_capital_days (
    strategy_id      INTEGER NOT NULL,
    day              TEXT NOT NULL,
    delta_micros     INTEGER NOT NULL DEFAULT 0,
    excess_micros    INTEGER NOT NULL DEFAULT 0,
    last_event_time  TEXT NOT NULL DEFAULT '',
    last_event_id    INTEGER NOT NULL DEFAULT 0,
    events           INTEGER NOT NULL DEFAULT 0,
    stale            INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (strategy_id, day)
);  -- a rowid table: DuckDB's SQLite scanner counts rows by rowid

-- One strategy-day recomputed from its events (index range on strategy, time): the backfill
-- below and the refresh of stale days.
CREATE VIEW v_capital_day_recomputed AS
SELECT strategy_id, day,
       SUM(delta)                         AS delta_micros,
       CASE WHEN MAX(running) > 0 THEN MAX(running) ELSE 0 END AS excess_micros,
       MAX(event_time)                    AS last_event_time,
       MAX(last_id)                       AS last_event_id,
       COUNT(*)                           AS events
FROM (SELECT strategy_id, substr(event_time, 1, 10) AS day, event_time,
             cost_basis_after_micros - cost_basis_before_micros AS delta,
             SUM(cost_basis_after_micros - cost_basis_before_micros)
                 OVER (PARTITION BY strategy_id, substr(event_time, 1, 10)
                       ORDER BY event_time, id)                       AS running,
             LAST_VALUE(id) OVER (PARTITION BY strategy_id, substr(event_time, 1, 10)
                                  ORDER BY event_time, id
                                  ROWS BETWEEN UNBOUNDED PRECEDING
                                       AND UNBOUNDED FOLLOWING)        AS last_id
      FROM position_events) AS events
GROUP BY strategy_id, day;

INSERT INTO agg_capital_days (strategy_id, day, delta_micros, excess_micros, last_event_time,
                              last_event_id, events, stale)
SELECT strategy_id, day, delta_micros, excess_micros, last_event_time, last_event_id, events, 0
FROM v_capital_day_recomputed;

CREATE TRIGGER agg_capital_day_event_added AFTER INSERT ON position_events
BEGIN
    INSERT INTO agg_capital_days (strategy_id, day, delta_micros, excess_micros,
                                  last_event_time, last_event_id, events)
    VALUES (NEW.strategy_id, substr(NEW.event_time, 1, 10),
            NEW.cost_basis_after_micros - NEW.cost_basis_before_micros,
            MAX(0, NEW.cost_basis_after_micros - NEW.cost_basis_before_micros),
            NEW.event_time, NEW.id, 1)
    ON CONFLICT (strategy_id, day) DO UPDATE SET
        -- in time order: the peak can only rise to the new running total; out of order: stale
        excess_micros = CASE WHEN stale = 0 AND (excluded.last_event_time > last_event_time
                                                  OR (excluded.last_event_time = last_event_time
                                                      AND excluded.last_event_id > last_event_id))
                             THEN MAX(excess_micros, delta_micros + excluded.delta_micros)
                             ELSE excess_micros END,
        stale = CASE WHEN stale = 0 AND (excluded.last_event_time > last_event_time
                                          OR (excluded.last_event_time = last_event_time
                                              AND excluded.last_event_id > last_event_id))
                     THEN 0 ELSE 1 END,
        last_event_id = CASE WHEN excluded.last_event_time > last_event_time
                                  OR (excluded.last_event_time = last_event_time
                                      AND excluded.last_event_id > last_event_id)
                             THEN excluded.last_event_id ELSE last_event_id END,
        last_event_time = MAX(last_event_time, excluded.last_event_time),
        delta_micros = delta_micros + excluded.delta_micros,
        events = events + 1;
END;

CREATE TRIGGER agg_capital_day_event_removed AFTER DELETE ON position_events
BEGIN
    UPDATE agg_capital_days
       SET delta_micros = delta_micros
                          - (OLD.cost_basis_after_micros - OLD.cost_basis_before_micros),
           events = events - 1,
           stale = 1
     WHERE strategy_id = OLD.strategy_id AND day = substr(OLD.event_time, 1, 10);
END;

-- The writer refreshes a strategy's capital after a replay or a late fill, ending with
-- agg_strategy_capital.stale = 0 (Database._refresh_capital): its stale days are recomputed
-- then, in the same transaction. Empty days (every event removed) go.
CREATE TRIGGER agg_capital_days_refresh AFTER UPDATE OF stale ON agg_strategy_capital
WHEN OLD.stale <> 0 AND NEW.stale = 0
BEGIN
    UPDATE agg_capital_days
       SET (delta_micros, excess_micros, last_event_time, last_event_id, events, stale) =
           (SELECT COALESCE(SUM(delta), 0), MAX(0, COALESCE(MAX(running), 0)),
                   COALESCE(MAX(event_time), ''), COALESCE(MAX(last_id), 0), COUNT(*), 0
            FROM (SELECT event_time,
                         cost_basis_after_micros - cost_basis_before_micros AS delta,
                         SUM(cost_basis_after_micros - cost_basis_before_micros)
                             OVER (ORDER BY event_time, id) AS running,
                         LAST_VALUE(id) OVER (ORDER BY event_time, id ROWS BETWEEN
                                              UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
                             AS last_id
                  FROM position_events pe
                  WHERE pe.strategy_id = agg_capital_days.strategy_id
                    AND pe.event_time >= agg_capital_days.day
                    AND pe.event_time < agg_capital_days.day || '~') AS day_events)
     WHERE strategy_id = NEW.strategy_id AND stale <> 0;
    DELETE FROM agg_capital_days WHERE strategy_id = NEW.strategy_id AND events = 0;
END;

-- Per strategy and UTC day: realised PnL and commissions (v_daily_pnl), the round trips that
-- exited (v_daily_trades), and the capital deployed: at the day's open, at its close, and at its
-- peak (the most held at any moment of the day, the opening capital included).
CREATE VIEW v_strategy_days AS
SELECT s.name                                                  AS strategy,
       cd.day                                                  AS date,
       p.gross_micros / 1e6                                    AS gross_pnl,
       p.commission_micros / 1e6                               AS commission,
       (p.gross_micros - p.commission_micros) / 1e6            AS net_pnl,
       p.fills                                                 AS fills,
       COALESCE(t.trades, 0)                                   AS trades,
       COALESCE(t.wins, 0)                                     AS wins,
       COALESCE(t.losses, 0)                                   AS losses,
       COALESCE(t.win_micros, 0) / 1e6                         AS win_pnl,
       COALESCE(t.loss_micros, 0) / 1e6                        AS loss_pnl,
       COALESCE(c.open_micros, 0) / 1e6                        AS capital_open,
       (COALESCE(c.open_micros, 0) + COALESCE(c.delta_micros, 0)) / 1e6 AS capital_close,
       (COALESCE(c.open_micros, 0) + COALESCE(c.excess_micros, 0)) / 1e6 AS capital_peak,
       p.strategy_id                                           AS strategy_id
FROM agg_daily_pnl p
JOIN strategies s ON s.id = p.strategy_id
LEFT JOIN agg_daily_trips t ON t.strategy_id = p.strategy_id AND t.day = p.day
LEFT JOIN (SELECT strategy_id, day, delta_micros, excess_micros,
                  SUM(delta_micros) OVER (PARTITION BY strategy_id ORDER BY day
                                          ROWS UNBOUNDED PRECEDING) - delta_micros AS open_micros
           FROM agg_capital_days) AS c ON c.strategy_id = p.strategy_id AND c.day = p.day
LEFT JOIN calendar_days cd ON cd.day = p.day
WHERE p.fills > 0;

-- Per strategy, and the portfolio of them all ('Portfolio', strategy_id NULL):
--   money: sums of the days, rounded half up to the cent (units.money) from exact micros;
--   win_rate = wins / round trips; profit_factor = winning net / |losing net|;
--   avg_win / avg_loss = their net / their count, to the cent;
--   peak_capital = the most capital deployed at any moment (a strategy), or on any one day
--     (the portfolio: each strategy at its peak of that day plus what the others held);
--   return_on_capital = net PnL / peak capital, over the same days.
-- The report narrows `horizon` to its dates and strategies, adding for each strategy the
-- capital it carried into the horizon (quantstrip/analytics/strategy_stats.py); keep that CTE's
-- text as it is.
CREATE VIEW v_performance AS
WITH horizon AS (SELECT * FROM v_strategy_days),
amounts AS MATERIALIZED (
    SELECT strategy_id, strategy, date, fills, trades, wins, losses,
           CAST(ROUND(gross_pnl * 1e6) AS BIGINT)     AS gross,
           CAST(ROUND(commission * 1e6) AS BIGINT)    AS fee,
           CAST(ROUND(win_pnl * 1e6) AS BIGINT)       AS won,
           CAST(ROUND(loss_pnl * 1e6) AS BIGINT)      AS lost,
           CAST(ROUND(capital_open * 1e6) AS BIGINT)  AS opened,
           CAST(ROUND(capital_close * 1e6) AS BIGINT) AS closed,
           CAST(ROUND(capital_peak * 1e6) AS BIGINT)  AS peaked
    FROM horizon
),
book_days AS (
    SELECT date, SUM(closed - opened) AS delta, SUM(peaked - opened) AS excess
    FROM amounts
    GROUP BY date
),
book AS (
    SELECT MAX(carried + excess) AS peak
    FROM (SELECT excess,
                 COALESCE(SUM(delta) OVER (ORDER BY date ROWS BETWEEN UNBOUNDED PRECEDING
                                                             AND 1 PRECEDING), 0) AS carried
          FROM book_days) AS running
),
per_strategy AS MATERIALIZED (
    SELECT strategy_id, strategy, SUM(gross) AS gross, SUM(fee) AS fee, SUM(fills) AS fills,
           SUM(trades) AS trades, SUM(wins) AS wins, SUM(losses) AS losses,
           SUM(won) AS won, SUM(lost) AS lost, MAX(peaked) AS peak
    FROM amounts
    GROUP BY strategy_id, strategy
),
everything AS (
    SELECT strategy_id, strategy, gross, fee, gross - fee AS net, fills, trades, wins, losses,
           won, lost, peak
    FROM per_strategy
    UNION ALL
    SELECT * FROM (SELECT NULL AS strategy_id, 'Portfolio' AS strategy, SUM(gross) AS gross,
                          SUM(fee) AS fee, SUM(gross) - SUM(fee) AS net, SUM(fills) AS fills,
                          SUM(trades) AS trades, SUM(wins) AS wins, SUM(losses) AS losses,
                          SUM(won) AS won, SUM(lost) AS lost, (SELECT peak FROM book) AS peak
                   FROM per_strategy) AS portfolio
    WHERE fills IS NOT NULL
)
SELECT strategy,
       CASE WHEN gross < 0 THEN -((5000 - gross) - (5000 - gross) % 10000)
            ELSE (gross + 5000) - (gross + 5000) % 10000 END / 1e6          AS gross_pnl,
       CASE WHEN fee < 0 THEN -((5000 - fee) - (5000 - fee) % 10000)
            ELSE (fee + 5000) - (fee + 5000) % 10000 END / 1e6              AS commission,
       CASE WHEN net < 0 THEN -((5000 - net) - (5000 - net) % 10000)
            ELSE (net + 5000) - (net + 5000) % 10000 END / 1e6              AS net_pnl,
       fills                                                                AS fills,
       trades                                                               AS trades,
       wins                                                                 AS wins,
       losses                                                               AS losses,
       CASE WHEN trades > 0 THEN CAST(wins AS DOUBLE) / trades END          AS win_rate,
       -- the average to the cent, half up: floor((won + wins * 5000) / (wins * 10000)) cents
       CASE WHEN wins > 0
            THEN ((won + wins * 5000) - (won + wins * 5000) % (wins * 10000))
                 / (wins * 10000) / 100.0 END                               AS avg_win,
       CASE WHEN losses > 0
            THEN -(((-lost + losses * 5000) - (-lost + losses * 5000) % (losses * 10000))
                   / (losses * 10000)) / 100.0 END                          AS avg_loss,
       CASE WHEN lost < 0 THEN CAST(won AS DOUBLE) / -lost END              AS profit_factor,
       CASE WHEN peak < 0 THEN -((5000 - peak) - (5000 - peak) % 10000)
            ELSE (peak + 5000) - (peak + 5000) % 10000 END / 1e6            AS peak_capital,
       CASE WHEN peak > 0 THEN CAST(net AS DOUBLE) / peak END               AS return_on_capital,
       strategy_id                                                          AS strategy_id
FROM everything;

-- The strategies' rows and the portfolio's row apart: a view whose first row has a NULL in a
-- computed column is typed text by the SQLite ODBC driver (it types such columns by the first
-- row), so the portfolio row (no strategy_id) gets a view of its own.
CREATE VIEW v_strategy_stats AS
SELECT strategy, gross_pnl, commission, net_pnl, fills, trades, wins, losses, win_rate, avg_win,
       avg_loss, profit_factor, peak_capital, return_on_capital, strategy_id
FROM v_performance
WHERE strategy_id IS NOT NULL;

CREATE VIEW v_portfolio_stats AS
SELECT gross_pnl, commission, net_pnl, fills, trades, wins, losses, win_rate, avg_win, avg_loss,
       profit_factor, peak_capital, return_on_capital
FROM v_performance
WHERE strategy_id IS NULL;

-- Return on capital, as before (same name and columns), now a view of the one definition.
DROP VIEW v_return_on_capital;
CREATE VIEW v_return_on_capital AS
SELECT strategy, gross_pnl, commission, net_pnl, peak_capital, return_on_capital, strategy_id
FROM v_strategy_stats;
