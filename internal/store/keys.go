package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"switchyard/internal/errs"
	"switchyard/internal/keyring"
)

// sealedTable is one table holding keyring.Sealed encodings: the AAD of a row is
// keyring.AAD(purpose, account_id, <id column>), and a NULL blob means destroyed.
// The purposes must match what the vault and gateway services seal with.
type sealedTable struct {
	name    string // table
	purpose string // keyring.AAD purpose
	id      string // the record column of the AAD (account_id is the other)
	blob    string // column holding the Sealed encoding
}

var sealedTables = []sealedTable{
	{name: "key_check", purpose: "key-check", id: "purpose", blob: "sealed"},
	{name: "account_secrets", purpose: "account-secret", id: "purpose", blob: "sealed"},
	{name: "gateways", purpose: "gateway", id: "id", blob: "credentials"},
	{name: "vault_records", purpose: "card", id: "token", blob: "sealed"},
}

// SealedRow is one stored sealed value with the AAD it was sealed under.
type SealedRow struct {
	Table      string
	AccountID  string
	ID         string // token, gateway id or secret purpose
	KeyVersion int    // the key_version column
	AAD        []byte
	Sealed     []byte // keyring.Sealed.Marshal
}

func (t sealedTable) row(account, id string, version int, blob []byte) SealedRow {
	return SealedRow{Table: t.name, AccountID: account, ID: id, KeyVersion: version,
		AAD: keyring.AAD(t.purpose, account, id), Sealed: blob}
}

// KeyVersionsInUse returns master-key version → number of stored sealed values (card data, gateway
// credentials, account secrets) under it; destroyed values do not count. A sealed value without a
// recorded version counts under 0. One statement, so one snapshot.
func (s *Store) KeyVersionsInUse(ctx context.Context) (map[int]int, error) {
	q := ""
	for i, t := range sealedTables {
		if i > 0 {
			q += " UNION ALL "
		}
		q += `SELECT key_version, count(*) FROM ` + t.name + ` WHERE ` + t.blob + ` IS NOT NULL GROUP BY key_version`
	}
	rows, err := s.eng.Reader().QueryContext(ctx, q)
	if err != nil {
		return nil, s.wrap("store.KeyVersionsInUse", err)
	}
	defer rows.Close()
	out := map[int]int{}
	for rows.Next() {
		var v sql.NullInt64
		var n int
		if err := rows.Scan(&v, &n); err != nil {
			return nil, s.wrap("store.KeyVersionsInUse", err)
		}
		out[int(v.Int64)] += n
	}
	return out, s.wrap("store.KeyVersionsInUse", rows.Err())
}

