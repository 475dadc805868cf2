-- PostgreSQL mirror of sqlite/migrations/0003_customers.sql.
-- Customers. search holds the lower-cased (Go simple folding) searchable
-- fields, so both engines match case-insensitively the same way. Sort keys
-- use the C collation (bytes, as SQLite's BINARY).
CREATE TABLE customers (
  id              TEXT PRIMARY KEY,
  account_id      TEXT NOT NULL REFERENCES accounts(id),
  archived        INTEGER NOT NULL DEFAULT 0,
  first_name      TEXT COLLATE "C" NOT NULL DEFAULT '',
  last_name       TEXT COLLATE "C" NOT NULL DEFAULT '',
  email           TEXT COLLATE "C" NOT NULL DEFAULT '',
  phone           TEXT NOT NULL DEFAULT '',
  reference       TEXT COLLATE "C" NOT NULL DEFAULT '',
  description     TEXT NOT NULL DEFAULT '',
  company_name    TEXT COLLATE "C" NOT NULL DEFAULT '',
  search          TEXT NOT NULL DEFAULT '',
  meta            TEXT,
  default_source  TEXT NOT NULL DEFAULT '',
  successful_transactions BIGINT NOT NULL DEFAULT 0,
  total_collected_amount  BIGINT NOT NULL DEFAULT 0,
  created_at      BIGINT NOT NULL,
  updated_at      BIGINT NOT NULL
);
CREATE INDEX customers_created ON customers (account_id, archived, created_at, id);
CREATE INDEX customers_updated ON customers (account_id, archived, updated_at, id);
CREATE INDEX customers_reference ON customers (account_id, reference);
CREATE INDEX customers_company ON customers (account_id, company_name);

-- Totals per account and archived flag, kept in the same transaction as
-- every customer write, so an unfiltered count never scans the table.
CREATE TABLE customer_counts (
  account_id TEXT NOT NULL,
  archived   INTEGER NOT NULL,
  n          BIGINT NOT NULL,
  PRIMARY KEY (account_id, archived)
);

-- A customer's payment sources; card fields live in the vault record.
CREATE TABLE payment_sources (
  id               TEXT PRIMARY KEY,
  account_id       TEXT NOT NULL REFERENCES accounts(id),
  customer_id      TEXT NOT NULL REFERENCES customers(id),
  vault_token      TEXT NOT NULL REFERENCES vault_records(token),
  status           TEXT NOT NULL,
  gateway_id       TEXT NOT NULL DEFAULT '',
  ref_token        TEXT NOT NULL DEFAULT '',
  gateway_ref      TEXT NOT NULL DEFAULT '',
  address_line1    TEXT NOT NULL DEFAULT '',
  address_line2    TEXT NOT NULL DEFAULT '',
  address_line3    TEXT NOT NULL DEFAULT '',
  address_city     TEXT NOT NULL DEFAULT '',
  address_state    TEXT NOT NULL DEFAULT '',
  address_postcode TEXT NOT NULL DEFAULT '',
  address_country  TEXT NOT NULL DEFAULT '',
  created_at       BIGINT NOT NULL,
  updated_at       BIGINT NOT NULL
);
CREATE INDEX payment_sources_customer ON payment_sources (customer_id, status, created_at);
CREATE INDEX payment_sources_vault ON payment_sources (vault_token, status);
CREATE INDEX payment_sources_gateway ON payment_sources (account_id, gateway_id, status);
