-- The charge an idempotent request created, written with the charge's
-- intent: a retry after the request was interrupted (its node died, its
-- claim went stale) answers that charge instead of charging again.
ALTER TABLE idempotency_keys ADD COLUMN charge_id TEXT;
