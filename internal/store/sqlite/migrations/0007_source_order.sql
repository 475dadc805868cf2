-- A customer's sources are read in (created_at, id) order: with id in the
-- index the read walks them in that order instead of sorting them on
-- every customer read (SQLite planned "USE TEMP B-TREE FOR RIGHT PART OF
-- ORDER BY").
DROP INDEX payment_sources_customer;
CREATE INDEX payment_sources_customer ON payment_sources (customer_id, status, created_at, id);
