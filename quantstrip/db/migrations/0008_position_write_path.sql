-- The write path stores only what a fill changes (issue 15).
--
-- 1. Open lots are read in FIFO order (the opening fill's time, then its id) from the front, only
--    as far as a closing fill needs them; a fill costs the same at 1 and at 5,000 open lots. The
--    order no longer depends on row ids, so a lot given back when a late fill is inserted
--    (undoing only the fills after it) takes its place at the front again.
DROP INDEX ix_position_lots_key;
CREATE INDEX ix_position_lots_fifo
    ON position_lots (strategy_id, account_id, instrument_id, open_time, execution_id);

-- 2. Each position event carries its strategy's running deployed capital after it and the peak
--    so far (the running sum and running maximum of v_capital_running, in the same order: event
--    time, then id). An in-order fill adds one step; a late fill recomputes only the events after
--    it, from the values just before it, instead of every event of the strategy.
ALTER TABLE position_events ADD COLUMN capital_after_micros INTEGER;
ALTER TABLE position_events ADD COLUMN peak_after_micros INTEGER;
DROP TRIGGER position_events_no_update;

UPDATE position_events
   SET capital_after_micros = w.running, peak_after_micros = w.peak
  FROM (SELECT id, running,
               MAX(running) OVER (PARTITION BY strategy_id ORDER BY event_time, id) AS peak
          FROM (SELECT id, strategy_id, event_time,
                       SUM(cost_basis_after_micros - cost_basis_before_micros)
                           OVER (PARTITION BY strategy_id ORDER BY event_time, id) AS running
                  FROM position_events)) AS w
 WHERE position_events.id = w.id;

-- Position events stay append-only in what they record; only the two running columns above are
-- kept current by the writer.
CREATE TRIGGER position_events_no_update
BEFORE UPDATE OF id, execution_id, strategy_id, account_id, instrument_id, qty_before_micros,
                 qty_after_micros, avg_cost_before_micros, avg_cost_after_micros,
                 cost_basis_before_micros, cost_basis_after_micros, realized_pnl_gross_micros,
                 method, event_time
ON position_events
BEGIN
    SELECT RAISE(ABORT, 'position_events are append-only: rebuild the position instead');
END;
