-- A late fill refreshes only its own stale capital day (issue 15: a late fill <= 2x an
-- in-order one at 100k events).
--
-- Peak capital has one definition: v_performance's, over agg_capital_days (migration 0010).
-- agg_strategy_capital still kept a second copy of each strategy's capital and peak, written by
-- a trigger on every position event and recomputed over all of a strategy's days after every
-- late fill; no view reads it any more. It goes, and with it the per-event writes to it.
--
-- Staleness lives on the day rows alone. Stale days are found through a partial index (empty in
-- the steady state, so an in-order fill pays one index probe and the late fill no scan of its
-- strategy's days), and the writer refreshes them by clearing the flag at the end of its
-- transaction: the trigger below recomputes that day from its own events. Day rows left without
-- events (a replay removed them all) are deleted by the writer before it clears the flags.

DROP TRIGGER agg_capital_days_refresh;

DROP TRIGGER agg_position_event_added;
CREATE TRIGGER agg_position_event_added AFTER INSERT ON position_events
BEGIN
    INSERT INTO agg_daily_pnl (strategy_id, day, gross_micros, commission_micros, fills)
    VALUES (NEW.strategy_id, substr(NEW.event_time, 1, 10), NEW.realized_pnl_gross_micros,
            COALESCE((SELECT commission_micros FROM commissions
                      WHERE execution_id = NEW.execution_id), 0), 1)
    ON CONFLICT (strategy_id, day) DO UPDATE SET
        gross_micros = gross_micros + excluded.gross_micros,
        commission_micros = commission_micros + excluded.commission_micros,
        fills = fills + 1;
END;

DROP TRIGGER agg_position_event_removed;
CREATE TRIGGER agg_position_event_removed AFTER DELETE ON position_events
BEGIN
    UPDATE agg_daily_pnl
       SET gross_micros = gross_micros - OLD.realized_pnl_gross_micros,
           commission_micros = commission_micros
               - COALESCE((SELECT commission_micros FROM commissions
                           WHERE execution_id = OLD.execution_id), 0),
           fills = fills - 1
     WHERE strategy_id = OLD.strategy_id AND day = substr(OLD.event_time, 1, 10);
END;

DROP TABLE agg_strategy_capital;

CREATE INDEX ix_agg_capital_days_stale ON agg_capital_days (strategy_id) WHERE stale <> 0;

-- Clearing a day's flag recomputes that day from its events (an index range on strategy and
-- time, the events' cost basis read from the index itself).
CREATE TRIGGER agg_capital_day_refresh AFTER UPDATE OF stale ON agg_capital_days
WHEN OLD.stale <> 0 AND NEW.stale = 0
BEGIN
    UPDATE agg_capital_days
       SET (delta_micros, excess_micros, last_event_time, last_event_id, events) =
           (SELECT COALESCE(SUM(delta), 0), MAX(0, COALESCE(MAX(running), 0)),
                   COALESCE(MAX(event_time), ''), COALESCE(MAX(last_id), 0), COUNT(*)
            FROM (SELECT event_time,
                         cost_basis_after_micros - cost_basis_before_micros AS delta,
                         SUM(cost_basis_after_micros - cost_basis_before_micros)
                             OVER (ORDER BY event_time, id) AS running,
                         LAST_VALUE(id) OVER (ORDER BY event_time, id ROWS BETWEEN
                                              UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
                             AS last_id
                  FROM position_events pe
                  WHERE pe.strategy_id = NEW.strategy_id
                    AND pe.event_time >= NEW.day
                    AND pe.event_time < NEW.day || '~') AS day_events)
     WHERE strategy_id = NEW.strategy_id AND day = NEW.day;
END;

-- Any day still stale (normally only inside a writer's transaction) is refreshed here, once.
DELETE FROM agg_capital_days WHERE stale <> 0 AND events = 0;
UPDATE agg_capital_days SET stale = 0 WHERE stale <> 0;
