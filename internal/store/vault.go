package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"switchyard/internal/errs"
	"switchyard/internal/page"
	"switchyard/internal/vault"
)

const vaultCols = `token, account_id, kind, status, card_name, card_scheme, card_bin, card_last4, card_fingerprint,
 expire_month, expire_year, address_line1, address_line2, address_line3, address_city, address_state, address_postcode,
 address_country, first_name, last_name, email, phone, gateway_id, empty, sealed, key_version, expires_at, created_at, updated_at`

func scanVault(row scanner) (vault.Record, error) {
	var r vault.Record
	var kind string
	var empty int
	var kv sql.NullInt64
	var exp, created, updated int64
	a := &r.Address
	c := &r.Contact
	err := row.Scan(&r.Token, &r.AccountID, &kind, &r.Status, &r.CardName, &r.Scheme, &r.BIN, &r.Last4, &r.Fingerprint,
		&r.ExpMonth, &r.ExpYear, &a.Line1, &a.Line2, &a.Line3, &a.City, &a.State, &a.Postcode, &a.Country,
		&c.FirstName, &c.LastName, &c.Email, &c.Phone, &r.GatewayID, &empty, &r.Sealed, &kv, &exp, &created, &updated)
	r.Kind, r.Empty, r.KeyVersion = vault.Kind(kind), empty == 1, int(kv.Int64)
	if exp > 0 {
		r.ExpiresAt = fromMS(exp)
	}
	r.CreatedAt, r.UpdatedAt = fromMS(created), fromMS(updated)
	return r, err
}

func vaultArgs(r *vault.Record) []any {
	a, c := r.Address, r.Contact
	var exp int64
	if !r.ExpiresAt.IsZero() {
		exp = ms(r.ExpiresAt)
	}
	var sealed any
	if r.Sealed != nil {
		sealed = r.Sealed
	}
	return []any{r.Token, r.AccountID, string(r.Kind), r.Status, r.CardName, r.Scheme, r.BIN, r.Last4, r.Fingerprint,
		r.ExpMonth, r.ExpYear, a.Line1, a.Line2, a.Line3, a.City, a.State, a.Postcode, a.Country,
		c.FirstName, c.LastName, c.Email, c.Phone, r.GatewayID, b2i(r.Empty), sealed, nullInt(r.KeyVersion), exp, ms(r.CreatedAt), ms(r.UpdatedAt)}
}

func placeholders(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		b.WriteString("$" + itoa(i))
	}
	return b.String()
}

var insertVault = `INSERT INTO vault_records (` + vaultCols + `) VALUES (` + placeholders(29) + `)`

// CreateVaultRecord implements vault.Store.
func (s *Store) CreateVaultRecord(ctx context.Context, r *vault.Record) error {
	_, err := writeStmts(ctx, s.eng, Stmt{insertVault, vaultArgs(r)})
	return s.wrap("store.CreateVaultRecord", err)
}

// tombstone is what a used or expired one-time token keeps (spec §5: token
// id, account, status, expiry, no card data): its card fields and the
// cardholder's contact and address go with the sealed card. A permanent or
// session record keeps its masked card, which its listing shows.
const tombstone = `card_name = '', card_scheme = '', card_bin = '', card_last4 = '', card_fingerprint = '',
 expire_month = 0, expire_year = 0, address_line1 = '', address_line2 = '', address_line3 = '', address_city = '',
 address_state = '', address_postcode = '', address_country = '', first_name = '', last_name = '', email = '',
 phone = '', gateway_id = ''`

func notFound(op string) error { return &errs.Error{Kind: errs.NotFound, Op: op} }

// GetVaultRecord implements vault.Store.
func (s *Store) GetVaultRecord(ctx context.Context, account, token string) (vault.Record, error) {
	r, err := scanVault(s.eng.Reader().QueryRowContext(keyed(ctx), `SELECT `+vaultCols+` FROM vault_records WHERE token = $1 AND account_id = $2`, token, account))
	if errors.Is(err, sql.ErrNoRows) {
		return vault.Record{}, notFound("store.GetVaultRecord")
	}
	return r, s.wrap("store.GetVaultRecord", err)
}

// ListVaultRecords implements vault.Store. Status follows the archived
// flag: archived records only, or every other status.
func (s *Store) ListVaultRecords(ctx context.Context, account string, kind vault.Kind, p page.Params) ([]vault.Record, int, error) {
	where := "account_id = $1 AND kind <> 'one_time'"
	args := []any{account}
	if kind != "" {
		args = append(args, string(kind))
		where += " AND kind = $" + itoa(len(args))
	}
	if p.Archived {
		where += " AND status = 'archived'"
	} else {
		where += " AND status <> 'archived'"
	}
	var n int
	if err := s.eng.Reader().QueryRowContext(ctx, `SELECT count(*) FROM vault_records WHERE `+where, args...).Scan(&n); err != nil {
		return nil, 0, s.wrap("store.ListVaultRecords", err)
	}
	out, err := queryPage(ctx, s.eng.Reader(), vaultCols, "vault_records", where, orderByKey(vaultSort, "token", p), args, p, scanVault)
	if err != nil {
		return nil, 0, s.wrap("store.ListVaultRecords", err)
	}
	return out, n, nil
}

