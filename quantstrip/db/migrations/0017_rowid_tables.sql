-- calendar_days, agg_daily_pnl and agg_daily_trips become ordinary rowid tables.
--
-- Why: they were created WITHOUT ROWID, and DuckDB's sqlite scanner reads a table by rowid
-- ranges, so every read of them through DuckDB (the SQL editor, Excel/analytics through the
-- read-only engine) failed with "no such column: ROWID". Their primary keys stay primary keys:
-- on a rowid table SQLite keeps a non-integer primary key as a UNIQUE index, which the
-- triggers' ON CONFLICT (strategy_id, day) upserts and the views' joins use as before.
-- calendar_days.day gains an explicit NOT NULL, which WITHOUT ROWID implied.
--
-- How: each table's rows are copied aside, the table is dropped and created again under the
-- same name with the same columns, and the rows are copied back in key order (so a plain scan
-- returns them in the order it did). No table is renamed: a rename would rewrite, and first
-- re-check, every view and trigger that names it. No trigger is ON these tables and no index
-- or foreign key refers to them; the views and triggers that read or write them
-- (v_daily_pnl, v_daily_trades, v_strategy_days, the views over calendar_days, the
-- agg_position_event_*, agg_closure_*, agg_commission_* and agg_trip_refresh_apply triggers)
-- name them as text and bind at use, so they are kept byte for byte (test_duckdb_every_relation).

CREATE TEMP TABLE rebuild_calendar_days AS SELECT day FROM calendar_days;
DROP TABLE calendar_days;
CREATE TABLE calendar_days (
    day  DATE NOT NULL PRIMARY KEY
);
INSERT INTO calendar_days (day) SELECT day FROM rebuild_calendar_days ORDER BY day;
DROP TABLE temp.rebuild_calendar_days;

CREATE TEMP TABLE rebuild_agg_daily_pnl AS SELECT * FROM agg_daily_pnl;
DROP TABLE agg_daily_pnl;
CREATE TABLE agg_daily_pnl (
    strategy_id        INTEGER NOT NULL,
    day                TEXT NOT NULL,
    gross_micros       INTEGER NOT NULL DEFAULT 0,
    commission_micros  INTEGER NOT NULL DEFAULT 0,
    fills              INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (strategy_id, day)
);
INSERT INTO agg_daily_pnl (strategy_id, day, gross_micros, commission_micros, fills)
SELECT strategy_id, day, gross_micros, commission_micros, fills
FROM rebuild_agg_daily_pnl ORDER BY strategy_id, day;
DROP TABLE temp.rebuild_agg_daily_pnl;

CREATE TEMP TABLE rebuild_agg_daily_trips AS SELECT * FROM agg_daily_trips;
DROP TABLE agg_daily_trips;
CREATE TABLE agg_daily_trips (
    strategy_id   INTEGER NOT NULL,
    day           TEXT NOT NULL,
    trades        INTEGER NOT NULL DEFAULT 0,
    wins          INTEGER NOT NULL DEFAULT 0,
    losses        INTEGER NOT NULL DEFAULT 0,
    win_micros    INTEGER NOT NULL DEFAULT 0,
    loss_micros   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (strategy_id, day)
);
INSERT INTO agg_daily_trips (strategy_id, day, trades, wins, losses, win_micros, loss_micros)
SELECT strategy_id, day, trades, wins, losses, win_micros, loss_micros
FROM rebuild_agg_daily_trips ORDER BY strategy_id, day;
DROP TABLE temp.rebuild_agg_daily_trips;
