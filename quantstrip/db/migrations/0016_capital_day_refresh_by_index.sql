-- A stale capital day is recomputed from its strategy's index alone (issue 15: a late fill
-- <= 2x an in-order one at 100k events). The day's events are read in (event_time, id) order
-- from ix_position_events_strategy_time, which now carries the two cost-basis columns the
-- refresh needs (no table look-up per event); the running sum is the one window, and the day's
-- last event is one index step from its end (the LAST_VALUE window over the whole frame, a
-- second pass over the day, goes).

DROP INDEX ix_position_events_strategy_time;
CREATE INDEX ix_position_events_strategy_time
    ON position_events (strategy_id, event_time, id, cost_basis_before_micros,
                        cost_basis_after_micros);

DROP TRIGGER agg_capital_day_refresh;
CREATE TRIGGER agg_capital_day_refresh AFTER UPDATE OF stale ON agg_capital_days
WHEN OLD.stale <> 0 AND NEW.stale = 0
BEGIN
    UPDATE agg_capital_days
       SET (delta_micros, excess_micros, events, last_event_time, last_event_id) =
           (SELECT COALESCE(SUM(delta), 0), MAX(0, COALESCE(MAX(running), 0)), COUNT(*),
                   COALESCE((SELECT event_time FROM position_events pe
                             WHERE pe.strategy_id = NEW.strategy_id
                               AND pe.event_time >= NEW.day AND pe.event_time < NEW.day || '~'
                             ORDER BY event_time DESC, id DESC LIMIT 1), ''),
                   COALESCE((SELECT id FROM position_events pe
                             WHERE pe.strategy_id = NEW.strategy_id
                               AND pe.event_time >= NEW.day AND pe.event_time < NEW.day || '~'
                             ORDER BY event_time DESC, id DESC LIMIT 1), 0)
            FROM (SELECT cost_basis_after_micros - cost_basis_before_micros AS delta,
                         SUM(cost_basis_after_micros - cost_basis_before_micros)
                             OVER (ORDER BY event_time, id ROWS UNBOUNDED PRECEDING) AS running
                  FROM position_events pe
                  WHERE pe.strategy_id = NEW.strategy_id
                    AND pe.event_time >= NEW.day
                    AND pe.event_time < NEW.day || '~') AS day_events)
     WHERE strategy_id = NEW.strategy_id AND day = NEW.day;
END;
