-- One value sealed under the master keys the first start had, so that a
-- later start with other keys is refused even before any card is stored
-- (nodes starting together on an empty store). Shaped like account_secrets
-- (account_id is '') so that key rotation re-wraps it with the rest.
CREATE TABLE key_check (
  account_id  TEXT NOT NULL,
  purpose     TEXT NOT NULL,
  sealed      BLOB NOT NULL,
  key_version INTEGER NOT NULL,
  created_at  INTEGER NOT NULL,
  PRIMARY KEY (account_id, purpose)
);
