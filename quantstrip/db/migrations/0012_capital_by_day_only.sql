-- Capital deployed is kept per strategy and day (agg_capital_days, migration 0010: the one
-- definition the views read). The running capital carried on each position event (migration
-- 0008) made a late fill rewrite every later event of its strategy; it goes, and position
-- events are append-only again, whole. A late or replayed fill now costs its own day's refresh.
DROP TRIGGER position_events_no_update;
ALTER TABLE position_events DROP COLUMN capital_after_micros;
ALTER TABLE position_events DROP COLUMN peak_after_micros;
CREATE TRIGGER position_events_no_update BEFORE UPDATE ON position_events
BEGIN
    SELECT RAISE(ABORT, 'position_events are append-only: rebuild the position instead');
END;
