package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"switchyard/internal/errs"
	"switchyard/internal/gateway"
	"switchyard/internal/page"
)

const gatewayCols = `id, account_id, type, name, mode, is_default, archived, credentials, key_version, created_at, updated_at`

func scanGateway(row scanner) (gateway.Gateway, error) {
	var g gateway.Gateway
	var def, arch int
	var kv sql.NullInt64
	var created, updated int64
	err := row.Scan(&g.ID, &g.AccountID, &g.Type, &g.Name, &g.Mode, &def, &arch, &g.Credentials, &kv, &created, &updated)
	g.Default, g.Archived = def == 1, arch == 1
	g.KeyVersion = int(kv.Int64)
	g.CreatedAt, g.UpdatedAt = fromMS(created), fromMS(updated)
	return g, err
}

func gatewayNotFound() error { return errs.NotFoundf("id", "gateway not found") }

// CreateGateway implements gateway.Store: the first active gateway of an
// account becomes its default; a new default clears the flag elsewhere.
func (s *Store) CreateGateway(ctx context.Context, g *gateway.Gateway) error {
	asked := g.Default
	err := s.eng.Write(ctx, func(q Querier) error {
		g.Default = asked // fn may run again (engine retry)
		if !g.Default {
			// The first active gateway of an account becomes its default.
			var any int
			if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM gateways WHERE account_id = $1 AND archived = 0 LIMIT 1) AS first`, g.AccountID).Scan(&any); err != nil {
				return err
			}
			g.Default = any == 0
		} else if err := clearDefault(ctx, q, g.AccountID, g.ID); err != nil {
			return err
		}
		_, err := q.ExecContext(ctx, `INSERT INTO gateways (`+gatewayCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			g.ID, g.AccountID, g.Type, g.Name, g.Mode, b2i(g.Default), b2i(g.Archived), g.Credentials, nullInt(g.KeyVersion), ms(g.CreatedAt), ms(g.UpdatedAt))
		return err
	})
	return s.wrap("store.CreateGateway", err)
}

func clearDefault(ctx context.Context, q Querier, account, except string) error {
	_, err := q.ExecContext(ctx, `UPDATE gateways SET is_default = 0 WHERE account_id = $1 AND is_default = 1 AND id <> $2`, account, except)
	return err
}

func nullInt(v int) any {
	if v == 0 {
		return nil
	}
	return v
}

// GetGateway implements gateway.Store.
func (s *Store) GetGateway(ctx context.Context, account, id string) (gateway.Gateway, error) {
	g, err := scanGateway(s.eng.Reader().QueryRowContext(keyed(ctx), `SELECT `+gatewayCols+` FROM gateways WHERE id = $1 AND account_id = $2`, id, account))
	if errors.Is(err, sql.ErrNoRows) {
		return gateway.Gateway{}, gatewayNotFound()
	}
	return g, s.wrap("store.GetGateway", err)
}

// UpdateGateway implements gateway.Store. fn's own error is returned as it is.
func (s *Store) UpdateGateway(ctx context.Context, account, id string, fn func(g *gateway.Gateway) error) (gateway.Gateway, error) {
	var out gateway.Gateway
	var fnErr error
	err := s.eng.Write(ctx, func(q Querier) error {
		out, fnErr = gateway.Gateway{}, nil // fn may run again (engine retry)
		g, err := scanGateway(q.QueryRowContext(ctx, `SELECT `+gatewayCols+` FROM gateways WHERE id = $1 AND account_id = $2`, id, account))
		if errors.Is(err, sql.ErrNoRows) {
			fnErr = gatewayNotFound()
			return fnErr
		}
		if err != nil {
			return err
		}
		if fnErr = fn(&g); fnErr != nil {
			return fnErr
		}
		if g.Default {
			if err := clearDefault(ctx, q, account, id); err != nil {
				return err
			}
		}
		_, err = q.ExecContext(ctx, `UPDATE gateways SET name = $1, mode = $2, is_default = $3, archived = $4, credentials = $5, key_version = $6, updated_at = $7 WHERE id = $8 AND account_id = $9`,
			g.Name, g.Mode, b2i(g.Default), b2i(g.Archived), g.Credentials, nullInt(g.KeyVersion), ms(g.UpdatedAt), id, account)
		out = g
		return err
	})
	if fnErr != nil {
		return gateway.Gateway{}, fnErr
	}
	return out, s.wrap("store.UpdateGateway", err)
}

var gatewaySort = map[string]string{"created_at": "created_at", "updated_at": "updated_at", "name": "name"}

// ListGateways implements gateway.Store.
func (s *Store) ListGateways(ctx context.Context, account string, f gateway.Filter, p page.Params) ([]gateway.Gateway, int, error) {
	where := []string{"account_id = $1", "archived = $2"}
	args := []any{account, b2i(p.Archived)}
	if f.Type != "" {
		args = append(args, f.Type)
		where = append(where, "type = $"+itoa(len(args)))
	}
	if f.Mode != "" {
		args = append(args, f.Mode)
		where = append(where, "mode = $"+itoa(len(args)))
	}
	cond := strings.Join(where, " AND ")
	var n int
	if err := s.eng.Reader().QueryRowContext(ctx, `SELECT count(*) FROM gateways WHERE `+cond, args...).Scan(&n); err != nil {
		return nil, 0, s.wrap("store.ListGateways", err)
	}
	out, err := queryPage(ctx, s.eng.Reader(), gatewayCols, "gateways", cond, orderBy(gatewaySort, p), args, p, scanGateway)
	if err != nil {
		return nil, 0, s.wrap("store.ListGateways", err)
	}
	return out, n, nil
}

// DefaultGateway implements gateway.Store.
func (s *Store) DefaultGateway(ctx context.Context, account string) (gateway.Gateway, bool, error) {
	g, err := scanGateway(s.eng.Reader().QueryRowContext(ctx, `SELECT `+gatewayCols+` FROM gateways WHERE account_id = $1 AND is_default = 1 AND archived = 0`, account))
	if errors.Is(err, sql.ErrNoRows) {
		return gateway.Gateway{}, false, nil
	}
	if err != nil {
		return gateway.Gateway{}, false, s.wrap("store.DefaultGateway", err)
	}
	return g, true, nil
}
