-- PostgreSQL mirror of sqlite/migrations/0004_keys.sql.
-- Master-key versions marked retired by `switchyard keys retire vN` (spec §11). Only retired versions
-- need a row; a version is "in use" while any sealed row names it in its key_version column.
CREATE TABLE key_versions (
  version    INTEGER PRIMARY KEY,
  retired    INTEGER NOT NULL DEFAULT 0,
  retired_at BIGINT
);
