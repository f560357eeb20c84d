-- Running aggregates maintained by triggers in the same transaction as the rows they summarise.
--
-- Why: the portfolio report needs daily PnL, round-trip win/loss counts and peak capital per
-- strategy. Re-aggregating a million fills (and joining commissions twice per round trip) on every
-- page load costs seconds; these tables hold the same sums, kept current row by row, so a report
-- reads thousands of rows instead of millions. Triggers (not Python) keep them, so no write path
-- (record_execution, a correction's rebuild, a late commission, a bulk import) can forget them.
--
-- Invariants, checked against a recomputation from the base rows in tests:
--   agg_daily_pnl   = position_events LEFT JOIN commissions, summed per (strategy, UTC day of the
--                     fill). Position events only ever exist for active (not superseded) fills.
--   agg_daily_trips = v_closure_net counted per (strategy, UTC day of the exit): trades, wins
--                     (net > 0), losses (net < 0) and their summed net micros.
--   agg_strategy_capital = the running sum of cost basis deployed (ordered by event time, id) and
--                     its peak; a row is `stale` after a delete or an out-of-order insert until the
--                     writer recomputes it (Database._refresh_capital). Readers fall back to the
--                     recomputation for stale rows, so they are never wrong, only slower.

CREATE TABLE agg_daily_pnl (
    strategy_id        INTEGER NOT NULL,
    day                TEXT NOT NULL,
    gross_micros       INTEGER NOT NULL DEFAULT 0,
    commission_micros  INTEGER NOT NULL DEFAULT 0,
    fills              INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (strategy_id, day)
) WITHOUT ROWID;

CREATE TABLE agg_daily_trips (
    strategy_id   INTEGER NOT NULL,
    day           TEXT NOT NULL,
    trades        INTEGER NOT NULL DEFAULT 0,
    wins          INTEGER NOT NULL DEFAULT 0,
    losses        INTEGER NOT NULL DEFAULT 0,
    win_micros    INTEGER NOT NULL DEFAULT 0,
    loss_micros   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (strategy_id, day)
) WITHOUT ROWID;

CREATE TABLE agg_strategy_capital (
    strategy_id      INTEGER PRIMARY KEY,
    capital_micros   INTEGER NOT NULL DEFAULT 0,
    peak_micros      INTEGER,
    last_event_time  TEXT NOT NULL DEFAULT '',
    last_event_id    INTEGER NOT NULL DEFAULT 0,
    stale            INTEGER NOT NULL DEFAULT 0
);

-- Net PnL of each round trip in exact micros, commissions allocated pro rata to the matched
-- quantity (integer division, as v_round_trips computes it in SQLite).
CREATE VIEW v_closure_net AS
SELECT pc.id                                   AS closure_id,
       pc.strategy_id                          AS strategy_id,
       substr(pc.exit_time, 1, 10)             AS day,
       pc.closing_execution_id                 AS closing_execution_id,
       pc.opening_execution_id                 AS opening_execution_id,
       pc.realized_pnl_gross_micros
         - COALESCE((SELECT c.commission_micros FROM commissions c
                     WHERE c.execution_id = pc.opening_execution_id) * pc.qty_micros
                    / (SELECT e.qty_micros FROM executions e
                       WHERE e.id = pc.opening_execution_id), 0)
         - COALESCE((SELECT c.commission_micros FROM commissions c
                     WHERE c.execution_id = pc.closing_execution_id) * pc.qty_micros
                    / (SELECT e.qty_micros FROM executions e
                       WHERE e.id = pc.closing_execution_id), 0) AS net_micros
FROM position_closures pc;

-- Capital deployed by a strategy after each of its position events (cost basis held, summed
-- across instruments, in time order). No aggregate on top, so that a filter on strategy_id
-- reaches the table's index: Database._refresh_capital recomputes one strategy at a time.
CREATE INDEX ix_position_events_strategy_time ON position_events (strategy_id, event_time, id);

CREATE VIEW v_capital_running AS
SELECT pe.strategy_id                                                       AS strategy_id,
       pe.id                                                                AS id,
       pe.event_time                                                        AS event_time,
       SUM(pe.cost_basis_after_micros - pe.cost_basis_before_micros)
           OVER (PARTITION BY pe.strategy_id ORDER BY pe.event_time, pe.id) AS capital_micros
FROM position_events pe;

-- Every strategy's capital aggregate recomputed from scratch: the reference for
-- agg_strategy_capital (the backfill below, the readers' fallback for stale rows).
CREATE VIEW v_capital_recomputed AS
SELECT strategy_id,
       (SELECT r2.capital_micros FROM v_capital_running r2 WHERE r2.strategy_id = r.strategy_id
        ORDER BY r2.event_time DESC, r2.id DESC LIMIT 1)  AS capital_micros,
       MAX(capital_micros)                                AS peak_micros,
       MAX(event_time)                                    AS last_event_time,
       (SELECT r3.id FROM v_capital_running r3 WHERE r3.strategy_id = r.strategy_id
        ORDER BY r3.event_time DESC, r3.id DESC LIMIT 1)  AS last_event_id
FROM v_capital_running r
GROUP BY strategy_id;

-- Backfill from what is already stored.
INSERT INTO agg_daily_pnl (strategy_id, day, gross_micros, commission_micros, fills)
SELECT pe.strategy_id, substr(pe.event_time, 1, 10), SUM(pe.realized_pnl_gross_micros),
       SUM(COALESCE(c.commission_micros, 0)), COUNT(*)
FROM position_events pe
LEFT JOIN commissions c ON c.execution_id = pe.execution_id
GROUP BY pe.strategy_id, substr(pe.event_time, 1, 10);

INSERT INTO agg_daily_trips (strategy_id, day, trades, wins, losses, win_micros, loss_micros)
SELECT strategy_id, day, COUNT(*), SUM(net_micros > 0), SUM(net_micros < 0),
       SUM(MAX(net_micros, 0)), SUM(MIN(net_micros, 0))
FROM v_closure_net
GROUP BY strategy_id, day;

INSERT INTO agg_strategy_capital (strategy_id, capital_micros, peak_micros, last_event_time,
                                  last_event_id, stale)
SELECT strategy_id, capital_micros, peak_micros, last_event_time, last_event_id, 0
FROM v_capital_recomputed;

-- Position events and closures are derived rows: replaced by a rebuild, never edited in place.
CREATE TRIGGER position_events_no_update BEFORE UPDATE ON position_events
BEGIN
    SELECT RAISE(ABORT, 'position_events are append-only: rebuild the position instead');
END;

CREATE TRIGGER position_closures_no_update BEFORE UPDATE ON position_closures
BEGIN
    SELECT RAISE(ABORT, 'position_closures are append-only: rebuild the position instead');
END;

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
    INSERT OR IGNORE INTO agg_strategy_capital (strategy_id) VALUES (NEW.strategy_id);
    UPDATE agg_strategy_capital SET stale = 1
     WHERE strategy_id = NEW.strategy_id AND stale = 0
       AND (NEW.event_time < last_event_time
            OR (NEW.event_time = last_event_time AND NEW.id < last_event_id));
    UPDATE agg_strategy_capital
       SET capital_micros = capital_micros
                            + NEW.cost_basis_after_micros - NEW.cost_basis_before_micros,
           peak_micros = MAX(COALESCE(peak_micros, capital_micros + NEW.cost_basis_after_micros
                                                   - NEW.cost_basis_before_micros),
                             capital_micros + NEW.cost_basis_after_micros
                             - NEW.cost_basis_before_micros),
           last_event_time = NEW.event_time,
           last_event_id = NEW.id
     WHERE strategy_id = NEW.strategy_id AND stale = 0;
END;

CREATE TRIGGER agg_position_event_removed AFTER DELETE ON position_events
BEGIN
    UPDATE agg_daily_pnl
       SET gross_micros = gross_micros - OLD.realized_pnl_gross_micros,
           commission_micros = commission_micros
               - COALESCE((SELECT commission_micros FROM commissions
                           WHERE execution_id = OLD.execution_id), 0),
           fills = fills - 1
     WHERE strategy_id = OLD.strategy_id AND day = substr(OLD.event_time, 1, 10);
    UPDATE agg_strategy_capital SET stale = 1 WHERE strategy_id = OLD.strategy_id;
END;

CREATE TRIGGER agg_closure_added AFTER INSERT ON position_closures
BEGIN
    INSERT INTO agg_daily_trips (strategy_id, day, trades, wins, losses, win_micros, loss_micros)
    SELECT strategy_id, day, 1, net_micros > 0, net_micros < 0, MAX(net_micros, 0),
           MIN(net_micros, 0)
    FROM v_closure_net WHERE closure_id = NEW.id
    ON CONFLICT (strategy_id, day) DO UPDATE SET
        trades = trades + excluded.trades, wins = wins + excluded.wins,
        losses = losses + excluded.losses, win_micros = win_micros + excluded.win_micros,
        loss_micros = loss_micros + excluded.loss_micros;
END;

CREATE TRIGGER agg_closure_removed BEFORE DELETE ON position_closures
BEGIN
    UPDATE agg_daily_trips
       SET trades = trades - 1,
           wins = wins - (t.net > 0),
           losses = losses - (t.net < 0),
           win_micros = win_micros - MAX(t.net, 0),
           loss_micros = loss_micros - MIN(t.net, 0)
      FROM (SELECT net_micros AS net FROM v_closure_net WHERE closure_id = OLD.id) AS t
     WHERE strategy_id = OLD.strategy_id AND day = substr(OLD.exit_time, 1, 10);
END;

-- A commission changes the net PnL of every round trip its fill opened or closed: those round
-- trips are taken out of agg_daily_trips before the change and put back after it. Each trigger
-- only files a request in agg_trip_refresh (the fill and the sign); one trigger on that table
-- applies it, so the arithmetic exists once.
CREATE TABLE agg_trip_refresh (
    execution_id  INTEGER NOT NULL,
    sign          INTEGER NOT NULL CHECK (sign IN (-1, 1))
);

-- Each round trip once per fill that opened or closed it.
CREATE VIEW v_closure_touches AS
SELECT closing_execution_id AS execution_id, strategy_id, day, net_micros FROM v_closure_net
UNION ALL
SELECT opening_execution_id AS execution_id, strategy_id, day, net_micros FROM v_closure_net
WHERE opening_execution_id IS NOT NULL;

CREATE TRIGGER agg_trip_refresh_apply AFTER INSERT ON agg_trip_refresh
BEGIN
    UPDATE agg_daily_trips
       SET trades = trades + NEW.sign * t.n_trades,
           wins = wins + NEW.sign * t.n_wins,
           losses = losses + NEW.sign * t.n_losses,
           win_micros = win_micros + NEW.sign * t.n_win_micros,
           loss_micros = loss_micros + NEW.sign * t.n_loss_micros
      FROM (SELECT strategy_id, day, COUNT(*) AS n_trades, SUM(net_micros > 0) AS n_wins,
                   SUM(net_micros < 0) AS n_losses, SUM(MAX(net_micros, 0)) AS n_win_micros,
                   SUM(MIN(net_micros, 0)) AS n_loss_micros
            FROM v_closure_touches WHERE execution_id = NEW.execution_id
            GROUP BY strategy_id, day) AS t
     WHERE agg_daily_trips.strategy_id = t.strategy_id AND agg_daily_trips.day = t.day;
    DELETE FROM agg_trip_refresh WHERE rowid = NEW.rowid;
END;

-- A commission belongs to one fill: once linked it is never moved to another (moving it would
-- make a round trip between the two fills count twice in the refresh above).
CREATE TRIGGER commissions_stay_with_their_fill BEFORE UPDATE OF execution_id ON commissions
WHEN OLD.execution_id IS NOT NULL AND NEW.execution_id IS NOT OLD.execution_id
BEGIN
    SELECT RAISE(ABORT, 'a commission linked to a fill cannot be moved to another fill');
END;

-- (BEFORE INSERT also runs for a row INSERT OR IGNORE then skips, hence the NOT EXISTS guard.)
CREATE TRIGGER agg_commission_before_insert BEFORE INSERT ON commissions
WHEN NEW.execution_id IS NOT NULL
 AND NOT EXISTS (SELECT 1 FROM commissions WHERE broker = NEW.broker AND exec_id = NEW.exec_id)
BEGIN
    INSERT INTO agg_trip_refresh (execution_id, sign) VALUES (NEW.execution_id, -1);
END;

CREATE TRIGGER agg_commission_after_insert AFTER INSERT ON commissions
WHEN NEW.execution_id IS NOT NULL
BEGIN
    UPDATE agg_daily_pnl SET commission_micros = commission_micros + NEW.commission_micros
     WHERE (strategy_id, day) = (SELECT strategy_id, substr(event_time, 1, 10)
                                 FROM position_events WHERE execution_id = NEW.execution_id);
    INSERT INTO agg_trip_refresh (execution_id, sign) VALUES (NEW.execution_id, 1);
END;

CREATE TRIGGER agg_commission_before_update
BEFORE UPDATE OF execution_id, commission_micros ON commissions
WHEN NEW.execution_id IS NOT NULL
BEGIN
    INSERT INTO agg_trip_refresh (execution_id, sign) VALUES (NEW.execution_id, -1);
END;

CREATE TRIGGER agg_commission_after_update
AFTER UPDATE OF execution_id, commission_micros ON commissions
BEGIN
    UPDATE agg_daily_pnl SET commission_micros = commission_micros - OLD.commission_micros
     WHERE (strategy_id, day) = (SELECT strategy_id, substr(event_time, 1, 10)
                                 FROM position_events WHERE execution_id = OLD.execution_id);
    UPDATE agg_daily_pnl SET commission_micros = commission_micros + NEW.commission_micros
     WHERE (strategy_id, day) = (SELECT strategy_id, substr(event_time, 1, 10)
                                 FROM position_events WHERE execution_id = NEW.execution_id);
    INSERT INTO agg_trip_refresh (execution_id, sign)
    SELECT NEW.execution_id, 1 WHERE NEW.execution_id IS NOT NULL;
END;

CREATE TRIGGER agg_commission_before_delete BEFORE DELETE ON commissions
WHEN OLD.execution_id IS NOT NULL
BEGIN
    INSERT INTO agg_trip_refresh (execution_id, sign) VALUES (OLD.execution_id, -1);
END;

CREATE TRIGGER agg_commission_after_delete AFTER DELETE ON commissions
WHEN OLD.execution_id IS NOT NULL
BEGIN
    UPDATE agg_daily_pnl SET commission_micros = commission_micros - OLD.commission_micros
     WHERE (strategy_id, day) = (SELECT strategy_id, substr(event_time, 1, 10)
                                 FROM position_events WHERE execution_id = OLD.execution_id);
    INSERT INTO agg_trip_refresh (execution_id, sign) VALUES (OLD.execution_id, 1);
END;

-- The shared views now read the aggregates (same names and columns as in 0002).
DROP VIEW v_daily_pnl;
CREATE VIEW v_daily_pnl AS
SELECT s.name                                              AS strategy,
       cd.day                                              AS date,
       d.gross_micros / 1e6                                AS gross_pnl,
       d.commission_micros / 1e6                           AS commission,
       (d.gross_micros - d.commission_micros) / 1e6        AS net_pnl,
       d.fills                                             AS fills,
       d.strategy_id                                       AS strategy_id
FROM agg_daily_pnl d
JOIN strategies s ON s.id = d.strategy_id
LEFT JOIN calendar_days cd ON cd.day = d.day
WHERE d.fills > 0;

-- Round trips per strategy and exit day: the trade count and win rate the report shows, equal
-- to counting v_round_trips by exit_date.
CREATE VIEW v_daily_trades AS
SELECT s.name                                              AS strategy,
       cd.day                                              AS date,
       t.trades                                            AS trades,
       t.wins                                              AS wins,
       t.losses                                            AS losses,
       t.win_micros / 1e6                                  AS win_pnl,
       t.loss_micros / 1e6                                 AS loss_pnl,
       t.strategy_id                                       AS strategy_id
FROM agg_daily_trips t
JOIN strategies s ON s.id = t.strategy_id
LEFT JOIN calendar_days cd ON cd.day = t.day
WHERE t.trades > 0;

DROP VIEW v_return_on_capital;
CREATE VIEW v_return_on_capital AS
WITH peak AS (
    SELECT strategy_id, peak_micros FROM agg_strategy_capital WHERE stale = 0
    UNION ALL
    -- rows a delete or an out-of-order event left stale until the writer refreshes them
    SELECT strategy_id, MAX(capital_micros) FROM v_capital_running
    WHERE strategy_id IN (SELECT strategy_id FROM agg_strategy_capital WHERE stale <> 0)
    GROUP BY strategy_id
),
pnl AS (
    SELECT strategy_id,
           SUM(gross_micros)      AS gross_micros,
           SUM(commission_micros) AS commission_micros
    FROM agg_daily_pnl
    GROUP BY strategy_id
    HAVING SUM(fills) > 0
)
SELECT s.name                                                AS strategy,
       pnl.gross_micros / 1e6                                AS gross_pnl,
       pnl.commission_micros / 1e6                           AS commission,
       (pnl.gross_micros - pnl.commission_micros) / 1e6      AS net_pnl,
       peak.peak_micros / 1e6                                AS peak_capital,
       CASE WHEN peak.peak_micros > 0
            THEN (pnl.gross_micros - pnl.commission_micros) * 1.0 / peak.peak_micros
       END                                                   AS return_on_capital,
       s.id                                                  AS strategy_id
FROM pnl
JOIN peak ON peak.strategy_id = pnl.strategy_id
JOIN strategies s ON s.id = pnl.strategy_id;
