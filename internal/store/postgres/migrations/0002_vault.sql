-- PostgreSQL mirror of sqlite/migrations/0002_vault.sql.
-- Vault records: one-time tokens, session and permanent vault records.
-- sealed is the envelope-encrypted card (keyring.Sealed); NULL once destroyed.
CREATE TABLE vault_records (
  token            TEXT PRIMARY KEY,
  account_id       TEXT NOT NULL REFERENCES accounts(id),
  kind             TEXT NOT NULL,
  status           TEXT NOT NULL,
  card_name        TEXT NOT NULL DEFAULT '',
  card_scheme      TEXT NOT NULL DEFAULT '',
  card_bin         TEXT NOT NULL DEFAULT '',
  card_last4       TEXT NOT NULL DEFAULT '',
  card_fingerprint TEXT NOT NULL DEFAULT '',
  expire_month     INTEGER NOT NULL DEFAULT 0,
  expire_year      INTEGER NOT NULL DEFAULT 0,
  address_line1    TEXT NOT NULL DEFAULT '',
  address_line2    TEXT NOT NULL DEFAULT '',
  address_line3    TEXT NOT NULL DEFAULT '',
  address_city     TEXT NOT NULL DEFAULT '',
  address_state    TEXT NOT NULL DEFAULT '',
  address_postcode TEXT NOT NULL DEFAULT '',
  address_country  TEXT NOT NULL DEFAULT '',
  first_name       TEXT NOT NULL DEFAULT '',
  last_name        TEXT NOT NULL DEFAULT '',
  email            TEXT NOT NULL DEFAULT '',
  phone            TEXT NOT NULL DEFAULT '',
  gateway_id       TEXT NOT NULL DEFAULT '',
  empty            INTEGER NOT NULL DEFAULT 0,
  sealed           BYTEA,
  key_version      INTEGER,
  expires_at       BIGINT NOT NULL DEFAULT 0,
  created_at       BIGINT NOT NULL,
  updated_at       BIGINT NOT NULL
);
CREATE INDEX vault_records_list ON vault_records (account_id, kind, status, created_at, token);
CREATE INDEX vault_records_expiry ON vault_records (status, expires_at) WHERE expires_at > 0;
CREATE INDEX vault_records_key_version ON vault_records (key_version) WHERE sealed IS NOT NULL;

-- Random per-account secrets (fingerprint key), sealed like card data.
CREATE TABLE account_secrets (
  account_id  TEXT NOT NULL REFERENCES accounts(id),
  purpose     TEXT NOT NULL,
  sealed      BYTEA NOT NULL,
  key_version INTEGER NOT NULL,
  created_at  BIGINT NOT NULL,
  PRIMARY KEY (account_id, purpose)
);
