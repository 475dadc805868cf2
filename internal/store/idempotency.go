package store

import (
	"context"
	"database/sql"
	"time"

	"switchyard/internal/idempotency"
)

// ClaimIdempotencyKey implements idempotency.Store. The claim is one
// INSERT … ON CONFLICT DO NOTHING, so two nodes claiming the same key at
// once cannot both win on either engine; only when the row exists is it
// read, and taken over when stale.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, account, key, fp string, now time.Time) (*idempotency.Record, error) {
	var existing *idempotency.Record
	err := s.eng.Write(ctx, func(q Querier) error {
		existing = nil // fn may run again (engine retry)
		res, err := q.ExecContext(ctx, `INSERT INTO idempotency_keys (account_id, key, fingerprint, state, status, body, locked_until, expires_at)
			VALUES ($1, $2, $3, 'running', 0, NULL, $4, $5) ON CONFLICT (account_id, key) DO NOTHING`,
			account, key, fp, ms(now.Add(idempotency.Lock)), ms(now.Add(idempotency.Retention)))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var rec idempotency.Record
		var state string
		var lockedUntil, expires int64
		var chargeID, customerID sql.NullString
		err = q.QueryRowContext(ctx, `SELECT fingerprint, state, status, body, locked_until, expires_at, charge_id, customer_id
			FROM idempotency_keys WHERE account_id = $1 AND key = $2`, account, key).
			Scan(&rec.Fingerprint, &state, &rec.Status, &rec.Body, &lockedUntil, &expires, &chargeID, &customerID)
		if err != nil {
			return err
		}
		expired := expires <= ms(now)
		stale := expired || (state == "running" && lockedUntil <= ms(now))
		if stale && !expired && (chargeID.String != "" || customerID.String != "") {
			// Interrupted after it created a charge or a customer: never
			// run it again.
			rec.ChargeID, rec.CustomerID = chargeID.String, customerID.String
			existing = &rec
			return nil
		}
		if !stale {
			rec.Done = state == "done"
			existing = &rec
			return nil
		}
		_, err = q.ExecContext(ctx, `UPDATE idempotency_keys SET fingerprint = $1, state = 'running', status = 0, body = NULL, charge_id = NULL, customer_id = NULL, locked_until = $2, expires_at = $3 WHERE account_id = $4 AND key = $5`,
			fp, ms(now.Add(idempotency.Lock)), ms(now.Add(idempotency.Retention)), account, key)
		return err
	})
	if err != nil {
		return nil, s.wrap("store.ClaimIdempotencyKey", err)
	}
	return existing, nil
}

// FinishIdempotencyKey implements idempotency.Store.
// A claim is known by its lock's end: a takeover (after the lock) writes a
// later one.
func (s *Store) FinishIdempotencyKey(ctx context.Context, account, key string, claimedAt time.Time, status int, body []byte) error {
	err := s.eng.Write(ctx, func(q Querier) error {
		_, err := q.ExecContext(ctx, `UPDATE idempotency_keys SET state = 'done', status = $1, body = $2
			WHERE account_id = $3 AND key = $4 AND state = 'running' AND locked_until = $5`,
			status, body, account, key, ms(claimedAt.Add(idempotency.Lock)))
		return err
	})
	return s.wrap("store.FinishIdempotencyKey", err)
}

// ReleaseIdempotencyKey implements idempotency.Store.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, account, key string, claimedAt time.Time) error {
	// A claim that recorded a charge or customer is not deleted: the
	// failure being answered (a 503, say) may have come after the write
	// that recorded it committed. Its lock ends now instead, so a retry
	// answers what it recorded at once rather than running again.
	lock := ms(claimedAt.Add(idempotency.Lock))
	err := s.eng.Write(ctx, func(q Querier) error {
		return execStmts(ctx, q, nil, []Stmt{
			{`DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2 AND state = 'running' AND locked_until = $3
				AND charge_id IS NULL AND customer_id IS NULL`, []any{account, key, lock}},
			{`UPDATE idempotency_keys SET locked_until = $1 WHERE account_id = $2 AND key = $3 AND state = 'running' AND locked_until = $4`,
				[]any{ms(claimedAt), account, key, lock}},
		})
	})
	return s.wrap("store.ReleaseIdempotencyKey", err)
}

// SweepIdempotencyKeys implements idempotency.Store.
func (s *Store) SweepIdempotencyKeys(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.eng.Write(ctx, func(q Querier) error {
		res, err := q.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE expires_at <= $1`, ms(now))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), s.wrap("store.SweepIdempotencyKeys", err)
}

// claimedStmt records, in the transaction that writes a charge's intent,
// a new customer, or a change to one (an operation on a charge, a customer
// update), that the idempotent request holding ctx's claim made it
// (nothing to record without a claim). column is charge_id or customer_id.
func claimedStmt(ctx context.Context, account, column, id string) (Stmt, bool) {
	cl, ok := idempotency.ClaimFrom(ctx)
	if !ok {
		return Stmt{}, false
	}
	return Stmt{`UPDATE idempotency_keys SET ` + column + ` = $1
		WHERE account_id = $2 AND key = $3 AND state = 'running' AND locked_until = $4`,
		[]any{id, account, cl.Key, ms(cl.ClaimedAt.Add(idempotency.Lock))}}, true
}

// recordClaim runs claimedStmt in a transaction that reads before it
// writes (the blind writes append it to their statements).
func recordClaim(ctx context.Context, q Querier, account, column, id string) error {
	if st, ok := claimedStmt(ctx, account, column, id); ok {
		return execStmts(ctx, q, nil, []Stmt{st})
	}
	return nil
}
