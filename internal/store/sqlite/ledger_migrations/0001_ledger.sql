-- The Simulator's own ledger, as a processor keeps one: keyed by
-- Switchyard's transaction id, so lookups are truthful after a restart.
-- It lives in its own file with its own writer (simulator.db): it is the
-- simulated processor's state, not Switchyard's, and a charge's ledger
-- write then never queues behind Switchyard's own commits.
CREATE TABLE simulator_ledger (
  txn_id       TEXT PRIMARY KEY,
  account_id   TEXT NOT NULL,
  kind         TEXT NOT NULL,
  amount       INTEGER NOT NULL,
  currency     TEXT NOT NULL,
  external_id  TEXT NOT NULL DEFAULT '',
  succeeded    INTEGER NOT NULL,
  decline_code TEXT NOT NULL DEFAULT '',
  created_at   INTEGER NOT NULL
);
