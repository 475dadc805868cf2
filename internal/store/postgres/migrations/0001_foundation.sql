-- PostgreSQL mirror of sqlite/migrations/0001_foundation.sql: BIGINT for
-- millisecond timestamps and counters, BYTEA for BLOB; INTEGER flags stay
-- INTEGER because the shared SQL compares them with 0 and 1. Text that lists
-- sort by uses the C collation, so ORDER BY compares bytes as SQLite's BINARY
-- does whatever the database's locale.

-- Accounts and their API keys (SHA-256 hashes only).
CREATE TABLE accounts (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  secret_hash TEXT NOT NULL UNIQUE,
  public_hash TEXT NOT NULL UNIQUE,
  created_at  BIGINT NOT NULL
);

-- Gateways: credentials sealed by the keyring (key_version tells which master key wraps them).
CREATE TABLE gateways (
  id          TEXT PRIMARY KEY,
  account_id  TEXT NOT NULL REFERENCES accounts(id),
  type        TEXT NOT NULL,
  name        TEXT COLLATE "C" NOT NULL,
  mode        TEXT NOT NULL,
  is_default  INTEGER NOT NULL DEFAULT 0,
  archived    INTEGER NOT NULL DEFAULT 0,
  credentials BYTEA,
  key_version INTEGER,
  created_at  BIGINT NOT NULL,
  updated_at  BIGINT NOT NULL
);
CREATE INDEX gateways_account_created ON gateways (account_id, archived, created_at, id);

-- Idempotency keys (spec §9): in flight until the response is stored.
CREATE TABLE idempotency_keys (
  account_id   TEXT NOT NULL,
  key          TEXT NOT NULL,
  fingerprint  TEXT NOT NULL,
  state        TEXT NOT NULL,
  status       INTEGER NOT NULL DEFAULT 0,
  body         BYTEA,
  locked_until BIGINT NOT NULL,
  expires_at   BIGINT NOT NULL,
  PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
