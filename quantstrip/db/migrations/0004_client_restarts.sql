-- The daemon's crash-loop budget per client, kept across daemon restarts. Without it a restarted
-- daemon forgot that a client was crash-looping and started it max_restarts more times.
-- restart_times: JSON list of epoch seconds of the restarts inside the restart window.
-- signature: the client's files (paths, mtimes, sizes) the state belongs to; a changed client
-- gets a fresh budget.
ALTER TABLE clients ADD COLUMN restart_times TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN signature TEXT;
