-- The position held at any quarter-hour boundary, kept by the writer (issue 18): the portfolio
-- page values positions at each day's end in the operator's zone, and read that from every
-- position event ever recorded (a full scan through DuckDB's SQLite scanner: 1M executions made
-- the page 3.6x a trivial one). Every real time zone's midnight falls on a quarter hour in UTC,
-- so the position at a day's end is the state after the last event of the latest quarter hour
-- that ended by then.
--
-- agg_position_quarters: per strategy, account, instrument and UTC quarter hour with events, the
-- state after its last event (by event_time, then id, as readers order events): quantity and
-- exact cost basis. `quarter_end` is the quarter's end as canonical UTC text ('YYYY-MM-DD
-- HH:MM:SS.000000'); the row holds from its last event until the next row of its position.
-- One row a quarter hour with fills, however many fills, so a reader's work grows with the days
-- traded, not with the executions.

CREATE TABLE agg_position_quarters (
    strategy_id      INTEGER NOT NULL,
    account_id       INTEGER NOT NULL,
    instrument_id    INTEGER NOT NULL,
    quarter_end      TEXT NOT NULL,
    qty_micros       INTEGER NOT NULL,
    basis_micros     INTEGER NOT NULL,
    last_event_time  TEXT NOT NULL,
    last_event_id    INTEGER NOT NULL,
    PRIMARY KEY (strategy_id, account_id, instrument_id, quarter_end)
);  -- a rowid table: DuckDB's SQLite scanner counts rows by rowid

-- Each quarter recomputed from the events (the backfill below, and the tests' reference).
CREATE VIEW v_position_quarters_recomputed AS
SELECT strategy_id, account_id, instrument_id, quarter_end, qty_micros, basis_micros,
       last_event_time, last_event_id
FROM (SELECT strategy_id, account_id, instrument_id,
             datetime(substr(event_time, 1, 14)
                      || printf('%02d', CAST(substr(event_time, 15, 2) AS INTEGER) / 15 * 15)
                      || ':00', '+15 minutes') || '.000000'          AS quarter_end,
             qty_after_micros                                        AS qty_micros,
             cost_basis_after_micros                                 AS basis_micros,
             event_time                                              AS last_event_time,
             id                                                      AS last_event_id,
             ROW_NUMBER() OVER (
                 PARTITION BY strategy_id, account_id, instrument_id,
                              substr(event_time, 1, 14)
                              || printf('%02d', CAST(substr(event_time, 15, 2) AS INTEGER)
                                                / 15 * 15)
                 ORDER BY event_time DESC, id DESC)                  AS latest
      FROM position_events) AS events
WHERE latest = 1;

INSERT INTO agg_position_quarters (strategy_id, account_id, instrument_id, quarter_end,
                                   qty_micros, basis_micros, last_event_time, last_event_id)
SELECT strategy_id, account_id, instrument_id, quarter_end, qty_micros, basis_micros,
       last_event_time, last_event_id
FROM v_position_quarters_recomputed;

-- A new event is its quarter's state unless a later event (time, then id) is already there:
-- events arriving out of order (a late fill's replay) leave the quarter as it should be.
CREATE TRIGGER agg_position_quarter_event_added AFTER INSERT ON position_events
BEGIN
    INSERT INTO agg_position_quarters (strategy_id, account_id, instrument_id, quarter_end,
                                       qty_micros, basis_micros, last_event_time, last_event_id)
    VALUES (NEW.strategy_id, NEW.account_id, NEW.instrument_id,
            datetime(substr(NEW.event_time, 1, 14)
                     || printf('%02d', CAST(substr(NEW.event_time, 15, 2) AS INTEGER) / 15 * 15)
                     || ':00', '+15 minutes') || '.000000',
            NEW.qty_after_micros, NEW.cost_basis_after_micros, NEW.event_time, NEW.id)
    ON CONFLICT (strategy_id, account_id, instrument_id, quarter_end) DO UPDATE SET
        qty_micros = excluded.qty_micros,
        basis_micros = excluded.basis_micros,
        last_event_time = excluded.last_event_time,
        last_event_id = excluded.last_event_id
    WHERE excluded.last_event_time > agg_position_quarters.last_event_time
       OR (excluded.last_event_time = agg_position_quarters.last_event_time
           AND excluded.last_event_id > agg_position_quarters.last_event_id);
END;

-- A removed event (a rebuild, a correction's replay) that was its quarter's last gives the
-- quarter the state after the event now last in it (an index range on the position's key and
-- time), or removes the quarter when none is left.
CREATE TRIGGER agg_position_quarter_event_removed AFTER DELETE ON position_events
BEGIN
    DELETE FROM agg_position_quarters
     WHERE strategy_id = OLD.strategy_id AND account_id = OLD.account_id
       AND instrument_id = OLD.instrument_id AND last_event_id = OLD.id
       AND quarter_end = datetime(substr(OLD.event_time, 1, 14)
                                  || printf('%02d', CAST(substr(OLD.event_time, 15, 2) AS INTEGER)
                                                    / 15 * 15)
                                  || ':00', '+15 minutes') || '.000000'
       AND NOT EXISTS (
           SELECT 1 FROM position_events pe
            WHERE pe.strategy_id = OLD.strategy_id AND pe.account_id = OLD.account_id
              AND pe.instrument_id = OLD.instrument_id
              AND pe.event_time >= substr(OLD.event_time, 1, 14)
                                   || printf('%02d', CAST(substr(OLD.event_time, 15, 2)
                                                          AS INTEGER) / 15 * 15)
              AND pe.event_time < agg_position_quarters.quarter_end);
    UPDATE agg_position_quarters
       SET (qty_micros, basis_micros, last_event_time, last_event_id) =
           (SELECT pe.qty_after_micros, pe.cost_basis_after_micros, pe.event_time, pe.id
              FROM position_events pe
             WHERE pe.strategy_id = OLD.strategy_id AND pe.account_id = OLD.account_id
               AND pe.instrument_id = OLD.instrument_id
               AND pe.event_time >= substr(OLD.event_time, 1, 14)
                                    || printf('%02d', CAST(substr(OLD.event_time, 15, 2)
                                                           AS INTEGER) / 15 * 15)
               AND pe.event_time < agg_position_quarters.quarter_end
             ORDER BY pe.event_time DESC, pe.id DESC
             LIMIT 1)
     WHERE strategy_id = OLD.strategy_id AND account_id = OLD.account_id
       AND instrument_id = OLD.instrument_id AND last_event_id = OLD.id
       AND quarter_end = datetime(substr(OLD.event_time, 1, 14)
                                  || printf('%02d', CAST(substr(OLD.event_time, 15, 2) AS INTEGER)
                                                    / 15 * 15)
                                  || ':00', '+15 minutes') || '.000000';
END;
