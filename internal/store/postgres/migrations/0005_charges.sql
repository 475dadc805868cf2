-- PostgreSQL mirror of sqlite/migrations/0005_charges.sql (money, counters
-- of money and ms timestamps BIGINT; the reference sort key in the C collation).
-- Charges. customer holds the charge's customer snapshot (names, masked
-- source) as JSON; search the lower-cased searchable text (spec §8.7).
CREATE TABLE charges (
  id            TEXT PRIMARY KEY,
  account_id    TEXT NOT NULL REFERENCES accounts(id),
  customer_id   TEXT NOT NULL DEFAULT '',
  source_id     TEXT NOT NULL DEFAULT '',
  gateway_id    TEXT NOT NULL,
  external_id   TEXT NOT NULL DEFAULT '',
  amount        BIGINT NOT NULL,
  captured      BIGINT NOT NULL DEFAULT 0,
  refunded      BIGINT NOT NULL DEFAULT 0,
  currency      TEXT NOT NULL,
  reference     TEXT COLLATE "C" NOT NULL DEFAULT '',
  description   TEXT NOT NULL DEFAULT '',
  meta          TEXT,
  status        TEXT NOT NULL,
  capture       INTEGER NOT NULL,
  one_off       INTEGER NOT NULL,
  archived      INTEGER NOT NULL DEFAULT 0,
  customer      TEXT NOT NULL,
  search        TEXT NOT NULL DEFAULT '',
  created_at    BIGINT NOT NULL,
  updated_at    BIGINT NOT NULL
);
CREATE INDEX charges_created ON charges (account_id, archived, created_at, id);
CREATE INDEX charges_reference ON charges (account_id, reference);
CREATE INDEX charges_customer ON charges (account_id, customer_id);

-- One row per gateway call; next_attempt_at > 0 while the reconciler owes
-- it a lookup.
CREATE TABLE charge_transactions (
  id              TEXT PRIMARY KEY,
  charge_id       TEXT NOT NULL REFERENCES charges(id),
  seq             INTEGER NOT NULL,
  type            TEXT NOT NULL,
  status          TEXT NOT NULL,
  amount          BIGINT NOT NULL,
  external_id     TEXT NOT NULL DEFAULT '',
  decline         TEXT,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL DEFAULT 0,
  created_at      BIGINT NOT NULL,
  updated_at      BIGINT NOT NULL
);
CREATE INDEX charge_transactions_charge ON charge_transactions (charge_id, seq);
CREATE INDEX charge_transactions_due ON charge_transactions (next_attempt_at) WHERE next_attempt_at > 0;

-- The Simulator's own ledger, as a processor keeps one: keyed by
-- Switchyard's transaction id, so lookups are truthful after a restart.
CREATE TABLE simulator_ledger (
  txn_id       TEXT PRIMARY KEY,
  account_id   TEXT NOT NULL,
  kind         TEXT NOT NULL,
  amount       BIGINT NOT NULL,
  currency     TEXT NOT NULL,
  external_id  TEXT NOT NULL DEFAULT '',
  succeeded    INTEGER NOT NULL,
  decline_code TEXT NOT NULL DEFAULT '',
  created_at   BIGINT NOT NULL
);
