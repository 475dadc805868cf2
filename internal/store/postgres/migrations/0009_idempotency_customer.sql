-- The customer an idempotent create made, written in the create's own
-- transaction: a retry after the request was interrupted (its node died,
-- its claim went stale) answers that customer instead of creating another.
ALTER TABLE idempotency_keys ADD COLUMN customer_id TEXT;
