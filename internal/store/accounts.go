package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"switchyard/internal/auth"
	"switchyard/internal/errs"
)

func ms(t time.Time) int64     { return t.UnixMilli() }
func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// CreateAccount implements auth.Store.
func (s *Store) CreateAccount(ctx context.Context, a auth.Account, secretHash, publicHash string) error {
	err := s.eng.Write(ctx, func(q Querier) error {
		_, err := q.ExecContext(ctx, `INSERT INTO accounts (id, name, secret_hash, public_hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
			a.ID, a.Name, secretHash, publicHash, ms(a.CreatedAt))
		return err
	})
	return s.wrap("store.CreateAccount", err)
}

// AccountByKeyHash implements auth.Store.
func (s *Store) AccountByKeyHash(ctx context.Context, kind auth.KeyKind, hash string) (auth.Account, string, error) {
	col := "secret_hash"
	if kind == auth.PublicKey {
		col = "public_hash"
	}
	var a auth.Account
	var stored string
	var created int64
	err := s.eng.Reader().QueryRowContext(ctx, `SELECT id, name, created_at, `+col+` FROM accounts WHERE `+col+` = $1`, hash).
		Scan(&a.ID, &a.Name, &created, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		return auth.Account{}, "", &errs.Error{Kind: errs.NotFound, Op: "store.AccountByKeyHash"}
	}
	if err != nil {
		return auth.Account{}, "", s.wrap("store.AccountByKeyHash", err)
	}
	a.CreatedAt = fromMS(created)
	return a, stored, nil
}

// CountAccounts implements auth.Store.
func (s *Store) CountAccounts(ctx context.Context) (int, error) {
	var n int
	err := s.eng.Reader().QueryRowContext(ctx, `SELECT count(*) FROM accounts`).Scan(&n)
	return n, s.wrap("store.CountAccounts", err)
}
