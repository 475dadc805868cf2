-- customer_counts had one row per account: every customer create updated
-- it, so concurrent creates conflicted on it (serialization failures on
-- PostgreSQL). It is now sharded by the customer id's first byte; totals
-- are the sum of the shards.
CREATE TABLE customer_counts_sharded (
  account_id TEXT NOT NULL,
  archived   INTEGER NOT NULL,
  shard      INTEGER NOT NULL,
  n          BIGINT NOT NULL,
  PRIMARY KEY (account_id, archived, shard)
);
INSERT INTO customer_counts_sharded (account_id, archived, shard, n) SELECT account_id, archived, 0, n FROM customer_counts;
DROP TABLE customer_counts;
ALTER TABLE customer_counts_sharded RENAME TO customer_counts;

-- The exact-match filters must lead the planner to their rows, not through
-- the whole account in created_at order: the index carries the list's own
-- filter and order.
DROP INDEX customers_reference;
DROP INDEX customers_company;
CREATE INDEX customers_reference ON customers (account_id, archived, reference, created_at, id);
CREATE INDEX customers_company ON customers (account_id, archived, company_name, created_at, id);