var vaultSort = map[string]string{"created_at": "created_at", "updated_at": "updated_at"}

// ArchiveVaultRecord implements vault.Store. A session record's card data
// goes at once; a permanent record's stays while sources use it.
func (s *Store) ArchiveVaultRecord(ctx context.Context, account, token string, now time.Time) (vault.Record, error) {
	var out vault.Record
	err := s.eng.Write(ctx, func(q Querier) error {
		if _, err := q.ExecContext(ctx, `UPDATE vault_records SET status = 'archived', updated_at = $1,
			sealed = CASE WHEN kind = 'session' THEN NULL ELSE sealed END WHERE token = $2 AND account_id = $3 AND kind <> 'one_time'`,
			ms(now), token, account); err != nil {
			return err
		}
		r, err := scanVault(q.QueryRowContext(ctx, `SELECT `+vaultCols+` FROM vault_records WHERE token = $1 AND account_id = $2`, token, account))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("store.ArchiveVaultRecord")
		}
		out = r
		return err
	})
	return out, s.wrap("store.ArchiveVaultRecord", err)
}

// ConsumeVaultRecord implements vault.Store.
func (s *Store) ConsumeVaultRecord(ctx context.Context, account, token string, now time.Time) (vault.Record, bool, error) {
	var out vault.Record
	var ok bool
	err := s.eng.Write(ctx, func(q Querier) error {
		r, err := scanVault(q.QueryRowContext(ctx, `SELECT `+vaultCols+` FROM vault_records WHERE token = $1 AND account_id = $2`, token, account))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("store.ConsumeVaultRecord")
		}
		if err != nil {
			return err
		}
		res, err := q.ExecContext(ctx, `UPDATE vault_records SET status = 'used', sealed = NULL, updated_at = $1
			WHERE token = $2 AND account_id = $3 AND status = 'active' AND kind IN ('one_time', 'session') AND expires_at > $4`,
			ms(now), token, account, ms(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		out, ok = r, n == 1
		if ok && r.Kind == vault.OneTime {
			_, err = q.ExecContext(ctx, `UPDATE vault_records SET `+tombstone+` WHERE token = $1 AND account_id = $2`, token, account)
		}
		return err
	})
	return out, ok, s.wrap("store.ConsumeVaultRecord", err)
}

// AccountSecret implements vault.Store.
func (s *Store) AccountSecret(ctx context.Context, account, purpose string, fresh func() ([]byte, int, error)) ([]byte, error) {
	var blob []byte
	err := s.eng.Reader().QueryRowContext(ctx, `SELECT sealed FROM account_secrets WHERE account_id = $1 AND purpose = $2`, account, purpose).Scan(&blob)
	if err == nil {
		return blob, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, s.wrap("store.AccountSecret", err)
	}
	sealed, version, err := fresh()
	if err != nil {
		return nil, errs.Wrap("store.AccountSecret", err)
	}
	err = s.eng.Write(ctx, func(q Querier) error {
		if _, err := q.ExecContext(ctx, `INSERT INTO account_secrets (account_id, purpose, sealed, key_version, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (account_id, purpose) DO NOTHING`, account, purpose, sealed, version, ms(time.Now())); err != nil {
			return err
		}
		return q.QueryRowContext(ctx, `SELECT sealed FROM account_secrets WHERE account_id = $1 AND purpose = $2`, account, purpose).Scan(&blob)
	})
	return blob, s.wrap("store.AccountSecret", err)
}

// SweepVault implements vault.Store.
func (s *Store) SweepVault(ctx context.Context, now time.Time) (int, error) {
	var total int64
	err := s.eng.Write(ctx, func(q Querier) error {
		total = 0 // fn may run again (engine retry)
		for _, stmt := range []struct {
			sql  string
			args []any
		}{
			{`UPDATE vault_records SET ` + tombstone + `
			  WHERE status = 'active' AND expires_at > 0 AND expires_at <= $1 AND kind = 'one_time'`, []any{ms(now)}},
			{`UPDATE vault_records SET status = 'expired', sealed = NULL, updated_at = $1
			  WHERE status = 'active' AND expires_at > 0 AND expires_at <= $2`, []any{ms(now), ms(now)}},
			{`DELETE FROM vault_records WHERE kind = 'one_time' AND expires_at > 0 AND expires_at <= $1`, []any{ms(now.Add(-vault.TombstoneTTL))}},
			{archivedUnused, []any{ms(now.Add(-vault.ArchiveGrace))}},
		} {
			res, err := q.ExecContext(ctx, stmt.sql, stmt.args...)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			total += n
		}
		return nil
	})
	return int(total), s.wrap("store.SweepVault", err)
}

// archivedUnused destroys the card data of permanent records archived
// before $1 (vault.ArchiveGrace) that no active payment source uses any
// more (spec §6.2).
const archivedUnused = `UPDATE vault_records SET sealed = NULL
  WHERE kind = 'permanent' AND status = 'archived' AND sealed IS NOT NULL AND updated_at <= $1
  AND NOT EXISTS (SELECT 1 FROM payment_sources ps WHERE ps.vault_token = vault_records.token AND ps.status = 'active')`
