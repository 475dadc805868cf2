-- payment_sources_gateway (account_id, gateway_id, status) serves no query:
-- the customer list's gateway_id filter looks a customer's sources up by
-- payment_sources_customer, and nothing else filters sources by gateway.
-- Every source written paid for it (one more B-tree insert per customer
-- create, on the single writer of the embedded store).
DROP INDEX IF EXISTS payment_sources_gateway;
