-- Cash that moves without a fill (issue 16): dividends, payments in lieu, withholding tax,
-- interest, fees, commission adjustments, deposits and withdrawals, as a broker's statement
-- reports them (IB Flex CashTransaction). One row per broker transaction, signed (money in is
-- positive), in its own currency with the broker's rate to the account's base currency. A
-- broker's reversal is a row of its own with the opposite amount, so sums net out.
CREATE TABLE cash_events (
    id                      INTEGER PRIMARY KEY,
    broker                  TEXT NOT NULL,
    account_id              INTEGER NOT NULL REFERENCES accounts (id),
    broker_txn_id           TEXT NOT NULL,
    kind                    TEXT NOT NULL CHECK (kind IN ('dividend', 'payment_in_lieu',
                                'withholding_tax', 'interest', 'fee', 'commission_adjustment',
                                'deposit', 'withdrawal', 'other')),
    currency                TEXT NOT NULL,
    amount_micros           INTEGER NOT NULL,
    fx_rate_to_base_micros  INTEGER CHECK (fx_rate_to_base_micros > 0),
    instrument_id           INTEGER REFERENCES instruments (id),
    event_time              TEXT NOT NULL,
    description             TEXT NOT NULL DEFAULT '',
    recorded_at             TEXT NOT NULL,
    UNIQUE (broker, account_id, broker_txn_id)
);
CREATE INDEX ix_cash_events_account_time ON cash_events (account_id, event_time);

CREATE VIEW v_cash_events AS
SELECT c.id                                   AS cash_event_id,
       c.broker                               AS broker,
       a.account_code                         AS account,
       c.kind                                 AS kind,
       c.currency                             AS currency,
       c.amount_micros / 1e6                  AS amount,
       c.fx_rate_to_base_micros / 1e6         AS fx_rate_to_base,
       i.symbol                               AS symbol,
       c.event_time                           AS event_time,
       cd.day                                 AS event_date,
       c.description                          AS description,
       c.broker_txn_id                        AS broker_txn_id
FROM cash_events c
JOIN accounts a ON a.id = c.account_id
LEFT JOIN instruments i ON i.id = c.instrument_id
LEFT JOIN calendar_days cd ON cd.day = substr(c.event_time, 1, 10);