// KeyVersionsPresent returns the versions that KeyVersionsInUse would list (ascending, recorded
// versions only) without counting rows: it walks each table's distinct versions by index seeks, so
// it stays cheap on a large vault (the start-up check runs it).
func (s *Store) KeyVersionsPresent(ctx context.Context) ([]int, error) {
	seen := map[int]bool{}
	for _, t := range sealedTables {
		last := 0
		for {
			var v sql.NullInt64
			err := s.eng.Reader().QueryRowContext(ctx, `SELECT min(key_version) FROM `+t.name+` WHERE `+t.blob+` IS NOT NULL AND key_version > $1`, last).Scan(&v)
			if err != nil {
				return nil, s.wrap("store.KeyVersionsPresent", err)
			}
			if !v.Valid {
				break
			}
			last = int(v.Int64)
			seen[last] = true
		}
	}
	out := make([]int, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil
}

// SealedSamples returns up to limit stored sealed values under master-key version v, small secrets
// first (account secrets, then gateway credentials, then card data): enough to check that a key
// opens what it claims to.
func (s *Store) SealedSamples(ctx context.Context, v, limit int) ([]SealedRow, error) {
	var out []SealedRow
	for _, t := range sealedTables {
		if len(out) >= limit {
			break
		}
		rows, err := s.selectSealed(ctx, s.eng.Reader(), t, `key_version = $1`, v, limit-len(out))
		if err != nil {
			return nil, s.wrap("store.SealedSamples", err)
		}
		out = append(out, rows...)
	}
	return out, nil
}

// selectSealed reads up to limit sealed rows of t matching cond (with $1 = arg).
func (s *Store) selectSealed(ctx context.Context, q Querier, t sealedTable, cond string, arg, limit int) ([]SealedRow, error) {
	rows, err := q.QueryContext(ctx, `SELECT account_id, `+t.id+`, key_version, `+t.blob+` FROM `+t.name+
		` WHERE `+t.blob+` IS NOT NULL AND `+cond+` LIMIT $2`, arg, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SealedRow
	for rows.Next() {
		var account, id string
		var v sql.NullInt64
		var blob []byte
		if err := rows.Scan(&account, &id, &v, &blob); err != nil {
			return nil, err
		}
		out = append(out, t.row(account, id, int(v.Int64), blob))
	}
	return out, rows.Err()
}

// RewrapBatch moves up to limit sealed values per table whose key_version is below ring.Primary()
// to the primary version (keyring.Ring.Rewrap: the data key is re-wrapped, the ciphertext kept). The
// rows are read from the read pool and re-wrapped outside any transaction; each table's batch is
// then written in one write transaction whose UPDATEs apply only where the row still holds the very
// value that was read (same key_version and same blob), so a concurrent change — a new card, an
// updated gateway key, destroyed card data — is never overwritten: that row is simply skipped (and
// picked up by a later batch if it still needs it). It returns the number of rows re-wrapped. A
// value that does not open under its AAD stops the batch with an error naming the row (never its
// content).
func (s *Store) RewrapBatch(ctx context.Context, ring *keyring.Ring, limit int) (int, error) {
	if limit < 1 {
		limit = 1
	}
	primary := ring.Primary()
	total := 0
	for _, t := range sealedTables {
		n, err := s.rewrapTable(ctx, ring, t, primary, limit)
		total += n
		if err != nil {
			return total, s.wrap("store.RewrapBatch", err)
		}
	}
	return total, nil
}

type rewrap struct {
	row     SealedRow
	blob    []byte
	version int
}

func (s *Store) rewrapTable(ctx context.Context, ring *keyring.Ring, t sealedTable, primary, limit int) (int, error) {
	rows, err := s.selectSealed(ctx, s.eng.Reader(), t, `key_version < $1`, primary, limit)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	ups := make([]rewrap, 0, len(rows))
	for _, r := range rows {
		sealed, err := keyring.Unmarshal(r.Sealed)
		if err != nil {
			return 0, fmt.Errorf("%s %s=%s: %w", t.name, t.id, r.ID, err)
		}
		nw, err := ring.Rewrap(sealed, r.AAD)
		if err != nil {
			return 0, fmt.Errorf("%s %s=%s (v%d): %w", t.name, t.id, r.ID, sealed.KeyVersion, err)
		}
		ups = append(ups, rewrap{row: r, blob: nw.Marshal(), version: nw.KeyVersion})
	}
	var n int
	err = s.eng.Write(ctx, func(q Querier) error {
		n = 0
		for _, u := range ups {
			res, err := q.ExecContext(ctx, `UPDATE `+t.name+` SET `+t.blob+` = $1, key_version = $2 WHERE account_id = $3 AND `+t.id+` = $4 AND key_version = $5 AND `+t.blob+` = $6`,
				u.blob, u.version, u.row.AccountID, u.row.ID, u.row.KeyVersion, u.row.Sealed)
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += int(k)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// countVersion counts the stored sealed values under version v.
func countVersion(ctx context.Context, q Querier, v int) (int, error) {
	query := `SELECT `
	for i, t := range sealedTables {
		if i > 0 {
			query += ` + `
		}
		query += `(SELECT count(*) FROM ` + t.name + ` WHERE ` + t.blob + ` IS NOT NULL AND key_version = $1)`
	}
	var n int
	err := q.QueryRowContext(ctx, query, v).Scan(&n)
	return n, err
}

// RetireKeyVersion marks master-key version v retired. It is refused (errs.Unfulfilled, naming the
// count) while any stored sealed value still uses v; the check and the mark share one write
// transaction. Retiring a retired version again changes nothing.
func (s *Store) RetireKeyVersion(ctx context.Context, v int) error {
	err := s.eng.Write(ctx, func(q Querier) error {
		n, err := countVersion(ctx, q, v)
		if err != nil {
			return err
		}
		if n > 0 {
			e := errs.Unfulfilledf("version", "cannot retire v%d: %d stored %s still use it; run switchyard keys rotate first", v, n, plural(n, "value", "values"))
			e.Op = "store.RetireKeyVersion"
			return e
		}
		_, err = q.ExecContext(ctx, `INSERT INTO key_versions (version, retired, retired_at) VALUES ($1, 1, $2)
			ON CONFLICT (version) DO UPDATE SET retired = 1, retired_at = excluded.retired_at WHERE key_versions.retired = 0`,
			v, ms(time.Now()))
		return err
	})
	return s.wrap("store.RetireKeyVersion", err)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// RetiredKeyVersions returns the retired master-key versions, ascending.
func (s *Store) RetiredKeyVersions(ctx context.Context) ([]int, error) {
	rows, err := s.eng.Reader().QueryContext(ctx, `SELECT version FROM key_versions WHERE retired = 1 ORDER BY version`)
	if err != nil {
		return nil, s.wrap("store.RetiredKeyVersions", err)
	}
	defer rows.Close()
	out := []int{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, s.wrap("store.RetiredKeyVersions", err)
		}
		out = append(out, v)
	}
	return out, s.wrap("store.RetiredKeyVersions", rows.Err())
}

// KeyCheck makes sure the store holds its key check value: random bytes
// sealed under ring's primary version when none is there yet (inserted
// only if still absent, so nodes starting together keep the first one).
// Whether ring opens the one stored is the caller's check to make, with
// SealedSamples like any sealed value; key rotation re-wraps it.
func (s *Store) KeyCheck(ctx context.Context, ring *keyring.Ring) error {
	var n int
	if err := s.eng.Reader().QueryRowContext(ctx, `SELECT count(*) FROM key_check`).Scan(&n); err != nil || n > 0 {
		return s.wrap("store.KeyCheck", err)
	}
	value := make([]byte, 32)
	if _, err := rand.Read(value); err != nil {
		return s.wrap("store.KeyCheck", err)
	}
	sealed, err := ring.Seal(value, keyring.AAD("key-check", "", "key-check"))
	if err != nil {
		return s.wrap("store.KeyCheck", err)
	}
	_, err = writeStmts(ctx, s.eng, Stmt{`INSERT INTO key_check (account_id, purpose, sealed, key_version, created_at)
		VALUES ('', 'key-check', $1, $2, $3) ON CONFLICT (account_id, purpose) DO NOTHING`,
		[]any{sealed.Marshal(), sealed.KeyVersion, time.Now().UnixMilli()}})
	return s.wrap("store.KeyCheck", err)
}
